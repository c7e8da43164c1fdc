# -*- test-case-name: tests.integration.db.test_postgres -*-
"""
The production database: a txpostgres connection pool in which every
connection carries its own dead-connection detector, plus one listener
connection for C{LISTEN}/C{NOTIFY}.

When PostgreSQL goes away (restart, network failure) each connection
notices on its own (a failed statement, or the socket closing under the
reactor), is marked dead, and reconnects with exponential backoff on the
injected clock; calls go only to live connections, and fail at once with
L{DatabaseUnavailableError} when there is none. The listener re-issues its
C{LISTEN}s after reconnecting. Logging is one event per change of the
overall state (up/down) plus a summary at most every C{summaryInterval}
seconds while down.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import psycopg2
from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredLock, fail, maybeDeferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import Cooperator
from twisted.logger import Logger
from twisted.python.failure import Failure
from txpostgres import reconnection, txpostgres
from zope.interface import implementer

from synnefo_twisted.db._common import InFlight, Listeners, QueryMetrics, shield
from synnefo_twisted.db._sql import DatabaseUnavailableError, IntegrityError, checkNotification, readsOnly
from synnefo_twisted.health import Health
from synnefo_twisted.interfaces import IDatabase, IHealthReporter, ITransaction
from synnefo_twisted.metrics import MetricsRegistry

log = Logger()

Rows = list[tuple[Any, ...]]


def backoffDelays(
    initial: float = 0.5,
    factor: float = 2.0,
    maximum: float = 10.0,
    jitter: Callable[[], float] = lambda: random.uniform(0.85, 1.15),
) -> Iterator[float]:
    """
    Delays between connection attempts: C{0} (try at once), then
    C{initial}, growing by C{factor} up to C{maximum}, each scaled by
    C{jitter()} so that many nodes do not reconnect in step.
    """
    yield 0.0
    delay = initial
    while True:
        yield min(maximum, delay * jitter())
        delay = min(maximum, delay * factor)


def describeURL(url: str) -> str:
    """
    C{host:port/dbname} for logs and health (no user, no password).
    """
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = parts.port or 5432
    return f"{host}:{port}{parts.path or '/'}"


def quoteIdentifier(name: str) -> str:
    """
    A channel name as a PostgreSQL identifier (C{LISTEN} takes no parameter).
    """
    return '"' + name.replace('"', '""') + '"'


class _Detector(reconnection.DeadConnectionDetector):
    """
    One connection's dead-connection detector, reconnecting on our clock
    with our backoff, stoppable, and reporting to its database.
    """

    def __init__(self, owner: PostgresDatabase, label: str) -> None:
        super().__init__(reactor=owner._reactor)
        self._owner = owner
        self.label = label
        self._delays: Iterator[float] = iter(())
        self._delayed: IDelayedCall | None = None
        self._timeout: IDelayedCall | None = None
        self._attempt: Deferred[Any] | None = None
        self._stopped = False
        self.attempts = 0
        self.lastError = ""
        self.connectionIsDead = True

    def begin(self) -> None:
        """
        Make the first connection (through the reconnection path).
        """
        self.connectionIsDead = True
        self._restart(initial=True)

    def startReconnecting(self, f: Failure) -> None:
        self.lastError = _reason(f)
        self._owner._connectionLost(self, self.lastError)
        self._restart(initial=False)

    def _restart(self, initial: bool) -> None:
        self._delays = self._owner._backoff()
        self.attempts = 0
        self._schedule()

    def _schedule(self) -> None:
        if self._stopped:
            return
        delay = next(self._delays)
        self._delayed = self.reactor.callLater(delay, self._tryConnect)

    def _tryConnect(self) -> None:
        self._delayed = None
        if self._stopped:
            return
        self.attempts += 1
        connection = self.reconnectable
        _closeQuietly(connection)
        try:
            d: Deferred[Any] = connection.connect(*self._connargs, **self._connkw)
        except FileNotFoundError:
            # epoll has never heard of the new socket's descriptor, yet the
            # reactor lists that number: it belonged to a connection whose
            # socket libpq closed itself. That record is stale by
            # definition; drop it and try again on the next attempt.
            _dropStale(self.reactor, connection._connection.fileno())
            _closeQuietly(connection)
            self.lastError = "a stale reactor record of a closed socket (dropped)"
            self._schedule()
            return
        self._attempt = d
        self._timeout = self.reactor.callLater(self._owner._connectTimeout, self._timedOut, connection)
        d.addCallbacks(self._connected, self._failed)

    def _timedOut(self, connection: Any) -> None:
        self._timeout = None
        self.lastError = f"connection attempt timed out after {self._owner._connectTimeout:g}s"
        _closeQuietly(connection)

    def _cancelTimeout(self) -> None:
        if self._timeout is not None:
            self._timeout.cancel()
            self._timeout = None

    def _connected(self, _: object) -> None:
        self._attempt = None
        self._cancelTimeout()
        if self._stopped:
            _closeQuietly(self.reconnectable)
            return
        self.connectionRecovered()

    def _failed(self, f: Failure) -> None:
        self._attempt = None
        timedOut = self._timeout is None
        self._cancelTimeout()
        if self._stopped:
            return
        if not timedOut:
            self.lastError = _reason(f)
        self._owner._attemptFailed(self)
        self._schedule()

    def connectionRecovered(self) -> Deferred[Any]:
        self.connectionIsDead = False
        self._owner._connectionUp(self)
        results = []
        for handler in self.getRecoveryHandlers():
            d = maybeDeferred(handler)
            d.addErrback(lambda f: log.failure("after reconnecting {label}", f, label=self.label))
            results.append(d)
        return succeed(results)

    def stop(self) -> None:
        """
        Stop reconnecting and close the connection.
        """
        self._stopped = True
        if self._delayed is not None and self._delayed.active():
            self._delayed.cancel()
        self._delayed = None
        self._cancelTimeout()
        if self.reconnectable is not None:
            _closeQuietly(self.reconnectable)


def _reason(f: Failure | None) -> str:
    if f is None:
        return ""
    if isinstance(f.value, txpostgres.RollbackFailed) and isinstance(f.value.originalFailure, Failure):
        return _reason(f.value.originalFailure)
    message = f.getErrorMessage().strip().splitlines()
    return f"{getattr(f.type, '__name__', 'error')}: {message[0] if message else ''}".strip()


def _dropStale(reactor: Any, fd: int) -> None:
    """
    Forget the reactor's record of descriptor C{fd}, which epoll does not
    know (its socket was closed behind the reactor's back).
    """
    selectables = getattr(reactor, "_selectables", None)
    if isinstance(selectables, dict):
        selectables.pop(fd, None)
    for watched in (getattr(reactor, "_reads", None), getattr(reactor, "_writes", None)):
        if isinstance(watched, set):
            watched.discard(fd)
        elif isinstance(watched, dict):
            watched.pop(fd, None)
    log.warn("dropped the reactor's stale record of closed descriptor {fd}", fd=fd)


def _closeQuietly(connection: Any) -> None:
    """
    Close a txpostgres connection that may be half-open, broken or never
    opened (closing a broken connection may raise; it is closed anyway).
    """
    if connection is None or connection._connection is None:
        return
    try:
        connection.close()
    except Exception:
        log.debug("closing a broken connection raised", log_failure=Failure())


class _Connection(txpostgres.Connection):
    """
    A txpostgres connection that reports a broken socket to its detector
    instead of raising out of C{doRead} (where the reactor would log it as
    an unhandled error), and whose failed rollbacks are logged as warnings
    (the connection is being replaced anyway).
    """

    def doRead(self) -> None:
        try:
            super().doRead()
        except Exception:
            f = Failure()
            self.reactor.removeReader(self)
            self.reactor.removeWriter(self)
            self.connectionLost(f)

    def _runInteraction(self, interaction: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
        cursor = self.cursor()
        d: Deferred[Any] = cursor.execute("BEGIN")
        d.addCallback(interaction, *args, **kwargs)

        def commit(result: object) -> Deferred[object]:
            done: Deferred[Any] = cursor.execute("COMMIT")
            return done.addCallback(lambda _: result)

        def rollback(f: Failure) -> Deferred[Any]:
            done: Deferred[Any] = maybeDeferred(cursor.execute, "ROLLBACK")

            def rollbackFailed(rf: Failure) -> Failure:
                log.warn(
                    "rollback failed ({reason}) after: {original}",
                    reason=_reason(rf),
                    original=_reason(f),
                )
                return Failure(txpostgres.RollbackFailed(self, f))

            done.addErrback(rollbackFailed)
            return done.addCallback(lambda _: f)

        d.addCallbacks(commit, rollback)
        return d


class _Pool(txpostgres.ConnectionPool):
    """
    A txpostgres pool whose connections carry a L{_Detector} and which
    hands out only live connections.
    """

    def __init__(self, owner: PostgresDatabase, size: int, url: str, connectKwargs: dict[str, Any]) -> None:
        self.reactor = owner._reactor
        self.cooperator = owner._cooperator
        self._owner = owner
        self._made = 0
        super().__init__(None, url, min=size, **connectKwargs)
        self.everyConnection: list[txpostgres.Connection] = list(self.connections)

    def connectionFactory(self, reactor: Any, cooperator: Any) -> txpostgres.Connection:
        self._made += 1
        detector = _Detector(self._owner, f"pool connection {self._made}")
        return _Connection(reactor, cooperator, detector=detector)

    def start(self) -> None:
        for connection in self.connections:
            connection.detector.setReconnectable(connection, *self.connargs, **self.connkw)
            connection.detector.begin()

    def detectors(self) -> list[_Detector]:
        return [c.detector for c in self.everyConnection]

    def _take(self) -> txpostgres.Connection:
        for connection in self.connections:
            if not connection.detector.connectionIsDead:
                self.connections.discard(connection)
                return connection
        raise DatabaseUnavailableError(self._owner._downReason())

    def _runQuery(self, *args: Any, **kwargs: Any) -> Deferred[Any]:
        # txpostgres's runQuery fetches unconditionally, which fails for
        # statements without rows; run ours under the same lock and detector
        c = self._take()
        d: Deferred[Any] = c._doit(_queryOn, c, *args, **kwargs)
        return d.addBoth(self._putBackAndPassthrough, c)

    def _runOperation(self, *args: Any, **kwargs: Any) -> Deferred[Any]:
        c = self._take()
        return c.runOperation(*args, **kwargs).addBoth(self._putBackAndPassthrough, c)

    def _runInteraction(self, interaction: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
        c = self._take()
        return c.runInteraction(interaction, *args, **kwargs).addBoth(self._putBackAndPassthrough, c)


@implementer(ITransaction)
class PostgresTransaction:
    """
    The transaction handed to an interaction: statements run one after the
    other on the interaction's cursor; notifications are sent with
    C{pg_notify} just before commit, so PostgreSQL delivers them only if
    the transaction commits.
    """

    dialect = "postgresql"

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor
        self._lock = DeferredLock()
        self._notifications: list[tuple[str, str]] = []
        self.finished = False
        self.wrote = False

    def execute(self, sql: str, params: object = ()) -> Deferred[Rows]:
        if self.finished:
            raise RuntimeError("the transaction is over (execute called after the interaction returned)")
        if not self.wrote and not readsOnly(sql):
            self.wrote = True
        return self._lock.run(self._execute, sql, () if params is None else params)

    def _execute(self, sql: str, params: object) -> Deferred[Rows]:
        d: Deferred[Any] = self._cursor.execute(sql, params)
        return d.addCallbacks(_rowsOf, _translate)

    def notify(self, channel: str, payload: str) -> None:
        if self.finished:
            raise RuntimeError("the transaction is over (notify called after the interaction returned)")
        checkNotification(channel, payload)
        self._notifications.append((channel, payload))

    def _finish(self, result: object) -> Deferred[object]:
        """
        After the interaction succeeded: wait for statements it did not wait
        for, then queue the notifications; fire with its result.
        """
        d: Deferred[Any] = self._lock.run(lambda: None)
        for channel, payload in self._notifications:
            d.addCallback(self._notifyOne, channel, payload)
        return d.addCallback(lambda _: result)

    def _notifyOne(self, _: object, channel: str, payload: str) -> Deferred[Rows]:
        return self._execute("SELECT pg_notify(%s, %s)", (channel, payload))

    def _afterFailure(self, f: Failure) -> Deferred[Any]:
        # let queued statements finish (inside the transaction) before rollback
        return self._lock.run(lambda: f)


def _always() -> bool:
    return True


def _listenOn(listener: Any, channel: str) -> Deferred[None]:
    d: Deferred[None] = listener.runOperation(f"LISTEN {quoteIdentifier(channel)}")
    return d


def _listenOne(_: object, listener: Any, channel: str) -> Deferred[None]:
    return _listenOn(listener, channel)


def _translate(f: Failure) -> Failure:
    """
    Driver integrity errors become L{IntegrityError} (other failures pass).
    """
    if f.check(psycopg2.IntegrityError):
        error = IntegrityError(str(f.value).strip())
        error.__cause__ = f.value
        return Failure(error)
    return f


def _queryOn(connection: Any, sql: str, params: object) -> Deferred[Rows]:
    d: Deferred[Any] = connection.cursor().execute(sql, params)
    return d.addCallback(_rowsOf)


def _rowsOf(cursor: Any) -> Rows:
    return cursor.fetchall() if cursor.description is not None else []


@implementer(IDatabase, IHealthReporter)
class PostgresDatabase(Service):
    """
    An L{IDatabase} on PostgreSQL.

    @param url: C{postgresql://user:password@host:port/dbname[?options]}
        (anything libpq accepts).
    @param reactor: the reactor (time, file descriptors).
    @param poolSize: connections in the pool (besides the listener).
    @param metrics: where to count queries and their latency, if anywhere.
    @param backoff: a zero-argument callable returning an iterator of
        delays between connection attempts (L{backoffDelays} by default).
    @param connectTimeout: seconds before a connection attempt is given up.
    @param summaryInterval: seconds between "still down" log events.
    """

    dialect = "postgresql"
    healthName = "database"

    def __init__(
        self,
        url: str,
        reactor: Any,
        poolSize: int = 4,
        metrics: MetricsRegistry | None = None,
        backoff: Callable[[], Iterator[float]] = backoffDelays,
        connectTimeout: float = 10.0,
        summaryInterval: float = 60.0,
        keepalives: bool = True,
    ) -> None:
        if poolSize < 1:
            raise ValueError("poolSize must be at least 1")
        self.url = url
        self.where = describeURL(url)
        self._reactor = reactor
        self._backoff = backoff
        self._connectTimeout = connectTimeout
        self._summaryInterval = summaryInterval
        self._poolSize = poolSize
        self._connectKwargs: dict[str, Any] = {}
        if keepalives:
            self._connectKwargs = {
                "keepalives": 1,
                "keepalives_idle": 30,
                "keepalives_interval": 10,
                "keepalives_count": 3,
            }
        self._metrics = QueryMetrics(metrics, self.dialect, reactor)
        if metrics is not None:
            metrics.gauge(
                "synnefo_db_connections",
                "PostgreSQL connections (pool and listener) by state.",
                ("state",),
                collect=self._connectionCounts,
            )
        self._listeners = Listeners()
        self._inflight = InFlight()
        # calls through this object that wrote (or may have): bumped before
        # their caller sees the outcome (synnefo_twisted.db.changes)
        self.writes = 0
        self._cooperator: Cooperator | None = None
        self._pool: _Pool | None = None
        self._listener: txpostgres.Connection | None = None
        self._listenWaiters: list[Deferred[None]] = []
        self._started: Deferred[None] | None = None
        self._accepting = False
        self._wasUp = False
        self._downSince: float | None = None
        self._lastSummary = 0.0
        self._failedAttempts = 0
        self._lastError = "not started"

    @property
    def poolSize(self) -> int:
        """
        The connections in the pool: at most this many statements or
        transactions run at once.
        """
        return self._poolSize

    def __repr__(self) -> str:
        return f"<PostgresDatabase {self.where}>"

    # -- service ---------------------------------------------------------

    def startService(self) -> Deferred[None]:
        super().startService()
        self._cooperator = Cooperator(scheduler=lambda f: self._reactor.callLater(0, f))
        self._pool = _Pool(self, self._poolSize, self.url, self._connectKwargs)
        listenerDetector = _Detector(self, "listener connection")
        self._listener = _Connection(self._reactor, self._cooperator, detector=listenerDetector)
        self._listener.addNotifyObserver(self._onNotify)
        listenerDetector.addRecoveryHandler(self._relisten)
        listenerDetector.setReconnectable(self._listener, self.url, **self._connectKwargs)
        self._accepting = True
        self._downSince = self._reactor.seconds()
        self._lastSummary = self._downSince
        self._started = Deferred()
        log.info("connecting to database {where}", where=self.where)
        self._pool.start()
        listenerDetector.begin()
        return self._started

    def stopService(self) -> Deferred[None]:
        super().stopService()
        self._accepting = False
        d = self._inflight.drained()
        d.addCallback(lambda _: self._close())
        return d

    def _close(self) -> None:
        for detector in self._detectors():
            detector.stop()
        if self._cooperator is not None:
            self._cooperator.stop()
        waiters, self._listenWaiters = self._listenWaiters, []
        for w in waiters:
            w.errback(DatabaseUnavailableError("the database service stopped"))
        if self._started is not None and not self._started.called:
            started, self._started = self._started, None
            started.errback(DatabaseUnavailableError(f"stopped before connecting to {self.where}: {self._lastError}"))
        log.info("database {where} closed", where=self.where)

    def _detectors(self) -> list[_Detector]:
        detectors = self._pool.detectors() if self._pool is not None else []
        if self._listener is not None:
            detectors.append(self._listener.detector)
        return detectors

    # -- connection state --------------------------------------------------

    def _alive(self) -> int:
        return sum(1 for d in self._detectors() if not d.connectionIsDead)

    def _connectionUp(self, detector: _Detector) -> None:
        if not self._wasUp and detector is not self._listenerDetector():
            self._wasUp = True
            downFor = self._reactor.seconds() - (self._downSince or self._reactor.seconds())
            if self._started is not None and not self._started.called:
                log.info("database {where} connected", where=self.where)
                self._started.callback(None)
            else:
                log.info(
                    "database {where} is back after {seconds:.1f}s and {attempts} failed attempts",
                    where=self.where,
                    seconds=downFor,
                    attempts=self._failedAttempts,
                )
            self._downSince = None
            self._failedAttempts = 0

    def _connectionLost(self, detector: _Detector, reason: str) -> None:
        self._lastError = reason
        if detector is self._listenerDetector():
            log.debug("listener connection to {where} lost: {reason}", where=self.where, reason=reason)
            return
        if self._wasUp and self._poolAlive() == 0:
            self._wasUp = False
            self._downSince = self._reactor.seconds()
            self._lastSummary = self._downSince
            log.warn("database {where} is down: {reason}", where=self.where, reason=reason)

    def _attemptFailed(self, detector: _Detector) -> None:
        self._lastError = detector.lastError
        self._failedAttempts += 1
        now = self._reactor.seconds()
        if self._poolAlive() == 0 and now - self._lastSummary >= self._summaryInterval:
            self._lastSummary = now
            log.warn(
                "database {where} still unreachable after {seconds:.0f}s ({attempts} failed attempts): {reason}",
                where=self.where,
                seconds=now - (self._downSince or now),
                attempts=self._failedAttempts,
                reason=self._lastError,
            )

    def _listenerDetector(self) -> _Detector | None:
        return self._listener.detector if self._listener is not None else None

    def _poolAlive(self) -> int:
        if self._pool is None:
            return 0
        return sum(1 for d in self._pool.detectors() if not d.connectionIsDead)

    def _connectionCounts(self) -> list[tuple[dict[str, str], float]]:
        detectors = self._detectors() if self.running else []
        alive = sum(1 for d in detectors if not d.connectionIsDead)
        return [({"state": "up"}, float(alive)), ({"state": "down"}, float(len(detectors) - alive))]

    def _listenerAlive(self) -> bool:
        listener = self._listenerDetector()
        return listener is not None and not listener.connectionIsDead

    def _downReason(self) -> str:
        return f"no connection to database {self.where}: {self._lastError}"

    def health(self) -> Health:
        if not self.running:
            return Health(False, "stopped", f"{self.where} not connected")
        alive = self._poolAlive()
        if alive == 0:
            since = self._downSince if self._downSince is not None else self._reactor.seconds()
            state = "connecting" if self._started is not None and not self._started.called else "down"
            return Health(
                False,
                state,
                f"cannot connect to {self.where} for {self._reactor.seconds() - since:.0f}s: {self._lastError}",
            )
        detail = f"{self.where}, {alive}/{self._poolSize} pool connections"
        listener = self._listenerDetector()
        if listener is not None and listener.connectionIsDead:
            detail += ", listener reconnecting"
        return Health.up(detail)

    # -- calls -------------------------------------------------------------

    def _call(
        self, kind: str, method: Callable[..., Deferred[Any]], *args: Any, wrote: Callable[[], bool] | None = None
    ) -> Deferred[Any]:
        if not self._accepting or self._pool is None:
            return fail(DatabaseUnavailableError(f"the database service for {self.where} is not running"))
        d = method(*args).addErrback(_translate)
        if wrote is not None:

            def count(result: object) -> object:
                # a failed call may have written (a lost commit), conservatively
                if isinstance(result, Failure) or wrote():
                    self.writes += 1
                return result

            d.addBoth(count)
        return shield(self._inflight.track(self._metrics.measure(kind, d)), kind)

    def runQuery(self, sql: str, params: object = ()) -> Deferred[Rows]:
        assert self._pool is not None or not self._accepting
        wrote = None if readsOnly(sql) else _always
        return self._call("query", self._poolCall("runQuery"), sql, () if params is None else params, wrote=wrote)

    def runOperation(self, sql: str, params: object = ()) -> Deferred[None]:
        wrote = None if readsOnly(sql) else _always
        return self._call(
            "operation", self._poolCall("runOperation"), sql, () if params is None else params, wrote=wrote
        )

    def runInteraction(self, interaction: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
        transactions: list[PostgresTransaction] = []

        def body(cursor: Any) -> Deferred[Any]:
            tx = PostgresTransaction(cursor)
            transactions.append(tx)
            d = maybeDeferred(interaction, tx, *args, **kwargs)
            d.addCallbacks(tx._finish, tx._afterFailure)

            def over(result: object) -> object:
                tx.finished = True
                return result

            return d.addBoth(over)

        return self._call(
            "interaction",
            self._poolCall("runInteraction"),
            body,
            wrote=lambda: any(tx.wrote for tx in transactions),
        )

    def _poolCall(self, name: str) -> Callable[..., Deferred[Any]]:
        pool = self._pool
        if pool is None:
            return lambda *a: fail(DatabaseUnavailableError("not started"))
        method: Callable[..., Deferred[Any]] = getattr(pool, name)
        return method

    # -- notifications -------------------------------------------------------

    def _onNotify(self, notify: Any) -> None:
        self._listeners.deliver(notify.channel, notify.payload)

    def listen(self, channel: str, callback: Any) -> Deferred[None]:
        first = self._listeners.add(channel, callback)
        if not first:
            return succeed(None)
        return self._listenOn(channel)

    def _listenOn(self, channel: str) -> Deferred[None]:
        listener = self._listener
        if listener is None or not self._accepting:
            return fail(DatabaseUnavailableError("the database service is not running"))
        if listener.detector.connectionIsDead:
            waiter: Deferred[None] = Deferred()
            self._listenWaiters.append(waiter)
            return waiter
        d: Deferred[None] = listener.runOperation(f"LISTEN {quoteIdentifier(channel)}")
        return d

    def unlisten(self, channel: str, callback: Any) -> Deferred[None]:
        last = self._listeners.remove(channel, callback)
        listener = self._listener
        if not last or listener is None or listener.detector.connectionIsDead:
            return succeed(None)
        d: Deferred[None] = listener.runOperation(f"UNLISTEN {quoteIdentifier(channel)}")
        return d

    def _relisten(self) -> Deferred[None]:
        """
        After the listener (re)connects: LISTEN on every channel again.
        """
        listener = self._listener
        assert listener is not None
        channels = self._listeners.channels()
        d: Deferred[Any] = succeed(None)
        for channel in channels:
            d.addCallback(_listenOne, listener, channel)

        def done(result: object) -> object:
            waiters, self._listenWaiters = self._listenWaiters, []
            for w in waiters:
                if isinstance(result, Failure):
                    w.errback(result)
                else:
                    w.callback(None)
            if channels and not isinstance(result, Failure):
                log.info("listening again on {channels}", channels=", ".join(channels))
            return None if not isinstance(result, Failure) else result

        return d.addBoth(done)
