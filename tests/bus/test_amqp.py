"""
The RabbitMQ bus without a broker: reconnection, health and logging on a
deterministic clock, and the confirm bookkeeping and frames of our txAMQP
protocol on a string transport. (Against the real broker:
L{tests.integration.bus.test_rabbitmq}.)
"""

from __future__ import annotations

import struct
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver, StringTransport
from twisted.logger import LogLevel, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from txamqp.connection import Body, Frame, Header, Method
from txamqp.content import Content
from zope.interface import implementer
from zope.interface.verify import verifyObject

from synnefo_twisted.bus import DEFAULT_SPEC
from synnefo_twisted.bus._wire import packFrame, unpackFrame
from synnefo_twisted.bus.amqp import AMQPBus, BusDelegate, BusFactory, BusProtocol, loadAMQPSpec
from synnefo_twisted.bus.errors import BusStopped, PublishFailed
from synnefo_twisted.interfaces import IHealthReporter, IMessageBus


@implementer(IStreamClientEndpoint)
class RefusingEndpoint:
    """
    An endpoint where nothing listens.
    """

    def __init__(self) -> None:
        self.attempts = 0

    def connect(self, factory: IProtocolFactory) -> Deferred[Any]:
        self.attempts += 1
        return fail(ConnectionRefusedError("nothing listens"))


class ReconnectionTests(SynchronousTestCase):
    """
    An unreachable broker: retries, health, rate-limited logs, clean stop.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.endpoint = RefusingEndpoint()
        self.bus = AMQPBus(self.clock, self.endpoint, username="u", password="p", retryPolicy=lambda n: 1.0)
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)  # type: ignore[arg-type]

    def busWarnings(self) -> list[str]:
        return [
            e["log_format"]
            for e in self.events
            if e.get("log_namespace") == "synnefo.bus" and e["log_level"] == LogLevel.warn
        ]

    def test_interfaces(self) -> None:
        """
        The RabbitMQ bus provides IMessageBus and IHealthReporter.
        """
        self.assertTrue(verifyObject(IMessageBus, self.bus))
        self.assertTrue(verifyObject(IHealthReporter, self.bus))

    def test_retriesAndHealth(self) -> None:
        """
        While the broker is unreachable the bus retries on the clock and
        reports connecting with the last error.
        """
        started = self.bus.startService()
        self.assertNoResult(started)
        self.assertEqual(self.endpoint.attempts, 1)
        health = self.bus.health()
        self.assertEqual((health.ok, health.state), (False, "connecting"))
        self.assertIn("nothing listens", health.detail)
        self.clock.advance(1.0)
        self.clock.advance(1.0)
        self.assertEqual(self.endpoint.attempts, 3)
        self.successResultOf(self.bus.stopService())
        self.failureResultOf(started)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_logsRateLimited(self) -> None:
        """
        The first failure is logged, then one summary a minute, not one
        line per attempt.
        """
        self.bus.startService().addErrback(lambda _: None)
        for _ in range(125):
            self.clock.advance(1.0)
        self.assertEqual(self.endpoint.attempts, 126)
        warnings = self.busWarnings()
        self.assertEqual(len(warnings), 3, warnings)
        self.assertIn("unreachable", warnings[0])
        self.assertIn("still unreachable after {attempts}", warnings[1])
        self.successResultOf(self.bus.stopService())

    def test_publishWaitsThenFailsOnStop(self) -> None:
        """
        A publish made while disconnected waits for a connection and fails
        with BusStopped when the bus stops; after that, publish fails at once.
        """
        self.bus.startService().addErrback(lambda _: None)
        d = self.bus.publish("x", "k", b"body")
        self.assertNoResult(d)
        self.successResultOf(self.bus.stopService())
        self.failureResultOf(d, BusStopped)
        self.failureResultOf(self.bus.publish("x", "k", b"late"), BusStopped)


class ProtocolTests(SynchronousTestCase):
    """
    Our txAMQP protocol: publisher confirms and the frames it writes.
    """

    def setUp(self) -> None:
        self.spec = loadAMQPSpec(DEFAULT_SPEC)
        self.protocol = BusProtocol(BusDelegate(), vhost="/", spec=self.spec, heartbeat=0, clock=Clock())
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        self.assertEqual(self.transport.value(), b"AMQP\x00\x00\x09\x01")
        self.transport.clear()

    def frames(self) -> list[Any]:
        data = self.transport.value()
        out = []
        while data:
            (size,) = struct.unpack("!I", data[3:7])
            out.append(unpackFrame(self.spec, data[: 8 + size]))
            data = data[8 + size :]
        return out

    def openPublishChannel(self, protocol: BusProtocol | None = None) -> None:
        p = protocol or self.protocol
        p.publishChannel = self.successResultOf(p.channel(1))

    def test_publishFrames(self) -> None:
        """
        A publish writes basic.publish, a header with delivery-mode and
        headers, and the body split into frames under frame-max.
        """
        self.openPublishChannel()
        body = ("\u20ac" * 5000).encode()
        self.protocol.publishConfirmed("ganeti", "ganeti.snf.event.op", body, {"h": "v"}, True)
        frames = self.frames()
        method, header, bodies = frames[0].payload, frames[1].payload, frames[2:]
        self.assertIsInstance(method, Method)
        self.assertEqual((method.method.name, method.args[1:3]), ("publish", ("ganeti", "ganeti.snf.event.op")))
        self.assertIsInstance(header, Header)
        self.assertEqual((header.size, header.properties), (len(body), {"delivery-mode": 2, "headers": {"h": "v"}}))
        self.assertTrue(all(isinstance(f.payload, Body) and len(f.payload.content) <= 4096 - 8 for f in bodies))
        self.assertEqual(b"".join(f.payload.content for f in bodies), body)

    def test_transient(self) -> None:
        """
        persistent=False publishes with delivery-mode 1 and no headers property.
        """
        self.openPublishChannel()
        self.protocol.publishConfirmed("x", "k", b"t", None, False)
        self.assertEqual(self.frames()[1].payload.properties, {"delivery-mode": 1})

    def test_confirms(self) -> None:
        """
        basic.ack with multiple confirms every earlier tag; basic.nack fails
        the publish with PublishFailed.
        """
        self.openPublishChannel()
        ds = [self.protocol.publishConfirmed("x", "k", b"%d" % i, None, True) for i in range(5)]
        self.protocol.confirmed(None, 3, True, True)
        for d in ds[:3]:
            self.assertIsNone(self.successResultOf(d))
        self.assertNoResult(ds[3])
        self.protocol.confirmed(None, 5, False, True)
        self.assertIsNone(self.successResultOf(ds[4]))
        self.protocol.confirmed(None, 4, False, False)
        self.failureResultOf(ds[3], PublishFailed)
        self.assertEqual(self.protocol.pending, {})

    def test_connectionLostFailsPending(self) -> None:
        """
        Publishes not yet confirmed when the connection drops fail with
        PublishFailed; later publishes fail at once.
        """
        self.openPublishChannel()
        d = self.protocol.publishConfirmed("x", "k", b"1", None, True)
        self.protocol.connectionLost(Failure(ConnectionDone()))
        f = self.failureResultOf(d, PublishFailed)
        self.assertIn("connection lost", str(f.value))
        self.failureResultOf(self.protocol.publishConfirmed("x", "k", b"2", None, True), PublishFailed)

    def test_stopWaitsBoundedForConfirms(self) -> None:
        """
        stopService waits for outstanding confirms, at most ten seconds,
        then closes the connection cleanly (at most two more seconds) and
        fails what is still unconfirmed.
        """
        clock = Clock()
        bus = AMQPBus(clock, RefusingEndpoint(), username="u", password="p")
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)  # type: ignore[arg-type]
        protocol = BusProtocol(BusDelegate(), vhost="/", spec=self.spec, heartbeat=0, clock=clock)
        protocol.makeConnection(self.transport)
        self.openPublishChannel(protocol)
        confirmed = protocol.publishConfirmed("x", "k", b"1", None, True)
        unconfirmed = protocol.publishConfirmed("x", "k", b"2", None, True)
        bus._client = protocol
        bus.running = True
        stopping = bus.stopService()
        protocol.confirmed(None, 1, False, True)
        self.successResultOf(confirmed)
        self.transport.clear()
        clock.advance(9.9)
        self.assertEqual(self.transport.value(), b"")
        clock.advance(0.1)
        self.assertEqual(self.frames()[0].payload.method.name, "close")
        self.assertNoResult(stopping)
        clock.advance(2)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.successResultOf(stopping)
        self.failureResultOf(unconfirmed, PublishFailed)
        self.assertTrue(any("still unconfirmed" in e["log_format"] for e in events))
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_heartbeat(self) -> None:
        """
        The factory's heartbeat runs on the injected clock: a silent broker
        is dropped after three missed heartbeats.
        """
        clock = Clock()
        protocol = BusFactory(self.spec, "/", 5, clock).buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.assertEqual(protocol.heartbeatInterval, 5)
        protocol.started.fire()  # as after connection.tune
        clock.advance(10)
        protocol.dataReceived(b"\x08\x00\x00\x00\x00\x00\x00\xce")  # a heartbeat frame from the broker
        transport.clear()
        clock.advance(5)
        self.assertEqual(transport.value(), b"\x08\x00\x00\x00\x00\x00\x00\xce")  # ours, after 5 idle seconds
        clock.advance(9)
        self.assertFalse(transport.disconnecting)
        clock.advance(1)
        self.assertTrue(transport.disconnecting)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_heartbeatNotSentWhileBusy(self) -> None:
        """
        While frames are being sent, no heartbeat frame is added.
        """
        clock = Clock()
        protocol = BusFactory(self.spec, "/", 4, clock).buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        protocol.started.fire()
        channel = self.successResultOf(protocol.channel(1))
        for _ in range(10):
            clock.advance(1)
            protocol.dataReceived(b"\x08\x00\x00\x00\x00\x00\x00\xce")
            transport.clear()
            channel.basic_ack(delivery_tag=1)
            self.assertNotIn(b"\x08\x00\x00\x00\x00\x00\x00\xce", transport.value())
        self.assertFalse(transport.disconnecting)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_strBodyRefused(self) -> None:
        """
        A str body never reaches the wire.
        """
        self.openPublishChannel()
        d = self.protocol.publishConfirmed("x", "k", "text", None, True)  # type: ignore[arg-type]
        self.failureResultOf(d, TypeError)
        self.failureResultOf(self.protocol.publishConfirmed("x", "k", b"", {"o": object()}, True), TypeError)
        self.assertEqual((self.transport.value(), self.protocol.pending), (b"", {}))

    def test_unencodableFrameDropsConnection(self) -> None:
        """
        A frame that cannot be encoded drops the connection (it would
        desynchronise the stream) and does not stop the writer.
        """
        channel = self.successResultOf(self.protocol.channel(1))
        channel.basic_publish(exchange="x", routing_key="k", content=Content("text"))
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 1)
        self.transport.clear()
        channel.basic_ack(delivery_tag=1)
        self.assertEqual(self.frames()[0].payload.method.name, "ack")


class DeliveryFastPathTests(SynchronousTestCase):
    """
    Deliveries are assembled synchronously from the frames on an idle
    channel, reach the protocol as through txAMQP's own path, and acks are
    written directly.
    """

    def setUp(self) -> None:
        self.spec = loadAMQPSpec(DEFAULT_SPEC)
        self.basic = self.spec.classes.bypyname["basic"]
        self.protocol = BusProtocol(BusDelegate(), vhost="/", spec=self.spec, heartbeat=0, clock=Clock())
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        self.transport.clear()
        self.received: list[tuple[Any, ...]] = []

        def delivered(ch: Any, msg: Any) -> None:
            content = msg.content
            self.received.append(
                (ch.id, msg.consumer_tag, msg.delivery_tag, msg.redelivered, msg.exchange, msg.routing_key,
                 content.body, content.properties)
            )  # fmt: skip

        self.protocol.delivered = delivered  # type: ignore[method-assign]

    def frames(self, channel: int, tag: int, body: bytes, chunk: int = 3) -> bytes:
        deliver = self.basic.methods.bypyname["deliver"]
        out = [packFrame(self.spec, Frame(channel, Method(deliver, "ctag", tag, False, "ganeti", "k")))]
        out.append(packFrame(self.spec, Frame(channel, Header(self.basic, 0, len(body), **{"delivery-mode": 2}))))
        out.extend(packFrame(self.spec, Frame(channel, Body(body[i : i + chunk]))) for i in range(0, len(body), chunk))
        return b"".join(out)

    def expected(self, channel: int, tag: int, body: bytes) -> tuple[Any, ...]:
        return (channel, "ctag", tag, False, "ganeti", "k", body, {"delivery-mode": 2})

    def test_assembled(self) -> None:
        """
        Messages whose frames arrive together or byte by byte are delivered
        whole and in order, and none is left half-assembled.
        """
        self.successResultOf(self.protocol.channel(5))
        data = self.frames(5, 1, b"first body") + self.frames(5, 2, b"") + self.frames(5, 3, b"\xff\x00third")
        self.protocol.dataReceived(data[:40])
        for i in range(40, len(data)):
            self.protocol.dataReceived(data[i : i + 1])
        self.assertEqual(
            self.received,
            [self.expected(5, 1, b"first body"), self.expected(5, 2, b""), self.expected(5, 3, b"\xff\x00third")],
        )
        self.assertEqual(self.protocol.assembling, {})

    def test_slowPathSame(self) -> None:
        """
        On a channel txAMQP has not opened yet, deliveries take txAMQP's
        path and arrive the same.
        """
        self.protocol.dataReceived(self.frames(6, 1, b"one") + self.frames(6, 2, b"two"))
        self.assertEqual(self.received, [self.expected(6, 1, b"one"), self.expected(6, 2, b"two")])
        self.assertEqual(self.protocol.assembling, {})

    def test_outOfSequenceDropsConnection(self) -> None:
        """
        A method frame in the middle of a delivery is a protocol error: the
        connection is dropped.
        """
        self.successResultOf(self.protocol.channel(5))
        data = self.frames(5, 1, b"body")
        # the deliver and header, then a second deliver instead of the body
        (size,) = struct.unpack("!I", data[3:7])
        deliverFrame = data[: 8 + size]
        headerEnd = 8 + size + 8 + struct.unpack("!I", data[8 + size + 3 : 8 + size + 7])[0]
        self.protocol.dataReceived(data[:headerEnd] + deliverFrame)
        self.assertEqual(self.received, [])
        self.assertTrue(self.transport.disconnecting)

    def test_ack(self) -> None:
        """
        An ack is written at once as a basic.ack frame; on a closed channel it fails.
        """
        ch = self.successResultOf(self.protocol.channel(5))
        self.successResultOf(self.protocol.sendAck(ch, 42))
        frame = unpackFrame(self.spec, self.transport.value())
        self.assertEqual((frame.channel, frame.payload.method.name, frame.payload.args), (5, "ack", (42, False)))
        ch.close(None)
        self.failureResultOf(self.protocol.sendAck(ch, 43))
