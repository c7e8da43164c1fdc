"""
A node whose plugins require the database, the bus and Ganeti builds the
embedded ones (SQLite, the in-process bus, the backend registry), starts
and migrates them before the plugins, and reports them on /healthz.
"""

from __future__ import annotations

import json
from pathlib import Path

from treq.testing import StubTreq
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from synnefo_twisted.config import loadConfig
from synnefo_twisted.db.migrations import appliedMigrations
from synnefo_twisted.node import NodeService
from tests.fixtures.pluginsupport import EVENTS, ExamplePlugin


class EmbeddedNodeTests(TestCase):
    @inlineCallbacks
    def test_embeddedResources(self):
        """
        The database is started and migrated, the bus started, then the
        plugin, whose context carries all three; /healthz shows them up.
        """
        del EVENTS[:]
        state = Path(self.mktemp()).resolve()
        config = loadConfig(None, {}, environ={})
        config = config.replace("node", "state_dir", str(state))
        config = config.replace("node", "admin_listen", "tcp:0:interface=127.0.0.1")
        config = config.replace("database", "url", f"sqlite:///{state}/snf.db")
        needy = ExamplePlugin("needy", requires=frozenset({"database", "bus", "ganeti"}))
        node = NodeService(reactor, config, [needy])
        self.assertEqual([c.healthName for c in node.childStates()], ["admin", "database", "bus", "needy"])
        yield node.startService()
        self.addCleanup(node.stopService)
        context = needy.made[-1].context
        self.assertIs(context.database, node.database)
        self.assertIs(context.bus, node.bus)
        self.assertIs(context.backends, node.backends)
        applied = yield appliedMigrations(node.database)
        self.assertTrue(applied)
        self.assertTrue(all(c.state == "running" for c in node.childStates()))
        response = yield StubTreq(node.admin.app.resource()).get("http://admin/healthz")
        body = json.loads((yield response.content()))
        self.assertEqual(response.code, 200, body)
        self.assertEqual(sorted(body["dependencies"]), ["bus", "database"])
        self.assertTrue(body["dependencies"]["database"]["ok"])
