"""
A node stopped while its database is still unreachable stops cleanly.
"""

from __future__ import annotations

from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from synnefo_twisted.config import loadConfig
from synnefo_twisted.node import NodeService
from tests.fixtures.pluginsupport import ExamplePlugin
from tests.integration.test_node_realservices import freePort


class StopWhileConnectingTests(TestCase):
    @inlineCallbacks
    def test_stopWhileRetrying(self):
        """
        Stopping a node whose PostgreSQL never answered cancels the start,
        stops the retries, logs no unhandled error and leaves no timer.
        """
        state = Path(self.mktemp()).resolve()
        config = loadConfig(None, {}, environ={})
        config = config.replace("node", "state_dir", str(state))
        config = config.replace("node", "admin_listen", "tcp:0:interface=127.0.0.1")
        config = config.replace("database", "url", f"postgresql://nobody@127.0.0.1:{freePort()}/nothing")
        needy = ExamplePlugin("needy", requires=frozenset({"database"}))
        node = NodeService(reactor, config, [needy])
        started = node.startService()
        yield deferLater(reactor, 1.5, lambda: None)
        self.assertFalse(started.called)
        self.assertEqual([c.state for c in node.childStates()], ["running", "starting", "pending"])
        yield node.stopService()
        self.assertTrue(started.called)
        self.assertEqual(needy.made[-1].running, 0)
        yield deferLater(reactor, 0.5, lambda: None)
