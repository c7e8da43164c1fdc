"""
SQL text helpers: the parameter style translation for SQLite and value
normalisation.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from twisted.trial.unittest import SynchronousTestCase

from synnefo_twisted.db._sql import (
    ParameterError,
    checkParams,
    parseBool,
    parseTimestamp,
    readsOnly,
    sqliteValue,
    translateForSQLite,
)


class TranslateTests(SynchronousTestCase):
    """
    translateForSQLite.
    """

    def test_positional(self) -> None:
        """
        %s becomes ? and the style is positional.
        """
        self.assertEqual(
            translateForSQLite("SELECT a FROM t WHERE b = %s AND c = %s"),
            ("SELECT a FROM t WHERE b = ? AND c = ?", "positional"),
        )

    def test_named(self) -> None:
        """
        %(name)s becomes :name and the style is named.
        """
        self.assertEqual(
            translateForSQLite("UPDATE t SET a = %(a)s WHERE id = %(id_2)s"),
            ("UPDATE t SET a = :a WHERE id = :id_2", "named"),
        )

    def test_percent(self) -> None:
        """
        %% is a literal percent; a statement without parameters has style none.
        """
        self.assertEqual(translateForSQLite("SELECT '50%%' LIKE 'x%%'"), ("SELECT '50%' LIKE 'x%'", "none"))

    def test_lockingClausesDropped(self) -> None:
        """
        FOR UPDATE / FOR SHARE, with OF, NOWAIT or SKIP LOCKED, in any case,
        are removed.
        """
        for clause in (
            " FOR UPDATE",
            " for update",
            "\nFOR NO KEY UPDATE",
            " FOR SHARE OF t NOWAIT",
            " FOR UPDATE SKIP LOCKED",
        ):
            self.assertEqual(
                translateForSQLite(f"SELECT a FROM t WHERE id = %s{clause}")[0], "SELECT a FROM t WHERE id = ?"
            )
        self.assertEqual(translateForSQLite("SELECT formula FROM t")[0], "SELECT formula FROM t")

    def test_errors(self) -> None:
        """
        Mixing styles or an unknown % sequence is a ParameterError (also a
        ValueError).
        """
        self.assertRaises(ParameterError, translateForSQLite, "SELECT %s, %(a)s")
        self.assertRaises(ParameterError, translateForSQLite, "SELECT 50%")
        self.assertRaises(ValueError, translateForSQLite, "SELECT %d")

    def test_checkParams(self) -> None:
        """
        Parameters must match the style: a sequence for %s, a mapping for
        %(name)s; None means no parameters.
        """
        self.assertEqual(checkParams("positional", [1, 2]), [1, 2])
        self.assertEqual(checkParams("named", {"a": 1}), {"a": 1})
        self.assertEqual(checkParams("none", None), ())
        self.assertRaises(ParameterError, checkParams, "positional", {"a": 1})
        self.assertRaises(ParameterError, checkParams, "named", (1,))
        self.assertRaises(ParameterError, checkParams, "positional", "abc")
        self.assertRaises(ParameterError, checkParams, "positional", 5)


class ValueTests(SynchronousTestCase):
    """
    Values on their way in and out of SQLite.
    """

    def test_timestamps(self) -> None:
        """
        Datetimes go in as UTC ISO text and come back as aware UTC datetimes;
        naive ones are taken as UTC.
        """
        athens = timezone(timedelta(hours=2))
        moment = datetime(2030, 1, 2, 5, 4, 5, 6, tzinfo=athens)
        text = sqliteValue(moment)
        self.assertEqual(text, "2030-01-02T03:04:05.000006+00:00")
        self.assertEqual(parseTimestamp(text), moment)
        self.assertEqual(
            parseTimestamp(b"2030-01-02T03:04:05.123+00:00"), datetime(2030, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)
        )
        self.assertEqual(parseTimestamp("2030-01-02 03:04:05"), datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC))
        self.assertEqual(parseTimestamp(moment).tzinfo, UTC)  # type: ignore[union-attr]
        self.assertIsNone(parseTimestamp(None))
        self.assertRaises(TypeError, parseTimestamp, 5)
        self.assertEqual(sqliteValue(7), 7)

    def test_booleans(self) -> None:
        """
        0/1 (int or bytes) become booleans.
        """
        self.assertEqual(
            [parseBool(v) for v in (0, 1, b"0", b"1", True, False)], [False, True, False, True, True, False]
        )


class ReadsOnlyTests(SynchronousTestCase):
    """
    L{readsOnly}: only a plain C{SELECT} reads only; anything else counts as a write.
    """

    def test_select(self) -> None:
        for sql in (
            "SELECT 1",
            "  select x FROM t",
            "\n\tSELECT\n1",
            "-- a comment\nSELECT 1",
            "/* a\ncomment */ SELECT 1",
            "SELECT * FROM t FOR UPDATE",
            "SELECT(1)",
        ):
            self.assertTrue(readsOnly(sql), sql)

    def test_writes(self) -> None:
        for sql in (
            "INSERT INTO t VALUES (1)",
            "update t SET x = 1",
            "DELETE FROM t",
            "WITH gone AS (DELETE FROM t RETURNING x) SELECT * FROM gone",
            "CREATE TABLE t (x INTEGER)",
            "PRAGMA user_version = 3",
            "SELECTED",
            "select_x()",
            "-- SELECT 1\nDELETE FROM t",
            "",
        ):
            self.assertFalse(readsOnly(sql), sql)
