"""
Tests for L{synnefo_twisted.logs}.
"""

from __future__ import annotations

import io
import json

from twisted.internet.task import Clock
from twisted.logger import Logger, LogPublisher
from twisted.trial.unittest import SynchronousTestCase

from synnefo_twisted.logs import LogThrottle, jsonLineObserver


class JSONLogTests(SynchronousTestCase):
    def test_oneObjectPerLine(self) -> None:
        """
        Each event is one line of JSON with the formatted message and the named fields.
        """
        out = io.StringIO()
        publisher = LogPublisher(jsonLineObserver(out))
        log = Logger(namespace="snf.test", observer=publisher)
        log.info("job {job_id} done\nnext", job_id=42)
        log.warn("odd {thing}", thing=object())
        lines = out.getvalue().splitlines()
        self.assertEqual(len(lines), 2)
        first = json.loads(lines[0])
        self.assertEqual(first["message"], "job 42 done\nnext")
        self.assertEqual(first["job_id"], 42)
        self.assertEqual(first["level"], "info")
        self.assertEqual(first["namespace"], "snf.test")
        self.assertTrue(first["time"].endswith("+00:00"))
        second = json.loads(lines[1])
        self.assertEqual(second["level"], "warn")
        self.assertTrue(second["thing"].startswith("<object object"))

    def test_failure(self) -> None:
        """
        A logged failure carries its traceback.
        """
        out = io.StringIO()
        log = Logger(observer=LogPublisher(jsonLineObserver(out)))
        try:
            _ = 1 / 0
        except ZeroDivisionError:
            log.failure("sum failed for {n}", n=1)
        record = json.loads(out.getvalue())
        self.assertEqual(record["level"], "critical")
        self.assertIn("ZeroDivisionError", record["failure"])


class LogThrottleTests(SynchronousTestCase):
    def test_throttle(self) -> None:
        """
        The first occurrence and changes are logged at once; repeats once per interval.
        """
        clock = Clock()
        throttle = LogThrottle(clock, interval=60)
        self.assertTrue(throttle.ready("refused"))
        self.assertFalse(throttle.ready("refused"))
        self.assertFalse(throttle.ready("refused"))
        self.assertTrue(throttle.ready("timeout"))
        clock.advance(59)
        self.assertFalse(throttle.ready("timeout"))
        clock.advance(1)
        self.assertTrue(throttle.ready("timeout"))
        self.assertEqual(throttle.takeSuppressed(), 3)
        throttle.reset()
        self.assertTrue(throttle.ready("timeout"))
