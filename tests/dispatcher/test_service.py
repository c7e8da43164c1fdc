"""
Tests for L{synnefo_twisted.dispatcher.service} on the in-process bus and a
L{Clock}, with a scripted applier standing in for the database (the real
applier is exercised in L{tests.dispatcher.test_dispatch_db}): ordering per
server, bounded concurrency, dead letters with a reason, retries with
backoff, and a clean stop.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from twisted.application.service import IService
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from synnefo_twisted.bus.memory import MemoryBus
from synnefo_twisted.db import DatabaseUnavailableError
from synnefo_twisted.dispatcher.service import DispatcherService, DispatcherSettings, dispatcherTopology
from synnefo_twisted.interfaces import IHealthReporter
from synnefo_twisted.logic.dispatchapply import ApplyOutcome, MalformedMessage

OP_KEY = "ganeti.snf.event.op"


class ScriptedApplier:
    """
    Records each call; answers from C{script} (an exception to raise, or
    None for a Deferred the test fires through C{pending}).
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, Mapping[str, Any]]] = []
        self.pending: list[Deferred[ApplyOutcome]] = []
        self.script: list[Exception | None] = []
        self.immediate = True

    def __call__(self, db: Any, kind: str, body: Mapping[str, Any]) -> Deferred[ApplyOutcome]:
        self.calls.append((kind, body))
        if self.script:
            step = self.script.pop(0)
            if step is not None:
                return Deferred.fromCoroutine(_raise(step))
        if self.immediate:
            return succeed(ApplyOutcome(True, "applied", kind))
        d: Deferred[ApplyOutcome] = Deferred()
        self.pending.append(d)
        return d


async def _raise(e: Exception) -> ApplyOutcome:
    raise e


def op(instance: str, job: int) -> bytes:
    return json.dumps({"type": "ganeti-op-status", "instance": instance, "jobId": job}).encode()


class DispatcherServiceTests(TestCase):
    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        self.clock = Clock()
        self.bus = MemoryBus(self.clock)
        self.applier = ScriptedApplier()
        self.settings = DispatcherSettings(concurrency=2, maxRetries=2, retryBackoff=1.0, retryBackoffMax=1.5)
        self.service = DispatcherService(self.clock, None, self.bus, self.settings, applier=self.applier)
        d = self.bus.startService()
        d.addCallback(lambda _: self.service.startService())
        self.flush()
        return d

    def tearDown(self) -> None:
        if self.service.running:
            d = self.service.stopService()
            self.flush()
            self.successResultOf(d)
        self.bus.stopService()
        self.flush()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def flush(self) -> None:
        for _ in range(20):
            self.clock.advance(0)

    def publish(self, body: bytes, key: str = OP_KEY) -> None:
        self.successResultOf(self.bus.publish("ganeti", key, body))
        self.flush()

    def count(self, queue: str) -> int:
        return int(self.successResultOf(self.bus.messageCount(queue)))

    def deadLetters(self, queue: str = "snf-events-op-dl") -> list[Any]:
        got: list[Any] = []

        def take(message: Any) -> None:
            got.append(message)
            message.ack()

        consumer = self.successResultOf(self.bus.consume(queue, take, 0))
        self.flush()
        self.successResultOf(consumer.stop())
        return got

    def test_interfaces(self) -> None:
        """
        The service provides IService and IHealthReporter, and reports itself healthy once started.
        """
        self.assertTrue(verifyObject(IService, self.service))
        self.assertTrue(verifyObject(IHealthReporter, self.service))
        self.assertTrue(self.service.health().ok)

    def test_topology(self) -> None:
        """
        It declares spec §2.5's four queues bound to ganeti and their -dl twins bound to ganeti-dl.
        """
        topology = dispatcherTopology("snf-")
        names = {q.name for q in topology.queues}
        self.assertEqual(
            names,
            {f"snf-events-{k}{dl}" for k in ("op", "network", "progress", "cluster") for dl in ("", "-dl")},
        )
        for name in names:
            self.assertEqual(self.count(name), 0)
        self.assertEqual(topology.queue("snf-events-op").deadLetterExchange, "ganeti-dl")  # type: ignore[union-attr]

    def test_appliedAndAcked(self) -> None:
        """
        A message is handed to the applier with its queue family and acked once the application fired.
        """
        self.applier.immediate = False
        self.publish(op("snf-1", 1))
        self.assertEqual(self.applier.calls, [("op", {"type": "ganeti-op-status", "instance": "snf-1", "jobId": 1})])
        self.assertIn("1 messages in progress", self.service.health().detail)
        self.applier.pending.pop().callback(ApplyOutcome(True, "applied"))
        self.flush()
        self.assertEqual(self.service.counts["applied"], 1)
        self.assertEqual(self.count("snf-events-op"), 0)
        self.assertEqual(self.deadLetters(), [])

    def test_notJSONDeadLettered(self) -> None:
        """
        A body that is not JSON is dead-lettered with a reason header, never applied.
        """
        self.publish(b"{not json")
        [dead] = self.deadLetters()
        self.assertEqual(dead.body, b"{not json")
        self.assertIn("malformed: not JSON", dead.headers["x-snf-reason"])
        self.assertEqual(dead.headers["x-snf-origin-routing-key"], OP_KEY)
        self.assertEqual(self.applier.calls, [])

    def test_malformedDeadLettered(self) -> None:
        """
        A message the state machine finds malformed is dead-lettered at once (no retry) with its reason.
        """
        self.applier.script = [MalformedMessage("missing key 'jobId'")]
        self.publish(op("snf-1", 1))
        [dead] = self.deadLetters()
        self.assertEqual(dead.headers["x-snf-reason"], "malformed: missing key 'jobId'")
        self.assertEqual(len(self.applier.calls), 1)

    def test_retriedWithBackoff(self) -> None:
        """
        A processing error is retried after the backoff, and the message is acked once it succeeds.
        """
        self.applier.script = [RuntimeError("db down"), RuntimeError("db down")]
        self.publish(op("snf-1", 1))
        self.assertEqual(len(self.applier.calls), 1)
        self.clock.advance(0.9)
        self.assertEqual(len(self.applier.calls), 1)
        self.clock.advance(0.1)
        self.flush()
        self.assertEqual(len(self.applier.calls), 2)
        self.clock.advance(1.5)
        self.flush()
        self.assertEqual(len(self.applier.calls), 3)
        self.assertEqual((self.service.counts["applied"], self.service.counts["retried"]), (1, 2))
        self.assertEqual(self.deadLetters(), [])

    def test_deadLetteredAfterRetries(self) -> None:
        """
        After max_retries failed retries the message is dead-lettered with the error as reason.
        """
        self.applier.script = [RuntimeError("boom")] * 3
        self.publish(op("snf-1", 1))
        self.clock.advance(1.0)
        self.flush()
        self.clock.advance(1.5)
        self.flush()
        [dead] = self.deadLetters()
        self.assertEqual(dead.headers["x-snf-reason"], "failed after 3 attempts: RuntimeError: boom")
        self.assertEqual(len(self.applier.calls), 3)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_orderPerServer(self) -> None:
        """
        A server's messages are applied one at a time in delivery order, a retry keeping its place; another
        server's messages go on meanwhile.
        """
        self.applier.immediate = False
        self.publish(op("snf-1", 1))
        self.publish(op("snf-1", 2))
        self.publish(op("snf-2", 3))
        self.assertEqual([b["jobId"] for _, b in self.applier.calls], [1, 3])
        self.applier.pending.pop(0).errback(RuntimeError("transient"))
        self.flush()
        self.assertEqual([b["jobId"] for _, b in self.applier.calls], [1, 3])
        self.clock.advance(1.0)
        self.flush()
        self.assertEqual([b["jobId"] for _, b in self.applier.calls], [1, 3, 1])
        self.applier.pending.pop(-1).callback(ApplyOutcome(True, "applied"))
        self.flush()
        self.assertEqual([b["jobId"] for _, b in self.applier.calls], [1, 3, 1, 2])
        for d in self.applier.pending:
            d.callback(ApplyOutcome(True, "applied"))
        self.flush()
        self.assertEqual(self.service.counts["applied"], 3)

    def test_concurrencyBounded(self) -> None:
        """
        Messages of different servers run concurrently, at most `concurrency` at once.
        """
        self.applier.immediate = False
        for i in range(5):
            self.publish(op(f"snf-{i}", i))
        self.assertEqual(len(self.applier.calls), 2)
        self.applier.pending.pop(0).callback(ApplyOutcome(True, "applied"))
        self.flush()
        self.assertEqual(len(self.applier.calls), 3)
        while self.applier.pending:
            self.applier.pending.pop(0).callback(ApplyOutcome(False, "stale"))
            self.flush()
        self.assertEqual((self.service.counts["applied"], self.service.counts["ignored"]), (1, 4))

    def test_stopDuringBackoff(self) -> None:
        """
        Stopping cancels the retry timers and gives the waiting messages back to the queue, unacked.
        """
        self.applier.script = [RuntimeError("transient")]
        self.publish(op("snf-1", 1))
        self.publish(op("snf-1", 2))
        d = self.service.stopService()
        self.flush()
        self.successResultOf(d)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.count("snf-events-op"), 2)
        self.assertEqual(len(self.applier.calls), 1)

    def test_databaseOutageWaitsWithoutLimit(self) -> None:
        """
        While the database is unavailable the message waits (backoff capped at retry_backoff_max) however many
        times, without using up its retries, and is applied once the database is back.
        """
        self.applier.script = [DatabaseUnavailableError("down")] * 6 + [RuntimeError("once")]
        self.publish(op("snf-1", 1))
        for _ in range(6):
            self.clock.advance(1.5)
            self.flush()
        self.assertEqual(len(self.applier.calls), 7)
        self.clock.advance(1.0)
        self.flush()
        self.assertEqual(len(self.applier.calls), 8)
        self.assertEqual(self.service.counts["applied"], 1)
        self.assertEqual(self.deadLetters(), [])


class _Pooled:
    """
    Stands for a database with a connection pool (the scripted applier never uses it).
    """

    def __init__(self, poolSize: int) -> None:
        self.poolSize = poolSize


class PoolSizeTests(TestCase):
    """
    A pool smaller than the concurrency would silently bound it: the service says so when it starts.
    """

    def warnings(self, poolSize: int) -> list[str]:
        clock = Clock()
        bus = MemoryBus(clock)
        observer = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        service = DispatcherService(
            clock, _Pooled(poolSize), bus, DispatcherSettings(concurrency=8), applier=ScriptedApplier()
        )
        self.successResultOf(bus.startService())
        started = service.startService()
        clock.advance(0)
        self.successResultOf(started)
        self.successResultOf(service.stopService())
        self.successResultOf(bus.stopService())
        return [formatEvent(e) for e in observer if e.get("log_level") == LogLevel.warn]

    def test_smallPoolWarned(self) -> None:
        """
        pool_size 4 under concurrency 8: a warning naming both.
        """
        [warning] = self.warnings(4)
        self.assertIn("pool_size 4 is below [dispatcher] concurrency 8", warning)

    def test_largeEnoughPool(self) -> None:
        """
        pool_size equal to the concurrency: no warning.
        """
        self.assertEqual(self.warnings(8), [])
