"""
The PostgreSQL driver's reconnection, health and logging, on a fake clock:
every connection attempt fails at once (the URL is refused by libpq before
any I/O), so the retries are driven by C{Clock.advance} alone.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet.testing import EventLoggingObserver, MemoryReactorClock
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from synnefo_twisted.db import DatabaseUnavailableError, openDatabase
from synnefo_twisted.db.postgres import PostgresDatabase, backoffDelays, describeURL, quoteIdentifier
from synnefo_twisted.interfaces import IDatabase, IHealthReporter
from synnefo_twisted.metrics import MetricsRegistry

# libpq rejects the unknown URI parameter synchronously: a connection
# attempt that fails without touching the network
REFUSED_URL = "postgresql://u:secret@db.example:5433/synnefo?no_such_option=1"


def steadyBackoff() -> Any:
    return backoffDelays(initial=0.5, factor=2.0, maximum=10.0, jitter=lambda: 1.0)


class BackoffTests(SynchronousTestCase):
    """
    The delays between connection attempts.
    """

    def test_sequence(self) -> None:
        """
        The first attempt is immediate, then the delay doubles from initial
        up to the maximum, and jitter scales each delay.
        """
        delays = backoffDelays(initial=0.5, factor=2.0, maximum=10.0, jitter=lambda: 1.0)
        self.assertEqual([next(delays) for _ in range(8)], [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0])
        jittered = backoffDelays(initial=1.0, factor=2.0, maximum=3.0, jitter=lambda: 1.1)
        self.assertEqual([round(next(jittered), 3) for _ in range(4)], [0.0, 1.1, 2.2, 3.0])

    def test_helpers(self) -> None:
        """
        URLs are described without credentials and channel names are quoted
        as identifiers.
        """
        self.assertEqual(describeURL(REFUSED_URL), "db.example:5433/synnefo")
        self.assertEqual(describeURL("postgresql://h/db"), "h:5432/db")
        self.assertEqual(quoteIdentifier('a"b'), '"a""b"')


class UnreachableTests(TestCase):
    """
    Starting while no connection can be made.
    """

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.db = PostgresDatabase(REFUSED_URL, self.clock, poolSize=2, backoff=steadyBackoff, summaryInterval=60)
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def attempts(self) -> list[int]:
        return [d.attempts for d in self.db._detectors()]

    def test_interfaces(self) -> None:
        """
        The driver provides IDatabase and IHealthReporter, openDatabase builds
        it for postgresql:// URLs, and it reports the postgresql dialect.
        """
        self.assertTrue(verifyObject(IDatabase, self.db))
        self.assertTrue(verifyObject(IHealthReporter, self.db))
        self.assertIsInstance(openDatabase("postgres://u@h/db", self.clock), PostgresDatabase)
        self.assertEqual(self.db.dialect, "postgresql")

    def test_retriesWithBackoff(self) -> None:
        """
        Each connection (two pool connections and the listener) retries after
        0, 0.5, 1, 2 ... seconds on the injected clock, and startService's
        Deferred has not fired.
        """
        started = self.db.startService()
        self.clock.advance(0)
        self.assertEqual(self.attempts(), [1, 1, 1])
        self.clock.advance(0.49)
        self.assertEqual(self.attempts(), [1, 1, 1])
        self.clock.advance(0.01)
        self.assertEqual(self.attempts(), [2, 2, 2])
        self.clock.pump([1.0, 2.0, 4.0])
        self.assertEqual(self.attempts(), [5, 5, 5])
        self.assertNoResult(started)
        self.db.stopService()
        self.failureResultOf(started, DatabaseUnavailableError)

    def test_healthAndCallsWhileDown(self) -> None:
        """
        While no connection works, health is not ok and says where and why,
        without the password, and calls fail at once.
        """
        started = self.db.startService()
        self.clock.advance(0)
        health = self.db.health()
        self.assertFalse(health.ok)
        self.assertEqual(health.state, "connecting")
        self.assertIn("db.example:5433/synnefo", health.detail)
        self.assertIn("ProgrammingError", health.detail)
        self.assertNotIn("secret", health.detail)
        self.failureResultOf(self.db.runQuery("SELECT 1"), DatabaseUnavailableError)
        self.failureResultOf(self.db.runInteraction(lambda tx: None), DatabaseUnavailableError)
        self.db.stopService()
        self.failureResultOf(started, DatabaseUnavailableError)

    def test_logsAreRateLimited(self) -> None:
        """
        Ten minutes of failed attempts (about 180) log one warning per
        summary interval, not one per attempt.
        """
        started = self.db.startService()
        self.clock.pump([0] + [1.0] * 600)
        self.assertGreater(sum(self.attempts()), 150)
        warnings = [e for e in self.events if e["log_level"] >= LogLevel.warn]
        self.assertTrue(8 <= len(warnings) <= 10, len(warnings))
        self.assertIn("still unreachable", warnings[0]["log_format"])
        self.db.stopService()
        self.failureResultOf(started, DatabaseUnavailableError)

    def test_stopCancelsEverything(self) -> None:
        """
        Stopping cancels every pending retry (no delayed call is left), fails
        the start Deferred, and health says stopped.
        """
        started = self.db.startService()
        self.clock.pump([0, 0.5, 1.0])
        self.assertTrue(self.clock.getDelayedCalls())
        stopped = self.db.stopService()
        self.successResultOf(stopped)
        self.clock.advance(0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        failure = self.failureResultOf(started, DatabaseUnavailableError)
        self.assertIn("stopped before connecting", str(failure.value))
        self.assertEqual(self.db.health().state, "stopped")
        self.failureResultOf(self.db.runQuery("SELECT 1"), DatabaseUnavailableError)

    def test_connectTimeout(self) -> None:
        """
        A server that accepts TCP but never answers makes each attempt give up
        after connectTimeout seconds (on the injected clock) and retry; health
        says the attempt timed out.
        """
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(8)  # never accepted: the kernel completes the handshake, nobody answers
        self.addCleanup(server.close)
        port = server.getsockname()[1]
        db = PostgresDatabase(
            f"postgresql://u@127.0.0.1:{port}/db", self.clock, poolSize=1, backoff=steadyBackoff, connectTimeout=5
        )
        started = db.startService()
        self.clock.advance(0)
        self.assertEqual([d.attempts for d in db._detectors()], [1, 1])
        self.clock.advance(5)
        self.assertIn("timed out after 5s", db.health().detail)
        self.clock.advance(0.5)
        self.assertEqual([d.attempts for d in db._detectors()], [2, 2])
        db.stopService()
        self.clock.advance(0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.failureResultOf(started, DatabaseUnavailableError)

    def test_connectionGauge(self) -> None:
        """
        With a metrics registry, the connections up and down are exported.
        """
        metrics = MetricsRegistry()
        db = PostgresDatabase(REFUSED_URL, self.clock, poolSize=2, backoff=steadyBackoff, metrics=metrics)
        started = db.startService()
        self.clock.advance(0)
        text = metrics.render()
        self.assertIn('synnefo_db_connections{state="down"} 3', text)
        self.assertIn('synnefo_db_connections{state="up"} 0', text)
        db.stopService()
        self.failureResultOf(started, DatabaseUnavailableError)

    def test_badPoolSize(self) -> None:
        """
        A pool of fewer than one connection is refused.
        """
        self.assertRaises(ValueError, PostgresDatabase, REFUSED_URL, self.clock, poolSize=0)
