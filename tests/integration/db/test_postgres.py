"""
The PostgreSQL driver against the real server (C{realservices.PG_URL}):
the IDatabase contract, then survival of a server restart, LISTEN after a
restart, and starting while the server is unreachable.

Each test works in a schema of its own (created and dropped around it) so
the tests never see each other's tables.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import psycopg2
from twisted.internet import reactor as _globalReactor  # noqa: N812  (tests only: real server, real reactor)
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.protocols.portforward import ProxyFactory
from twisted.trial.unittest import TestCase

from synnefo_twisted.db import DatabaseUnavailableError, openDatabase
from synnefo_twisted.db.postgres import PostgresDatabase, backoffDelays
from synnefo_twisted.metrics import MetricsRegistry
from tests.db.contract import DatabaseContractMixin, waitFor
from tests.integration import realservices


def withSearchPath(url: str, schema: str) -> str:
    """
    C{url} with the libpq option that makes C{schema} the default schema.
    """
    option = "options=" + quote(f"-csearch_path={schema}")
    return url + ("&" if "?" in url else "?") + option


if TYPE_CHECKING:
    from twisted.trial.unittest import TestCase as _Base
else:
    _Base = object


class SchemaMixin(_Base):
    """
    A fresh schema per test, dropped afterwards.
    """

    reactor = _globalReactor

    def makeSchema(self) -> str:
        schema = "snf_test_" + uuid.uuid4().hex[:12]
        conn = psycopg2.connect(realservices.PG_URL)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"CREATE SCHEMA {schema}")
        conn.close()
        self.addCleanup(self.dropSchema, schema)
        return schema

    @staticmethod
    def dropSchema(schema: str) -> None:
        conn = psycopg2.connect(realservices.PG_URL)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.close()


class PostgresContractTests(SchemaMixin, DatabaseContractMixin, TestCase):
    """
    The contract on PostgreSQL.
    """

    def setUp(self) -> None:
        self.url = withSearchPath(realservices.PG_URL, self.makeSchema())

    def makeDatabase(self, metrics: MetricsRegistry | None = None) -> Any:
        return openDatabase(self.url, self.reactor, poolSize=3, metrics=metrics)

    async def test_forUpdateReallyLocks(self) -> None:
        """
        While one interaction holds a row with FOR UPDATE, another one's
        FOR UPDATE on the same row waits until the first commits.
        """
        db = await self.started()
        await self.table(db)
        await db.runOperation("INSERT INTO items (name, n) VALUES ('row', 0)")
        release: Deferred[None] = Deferred()
        order: list[str] = []

        async def holder(tx: Any) -> None:
            await tx.execute("SELECT n FROM items WHERE name = 'row' FOR UPDATE")
            order.append("held")
            await release
            await tx.execute("UPDATE items SET n = 1 WHERE name = 'row'")
            order.append("holder commits")

        async def waiter(tx: Any) -> int:
            rows = await tx.execute("SELECT n FROM items WHERE name = 'row' FOR UPDATE")
            order.append("waiter got row")
            return int(rows[0][0])

        first = db.runInteraction(holder)
        await waitFor(self.reactor, lambda: order)
        second = db.runInteraction(waiter)
        await deferLater(self.reactor, 0.2, lambda: None)
        self.assertEqual(order, ["held"])
        release.callback(None)
        await first
        self.assertEqual(await second, 1)
        self.assertEqual(order, ["held", "holder commits", "waiter got row"])


async def restartPostgres(reactor: Any) -> None:
    _out, err, code = await getProcessOutputAndValue(
        "/bin/bash", ["-c", realservices.pgRestartCommand()], env=dict(os.environ), reactor=reactor
    )
    if code != 0:
        raise AssertionError(f"restarting PostgreSQL failed ({code}): {err.decode(errors='replace')}")


def fastBackoff() -> Any:
    return backoffDelays(initial=0.05, factor=2.0, maximum=0.5, jitter=lambda: 1.0)


class PostgresRestartTests(SchemaMixin, TestCase):
    """
    The pool and the listener survive a PostgreSQL restart without the
    service being restarted.
    """

    timeout = 120

    async def started(self) -> PostgresDatabase:
        url = withSearchPath(realservices.PG_URL, self.makeSchema())
        db = PostgresDatabase(url, self.reactor, poolSize=3, backoff=fastBackoff)
        await db.startService()
        self.addCleanup(db.stopService)
        await waitFor(self.reactor, lambda: db._poolAlive() == 3 and db._listenerAlive())
        return db

    async def test_restartLosesNoCommittedRow(self) -> None:
        """
        Writers keep inserting while PostgreSQL restarts: every insert that
        reported success is in the table afterwards, some failed meanwhile,
        the pool works again (all connections) and health is up, without
        restarting the service.
        """
        db = await self.started()
        await db.runOperation("CREATE TABLE log (id BIGINT PRIMARY KEY, note TEXT NOT NULL)")
        committed: set[int] = set()
        failures: list[str] = []
        state = {"next": 0, "stop": False}

        async def writer() -> None:
            while not state["stop"]:
                state["next"] += 1
                ident = state["next"]
                try:
                    await db.runInteraction(lambda tx, i: tx.execute("INSERT INTO log VALUES (%s, 'x')", (i,)), ident)
                except Exception as e:
                    failures.append(type(e).__name__)
                    await deferLater(self.reactor, 0.02, lambda: None)
                else:
                    committed.add(ident)

        writers = [Deferred.fromCoroutine(writer()) for _ in range(3)]
        await waitFor(self.reactor, lambda: len(committed) >= 30)
        await restartPostgres(self.reactor)
        before = len(committed)
        await waitFor(self.reactor, lambda: len(committed) >= before + 30, timeout=60)
        state["stop"] = True
        for w in writers:
            await w
        self.assertTrue(failures, "the restart should have failed some calls")
        rows = await db.runQuery("SELECT id FROM log")
        present = {r[0] for r in rows}
        self.assertEqual(committed - present, set())
        await waitFor(self.reactor, lambda: db._poolAlive() == 3, timeout=30)
        self.assertTrue(db.health().ok, db.health())
        self.assertEqual(
            await db.runQuery("SELECT count(*) FROM log WHERE id = ANY(%s)", (sorted(committed),)), [(len(committed),)]
        )

    async def test_listenAfterRestart(self) -> None:
        """
        A listener registered before a restart receives notifications sent
        after it (LISTEN is issued again on the new connection).
        """
        db = await self.started()
        got: list[str] = []
        await db.listen("snf_restart", got.append)
        await db.runInteraction(lambda tx: tx.notify("snf_restart", "before"))
        await waitFor(self.reactor, lambda: got == ["before"])
        await restartPostgres(self.reactor)

        async def sendUntilHeard() -> None:
            deadline = self.reactor.seconds() + 60
            while "after" not in got:
                if self.reactor.seconds() > deadline:
                    raise AssertionError("no notification after the restart")
                try:
                    await db.runInteraction(lambda tx: tx.notify("snf_restart", "after"))
                except Exception:
                    pass  # pool still reconnecting: try again
                await deferLater(self.reactor, 0.1, lambda: None)

        await sendUntilHeard()
        self.assertEqual(got[0], "before")
        self.assertTrue(db._listenerAlive())


def freePort() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


class PostgresUnreachableTests(SchemaMixin, TestCase):
    """
    Starting while PostgreSQL cannot be reached.
    """

    timeout = 60

    async def test_startRetriesUntilReachable(self) -> None:
        """
        Pointed at a closed port, startService keeps retrying with backoff,
        health is down with the reason and calls fail at once; when the port
        starts forwarding to the real server, the service connects and works.
        """
        schema = self.makeSchema()
        port = freePort()
        url = withSearchPath(f"postgresql://synnefo_test@127.0.0.1:{port}/synnefo_test", schema)
        db = PostgresDatabase(url, self.reactor, poolSize=2, backoff=fastBackoff)
        started = db.startService()
        self.addCleanup(db.stopService)
        await waitFor(self.reactor, lambda: db._failedAttempts >= 6)
        self.assertFalse(started.called)
        health = db.health()
        self.assertFalse(health.ok)
        self.assertIn(f"127.0.0.1:{port}", health.detail)
        self.assertIn("OperationalError", health.detail)
        with self.assertRaises(DatabaseUnavailableError):
            await db.runQuery("SELECT 1")

        proxy: Any = ProxyFactory("127.0.0.1", 5432)
        listening = self.reactor.listenTCP(port, proxy, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        await started
        self.assertEqual(await db.runQuery("SELECT 1"), [(1,)])
        await waitFor(self.reactor, lambda: db._poolAlive() == 2)
        self.assertTrue(db.health().ok)
