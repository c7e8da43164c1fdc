# -*- test-case-name: tests.bus.test_memory -*-
"""
What the in-process and the RabbitMQ buses share: metrics, the settling
guard of incoming messages and the handler runner.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, fail
from twisted.logger import Logger
from twisted.python.failure import Failure

from synnefo_twisted.bus.errors import AlreadySettled
from synnefo_twisted.metrics import Counter, MetricsRegistry

log = Logger(namespace="synnefo.bus")

REASON_HEADER = "x-snf-reason"
ORIGIN_EXCHANGE_HEADER = "x-snf-origin-exchange"
ORIGIN_ROUTING_KEY_HEADER = "x-snf-origin-routing-key"

Handler = Callable[[Any], object]


class BusMetrics:
    """
    The bus counters, registered in the node's L{MetricsRegistry}.
    """

    def __init__(self, registry: MetricsRegistry | None) -> None:
        r = registry if registry is not None else MetricsRegistry()
        self.registry = r
        self.published: Counter = r.counter("snf_bus_published_total", "messages handed to the bus for publishing")
        self.confirmed: Counter = r.counter("snf_bus_confirmed_total", "publishes confirmed by the broker")
        self.publishFailed: Counter = r.counter("snf_bus_publish_failed_total", "publishes nacked or lost")
        self.consumed: Counter = r.counter("snf_bus_consumed_total", "messages delivered to consumers")
        self.acked: Counter = r.counter("snf_bus_acked_total", "messages acknowledged by consumers")
        self.requeued: Counter = r.counter("snf_bus_requeued_total", "messages given back to their queue")
        self.rejected: Counter = r.counter("snf_bus_rejected_total", "messages rejected (broker dead-letters them)")
        self.deadLettered: Counter = r.counter(
            "snf_bus_dead_lettered_total", "messages dead-lettered by consumers (deadLetter or handler failure)"
        )
        self.reconnects: Counter = r.counter("snf_bus_connections_total", "broker connections established")


def failureReason(failure: Failure) -> str:
    """
    A one-line reason for a handler failure.
    """
    kind = failure.type.__qualname__ if failure.type is not None else "Error"
    return f"{kind}: {failure.getErrorMessage()}"


def deadLetterHeaders(headers: Mapping[str, Any], reason: str, exchange: str, routingKey: str) -> dict[str, Any]:
    """
    The headers of a dead-lettered copy: the original ones plus the reason
    and the origin.
    """
    out = dict(headers)
    out[REASON_HEADER] = reason
    out[ORIGIN_EXCHANGE_HEADER] = exchange
    out[ORIGIN_ROUTING_KEY_HEADER] = routingKey
    return out


class IncomingBase:
    """
    The settle-once guard of an L{IIncomingMessage}; subclasses implement
    C{_doAck}, C{_doReject}, C{_doRequeue} and C{_doDeadLetter}.
    """

    body: bytes
    exchange: str
    routingKey: str
    headers: Mapping[str, Any]
    redelivered: bool

    def __init__(
        self, body: bytes, exchange: str, routingKey: str, headers: Mapping[str, Any], redelivered: bool
    ) -> None:
        self.body = body
        self.exchange = exchange
        self.routingKey = routingKey
        self.headers = headers
        self.redelivered = redelivered
        self.settled = False

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} exchange={self.exchange!r} routingKey={self.routingKey!r}"
            f" bytes={len(self.body)} redelivered={self.redelivered} settled={self.settled}>"
        )

    def _settle(self, action: str) -> None:
        if self.settled:
            raise AlreadySettled(f"{action}() on a message already settled: {self!r}")
        self.settled = True

    def ack(self) -> None:
        self._settle("ack")
        self._doAck()

    def reject(self) -> None:
        self._settle("reject")
        self._doReject()

    def requeue(self) -> None:
        self._settle("requeue")
        self._doRequeue()

    def deadLetter(self, reason: str) -> Deferred[None]:
        self._settle("deadLetter")
        return self._doDeadLetter(reason)

    def _doAck(self) -> None:
        raise NotImplementedError

    def _doReject(self) -> None:
        raise NotImplementedError

    def _doRequeue(self) -> None:
        raise NotImplementedError

    def _doDeadLetter(self, reason: str) -> Deferred[None]:
        raise NotImplementedError


class HandlerRunner:
    """
    Runs a consumer's handler on each message and knows which runs are in
    progress. If the handler raises or its Deferred fails while the
    message is unsettled, the message is dead-lettered with the failure as
    the reason. A handler that returns synchronously costs no Deferred.
    """

    def __init__(self, handler: Handler, queue: str) -> None:
        self.handler = handler
        self.queue = queue
        self.inFlight: set[Deferred[None]] = set()
        self._calling = False
        self._callWaiter: Deferred[None] | None = None

    def run(self, message: IncomingBase) -> None:
        d: Deferred[Any] | None = None
        self._calling = True
        try:
            result = self.handler(message)
        except Exception:
            d = self._guard(fail(), message)
        else:
            if isinstance(result, Deferred):
                d = self._guard(result, message)
        finally:
            self._calling = False
        if d is not None and not d.called:
            done = d
            self.inFlight.add(done)
            done.addBoth(lambda _: self.inFlight.discard(done))
        waiter, self._callWaiter = self._callWaiter, None
        if waiter is not None:
            if d is None or d.called:
                waiter.callback(None)
            else:
                d.addBoth(lambda _: waiter.callback(None))

    def idle(self) -> Deferred[Any]:
        """
        Fires once no handler run is in progress (including one that is
        calling this, re-entrantly).
        """
        waits = list(self.inFlight)
        if self._calling:
            if self._callWaiter is None:
                self._callWaiter = Deferred()
            waits.append(self._callWaiter)
        return DeferredList(waits, consumeErrors=True)

    def _guard(self, d: Deferred[Any], message: IncomingBase) -> Deferred[None]:
        queue = self.queue

        def failed(failure: Failure) -> object:
            if message.settled:
                log.failure(
                    "handler for queue {queue} failed after settling {message!r}", failure, queue=queue, message=message
                )
                return None
            reason = failureReason(failure)
            log.failure(
                "handler for queue {queue} failed; dead-lettering {message!r}: {reason}",
                failure,
                queue=queue,
                message=message,
                reason=reason,
            )
            return message.deadLetter(reason)

        def deadLetterFailed(failure: Failure) -> None:
            log.failure("could not dead-letter a message from queue {queue}", failure, queue=queue)

        d.addCallback(lambda _: None)
        d.addErrback(failed)
        d.addErrback(deadLetterFailed)
        return d


def whenFired(source: Deferred[Any]) -> Deferred[None]:
    """
    A new Deferred firing with None once C{source} has fired, whatever its
    result; C{source}'s own result is passed on untouched.
    """
    out: Deferred[None] = Deferred()

    def passOn(result: object) -> object:
        if not out.called:  # it may have been cancelled
            out.callback(None)
        return result

    source.addBoth(passOn)
    return out
