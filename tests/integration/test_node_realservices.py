"""
A real node process on PostgreSQL and RabbitMQ: started while both are
unreachable it keeps retrying, says so on /healthz without flooding its
log, and starts its plugins once they become reachable.
"""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

import treq
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater
from twisted.protocols.portforward import ProxyFactory
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from tests.integration import realservices
from tests.integration.nodeprocess import adminPort, spawnNode

NEEDY_PLUGIN = """
import attrs
from twisted.application.service import Service
from twisted.plugin import IPlugin
from zope.interface import implementer
from synnefo_twisted.interfaces import ISynnefoPlugin

@implementer(IPlugin, ISynnefoPlugin)
@attrs.frozen
class NeedyPlugin:
    name: str = "needy"
    roles: frozenset = frozenset()
    description: str = "needs the database and the bus"
    requires: frozenset = frozenset({"database", "bus"})
    startOrder: int = 50
    section: object = None
    settings: tuple = ()
    def makeService(self, node):
        return Service()

needy = NeedyPlugin()
"""


def stopNode(node):
    if not node.ended.called:
        node.terminate()
    return node.ended


def freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class UnreachableAtStartTests(TestCase):
    timeout = 120

    @inlineCallbacks
    def test_retriesThenStarts(self):
        """
        With PostgreSQL and RabbitMQ unreachable the node serves /healthz 503
        naming both, logs few events while retrying, and starts the plugin
        (healthz 200) once both become reachable, without a restart.
        """
        workdir = Path(self.mktemp()).resolve()
        (workdir / "extra" / "plugins").mkdir(parents=True)
        (workdir / "extra" / "plugins" / "needy_plugin.py").write_text(NEEDY_PLUGIN)
        pgPort, amqpPort = freePort(), freePort()
        pg = urlsplit(realservices.PG_URL)
        amqp = urlsplit(realservices.AMQP_URL)
        (workdir / "node.toml").write_text(
            '[node]\nroles = []\nplugins = ["needy"]\nadmin_listen = "tcp:0:interface=127.0.0.1"\n'
            'state_dir = "./state"\n'
            f'[database]\nurl = "postgresql://{pg.username}@127.0.0.1:{pgPort}/synnefo_node"\n'
            f'[bus]\nurl = "amqp://{amqp.username}:{amqp.password}@127.0.0.1:{amqpPort}{amqp.path}"\n'
        )
        node = spawnNode(reactor, ["--config", "node.toml"], str(workdir), {"PYTHONPATH": str(workdir / "extra")})
        self.addCleanup(stopNode, node)
        event = yield node.waitFor(adminPort)
        url = f"http://127.0.0.1:{event['port']}/healthz"
        pool = HTTPConnectionPool(reactor, persistent=False)
        yield deferLater(reactor, 4, lambda: None)
        response = yield treq.get(url, pool=pool)
        self.assertEqual(response.code, 503)
        body = yield response.json()
        self.assertFalse(body["dependencies"]["database"]["ok"], body)
        self.assertFalse(body["plugins"]["needy"]["ok"], body)
        self.assertNotIn("node started", node.output())
        logged = len(node.events)
        self.assertLess(logged, 40, node.output())

        # now make both reachable through forwarders on the configured ports
        ports = [
            reactor.listenTCP(pgPort, ProxyFactory(pg.hostname, pg.port or 5432), interface="127.0.0.1"),
            reactor.listenTCP(amqpPort, ProxyFactory(amqp.hostname, amqp.port or 5672), interface="127.0.0.1"),
        ]
        for port in ports:
            self.addCleanup(port.stopListening)
        yield node.waitFor(lambda e: e.get("message", "").startswith("node started"))
        response = yield treq.get(url, pool=pool)
        body = yield response.json()
        self.assertEqual(response.code, 200, body)
        self.assertTrue(body["dependencies"]["bus"]["ok"])
        node.terminate()
        yield node.ended
