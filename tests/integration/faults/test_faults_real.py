"""
The fault proof once against the real Ganeti 3.0 test cluster
(L{tests.integration.ganeti.realcluster}) with real RabbitMQ and
PostgreSQL: the watcher reads the cluster's own job queue, the dispatcher
runs as a node process, and the truth is what the cluster's RAPI says.

Only a handful of servers: instance creation on the real cluster takes
about a second per instance even with the fake hypervisor and the noop OS,
and the cluster is shared with other suites, so 200 would take minutes.
The faults are the ones whose handling depends on Ganeti's real job files
and timestamps: the dispatcher SIGKILLed after its commits and before its
acks, and the watcher SIGKILLed, both restarted while servers are being
created and deleted.
"""

from __future__ import annotations

from tests.integration.faults.rig import FaultRig, RealGaneti
from tests.integration.ganeti.test_rapi_real import QuiescingTestCase

SERVERS = 6


class RealClusterFaultTests(QuiescingTestCase):
    timeout = 300

    async def test_dispatcherAndWatcherKilled(self) -> None:
        """
        Six servers created on the real cluster, every other one deleted
        once ACTIVE; meanwhile the dispatcher is killed after committing
        and before acking (its acks held back), and the watcher is killed;
        both are started again. Every server ends as Ganeti has it, nothing applied twice
        or lost, no dead letters.
        """
        rig = FaultRig(self, RealGaneti())
        await rig.start()
        await rig.startWatcher()
        await rig.startDispatcher()

        async def fault() -> None:
            await rig.killAfterCommit(rig.dispatchers[0], hold=0.5)
            await rig.restartWatcher()

        await rig.drive(SERVERS, deleteEvery=2, concurrency=3, fault=fault, faultAfter=0.34, timeout=200)
        report = await rig.converge(timeout=90)
        rig.assertConverged(report, SERVERS)
        self.assertGreaterEqual(report.live + report.deleted, SERVERS)
