"""
Tests for L{synnefo_twisted.node.NodeService}.
"""

from __future__ import annotations

import json

from treq.testing import StubTreq
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from synnefo_twisted.config import loadConfig
from synnefo_twisted.node import NodeService
from synnefo_twisted.pluginloader import discoverPlugins, pluginSections, selectPlugins
from tests.fixtures import goodplugins
from tests.fixtures.pluginsupport import EVENTS, ExamplePlugin


class NodeServiceTests(SynchronousTestCase):
    def setUp(self) -> None:
        del EVENTS[:]
        self.available = discoverPlugins(goodplugins)
        self.config = loadConfig(None, pluginSections(self.available), environ={}).replace(
            "node", "state_dir", self.mktemp()
        )
        self.reactor = MemoryReactorClock()

    def node(self, plugins, **kw) -> NodeService:
        return NodeService(self.reactor, self.config, plugins, **kw)

    def test_startOrderAndContexts(self) -> None:
        """
        The admin listener starts first, then the plugins in start order; each
        plugin gets its own section and no resource it did not ask for.
        """
        plugins = selectPlugins(self.available, ["apiserver", "logic"])
        node = self.node(plugins)
        self.successResultOf(node.startService())
        self.assertEqual(EVENTS, [("start", "beta"), ("start", "alpha")])
        self.assertEqual(len(self.reactor.tcpServers), 1)
        self.assertEqual(self.reactor.tcpServers[0][0], 9090)
        alpha = self.available["alpha"].made[-1].context
        self.assertEqual(dict(alpha.settings), {"listen": "tcp:0", "depth": 3})
        self.assertIsNone(alpha.database)
        self.assertIsNone(alpha.bus)
        self.assertEqual(alpha.plugins, frozenset({"alpha", "beta"}))
        self.assertTrue(alpha.stateDir.is_dir())
        beta = self.available["beta"].made[-1].context
        self.assertEqual(dict(beta.settings), {})
        self.successResultOf(node.stopService())
        self.assertEqual(EVENTS[2:], [("stop", "alpha"), ("stop", "beta")])

    def test_pluginStartFailureIsFatal(self) -> None:
        """
        A plugin that fails to start stops the node through C{onFatal} with
        status 1 and a critical log event naming the plugin.
        """
        codes: list[int] = []
        bad = ExamplePlugin("bad", fail=True, startOrder=30)
        node = self.node([self.available["beta"], bad, self.available["alpha"]], onFatal=codes.append)
        events: list[dict] = []
        from twisted.logger import globalLogPublisher

        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.successResultOf(node.startService())
        self.assertEqual(codes, [1])
        critical = [e for e in events if e.get("log_level") is not None and e["log_level"].name == "critical"]
        self.assertEqual(len(critical), 1)
        self.assertEqual(critical[0]["child"], "bad")
        self.assertEqual(EVENTS, [("start", "beta"), ("start", "bad")])
        self.flushLoggedErrors(RuntimeError)

    def test_healthz(self) -> None:
        """
        /healthz is 200 with every plugin running, and lists roles and plugins.
        """
        node = self.node(selectPlugins(self.available, ["apiserver"]))
        self.successResultOf(node.startService())
        client = StubTreq(node.admin.app.resource())
        response = self.successResultOf(client.get("http://admin/healthz"))
        self.assertEqual(response.code, 200)
        body = json.loads(self.successResultOf(response.content()))
        self.assertEqual(body["status"], "ok")
        self.assertEqual(body["plugins"]["alpha"]["state"], "running")
        self.assertEqual(body["roles"], ["all"])

    def test_healthzWhileStarting(self) -> None:
        """
        /healthz is 503 while a plugin has not started yet, naming its state.
        """
        from twisted.internet.defer import Deferred

        from tests.fixtures.pluginsupport import RecordingService

        hold: Deferred[None] = Deferred()

        class Slow(ExamplePlugin):
            def makeService(self, node):
                return RecordingService(self.name, hold=hold)

        node = self.node([Slow("slow")])
        d = node.startService()
        client = StubTreq(node.admin.app.resource())
        response = self.successResultOf(client.get("http://admin/healthz"))
        self.assertEqual(response.code, 503)
        body = json.loads(self.successResultOf(response.content()))
        self.assertEqual(body["plugins"]["slow"], {"ok": False, "state": "starting", "detail": ""})
        hold.callback(None)
        self.successResultOf(d)
        response = self.successResultOf(client.get("http://admin/healthz"))
        self.assertEqual(response.code, 200)

    def test_metrics(self) -> None:
        """
        /metrics is Prometheus text with one up-gauge per plugin.
        """
        node = self.node(selectPlugins(self.available, ["apiserver"]))
        self.successResultOf(node.startService())
        client = StubTreq(node.admin.app.resource())
        response = self.successResultOf(client.get("http://admin/metrics"))
        self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"text/plain; version=0.0.4; charset=utf-8"])
        text = self.successResultOf(response.text())
        self.assertIn('synnefo_plugin_up{plugin="alpha"} 1\n', text)
        self.assertIn("# TYPE synnefo_plugin_up gauge\n", text)
