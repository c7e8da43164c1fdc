"""
The SQLite driver: the IDatabase contract against a real SQLite file, plus
what is specific to it (WAL, foreign keys, the dedicated thread).
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import reactor as _globalReactor  # noqa: N812  (tests only: real threads need the real reactor)
from twisted.trial.unittest import TestCase

from synnefo_twisted.db import openDatabase
from synnefo_twisted.db.sqlite import SQLiteDatabase
from synnefo_twisted.metrics import MetricsRegistry
from tests.db.contract import DatabaseContractMixin


class SQLiteContractTests(DatabaseContractMixin, TestCase):
    """
    The contract on SQLite.
    """

    reactor = _globalReactor

    def setUp(self) -> None:
        self.path = os.path.join(self.mktemp(), "synnefo.db")

    def makeDatabase(self, metrics: MetricsRegistry | None = None) -> Any:
        return openDatabase(f"sqlite:///{self.path}", self.reactor, metrics=metrics)


class SQLiteSpecificTests(TestCase):
    """
    What only the SQLite driver does.
    """

    reactor = _globalReactor

    async def started(self) -> SQLiteDatabase:
        path = os.path.join(self.mktemp(), "sub", "dir", "x.db")
        db = openDatabase(f"sqlite:///{path}", self.reactor)
        self.assertIsInstance(db, SQLiteDatabase)
        await db.startService()
        self.addCleanup(db.stopService)
        return db

    async def test_pragmas(self) -> None:
        """
        The database is in WAL mode with foreign keys enforced, and the parent
        directory of the file was created.
        """
        db = await self.started()
        self.assertTrue(os.path.isdir(os.path.dirname(db.path)))
        self.assertEqual(await db.runQuery("PRAGMA journal_mode"), [("wal",)])
        self.assertEqual(await db.runQuery("PRAGMA foreign_keys"), [(1,)])

    async def test_oneThread(self) -> None:
        """
        Every statement runs in the same dedicated thread, not the reactor's.
        """
        import threading

        db = await self.started()
        seen = set()

        def where(tx: Any) -> Any:
            seen.add(threading.get_ident())
            return tx.execute("SELECT 1")

        thread = await db.runInteraction(lambda tx: db._threadpool.threads[0].ident)  # type: ignore[union-attr]
        await db.runInteraction(where)
        self.assertNotEqual(thread, threading.get_ident())
        self.assertEqual(len(db._threadpool.threads), 1)  # type: ignore[union-attr]

    async def test_threadStoppedAfterStop(self) -> None:
        """
        Stopping the service closes the connection and stops its thread.
        """
        db = await self.started()
        pool = db._threadpool
        assert pool is not None
        await db.stopService()
        self.assertFalse([t for t in pool.threads if t.is_alive()])
        self.assertIsNone(db._threadpool)

    async def test_openFailure(self) -> None:
        """
        A file that cannot be opened fails startService and health says why.
        """
        blocker = self.mktemp()
        with open(blocker, "w") as f:
            f.write("not a directory")
        db = SQLiteDatabase(os.path.join(blocker, "x.db"), self.reactor)
        with self.assertRaises(OSError):
            await db.startService()
        self.assertFalse(db.health().ok)
        self.assertIn("cannot open", db.health().detail)
        self.assertTrue(self.flushLoggedErrors(OSError))
        db.running = False

    async def test_lockedByAnotherProcess(self) -> None:
        """
        While another connection (another process, such as snf-manage) holds
        the write lock, an interaction fails with "database is locked" after
        the busy timeout and leaves no transaction open: once the lock is
        released the next interaction commits.
        """
        import sqlite3

        path = os.path.join(self.mktemp(), "locked.db")
        db = SQLiteDatabase(path, self.reactor, busyTimeout=0.05)
        os.makedirs(os.path.dirname(path))
        await db.startService()
        self.addCleanup(db.stopService)
        await db.runOperation("CREATE TABLE t (x INTEGER)")
        other = sqlite3.connect(path, isolation_level=None)
        self.addCleanup(other.close)
        other.execute("BEGIN IMMEDIATE")

        def insert(tx: Any, x: int) -> Any:
            return tx.execute("INSERT INTO t VALUES (%s)", (x,))

        with self.assertRaises(sqlite3.OperationalError):
            await db.runInteraction(insert, 1)
        other.execute("ROLLBACK")
        await db.runInteraction(insert, 2)
        self.assertEqual(await db.runQuery("SELECT x FROM t"), [(2,)])
        self.assertEqual(sqlite3.connect(path).execute("SELECT x FROM t").fetchall(), [(2,)])

    async def test_inMemory(self) -> None:
        """
        sqlite:///:memory: gives a working private database (handy in tests),
        migrations included.
        """
        from synnefo_twisted.db.migrations import allMigrations, migrate

        db = openDatabase("sqlite:///:memory:", self.reactor)
        await db.startService()
        self.addCleanup(db.stopService)
        self.assertEqual(await migrate(db), [m.name for m in allMigrations()])
        self.assertEqual(await db.runQuery("SELECT count(*) FROM users"), [(0,)])
