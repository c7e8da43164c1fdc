"""
The dispatcher while PostgreSQL is unreachable: its connections go through
a TCP forwarder in front of the real server (C{realservices.PG_URL}); the
test cuts every forwarded connection and refuses new ones, publishes
messages, then lets connections through again. Nothing is dead-lettered,
nothing is acked before its transaction commits, and every message is
applied once the database is back.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.protocols.portforward import ProxyFactory, ProxyServer
from twisted.trial.unittest import TestCase

from synnefo_twisted.bus.memory import MemoryBus
from synnefo_twisted.bus.topology import eventQueues
from synnefo_twisted.db import openDatabase
from synnefo_twisted.db.postgres import PostgresDatabase
from synnefo_twisted.db.repositories import ServerRepository
from synnefo_twisted.dispatcher.service import DispatcherService, DispatcherSettings
from tests.integration import realservices
from tests.integration.db.test_postgres import SchemaMixin, fastBackoff, freePort, withSearchPath
from tests.logic.dispatchfixture import makeFixture, opMessage


class _Tracked(ProxyServer):
    def connectionMade(self) -> None:
        self.factory.live.add(self)  # type: ignore[attr-defined]
        super().connectionMade()

    def connectionLost(self, reason: Any) -> None:
        self.factory.live.discard(self)  # type: ignore[attr-defined]
        super().connectionLost(reason)


class _Forwarder(ProxyFactory):
    protocol = _Tracked

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self.live: set[_Tracked] = set()


class DatabaseOutageTests(SchemaMixin, TestCase):
    timeout = 120

    async def test_outage(self) -> None:
        """
        Messages published while the database is cut off wait and are applied after it returns; none is
        dead-lettered or lost.
        """
        schema = self.makeSchema()
        # the fixture through a direct connection
        direct = openDatabase(withSearchPath(realservices.PG_URL, schema), reactor, poolSize=2)
        await direct.startService()
        self.addCleanup(direct.stopService)
        fx = await makeFixture(direct)
        built = [await fx.server(jobId=1) for _ in range(5)]

        port = freePort()
        forwarder = _Forwarder("127.0.0.1", 5432)
        listening = reactor.listenTCP(port, forwarder, interface="127.0.0.1")
        url = withSearchPath(
            f"postgresql://synnefo_test@127.0.0.1:{port}/{realservices.PG_URL.rsplit('/', 1)[1]}", schema
        )
        db = PostgresDatabase(url, reactor, poolSize=4, backoff=fastBackoff)
        await db.startService()
        self.addCleanup(db.stopService)
        bus = MemoryBus(reactor)
        await bus.startService()
        self.addCleanup(bus.stopService)
        service = DispatcherService(reactor, db, bus, DispatcherSettings(retryBackoff=0.05, retryBackoffMax=0.2))
        await service.startService()
        self.addCleanup(service.stopService)
        key = eventQueues("snf-").opKey

        await listening.stopListening()
        for proxy in list(forwarder.live):
            proxy.transport.abortConnection()
        for b in built:
            body = opMessage(b.id, "OP_INSTANCE_CREATE", "success", 1, 5)
            await bus.publish("ganeti", key, json.dumps(body).encode())
        await deferLater(reactor, 1.0, lambda: None)
        self.assertEqual(service.counts["applied"], 0)
        self.assertEqual(service.counts["deadLettered"], 0)
        listening = reactor.listenTCP(port, forwarder, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        for _ in range(600):
            if service.counts["applied"] >= len(built):
                break
            await deferLater(reactor, 0.05, lambda: None)
        self.assertEqual((service.counts["applied"], service.counts["deadLettered"]), (len(built), 0))
        for b in built:
            server = await ServerRepository(direct).get(b.id)
            assert server is not None
            self.assertEqual((server.operstate, server.task), ("STARTED", None))
        self.assertEqual(await bus.messageCount("snf-events-op-dl"), 0)
        self.flushLoggedErrors()
