"""
Retrying dead-lettered messages, on the in-process bus (and, through the
same mixin, on RabbitMQ in L{tests.integration.bus.test_rabbitmq}).
"""

from __future__ import annotations

import uuid
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.trial.unittest import SynchronousTestCase, TestCase

from synnefo_twisted.bus.deadletters import RetryReport, RetryTarget, isZombie, retryDeadLetters, retryTarget
from synnefo_twisted.bus.memory import MemoryBus
from synnefo_twisted.bus.topology import Binding, Exchange, Queue, Topology
from tests.bus.contract import Collector, realReactor


class RetryTargetTests(SynchronousTestCase):
    """
    The origin of a dead letter comes from x-death or our own headers.
    """

    def test_xDeath(self) -> None:
        """
        The first x-death record gives the exchange and the first routing key.
        """
        headers = {"x-death": [{"exchange": "ganeti", "routing-keys": ["ganeti.snf.event.op"], "queue": "q"}]}
        self.assertEqual(retryTarget(headers), RetryTarget("ganeti", "ganeti.snf.event.op"))

    def test_ourHeaders(self) -> None:
        """
        Without x-death, the x-snf-origin-* headers give it.
        """
        headers = {"x-snf-origin-exchange": "ganeti", "x-snf-origin-routing-key": "k", "x-snf-reason": "bad"}
        self.assertEqual(retryTarget(headers), RetryTarget("ganeti", "k"))

    def test_none(self) -> None:
        """
        Malformed or missing origins give None.
        """
        cases: list[dict[str, Any]] = [
            {},
            {"x-death": []},
            {"x-death": [{"exchange": "x"}]},
            {"x-snf-origin-exchange": "x"},
        ]
        for headers in cases:
            self.assertIsNone(retryTarget(headers))

    def test_zombie(self) -> None:
        """
        A message already retried carries from-dead-letter.
        """
        self.assertTrue(isZombie({"from-dead-letter": True}))
        self.assertFalse(isZombie({}))


class RetryMixin:
    reactor: Any
    timeout = 30

    def makeBus(self) -> Deferred[Any]:
        raise NotImplementedError

    @inlineCallbacks
    def test_retry(self) -> Any:
        """
        Rejected and deadLetter()ed messages go back to their queue marked
        from-dead-letter; a zombie is dropped, or kept with keepZombies; a
        message without origin is dropped.
        """
        bus = yield self.makeBus()
        tag = uuid.uuid4().hex[:8]
        x, dlx, q = f"t-{tag}-x", f"t-{tag}-dlx", f"t-{tag}-q"
        yield bus.declare(
            Topology(
                [Exchange(x), Exchange(dlx)],
                [Queue(q, deadLetterExchange=dlx), Queue(q + "-dl")],
                [Binding(q, x, "#"), Binding(q + "-dl", dlx, "#")],
            )
        )
        try:
            got = Collector(self.reactor)
            consumer = yield bus.consume(q, got)
            yield bus.publish(x, "a", b"rejected")
            yield bus.publish(x, "b", b"dead-lettered")
            (yield got.next()).reject()
            yield (yield got.next()).deadLetter("bad")
            yield bus.publish(
                dlx,
                "c",
                b"zombie",
                {"from-dead-letter": True, "x-snf-origin-exchange": x, "x-snf-origin-routing-key": "c"},
            )
            yield bus.publish(dlx, "d", b"orphan")
            report = yield retryDeadLetters(bus, q + "-dl", keepZombies=True)
            self.assertEqual(report, RetryReport(retried=2, zombiesDropped=0, zombiesKept=1, noOrigin=1))  # type: ignore[attr-defined]
            back = {}
            for _ in range(2):
                m = yield got.next()
                back[m.body] = (m.routingKey, m.headers["from-dead-letter"])
                m.ack()
            self.assertEqual(back, {b"rejected": ("a", True), b"dead-lettered": ("b", True)})  # type: ignore[attr-defined]
            left = yield bus.messageCount(q + "-dl")
            self.assertEqual(left, 1)  # type: ignore[attr-defined]
            report = yield retryDeadLetters(bus, q + "-dl")
            self.assertEqual(report, RetryReport(zombiesDropped=1))  # type: ignore[attr-defined]
            left = yield bus.messageCount(q + "-dl")
            self.assertEqual(left, 0)  # type: ignore[attr-defined]
            report = yield retryDeadLetters(bus, q + "-dl")
            self.assertEqual(report, RetryReport())  # type: ignore[attr-defined]
            yield consumer.stop()
        finally:
            for name in (q, q + "-dl"):
                yield bus.deleteQueue(name)
            for name in (x, dlx):
                yield bus.deleteExchange(name)
            yield bus.stopService()

    @inlineCallbacks
    def test_retryFails(self) -> Any:
        """
        A message whose origin exchange is gone stays in the dead-letter
        queue, counted as failed.
        """
        bus = yield self.makeBus()
        tag = uuid.uuid4().hex[:8]
        dl = f"t-{tag}-dl"
        yield bus.declare(Topology(queues=[Queue(dl)]))
        try:
            yield bus.publish("", dl, b"m", {"x-snf-origin-exchange": f"t-{tag}-gone", "x-snf-origin-routing-key": "k"})
            report = yield retryDeadLetters(bus, dl)
            self.assertEqual(report, RetryReport(failed=1))  # type: ignore[attr-defined]
            left = yield bus.messageCount(dl)
            self.assertEqual(left, 1)  # type: ignore[attr-defined]
            self.flushLoggedErrors()  # type: ignore[attr-defined]
        finally:
            yield bus.deleteQueue(dl)
            yield bus.stopService()


class MemoryRetryTests(RetryMixin, TestCase):
    """
    Retrying dead letters on the in-process bus.
    """

    reactor = realReactor()

    def makeBus(self) -> Deferred[Any]:
        bus = MemoryBus(self.reactor)
        return bus.startService().addCallback(lambda _: bus)
