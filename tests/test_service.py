"""
Tests for L{synnefo_twisted.service.OrderedMultiService}.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from synnefo_twisted.service import ChildStartFailed, OrderedMultiService
from tests.fixtures.pluginsupport import EVENTS, RecordingService


class OrderedMultiServiceTests(SynchronousTestCase):
    def setUp(self) -> None:
        del EVENTS[:]

    def test_orderedStartAndStop(self) -> None:
        """
        Children start in order, each after the previous start fired, and stop in reverse.
        """
        hold: Deferred[None] = Deferred()
        parent = OrderedMultiService()
        parent.addChild("a", RecordingService("a", hold=hold))
        parent.addChild("b", RecordingService("b"))
        d = parent.startService()
        self.assertEqual(EVENTS, [("start", "a")])
        self.assertNoResult(d)
        self.assertEqual([c.state for c in parent.childStates()], ["starting", "pending"])
        hold.callback(None)
        self.successResultOf(d)
        self.assertEqual(EVENTS, [("start", "a"), ("start", "b")])
        self.assertEqual([c.health().ok for c in parent.childStates()], [True, True])
        self.successResultOf(parent.stopService())
        self.assertEqual(EVENTS[2:], [("stop", "b"), ("stop", "a")])
        self.assertEqual([c.state for c in parent.childStates()], ["stopped", "stopped"])

    def test_failedStart(self) -> None:
        """
        A child whose start fails fails the whole start, names the child, and
        later children are not started.
        """
        parent = OrderedMultiService()
        parent.addChild("a", RecordingService("a"))
        parent.addChild("b", RecordingService("b", fail=True))
        parent.addChild("c", RecordingService("c"))
        failure = self.failureResultOf(parent.startService(), ChildStartFailed)
        self.assertEqual(failure.value.child, "b")
        self.assertIn("b cannot start", str(failure.value))
        self.assertEqual([c.state for c in parent.childStates()], ["running", "failed", "pending"])
        self.successResultOf(parent.stopService())
        self.assertEqual(EVENTS, [("start", "a"), ("start", "b"), ("stop", "a")])

    def test_stopWhileStarting(self) -> None:
        """
        Stopping while a child's start is pending cancels the start and stops
        the children already started, including the pending one.
        """
        hold: Deferred[None] = Deferred()
        parent = OrderedMultiService()
        parent.addChild("a", RecordingService("a"))
        parent.addChild("b", RecordingService("b", hold=hold))
        parent.addChild("c", RecordingService("c"))
        parent.startService()
        self.successResultOf(parent.stopService())
        self.assertEqual(EVENTS, [("start", "a"), ("start", "b"), ("stop", "b"), ("stop", "a")])

    def test_duplicateAndLateChildren(self) -> None:
        """
        Names are unique and children cannot be added once running.
        """
        parent = OrderedMultiService()
        parent.addChild("a", RecordingService("a"))
        self.assertRaises(ValueError, parent.addChild, "a", RecordingService("a"))
        parent.startService()
        self.assertRaises(RuntimeError, parent.addChild, "z", RecordingService("z"))
