"""
End-to-end tests of C{twistd synnefo} as a real process.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import treq
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from tests.integration.nodeprocess import TWISTD, adminPort, spawnNode

FAILING_PLUGIN = """
import attrs
from twisted.application.service import Service
from twisted.plugin import IPlugin
from zope.interface import implementer
from synnefo_twisted.interfaces import ISynnefoPlugin

class Failing(Service):
    def startService(self):
        raise RuntimeError("no luck today")

@implementer(IPlugin, ISynnefoPlugin)
@attrs.frozen
class FailingPlugin:
    name: str = "failing"
    roles: frozenset = frozenset()
    description: str = "always fails to start"
    requires: frozenset = frozenset()
    startOrder: int = 99
    section: object = None
    settings: tuple = ()
    def makeService(self, node):
        return Failing()

failing = FailingPlugin()
"""


class TwistdTests(TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.dir = Path(self.mktemp()).resolve()
        self.dir.mkdir()
        (self.dir / "node.toml").write_text(
            '[node]\nroles = []\nadmin_listen = "tcp:0:interface=127.0.0.1"\nstate_dir = "./state"\n'
        )

    @inlineCallbacks
    def test_servesHealthzAndStopsOnSigterm(self):
        """
        A node serves /healthz 200 on its admin listener, logs JSON lines,
        and on SIGTERM shuts down cleanly and ends by that signal (twistd's
        convention, which init systems count as a clean stop).
        """
        node = spawnNode(reactor, ["--config", "node.toml"], str(self.dir))
        event = yield node.waitFor(adminPort)
        pool = HTTPConnectionPool(reactor, persistent=False)
        response = yield treq.get(f"http://127.0.0.1:{event['port']}/healthz", pool=pool)
        self.assertEqual(response.code, 200)
        body = yield response.json()
        self.assertEqual(body["status"], "ok")
        started = yield node.waitFor(lambda e: e.get("message", "").startswith("node started"))
        self.assertEqual(started["level"], "info")
        node.terminate()
        code = yield node.ended
        self.assertIsNone(code, node.output())
        self.assertEqual(node.exitSignal, signal.SIGTERM)
        self.assertTrue(any(e.get("message") == "Main loop terminated." for e in node.events))
        self.assertTrue((self.dir / "state").is_dir())

    @inlineCallbacks
    def test_failingPluginExitsNonZero(self):
        """
        A third-party plugin (found on sys.path) whose start fails makes the
        node log a critical event naming it and exit with status 1.
        """
        extra = self.dir / "extra" / "plugins"
        extra.mkdir(parents=True)
        (extra / "failing_plugin.py").write_text(FAILING_PLUGIN)
        env = {"PYTHONPATH": str(self.dir / "extra")}
        node = spawnNode(reactor, ["--config", "node.toml", "--plugin", "failing"], str(self.dir), env)
        code = yield node.ended
        self.assertEqual(code, 1, node.output())
        critical = [e for e in node.events if e.get("level") == "critical"]
        self.assertEqual(len(critical), 1, node.output())
        self.assertEqual(critical[0]["child"], "failing")
        self.assertIn("no luck today", critical[0]["message"])

    @inlineCallbacks
    def test_badOptionOneLine(self):
        """
        An unknown role exits with status 2 and a single line on stderr.
        """
        from twisted.internet.utils import getProcessOutputAndValue

        _out, err, code = yield getProcessOutputAndValue(
            TWISTD, ["-n", "synnefo", "--role", "bogus"], env=dict(os.environ), path=str(self.dir)
        )
        self.assertEqual(code, 2)
        self.assertEqual(err.decode().strip().count("\n"), 0, err)
        self.assertIn("unknown role 'bogus'", err.decode())
