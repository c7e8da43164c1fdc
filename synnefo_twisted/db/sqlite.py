# -*- test-case-name: tests.db.test_sqlite -*-
"""
The embedded database: one SQLite connection, used from one dedicated
thread, with every interaction serialised (a transaction holds the
connection from C{BEGIN} to C{COMMIT}/C{ROLLBACK}).

SQL is written in the C{%s} / C{%(name)s} style and translated; row-lock
clauses (C{FOR UPDATE}) are dropped since nothing runs concurrently.
Notifications are delivered in-process after commit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredLock, fail, maybeDeferred, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from synnefo_twisted.db._common import InFlight, Listeners, QueryMetrics, shield
from synnefo_twisted.db._sql import (
    DatabaseUnavailableError,
    IntegrityError,
    checkNotification,
    checkParams,
    parseBool,
    parseTimestamp,
    readsOnly,
    sqliteValue,
    translateForSQLite,
)
from synnefo_twisted.health import Health
from synnefo_twisted.interfaces import IDatabase, IHealthReporter, ITransaction
from synnefo_twisted.metrics import MetricsRegistry

log = Logger()

T = TypeVar("T")

# Declared column types converted on the way out (PARSE_DECLTYPES matches
# the first word of the declared type, case-insensitively).
sqlite3.register_converter("TIMESTAMPTZ", parseTimestamp)
sqlite3.register_converter("BOOLEAN", parseBool)


def _adapt(params: object) -> object:
    if isinstance(params, dict):
        return {k: sqliteValue(v) for k, v in params.items()}
    if isinstance(params, (list, tuple)):
        return tuple(sqliteValue(v) for v in params)
    return params


@implementer(ITransaction)
class SQLiteTransaction:
    """
    The transaction handed to an interaction; valid until it returns.
    """

    dialect = "sqlite"

    def __init__(self, database: SQLiteDatabase) -> None:
        self._database = database
        self._notifications: list[tuple[str, str]] = []
        self._lock = DeferredLock()
        self.finished = False
        self.used = False
        self.wrote = False

    def execute(self, sql: str, params: object = ()) -> Deferred[list[tuple[Any, ...]]]:
        if self.finished:
            raise RuntimeError("the transaction is over (execute called after the interaction returned)")
        self.used = True
        if not self.wrote and not readsOnly(sql):
            self.wrote = True
        return self._lock.run(self._database._inThread, self._database._executeInTransaction, sql, params)

    def notify(self, channel: str, payload: str) -> None:
        if self.finished:
            raise RuntimeError("the transaction is over (notify called after the interaction returned)")
        checkNotification(channel, payload)
        self._notifications.append((channel, payload))


@implementer(IDatabase, IHealthReporter)
class SQLiteDatabase(Service):
    """
    An L{IDatabase} on an SQLite file (WAL mode, foreign keys on).

    @param path: the database file (its directory must exist), or
        C{:memory:}.
    @param reactor: provides C{callFromThread} and time.
    """

    dialect = "sqlite"
    healthName = "database"

    def __init__(
        self, path: str, reactor: Any, metrics: MetricsRegistry | None = None, busyTimeout: float = 5.0
    ) -> None:
        self.path = path
        self._reactor = reactor
        self._busyTimeout = busyTimeout
        self._threadpool: ThreadPool | None = None
        self._connection: sqlite3.Connection | None = None
        # how many times a connection was opened (the change stamp of
        # synnefo_twisted.db.changes counts changes per connection)
        self.generation = 0
        # calls through this object that wrote (or may have): bumped before
        # their caller sees the outcome (synnefo_twisted.db.changes)
        self.writes = 0
        self._lock = DeferredLock()
        self._listeners = Listeners()
        self._inflight = InFlight()
        self._metrics = QueryMetrics(metrics, self.dialect, reactor)
        self._state = Health(False, "stopped", "not started")

    def __repr__(self) -> str:
        return f"<SQLiteDatabase {self.path}>"

    # -- service ---------------------------------------------------------

    def startService(self) -> Deferred[None]:
        super().startService()
        self._state = Health(False, "starting", f"opening {self.path}")
        pool = ThreadPool(1, 1, name=f"sqlite:{self.path}")
        pool.start()
        self._threadpool = pool
        d: Deferred[None] = deferToThreadPool(self._reactor, pool, self._open)

        def opened(_: None) -> None:
            self._state = Health.up(f"sqlite {self.path}")
            log.info("database {path} open (sqlite {version})", path=self.path, version=sqlite3.sqlite_version)

        def failed(f: Any) -> Any:
            self._state = Health.down(f"cannot open {self.path}: {f.getErrorMessage()}")
            log.failure("cannot open database {path}", f, path=self.path)
            self._threadpool = None
            pool.stop()
            return f

        return d.addCallbacks(opened, failed)

    def stopService(self) -> Deferred[None]:
        super().stopService()
        self._state = Health(False, "stopped", "stopping")
        d = self._inflight.drained()

        def close(_: None) -> Deferred[None] | None:
            pool = self._threadpool
            if pool is None:
                return None
            closing: Deferred[None] = deferToThreadPool(self._reactor, pool, self._close)

            def stopPool(result: object) -> object:
                self._threadpool = None
                pool.stop()
                self._state = Health(False, "stopped", "closed")
                return result

            return closing.addBoth(stopPool)

        return d.addCallback(close)

    # -- in the thread ---------------------------------------------------

    def _open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path,
            isolation_level=None,
            detect_types=sqlite3.PARSE_DECLTYPES,
            timeout=self._busyTimeout,
        )
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        self.generation += 1
        self._connection = conn

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _execute(self, sql: str, params: object) -> list[tuple[Any, ...]]:
        conn = self._connection
        if conn is None:
            raise DatabaseUnavailableError("the database is closed")
        text, style = translateForSQLite(sql)
        checked = checkParams(style, params)
        try:
            cursor = conn.execute(text, _adapt(checked))  # type: ignore[arg-type]
        except sqlite3.IntegrityError as e:
            raise IntegrityError(str(e)) from e
        try:
            return cursor.fetchall() if cursor.description is not None else []
        finally:
            cursor.close()

    def _executeInTransaction(self, sql: str, params: object) -> list[tuple[Any, ...]]:
        # the transaction begins with its first statement (one thread hop
        # less); every call is serialised, so an open transaction is ours
        conn = self._connection
        if conn is not None and not conn.in_transaction:
            conn.execute("BEGIN IMMEDIATE")
        return self._execute(sql, params)

    def _end(self, commit: bool) -> None:
        conn = self._connection
        if conn is None or not conn.in_transaction:
            return
        if not commit:
            conn.execute("ROLLBACK")
            return
        try:
            conn.execute("COMMIT")
        except BaseException:
            # never leave a transaction open for the next interaction to join
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    # -- reactor side ----------------------------------------------------

    def _inThread(self, f: Callable[..., Any], *args: Any) -> Deferred[Any]:
        pool = self._threadpool
        if pool is None:
            return fail(DatabaseUnavailableError("the database is closed"))
        return deferToThreadPool(self._reactor, pool, f, *args)

    def _checkRunning(self) -> None:
        if not self.running or self._threadpool is None:
            raise DatabaseUnavailableError("the database service is not running")

    def runQuery(self, sql: str, params: object = ()) -> Deferred[list[tuple[Any, ...]]]:
        return shield(self._metrics.measure("query", self._single(sql, params)), "query")

    def runOperation(self, sql: str, params: object = ()) -> Deferred[None]:
        d = self._single(sql, params)
        return shield(self._metrics.measure("operation", d.addCallback(lambda _: None)), "operation")

    def _single(self, sql: str, params: object) -> Deferred[list[tuple[Any, ...]]]:
        """
        One statement in its own (implicit, autocommit) transaction: one
        thread hop.
        """
        try:
            self._checkRunning()
        except DatabaseUnavailableError as e:
            return fail(e)
        d: Deferred[list[tuple[Any, ...]]] = self._lock.run(self._inThread, self._execute, sql, params)
        if not readsOnly(sql):
            d.addBoth(self._wrote)
        return self._inflight.track(d)

    def _wrote(self, result: T) -> T:
        self.writes += 1
        return result

    def runInteraction(self, interaction: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
        return shield(self._metrics.measure("interaction", self._run(interaction, *args, **kwargs)), "interaction")

    def _run(self, interaction: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        try:
            self._checkRunning()
        except DatabaseUnavailableError as e:
            return fail(e)
        d = self._lock.run(self._interact, interaction, args, kwargs)

        def deliver(outcome: tuple[Any, list[tuple[str, str]], bool]) -> Any:
            result, notifications, wrote = outcome
            if wrote:
                self.writes += 1
            for channel, payload in notifications:
                self._listeners.deliver(channel, payload)
            return result

        # a failed interaction may have written (a failed commit), conservatively
        return self._inflight.track(d.addCallbacks(deliver, self._wrote))

    def _interact(
        self, interaction: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Deferred[tuple[Any, list[tuple[str, str]], bool]]:
        tx = SQLiteTransaction(self)
        begun: Deferred[Any] = maybeDeferred(interaction, tx, *args, **kwargs)

        def waitForStatements(result: object) -> Deferred[object]:
            # statements the interaction started without waiting for
            return tx._lock.run(lambda: result)

        def commit(result: object) -> Deferred[Any] | tuple[Any, list[tuple[str, str]], bool]:
            tx.finished = True
            if not tx.used:
                return (result, tx._notifications, False)
            d = self._inThread(self._end, True)
            return d.addCallback(lambda _: (result, tx._notifications, tx.wrote))

        def rollback(f: Any) -> Deferred[Any] | Any:
            tx.finished = True
            if not tx.used:
                return f
            # statements still queued run inside the transaction, then roll back
            d = tx._lock.run(self._inThread, self._end, False)
            d.addErrback(lambda rf: log.failure("rollback failed", rf))
            return d.addCallback(lambda _: f)

        begun.addCallback(waitForStatements)
        begun.addCallbacks(commit, rollback)
        return begun

    # -- notifications -----------------------------------------------------

    def listen(self, channel: str, callback: Any) -> Deferred[None]:
        self._listeners.add(channel, callback)
        return succeed(None)

    def unlisten(self, channel: str, callback: Any) -> Deferred[None]:
        self._listeners.remove(channel, callback)
        return succeed(None)

    def health(self) -> Health:
        return self._state
