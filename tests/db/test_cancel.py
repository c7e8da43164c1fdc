"""
A database call cancelled by its caller (an HTTP client that went away)
still runs to its end on both drivers: the caller gets CancelledError at
once, nothing is logged as unhandled, the statement's effect happens, and
the database keeps serving.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from synnefo_twisted.db import openDatabase
from synnefo_twisted.db._common import shield
from synnefo_twisted.testing import memoryDatabase
from tests.integration import realservices
from tests.integration.db.test_postgres import SchemaMixin, withSearchPath

if TYPE_CHECKING:
    _Base = TestCase
else:
    _Base = object


class ShieldTests(SynchronousTestCase):
    def test_result(self) -> None:
        """
        Uncancelled, the shield fires with the call's result or failure.
        """
        self.assertEqual(self.successResultOf(shield(succeed(3), "query")), 3)
        failed = shield(Deferred.fromCoroutine(_raise(ValueError("boom"))), "query")
        self.failureResultOf(failed, ValueError)

    def test_cancel(self) -> None:
        """
        Cancelling the shield fails it with CancelledError and leaves the call running; its later failure is logged.
        """
        inner: Deferred[int] = Deferred(lambda d: self.fail("the call was cancelled"))
        outer = shield(inner, "query")
        outer.cancel()
        self.failureResultOf(outer, CancelledError)
        inner.errback(Failure(ValueError("late")))
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.assertNoResult(Deferred())  # nothing else pending


async def _raise(error: Exception) -> None:
    raise error


class CancelMixin(_Base):
    timeout = 30

    def openDatabase(self) -> Deferred[Any]:
        raise NotImplementedError()

    async def started(self) -> Any:
        db = await self.openDatabase()
        self.addCleanup(db.stopService)
        await db.runOperation("CREATE TABLE cancelled (k INTEGER PRIMARY KEY)")
        return db

    async def test_cancelOperation(self) -> None:
        """
        A cancelled statement still runs; the database answers the next call.
        """
        db = await self.started()
        call = db.runOperation("INSERT INTO cancelled (k) VALUES (%s)", (1,))
        call.cancel()
        self.failureResultOf(call, CancelledError)
        self.assertEqual(await db.runQuery("SELECT k FROM cancelled"), [(1,)])

    async def test_cancelInteraction(self) -> None:
        """
        A cancelled interaction is not cut in the middle: every statement runs and it commits.
        """
        db = await self.started()

        async def twoInserts(tx: Any) -> None:
            await tx.execute("INSERT INTO cancelled (k) VALUES (%s)", (1,))
            await tx.execute("INSERT INTO cancelled (k) VALUES (%s)", (2,))

        call = db.runInteraction(twoInserts)
        call.cancel()
        self.failureResultOf(call, CancelledError)
        await db.runInteraction(lambda tx: tx.execute("SELECT 1"))
        self.assertEqual(await db.runQuery("SELECT k FROM cancelled ORDER BY k"), [(1,), (2,)])


class SQLiteCancelTests(CancelMixin, TestCase):
    def openDatabase(self) -> Deferred[Any]:
        return memoryDatabase(reactor)


class PostgresCancelTests(SchemaMixin, CancelMixin, TestCase):
    def openDatabase(self) -> Deferred[Any]:
        return Deferred.fromCoroutine(self._open())

    async def _open(self) -> Any:
        # one connection: the call after a cancelled one waits for it (a second pool connection may still be
        # connecting right after start, which is not what these tests are about)
        db = openDatabase(withSearchPath(realservices.PG_URL, self.makeSchema()), reactor, poolSize=1)
        await db.startService()
        return db
