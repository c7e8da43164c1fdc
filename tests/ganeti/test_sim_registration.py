"""
The ganeti-sim plugin registers its cluster as a backend once its RAPI listens.
"""

from __future__ import annotations

from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from plugins.ganeti_sim import ganeti_sim
from synnefo_twisted.config import loadConfig
from synnefo_twisted.context import NodeContext
from synnefo_twisted.db.repositories import BackendRepository
from synnefo_twisted.health import Health
from synnefo_twisted.metrics import MetricsRegistry
from synnefo_twisted.testing import memoryDatabase


class RegistrationTests(TestCase):
    @inlineCallbacks
    def test_registersBackendOne(self):
        """
        On a fresh database the simulated cluster becomes backend 1 with its
        RAPI URL and write user; a restart on another port updates the row
        instead of adding one.
        """
        database = yield memoryDatabase(reactor)
        self.addCleanup(database.stopService)
        config = loadConfig(None, {"ganeti-sim": ganeti_sim.settings}, environ={}).replace(
            "ganeti-sim", "rapi_listen", "tcp:0:interface=127.0.0.1"
        )
        state = Path(self.mktemp()).resolve()
        urls = []
        for _ in range(2):
            node = NodeContext(
                reactor=reactor,
                settings=config.section("ganeti-sim"),
                metrics=MetricsRegistry(),
                stateDir=state,
                database=database,
            )
            service = ganeti_sim.makeService(node)
            yield service.startService()
            self.assertIsInstance(service.health(), Health)
            urls.append(service.simulated.rapiUrl)
            yield service.stopService()
        backends = yield BackendRepository(database).list()
        self.assertEqual(len(backends), 1)
        (backend,) = backends
        self.assertEqual(backend.id, 1)
        self.assertEqual(backend.clustername, "sim.ganeti.local")
        self.assertEqual((backend.rapi_url, backend.username, backend.password), (urls[-1], "synnefo", "synnefo-sim"))
        self.assertTrue(backend.simulated)
        self.assertFalse(backend.verify_tls)
