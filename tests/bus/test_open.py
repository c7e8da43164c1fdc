"""
Choosing a bus by URL.
"""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from synnefo_twisted.bus import AMQPAddress, openBus, parseAMQPURL
from synnefo_twisted.bus.amqp import AMQPBus
from synnefo_twisted.bus.memory import MemoryBus
from synnefo_twisted.metrics import MetricsRegistry


class ParseURLTests(SynchronousTestCase):
    """
    AMQP URLs follow RabbitMQ's URI spec.
    """

    def test_full(self) -> None:
        """
        User, password, host, port and vhost are read, percent-decoded.
        """
        self.assertEqual(
            parseAMQPURL("amqp://us%40er:p%3Aw%2Fd@broker.example:5673/synnefo%2Dtest"),
            AMQPAddress(False, "broker.example", 5673, "us@er", "p:w/d", "synnefo-test"),
        )

    def test_defaults(self) -> None:
        """
        No path means vhost /; no user means guest; amqps defaults to 5671.
        """
        self.assertEqual(parseAMQPURL("amqp://h"), AMQPAddress(False, "h", 5672, "guest", "guest", "/"))
        self.assertEqual(parseAMQPURL("amqps://h/").port, 5671)
        self.assertEqual(parseAMQPURL("amqp://u:p@h:1/%2F").vhost, "/")

    def test_bad(self) -> None:
        """
        Anything else is a ValueError naming the URL.
        """
        for bad in ("http://h/", "amqp://", "amqp://h:notaport/", "amqp://h/a/b", "amqp://h/v?heartbeat=5", "h:5672"):
            e = self.assertRaises(ValueError, parseAMQPURL, bad)
            self.assertIn(repr(bad), str(e))

    def test_describeHidesPassword(self) -> None:
        """
        The description for logs has no password.
        """
        a = parseAMQPURL("amqp://u:secret@h:5672/v")
        self.assertNotIn("secret", a.describe() + repr(a))
        self.assertEqual(a.describe(), "amqp://u@h:5672/v")


class OpenBusTests(SynchronousTestCase):
    """
    openBus builds the implementation the URL names.
    """

    def test_memory(self) -> None:
        """
        memory:// gives the in-process bus.
        """
        self.assertIsInstance(openBus("memory://", MemoryReactorClock()), MemoryBus)

    def test_amqp(self) -> None:
        """
        amqp:// gives the RabbitMQ bus, which connects only when started.
        """
        reactor = MemoryReactorClock()
        bus = openBus("amqp://guest:guest@127.0.0.1:5672/synnefo-test", reactor, metrics=MetricsRegistry())
        self.assertIsInstance(bus, AMQPBus)
        self.assertEqual(reactor.tcpClients, [])
        self.assertEqual(bus.health().state, "stopped")

    def test_bad(self) -> None:
        """
        Unknown schemes and decorated memory URLs are ValueErrors.
        """
        for bad in ("redis://h", "memory://x", "amqp:///"):
            self.assertRaises(ValueError, openBus, bad, MemoryReactorClock())
