"""
Tests for L{synnefo_twisted.logic.dispatchapply}: messages applied to the
embedded database (L{DispatchApplyMixin} runs on PostgreSQL too, in
L{tests.integration.logic.test_dispatch_postgres}).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import reactor as _globalReactor  # noqa: N812  (real threads need the real reactor)
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from synnefo_twisted.db import openDatabase
from synnefo_twisted.db.dispatch import DispatchRepository
from synnefo_twisted.db.pools import BackendNetworkRepository
from synnefo_twisted.db.repositories import NetworkRepository, PortRepository, ServerRepository
from synnefo_twisted.logic.dispatchapply import ApplyOutcome, DispatchError, MalformedMessage, applyMessage
from tests.logic.dispatchfixture import CLUSTER, DispatchFixture, at, makeFixture, opMessage

if TYPE_CHECKING:
    _Base = TestCase
else:
    _Base = object


class DispatchApplyMixin(_Base):
    """
    The shell over C{makeDatabase()} (unstarted, empty).
    """

    timeout = 60
    reactor: Any = _globalReactor

    def makeDatabase(self) -> Any:
        raise NotImplementedError()

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        return Deferred.fromCoroutine(self._setUp())

    async def _setUp(self) -> None:
        self.db = self.makeDatabase()
        await self.db.startService()
        self.addCleanup(self.db.stopService)
        self.fx: DispatchFixture = await makeFixture(self.db)
        self.servers = ServerRepository(self.db)

    async def apply(self, body: Any, kind: str = "op") -> ApplyOutcome:
        return await applyMessage(self.db, kind, body)

    async def get(self, serverId: int) -> Any:
        server = await self.servers.get(serverId)
        assert server is not None
        return server

    async def created(self, jobId: int = 1) -> Any:
        """
        A server whose create job succeeded (with its NIC and disk).
        """
        built = await self.fx.server(jobId=jobId)
        await self.apply(self.createSuccess(built, jobId, 10))
        return built

    def createSuccess(self, built: Any, jobId: int, seconds: float) -> dict[str, Any]:
        return opMessage(
            built.id,
            "OP_INSTANCE_CREATE",
            "success",
            jobId,
            seconds,
            job_fields={"beparams": {"vcpus": 2, "memory": 1024}},
            instance_nics=[
                {
                    "name": f"snf-nic-{built.portId}",
                    "network": f"snf-net-{self.fx.networkId}",
                    "ip": built.address,
                    "mac": "AA:00:01:00:00:01",
                    "firewall": "protected",
                }
            ],
            instance_disks=[{"name": f"snf-vol-{built.volumeId}", "size": 10240}],
            instance_hvparams={"boot_order": "disk", "cdrom_image_path": ""},
        )

    # -- op status ---------------------------------------------------------------------------

    async def test_runningSetsJobFields(self) -> None:
        """
        A non-final status records the job (id, status, opcode, log) and
        changes neither the state nor backendtime; repeating it changes nothing.
        """
        built = await self.fx.server(jobId=7)
        body = opMessage(built.id, "OP_INSTANCE_CREATE", "running", 7, 5, logmsg="starting")
        outcome = await self.apply(body)
        self.assertEqual(outcome, ApplyOutcome(True, "applied", "op", built.id))
        server = await self.get(built.id)
        self.assertEqual(
            (server.backendjobid, server.backendjobstatus, server.backendopcode, server.backendlogmsg),
            (7, "running", "OP_INSTANCE_CREATE", "starting"),
        )
        self.assertEqual((server.operstate, server.backendtime, server.task), ("BUILD", None, "BUILD"))
        again = await self.apply(body)
        self.assertEqual((again.applied, again.reason), (False, "stale"))

    async def test_createSuccess(self) -> None:
        """
        A successful create: STARTED, NICs and disks from Ganeti, tags
        ACTIVE, the create commission accepted, the task cleared.
        """
        built = await self.fx.server(jobId=1)
        self.assertEqual(await self.fx.holding("cyclades.vm"), (0, 1))
        outcome = await self.apply(self.createSuccess(built, 1, 10))
        self.assertTrue(outcome.applied)
        server = await self.get(built.id)
        self.assertEqual(
            (server.operstate, server.task, server.task_job_id, server.action, server.backendjobstatus),
            ("STARTED", None, None, None, "success"),
        )
        self.assertEqual(server.backendtime, server.statetime)
        self.assertEqual(await self.fx.holding("cyclades.vm"), (1, 0))
        [port] = await PortRepository(self.db).listByServer(built.id)
        self.assertEqual(
            (port.state, port.mac, port.idx, port.firewall_profile), ("ACTIVE", "aa:00:01:00:00:01", 0, "PROTECTED")
        )
        rows = await self.db.runQuery("SELECT status, idx FROM volumes WHERE id = %s", (built.volumeId,))
        self.assertEqual([tuple(r) for r in rows], [("IN_USE", 0)])
        self.assertEqual([(t.tag, t.status) for t in await self.servers.tags(built.id)], [("web", "ACTIVE")])
        again = await self.apply(self.createSuccess(built, 1, 10))
        self.assertEqual(again.reason, "stale")
        self.assertEqual(await self.fx.holding("cyclades.vm"), (1, 0))

    async def test_createError(self) -> None:
        """
        A failed create: ERROR, its ports and volume ERROR, its tags
        deleted, the create commission rejected.
        """
        built = await self.fx.server(jobId=3)
        await self.apply(opMessage(built.id, "OP_INSTANCE_CREATE", "error", 3, 10, logmsg="no space"))
        server = await self.get(built.id)
        self.assertEqual((server.operstate, server.task, server.backendlogmsg), ("ERROR", None, "no space"))
        self.assertIsNotNone(server.backendtime)
        [port] = await PortRepository(self.db).listByServer(built.id)
        self.assertEqual(port.state, "ERROR")
        rows = await self.db.runQuery("SELECT status FROM volumes WHERE id = %s", (built.volumeId,))
        self.assertEqual([tuple(r) for r in rows], [("ERROR",)])
        self.assertEqual(await self.servers.tags(built.id), [])
        self.assertEqual(await self.fx.holding("cyclades.vm"), (0, 0))
        rows = await self.db.runQuery("SELECT state FROM commissions WHERE id = %s", (built.commissionId,))
        self.assertEqual([tuple(r) for r in rows], [("rejected",)])

    async def test_removeSuccess(self) -> None:
        """
        A successful remove deletes the server (DESTROYED), releases its
        address to the pool, deletes its ports, marks its volumes deleted;
        later messages about it are ignored.
        """
        built = await self.created()
        await self.servers.update(built.id, task="DESTROY", action="DESTROY", task_job_id=2)
        await self.apply(opMessage(built.id, "OP_INSTANCE_REMOVE", "success", 2, 20))
        server = await self.get(built.id)
        self.assertEqual((server.deleted, server.operstate, server.task), (True, "DESTROYED", None))
        self.assertEqual(await PortRepository(self.db).listByServer(built.id), [])
        rows = await self.db.runQuery("SELECT deleted FROM ips WHERE address = %s", (built.address,))
        self.assertEqual([bool(r[0]) for r in rows], [True])
        rows = await self.db.runQuery("SELECT status, deleted FROM volumes WHERE id = %s", (built.volumeId,))
        self.assertEqual([(r[0], bool(r[1])) for r in rows], [("DELETED", True)])
        # the address is free again: the next port gets it
        again = await self.fx.server(jobId=9)
        self.assertEqual(again.address, built.address)
        late = await self.apply(opMessage(built.id, "OP_INSTANCE_STARTUP", "success", 5, 30))
        self.assertEqual((late.applied, late.reason), (False, "deleted"))

    async def test_removeErrorInstanceGone(self) -> None:
        """
        A remove that fails because Ganeti no longer knows the instance
        counts as a success.
        """
        built = await self.created()
        await self.apply(opMessage(built.id, "OP_INSTANCE_REMOVE", "error", 2, 20, logmsg="Instance 'snf-1' not known"))
        server = await self.get(built.id)
        self.assertEqual((server.deleted, server.operstate), (True, "DESTROYED"))

    async def test_staleMessagesChangeNothing(self) -> None:
        """
        An older success arriving after a newer one does not undo it; an
        older "running" does not undo a newer error's job fields.
        """
        built = await self.created()
        await self.apply(opMessage(built.id, "OP_INSTANCE_SHUTDOWN", "success", 3, 30))
        late = await self.apply(opMessage(built.id, "OP_INSTANCE_STARTUP", "success", 2, 20))
        self.assertEqual(late.reason, "stale")
        server = await self.get(built.id)
        self.assertEqual((server.operstate, server.backendjobid), ("STOPPED", 3))
        await self.apply(opMessage(built.id, "OP_INSTANCE_STARTUP", "error", 4, 42, logmsg="boom"))
        late = await self.apply(opMessage(built.id, "OP_INSTANCE_STARTUP", "running", 4, 41))
        self.assertEqual(late.reason, "stale")
        server = await self.get(built.id)
        self.assertEqual(
            (server.operstate, server.backendjobstatus, server.backendlogmsg), ("STOPPED", "error", "boom")
        )

    async def test_actionCommission(self) -> None:
        """
        The final status of the task's job resolves the task's commission:
        accepted on success, rejected on error.
        """
        built = await self.created()
        usage, _ = await self.fx.holding("cyclades.cpu")
        commission = await self._issue({"cyclades.cpu": -2})
        await self.servers.update(built.id, task="STOP", action="STOP", task_job_id=2, serial_id=commission)
        await self.apply(opMessage(built.id, "OP_INSTANCE_SHUTDOWN", "success", 2, 20))
        self.assertEqual(await self.fx.holding("cyclades.cpu"), (usage - 2, 0))
        commission = await self._issue({"cyclades.cpu": 2})
        await self.servers.update(built.id, task="START", action="START", task_job_id=3, serial_id=commission)
        await self.apply(opMessage(built.id, "OP_INSTANCE_STARTUP", "error", 3, 30))
        self.assertEqual(await self.fx.holding("cyclades.cpu"), (usage - 2, 0))
        server = await self.get(built.id)
        self.assertEqual((server.operstate, server.task), ("STOPPED", None))

    async def test_removedByAnEarlierDestroy(self) -> None:
        """
        A destroy retried while the first one's job runs leaves the task
        pointing at the second REMOVE job, which fails once the first has
        removed the instance: the first job's success deletes the server
        and accepts the destroy commission (the resources are released
        once), and the second job's failure changes nothing.
        """
        built = await self.created()
        usage, _ = await self.fx.holding("cyclades.cpu")
        commission = await self._issue({"cyclades.cpu": -2})
        await self.servers.update(built.id, task="DESTROY", action="DESTROY", task_job_id=3, serial_id=commission)
        await self.apply(opMessage(built.id, "OP_INSTANCE_REMOVE", "success", 2, 20))
        server = await self.get(built.id)
        self.assertEqual(
            (server.deleted, server.operstate, server.task, server.task_job_id), (True, "DESTROYED", None, None)
        )
        self.assertEqual(await self.fx.holding("cyclades.cpu"), (usage - 2, 0))
        late = await self.apply(
            opMessage(built.id, "OP_INSTANCE_REMOVE", "error", 3, 21, logmsg=f"Instance 'snf-{built.id}' not known")
        )
        self.assertEqual((late.applied, late.reason), (False, "deleted"))
        self.assertEqual(await self.fx.holding("cyclades.cpu"), (usage - 2, 0))
        rows = await self.db.runQuery("SELECT state FROM commissions WHERE id = %s", (commission,))
        self.assertEqual([tuple(r) for r in rows], [("accepted",)])

    async def test_repeatedDestroyAfterAFailedOne(self) -> None:
        """
        The first destroy's job fails after a repeated destroy retook the
        task: the failure leaves the task pending, and the repeated job's
        success deletes the server and accepts the one commission.
        """
        built = await self.created()
        usage, _ = await self.fx.holding("cyclades.cpu")
        commission = await self._issue({"cyclades.cpu": -2})
        await self.servers.update(built.id, task="DESTROY", action="DESTROY", task_job_id=3, serial_id=commission)
        await self.apply(opMessage(built.id, "OP_INSTANCE_REMOVE", "error", 2, 20, logmsg="node offline"))
        server = await self.get(built.id)
        self.assertEqual((server.deleted, server.task, server.task_job_id), (False, "DESTROY", 3))
        self.assertEqual((await self.fx.holding("cyclades.cpu"))[0], usage)
        await self.apply(opMessage(built.id, "OP_INSTANCE_REMOVE", "success", 3, 21))
        server = await self.get(built.id)
        self.assertEqual((server.deleted, server.task), (True, None))
        self.assertEqual(await self.fx.holding("cyclades.cpu"), (usage - 2, 0))
        rows = await self.db.runQuery("SELECT state FROM commissions WHERE id = %s", (commission,))
        self.assertEqual([tuple(r) for r in rows], [("accepted",)])

    async def _issue(self, provisions: dict[str, int]) -> int:
        from synnefo_twisted.db.repositories import QuotaRepository

        commission = await QuotaRepository(self.db).issue(self.fx.projectId, self.fx.userId, provisions)
        return commission.id

    async def test_jobFinishesBeforeItsIdIsRecorded(self) -> None:
        """
        The dispatcher may see a job's end before the API records the job
        id: the task's opcode identifies it, the commission is resolved, and
        recording the id afterwards does not bring the task back.
        """
        built = await self.created()
        commission = await self._issue({"cyclades.cpu": -2})
        await self.servers.update(built.id, task="STOP", action="STOP", task_job_id=None, serial_id=commission)
        await self.apply(opMessage(built.id, "OP_INSTANCE_SHUTDOWN", "success", 8, 20))
        recorded = await DispatchRepository(self.db).recordSubmittedJob(built.id, 8)
        assert recorded is not None
        self.assertEqual((recorded.task, recorded.task_job_id, recorded.operstate), (None, None, "STOPPED"))
        rows = await self.db.runQuery("SELECT state FROM commissions WHERE id = %s", (commission,))
        self.assertEqual([tuple(r) for r in rows], [("accepted",)])

    async def test_createFinishesBeforeItsIdIsRecorded(self) -> None:
        """
        The same race for a create: the job id recorded afterwards does not
        overwrite the job fields the dispatcher wrote.
        """
        built = await self.fx.server(jobId=None)
        await self.apply(self.createSuccess(built, 4, 10))
        recorded = await DispatchRepository(self.db).recordSubmittedJob(built.id, 4, backendJob=True)
        assert recorded is not None
        self.assertEqual(
            (recorded.operstate, recorded.task, recorded.task_job_id, recorded.backendjobid, recorded.backendjobstatus),
            ("STARTED", None, None, 4, "success"),
        )

    async def test_flavorFromBeparams(self) -> None:
        """
        A successful SET_PARAMS with beparams moves the server to the
        flavor with that cpu and ram (and its disk); none matching is a
        processing error.
        """
        built = await self.created()
        fields = {"beparams": {"vcpus": 4, "maxmem": 2048}}
        await self.apply(opMessage(built.id, "OP_INSTANCE_SET_PARAMS", "success", 2, 20, job_fields=fields))
        self.assertEqual((await self.get(built.id)).flavor_id, self.fx.biggerId)
        fields = {"beparams": {"vcpus": 3, "maxmem": 3000}}
        d = self.apply(opMessage(built.id, "OP_INSTANCE_SET_PARAMS", "success", 3, 30, job_fields=fields))
        await self.assertFailure(Deferred.fromCoroutine(d), DispatchError)  # type: ignore[arg-type]
        self.assertEqual((await self.get(built.id)).backendjobid, 2)

    async def test_rescueFromHvparams(self) -> None:
        """
        hvparams booting from a CD-ROM image put the server in rescue mode.
        """
        built = await self.created()
        hv = {"boot_order": "cdrom", "cdrom_image_path": "/srv/rescue.iso"}
        await self.apply(opMessage(built.id, "OP_INSTANCE_SET_PARAMS", "success", 2, 20, instance_hvparams=hv))
        server = await self.get(built.id)
        self.assertEqual((server.rescue, server.rescue_image), (True, "/srv/rescue.iso"))

    async def test_nicRemovedInGaneti(self) -> None:
        """
        An ACTIVE port Ganeti no longer reports is deleted and its address released.
        """
        built = await self.created()
        await self.apply(opMessage(built.id, "OP_INSTANCE_SET_PARAMS", "success", 2, 20, instance_nics=[]))
        self.assertEqual(await PortRepository(self.db).listByServer(built.id), [])
        rows = await self.db.runQuery("SELECT deleted FROM ips WHERE address = %s", (built.address,))
        self.assertEqual([bool(r[0]) for r in rows], [True])

    async def test_tags(self) -> None:
        """
        OP_TAGS_SET and OP_TAGS_DEL activate and delete the (decoded) user tags; dry runs change nothing.
        """
        built = await self.created()
        body = opMessage(built.id, "OP_TAGS_SET", "success", 2, 20, tags=["db*1"], job_fields={"dry_run": False})
        await self.apply(body)
        self.assertEqual(
            [(t.tag, t.status) for t in await self.servers.tags(built.id)], [("db_1", "ACTIVE"), ("web", "ACTIVE")]
        )
        body = opMessage(built.id, "OP_TAGS_DEL", "success", 3, 30, tags=["web"], job_fields={"dry_run": True})
        await self.apply(body)
        self.assertEqual(len(await self.servers.tags(built.id)), 2)
        body = opMessage(built.id, "OP_TAGS_DEL", "success", 4, 40, tags=["web"], job_fields={"dry_run": False})
        await self.apply(body)
        self.assertEqual([t.tag for t in await self.servers.tags(built.id)], ["db_1"])

    async def test_unknownAndForeign(self) -> None:
        """
        Messages about a server not in the database, or an instance with
        another prefix, are not applied (and not errors).
        """
        outcome = await self.apply(opMessage(999, "OP_INSTANCE_STARTUP", "success", 1, 1))
        self.assertEqual((outcome.applied, outcome.reason), (False, "unknown-instance"))
        body = opMessage(1, "OP_INSTANCE_STARTUP", "success", 1, 1)
        body["instance"] = "other-1"
        outcome = await self.apply(body)
        self.assertEqual((outcome.applied, outcome.reason), (False, "not-ours"))

    async def test_malformed(self) -> None:
        """
        A body that is not an object, lacks a key, has an unknown status
        or a bad event time can never be applied.
        """
        good = opMessage(1, "OP_INSTANCE_STARTUP", "success", 1, 1)
        bad: list[Any] = [
            "not an object",
            {k: v for k, v in good.items() if k != "jobId"},
            {**good, "status": "exploded"},
            {**good, "event_time": "yesterday"},
            {**good, "type": "ganeti-network-status"},
        ]
        for body in bad:
            d = applyMessage(self.db, "op", body)
            await self.assertFailure(d, MalformedMessage)

    # -- progress ------------------------------------------------------------------------------

    async def test_progress(self) -> None:
        """
        Copy progress only moves forward (clamped to 100); info, warning,
        error and helper messages become diagnostics, each recorded once.
        """
        built = await self.fx.server(jobId=1)
        base = {"instance": f"snf-{built.id}"}
        await self.apply({**base, "type": "image-copy-progress", "progress": 40, "event_time": at(1)}, "progress")
        late = await self.apply(
            {**base, "type": "image-copy-progress", "progress": 20, "event_time": at(0)}, "progress"
        )
        self.assertFalse(late.applied)
        self.assertEqual((await self.get(built.id)).buildpercentage, 40)
        await self.apply({**base, "type": "image-copy-progress", "progress": 140, "event_time": at(2)}, "progress")
        self.assertEqual((await self.get(built.id)).buildpercentage, 100)
        info = {**base, "type": "image-info", "messages": ["a", "b"], "event_time": at(3)}
        self.assertTrue((await self.apply(info, "progress")).applied)
        self.assertFalse((await self.apply(info, "progress")).applied)
        await self.apply(
            {**base, "type": "image-helper", "subtype": "task-start", "task": "FixPartitionTable", "event_time": at(4)},
            "progress",
        )
        await self.apply(
            {**base, "type": "image-error", "messages": "", "stderr": "x", "event_time": at(5)}, "progress"
        )
        diagnostics = await self.servers.diagnostics(built.id)
        self.assertEqual(
            [(d.source, d.level, d.message, d.details) for d in reversed(diagnostics)],
            [
                ("image-info", "INFO", "a b", None),
                ("image-helper-task-start", "DEBUG", "FixPartitionTable", None),
                ("image-error", "ERROR", "Image error", "x"),
            ],
        )
        d = applyMessage(self.db, "progress", {**base, "type": "image-bogus", "event_time": at(6)})
        await self.assertFailure(d, MalformedMessage)

    # -- networks ------------------------------------------------------------------------------

    async def test_networkLifecycle(self) -> None:
        """
        ADD success: the backend network is PENDING; CONNECT success:
        ACTIVE and the network ACTIVE; REMOVE success on the only backend:
        the network is deleted. Stale messages change nothing.
        """
        name = f"snf-net-{self.fx.networkId}"

        def net(op: str, status: str, job: int, seconds: float) -> dict[str, Any]:
            return {"type": "ganeti-network-status", "network": name, "operation": op, "status": status,
                    "jobId": job, "event_time": at(seconds), "cluster": CLUSTER, "logmsg": None,
                    "job_fields": {}}  # fmt: skip

        foreign = await self.apply({**net("OP_NETWORK_ADD", "success", 1, 1), "cluster": "nowhere"}, "network")
        self.assertEqual(foreign.reason, "unknown-backend")
        await self.apply(net("OP_NETWORK_ADD", "success", 1, 1), "network")
        [bn] = await BackendNetworkRepository(self.db).listByNetwork(self.fx.networkId)
        self.assertEqual((bn.operstate, bn.backendjobid), ("PENDING", 1))
        await self.apply(net("OP_NETWORK_CONNECT", "success", 2, 2), "network")
        network = await NetworkRepository(self.db).get(self.fx.networkId)
        assert network is not None
        self.assertEqual(network.state, "ACTIVE")
        stale = await self.apply(net("OP_NETWORK_ADD", "success", 1, 1), "network")
        self.assertEqual(stale.reason, "stale")
        await self.apply(net("OP_NETWORK_DISCONNECT", "success", 3, 3), "network")
        await self.apply(net("OP_NETWORK_REMOVE", "success", 4, 4), "network")
        network = await NetworkRepository(self.db).get(self.fx.networkId)
        assert network is not None
        self.assertEqual((network.state, network.deleted), ("DELETED", True))
        unknown = await self.apply({**net("OP_NETWORK_ADD", "success", 5, 5), "cluster": "nowhere"}, "network")
        self.assertEqual(unknown.reason, "deleted")

    async def test_cluster(self) -> None:
        """
        A cluster SET_PARAMS success asks the caller to refresh that backend.
        """
        body = {"type": "ganeti-cluster-status", "operation": "OP_CLUSTER_SET_PARAMS", "status": "success",
                "cluster": CLUSTER, "event_time": at(1), "jobId": 1}  # fmt: skip
        outcome = await self.apply(body, "cluster")
        self.assertEqual(outcome.cluster, CLUSTER)


class SQLiteDispatchApplyTests(DispatchApplyMixin, TestCase):
    """
    The shell on SQLite.
    """

    def makeDatabase(self) -> Any:
        return openDatabase("sqlite:///:memory:", self.reactor)
