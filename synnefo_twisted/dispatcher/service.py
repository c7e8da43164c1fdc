# -*- test-case-name: tests.dispatcher.test_service -*-
"""
The dispatcher service (spec §2.5, item 1 and 2 of issue 5): declares the
event queues with their dead-letter twins, consumes them with a prefetch
window and applies each message with
L{synnefo_twisted.logic.dispatchapply.applyMessage} — one transaction,
the row locked — acking it only once the transaction committed.

Ordering and concurrency: messages about one object (server, network,
cluster) are applied strictly in delivery order, one at a time; messages
about different objects run concurrently, at most C{concurrency} at once.

Failures: a message that is not JSON, or that the state machine finds
malformed, is dead-lettered with the reason in its C{x-snf-reason} header
(never silently acked). While the database cannot be reached (down,
restarting, connection lost), the message waits and is tried again with
the same backoff, without limit. Any other error is retried after a backoff
(C{retry_backoff} doubling up to C{retry_backoff_max}; the object's later
messages wait behind it, keeping the order) at most C{max_retries} times,
then dead-lettered. Stopping cancels the backoff timers and gives the
waiting messages back to the queue.

A redelivered message (after a broker restart, a dispatcher killed before
its ack, a competing dispatcher) is applied again, which changes nothing.

It also answers C{snf-manage dispatcher-status}
(L{synnefo_twisted.dispatcher.status}).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs
from twisted.application.service import IService, Service
from twisted.internet.defer import Deferred, DeferredSemaphore, succeed
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from synnefo_twisted.bus.topology import Topology, eventQueues, synnefoTopology
from synnefo_twisted.db import DatabaseUnavailableError
from synnefo_twisted.db.repositories import BackendRepository
from synnefo_twisted.health import Health
from synnefo_twisted.interfaces import IHealthReporter
from synnefo_twisted.logic.dispatchapply import ApplyOutcome, MalformedMessage, applyMessage
from synnefo_twisted.metrics import MetricsRegistry

log = Logger()

Applier = Callable[[Any, str, Mapping[str, Any]], "Deferred[ApplyOutcome]"]


@attrs.frozen
class DispatcherSettings:
    """
    The C{[dispatcher]} section.

    @ivar prefetch: unacknowledged messages per queue.
    @ivar concurrency: messages applied at once (each holds a database
        connection for its transaction).
    @ivar maxRetries: retries of a message whose processing failed before
        it is dead-lettered.
    @ivar retryBackoff: seconds before the first retry (doubling).
    @ivar retryBackoffMax: the longest wait between retries.
    """

    prefix: str = "snf-"
    prefetch: int = 64
    concurrency: int = 16
    maxRetries: int = 3
    retryBackoff: float = 0.5
    retryBackoffMax: float = 30.0
    mirrored: bool = False
    statusCheck: bool = True


def dispatcherTopology(prefix: str, mirrored: bool = False) -> Topology:
    """
    What the dispatcher declares: spec §2.5's queues, bindings and
    dead-letter exchange.
    """
    return synnefoTopology(prefix, mirrored=mirrored)


def _transient(failure: Failure) -> bool:
    """
    Whether a failure says the database could not be reached (down,
    restarting, connection lost, a deadlock victim) rather than that the
    message cannot be applied.
    """
    if failure.check(DatabaseUnavailableError, ConnectionLost, ConnectionDone):
        return True
    try:
        import psycopg2
        from txpostgres.txpostgres import RollbackFailed
    except ImportError:  # pragma: no cover - SQLite-only installs
        return False
    return bool(failure.check(psycopg2.OperationalError, psycopg2.InterfaceError, RollbackFailed))


def _targetKey(kind: str, body: Mapping[str, Any]) -> str:
    for field in ("instance", "network", "cluster"):
        value = body.get(field)
        if isinstance(value, str):
            return f"{field}:{value}"
    return f"{kind}:?"


class _Pending:
    """
    One message in a target's line.
    """

    __slots__ = ("attempts", "body", "done", "kind", "message", "outages", "timer")

    def __init__(self, message: Any, kind: str, body: Mapping[str, Any]) -> None:
        self.message = message
        self.kind = kind
        self.body = body
        self.attempts = 0
        self.outages = 0
        self.done: Deferred[None] = Deferred()
        self.timer: IDelayedCall | None = None


@implementer(IService, IHealthReporter)
class DispatcherService(Service):
    """
    Consumes C{<p>-events-{op,network,progress,cluster}}.

    @param refreshBackend: called with a cluster name after a successful
        C{OP_CLUSTER_SET_PARAMS} (refreshes its resources); None: ignored.
    @param statusResponder: an L{IService} answering status checks, started
        and stopped with this one.
    """

    name = "dispatcher"
    healthName = "dispatcher"

    def __init__(
        self,
        reactor: Any,
        db: Any,
        bus: Any,
        settings: DispatcherSettings | None = None,
        *,
        metrics: MetricsRegistry | None = None,
        applier: Applier | None = None,
        refreshBackend: Callable[[str], Deferred[None]] | None = None,
        statusResponder: Any = None,
    ) -> None:
        self._reactor = reactor
        self._db = db
        self._bus = bus
        self.settings = settings or DispatcherSettings()
        self._apply: Applier = applier or self._defaultApply
        self._refreshBackend = refreshBackend
        self._statusResponder = statusResponder
        self._semaphore = DeferredSemaphore(self.settings.concurrency)
        self._lines: dict[str, list[_Pending]] = {}
        self._consumers: list[Any] = []
        self._stopping = False
        self._started: Deferred[None] | None = None
        self.counts: dict[str, int] = {"applied": 0, "ignored": 0, "deadLettered": 0, "retried": 0}
        self._processed = None
        self._latency = None
        if metrics is not None:
            self._processed = metrics.counter(
                "synnefo_dispatcher_messages_total",
                "Messages the dispatcher handled, by queue family and outcome.",
                ("kind", "outcome"),
            )
            self._latency = metrics.histogram(
                "synnefo_dispatcher_apply_seconds", "Time to apply one message (its transaction).", ("kind",)
            )

    def _defaultApply(self, db: Any, kind: str, body: Mapping[str, Any]) -> Deferred[ApplyOutcome]:
        return applyMessage(db, kind, body, prefix=self.settings.prefix)

    # -- service ----------------------------------------------------------------------------------

    def startService(self) -> Deferred[None]:
        Service.startService(self)
        self._stopping = False
        self._started = Deferred.fromCoroutine(self._start())
        return self._started

    async def _start(self) -> None:
        names = eventQueues(self.settings.prefix)
        await self._bus.declare(dispatcherTopology(self.settings.prefix, self.settings.mirrored))
        for kind, queue in (
            ("op", names.op),
            ("network", names.network),
            ("progress", names.progress),
            ("cluster", names.cluster),
        ):
            consumer = await self._bus.consume(queue, self._handlerFor(kind), self.settings.prefetch)
            self._consumers.append(consumer)
        if self._statusResponder is not None:
            await self._statusResponder.startService()
        poolSize = getattr(self._db, "poolSize", None)
        if isinstance(poolSize, int) and poolSize < self.settings.concurrency:
            log.warn(
                "[database] pool_size {pool_size} is below [dispatcher] concurrency {concurrency}: at most "
                "{pool_size} messages are applied at once (make pool_size at least concurrency)",
                pool_size=poolSize,
                concurrency=self.settings.concurrency,
            )
        log.info(
            "dispatcher consuming {queues} (prefetch {prefetch}, concurrency {concurrency})",
            queues=[names.op, names.network, names.progress, names.cluster],
            prefetch=self.settings.prefetch,
            concurrency=self.settings.concurrency,
        )

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        self._stopping = True
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        if self._started is not None and not self._started.called:
            self._started.cancel()
        if self._statusResponder is not None:
            await self._statusResponder.stopService()
        consumers, self._consumers = self._consumers, []
        # Stop the deliveries first (each stop waits for its handlers)...
        stopping = [consumer.stop() for consumer in consumers]
        # ... then give back what waits for a retry, with the rest of its
        # line; a line whose head is being applied is given back after it.
        for key, line in list(self._lines.items()):
            head = line[0] if line else None
            if head is not None and head.timer is not None and head.timer.active():
                head.timer.cancel()
                head.timer = None
                del self._lines[key]
                for pending in line:
                    self._giveBack(pending)
        for d in stopping:
            await d

    def health(self) -> Health:
        if not self.running:
            return Health(False, "stopped")
        waiting = sum(len(line) for line in self._lines.values())
        return Health(True, "running", f"{len(self._consumers)} queues, {waiting} messages in progress")

    # -- delivery ---------------------------------------------------------------------------------

    def _handlerFor(self, kind: str) -> Callable[[Any], Deferred[None] | None]:
        def handle(message: Any) -> Deferred[None] | None:
            return self._received(kind, message)

        return handle

    def _received(self, kind: str, message: Any) -> Deferred[None] | None:
        try:
            body = json.loads(message.body)
        except (ValueError, UnicodeDecodeError) as e:
            return self._deadLetter(kind, message, f"malformed: not JSON ({e})")
        if not isinstance(body, dict):
            return self._deadLetter(kind, message, "malformed: the body is not a JSON object")
        if self._stopping:
            message.requeue()
            return None
        pending = _Pending(message, kind, body)
        key = _targetKey(kind, body)
        line = self._lines.setdefault(key, [])
        line.append(pending)
        if len(line) == 1:
            self._next(key)
        return pending.done

    def _next(self, key: str) -> None:
        line = self._lines.get(key)
        if not line:
            self._lines.pop(key, None)
            return
        pending = line[0]
        if self._stopping:
            # Not started: back to the queue, with the rest of the line.
            for waiting in line:
                self._giveBack(waiting)
            del self._lines[key]
            return
        d = self._semaphore.run(self._attempt, pending)
        d.addBoth(self._attempted, key, pending)

    def _attempt(self, pending: _Pending) -> Deferred[ApplyOutcome]:
        pending.attempts += 1
        started = self._reactor.seconds()
        d = self._apply(self._db, pending.kind, pending.body)
        if self._latency is not None:
            latency = self._latency

            def observe(result: object) -> object:
                latency.observe(self._reactor.seconds() - started, kind=pending.kind)
                return result

            d.addBoth(observe)
        return d

    def _attempted(self, result: ApplyOutcome | Failure, key: str, pending: _Pending) -> None:
        message = pending.message
        if isinstance(result, Failure):
            if result.check(MalformedMessage):
                error = result.value
                assert isinstance(error, MalformedMessage)
                reason = f"malformed: {error.reason}"
                self._finish(key, pending, self._deadLetter(pending.kind, message, reason))
                return
            if _transient(result) and not self._stopping:
                # The database is down or restarting: wait for it, however
                # long; this is not the message's fault.
                pending.attempts -= 1
                pending.outages += 1
                delay = min(
                    self.settings.retryBackoff * (2 ** min(pending.outages - 1, 16)), self.settings.retryBackoffMax
                )
                log.warn(
                    "database unavailable applying a {kind} message, retrying in {delay}s: {error}",
                    kind=pending.kind,
                    delay=delay,
                    error=result.getErrorMessage(),
                )
                self._count(pending.kind, "waiting-database")
                pending.timer = self._reactor.callLater(delay, self._retry, key, pending)
                return
            if pending.attempts <= self.settings.maxRetries and not self._stopping:
                delay = min(self.settings.retryBackoff * (2 ** (pending.attempts - 1)), self.settings.retryBackoffMax)
                log.warn(
                    "applying a {kind} message failed (attempt {attempt}), retrying in {delay}s: {error}",
                    kind=pending.kind,
                    attempt=pending.attempts,
                    delay=delay,
                    error=result.getErrorMessage(),
                )
                self.counts["retried"] += 1
                self._count(pending.kind, "retried")
                pending.timer = self._reactor.callLater(delay, self._retry, key, pending)
                return
            log.failure(
                "applying a {kind} message failed {attempts} times; dead-lettering it",
                result,
                kind=pending.kind,
                attempts=pending.attempts,
            )
            reason = (
                f"failed after {pending.attempts} attempts: {type(result.value).__name__}: {result.getErrorMessage()}"
            )
            self._finish(key, pending, self._deadLetter(pending.kind, message, reason))
            return
        if not message.settled:
            message.ack()
        if result.applied:
            self.counts["applied"] += 1
        else:
            self.counts["ignored"] += 1
        self._count(pending.kind, "applied" if result.applied else result.reason)
        if result.cluster is not None and self._refreshBackend is not None:
            self._refreshBackend(result.cluster).addErrback(
                lambda f: log.failure("refreshing the resources of {cluster}", f, cluster=result.cluster)
            )
        self._finish(key, pending, None)

    def _retry(self, key: str, pending: _Pending) -> None:
        pending.timer = None
        d = self._semaphore.run(self._attempt, pending)
        d.addBoth(self._attempted, key, pending)

    def _finish(self, key: str, pending: _Pending, settling: Deferred[None] | None) -> None:
        """
        The line's head is done once C{settling} (a dead-lettering) fired:
        only then does it leave the line (so a message for the same object
        arriving meanwhile waits behind it) and the next one start.
        """

        def done(_: object = None) -> None:
            line = self._lines.get(key)
            if line and line[0] is pending:
                line.pop(0)
            if not pending.done.called:
                pending.done.callback(None)
            self._next(key)

        if settling is None:
            done()
        else:
            settling.addBoth(done)

    def _giveBack(self, pending: _Pending) -> None:
        if not pending.message.settled:
            pending.message.requeue()
        if not pending.done.called:
            pending.done.callback(None)

    def _deadLetter(self, kind: str, message: Any, reason: str) -> Deferred[None]:
        log.warn("dead-lettering a {kind} message: {reason}", kind=kind, reason=reason)
        self.counts["deadLettered"] += 1
        self._count(kind, "dead-lettered")
        d: Deferred[None] = message.deadLetter(reason)

        def failed(f: Failure) -> None:
            log.failure("could not dead-letter a {kind} message", f, kind=kind)

        d.addErrback(failed)
        return d

    def _count(self, kind: str, outcome: str) -> None:
        if self._processed is not None:
            self._processed.inc(kind=kind, outcome=outcome)


async def refreshBackendResources(db: Any, registry: Any, clustername: str) -> None:
    """
    Read a cluster's nodes and store its resources (spec §2.5
    C{update_cluster}).
    """
    from synnefo_twisted.manage.backends import nodeResources

    backend = await BackendRepository(db).byClustername(clustername)
    if backend is None:
        log.warn("cluster message from unknown cluster {cluster}", cluster=clustername)
        return
    nodes = await registry.clientFor(backend).getNodes(bulk=True)
    fields: dict[str, Any] = dict(nodeResources(nodes))
    fields["resources_updated"] = datetime.now(UTC)
    await BackendRepository(db).modify(backend.id, **fields)


def noRefresh(clustername: str) -> Deferred[None]:
    return succeed(None)
