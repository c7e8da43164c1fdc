"""
The in-process bus: the shared contract on the real reactor, and its own
scheduling guarantees on a deterministic clock.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from synnefo_twisted.bus.memory import MemoryBus
from synnefo_twisted.bus.topology import Binding, Exchange, Queue, Topology
from synnefo_twisted.metrics import MetricsRegistry
from tests.bus.contract import BusContractMixin, realReactor


class MemoryBusContractTests(BusContractMixin, TestCase):
    """
    The in-process bus honours the IMessageBus contract.
    """

    timeout = 20
    reactor = realReactor()

    def makeBus(self, metrics: MetricsRegistry | None = None) -> Deferred[Any]:
        bus = MemoryBus(self.reactor, metrics)
        return bus.startService().addCallback(lambda _: bus)


class MemoryBusSchedulingTests(SynchronousTestCase):
    """
    Deliveries happen on the injected clock, never inside the call that
    made them possible.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.bus = MemoryBus(self.clock)
        self.successResultOf(self.bus.startService())
        self.successResultOf(
            self.bus.declare(
                Topology(
                    [Exchange("x"), Exchange("dl")],
                    [Queue("q", deadLetterExchange="dl"), Queue("q-dl")],
                    [Binding("q", "x", "#"), Binding("q-dl", "dl", "#")],
                )
            )
        )
        self.got: list[Any] = []

    def test_notReentrant(self) -> None:
        """
        publish, ack and requeue only schedule deliveries; they happen when
        the clock runs.
        """
        self.successResultOf(self.bus.consume("q", self.got.append, prefetch=1))
        self.successResultOf(self.bus.publish("x", "k", b"1"))
        self.successResultOf(self.bus.publish("x", "k", b"2"))
        self.assertEqual(self.got, [])
        self.clock.advance(0)
        self.assertEqual([m.body for m in self.got], [b"1"])
        self.got[0].requeue()
        self.assertEqual(len(self.got), 1)
        self.clock.advance(0)
        self.assertEqual([(m.body, m.redelivered) for m in self.got], [(b"1", False), (b"1", True)])
        self.got[1].ack()
        self.assertEqual(len(self.got), 2)
        self.clock.advance(0)
        self.assertEqual(self.got[2].body, b"2")

    def test_roundRobin(self) -> None:
        """
        Consumers with room take turns.
        """
        a: list[Any] = []
        b: list[Any] = []
        self.successResultOf(self.bus.consume("q", a.append))
        self.successResultOf(self.bus.consume("q", b.append))
        for i in range(4):
            self.bus.publish("x", "k", b"%d" % i)
        self.clock.advance(0)
        self.assertEqual(([m.body for m in a], [m.body for m in b]), ([b"0", b"2"], [b"1", b"3"]))

    def test_stopServiceCleansUp(self) -> None:
        """
        Stopping the bus stops its consumers, returns their unsettled
        messages and leaves no timer behind.
        """
        self.successResultOf(self.bus.consume("q", self.got.append))
        self.bus.publish("x", "k", b"1")
        self.clock.advance(0)
        self.bus.publish("x", "k", b"2")
        self.successResultOf(self.bus.stopService())
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.successResultOf(self.bus.messageCount("q")), 2)
        self.assertEqual(self.bus.health().state, "stopped")

    def test_deleteQueue(self) -> None:
        """
        A deleted queue drops its messages and bindings; publishing to the
        exchange then routes nowhere.
        """
        self.bus.publish("x", "k", b"1")
        self.successResultOf(self.bus.deleteQueue("q"))
        self.successResultOf(self.bus.publish("x", "k", b"2"))
        self.failureResultOf(self.bus.messageCount("q"))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_purge(self) -> None:
        """
        Purging drops waiting messages and says how many.
        """
        self.bus.publish("x", "k", b"1")
        self.bus.publish("x", "k", b"2")
        self.assertEqual(self.successResultOf(self.bus.purgeQueue("q")), 2)
        self.assertEqual(self.successResultOf(self.bus.messageCount("q")), 0)

    def test_defaultExchange(self) -> None:
        """
        The nameless exchange routes to the queue named by the routing key.
        """
        self.successResultOf(self.bus.publish("", "q-dl", b"direct"))
        self.assertEqual(self.successResultOf(self.bus.messageCount("q-dl")), 1)

    def test_fanoutAndDirect(self) -> None:
        """
        Fanout exchanges ignore keys; direct exchanges compare them exactly.
        """
        self.successResultOf(
            self.bus.declare(
                Topology(
                    [Exchange("f", "fanout"), Exchange("d", "direct")],
                    [Queue("fq"), Queue("dq")],
                    [Binding("fq", "f", "ignored"), Binding("dq", "d", "a.*")],
                )
            )
        )
        self.bus.publish("f", "whatever", b"1")
        self.bus.publish("d", "a.b", b"2")
        self.bus.publish("d", "a.*", b"3")
        self.assertEqual(self.successResultOf(self.bus.messageCount("fq")), 1)
        self.assertEqual(self.successResultOf(self.bus.messageCount("dq")), 1)

    def test_deadLetterWithoutExchange(self) -> None:
        """
        deadLetter on a queue without a dead-letter exchange drops the
        message with a warning.
        """
        self.successResultOf(self.bus.consume("q-dl", self.got.append))
        self.bus.publish("", "q-dl", b"1")
        self.clock.advance(0)
        self.successResultOf(self.got[0].deadLetter("why"))
        self.clock.advance(0)
        self.assertEqual((len(self.got), self.successResultOf(self.bus.messageCount("q-dl"))), (1, 0))

    def test_unlimitedPrefetch(self) -> None:
        """
        prefetch=0 means no limit, as in AMQP.
        """
        self.successResultOf(self.bus.consume("q", self.got.append, prefetch=0))
        for i in range(300):
            self.bus.publish("x", "k", b"%d" % i)
        self.clock.advance(0)
        self.assertEqual(len(self.got), 300)
