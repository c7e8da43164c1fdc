"""
The RabbitMQ bus against the real broker (C{realservices.AMQP_URL}, vhost
C{synnefo-test}): the shared contract, then what only a real broker can
show: restarts, an unreachable broker, persistence.

These tests fail (they do not skip) when RabbitMQ is not running: run
C{tests/harness/services.sh} first.
"""

from __future__ import annotations

import itertools
import socket
import uuid
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from synnefo_twisted.bus import openBus
from synnefo_twisted.bus.amqp import AMQPBus
from synnefo_twisted.bus.errors import BusStopped, PublishFailed
from synnefo_twisted.bus.topology import Binding, Exchange, Queue, Topology
from synnefo_twisted.metrics import MetricsRegistry
from tests.bus.contract import BusContractMixin, Collector, realReactor
from tests.bus.test_deadletters import RetryMixin
from tests.integration import realservices


def startedBus(reactor: Any, **kwargs: Any) -> Deferred[Any]:
    bus = openBus(realservices.AMQP_URL, reactor, heartbeat=10, **kwargs)
    d = bus.startService()
    # Fail instead of hanging when the broker is not there.
    timeout = reactor.callLater(15, d.cancel)

    def done(result: object) -> object:
        if timeout.active():
            timeout.cancel()
        return result

    return d.addBoth(done).addCallback(lambda _: bus)


class RabbitMQContractTests(BusContractMixin, TestCase):
    """
    The RabbitMQ bus honours the IMessageBus contract against the real broker.
    """

    timeout = 60
    reactor = realReactor()

    def makeBus(self, metrics: MetricsRegistry | None = None) -> Deferred[Any]:
        return startedBus(self.reactor, metrics=metrics)


class RabbitMQRetryTests(RetryMixin, TestCase):
    """
    Retrying dead letters on RabbitMQ (x-death written by the real broker).
    """

    reactor = realReactor()

    def makeBus(self) -> Deferred[Any]:
        return startedBus(self.reactor)


def freePort() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return int(port)


class RabbitMQRealBrokerTests(TestCase):
    """
    Behaviour that needs the real broker to be restarted or missing.
    """

    timeout = 180
    reactor = realReactor()

    def names(self) -> tuple[str, str]:
        tag = uuid.uuid4().hex[:10]
        return f"t-{tag}-x", f"t-{tag}-q"

    @inlineCallbacks
    def restartBroker(self) -> Any:
        yield deferToThread(realservices.runBlocking, realservices.amqpRestartCommand())

    @inlineCallbacks
    def waitFor(self, predicate: Any, timeout: float = 30.0, step: float = 0.1) -> Any:
        waited = 0.0
        while not predicate():
            if waited >= timeout:
                self.fail(f"condition not met within {timeout} s")
            yield deferLater(self.reactor, step, lambda: None)
            waited += step

    @inlineCallbacks
    def test_unreachableKeepsRetrying(self) -> Any:
        """
        With nothing listening, the bus keeps retrying with backoff and its
        health says it is connecting, with the last error; stopping it fails
        its start-up Deferred and leaves no timer behind.
        """
        attempts: list[float] = []
        port = freePort()
        endpoint = TCP4ClientEndpoint(self.reactor, "127.0.0.1", port, timeout=2)

        def policy(n: int) -> float:
            attempts.append(self.reactor.seconds())
            return min(0.05 * 2**n, 0.4)

        bus = AMQPBus(self.reactor, endpoint, username="guest", password="guest", retryPolicy=policy)
        started = bus.startService()
        yield self.waitFor(lambda: len(attempts) >= 5, timeout=10)
        health = bus.health()
        self.assertEqual((health.ok, health.state), (False, "connecting"))
        self.assertIn("Connection refused", health.detail)
        gaps = [b - a for a, b in itertools.pairwise(attempts)]
        self.assertTrue(gaps[-1] > gaps[0], f"no backoff: {gaps}")
        publish = bus.publish("x", "k", b"waits")
        self.assertFalse(publish.called)
        yield bus.stopService()
        yield self.assertFailure(publish, BusStopped)
        self.assertFailure(started, Exception)
        yield started.addErrback(lambda _: None)
        self.assertEqual(bus.health().state, "stopped")

    @inlineCallbacks
    def test_startsWhenBrokerComesUp(self) -> Any:
        """
        Started while the broker application is down, the bus reports
        connecting, then connects by itself when the broker comes back, and
        its start-up Deferred fires.
        """
        yield deferToThread(realservices.runBlocking, "rabbitmqctl -q stop_app")
        try:
            bus = openBus(realservices.AMQP_URL, self.reactor)
            started = bus.startService()
            yield self.waitFor(lambda: bus._failures >= 2, timeout=20)
            self.assertEqual((bus.health().ok, bus.health().state, started.called), (False, "connecting", False))
        finally:
            yield deferToThread(realservices.runBlocking, "rabbitmqctl -q start_app")
        yield self.waitFor(lambda: started.called, timeout=60)
        self.assertTrue(bus.health().ok)
        yield bus.stopService()

    @inlineCallbacks
    def test_stopWhileConnecting(self) -> Any:
        """
        Stopping the bus during the AMQP handshake ends promptly and leaves
        nothing behind.
        """
        for delay in (0, 0.002, 0.005, 0.01, 0.02):
            bus = openBus(realservices.AMQP_URL, self.reactor)
            started = bus.startService()
            yield deferLater(self.reactor, delay, lambda: None)
            stopping = bus.stopService()
            timeout = self.reactor.callLater(10, stopping.cancel)
            yield stopping
            timeout.cancel()
            yield started.addErrback(lambda _: None)
            self.assertEqual(bus.health().state, "stopped")
        yield deferLater(self.reactor, 0.1, lambda: None)

    @inlineCallbacks
    def test_badCredentials(self) -> Any:
        """
        A refused login keeps the bus retrying, with the broker's reason in its health.
        """
        url = realservices.AMQP_URL.replace("guest:guest@", "guest:wrong@")
        bus = openBus(url, self.reactor)
        started = bus.startService()
        yield self.waitFor(lambda: bool(bus._lastError), timeout=20)
        health = bus.health()
        self.assertEqual(health.state, "connecting")
        self.assertIn("403 ACCESS_REFUSED", health.detail)
        yield bus.stopService()
        yield started.addErrback(lambda _: None)

    @inlineCallbacks
    def test_restartDuringPublishLoop(self) -> Any:
        """
        Across a broker restart, every publish whose Deferred fired is
        consumed at least once, failed publishes say PublishFailed, and the
        consumer resumes without restarting the service.
        """
        metrics = MetricsRegistry()
        bus = yield startedBus(self.reactor, metrics=metrics)
        x, q = self.names()
        yield bus.declare(Topology([Exchange(x)], [Queue(q)], [Binding(q, x, "#")]))
        received: dict[bytes, int] = {}

        def handler(message: Any) -> None:
            received[message.body] = received.get(message.body, 0) + 1
            message.ack()

        consumer = yield bus.consume(q, handler, prefetch=50)
        confirmed: set[bytes] = set()
        failed: list[bytes] = []
        running = [True]

        @inlineCallbacks
        def publishLoop() -> Any:
            i = 0
            while running[0]:
                body = b"m%d" % i
                i += 1
                try:
                    yield bus.publish(x, "k", body)
                    confirmed.add(body)
                except PublishFailed:
                    failed.append(body)
                yield deferLater(self.reactor, 0.002, lambda: None)

        loop = publishLoop()
        yield self.waitFor(lambda: len(confirmed) >= 200, timeout=20)
        yield self.restartBroker()
        yield self.waitFor(lambda: bus.health().ok, timeout=60)
        before = len(confirmed)
        yield self.waitFor(lambda: len(confirmed) >= before + 200, timeout=30)
        running[0] = False
        yield loop
        yield self.waitFor(lambda: confirmed <= set(received), timeout=30)
        duplicates = sum(n - 1 for n in received.values())
        self.assertTrue(confirmed <= set(received))
        self.assertEqual(metrics.counter("snf_bus_connections_total", "").value(), 2)
        # Report the figures (trial shows them with -e / in the log).
        print(f"\nconfirmed={len(confirmed)} failed={len(failed)} received={len(received)} duplicates={duplicates}")
        yield consumer.stop()
        yield bus.deleteQueue(q)
        yield bus.deleteExchange(x)
        yield bus.stopService()
        self.flushLoggedErrors()

    @inlineCallbacks
    def test_durableAcrossRestart(self) -> Any:
        """
        Persistent messages in a durable queue survive a broker restart;
        the consumer registered before the restart gets them afterwards.
        """
        bus = yield startedBus(self.reactor)
        x, q = self.names()
        yield bus.declare(Topology([Exchange(x)], [Queue(q, durable=True)], [Binding(q, x, "#")]))
        for i in range(20):
            yield bus.publish(x, "k", b"p%d" % i, persistent=True)
        yield bus.publish(x, "k", b"transient", persistent=False)
        yield self.restartBroker()
        yield self.waitFor(lambda: bus.health().ok, timeout=60)
        got = Collector(self.reactor)
        consumer = yield bus.consume(q, got, prefetch=100)
        bodies = []
        for _ in range(20):
            m = yield got.next()
            bodies.append(m.body)
            m.ack()
        self.assertEqual(bodies, [b"p%d" % i for i in range(20)])
        yield deferLater(self.reactor, 0.3, lambda: None)
        self.assertEqual(len(got.received), 20)  # the transient one is gone (classic queue)
        yield consumer.stop()
        yield bus.deleteQueue(q)
        yield bus.deleteExchange(x)
        yield bus.stopService()
        self.flushLoggedErrors()

    @inlineCallbacks
    def test_consumerResumesAfterRestart(self) -> Any:
        """
        A consumer made before a restart receives messages published after
        it, and an unacked message from before is redelivered.
        """
        bus = yield startedBus(self.reactor)
        x, q = self.names()
        yield bus.declare(Topology([Exchange(x)], [Queue(q, durable=True)], [Binding(q, x, "#")]))
        got = Collector(self.reactor)
        consumer = yield bus.consume(q, got, prefetch=10)
        yield bus.publish(x, "k", b"before")
        unacked = yield got.next()
        self.assertFalse(unacked.redelivered)
        yield self.restartBroker()
        yield self.waitFor(lambda: bus.health().ok, timeout=60)
        again = yield got.next(timeout=30)
        self.assertEqual((again.body, again.redelivered), (b"before", True))
        again.ack()
        unacked.ack()  # on the dead connection: ignored
        yield bus.publish(x, "k", b"after")
        m = yield got.next()
        self.assertEqual(m.body, b"after")
        m.ack()
        yield consumer.stop()
        yield bus.deleteQueue(q)
        yield bus.deleteExchange(x)
        yield bus.stopService()
        self.flushLoggedErrors()

    @inlineCallbacks
    def test_ackWhileChannelCloses(self) -> Any:
        """
        A message settled while its consumer's channel is closing is not
        sent on that channel (the broker would close the whole connection);
        the connection stays up and the message is redelivered.
        """
        bus = yield startedBus(self.reactor)
        x, q = self.names()
        yield bus.declare(Topology([Exchange(x)], [Queue(q, durable=True)], [Binding(q, x, "#")]))
        got = Collector(self.reactor)
        consumer = yield bus.consume(q, got, prefetch=10)
        yield bus.publish(x, "k", b"late")
        message = yield got.next()
        closing = message._client.closeChannel(message._channel)
        message.ack()  # after channel.close went out, before close-ok came back
        yield closing
        yield consumer.stop()
        self.assertTrue(bus.health().ok)
        again = Collector(self.reactor)
        consumer = yield bus.consume(q, again, prefetch=10)
        redelivered = yield again.next(timeout=10)
        self.assertEqual((redelivered.body, redelivered.redelivered), (b"late", True))
        redelivered.ack()
        yield bus.publish(x, "k", b"next")
        m = yield again.next()
        m.ack()
        self.assertTrue(bus.health().ok)
        yield consumer.stop()
        yield bus.deleteQueue(q)
        yield bus.deleteExchange(x)
        yield bus.stopService()

    @inlineCallbacks
    def test_topologyRedeclared(self) -> Any:
        """
        A transient exchange and queue, which a broker restart destroys,
        are declared again on reconnection and their consumer re-established.
        """
        bus = yield startedBus(self.reactor)
        x, q = self.names()
        yield bus.declare(Topology([Exchange(x, durable=False)], [Queue(q, durable=False)], [Binding(q, x, "#")]))
        got = Collector(self.reactor)
        consumer = yield bus.consume(q, got, prefetch=10)
        yield self.restartBroker()
        yield self.waitFor(lambda: bus.health().ok, timeout=60)
        yield bus.publish(x, "k", b"after restart")
        m = yield got.next()
        self.assertEqual(m.body, b"after restart")
        m.ack()
        yield consumer.stop()
        yield bus.deleteQueue(q)
        yield bus.deleteExchange(x)
        yield bus.stopService()

    @inlineCallbacks
    def test_nack(self) -> Any:
        """
        A publish the broker nacks (a full queue with x-overflow
        reject-publish) fails with PublishFailed; the bus keeps working.
        """
        bus = yield startedBus(self.reactor)
        x, q = self.names()
        full = Queue(q, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
        yield bus.declare(Topology([Exchange(x)], [full], [Binding(q, x, "#")]))
        yield bus.publish(x, "k", b"fits")
        yield self.assertFailure(bus.publish(x, "k", b"refused"), PublishFailed)
        yield bus.purgeQueue(q)
        yield bus.publish(x, "k", b"fits again")
        count = yield bus.messageCount(q)
        self.assertEqual(count, 1)
        yield bus.deleteQueue(q)
        yield bus.deleteExchange(x)
        yield bus.stopService()

    @inlineCallbacks
    def test_stopWithPendingWork(self) -> Any:
        """
        stopService waits for outstanding confirms and closes the connection
        cleanly; nothing is left pending.
        """
        bus = yield startedBus(self.reactor)
        x, q = self.names()
        yield bus.declare(Topology([Exchange(x)], [Queue(q)], [Binding(q, x, "#")]))
        ds = [bus.publish(x, "k", b"%d" % i) for i in range(500)]
        cleanup = openBus(realservices.AMQP_URL, self.reactor)
        yield bus.stopService()
        results = yield DeferredList(ds, consumeErrors=True)
        self.assertTrue(all(ok for ok, _ in results))
        yield cleanup.startService()
        count = yield cleanup.messageCount(q)
        self.assertEqual(count, 500)
        yield cleanup.deleteQueue(q)
        yield cleanup.deleteExchange(x)
        yield cleanup.stopService()
