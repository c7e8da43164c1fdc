"""
Drift proofs on the simulated cluster: servers are created through the
server logic and kept true by the very messages the watcher would publish
for their jobs, applied by the dispatcher's state machine
(C{applyMessage}); then drift is injected behind the system's back (an
instance removed or stopped directly in Ganeti, a job whose file — and so
its messages — is lost, a build that failed unseen, an instance nobody
knows). The reconciler finds each one, fixes it through the same state
machine, and a second pass finds nothing. On SQLite here and on
PostgreSQL in C{tests.reconciler.test_reconcile_postgres}.
"""

from __future__ import annotations

import ipaddress
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from twisted.trial.unittest import TestCase

from synnefo_twisted.db.pools import BackendNetworkRepository, IPPoolRepository
from synnefo_twisted.db.repositories import NetworkRepository, PortRepository, SubnetRepository
from synnefo_twisted.ganeti import events
from synnefo_twisted.ganeti.details import detailsFromRecord
from synnefo_twisted.ganeti.sim.queue import FailureRule
from synnefo_twisted.logic import pools, serverops
from synnefo_twisted.logic.dispatchapply import applyMessage
from synnefo_twisted.logic.reconcile import Thresholds
from synnefo_twisted.logic.servers import parseCreateRequest
from synnefo_twisted.metrics import MetricsRegistry
from synnefo_twisted.reconciler.service import ReconcilerService
from synnefo_twisted.reconciler.shell import BatchResult, FixOptions, reconcileNetworks, reconcileServers
from tests.reconciler.support import ClusterMixin

NO_GRACE = Thresholds(grace=timedelta(0))


class DriftMixin(ClusterMixin):
    async def _setUp(self) -> None:
        await super()._setUp()
        self.delivered: set[int] = set()
        self.later = timedelta(0)

    def now(self) -> datetime:
        """
        The reconciler's clock: real time, C{self.later} ahead.
        """
        return datetime.now(UTC) + self.later

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
        result = await self.reconcile()
        self.assertEqual(self.kinds(result), [], [f.row() for f in result.findings])

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

    async def test_joblessTask(self) -> None:
        """
        A stop whose claim committed but whose job was never submitted (the
        database went away in between): the task is pending with no job;
        the fix clears it and rejects the stop's quota commission, as the
        API does when a submission fails, and nothing is left pending.
        """
        serverId = await self.create()
        usage = {q.resource: q.usage for q in await self.quotas.holdings(self.project.id) if q.user_id is None}
        commission = await self.quotas.issue(self.project.id, self.user.id, {"cyclades.cpu": -2})
        await self.servers.update(serverId, task="STOP", action="STOP", task_job_id=None, serial_id=commission.id)
        self.lose()
        found = await self.reconcile()
        self.assertEqual(self.kinds(found), [("pending-task", serverId)])
        result = await self.reconcile(FixOptions(pendingTasks=True))
        self.assertEqual([f.fix for f in result.findings], ["fixed"])
        server = await self.server(serverId)
        self.assertEqual((server.operstate, server.task, server.action), ("STARTED", None, None))
        self.assertEqual(await self.quotas.pending(), [])
        after = {q.resource: q.usage for q in await self.quotas.holdings(self.project.id) if q.user_id is None}
        self.assertEqual(after, usage)
        await self.assertNoDrift()

    async def test_flavorChangedInGaneti(self) -> None:
        """
        An instance resized directly in Ganeti: unsynced flavor, fixed by a
        simulated SET_PARAMS success with Ganeti's beparams, which picks
        the matching flavor.
        """
        serverId = await self.create()
        await self.client.modifyInstance(f"snf-{serverId}", beparams={"vcpus": 4, "maxmem": 2048, "minmem": 2048})
        self.lose()
        self.assertEqual(self.kinds(await self.reconcile()), [("unsynced-flavor", serverId)])
        await self.reconcile(FixOptions(flavors=True))
        self.assertEqual((await self.server(serverId)).flavor_id, self.bigger.id)
        await self.assertNoDrift()

    async def test_tagsChangedInGaneti(self) -> None:
        """
        User tags added and removed directly in Ganeti: unsynced tags,
        fixed by simulated TAGS_SET / TAGS_DEL successes.
        """
        serverId = await self.create()
        name = f"snf-{serverId}"
        await self.client.addInstanceTags(name, ["gone", "web*1"])
        await self.deliverAll()
        self.assertEqual(sorted(t.tag for t in await self.servers.tags(serverId)), ["gone", "web_1"])
        await self.client.deleteInstanceTags(name, ["gone"])
        await self.client.addInstanceTags(name, ["new"])
        self.lose()
        self.assertEqual(self.kinds(await self.reconcile()), [("unsynced-tags", serverId)])
        await self.reconcile(FixOptions(tags=True))
        tags = await self.servers.tags(serverId)
        self.assertEqual(sorted((t.tag, t.status) for t in tags), [("new", "ACTIVE"), ("web_1", "ACTIVE")])
        await self.assertNoDrift()

    async def serverWithNic(self) -> tuple[int, Any]:
        """
        A server with one port on a public network (address 10.0.0.7), in
        sync.
        """
        public = await NetworkRepository(self.db).create("public", "IP_LESS_ROUTED", public=True)
        subnet = await SubnetRepository(self.db).create(public.id, "10.0.0.0/24", 4)

        async def activate(backend: Any, network: Any) -> list[int]:
            name = f"snf-net-{network.id}"
            created = await self.client.createNetwork(name, "10.0.0.0/24")
            return [created, await self.client.connectNetwork(name, "default", "bridged", "br0")]

        async def allocate(tx: Any, network: Any, port: Any, fixedIp: str | None) -> str | None:
            await PortRepository(tx).addIP(subnet.id, network.id, "10.0.0.7", 4, portId=port.id)
            return "10.0.0.7"

        request = parseCreateRequest(
            {
                "server": {
                    "name": "vm",
                    "imageRef": self.image.id,
                    "flavorRef": str(self.flavor.id),
                    "networks": [{"uuid": str(public.id)}],
                }
            }
        )
        options = serverops.ServerOptions(ipAllocator=allocate, activateNetwork=activate)
        result = await serverops.createServer(self.db, self.registry, self.user, request, options)
        await self.deliverAll()
        [port] = await PortRepository(self.db).listByServer(result.server.id)
        await self.assertNoDrift()
        return result.server.id, port

    async def test_nicChangedInGaneti(self) -> None:
        """
        A NIC removed directly in Ganeti: unsynced NICs, fixed by a
        simulated SET_PARAMS success carrying Ganeti's NICs (none), which
        deletes the port.
        """
        serverId, port = await self.serverWithNic()
        await self.client.modifyInstance(f"snf-{serverId}", nics=[["remove", f"snf-nic-{port.id}", {}]])
        self.lose()
        self.assertEqual(self.kinds(await self.reconcile()), [])  # the port is too young to judge
        self.later = timedelta(minutes=2)
        self.assertEqual(self.kinds(await self.reconcile()), [("unsynced-nics", serverId)])
        await self.reconcile(FixOptions(nics=True))
        self.assertEqual(await PortRepository(self.db).listByServer(serverId), [])
        await self.assertNoDrift()

    async def test_fixReportIsHonest(self) -> None:
        """
        A NIC readdressed directly in Ganeti: the report says "fixed" only
        when the next pass finds nothing, and otherwise says the fix did not
        converge.
        """
        serverId, port = await self.serverWithNic()
        await self.client.modifyInstance(f"snf-{serverId}", nics=[["modify", f"snf-nic-{port.id}", {"ip": "10.0.0.9"}]])
        self.lose()
        self.later = timedelta(minutes=2)
        [finding] = (await self.reconcile(FixOptions(nics=True))).findings
        again = self.kinds(await self.reconcile())
        if finding.fix == "fixed":
            self.assertEqual(again, [])
        else:
            self.assertTrue(finding.fix.startswith("not converged"), finding.fix)
            self.assertEqual(again, [("unsynced-nics", serverId)])

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

    async def test_randomDriftConverges(self) -> None:
        """
        Whatever mix of drift is injected behind the system's back (seeded
        random: instances stopped, started, removed, resized, retagged; a
        stop whose job file is lost), one fix-all pass makes every server
        what Ganeti has, and the next pass finds nothing; three seeds.
        """
        for seed in (5, 11, 12):
            rng = random.Random(seed)
            ids = [await self.create(f"vm{i}") for i in range(8)]
            for serverId in ids:
                name = f"snf-{serverId}"
                what = rng.choice(["stop", "remove", "resize", "tag", "lost-stop", "restart", "none"])
                if what == "stop":
                    await self.client.shutdownInstance(name)
                elif what == "remove":
                    await self.client.deleteInstance(name)
                elif what == "resize":
                    await self.client.modifyInstance(name, beparams={"vcpus": 4, "maxmem": 2048, "minmem": 2048})
                elif what == "tag":
                    await self.client.addInstanceTags(name, [f"t{rng.randint(0, 9)}"])
                elif what == "lost-stop":
                    await serverops.stopServer(self.db, self.registry, self.user, serverId)
                elif what == "restart":
                    await self.client.shutdownInstance(name)
                    self.runJobs()
                    await self.client.startupInstance(name)
                self.runJobs()
            self.lose()
            await self.reconcile(FixOptions.all())
            for serverId in ids:
                server = await self.server(serverId)
                inst = self.sim.cluster.instances.get(f"snf-{serverId}")
                if inst is None:
                    self.assertEqual((server.deleted, server.operstate), (True, "DESTROYED"))
                else:
                    self.assertEqual(server.operstate, "STARTED" if inst.operUp else "STOPPED")
                    self.assertIsNone(server.task)
                    flavor = self.bigger if inst.beparams["vcpus"] == 4 else self.flavor
                    self.assertEqual(server.flavor_id, flavor.id)
            self.assertEqual(await self.quotas.pending(), [])
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
        metrics = MetricsRegistry()
        service = ReconcilerService(
            self.clock,
            self.db,
            self.registry,
            period=60.0,
            initialDelay=1.0,
            fix=FixOptions.all(),
            thresholds=NO_GRACE,
            now=self.now,
            metrics=metrics,
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
        self.assertIn('synnefo_reconciler_findings_total{kind="unsynced-operstate",fix="fixed"} 1', metrics.render())

    # -- networks ---------------------------------------------------------------------------

    async def reconcileNets(self, fix: bool = False) -> list[tuple[str, int, str]]:
        result = await reconcileNetworks(self.db, self.backend, self.client, self.now, fix=fix)
        self.runJobs()
        return [(f.drift.kind, f.drift.networkId, f.fix) for f in result.findings]

    async def test_networkUnsynced(self) -> None:
        """
        A network active in Ganeti whose connect message was lost: its
        backend row is unsynced, fixed to ACTIVE by a simulated CONNECT
        success, and the network becomes ACTIVE.
        """
        network = await NetworkRepository(self.db).create("n", "CUSTOM", link="br3")
        await BackendNetworkRepository(self.db).getOrCreate(network.id, self.backend.id)
        name = f"snf-net-{network.id}"
        await self.client.createNetwork(name, "10.3.0.0/24")
        self.runJobs()
        await self.client.connectNetwork(name, "default", "bridged", "br3")
        self.lose()
        self.assertEqual(await self.reconcileNets(), [("unsynced", network.id, "")])
        self.assertEqual(await self.reconcileNets(fix=True), [("unsynced", network.id, "fixed")])
        row = await BackendNetworkRepository(self.db).get(network.id, self.backend.id)
        assert row is not None
        self.assertEqual(row.operstate, "ACTIVE")
        current = await NetworkRepository(self.db).get(network.id)
        assert current is not None
        self.assertEqual(current.state, "ACTIVE")
        self.assertEqual(await self.reconcileNets(), [])

    async def test_networkStale(self) -> None:
        """
        A network being destroyed that Ganeti no longer has: stale, fixed by
        a simulated REMOVE success, after which the network is deleted.
        """
        network = await NetworkRepository(self.db).create("n", "CUSTOM", link="br4")
        await BackendNetworkRepository(self.db).create(network.id, self.backend.id, operstate="ACTIVE")
        await NetworkRepository(self.db).update(network.id, action="DESTROY")
        self.assertEqual(await self.reconcileNets(), [("stale", network.id, "")])
        await self.reconcileNets(fix=True)
        current = await NetworkRepository(self.db).get(network.id)
        assert current is not None
        self.assertEqual((current.state, current.deleted), ("DELETED", True))
        self.assertEqual(await self.reconcileNets(), [])

    async def test_networkUnreserved(self) -> None:
        """
        An address reserved externally in Ganeti but free in the database
        pool: found, and reserved in the pool by a simulated SET_PARAMS
        success (add_reserved_ips) through the state machine.
        """
        network = await NetworkRepository(self.db).create("n", "CUSTOM", link="br5")
        subnet = await SubnetRepository(self.db).create(network.id, "10.5.0.0/24", 4, gateway="10.5.0.1")
        cidr = ipaddress.IPv4Network("10.5.0.0/24")
        gateway = ipaddress.IPv4Address("10.5.0.1")
        for layout in pools.ipPoolLayouts(cidr, [pools.defaultAllocationPool(cidr)], gateway):
            await IPPoolRepository(self.db).create(
                subnet.id, layout.base, layout.size, layout.offset, *layout.bitmap().dump()
            )
        await BackendNetworkRepository(self.db).create(network.id, self.backend.id, operstate="ACTIVE")
        name = f"snf-net-{network.id}"
        await self.client.createNetwork(name, "10.5.0.0/24", gateway="10.5.0.1")
        self.runJobs()
        await self.client.connectNetwork(name, "default", "bridged", "br5")
        self.lose()
        self.assertEqual(await self.reconcileNets(), [])
        self.sim.cluster.networks[name].external.add("10.5.0.50")
        self.assertEqual(await self.reconcileNets(), [("unreserved", network.id, "")])
        self.assertEqual(await self.reconcileNets(fix=True), [("unreserved", network.id, "fixed")])
        [pool] = await IPPoolRepository(self.db).listByNetwork(network.id)
        self.assertTrue(
            pools.Bitmap.load(pool.size, pool.available, pool.reserved).isReserved(pools.indexOf(pool, "10.5.0.50"))
        )
        self.assertEqual(await self.reconcileNets(), [])


class SQLiteDriftTests(DriftMixin, TestCase):
    """
    The drift proofs on SQLite.
    """
