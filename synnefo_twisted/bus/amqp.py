# -*- test-case-name: tests.bus.test_amqp,tests.integration.bus.test_rabbitmq -*-
"""
The RabbitMQ message bus: txAMQP 0.8.2 inside a L{ClientService}.

Every (re)connection is prepared before use: authenticate, open the
publish channel in confirm mode, re-declare every topology declared so
far, and re-establish every consumer (each on its own channel with its
own QoS window). Publishes that are waiting for a confirmation when the
connection drops fail with L{PublishFailed}: the caller may publish again
(duplicates are possible, never silent loss). Messages unsettled when a
connection drops are redelivered by the broker.

txAMQP ships no AMQP spec; the path of Debian's C{amqp-specs} RabbitMQ
spec comes from the configuration. See L{synnefo_twisted.bus._wire} for
the frame-codec fixes, applied only to L{BusProtocol}.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Generator, Mapping
from typing import Any

from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import IService, Service
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    DeferredList,
    fail,
    inlineCallbacks,
    succeed,
)
from twisted.internet.interfaces import IProtocol, IProtocolFactory, IReactorTime, IStreamClientEndpoint
from twisted.python.failure import Failure
from txamqp import spec as txspec
from txamqp.client import Closed, TwistedDelegate
from txamqp.connection import Frame
from txamqp.content import Content
from txamqp.factory import AMQFactory
from txamqp.message import Message
from txamqp.protocol import AMQClient
from zope.interface import implementer

from synnefo_twisted.bus._common import (
    BusMetrics,
    Handler,
    HandlerRunner,
    IncomingBase,
    deadLetterHeaders,
    log,
    whenFired,
)
from synnefo_twisted.bus._wire import (
    DeliverFrame,
    Delivery,
    ackFrame,
    checkPublishable,
    packFrame,
    unpackFrame,
    unpackFrameFast,
)
from synnefo_twisted.bus.errors import BusStopped, DeclareFailed, PublishFailed
from synnefo_twisted.bus.topology import Topology
from synnefo_twisted.health import Health
from synnefo_twisted.interfaces import IConsumer, IHealthReporter, IIncomingMessage, IMessageBus
from synnefo_twisted.metrics import MetricsRegistry

PUBLISH_CHANNEL = 1
DECLARE_CHANNEL = 2
SUMMARY_INTERVAL = 60.0
CONFIRM_WAIT_ON_STOP = 10.0

_SPEC_CACHE: dict[str, Any] = {}


def loadAMQPSpec(path: str) -> Any:
    """
    The parsed AMQP spec at C{path} (cached: parsing takes ~50 ms).
    """
    spec = _SPEC_CACHE.get(path)
    if spec is None:
        spec = _SPEC_CACHE[path] = txspec.load(path)
    return spec


def _closeReason(reason: Any) -> str:
    """
    A readable reason from a txAMQP close message or a Failure.
    """
    if isinstance(reason, Failure):
        reason = reason.value
    if isinstance(reason, Closed) and reason.args:
        reason = reason.args[0]
    if isinstance(reason, Message):
        try:
            return f"{reason.reply_code} {reason.reply_text}"
        except (AttributeError, KeyError):
            return str(reason)
    if isinstance(reason, BaseException):
        return f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__
    return str(reason)


class BusDelegate(TwistedDelegate):
    """
    txAMQP's delegate plus the broker-to-client methods it lacks: publisher
    confirms (C{basic.ack}/C{basic.nack}); deliveries go straight to the
    bus instead of through per-consumer queues.
    """

    client: BusProtocol

    def connection_start(self, ch: Any, msg: Any) -> None:
        # Announce the capabilities we handle, so that RabbitMQ explains a
        # refused login (connection.close 403) instead of just hanging up.
        ch.connection_start_ok(
            client_properties={
                "product": "synnefo-twisted",
                "capabilities": {
                    "authentication_failure_close": True,
                    "publisher_confirms": True,
                    "basic.nack": True,
                    "consumer_cancel_notify": True,
                },
            },
            mechanism=self.client.mechanism,
            response=self.client.response,
            locale=self.client.locale,
        )

    def basic_ack(self, ch: Any, msg: Any) -> None:
        self.client.confirmed(ch, msg.delivery_tag, msg.multiple, True)

    def basic_nack(self, ch: Any, msg: Any) -> None:
        self.client.confirmed(ch, msg.delivery_tag, msg.multiple, False)

    def basic_deliver(self, ch: Any, msg: Any) -> None:
        self.client.delivered(ch, msg)

    def connection_close(self, ch: Any, msg: Any) -> None:
        self.client.closeReason = _closeReason(msg)
        super().connection_close(ch, msg)

    def basic_cancel(self, ch: Any, msg: Any) -> None:
        log.warn("broker cancelled consumer {tag}", tag=msg.consumer_tag)


class BusProtocol(AMQClient):
    """
    One AMQP connection: txAMQP's client with our frame codec, publisher
    confirms and direct delivery dispatch.
    """

    checkHB: Any
    sendHB: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lastSent = self._lastReceived = self.clock.seconds()
        self.bus: AMQPBus | None = None
        self.pending: dict[int, Deferred[None]] = {}
        self.nextTag = 1
        self.publishChannel: Any = None
        self.publishReady: Deferred[None] | None = None
        self.consumersByTag: dict[str, AMQPConsumer] = {}
        self.channelIds = itertools.count(DECLARE_CHANNEL + 1)
        self.lost = False
        self.gate: _Gate | None = None
        self.closeReason = ""
        #: channel id -> the delivery being assembled on the fast path
        self.assembling: dict[int, Delivery] = {}

    def realProtocol(self) -> BusProtocol:
        """
        This protocol (ClientService hands out a proxy).
        """
        return self

    # -- heartbeats --------------------------------------------------------
    # txAMQP restarts a LoopingCall for every frame sent and replaces a
    # DelayedCall for every frame received (a third of the publish cost);
    # here frames only record the time, and two timers check it.

    def reschedule_send_heartbeat(self) -> None:
        if self.heartbeatInterval <= 0 or self.lost:
            return
        self._lastSent = self.clock.seconds()
        if not self.sendHB.running:
            self.sendHB.start(self.heartbeatInterval / 2, now=False)

    def send_heartbeat(self) -> None:
        now = self.clock.seconds()
        if now - self._lastSent >= self.heartbeatInterval / 2:
            super().send_heartbeat()
            self._lastSent = now

    def reschedule_check_heartbeat(self) -> None:
        self._lastReceived = self.clock.seconds()
        if not self.lost and not self.checkHB.active():
            self.checkHB = self.clock.callLater(
                self.heartbeatInterval * self.MAX_UNSEEN_HEARTBEAT, self.check_heartbeat
            )

    def check_heartbeat(self) -> None:
        limit = self.heartbeatInterval * self.MAX_UNSEEN_HEARTBEAT
        idle = self.clock.seconds() - self._lastReceived
        if idle < limit:
            self.checkHB = self.clock.callLater(limit - idle, self.check_heartbeat)
            return
        log.warn("no frame from the broker for {idle:.0f} s: dropping the connection", idle=idle)
        self.transport.abortConnection()

    # -- frame codec -----------------------------------------------------

    def writer(self, frame: Frame) -> None:
        # txAMQP's writer stops for good when a frame cannot be encoded; a
        # half-written message would desynchronise the stream anyway, so
        # drop the connection (and reconnect) instead.
        try:
            self.send_frame(frame)
        except Exception:
            log.failure("cannot encode an AMQP frame; dropping the connection")
            self.transport.loseConnection()
        finally:
            self.outgoing.get().addCallback(self.writer)

    def send_init_string(self) -> None:
        # The AMQP 0-9-1 protocol header (txAMQP sends the 0-9 one, "AMQP 1 1 0 9";
        # the spec files only say 0-9).
        self.transport.write(b"AMQP\x00\x00\x09\x01")

    def _pack_frame(self, frame: Frame) -> bytes:
        return packFrame(self.spec, frame)

    def _unpack_frame(self, data: bytes) -> Frame | DeliverFrame:
        return unpackFrameFast(self.spec, data)

    # -- deliveries: the fast path ---------------------------------------
    # txAMQP hands every frame through an inlineCallbacks generator, a
    # channel lock and two queues, and assembles each message in another
    # generator (most of the consuming cost). A basic.deliver, its content
    # header and its body frames are assembled here instead, synchronously,
    # whenever its channel has nothing in txAMQP's queues (so the order of
    # a channel's frames is kept); anything else takes txAMQP's path.

    def frame_received(self, frame: Any) -> None:
        if self.heartbeatInterval > 0 and not self.closed:
            self.reschedule_check_heartbeat()
        channelId = frame.channel
        delivery = self.assembling.get(channelId)
        if delivery is not None:
            ch = self.channels.get(channelId)
            try:
                complete = delivery.feed(frame if isinstance(frame, DeliverFrame) else frame.payload)
            except ValueError as e:
                log.error("AMQP frame out of sequence on channel {channel}: {error}", channel=channelId, error=str(e))
                del self.assembling[channelId]
                self.transport.abortConnection()
                return
            if complete:
                del self.assembling[channelId]
                if ch is not None and not ch.closed:
                    self.delivered(ch, delivery)
            return
        if isinstance(frame, DeliverFrame):
            ch = self.channels.get(channelId)
            if ch is not None and not ch.closed and not ch.incoming.pending and not ch.incoming.waiting:
                self.assembling[channelId] = Delivery(frame)
                return
            frame = unpackFrame(self.spec, frame.data)
        # txAMQP's path (it reschedules the heartbeat check itself)
        super().frame_received(frame)

    def sendAck(self, ch: Any, deliveryTag: int, multiple: bool = False) -> Deferred[None]:
        """
        Write a basic.ack for C{ch} straight to the transport (txAMQP's
        method invocation builds a generator and a frame object per ack).
        Frames are written in order either way: txAMQP's writer drains its
        queue synchronously.
        """
        if ch.closed or self.lost:
            return fail(Closed(ch.reason))
        self.reschedule_send_heartbeat()
        self.transport.write(ackFrame(ch.id, deliveryTag, multiple))
        return succeed(None)

    # -- channels --------------------------------------------------------

    @inlineCallbacks
    def openChannel(self, channelId: int | None = None) -> Generator[Deferred[Any], Any, Any]:
        """
        Open a new channel (a fresh id unless given).
        """
        cid = next(self.channelIds) if channelId is None else channelId
        self.channels.pop(cid, None)
        ch = yield self.channel(cid)
        yield ch.channel_open()
        return ch

    @inlineCallbacks
    def closeChannel(self, ch: Any) -> Generator[Deferred[Any], Any, None]:
        """
        Close C{ch} cleanly (the broker requeues its unacked messages).
        """
        if ch.closed or self.lost:
            return
        # From here on nothing but close-ok may go out on this channel: the
        # broker treats any other frame (a late ack) as a connection error.
        ch.snfClosing = True
        yield ch.channel_close(reply_code=200, reply_text="bye", class_id=0, method_id=0)
        ch.close(None)
        self.channels.pop(ch.id, None)

    def do_close(self, reason: Any) -> None:
        # txAMQP iterates over the live dicts while closing them; closing a
        # channel fires waiters whose callbacks may open or forget channels,
        # so iterate over copies.
        for ch in list(self.channels.values()):
            ch.close(reason)
        for q in list(self.queues.values()):
            q.close()
        self.delegate.close(reason)

    def channel_failed(self, channel: Any, reason: Failure) -> None:
        self.channels.pop(channel.id, None)
        if self.bus is not None:
            self.bus._channelFailed(self, channel, reason)

    # -- publisher confirms ----------------------------------------------

    @inlineCallbacks
    def openPublishChannel(self) -> Generator[Deferred[Any], Any, None]:
        ch = yield self.openChannel(PUBLISH_CHANNEL)
        yield ch.confirm_select()
        self.publishChannel = ch
        self.nextTag = 1

    def publishConfirmed(
        self, exchange: str, routingKey: str, body: bytes, headers: Mapping[str, Any] | None, persistent: bool
    ) -> Deferred[None]:
        if self.publishReady is not None:
            ready = whenFired(self.publishReady)

            def retry(_: object) -> Deferred[None]:
                return self.publishConfirmed(exchange, routingKey, body, headers, persistent)

            return ready.addCallback(retry)
        try:
            checkPublishable(body, headers)
        except (TypeError, ValueError):
            return fail()
        ch = self.publishChannel
        if self.lost or ch is None or ch.closed:
            return fail(PublishFailed("the publish channel is closed"))
        properties: dict[str, Any] = {"delivery-mode": 2 if persistent else 1}
        if headers:
            properties["headers"] = dict(headers)
        tag = self.nextTag
        self.nextTag += 1
        d = self.pending[tag] = Deferred()
        sent = ch.basic_publish(exchange=exchange, routing_key=routingKey, content=Content(body, properties=properties))
        sent.addErrback(self._publishNotSent, tag)
        return d

    def _publishNotSent(self, failure: Failure, tag: int) -> None:
        d = self.pending.pop(tag, None)
        if d is not None:
            d.errback(PublishFailed(f"publish not sent: {_closeReason(failure)}"))

    def confirmed(self, ch: Any, tag: int, multiple: bool, ok: bool) -> None:
        if multiple:
            tags = []
            for t in self.pending:
                if t > tag:
                    break
                tags.append(t)
        else:
            tags = [tag]
        for t in tags:
            d = self.pending.pop(t, None)
            if d is None:
                continue
            if ok:
                d.callback(None)
            else:
                d.errback(PublishFailed("the broker nacked the message"))

    def failPending(self, reason: str) -> None:
        pending, self.pending = self.pending, {}
        for d in pending.values():
            d.errback(PublishFailed(reason))

    # -- deliveries ------------------------------------------------------

    def delivered(self, ch: Any, msg: Any) -> None:
        consumer = self.consumersByTag.get(msg.consumer_tag)
        if consumer is None:
            log.warn("delivery for unknown consumer {tag}: left unacked", tag=msg.consumer_tag)
            return
        consumer._deliver(self, ch, msg)

    def connectionLost(self, reason: Failure) -> None:
        self.lost = True
        try:
            super().connectionLost(reason)
        finally:
            self.failPending(f"connection lost before confirmation: {_closeReason(reason)}")
            if self.bus is not None:
                self.bus._connectionLost(self, reason)


class BusFactory(AMQFactory):
    """
    Builds L{BusProtocol}s for one vhost.
    """

    protocol = BusProtocol
    noisy = False

    def __init__(self, spec: Any, vhost: str, heartbeat: int, clock: IReactorTime) -> None:
        self._spec = spec
        self._clock = clock
        self._vhost = vhost
        self._heartbeat = heartbeat

    def buildProtocol(self, addr: Any) -> BusProtocol:
        return BusProtocol(
            BusDelegate(), vhost=self._vhost, spec=self._spec, heartbeat=self._heartbeat, clock=self._clock
        )


@implementer(IProtocol)
class _Gate:
    """
    Sits between the transport and ClientService's protocol proxy, and
    hides the loss of a connection that was never successfully prepared.

    (ClientService in Twisted 26.10 has no transition for a connection
    lost while C{prepareConnection} runs, nor after it failed: it raises
    C{NoTransition}. Such a connection only concerns our protocol.)
    """

    def __init__(self, proxy: Any) -> None:
        self._proxy = proxy
        self._protocol: BusProtocol = proxy.realProtocol()
        self._protocol.gate = self
        self.opened = False
        self.transport: Any = None

    def open(self) -> None:
        self.opened = True

    def makeConnection(self, transport: Any) -> None:
        self.transport = transport
        self._proxy.makeConnection(transport)

    def dataReceived(self, data: bytes) -> None:
        self._protocol.dataReceived(data)

    def connectionLost(self, reason: Failure) -> None:
        if self.opened:
            self._proxy.connectionLost(reason)
        else:
            self._protocol.connectionLost(reason)

    def connectionMade(self) -> None:
        """
        Not called: makeConnection is forwarded instead.
        """


@implementer(IProtocolFactory)
class _GateFactory:
    def __init__(self, factory: IProtocolFactory) -> None:
        self._factory = factory

    def buildProtocol(self, addr: Any) -> _Gate | None:
        proxy = self._factory.buildProtocol(addr)
        return None if proxy is None else _Gate(proxy)

    def doStart(self) -> None:
        self._factory.doStart()

    def doStop(self) -> None:
        self._factory.doStop()


@implementer(IStreamClientEndpoint)
class _ObservedEndpoint:
    """
    An endpoint wrapper telling the bus about failed connection attempts.
    """

    def __init__(self, endpoint: IStreamClientEndpoint, onFailure: Callable[[Failure], None], description: str) -> None:
        self._endpoint = endpoint
        self._onFailure = onFailure
        self._description = description

    def __repr__(self) -> str:
        return f"<AMQP endpoint {self._description}>"

    def connect(self, factory: IProtocolFactory) -> Deferred[IProtocol]:
        d: Deferred[Any] = self._endpoint.connect(_GateFactory(factory))

        def unwrap(gate: _Gate) -> Any:
            return gate._proxy

        d.addCallback(unwrap)

        def failed(f: Failure) -> Failure:
            self._onFailure(f)
            return f

        d.addErrback(failed)
        return d


@implementer(IIncomingMessage)
class AMQPIncomingMessage(IncomingBase):
    """
    A message delivered by RabbitMQ.
    """

    def __init__(self, consumer: AMQPConsumer, client: BusProtocol, channel: Any, msg: Any) -> None:
        content = msg.content
        body = content.body if isinstance(content.body, bytes) else content.body.encode("utf-8")
        props = content.properties
        super().__init__(body, msg.exchange, msg.routing_key, dict(props.get("headers") or {}), bool(msg.redelivered))
        self.persistent = props.get("delivery-mode") == 2
        self._consumer = consumer
        self._client = client
        self._channel = channel
        self._tag = msg.delivery_tag

    def _usable(self, action: str) -> bool:
        if self._client.lost or self._channel.closed or getattr(self._channel, "snfClosing", False):
            log.debug(
                "{action} of {message!r} after its channel closed: the broker redelivers it",
                action=action,
                message=self,
            )
            return False
        return True

    def _send(self, d: Deferred[Any], action: str) -> None:
        def failed(f: Failure) -> None:
            log.info("{action} of {message!r} not sent: {reason}", action=action, message=self, reason=_closeReason(f))

        d.addErrback(failed)

    def _doAck(self) -> None:
        self._consumer._settled(self)
        if self._usable("ack"):
            self._consumer._bus._metrics.acked.inc()
            self._send(self._client.sendAck(self._channel, self._tag), "ack")

    def _doReject(self) -> None:
        self._consumer._settled(self)
        if self._usable("reject"):
            self._consumer._bus._metrics.rejected.inc()
            self._send(self._channel.basic_reject(delivery_tag=self._tag, requeue=False), "reject")

    def _doRequeue(self) -> None:
        self._consumer._settled(self)
        if self._usable("requeue"):
            self._consumer._bus._metrics.requeued.inc()
            self._send(self._channel.basic_reject(delivery_tag=self._tag, requeue=True), "requeue")

    def _doDeadLetter(self, reason: str) -> Deferred[None]:
        bus = self._consumer._bus
        queue = bus._topology.queue(self._consumer.queue)
        dlx = queue.deadLetterExchange if queue is not None else None
        if dlx is None:
            log.warn(
                "queue {queue} has no dead-letter exchange in the declared topology; rejecting {message!r} ({reason})",
                queue=self._consumer.queue,
                message=self,
                reason=reason,
            )
            self._doReject()
            return succeed(None)
        headers = deadLetterHeaders(self.headers, reason, self.exchange, self.routingKey)
        d = bus.publish(dlx, self.routingKey, self.body, headers, self.persistent)

        def published(_: object) -> None:
            self._consumer._settled(self)
            if self._usable("ack"):
                bus._metrics.deadLettered.inc()
                self._send(self._channel.basic_ack(delivery_tag=self._tag, multiple=False), "ack")

        d.addCallback(published)
        return d


@implementer(IConsumer)
class AMQPConsumer:
    """
    A subscription to one queue, re-established on every connection.
    """

    def __init__(self, bus: AMQPBus, queue: str, handler: Handler, prefetch: int, tag: str) -> None:
        self._bus = bus
        self.queue = queue
        self._runner = HandlerRunner(handler, queue)
        self._prefetch = prefetch
        self.tag = tag
        self.stopping = False
        self._client: BusProtocol | None = None
        self._channel: Any = None
        self._unsettled: set[AMQPIncomingMessage] = set()
        self._stopped: Deferred[None] | None = None

    def __repr__(self) -> str:
        return f"<AMQPConsumer queue={self.queue!r} tag={self.tag!r}>"

    @inlineCallbacks
    def _attach(self, client: BusProtocol) -> Generator[Deferred[Any], Any, None]:
        ch = yield client.openChannel()
        yield ch.basic_qos(prefetch_size=0, prefetch_count=max(0, min(self._prefetch, 65535)), global_=False)
        client.consumersByTag[self.tag] = self
        try:
            yield ch.basic_consume(queue=self.queue, consumer_tag=self.tag, no_ack=False)
        except Exception:
            client.consumersByTag.pop(self.tag, None)
            raise
        self._client = client
        self._channel = ch

    def _deliver(self, client: BusProtocol, ch: Any, msg: Any) -> None:
        if self.stopping:
            return  # left unacked: requeued when the channel closes
        message = AMQPIncomingMessage(self, client, ch, msg)
        self._unsettled.add(message)
        self._bus._metrics.consumed.inc()
        self._runner.run(message)

    def _settled(self, message: AMQPIncomingMessage) -> None:
        self._unsettled.discard(message)

    @inlineCallbacks
    def _stop(self) -> Generator[Deferred[Any], Any, None]:
        self.stopping = True
        self._bus._forget(self)
        client, ch = self._client, self._channel
        if client is not None and ch is not None and not client.lost and not ch.closed:
            try:
                yield ch.basic_cancel(consumer_tag=self.tag)
            except Exception:
                log.failure("cancelling consumer {tag}", tag=self.tag)
        yield self._runner.idle()
        if client is not None and ch is not None:
            client.consumersByTag.pop(self.tag, None)
            try:
                yield client.closeChannel(ch)
            except Exception:
                log.failure("closing the channel of consumer {tag}", tag=self.tag)
        self._unsettled.clear()

    def stop(self) -> Deferred[None]:
        """
        Cancel the subscription; once the handlers in progress have
        finished, close the channel so the broker requeues what is unsettled.
        """
        if self._stopped is None:
            self._stopped = self._stop()
        return whenFired(self._stopped)


@implementer(IMessageBus, IService, IHealthReporter)
class AMQPBus(Service):
    """
    The RabbitMQ L{IMessageBus}.
    """

    healthName = "bus"

    def __init__(
        self,
        reactor: Any,
        endpoint: IStreamClientEndpoint,
        *,
        username: str,
        password: str,
        vhost: str = "/",
        spec: str = "/usr/share/amqp/specs/0-9-1-rabbit/amqp0-9-1.stripped.extended.xml",
        heartbeat: int = 30,
        metrics: MetricsRegistry | None = None,
        retryPolicy: Callable[[int], float] | None = None,
        description: str = "",
    ) -> None:
        self._reactor = reactor
        self._username = username
        self._password = password
        self._vhost = vhost
        self._description = description or f"vhost {vhost}"
        self._metrics = BusMetrics(metrics)
        self._topology = Topology()
        self._consumers: list[AMQPConsumer] = []
        self._tags = itertools.count(1)
        self._client: BusProtocol | None = None
        self._state = "stopped"
        self._lastError = ""
        self._failures = 0
        self._lastSummary = 0.0
        factory = BusFactory(loadAMQPSpec(spec), vhost, heartbeat, reactor)
        self._service = ClientService(
            _ObservedEndpoint(endpoint, self._connectFailed, self._description),
            factory,
            retryPolicy=retryPolicy or backoffPolicy(initialDelay=0.5, maxDelay=30.0, factor=2.0),
            clock=reactor,
            prepareConnection=self._prepare,
        )

    def __repr__(self) -> str:
        return f"<AMQPBus {self._description} {self._state}>"

    # -- IService ---------------------------------------------------------

    def startService(self) -> Deferred[None]:
        Service.startService(self)
        self._state = "connecting"
        log.info("connecting to the message bus ({where})", where=self._description)
        self._service.startService()

        def connected(_: object) -> None:
            return None

        return self._service.whenConnected().addCallback(connected)

    @inlineCallbacks
    def stopService(self) -> Generator[Deferred[Any], Any, None]:
        Service.stopService(self)
        yield DeferredList([c.stop() for c in list(self._consumers)], consumeErrors=True)
        client = self._client
        if client is not None and not client.lost:
            if client.pending:
                # Wait (boundedly) for the confirms of publishes in flight.
                waiting = DeferredList([whenFired(d) for d in client.pending.values()], consumeErrors=True)
                timeout = self._reactor.callLater(CONFIRM_WAIT_ON_STOP, waiting.cancel)
                yield waiting
                if timeout.active():
                    timeout.cancel()
                if client.pending:
                    log.warn(
                        "{count} publishes still unconfirmed after {seconds} s; closing anyway",
                        count=len(client.pending),
                        seconds=CONFIRM_WAIT_ON_STOP,
                    )
            try:
                ch0 = yield client.channel(0)
                closing = ch0.connection_close(reply_code=200, reply_text="bye", class_id=0, method_id=0)
                timeout = self._reactor.callLater(2, closing.cancel)
                try:
                    yield closing
                finally:
                    if timeout.active():
                        timeout.cancel()
            except (CancelledError, Closed):
                pass
            except Exception:
                log.failure("closing the AMQP connection")
        self._state = "stopped"
        yield self._service.stopService()
        log.info("message bus connection closed ({where})", where=self._description)

    def health(self) -> Health:
        if self._state == "connected":
            return Health.up(f"connected ({self._description})")
        if self._state == "connecting":
            detail = f"connecting ({self._description})"
            if self._lastError:
                detail += f"; last error: {self._lastError}"
            return Health(False, "connecting", detail)
        return Health(False, "stopped", "message bus stopped")

    # -- connection life --------------------------------------------------

    def _recordFailure(self, reason: str) -> None:
        self._lastError = reason
        self._failures += 1
        now = self._reactor.seconds()
        if self._failures == 1:
            log.warn("message bus unreachable ({where}): {reason}; retrying", where=self._description, reason=reason)
            self._lastSummary = now
        elif now - self._lastSummary >= SUMMARY_INTERVAL:
            log.warn(
                "message bus still unreachable after {attempts} attempts ({where}): {reason}",
                attempts=self._failures,
                where=self._description,
                reason=reason,
            )
            self._lastSummary = now

    def _connectFailed(self, failure: Failure) -> None:
        if self.running:
            self._recordFailure(_closeReason(failure))

    @inlineCallbacks
    def _prepare(self, proxy: Any) -> Generator[Deferred[Any], Any, None]:
        client: BusProtocol = proxy.realProtocol()
        client.bus = self
        try:
            yield client.authenticate(self._username, self._password)
            yield client.openPublishChannel()
            declare = yield client.openChannel(DECLARE_CHANNEL)
            yield self._declareOn(declare, self._topology)
        except Exception as e:
            if self.running:
                self._recordFailure(_closeReason(e))
            client.transport.loseConnection()
            raise
        for consumer in list(self._consumers):
            try:
                yield consumer._attach(client)
            except Exception as e:
                log.error(
                    "could not re-establish consumer on queue {queue}: {reason}",
                    queue=consumer.queue,
                    reason=_closeReason(e),
                )
        if client.lost:
            raise PublishFailed("the connection was lost while it was being prepared")
        if client.gate is not None:
            client.gate.open()
        self._client = client
        self._state = "connected"
        self._metrics.reconnects.inc()
        if self._failures:
            log.info(
                "message bus connected ({where}) after {attempts} failed attempts",
                where=self._description,
                attempts=self._failures,
            )
        elif self._lastError:
            log.info("message bus reconnected ({where})", where=self._description)
        else:
            log.info("message bus connected ({where})", where=self._description)
        self._failures = 0
        self._lastError = ""

    def _connectionLost(self, client: BusProtocol, reason: Failure) -> None:
        if client is not self._client:
            return
        self._client = None
        for consumer in self._consumers:
            if consumer._client is client:
                consumer._client = None
                consumer._channel = None
        if self.running:
            why = client.closeReason or _closeReason(reason)
            self._state = "connecting"
            self._lastError = f"connection lost: {why}"
            log.warn(
                "message bus connection lost ({where}): {reason}; reconnecting", where=self._description, reason=why
            )

    def _channelFailed(self, client: BusProtocol, channel: Any, reason: Failure) -> None:
        text = _closeReason(reason)
        if channel is client.publishChannel:
            client.publishChannel = None
            if not client.lost:
                log.warn("publish channel closed by the broker: {reason}; reopening", reason=text)
                ready = client.publishReady = Deferred()

                def reopened(result: object) -> None:
                    client.publishReady = None
                    ready.callback(None)
                    if isinstance(result, Failure):
                        log.failure("reopening the publish channel", result)

                client.openPublishChannel().addBoth(reopened)
            client.failPending(f"publish channel closed by the broker: {text}")
            return
        for consumer in self._consumers:
            if consumer._channel is channel:
                log.error(
                    "channel of consumer on {queue} closed by the broker: {reason}", queue=consumer.queue, reason=text
                )
                consumer._channel = None

    # -- IMessageBus ------------------------------------------------------

    def _withClient(self) -> Deferred[BusProtocol]:
        client = self._client
        if client is not None and not client.lost:
            return succeed(client)
        if not self.running:
            return fail(BusStopped("the message bus is not running"))
        d: Deferred[Any] = self._service.whenConnected()

        def stopped(f: Failure) -> Failure:
            if f.check(CancelledError):
                return Failure(BusStopped("the message bus stopped while waiting for a connection"))
            return f

        def unwrap(proxy: Any) -> BusProtocol:
            client: BusProtocol = proxy.realProtocol()
            return client

        d.addCallback(unwrap)
        d.addErrback(stopped)
        return d

    @inlineCallbacks
    def _declareOn(self, ch: Any, topology: Topology) -> Generator[Deferred[Any], Any, None]:
        for e in topology.exchanges:
            yield ch.exchange_declare(exchange=e.name, type=e.type, durable=e.durable)
        for q in topology.queues:
            yield ch.queue_declare(
                queue=q.name, durable=q.durable, auto_delete=q.autoDelete, arguments=q.declareArguments()
            )
        for b in topology.bindings:
            yield ch.queue_bind(queue=b.queue, exchange=b.exchange, routing_key=b.routingKey)

    @inlineCallbacks
    def declare(self, topology: Any) -> Generator[Deferred[Any], Any, None]:
        try:
            self._topology.merge(topology)
        except ValueError as e:
            raise DeclareFailed(str(e)) from e
        client = yield self._withClient()
        try:
            ch = yield client.openChannel()
            try:
                yield self._declareOn(ch, topology)
            finally:
                if not ch.closed:
                    yield client.closeChannel(ch)
        except Closed as e:
            raise DeclareFailed(_closeReason(e)) from e
        self._topology = self._topology.merge(topology)

    def publish(
        self,
        exchange: str,
        routingKey: str,
        body: bytes,
        headers: Any = None,
        persistent: bool = True,
    ) -> Deferred[None]:
        checkPublishable(body, headers)
        self._metrics.published.inc()
        client = self._client
        d: Deferred[Any]
        if client is not None and not client.lost:
            d = client.publishConfirmed(exchange, routingKey, body, headers, persistent)
        else:

            def send(c: BusProtocol) -> Deferred[None]:
                return c.publishConfirmed(exchange, routingKey, body, headers, persistent)

            d = self._withClient().addCallback(send)
        d.addCallbacks(self._confirmed, self._publishFailed)
        return d

    def _confirmed(self, _: object) -> None:
        self._metrics.confirmed.inc()

    def _publishFailed(self, failure: Failure) -> Failure:
        self._metrics.publishFailed.inc()
        return failure

    @inlineCallbacks
    def consume(self, queue: str, handler: Any, prefetch: int = 100) -> Generator[Deferred[Any], Any, AMQPConsumer]:
        consumer = AMQPConsumer(self, queue, handler, prefetch, f"snf-{queue}-{next(self._tags)}")
        client = yield self._withClient()
        try:
            yield consumer._attach(client)
        except Closed as e:
            raise DeclareFailed(f"cannot consume from {queue!r}: {_closeReason(e)}") from e
        self._consumers.append(consumer)
        return consumer

    def _forget(self, consumer: AMQPConsumer) -> None:
        if consumer in self._consumers:
            self._consumers.remove(consumer)

    # -- management (snf-manage queue-*, tests) ---------------------------

    @inlineCallbacks
    def _onChannel(self, action: Callable[[Any], Deferred[Any]]) -> Generator[Deferred[Any], Any, Any]:
        client = yield self._withClient()
        ch = yield client.openChannel()
        try:
            result = yield action(ch)
        except Closed as e:
            raise DeclareFailed(_closeReason(e)) from e
        finally:
            if not ch.closed:
                yield client.closeChannel(ch)
        return result

    def messageCount(self, queue: str) -> Deferred[int]:
        """
        How many messages wait in C{queue} (not counting unacked ones).
        """
        d = self._onChannel(lambda ch: ch.queue_declare(queue=queue, passive=True))
        return d.addCallback(lambda reply: int(reply.message_count))

    def purgeQueue(self, queue: str) -> Deferred[int]:
        """
        Drop the waiting messages of C{queue}; Deferred with their number.
        """
        d = self._onChannel(lambda ch: ch.queue_purge(queue=queue))
        return d.addCallback(lambda reply: int(reply.message_count))

    def deleteQueue(self, queue: str) -> Deferred[None]:
        """
        Delete C{queue} and forget its declaration.
        """
        self._topology = self._topology.withoutQueue(queue)
        return self._onChannel(lambda ch: ch.queue_delete(queue=queue)).addCallback(lambda _: None)

    def deleteExchange(self, exchange: str) -> Deferred[None]:
        """
        Delete C{exchange} and forget its declaration.
        """
        self._topology = self._topology.withoutExchange(exchange)
        return self._onChannel(lambda ch: ch.exchange_delete(exchange=exchange)).addCallback(lambda _: None)
