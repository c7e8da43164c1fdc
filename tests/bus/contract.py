"""
The L{IMessageBus} contract, as a mixin run against every implementation
(the in-process bus in L{tests.bus.test_memory}, RabbitMQ in
L{tests.integration.bus.test_rabbitmq}).

A concrete test case provides C{makeBus()} returning a Deferred that fires
with a started bus, which also has the management methods C{messageCount},
C{deleteQueue} and C{deleteExchange}; the tests run on the real reactor.
"""

from __future__ import annotations

import uuid
from typing import Any

from twisted.application.service import IService
from twisted.internet import defer
from twisted.internet.defer import Deferred, DeferredQueue, inlineCallbacks
from twisted.internet.task import deferLater
from zope.interface.verify import verifyObject

from synnefo_twisted.bus.errors import AlreadySettled, DeclareFailed, PublishFailed
from synnefo_twisted.bus.topology import Binding, Exchange, Queue, Topology
from synnefo_twisted.interfaces import IConsumer, IHealthReporter, IIncomingMessage, IMessageBus
from synnefo_twisted.metrics import MetricsRegistry

RECEIVE_TIMEOUT = 10.0


def realReactor() -> Any:
    """
    The reactor trial runs (contract tests talk to real peers; production
    code gets its reactor injected).
    """
    from twisted.internet import reactor

    return reactor


class Collector:
    """
    A handler that queues the messages it gets (settling them is the
    test's business).
    """

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.queue: DeferredQueue[Any] = DeferredQueue()
        self.received: list[Any] = []

    def __call__(self, message: Any) -> None:
        self.received.append(message)
        self.queue.put(message)

    def next(self, timeout: float = RECEIVE_TIMEOUT) -> Deferred[Any]:
        d = self.queue.get()
        call = self.reactor.callLater(timeout, d.cancel)

        def done(result: Any) -> Any:
            if call.active():
                call.cancel()
            return result

        return d.addBoth(done)


class BusContractMixin:
    """
    The behaviour every L{IMessageBus} shares.
    """

    reactor: Any
    timeout = 60

    def makeBus(self, metrics: MetricsRegistry | None = None) -> Deferred[Any]:
        raise NotImplementedError

    def names(self) -> tuple[str, str, str]:
        """
        Unique names for an exchange, a dead-letter exchange and a queue.
        """
        tag = uuid.uuid4().hex[:10]
        return f"t-{tag}-x", f"t-{tag}-dlx", f"t-{tag}-q"

    @inlineCallbacks
    def startBus(self, metrics: MetricsRegistry | None = None) -> Any:
        bus = yield self.makeBus(metrics)
        self._created: list[tuple[str, str]] = []
        self.addCleanup(self._cleanBus, bus)  # type: ignore[attr-defined]
        return bus

    @inlineCallbacks
    def _cleanBus(self, bus: Any) -> Any:
        for consumer in getattr(self, "_consumers", []):
            yield consumer.stop()
        for kind, name in reversed(self._created):
            if kind == "queue":
                yield bus.deleteQueue(name)
            else:
                yield bus.deleteExchange(name)
        yield bus.stopService()

    @inlineCallbacks
    def declare(self, bus: Any, topology: Topology) -> Any:
        for e in topology.exchanges:
            self._created.append(("exchange", e.name))
        for q in topology.queues:
            self._created.append(("queue", q.name))
        yield bus.declare(topology)

    @inlineCallbacks
    def consume(self, bus: Any, queue: str, handler: Any, prefetch: int = 100) -> Any:
        consumer = yield bus.consume(queue, handler, prefetch)
        if not hasattr(self, "_consumers"):
            self._consumers: list[Any] = []
        self._consumers.append(consumer)
        return consumer

    @inlineCallbacks
    def simpleQueue(self, bus: Any, key: str = "#", deadLetters: bool = True) -> Any:
        """
        Declare a topic exchange, a queue bound to it with C{key}, and
        (optionally) a dead-letter exchange with a catch-all queue.
        """
        x, dlx, q = self.names()
        topology = Topology(
            [Exchange(x, "topic", True)] + ([Exchange(dlx, "topic", True)] if deadLetters else []),
            [Queue(q, durable=True, deadLetterExchange=dlx if deadLetters else None)]
            + ([Queue(q + "-dl", durable=True)] if deadLetters else []),
            [Binding(q, x, key)] + ([Binding(q + "-dl", dlx, "#")] if deadLetters else []),
        )
        yield self.declare(bus, topology)
        return x, q

    def pause(self, seconds: float = 0.3) -> Deferred[None]:
        return deferLater(self.reactor, seconds, lambda: None)

    # -- the contract --------------------------------------------------------

    @inlineCallbacks
    def test_interfaces(self) -> Any:
        """
        The bus, its consumers and its messages provide their interfaces.
        """
        bus = yield self.startBus()
        self.assertTrue(verifyObject(IMessageBus, bus))  # type: ignore[attr-defined]
        self.assertTrue(verifyObject(IService, bus))  # type: ignore[attr-defined]
        self.assertTrue(verifyObject(IHealthReporter, bus))  # type: ignore[attr-defined]
        x, q = yield self.simpleQueue(bus)
        got = Collector(self.reactor)
        consumer = yield self.consume(bus, q, got)
        self.assertTrue(verifyObject(IConsumer, consumer))  # type: ignore[attr-defined]
        yield bus.publish(x, "k", b"m")
        message = yield got.next()
        self.assertTrue(verifyObject(IIncomingMessage, message))  # type: ignore[attr-defined]
        message.ack()

    @inlineCallbacks
    def test_health(self) -> Any:
        """
        A started bus reports itself up under the name C{bus}.
        """
        bus = yield self.startBus()
        health = bus.health()
        self.assertEqual((health.ok, health.state, bus.healthName), (True, "up", "bus"))  # type: ignore[attr-defined]

    @inlineCallbacks
    def test_declareIdempotent(self) -> Any:
        """
        Declaring the same topology twice succeeds and keeps the queued messages.
        """
        bus = yield self.startBus()
        x, q = yield self.simpleQueue(bus)
        yield bus.publish(x, "a", b"kept")
        topology = Topology(
            [Exchange(x, "topic", True)], [Queue(q, deadLetterExchange=x.replace("-x", "-dlx"))], [Binding(q, x, "#")]
        )
        yield bus.declare(topology)
        yield self.pause(0.1)
        count = yield bus.messageCount(q)
        self.assertEqual(count, 1)  # type: ignore[attr-defined]

    @inlineCallbacks
    def test_declareConflict(self) -> Any:
        """
        Re-declaring an exchange with another type fails with DeclareFailed.
        """
        bus = yield self.startBus()
        x, _ = yield self.simpleQueue(bus)
        d = bus.declare(Topology([Exchange(x, "direct", True)]))
        yield self.assertFailure(d, DeclareFailed)  # type: ignore[attr-defined]
        # The bus still works afterwards.
        yield bus.publish(x, "a", b"still")

    @inlineCallbacks
    def test_bindMissingQueue(self) -> Any:
        """
        Binding a queue that does not exist fails with DeclareFailed.
        """
        bus = yield self.startBus()
        x, _, q = self.names()
        yield self.declare(bus, Topology([Exchange(x)]))
        d = bus.declare(Topology(bindings=[Binding(q + "-missing", x, "#")]))
        yield self.assertFailure(d, DeclareFailed)  # type: ignore[attr-defined]

    @inlineCallbacks
    def test_publishConsumeAck(self) -> Any:
        """
        A confirmed publish is delivered with its exchange, key, body and
        headers, not redelivered; once acked the queue is empty.
        """
        bus = yield self.startBus()
        x, q = yield self.simpleQueue(bus)
        got = Collector(self.reactor)
        yield self.consume(bus, q, got)
        result = yield bus.publish(x, "ganeti.snf.event.op", b'{"a": 1}', {"h": "v"})
        self.assertIsNone(result)  # type: ignore[attr-defined]
        m = yield got.next()
        self.assertEqual(  # type: ignore[attr-defined]
            (m.exchange, m.routingKey, m.body, m.headers.get("h"), m.redelivered, m.settled),
            (x, "ganeti.snf.event.op", b'{"a": 1}', "v", False, False),
        )
        m.ack()
        self.assertTrue(m.settled)  # type: ignore[attr-defined]
        yield self.pause(0.2)
        count = yield bus.messageCount(q)
        self.assertEqual(count, 0)  # type: ignore[attr-defined]
        self.assertEqual(len(got.received), 1)  # type: ignore[attr-defined]

    @inlineCallbacks
    def test_publishBeforeConsume(self) -> Any:
        """
        Messages published while nobody consumes wait in the queue, in order.
        """
        bus = yield self.startBus()
        x, q = yield self.simpleQueue(bus)
        for i in range(5):
            yield bus.publish(x, "k", b"%d" % i)
        count = yield bus.messageCount(q)
        self.assertEqual(count, 5)  # type: ignore[attr-defined]
        got = Collector(self.reactor)
        yield self.consume(bus, q, got)
        bodies = []
        for _ in range(5):
            m = yield got.next()
            bodies.append(m.body)
            m.ack()
        self.assertEqual(bodies, [b"0", b"1", b"2", b"3", b"4"])  # type: ignore[attr-defined]

    @inlineCallbacks
    def test_topicRouting(self) -> Any:
        """
        Topic bindings route by words: C{*} is one word, C{#} zero or more.
        """
        bus = yield self.startBus()
        x, _, base = self.names()
        patterns = {
            "star": "ganeti.*.event",
            "hash": "ganeti.#",
            "exact": "ganeti.snf.event",
            "all": "#",
            "mid": "*.snf.#",
        }
        yield self.declare(
            bus,
            Topology(
                [Exchange(x)],
                [Queue(f"{base}-{n}") for n in patterns],
                [Binding(f"{base}-{n}", x, p) for n, p in patterns.items()],
            ),
        )
        keys = ["ganeti", "ganeti.snf.event", "ganeti.x.event", "ganeti.snf.event.op", "other.snf", "eventd.heartbeat"]
        for k in keys:
            yield bus.publish(x, k, k.encode())
        expected = {
            "star": {"ganeti.snf.event", "ganeti.x.event"},
            "hash": {"ganeti", "ganeti.snf.event", "ganeti.x.event", "ganeti.snf.event.op"},
            "exact": {"ganeti.snf.event"},
            "all": set(keys),
            "mid": {"ganeti.snf.event", "ganeti.snf.event.op", "other.snf"},
        }
        for n, keysWanted in expected.items():
            got = Collector(self.reactor)
            yield self.consume(bus, f"{base}-{n}", got)
            seen = set()
            for _ in keysWanted:
                m = yield got.next()
                seen.add(m.routingKey)
                m.ack()
            yield self.pause(0.1)
            self.assertEqual((n, seen, len(got.received)), (n, keysWanted, len(keysWanted)))  # type: ignore[attr-defined]

    @inlineCallbacks
    def test_unroutableDropped(self) -> Any:
        """
        A publish matching no binding is confirmed and dropped.
        """
        bus = yield self.startBus()
        x, q = yield self.simpleQueue(bus, key="only.this")
        yield bus.publish(x, "something.else", b"lost")
        count = yield bus.messageCount(q)
        self.assertEqual(count, 0)  # type: ignore[attr-defined]

    @inlineCallbacks
    def test_publishUnknownExchange(self) -> Any:
        """
        Publishing to a missing exchange fails with PublishFailed, and the
        bus keeps publishing afterwards.
        """
        bus = yield self.startBus()
        x, q = yield self.simpleQueue(bus)
        yield self.assertFailure(bus.publish(x + "-missing", "k", b"x"), PublishFailed)  # type: ignore[attr-defined]
        yield bus.publish(x, "k", b"after")
        count = yield bus.messageCount(q)
        self.assertEqual(count, 1)  # type: ignore[attr-defined]

    @inlineCallbacks
    def test_bodyMustBeBytes(self) -> Any:
        """
        Publishing a str body, or headers that are no AMQP table, is a TypeError.
        """
        bus = yield self.startBus()
        x, q = yield self.simpleQueue(bus)
        self.assertRaises(TypeError, bus.publish, x, "k", "text")  # type: ignore[attr-defined]
        self.assertRaises(TypeError, bus.publish, x, "k", b"body", {"o": object()})  # type: ignore[attr-defined]
        self.assertRaises(TypeError, bus.publish, x, "k", b"body", ["not", "a", "mapping"])  # type: ignore[attr-defined]
        count = yield bus.messageCount(q)
        self.assertEqual(count, 0)  # type: ignore[attr-defined]

    @inlineCallbacks
    def test_prefetch(self) -> Any:
        """
        At most C{prefetch} messages are unsettled at a time; settling one
        lets the next through.
        """
        bus = yield self.startBus()
        x, q = yield self.simpleQueue(bus)
        for i in range(10):
            yield bus.publish(x, "k", b"%d" % i)
        got = Collector(self.reactor)
        yield self.consume(bus, q, got, prefetch=3)
        first = []
        for _ in range(3):
            first.append((yield got.next()))
        yield self.pause(0.3)
        self.assertEqual(len(got.received), 3)  # type: ignore[attr-defined]
        first[0].ack()
        fourth = yield got.next()
        yield self.pause(0.2)
        self.assertEqual((fourth.body, len(got.received)), (b"3", 4))  # type: ignore[attr-defined]

    @inlineCallbacks
    def test_requeue(self) -> Any:
        """
        A requeued message comes back with C{redelivered} set.
        """
        bus = yield self.startBus()
        x, q = yield self.simpleQueue(bus)
        got = Collector(self.reactor)
        yield self.consume(bus, q, got)
        yield bus.publish(x, "k", b"again")
        m = yield got.next()
        self.assertFalse(m.redelivered)  # type: ignore[attr-defined]
        m.requeue()
        m2 = yield got.next()
        self.assertEqual((m2.body, m2.redelivered), (b"again", True))  # type: ignore[attr-defined]
        m2.ack()

    @inlineCallbacks
    def test_reject(self) -> Any:
        """
        A rejected message lands in the dead-letter queue with an
        C{x-death} record naming its queue, exchange and routing key.
        """
        bus = yield self.startBus()
        x, q = yield self.simpleQueue(bus)
        got = Collector(self.reactor)
        yield self.consume(bus, q, got)
        dead = Collector(self.reactor)
        yield self.consume(bus, q + "-dl", dead)
        yield bus.publish(x, "ganeti.snf.event.op", b"bad", {"h": 1})
        m = yield got.next()
        m.reject()
        d = yield dead.next()
        death = d.headers["x-death"][0]
        self.assertEqual(  # type: ignore[attr-defined]
            (
                d.body,
                d.routingKey,
                d.headers["h"],
                death["reason"],
                death["queue"],
                death["exchange"],
                list(death["routing-keys"]),
            ),
            (b"bad", "ganeti.snf.event.op", 1, "rejected", q, x, ["ganeti.snf.event.op"]),
        )
        d.ack()

    @inlineCallbacks
    def test_deadLetter(self) -> Any:
        """
        deadLetter(reason) puts a copy in the dead-letter queue with the
        reason and origin headers, and removes the original.
        """
        bus = yield self.startBus()
        x, q = yield self.simpleQueue(bus)
        got = Collector(self.reactor)
        yield self.consume(bus, q, got)
        dead = Collector(self.reactor)
        yield self.consume(bus, q + "-dl", dead)
        yield bus.publish(x, "ganeti.snf.event.network", b"\xff{", {"keep": "me"})
        m = yield got.next()
        result = yield m.deadLetter("not JSON")
        self.assertIsNone(result)  # type: ignore[attr-defined]
        d = yield dead.next()
        self.assertEqual(  # type: ignore[attr-defined]
            (
                d.body,
                d.headers["x-snf-reason"],
                d.headers["x-snf-origin-exchange"],
                d.headers["x-snf-origin-routing-key"],
                d.headers["keep"],
            ),
            (b"\xff{", "not JSON", x, "ganeti.snf.event.network", "me"),
        )
        d.ack()
        yield self.pause(0.2)
        self.assertEqual(len(got.received), 1)  # type: ignore[attr-defined]
        count = yield bus.messageCount(q)
        self.assertEqual(count, 0)  # type: ignore[attr-defined]

    @inlineCallbacks
    def test_settleTwice(self) -> Any:
        """
        Settling a message twice raises AlreadySettled.
        """
        bus = yield self.startBus()
        x, q = yield self.simpleQueue(bus)
        got = Collector(self.reactor)
        yield self.consume(bus, q, got)
        yield bus.publish(x, "k", b"once")
        m = yield got.next()
        m.ack()
        self.assertRaises(AlreadySettled, m.ack)  # type: ignore[attr-defined]
        self.assertRaises(AlreadySettled, m.requeue)  # type: ignore[attr-defined]
        self.assertRaises(AlreadySettled, m.deadLetter, "late")  # type: ignore[attr-defined]

    @inlineCallbacks
    def _handlerFailure(self, handler: Any) -> Any:
        bus = yield self.startBus()
        x, q = yield self.simpleQueue(bus)
        yield self.consume(bus, q, handler)
        dead = Collector(self.reactor)
        yield self.consume(bus, q + "-dl", dead)
        yield bus.publish(x, "k", b"boom")
        d = yield dead.next()
        d.ack()
        return d

    @inlineCallbacks
    def test_handlerRaises(self) -> Any:
        """
        A handler that raises without settling gets its message
        dead-lettered with the exception as the reason.
        """

        def handler(message: Any) -> None:
            raise ValueError("cannot parse")

        d = yield self._handlerFailure(handler)
        self.assertEqual((d.body, d.headers["x-snf-reason"]), (b"boom", "ValueError: cannot parse"))  # type: ignore[attr-defined]
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)  # type: ignore[attr-defined]

    @inlineCallbacks
    def test_handlerDeferredFails(self) -> Any:
        """
        A handler whose Deferred fails without settling gets its message
        dead-lettered with the failure as the reason.
        """

        def handler(message: Any) -> Deferred[None]:
            def explode() -> None:
                raise ZeroDivisionError("division by zero")

            return deferLater(self.reactor, 0.01, explode)

        d = yield self._handlerFailure(handler)
        self.assertIn("ZeroDivisionError", d.headers["x-snf-reason"])  # type: ignore[attr-defined]
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)  # type: ignore[attr-defined]

    @inlineCallbacks
    def test_handlerFailsAfterSettling(self) -> Any:
        """
        A handler that settles and then raises does not dead-letter the
        message; the error is logged.
        """
        bus = yield self.startBus()
        x, q = yield self.simpleQueue(bus)
        seen = []

        def handler(message: Any) -> None:
            seen.append(message)
            message.ack()
            raise KeyError("after")

        yield self.consume(bus, q, handler)
        yield bus.publish(x, "k", b"fine")
        yield self.pause(0.3)
        count = yield bus.messageCount(q + "-dl")
        self.assertEqual((len(seen), count), (1, 0))  # type: ignore[attr-defined]
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)  # type: ignore[attr-defined]

    @inlineCallbacks
    def test_stopRedelivers(self) -> Any:
        """
        Messages unsettled when a consumer stops go back to the queue and
        are delivered to the next consumer marked redelivered.
        """
        bus = yield self.startBus()
        x, q = yield self.simpleQueue(bus)
        got = Collector(self.reactor)
        consumer = yield bus.consume(q, got, 10)
        for i in range(3):
            yield bus.publish(x, "k", b"%d" % i)
        first = yield got.next()
        yield got.next()
        yield got.next()
        first.ack()
        yield consumer.stop()
        again = Collector(self.reactor)
        yield self.consume(bus, q, again)
        bodies = []
        for _ in range(2):
            m = yield again.next()
            bodies.append((m.body, m.redelivered))
            m.ack()
        self.assertEqual(sorted(bodies), [(b"1", True), (b"2", True)])  # type: ignore[attr-defined]

    @inlineCallbacks
    def test_stopWaitsForHandlers(self) -> Any:
        """
        stop() waits for handlers in progress, whose settlements count.
        """
        bus = yield self.startBus()
        x, q = yield self.simpleQueue(bus)
        started: DeferredQueue[Any] = DeferredQueue()
        release: Deferred[None] = Deferred()

        def handler(message: Any) -> Deferred[None]:
            started.put(message)
            return release.addCallback(lambda _: message.ack())

        consumer = yield bus.consume(q, handler, 10)
        yield bus.publish(x, "k", b"slow")
        yield started.get()
        stopped = consumer.stop()
        yield self.pause(0.1)
        self.assertFalse(stopped.called)  # type: ignore[attr-defined]
        release.callback(None)
        yield stopped
        yield self.pause(0.2)
        count = yield bus.messageCount(q)
        self.assertEqual(count, 0)  # type: ignore[attr-defined]

    @inlineCallbacks
    def test_bodies(self) -> Any:
        """
        Empty, non-ASCII, binary and large (300 kB, multi-frame) bodies
        round-trip byte for byte, in order.
        """
        bus = yield self.startBus()
        x, q = yield self.simpleQueue(bus)
        got = Collector(self.reactor)
        yield self.consume(bus, q, got)
        bodies = [
            b"",
            "h\u00e9llo \u20ac \U0001f600".encode(),
            bytes(range(256)),
            ("\u20ac" * 100000).encode(),
            bytes(range(256)) * 1200,
            b"after",
        ]
        yield defer.gatherResults([bus.publish(x, "k", b) for b in bodies])
        received = []
        for _ in bodies:
            m = yield got.next()
            received.append(m.body)
            m.ack()
        self.assertEqual([type(b) for b in received], [bytes] * len(bodies))  # type: ignore[attr-defined]
        self.assertTrue(received == bodies, "bodies differ")  # type: ignore[attr-defined]

    @inlineCallbacks
    def test_headers(self) -> Any:
        """
        Header values of every common type round-trip.
        """
        bus = yield self.startBus()
        x, q = yield self.simpleQueue(bus)
        got = Collector(self.reactor)
        yield self.consume(bus, q, got)
        headers = {
            "text": "v\u00e9\u20ac",
            "int": 5,
            "negative": -7,
            "big": 2**40,
            "flag": True,
            "off": False,
            "raw": b"\x00\xff",
            "float": 1.5,
            "list": [1, "a", [True]],
            "table": {"inner": "x", "n": 2},
            "none": None,
            "from-dead-letter": "true",
        }
        yield bus.publish(x, "k", b"h", headers)
        m = yield got.next()
        m.ack()
        self.assertEqual(dict(m.headers), headers)  # type: ignore[attr-defined]

    @inlineCallbacks
    def test_consumeMissingQueue(self) -> Any:
        """
        Consuming from a queue that does not exist fails with DeclareFailed.
        """
        bus = yield self.startBus()
        _, _, q = self.names()
        yield self.assertFailure(bus.consume(q + "-missing", lambda m: None), DeclareFailed)  # type: ignore[attr-defined]

    @inlineCallbacks
    def test_competingConsumers(self) -> Any:
        """
        Two consumers on one queue share its messages; each message goes to one.
        """
        bus = yield self.startBus()
        x, q = yield self.simpleQueue(bus)
        a = Collector(self.reactor)
        b = Collector(self.reactor)
        yield self.consume(bus, q, a, prefetch=1)
        yield self.consume(bus, q, b, prefetch=1)
        for i in range(6):
            yield bus.publish(x, "k", b"%d" % i)
        seen: list[bytes] = []
        while len(seen) < 6:
            for c in (a, b):
                while c.queue.pending:
                    m = yield c.next()
                    seen.append(m.body)
                    m.ack()
            yield self.pause(0.02)
        self.assertEqual(sorted(seen), [b"%d" % i for i in range(6)])  # type: ignore[attr-defined]
        self.assertTrue(a.received and b.received)  # type: ignore[attr-defined]

    @inlineCallbacks
    def test_rejectAgainCountsDeaths(self) -> Any:
        """
        A dead-lettered message published again with its headers (as
        queue-retry does) and rejected again has x-death count 2.
        """
        bus = yield self.startBus()
        x, q = yield self.simpleQueue(bus)
        got = Collector(self.reactor)
        yield self.consume(bus, q, got)
        dead = Collector(self.reactor)
        yield self.consume(bus, q + "-dl", dead)
        yield bus.publish(x, "a.b", b"twice")
        (yield got.next()).reject()
        d1 = yield dead.next()
        retried = dict(d1.headers)
        retried["from-dead-letter"] = True
        yield bus.publish(x, "a.b", d1.body, retried)
        d1.ack()
        (yield got.next()).reject()
        d2 = yield dead.next()
        d2.ack()
        deaths = d2.headers["x-death"]
        self.assertEqual(  # type: ignore[attr-defined]
            (len(deaths), deaths[0]["count"], deaths[0]["queue"], d2.headers["from-dead-letter"]), (1, 2, q, True)
        )

    @inlineCallbacks
    def test_metrics(self) -> Any:
        """
        The bus counts published, confirmed, consumed, acked and
        dead-lettered messages in the node's registry.
        """
        metrics = MetricsRegistry()
        bus = yield self.startBus(metrics)
        x, q = yield self.simpleQueue(bus)
        got = Collector(self.reactor)
        yield self.consume(bus, q, got)
        yield bus.publish(x, "k", b"1")
        yield bus.publish(x, "k", b"2")
        (yield got.next()).ack()
        yield (yield got.next()).deadLetter("test")
        values = {
            name: metrics.counter(f"snf_bus_{name}_total", "").value()
            for name in ("published", "confirmed", "consumed", "acked", "dead_lettered")
        }
        self.assertEqual(  # type: ignore[attr-defined]
            values, {"published": 3, "confirmed": 3, "consumed": 2, "acked": 1, "dead_lettered": 1}
        )
        self.assertIn("snf_bus_published_total 3", metrics.render())  # type: ignore[attr-defined]

    @inlineCallbacks
    def test_autoDelete(self) -> Any:
        """
        An auto-delete queue disappears when its last consumer stops.
        """
        bus = yield self.startBus()
        x, _, q = self.names()
        yield self.declare(
            bus, Topology([Exchange(x)], [Queue(q, durable=False, autoDelete=True)], [Binding(q, x, "#")])
        )
        first = yield bus.consume(q, lambda m: m.ack())
        second = yield bus.consume(q, lambda m: m.ack())
        yield first.stop()
        count = yield bus.messageCount(q)
        self.assertEqual(count, 0)  # type: ignore[attr-defined]
        yield second.stop()
        yield self.pause(0.1)
        yield self.assertFailure(bus.messageCount(q), DeclareFailed)  # type: ignore[attr-defined]
