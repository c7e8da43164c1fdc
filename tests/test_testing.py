"""
The public doubles of L{synnefo_twisted.testing} provide their interfaces.
"""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from synnefo_twisted import testing
from synnefo_twisted.db.repositories import BackendRepository
from synnefo_twisted.interfaces import IConsoleBroker, IDatabase, IGanetiClient, IMessageBus


class TestingTests(TestCase):
    @inlineCallbacks
    def test_memoryDatabase(self):
        """
        C{memoryDatabase} is a started, migrated L{IDatabase} with working repositories.
        """
        database = yield testing.memoryDatabase(reactor)
        self.addCleanup(database.stopService)
        self.assertTrue(verifyObject(IDatabase, database))
        backend = yield BackendRepository(database).add("c1", "https://127.0.0.1:5080")
        self.assertEqual(backend.clustername, "c1")

    def test_doubles(self) -> None:
        """
        The bus, the simulated cluster's client and the console broker provide their interfaces.
        """
        clock = Clock()
        self.assertTrue(verifyObject(IMessageBus, testing.MemoryBus(clock)))
        self.assertTrue(verifyObject(IGanetiClient, testing.InMemoryCluster.create(clock).client))
        self.assertTrue(verifyObject(IConsoleBroker, testing.FakeConsoleBroker()))
