"""
Drift proofs on the simulated cluster: servers are created through the
server logic and kept true by the very messages the watcher would publish
for their jobs, applied by the dispatcher's state machine
(C{applyMessage}); then drift is injected behind the system's back (an
instance removed or stopped directly in Ganeti, a job whose file — and so
its messages — is lost, a build that failed unseen, an instance nobody
knows). The reconciler finds each one, fixes it through the same state
machine, and a second pass finds nothing. On SQLite here and on
PostgreSQL in C{tests.reconciler.test_postgres}.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from twisted.trial.unittest import TestCase

from synnefo_twisted.db.repositories import PortRepository
from synnefo_twisted.ganeti import events
from synnefo_twisted.ganeti.details import detailsFromRecord
from synnefo_twisted.ganeti.sim.queue import FailureRule
from synnefo_twisted.logic import serverops
from synnefo_twisted.logic.dispatchapply import applyMessage
from synnefo_twisted.logic.reconcile import Thresholds
from synnefo_twisted.logic.servers import parseCreateRequest
from synnefo_twisted.reconciler.service import ReconcilerService
from synnefo_twisted.reconciler.shell import BatchResult, FixOptions, reconcileServers
from tests.reconciler.support import ClusterMixin

NO_GRACE = Thresholds(grace=timedelta(0))


class DriftMixin(ClusterMixin):
    async def _setUp(self) -> None:
        await super()._setUp()
        self.delivered: set[int] = set()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def lookup(self, name: str) -> Any:
        inst = self.sim.cluster.instances.get(name)
        if inst is None:
            return None
        return detailsFromRecord(self.sim.cluster.instanceRecord(inst))

    def runJobs(self) -> None:
        """
        Let the simulated cluster finish every job.
        """
        for _ in range(200):
            if all(job.finalized() for job in self.sim.queue.jobs.values()):
                return
            self.clock.advance(0.1)
        raise AssertionError("jobs did not finish")

    async def deliver(self, jobId: int) -> None:
        """
        Apply the final op-status messages of job C{jobId}, as the watcher
        publishes them and the dispatcher consumes them.
        """
        job = self.sim.queue.jobs[jobId].toQueued()
        for index in range(len(job.ops)):
            message = events.messageForOp(job, index, self.sim.cluster.name, self.lookup)
            if message is not None and message.body.get("type") == events.OP_STATUS:
                await applyMessage(self.db, "op", message.body)
        self.delivered.add(jobId)

    async def deliverAll(self) -> None:
        self.runJobs()
        for jobId in sorted(self.sim.queue.jobs):
            if jobId not in self.delivered:
                await self.deliver(jobId)

    def lose(self) -> None:
        """
        Every finished job so far never reaches the dispatcher.
        """
        self.runJobs()
        self.delivered.update(self.sim.queue.jobs)

    async def create(self, name: str = "vm") -> int:
        """
        A server created through the server logic, built and ACTIVE in the
        database by its own job's messages.
        """
        request = parseCreateRequest(
            {"server": {"name": name, "imageRef": self.image.id, "flavorRef": str(self.flavor.id), "networks": []}}
        )
        result = await serverops.createServer(self.db, self.registry, self.user, request)
        await self.deliverAll()
        server = await self.servers.get(result.server.id)
        assert server is not None
        self.assertEqual(server.operstate, "STARTED")
        return server.id

    async def reconcile(self, fix: FixOptions | None = None) -> BatchResult:
        return await reconcileServers(
            self.db, self.backend, self.client, self.now, fix=fix or FixOptions(), thresholds=NO_GRACE
        )

    def kinds(self, result: BatchResult) -> list[tuple[str, int]]:
        return sorted((f.drift.kind, f.drift.serverId) for f in result.findings)

    async def assertNoDrift(self) -> None:
        self.runJobs()
        self.assertEqual(self.kinds(await self.reconcile()), [])

    async def server(self, serverId: int) -> Any:
        server = await self.servers.get(serverId)
        assert server is not None
        return server

    # -- the proofs -----------------------------------------------------------------------------

    async def test_inSync(self) -> None:
        """
        Servers kept true by their messages show no drift.
        """
        await self.create("a")
        await self.create("b")
        await self.assertNoDrift()

    async def test_deletedInGaneti(self) -> None:
        """
        An instance removed directly in Ganeti: its server is stale, and
        the fix (a simulated REMOVE success) deletes it, releasing its quota.
        """
        serverId = await self.create()
        keep = await self.create("keep")
        await self.client.deleteInstance(f"snf-{serverId}")
        self.lose()
        self.assertNotIn(f"snf-{serverId}", self.sim.cluster.instances)
        self.assertEqual(self.kinds(await self.reconcile()), [("stale", serverId)])
        self.assertFalse((await self.server(serverId)).deleted)
        result = await self.reconcile(FixOptions(stale=True))
        self.assertEqual([f.fix for f in result.findings], ["fixed"])
        server = await self.server(serverId)
        self.assertEqual((server.deleted, server.operstate), (True, "DESTROYED"))
        self.assertEqual(await PortRepository(self.db).listByServer(serverId), [])
        self.assertFalse((await self.server(keep)).deleted)
        await self.assertNoDrift()

    async def test_stoppedInGaneti(self) -> None:
        """
        An instance stopped directly in Ganeti: unsynced operstate, fixed
        to STOPPED by a simulated SHUTDOWN success.
        """
        serverId = await self.create()
        await self.client.shutdownInstance(f"snf-{serverId}")
        self.lose()
        self.assertEqual(self.kinds(await self.reconcile()), [("unsynced-operstate", serverId)])
        result = await self.reconcile(FixOptions(operstate=True))
        self.assertEqual([f.fix for f in result.findings], ["fixed"])
        self.assertEqual((await self.server(serverId)).operstate, "STOPPED")
        await self.assertNoDrift()

    async def test_lostJobFile(self) -> None:
        """
        A stop through the API whose job file (and so every message) is
        lost: the server stays STARTED with a pending task; the fixes make
        it STOPPED and clear the task.
        """
        serverId = await self.create()
        await serverops.stopServer(self.db, self.registry, self.user, serverId)
        self.lose()
        server = await self.server(serverId)
        self.assertEqual((server.operstate, server.task), ("STARTED", "STOP"))
        self.assertEqual(
            self.kinds(await self.reconcile()), [("pending-task", serverId), ("unsynced-operstate", serverId)]
        )
        await self.reconcile(FixOptions.all())
        server = await self.server(serverId)
        self.assertEqual((server.operstate, server.task, server.task_job_id), ("STOPPED", None, None))
        await self.assertNoDrift()

    async def test_lostCreate(self) -> None:
        """
        A build whose messages are all lost: BUILD in the database, running
        in Ganeti; the fix (CREATE success with the build job, then
        STARTUP) makes it ACTIVE and settles its commission.
        """
        request = parseCreateRequest(
            {"server": {"name": "vm", "imageRef": self.image.id, "flavorRef": str(self.flavor.id), "networks": []}}
        )
        result = await serverops.createServer(self.db, self.registry, self.user, request)
        self.lose()
        serverId = result.server.id
        self.assertEqual((await self.server(serverId)).operstate, "BUILD")
        self.assertEqual(self.kinds(await self.reconcile()), [("unsynced-operstate", serverId)])
        await self.reconcile(FixOptions.all())
        server = await self.server(serverId)
        self.assertEqual((server.operstate, server.task), ("STARTED", None))
        self.assertEqual(await self.quotas.pending(), [])
        await self.assertNoDrift()

    async def test_buildError(self) -> None:
        """
        A build that failed unseen (job in error, no instance): build
        error, fixed to ERROR by a simulated CREATE error.
        """
        self.sim.queue.failNext(FailureRule(opId="OP_INSTANCE_CREATE"))
        request = parseCreateRequest(
            {"server": {"name": "vm", "imageRef": self.image.id, "flavorRef": str(self.flavor.id), "networks": []}}
        )
        result = await serverops.createServer(self.db, self.registry, self.user, request)
        self.lose()
        serverId = result.server.id
        self.assertEqual(self.kinds(await self.reconcile()), [("build-error", serverId)])
        await self.reconcile(FixOptions(buildErrors=True))
        self.assertEqual((await self.server(serverId)).operstate, "ERROR")
        await self.assertNoDrift()

    async def test_orphan(self) -> None:
        """
        An instance nobody knows: with --fix-orphans it is removed from
        Ganeti; without, only reported.
        """
        await self.client.createInstance(
            "snf-4242", "file", [{"size": 1024}], [], os="snf-image+default", beparams={"vcpus": 1, "memory": 128}
        )
        self.lose()
        self.sim.cluster.instances["snf-4242"].mtime -= 3600
        self.assertEqual(self.kinds(await self.reconcile(FixOptions(stale=True))), [("orphan", 4242)])
        self.assertIn("snf-4242", self.sim.cluster.instances)
        await self.reconcile(FixOptions(orphans=True))
        self.lose()
        self.assertNotIn("snf-4242", self.sim.cluster.instances)
        await self.assertNoDrift()

    async def test_idempotentFix(self) -> None:
        """
        Fixing twice changes nothing the second time: the second pass finds
        nothing to do.
        """
        serverId = await self.create()
        await self.client.shutdownInstance(f"snf-{serverId}")
        self.lose()
        first = await self.reconcile(FixOptions.all())
        second = await self.reconcile(FixOptions.all())
        self.assertEqual([f.fix for f in first.findings], ["fixed"])
        self.assertEqual(second.findings, [])

    async def test_service(self) -> None:
        """
        The reconciler service, left running on its clock, finds and fixes
        drift within one period.
        """
        serverId = await self.create()
        await self.client.shutdownInstance(f"snf-{serverId}")
        self.lose()
        service = ReconcilerService(
            self.clock,
            self.db,
            self.registry,
            period=60.0,
            initialDelay=1.0,
            fix=FixOptions.all(),
            thresholds=NO_GRACE,
            now=self.now,
        )
        service.startService()
        for _ in range(70):
            self.clock.advance(1)
            while service.busy:
                await service.whenIdle()
        await service.stopService()
        self.assertEqual(service.passes, 1)
        self.assertEqual((await self.server(serverId)).operstate, "STOPPED")
        self.assertFalse(service.busy)


class SQLiteDriftTests(DriftMixin, TestCase):
    """
    The drift proofs on SQLite.
    """
