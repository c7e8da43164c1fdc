# -*- test-case-name: tests.db.test_sqlite -*-
"""
What both drivers share: listener bookkeeping, in-flight tracking for a
clean stop, and query metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from synnefo_twisted.metrics import Counter, Histogram, MetricsRegistry

T = TypeVar("T")

NotifyCallback = Callable[[str], object]

log = Logger(namespace="synnefo_twisted.db")


class Listeners:
    """
    The callbacks registered per notification channel.
    """

    def __init__(self) -> None:
        self._byChannel: dict[str, list[NotifyCallback]] = {}

    def add(self, channel: str, callback: NotifyCallback) -> bool:
        """
        Register C{callback}; True when C{channel} had no listener yet.
        """
        callbacks = self._byChannel.setdefault(channel, [])
        first = not callbacks
        if callback not in callbacks:
            callbacks.append(callback)
        return first

    def remove(self, channel: str, callback: NotifyCallback) -> bool:
        """
        Unregister C{callback}; True when C{channel} has no listener left.
        """
        callbacks = self._byChannel.get(channel)
        if not callbacks:
            return False
        if callback in callbacks:
            callbacks.remove(callback)
        if not callbacks:
            del self._byChannel[channel]
            return True
        return False

    def channels(self) -> list[str]:
        return sorted(self._byChannel)

    def deliver(self, channel: str, payload: str) -> None:
        """
        Call every callback of C{channel}; a callback that raises is logged
        and does not stop the others.
        """
        for callback in list(self._byChannel.get(channel, ())):
            try:
                result = callback(payload)
            except Exception:
                log.failure("notification callback for {channel} failed", channel=channel)
                continue
            if isinstance(result, Deferred):
                result.addErrback(_logCallbackFailure, channel)


class InFlight:
    """
    The Deferreds of calls not finished yet, so that stopping can wait for
    them.
    """

    def __init__(self) -> None:
        self._pending: set[Deferred[Any]] = set()

    def __len__(self) -> int:
        return len(self._pending)

    def track(self, d: Deferred[T]) -> Deferred[T]:
        self._pending.add(d)

        def done(result: object) -> object:
            self._pending.discard(d)
            return result

        d.addBoth(done)
        return d

    def drained(self) -> Deferred[None]:
        """
        Fire when every call tracked now has finished (whatever its result).
        """
        waiting: list[Deferred[Any]] = []
        for d in self._pending:
            w: Deferred[Any] = Deferred()
            d.addBoth(_passAndFire, w)
            waiting.append(w)
        dl: Deferred[Any] = DeferredList(waiting, consumeErrors=True)
        return dl.addCallback(lambda _: None)


def shield(d: Deferred[T], what: str) -> Deferred[T]:
    """
    A Deferred with C{d}'s result that can be cancelled without cancelling
    C{d}: a database call, once made, runs to its end (a transaction
    commits or rolls back by itself) even when its caller gives up, say
    because the HTTP client went away; the caller then gets
    L{twisted.internet.defer.CancelledError} at once. A failure of C{d}
    after its caller gave up is logged, never dropped.

    @param what: the kind of call, for the log.
    """
    out: Deferred[T] = Deferred()

    def forward(result: object) -> None:
        if not out.called:
            if isinstance(result, Failure):
                out.errback(result)
            else:
                out.callback(result)  # type: ignore[arg-type]
        elif isinstance(result, Failure):
            log.failure("database {what} failed after its caller cancelled it", result, what=what)

    d.addBoth(forward)
    return out


def _logCallbackFailure(f: Failure, channel: str) -> None:
    log.failure("notification callback for {channel} failed", f, channel=channel)


def _passAndFire(result: object, w: Deferred[Any]) -> object:
    w.callback(None)
    return result


class QueryMetrics:
    """
    C{synnefo_db_queries_total{dialect,kind,outcome}} and
    C{synnefo_db_query_seconds{dialect,kind}}; kinds are C{query},
    C{operation} and C{interaction}.
    """

    def __init__(self, metrics: MetricsRegistry | None, dialect: str, clock: IReactorTime) -> None:
        self._dialect = dialect
        self._clock = clock
        self._count: Counter | None = None
        self._latency: Histogram | None = None
        if metrics is not None:
            self._count = metrics.counter(
                "synnefo_db_queries_total",
                "Database calls (runQuery, runOperation, runInteraction) by outcome.",
                ("dialect", "kind", "outcome"),
            )
            self._latency = metrics.histogram(
                "synnefo_db_query_seconds",
                "Duration of database calls, including waiting for a connection.",
                ("dialect", "kind"),
            )

    def measure(self, kind: str, d: Deferred[T]) -> Deferred[T]:
        if self._count is None:
            return d
        count, latency = self._count, self._latency
        assert latency is not None
        started = self._clock.seconds()

        def observe(result: object) -> object:
            outcome = "error" if isinstance(result, Failure) else "ok"
            count.inc(dialect=self._dialect, kind=kind, outcome=outcome)
            latency.observe(self._clock.seconds() - started, dialect=self._dialect, kind=kind)
            return result

        d.addBoth(observe)
        return d
