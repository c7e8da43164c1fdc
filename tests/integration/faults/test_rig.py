"""
The fault rig's checker fails when the invariants are broken: a database
that never learned what Ganeti did, a message applied twice, a stale
message winning, a commission resolved twice.
"""

from __future__ import annotations

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from synnefo_twisted.bus import openBus
from synnefo_twisted.bus.topology import DEAD_LETTER_EXCHANGE, eventQueues
from tests.integration import realservices
from tests.integration.faults.rig import FaultRig


class CheckerTests(TestCase):
    timeout = 120

    async def setUp(self) -> None:  # type: ignore[override]
        self.rig = FaultRig(self)
        await self.rig.start()
        await self.rig.startWatcher()

    async def test_noDispatcher(self) -> None:
        """
        Without a dispatcher the servers stay in BUILD while Ganeti runs
        them: every one is a mismatch, its commission is still pending, and
        the reconciler finds it.
        """
        await self.rig.drive(20, deleteEvery=0, timeout=30)
        report = await self.rig.converge(timeout=2)
        self.assertEqual(len(report.mismatches), 20, report.mismatches)
        self.assertIn("BUILD", report.mismatches[0])
        self.assertIn("20 commissions still pending", report.commissions)
        self.assertIn("cyclades.vm: 20 pending", report.quotas)
        self.assertEqual(len(report.drift), 20, report.drift)
        self.assertRaises(self.failureException, self.rig.assertConverged, report, 20)

    async def test_doubleApplication(self) -> None:
        """
        The same job status written by two transactions is reported as
        applied twice; a backendtime going back as a regression; a
        commission resolved after it was resolved as such.
        """
        await self.rig.drive(2, deleteEvery=0, timeout=30)
        first, second = self.rig.created
        apply = (
            "UPDATE servers SET backendjobstatus = 'success', backendtime = '2026-01-02T00:00:00Z', "
            "operstate = 'STARTED' WHERE id = %s"
        )
        await self.rig.db.runOperation(apply, (first,))
        report = await self.rig.check()
        self.assertEqual(report.doubleApplied, [])
        await self.rig.db.runOperation(apply, (first,))
        await self.rig.db.runOperation(
            "UPDATE servers SET backendjobstatus = 'success', backendtime = '2026-01-03T00:00:00Z' WHERE id = %s",
            (second,),
        )
        await self.rig.db.runOperation(
            "UPDATE servers SET backendjobstatus = 'running', backendtime = '2026-01-01T00:00:00Z' WHERE id = %s",
            (second,),
        )
        rows = await self.rig.db.runQuery("SELECT serial_id FROM servers WHERE id = %s", (first,))
        commission = rows[0][0]
        await self.rig.db.runOperation("UPDATE commissions SET state = 'accepted' WHERE id = %s", (commission,))
        await self.rig.db.runOperation("UPDATE commissions SET state = 'rejected' WHERE id = %s", (commission,))
        report = await self.rig.check()
        self.assertEqual(len(report.doubleApplied), 1, report.doubleApplied)
        self.assertIn(f"server {first}:", report.doubleApplied[0])
        self.assertEqual(len(report.regressions), 1, report.regressions)
        self.assertIn(f"server {second}:", report.regressions[0])
        self.assertEqual(report.commissions[0], f"commission {commission} resolved again: accepted -> rejected")

    async def test_deadLetters(self) -> None:
        """
        A message in one of the test's dead-letter queues is reported (and drained).
        """
        self.assertEqual(await self.rig.deadLetters(wait=0.2), [])
        bus = openBus(realservices.AMQP_URL, reactor)
        await bus.startService()
        self.addCleanup(bus.stopService)
        names = eventQueues(self.rig.prefix)
        await bus.publish(DEAD_LETTER_EXCHANGE, names.opKey, b'{"not": "applied"}', {"x-reason": "test"})
        found = await self.rig.deadLetters(wait=0.5)
        self.assertEqual(len(found), 1, found)
        self.assertIn(f"{names.op}-dl", found[0])
        self.assertIn("not", found[0])
        self.assertEqual(await self.rig.deadLetters(wait=0.2), [])
