"""
The dispatcher service with the real applier: messages published on the
bus end in the database. L{DispatcherDatabaseMixin} runs here on SQLite
and the in-process bus, and in
L{tests.integration.dispatcher.test_dispatcher_real} on PostgreSQL and
RabbitMQ.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from twisted.internet import reactor as _globalReactor  # noqa: N812  (real threads and sockets)
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from synnefo_twisted.bus.memory import MemoryBus
from synnefo_twisted.bus.topology import eventQueues
from synnefo_twisted.db import openDatabase
from synnefo_twisted.db.repositories import ServerRepository
from synnefo_twisted.dispatcher.service import DispatcherService, DispatcherSettings
from tests.logic.dispatchfixture import DispatchFixture, makeFixture, opMessage

if TYPE_CHECKING:
    _Base = TestCase
else:
    _Base = object


class DispatcherDatabaseMixin(_Base):
    timeout = 120
    reactor: Any = _globalReactor

    def makeDatabase(self) -> Any:
        raise NotImplementedError()

    def makeBus(self) -> Any:
        raise NotImplementedError()

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        return Deferred.fromCoroutine(self._setUp())

    async def _setUp(self) -> None:
        self.db = self.makeDatabase()
        await self.db.startService()
        self.addCleanup(self.db.stopService)
        self.fx: DispatchFixture = await makeFixture(self.db)
        self.bus = self.makeBus()
        await self.bus.startService()
        self.addCleanup(self.bus.stopService)
        # A prefix of its own: a shared broker keeps queues between tests.
        self.prefix = "t" + uuid.uuid4().hex[:10] + "-"
        self.names = eventQueues(self.prefix)
        self.service = DispatcherService(
            self.reactor, self.db, self.bus, DispatcherSettings(prefix=self.prefix, concurrency=8, retryBackoff=0.05)
        )
        await self.service.startService()
        self.addCleanup(self._cleanQueues)
        self.addCleanup(self._stop)

    async def _stop(self) -> None:
        if self.service.running:
            await self.service.stopService()

    async def _cleanQueues(self) -> None:
        for name in (self.names.op, self.names.network, self.names.progress, self.names.cluster):
            for queue in (name, f"{name}-dl"):
                await self.bus.deleteQueue(queue)

    async def publish(self, body: Any) -> None:
        if isinstance(body, dict) and body["instance"].startswith("snf-"):
            # the instance names of this test's prefix
            body = {**body, "instance": self.prefix + body["instance"][len("snf-") :]}
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        await self.bus.publish("ganeti", self.names.opKey, data)

    async def handled(self, total: int) -> None:
        for _ in range(1000):
            counts = self.service.counts
            if counts["applied"] + counts["ignored"] + counts["deadLettered"] >= total:
                return
            await deferLater(self.reactor, 0.02, lambda: None)
        raise AssertionError(f"only {self.service.counts} of {total} handled")

    async def test_lifecycle(self) -> None:
        """
        The messages of twenty servers' create, shutdown and startup jobs,
        one of them repeated, end in the database: every server STARTED,
        its create commission accepted, the repeat ignored.
        """
        built = [await self.fx.server(jobId=1) for _ in range(20)]
        total = 0
        for b in built:
            for body in (
                opMessage(b.id, "OP_INSTANCE_CREATE", "running", 1, 1),
                opMessage(b.id, "OP_INSTANCE_CREATE", "success", 1, 2),
                opMessage(b.id, "OP_INSTANCE_SHUTDOWN", "success", 2, 3),
                opMessage(b.id, "OP_INSTANCE_STARTUP", "success", 3, 4),
            ):
                await self.publish(body)
                total += 1
        await self.publish(opMessage(built[0].id, "OP_INSTANCE_STARTUP", "success", 3, 4))
        await self.handled(total + 1)
        servers = [await ServerRepository(self.db).get(b.id) for b in built]
        self.assertEqual({(s.operstate, s.task, s.backendjobid) for s in servers if s}, {("STARTED", None, 3)})
        self.assertEqual(await self.fx.holding("cyclades.vm"), (20, 0))
        self.assertEqual(self.service.counts["applied"], total)
        self.assertEqual(self.service.counts["ignored"], 1)

    async def test_malformedToDeadLetterQueue(self) -> None:
        """
        A message that is not JSON and one with an unknown status land in the
        -dl queue with their reasons; the good message beside them is applied.
        """
        b = await self.fx.server(jobId=1)
        await self.publish(b"\xff not json")
        await self.publish(opMessage(b.id, "OP_INSTANCE_CREATE", "exploded", 1, 1))
        await self.publish(opMessage(b.id, "OP_INSTANCE_CREATE", "success", 1, 2))
        await self.handled(3)
        reasons: list[str] = []
        done: Deferred[None] = Deferred()

        def take(message: Any) -> None:
            reasons.append(message.headers["x-snf-reason"])
            message.ack()
            if len(reasons) == 2 and not done.called:
                done.callback(None)

        consumer = await self.bus.consume(f"{self.names.op}-dl", take, 10)
        await done
        await consumer.stop()
        self.assertEqual(len(reasons), 2)
        self.assertTrue(reasons[0].startswith("malformed: not JSON"), reasons)
        self.assertEqual(reasons[1], "malformed: unknown job status 'exploded'")
        server = await ServerRepository(self.db).get(b.id)
        assert server is not None
        self.assertEqual(server.operstate, "STARTED")


class SQLiteMemoryDispatcherTests(DispatcherDatabaseMixin, TestCase):
    """
    On SQLite and the in-process bus.
    """

    def makeDatabase(self) -> Any:
        return openDatabase("sqlite:///:memory:", self.reactor)

    def makeBus(self) -> Any:
        return MemoryBus(self.reactor)
