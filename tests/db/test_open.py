"""
openDatabase: the driver chosen from the URL, and clear errors for bad URLs.
"""

from __future__ import annotations

import os

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from synnefo_twisted.db import openDatabase, sqlitePath
from synnefo_twisted.db.postgres import PostgresDatabase
from synnefo_twisted.db.sqlite import SQLiteDatabase


class OpenDatabaseTests(SynchronousTestCase):
    """
    openDatabase and sqlitePath.
    """

    def test_sqlitePaths(self) -> None:
        """
        sqlite:/// is followed by a relative path, sqlite://// by an absolute
        one, and :memory: is accepted.
        """
        self.assertEqual(sqlitePath("sqlite:///./var/synnefo.db"), "./var/synnefo.db")
        self.assertEqual(sqlitePath("sqlite:///var/x.db"), "var/x.db")
        self.assertEqual(sqlitePath("sqlite:////srv/x.db"), "/srv/x.db")
        self.assertEqual(sqlitePath("sqlite:///:memory:"), ":memory:")

    def test_sqliteCreatesParent(self) -> None:
        """
        Opening an SQLite URL builds an SQLiteDatabase and creates the file's
        parent directory.
        """
        base = os.path.abspath(self.mktemp())
        db = openDatabase(f"sqlite:///{base}/a/b/x.db", MemoryReactorClock())
        self.assertIsInstance(db, SQLiteDatabase)
        self.assertTrue(os.path.isdir(f"{base}/a/b"))
        self.assertEqual(db.dialect, "sqlite")

    def test_postgres(self) -> None:
        """
        postgresql:// and postgres:// URLs build a PostgresDatabase with the
        pool size asked for.
        """
        db = openDatabase("postgresql://u:p@127.0.0.1:5432/synnefo", MemoryReactorClock(), poolSize=7)
        self.assertIsInstance(db, PostgresDatabase)
        self.assertEqual(db._poolSize, 7)
        self.assertIsInstance(openDatabase("postgres://u@h/db", MemoryReactorClock()), PostgresDatabase)

    def test_badURLs(self) -> None:
        """
        Unsupported schemes and malformed URLs are ValueErrors that say what is
        expected and never show the password.
        """
        cases = {
            "mysql://u:hunter2@h/db": "unsupported database URL scheme",
            "synnefo.db": "expected sqlite:///PATH",
            "sqlite://x.db": "sqlite:///relative/path.db",
            "sqlite:///": "no file name",
            "sqlite:///dir/": "no file name",
            "sqlite:///x.db?mode=ro": "no query",
            "postgresql://u:hunter2@h:99999/db": "bad port",
            "postgresql://u:hunter2@h:5432": "no database name",
            "postgresql:///db": "no host",
        }
        for url, expected in cases.items():
            with self.assertRaises(ValueError, msg=url) as caught:
                openDatabase(url, MemoryReactorClock())
            self.assertIn(expected, str(caught.exception), url)
            self.assertNotIn("hunter2", str(caught.exception))
        self.assertRaises(ValueError, openDatabase, "postgresql://u@h/db", MemoryReactorClock(), poolSize=0)
        self.assertRaises(ValueError, openDatabase, None, MemoryReactorClock())
