"""
Tests for L{synnefo_twisted.db.changes}: the change stamp is unchanged while
nothing is committed and changes with every committed write, whoever makes
it, on SQLite and on the real PostgreSQL server.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

import psycopg2
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from synnefo_twisted.db import openDatabase
from synnefo_twisted.db._sql import DatabaseUnavailableError
from synnefo_twisted.db.changes import ChangeStamps, changeStamp
from synnefo_twisted.db.migrations import migrate
from synnefo_twisted.db.repositories import UserRepository
from synnefo_twisted.db.sqlite import SQLiteDatabase
from synnefo_twisted.metrics import MetricsRegistry
from synnefo_twisted.testing import memoryDatabase
from tests.integration import realservices
from tests.integration.db.test_postgres import SchemaMixin, withSearchPath

if TYPE_CHECKING:
    _Base = TestCase
else:
    _Base = object


class ChangeStampMixin(_Base):
    timeout = 30

    def openDatabase(self) -> Deferred[Any]:
        raise NotImplementedError()

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        return Deferred.fromCoroutine(self._setUp())

    async def _setUp(self) -> None:
        self.db = await self.openDatabase()
        self.addCleanup(self.db.stopService)

    async def test_unchangedWhileIdle(self) -> None:
        """
        Two stamps with no write between them are equal; reads do not change
        it. (On PostgreSQL a commit anywhere in the cluster, another
        database's, changes it: a few tries are allowed.)
        """
        for _ in range(20):
            first = await changeStamp(self.db)
            self.assertIsNotNone(first)
            await self.db.runQuery("SELECT * FROM users")
            await UserRepository(self.db).byEmail("nobody@example.org")
            if await changeStamp(self.db) == first:
                return
        self.fail("the stamp changed on every read")

    async def test_changedByWrites(self) -> None:
        """
        A committed insert, update or delete (a single statement or an
        interaction) gives a new stamp, different from every earlier one.
        """
        users = UserRepository(self.db)
        seen = [await changeStamp(self.db)]
        user, _ = await users.create("a@example.org")
        seen.append(await changeStamp(self.db))
        await self.db.runOperation("UPDATE users SET email = %s WHERE id = %s", ("b@example.org", user.id))
        seen.append(await changeStamp(self.db))

        async def delete(tx: Any) -> None:
            await tx.execute("DELETE FROM tokens WHERE user_id = %s", (user.id,))
            await tx.execute("DELETE FROM users WHERE id = %s", (user.id,))

        await self.db.runInteraction(delete)
        seen.append(await changeStamp(self.db))
        self.assertEqual(len(set(seen)), len(seen), seen)

    async def test_writesCounted(self) -> None:
        """
        C{writes} counts the calls that wrote, bumped before their caller
        sees the outcome: statements other than C{SELECT} (alone or in an
        interaction), failed calls too; reads leave it alone.
        """
        seen: list[int] = []

        def note(result: object) -> object:
            seen.append(self.db.writes)
            return result

        start = self.db.writes
        await self.db.runQuery("SELECT count(*) FROM users")
        await self.db.runInteraction(lambda tx: tx.execute("SELECT count(*) FROM users"))
        self.assertEqual(self.db.writes, start)
        await self.db.runOperation("INSERT INTO users (uuid, email) VALUES ('w1', 'w1@example.org')").addCallback(note)
        self.assertEqual(seen, [start + 1])
        await self.db.runQuery("UPDATE users SET email = 'w2@example.org' WHERE uuid = 'w1' RETURNING id")
        self.assertEqual(self.db.writes, start + 2)

        async def readThenWrite(tx: Any) -> None:
            await tx.execute("SELECT id FROM users WHERE uuid = 'w1'")
            await tx.execute("UPDATE users SET email = 'w3@example.org' WHERE uuid = 'w1'")

        await self.db.runInteraction(readThenWrite).addCallback(note)
        self.assertEqual(seen[-1], start + 3)

        async def failing(tx: Any) -> None:
            await tx.execute("SELECT 1")
            raise ValueError("no")

        await self.assertFailure(self.db.runInteraction(failing), ValueError)
        self.assertEqual(self.db.writes, start + 4)
        await self.assertFailure(self.db.runOperation("INSERT INTO nosuchtable VALUES (1)"), Exception)
        self.assertEqual(self.db.writes, start + 5)

    def test_notADatabase(self) -> None:
        """
        Anything but an L{IDatabase} (a transaction, say) has no stamp: None.
        """
        self.assertIsNone(self.successResultOf(changeStamp(object())))


class SQLiteChangeStampTests(ChangeStampMixin, TestCase):
    def openDatabase(self) -> Deferred[Any]:
        return memoryDatabase(reactor)

    async def test_otherConnection(self) -> None:
        """
        A write committed on the same file by another connection (another
        process) gives a new stamp.
        """
        path = self.mktemp() + ".db"
        database = openDatabase(f"sqlite:///{path}", reactor)
        await database.startService()
        self.addCleanup(database.stopService)
        await migrate(database)
        before = await changeStamp(database)
        other = sqlite3.connect(path)
        self.addCleanup(other.close)
        other.execute("INSERT INTO users (uuid, email) VALUES ('x', 'x@example.org')")
        other.commit()
        self.assertNotEqual(await changeStamp(database), before)

    async def test_reopened(self) -> None:
        """
        A new connection (the service stopped and started) counts its
        changes from zero: its stamps differ from the old connection's.
        """
        path = self.mktemp() + ".db"
        database = openDatabase(f"sqlite:///{path}", reactor)
        await database.startService()
        await migrate(database)
        before = await changeStamp(database)
        await database.stopService()
        await database.startService()
        self.addCleanup(database.stopService)
        self.assertNotEqual(await changeStamp(database), before)


class PostgresChangeStampTests(SchemaMixin, ChangeStampMixin, TestCase):
    def openDatabase(self) -> Deferred[Any]:
        return Deferred.fromCoroutine(self._open())

    async def _open(self) -> Any:
        self.url = withSearchPath(realservices.PG_URL, self.makeSchema())
        database = openDatabase(self.url, reactor, poolSize=2)
        await database.startService()
        await migrate(database)
        return database

    async def test_commitAfterStamp(self) -> None:
        """
        A transaction that wrote before a stamp was taken and commits after
        it gives a new stamp when it commits (its rows were invisible to
        the first stamp's readers).
        """
        stamps: list[Any] = []

        async def write(tx: Any) -> None:
            await tx.execute("INSERT INTO users (uuid, email) VALUES ('y', 'y@example.org')")
            stamps.append(await changeStamp(self.db))

        await self.db.runInteraction(write)
        after = await changeStamp(self.db)
        self.assertNotEqual(after, stamps[0])

    async def test_otherConnection(self) -> None:
        """
        A write committed by another client gives a new stamp.
        """
        before = await changeStamp(self.db)
        conn = psycopg2.connect(self.url)
        self.addCleanup(conn.close)
        with conn.cursor() as cur:
            cur.execute("INSERT INTO users (uuid, email) VALUES ('z', 'z@example.org')")
        conn.commit()
        self.assertNotEqual(await changeStamp(self.db), before)


class ChangeStampsTests(TestCase):
    """
    L{ChangeStamps}: concurrent callers share one query, never one sent before they asked.
    """

    timeout = 30

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        self.metrics = MetricsRegistry()
        self.db = SQLiteDatabase(self.mktemp() + ".db", reactor, metrics=self.metrics)
        self.addCleanup(self.db.stopService)
        d: Deferred[None] = self.db.startService()
        return d

    def queries(self) -> float:
        return self.metrics.counter("synnefo_db_queries_total", "", ("dialect", "kind", "outcome")).value(
            dialect="sqlite", kind="query", outcome="ok"
        )

    async def test_shared(self) -> None:
        """
        Callers asking while a query runs get the answer of the next one,
        all of them: two queries for five callers.
        """
        stamps = ChangeStamps(self.db)
        first = stamps.current()
        rest = [stamps.current() for _ in range(4)]
        answers = [await first] + [await d for d in rest]
        self.assertIsNotNone(answers[0])
        self.assertEqual(len(set(answers)), 1)
        self.assertEqual(self.queries(), 2)

    async def test_writeWhileInFlight(self) -> None:
        """
        A caller asking after a write committed while a stamp query was in
        flight sees the write: a new stamp.
        """
        stamps = ChangeStamps(self.db)
        await self.db.runOperation("CREATE TABLE t (x INTEGER)")
        first = stamps.current()
        await self.db.runOperation("INSERT INTO t VALUES (1)")
        self.assertNotEqual(await stamps.current(), await first)

    async def test_cancelledCaller(self) -> None:
        """
        A caller that went away (cancelled) does not keep the others from their answer.
        """
        stamps = ChangeStamps(self.db)
        gone = stamps.current()
        kept = stamps.current()
        gone.cancel()
        self.failureResultOf(gone, CancelledError)
        self.assertIsNotNone(await kept)

    async def test_failure(self) -> None:
        """
        A failed query fails every caller waiting for it; the next caller gets a new query.
        """
        stamps = ChangeStamps(self.db)
        await self.db.stopService()
        waiting = [stamps.current(), stamps.current()]
        for d in waiting:
            self.failureResultOf(d, DatabaseUnavailableError)
        await self.db.startService()
        self.assertIsNotNone(await stamps.current())


class StaleStampsTests(TestCase):
    """
    L{ChangeStamps} with C{maxAge}: a recent stamp answers without a query,
    this process's writes show at once, other processes' within C{maxAge}.
    """

    timeout = 30

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        self.metrics = MetricsRegistry()
        self.path = self.mktemp() + ".db"
        self.db = SQLiteDatabase(self.path, reactor, metrics=self.metrics)
        self.addCleanup(self.db.stopService)
        self.clock = Clock()
        d: Deferred[None] = self.db.startService()
        return d.addCallback(lambda _: self.db.runOperation("CREATE TABLE t (x INTEGER)"))

    def queries(self) -> float:
        return self.metrics.counter("synnefo_db_queries_total", "", ("dialect", "kind", "outcome")).value(
            dialect="sqlite", kind="query", outcome="ok"
        )

    async def test_reused(self) -> None:
        """
        Within C{maxAge} of the last query, callers are answered at once, by that query's stamp.
        """
        stamps = ChangeStamps(self.db, self.clock, 0.05)
        first = await stamps.current()
        self.assertIsNotNone(first)
        self.clock.advance(0.05)
        second = stamps.current()
        self.assertEqual(self.successResultOf(second), first)
        self.assertEqual(self.queries(), 1)
        self.clock.advance(0.001)
        self.assertEqual(await stamps.current(), first)
        self.assertEqual(self.queries(), 2)

    async def test_ownWrites(self) -> None:
        """
        A write through the same database object gives a new answer at once, without a query.
        """
        stamps = ChangeStamps(self.db, self.clock, 10.0)
        first = await stamps.current()
        await self.db.runOperation("INSERT INTO t VALUES (1)")
        second = self.successResultOf(stamps.current())
        self.assertNotEqual(second, first)

        async def write(tx: Any) -> None:
            await tx.execute("UPDATE t SET x = 2")

        await self.db.runInteraction(write)
        third = self.successResultOf(stamps.current())
        self.assertNotIn(third, (first, second))
        self.assertEqual(self.queries(), 1)

    async def test_otherWriters(self) -> None:
        """
        A write by another connection (another process) shows once the
        stamp is older than C{maxAge}, never later.
        """
        stamps = ChangeStamps(self.db, self.clock, 0.5)
        first = await stamps.current()
        other = sqlite3.connect(self.path)
        self.addCleanup(other.close)
        other.execute("INSERT INTO t VALUES (3)")
        other.commit()
        self.clock.advance(0.4)
        self.assertEqual(self.successResultOf(stamps.current()), first)
        self.clock.advance(0.2)
        self.assertNotEqual(await stamps.current(), first)

    async def test_sharedWhileRunning(self) -> None:
        """
        Callers asking while the query runs are answered by it: one query.
        """
        stamps = ChangeStamps(self.db, self.clock, 0.05)
        waiting = [stamps.current() for _ in range(5)]
        answers = [await d for d in waiting]
        self.assertEqual(len(set(answers)), 1)
        self.assertEqual(self.queries(), 1)

    async def test_failureNotKept(self) -> None:
        """
        A failed query is not reused: the next caller sends a new one.
        """
        stamps = ChangeStamps(self.db, self.clock, 10.0)
        await self.db.stopService()
        self.failureResultOf(stamps.current(), DatabaseUnavailableError)
        await self.db.startService()
        self.assertIsNotNone(await stamps.current())

    def test_arguments(self) -> None:
        """
        A negative C{maxAge}, or one without a clock, is refused.
        """
        self.assertRaises(ValueError, ChangeStamps, self.db, self.clock, -1.0)
        self.assertRaises(ValueError, ChangeStamps, self.db, None, 1.0)
