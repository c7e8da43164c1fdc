"""
The dispatcher while its RabbitMQ connection is cut: the bus connects
through a TCP forwarder in front of the real broker
(C{realservices.AMQP_URL}); the test aborts the connection while messages
are being applied and refuses new ones for a moment. The bus reconnects and
consumes again, the broker redelivers what was not acked, and redelivery
changes nothing: every server ends STARTED with its create commission
accepted once, and nothing is dead-lettered.
"""

from __future__ import annotations

import json
import uuid

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from synnefo_twisted.bus import openBus, parseAMQPURL
from synnefo_twisted.bus.topology import eventQueues
from synnefo_twisted.db import openDatabase
from synnefo_twisted.db.repositories import ServerRepository
from synnefo_twisted.dispatcher.service import DispatcherService, DispatcherSettings, dispatcherTopology
from tests.integration import realservices
from tests.integration.db.test_postgres import SchemaMixin, freePort, withSearchPath
from tests.integration.dispatcher.test_database_outage import _Forwarder
from tests.logic.dispatchfixture import makeFixture, opMessage


class BrokerOutageTests(SchemaMixin, TestCase):
    timeout = 120

    async def test_connectionCut(self) -> None:
        """
        Cutting the broker connection mid-stream loses nothing and applies nothing twice.
        """
        db = openDatabase(withSearchPath(realservices.PG_URL, self.makeSchema()), reactor, poolSize=4)
        await db.startService()
        self.addCleanup(db.stopService)
        fx = await makeFixture(db)
        built = [await fx.server(jobId=1) for _ in range(20)]

        address = parseAMQPURL(realservices.AMQP_URL)
        port = freePort()
        forwarder = _Forwarder(address.host, address.port)
        listening = reactor.listenTCP(port, forwarder, interface="127.0.0.1")
        self.addCleanup(lambda: listening.stopListening())
        vhost = address.vhost.replace("/", "%2F")
        bus = openBus(f"amqp://{address.username}:{address.password}@127.0.0.1:{port}/{vhost}", reactor)
        await bus.startService()
        self.addCleanup(bus.stopService)
        prefix = "o" + uuid.uuid4().hex[:8] + "-"
        names = eventQueues(prefix)
        service = DispatcherService(reactor, db, bus, DispatcherSettings(prefix=prefix, prefetch=8, concurrency=2))
        await bus.declare(dispatcherTopology(prefix))

        async def dropQueues() -> None:
            for family in ("op", "network", "progress", "cluster"):
                queue = getattr(names, family)
                await bus.deleteQueue(queue)
                await bus.deleteQueue(f"{queue}-dl")

        self.addCleanup(dropQueues)
        for b in built:
            for status, seconds in (("running", 1), ("success", 2)):
                body = opMessage(b.id, "OP_INSTANCE_CREATE", status, 1, seconds)
                body["instance"] = f"{prefix}{b.id}"
                await bus.publish("ganeti", names.opKey, json.dumps(body).encode())
        # Everything is queued before the dispatcher starts, so the cut comes mid-stream.
        await service.startService()
        self.addCleanup(service.stopService)
        for _ in range(400):
            if service.counts["applied"] >= 4:
                break
            await deferLater(reactor, 0.005, lambda: None)
        atCut = service.counts["applied"]
        self.assertLess(atCut, 40, "the cut must come while messages are still being applied")
        await listening.stopListening()
        for proxy in list(forwarder.live):
            proxy.transport.abortConnection()
        await deferLater(reactor, 0.5, lambda: None)
        listening = reactor.listenTCP(port, forwarder, interface="127.0.0.1")

        servers = ServerRepository(db)
        for _ in range(600):
            states = [await servers.get(b.id) for b in built]
            if all(s is not None and s.operstate == "STARTED" and s.task is None for s in states):
                break
            await deferLater(reactor, 0.05, lambda: None)
        self.assertEqual({(s.operstate, s.task) for s in states if s}, {("STARTED", None)})
        self.assertEqual(await fx.holding("cyclades.vm"), (20, 0))
        self.assertEqual(service.counts["deadLettered"], 0)
        self.assertGreaterEqual(service.counts["applied"] + service.counts["ignored"], 40)
        self.assertEqual(await bus.messageCount(f"{names.op}-dl"), 0)
        self.flushLoggedErrors()
