# -*- test-case-name: tests.bus.test_memory -*-
"""
The in-process message bus of the embedded node: the semantics of the
RabbitMQ bus (topic routing, prefetch windows, redelivery of unsettled
messages, dead-lettering, confirms) without a broker. Messages live in
memory only: they survive consumers coming and going, not the process.

Deliveries happen on the injected reactor (C{callLater(0, ...)}), never
inside the call that made them possible (publish, ack, requeue, consume).
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any

import attrs
from twisted.application.service import IService, Service
from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
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
from synnefo_twisted.bus._wire import checkPublishable
from synnefo_twisted.bus.errors import DeclareFailed, PublishFailed
from synnefo_twisted.bus.topology import Binding, Exchange, Queue, Topology, topicMatches
from synnefo_twisted.health import Health
from synnefo_twisted.interfaces import IConsumer, IHealthReporter, IIncomingMessage, IMessageBus
from synnefo_twisted.metrics import MetricsRegistry


@attrs.define
class _Stored:
    exchange: str
    routingKey: str
    body: bytes
    headers: dict[str, Any]
    persistent: bool
    redelivered: bool = False


@attrs.define(eq=False)
class _MemoryQueue:
    definition: Queue
    messages: deque[_Stored] = attrs.Factory(deque)
    consumers: list[MemoryConsumer] = attrs.Factory(list)
    nextConsumer: int = 0
    pump: IDelayedCall | None = None


@implementer(IIncomingMessage)
class MemoryIncomingMessage(IncomingBase):
    """
    A message delivered by the L{MemoryBus}.
    """

    def __init__(self, consumer: MemoryConsumer, stored: _Stored) -> None:
        super().__init__(stored.body, stored.exchange, stored.routingKey, dict(stored.headers), stored.redelivered)
        self._consumer = consumer
        self._stored = stored

    def _release(self) -> bool:
        """
        Take the message out of its consumer's window; False when the
        consumer already gave it back to the queue (it was stopped).
        """
        return self._consumer._release(self)

    def _doAck(self) -> None:
        if self._release():
            self._consumer._bus._metrics.acked.inc()

    def _doReject(self) -> None:
        if self._release():
            self._consumer._bus._metrics.rejected.inc()
            self._consumer._bus._brokerDeadLetter(self._consumer.queue, self._stored, "rejected")

    def _doRequeue(self) -> None:
        if self._release():
            self._consumer._bus._metrics.requeued.inc()
            self._consumer._bus._requeue(self._consumer.queue, [self._stored])

    def _doDeadLetter(self, reason: str) -> Deferred[None]:
        consumer = self._consumer
        if not consumer._holds(self):
            return succeed(None)
        bus = consumer._bus
        q = bus._queues.get(consumer.queue)
        dlx = q.definition.deadLetterExchange if q is not None else None
        if dlx is None:
            log.warn(
                "queue {queue} has no dead-letter exchange; dropping {message!r} ({reason})",
                queue=consumer.queue,
                message=self,
                reason=reason,
            )
            self._release()
            return succeed(None)
        headers = deadLetterHeaders(self._stored.headers, reason, self.exchange, self.routingKey)
        d = bus.publish(dlx, self.routingKey, self.body, headers, self._stored.persistent)

        def published(_: object) -> None:
            if self._release():
                bus._metrics.deadLettered.inc()

        d.addCallback(published)
        return d


@implementer(IConsumer)
class MemoryConsumer:
    """
    A subscription to one queue of a L{MemoryBus}.
    """

    def __init__(self, bus: MemoryBus, queue: str, handler: Handler, prefetch: int) -> None:
        self._bus = bus
        self.queue = queue
        self._runner = HandlerRunner(handler, queue)
        self._prefetch = prefetch
        self._unsettled: dict[int, MemoryIncomingMessage] = {}
        self.stopping = False
        self._stopped: Deferred[None] | None = None

    def __repr__(self) -> str:
        return f"<MemoryConsumer queue={self.queue!r} unsettled={len(self._unsettled)}>"

    def _hasWindow(self) -> bool:
        return not self.stopping and (self._prefetch <= 0 or len(self._unsettled) < self._prefetch)

    def _holds(self, message: MemoryIncomingMessage) -> bool:
        return id(message) in self._unsettled

    def _release(self, message: MemoryIncomingMessage) -> bool:
        if self._unsettled.pop(id(message), None) is None:
            log.debug("settling {message!r} after its consumer returned it to the queue", message=message)
            return False
        self._bus._schedule(self.queue)
        return True

    def _deliver(self, stored: _Stored) -> None:
        message = MemoryIncomingMessage(self, stored)
        self._unsettled[id(message)] = message
        self._bus._metrics.consumed.inc()
        self._runner.run(message)

    def stop(self) -> Deferred[None]:
        """
        Stop receiving; once the handlers in progress have finished, give
        every unsettled message back to the queue (redelivered).
        """
        if self._stopped is not None:
            return whenFired(self._stopped)
        self.stopping = True
        self._stopped = Deferred()
        waiting = self._runner.idle()

        def finish(_: object) -> None:
            self._bus._detach(self)
            unsettled = [m._stored for m in self._unsettled.values()]
            self._unsettled.clear()
            if unsettled:
                self._bus._requeue(self.queue, unsettled)
            assert self._stopped is not None
            self._stopped.callback(None)

        waiting.addCallback(finish)
        return whenFired(self._stopped)


@implementer(IMessageBus, IService, IHealthReporter)
class MemoryBus(Service):
    """
    The in-process L{IMessageBus}.
    """

    healthName = "bus"

    def __init__(self, reactor: IReactorTime, metrics: MetricsRegistry | None = None) -> None:
        self._reactor = reactor
        self._metrics = BusMetrics(metrics)
        self._exchanges: dict[str, Exchange] = {"": Exchange("", "direct", True)}
        self._queues: dict[str, _MemoryQueue] = {}
        self._bindings: dict[Binding, None] = {}
        self._seq = itertools.count(1)

    # -- IService -----------------------------------------------------------

    def startService(self) -> Deferred[None]:
        Service.startService(self)
        log.info("in-process message bus started")
        return succeed(None)

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        consumers = [c for q in self._queues.values() for c in q.consumers]
        return DeferredList([c.stop() for c in consumers], consumeErrors=True).addCallback(self._cancelPumps)

    def _cancelPumps(self, _: object = None) -> None:
        for q in self._queues.values():
            if q.pump is not None and q.pump.active():
                q.pump.cancel()
            q.pump = None

    def health(self) -> Health:
        return Health.up("in-process bus") if self.running else Health(False, "stopped", "in-process bus stopped")

    # -- IMessageBus --------------------------------------------------------

    def declare(self, topology: Any) -> Deferred[None]:
        try:
            self._declare(topology)
        except DeclareFailed:
            return fail()
        return succeed(None)

    def _declare(self, topology: Topology) -> None:
        for e in topology.exchanges:
            old = self._exchanges.get(e.name)
            if old is not None and old != e:
                raise DeclareFailed(f"exchange {e.name!r} exists as {old}, not {e}")
            self._exchanges[e.name] = e
        for q in topology.queues:
            existing = self._queues.get(q.name)
            if existing is not None:
                if existing.definition != q:
                    raise DeclareFailed(f"queue {q.name!r} exists as {existing.definition}, not {q}")
            else:
                self._queues[q.name] = _MemoryQueue(q)
        for b in topology.bindings:
            if b.exchange not in self._exchanges or b.exchange == "":
                raise DeclareFailed(f"cannot bind {b.queue!r} to missing exchange {b.exchange!r}")
            if b.queue not in self._queues:
                raise DeclareFailed(f"cannot bind missing queue {b.queue!r} to {b.exchange!r}")
            self._bindings[b] = None

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
        if exchange not in self._exchanges:
            self._metrics.publishFailed.inc()
            return fail(PublishFailed(f"no exchange {exchange!r}"))
        stored = _Stored(exchange, routingKey, body, dict(headers or {}), persistent)
        self._route(exchange, routingKey, stored)
        self._metrics.confirmed.inc()
        return succeed(None)

    def _route(self, exchange: str, routingKey: str, stored: _Stored) -> None:
        targets: list[str]
        if exchange == "":
            targets = [routingKey] if routingKey in self._queues else []
        else:
            kind = self._exchanges[exchange].type
            targets = []
            for b in self._bindings:
                if b.exchange != exchange or b.queue in targets:
                    continue
                if (
                    kind == "fanout"
                    or (kind == "direct" and b.routingKey == routingKey)
                    or (kind == "topic" and topicMatches(b.routingKey, routingKey))
                ):
                    targets.append(b.queue)
        if not targets:
            log.debug(
                "message to {exchange}/{routingKey} matched no queue: dropped", exchange=exchange, routingKey=routingKey
            )
        for name in targets:
            copy = attrs.evolve(stored, headers=dict(stored.headers))
            self._queues[name].messages.append(copy)
            self._schedule(name)

    def consume(self, queue: str, handler: Any, prefetch: int = 100) -> Deferred[MemoryConsumer]:
        q = self._queues.get(queue)
        if q is None:
            return fail(DeclareFailed(f"no queue {queue!r}"))
        consumer = MemoryConsumer(self, queue, handler, prefetch)
        q.consumers.append(consumer)
        self._schedule(queue)
        return succeed(consumer)

    # -- management (snf-manage queue-*, tests) -----------------------------

    def messageCount(self, queue: str) -> Deferred[int]:
        """
        How many messages wait in C{queue} (not counting unsettled ones).
        """
        q = self._queues.get(queue)
        if q is None:
            return fail(DeclareFailed(f"no queue {queue!r}"))
        return succeed(len(q.messages))

    def purgeQueue(self, queue: str) -> Deferred[int]:
        """
        Drop the waiting messages of C{queue}; Deferred with their number.
        """
        q = self._queues.get(queue)
        if q is None:
            return succeed(0)
        n = len(q.messages)
        q.messages.clear()
        return succeed(n)

    def deleteQueue(self, queue: str) -> Deferred[None]:
        """
        Delete C{queue}, its messages and bindings (no error when missing).
        """
        q = self._queues.pop(queue, None)
        if q is not None:
            for c in q.consumers:
                c.stopping = True
            if q.pump is not None and q.pump.active():
                q.pump.cancel()
        for b in [b for b in self._bindings if b.queue == queue]:
            del self._bindings[b]
        return succeed(None)

    def deleteExchange(self, exchange: str) -> Deferred[None]:
        """
        Delete C{exchange} and its bindings (no error when missing).
        """
        if exchange:
            self._exchanges.pop(exchange, None)
            for b in [b for b in self._bindings if b.exchange == exchange]:
                del self._bindings[b]
        return succeed(None)

    # -- internals ----------------------------------------------------------

    def _schedule(self, queue: str) -> None:
        q = self._queues.get(queue)
        if q is None or q.pump is not None or not q.messages or not q.consumers:
            return
        q.pump = self._reactor.callLater(0, self._pump, queue)

    def _pump(self, queue: str) -> None:
        q = self._queues.get(queue)
        if q is None:
            return
        q.pump = None
        while q.messages:
            consumer = self._nextConsumer(q)
            if consumer is None:
                return
            consumer._deliver(q.messages.popleft())

    def _nextConsumer(self, q: _MemoryQueue) -> MemoryConsumer | None:
        n = len(q.consumers)
        for i in range(n):
            c = q.consumers[(q.nextConsumer + i) % n]
            if c._hasWindow():
                q.nextConsumer = (q.nextConsumer + i + 1) % n
                return c
        return None

    def _detach(self, consumer: MemoryConsumer) -> None:
        q = self._queues.get(consumer.queue)
        if q is not None and consumer in q.consumers:
            q.consumers.remove(consumer)
            q.nextConsumer = 0
            if q.definition.autoDelete and not q.consumers:
                self.deleteQueue(consumer.queue)

    def _requeue(self, queue: str, stored: list[_Stored]) -> None:
        q = self._queues.get(queue)
        if q is None:
            return
        for s in reversed(stored):
            s.redelivered = True
            q.messages.appendleft(s)
        self._schedule(queue)

    def _brokerDeadLetter(self, queue: str, stored: _Stored, reason: str) -> None:
        """
        What RabbitMQ does with a rejected message: republish it to the
        queue's dead-letter exchange with an C{x-death} history.
        """
        q = self._queues.get(queue)
        dlx = q.definition.deadLetterExchange if q is not None else None
        if dlx is None or dlx not in self._exchanges:
            log.debug("rejected message from {queue} dropped (no dead-letter exchange)", queue=queue)
            return
        headers = dict(stored.headers)
        deaths = [dict(d) for d in headers.get("x-death", [])]
        for i, death in enumerate(deaths):
            if death.get("queue") == queue and death.get("reason") == reason:
                death["count"] = int(death.get("count", 1)) + 1
                death["time"] = int(self._reactor.seconds())
                deaths.insert(0, deaths.pop(i))
                break
        else:
            deaths.insert(
                0,
                {
                    "count": 1,
                    "reason": reason,
                    "queue": queue,
                    "time": int(self._reactor.seconds()),
                    "exchange": stored.exchange,
                    "routing-keys": [stored.routingKey],
                },
            )
        headers["x-death"] = deaths
        headers.setdefault("x-first-death-exchange", stored.exchange)
        headers.setdefault("x-first-death-queue", queue)
        headers.setdefault("x-first-death-reason", reason)
        self._route(dlx, stored.routingKey, _Stored(dlx, stored.routingKey, stored.body, headers, stored.persistent))
