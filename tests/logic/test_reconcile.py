"""
Tests for L{synnefo_twisted.logic.reconcile}: detection of drift between
database models and Ganeti's listings, and the simulated messages that fix
it (pure: no database, no RAPI).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from synnefo_twisted.db.models import BackendNetwork, Network, Server
from synnefo_twisted.logic import dispatch
from synnefo_twisted.logic import reconcile as r
from synnefo_twisted.logic.reconcile import DBPort, DBServer, Thresholds

NOW = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)
OLD = NOW - timedelta(hours=1)


def server(serverId: int, **fields: Any) -> Server:
    values: dict[str, Any] = dict(
        id=serverId,
        name=f"vm{serverId}",
        userid="u",
        project=None,
        shared_to_project=False,
        backend_id=1,
        flavor_id=1,
        image_id="img",
        operstate="STARTED",
        action="CREATE",
        backendjobid=10,
        backendopcode="OP_INSTANCE_CREATE",
        backendjobstatus="success",
        backendlogmsg=None,
        backendtime=OLD,
        task=None,
        task_job_id=None,
        buildpercentage=100,
        suspended=False,
        deleted=False,
        rescue=False,
        rescue_image=None,
        serial_id=None,
        key_names=[],
        config_url=None,
        created=OLD,
        updated=OLD,
    )
    values.update(fields)
    return Server(**values)


def dbServer(
    serverId: int, ports: tuple[DBPort, ...] = (), tags: dict[str, str] | None = None, **fields: Any
) -> DBServer:
    return DBServer(server(serverId, **fields), cpu=2, ram=1024, disk=10, volumeTypeId=1, ports=ports, tags=tags or {})


def port(portId: int, mac: str = "aa:00:00:00:00:01", ip: str | None = "10.0.0.2", **fields: Any) -> DBPort:
    values: dict[str, Any] = dict(
        id=portId, networkId=7, mac=mac, ipv4=ip, firewallProfile=None, state="ACTIVE", created=OLD
    )
    values.update(fields)
    return DBPort(**values)


def record(serverId: int, **fields: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "name": f"snf-{serverId}",
        "oper_state": True,
        "beparams": {"vcpus": 2, "maxmem": 1024, "memory": 1024},
        "disk.sizes": [10 << 10],
        "disk.names": [f"snf-vol-{serverId}"],
        "disk.uuids": ["d-uuid"],
        "nic.names": [],
        "nic.ips": [],
        "nic.macs": [],
        "nic.modes": [],
        "nic.links": [],
        "nic.uuids": [],
        "nic.networks.names": [],
        "tags": [],
        "mtime": OLD.timestamp(),
    }
    rec.update(fields)
    return rec


def withNic(
    rec: dict[str, Any], portId: int, mac: str = "aa:00:00:00:00:01", ip: str | None = "10.0.0.2"
) -> dict[str, Any]:
    rec["nic.names"] = [f"snf-nic-{portId}"]
    rec["nic.ips"] = [ip]
    rec["nic.macs"] = [mac]
    rec["nic.modes"] = ["bridged"]
    rec["nic.links"] = ["br0"]
    rec["nic.uuids"] = ["n-uuid"]
    rec["nic.networks.names"] = ["snf-net-7"]
    return rec


def detect(
    servers: list[DBServer], records: list[dict[str, Any]], jobs: list[dict[str, Any]] = (), **kw: Any
) -> list[r.Drift]:  # type: ignore[assignment]
    return r.detectServers(1, servers, r.parseInstances(records), r.parseJobs(jobs), NOW, **kw)


def kinds(drifts: list[r.Drift]) -> list[tuple[str, int]]:
    return [(d.kind, d.serverId) for d in drifts]


class ParseTests(SynchronousTestCase):
    def test_instances(self) -> None:
        """
        Only C{snf-<id>} instances are kept, by id, with state, flavor,
        NICs (port and network ids from their names), firewall and user tags.
        """
        rec = withNic(record(5, oper_state=False), 3)
        rec["tags"] = ["a*b", "synnefo:network:snf-nic-3:protected"]
        parsed = r.parseInstances([rec, record(6, name="other-6"), record(7, name="snf-x")])
        self.assertEqual(list(parsed), [5])
        g = parsed[5]
        self.assertEqual((g.state, g.vcpus, g.ram, g.disk), ("STOPPED", 2, 1024, 10))
        self.assertEqual((g.nics[0].portId, g.nics[0].networkId, g.nics[0].firewall), (3, 7, "protected"))
        self.assertEqual(g.userTags, frozenset({"a*b"}))

    def test_jobs(self) -> None:
        """
        Jobs keep their status and the instances their ops name.
        """
        jobs = r.parseJobs([{"id": 4, "status": "running", "ops": [{"OP_ID": "X", "instance_name": "snf-1"}]}])
        self.assertEqual(jobs[4].instances, frozenset({"snf-1"}))
        self.assertFalse(jobs[4].finalized)


class DetectTests(SynchronousTestCase):
    def test_inSync(self) -> None:
        """
        A server that agrees with its instance yields nothing.
        """
        s = dbServer(1, ports=(port(3),), tags={"a_b": "ACTIVE"})
        rec = withNic(record(1), 3)
        rec["tags"] = ["a*b"]
        self.assertEqual(detect([s], [rec]), [])

    def test_stale(self) -> None:
        """
        A live server without an instance is stale; one in ERROR is kept
        for the user unless being destroyed.
        """
        drifts = detect(
            [dbServer(1), dbServer(2, operstate="ERROR"), dbServer(3, operstate="ERROR", action="DESTROY")], []
        )
        self.assertEqual(kinds(drifts), [("stale", 1), ("stale", 3)])

    def test_orphan(self) -> None:
        """
        An instance with no live server is an orphan (deleted rows named).
        """
        drifts = detect([], [record(4), record(5)], deletedIds=[5])
        self.assertEqual(kinds(drifts), [("orphan", 4), ("orphan", 5)])
        self.assertEqual(drifts[1].db, "deleted")

    def test_buildError(self) -> None:
        """
        BUILD without an instance: a failed or vanished job is a build
        error; a running one is left alone.
        """
        servers = [
            dbServer(1, operstate="BUILD", backendjobid=11),
            dbServer(2, operstate="BUILD", backendjobid=12),
            dbServer(3, operstate="BUILD", backendjobid=13),
        ]
        jobs = [{"id": 11, "status": "error", "ops": []}, {"id": 13, "status": "running", "ops": []}]
        self.assertEqual(kinds(detect(servers, [], jobs)), [("build-error", 1), ("build-error", 2)])

    def test_operstate(self) -> None:
        """
        DB STARTED while Ganeti's instance is down is unsynced.
        """
        self.assertEqual(kinds(detect([dbServer(1)], [record(1, oper_state=False)])), [("unsynced-operstate", 1)])

    def test_flavor(self) -> None:
        """
        Different vcpus or memory is an unsynced flavor.
        """
        drifts = detect([dbServer(1)], [record(1, beparams={"vcpus": 4, "maxmem": 2048})])
        self.assertEqual(kinds(drifts), [("unsynced-flavor", 1)])

    def test_nics(self) -> None:
        """
        A different MAC, a missing NIC or another firewall is unsynced
        NICs; a port still in BUILD is not compared.
        """
        self.assertEqual(
            kinds(detect([dbServer(1, ports=(port(3),))], [withNic(record(1), 3, mac="aa:00:00:00:00:09")])),
            [("unsynced-nics", 1)],
        )
        self.assertEqual(kinds(detect([dbServer(1, ports=(port(3),))], [record(1)])), [("unsynced-nics", 1)])
        self.assertEqual(detect([dbServer(1, ports=(port(3, state="BUILD"),))], [withNic(record(1), 3)]), [])
        rec = withNic(record(1), 3)
        rec["tags"] = ["synnefo:network:snf-nic-3:protected"]
        self.assertEqual(kinds(detect([dbServer(1, ports=(port(3),))], [rec])), [("unsynced-nics", 1)])

    def test_tags(self) -> None:
        """
        Ganeti user tags differ from the ACTIVE DB tags; pending ones
        postpone the check.
        """
        self.assertEqual(kinds(detect([dbServer(1, tags={"x": "ACTIVE"})], [record(1)])), [("unsynced-tags", 1)])
        self.assertEqual(detect([dbServer(1, tags={"x": "PENDADD"})], [record(1)]), [])

    def test_pendingTask(self) -> None:
        """
        A task whose job is finished or gone is pending; a running one is not.
        """
        servers = [dbServer(1, task="START", task_job_id=20), dbServer(2, task="STOP", task_job_id=21)]
        jobs = [{"id": 20, "status": "success", "ops": []}]
        drifts = detect(servers, [record(1), record(2)], jobs)
        self.assertEqual(kinds(drifts), [("pending-task", 1), ("pending-task", 2)])
        self.assertEqual(drifts[0].jobId, 20)

    def test_joblessTask(self) -> None:
        """
        A task that never got its job (its submission failed with the
        database, say) is pending; a build's task is not judged this way.
        """
        servers = [dbServer(1, task="STOP", task_job_id=None), dbServer(2, task="BUILD", operstate="BUILD")]
        drifts = [d for d in detect(servers, [record(1), record(2)]) if d.kind == "pending-task"]
        self.assertEqual(kinds(drifts), [("pending-task", 1)])
        self.assertEqual((drifts[0].jobId, drifts[0].db), (None, "task STOP without a job"))
        recent = NOW - timedelta(seconds=5)
        self.assertEqual(detect([dbServer(1, task="STOP", task_job_id=None, updated=recent)], [record(1)]), [])

    def test_grace(self) -> None:
        """
        Recently changed servers, recently changed instances and instances
        with a running job are not judged.
        """
        recent = NOW - timedelta(seconds=5)
        self.assertEqual(detect([dbServer(1, updated=recent)], []), [])
        self.assertEqual(detect([], [record(2, mtime=recent.timestamp())]), [])
        jobs = [{"id": 30, "status": "running", "ops": [{"instance_name": "snf-3"}]}]
        self.assertEqual(detect([dbServer(3)], [record(3, oper_state=False)], jobs), [])
        self.assertEqual(
            kinds(detect([dbServer(1, updated=recent)], [], thresholds=Thresholds(grace=timedelta(0)))),
            [("stale", 1)],
        )


class FixMessageTests(SynchronousTestCase):
    def fix(self, s: DBServer, rec: dict[str, Any] | None) -> list[dict[str, Any]]:
        (drift,) = detect([s], [rec] if rec else [])
        return r.fixMessages(drift, NOW, "cluster1")

    def test_stale(self) -> None:
        """
        Stale: a simulated REMOVE success, after the server's backendtime.
        """
        (msg,) = self.fix(dbServer(1, backendtime=NOW + timedelta(seconds=3)), None)
        self.assertEqual((msg["operation"], msg["status"], msg["instance"]), ("OP_INSTANCE_REMOVE", "success", "snf-1"))
        self.assertEqual((msg["jobId"], msg["logmsg"], msg["cluster"]), (0, r.LOGMSG, "cluster1"))
        when = datetime.fromtimestamp(msg["event_time"][0] + msg["event_time"][1] / 1e6, UTC)
        self.assertGreater(when, NOW + timedelta(seconds=3))

    def test_buildError(self) -> None:
        """
        Build error: a simulated CREATE error.
        """
        (msg,) = self.fix(dbServer(1, operstate="BUILD", backendjobid=99), None)
        self.assertEqual((msg["operation"], msg["status"], msg["jobId"]), ("OP_INSTANCE_CREATE", "error", 99))

    def test_operstateFromBuild(self) -> None:
        """
        BUILD but stopped in Ganeti (build job over): CREATE success with the
        NICs, then SHUTDOWN success, one microsecond later.
        """
        first, second = self.fix(
            dbServer(1, operstate="BUILD", backendjobid=None), withNic(record(1, oper_state=False), 3)
        )
        self.assertEqual((first["operation"], first["jobId"]), ("OP_INSTANCE_CREATE", 0))
        self.assertEqual(first["instance_nics"][0]["name"], "snf-nic-3")
        self.assertEqual(second["operation"], "OP_INSTANCE_SHUTDOWN")
        self.assertGreater(second["event_time"], first["event_time"])

    def test_flavor(self) -> None:
        """
        Flavor: SET_PARAMS success with Ganeti's beparams.
        """
        (msg,) = self.fix(dbServer(1), record(1, beparams={"vcpus": 4, "maxmem": 2048}))
        self.assertEqual(msg["operation"], "OP_INSTANCE_SET_PARAMS")
        self.assertEqual(msg["job_fields"]["beparams"], {"vcpus": 4, "maxmem": 2048, "minmem": 2048})

    def test_nics(self) -> None:
        """
        NICs: SET_PARAMS success carrying Ganeti's NICs.
        """
        (msg,) = self.fix(dbServer(1, ports=(port(3),)), withNic(record(1), 3, mac="aa:00:00:00:00:09"))
        self.assertEqual(msg["instance_nics"][0]["mac"], "aa:00:00:00:00:09")

    def test_tags(self) -> None:
        """
        Tags: TAGS_SET for Ganeti's extra tags, TAGS_DEL for the DB's.
        """
        rec = record(1)
        rec["tags"] = ["new"]
        add, remove = self.fix(dbServer(1, tags={"old": "ACTIVE"}), rec)
        self.assertEqual((add["operation"], add["tags"]), ("OP_TAGS_SET", ["new"]))
        self.assertEqual((remove["operation"], remove["tags"]), ("OP_TAGS_DEL", ["old"]))

    def test_noMessage(self) -> None:
        """
        Orphans and pending tasks are not fixed by messages.
        """
        (orphan,) = detect([], [record(4)])
        self.assertEqual(r.fixMessages(orphan, NOW, "c"), [])


def network(networkId: int, action: str | None = None) -> Network:
    return Network(
        networkId, "n", None, None, False, "MAC_FILTERED", "bridged", "br0", None, True, False, False, False,
        "ACTIVE", action, [], False, None, OLD, OLD,
    )  # fmt: skip


def backendNetwork(networkId: int, operstate: str = "ACTIVE") -> BackendNetwork:
    return BackendNetwork(1, networkId, 1, operstate, None, None, None, None, None, None, OLD, OLD)


class NetworkTests(SynchronousTestCase):
    def test_detect(self) -> None:
        """
        Parted, stale, missing, hanging, unsynced, unreserved and orphan
        networks are told apart.
        """
        ganeti = r.parseNetworks(
            [
                {"name": "snf-net-1", "group_list": [["default", "bridged", "br0", ""]]},
                {"name": "snf-net-4", "group_list": []},
                {"name": "snf-net-5", "group_list": [["default", "bridged", "br0", ""]]},
                {"name": "snf-net-9", "group_list": [["default", "bridged", "br0", ""]]},
                {"name": "other", "group_list": []},
            ]
        )
        nets = [network(1), network(2, "DESTROY"), network(3), network(4), network(5)]
        rows = {2: backendNetwork(2), 3: backendNetwork(3), 4: backendNetwork(4), 5: backendNetwork(5, "PENDING")}
        drifts = r.detectNetworks(1, nets, rows, ganeti, ["default"], {5: ["10.0.0.9"]})
        self.assertEqual(
            [(d.kind, d.networkId) for d in drifts],
            [
                ("parted", 1),
                ("stale", 2),
                ("missing", 3),
                ("hanging", 4),
                ("unsynced", 5),
                ("unreserved", 5),
                ("orphan", 9),
            ],
        )
        self.assertEqual(drifts[5].addresses, ("10.0.0.9",))
        self.assertEqual(drifts[3].groups, ("default",))

    def test_message(self) -> None:
        """
        A simulated network message names the network and the cluster.
        """
        msg = r.networkMessage(5, "OP_NETWORK_CONNECT", "success", NOW, None, "c")
        self.assertEqual((msg["network"], msg["type"], msg["cluster"]), ("snf-net-5", "ganeti-network-status", "c"))


class YoungPortTests(SynchronousTestCase):
    def test_youngPortNotJudged(self) -> None:
        """
        A port younger than the dispatcher's NIC grace is not compared (the
        state machine would not delete it either); once older, it is.
        """
        young = port(3, created=NOW - timedelta(seconds=10))
        self.assertEqual(detect([dbServer(1, ports=(young,))], [record(1)]), [])
        old = port(3, created=NOW - timedelta(seconds=120))
        self.assertEqual(kinds(detect([dbServer(1, ports=(old,))], [record(1)])), [("unsynced-nics", 1)])


# -- property: the fixes converge under the dispatcher's own state machine ------------------------

STATES = st.sampled_from(["STARTED", "STOPPED", "BUILD", "ERROR"])
STAMPS = st.one_of(st.none(), st.integers(min_value=-7200, max_value=7200).map(lambda s: NOW + timedelta(seconds=s)))


def _applied(s: Server, message: dict[str, Any]) -> Server:
    decision = dispatch.decideOp(s, dispatch.parseOpMessage(message))
    return attrs.evolve(s, **decision.fields) if decision.fields else s  # type: ignore[misc]


class ConvergenceProperty(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(
        operstate=STATES,
        action=st.sampled_from([None, "DESTROY"]),
        instance=st.sampled_from(["running", "stopped", "absent"]),
        jobStatus=st.sampled_from(["success", "error", "missing"]),
        backendtime=STAMPS,
        statetime=STAMPS,
        task=st.booleans(),
        ended=st.sampled_from([1, int(NOW.timestamp()) - 60, int(NOW.timestamp()) + 3600]),
    )
    def test_fixesConverge(
        self,
        operstate: str,
        action: str | None,
        instance: str,
        jobStatus: str,
        backendtime: datetime | None,
        statetime: datetime | None,
        task: bool,
        ended: int,
    ) -> None:
        """
        Whatever the database says (state, action, the dispatcher's stamps,
        even stamps in the future), whatever Ganeti has and whenever the
        task's job ended (clock skew included), applying the fix
        messages with the dispatcher's own decision function leaves no
        finding (the server is gone, in ERROR, or as Ganeti has it, its
        task settled) — except a server in ERROR kept for its user
        (spec §3).
        """
        s = server(
            1,
            operstate=operstate,
            action=action,
            backendjobid=10,
            backendtime=backendtime,
            statetime=statetime,
            task="BUILD" if operstate == "BUILD" else ("STOP" if task else None),
            task_job_id=10 if (operstate == "BUILD" or task) else None,
        )
        records = [] if instance == "absent" else [record(1, oper_state=instance == "running")]
        op = {
            "OP_ID": "OP_INSTANCE_CREATE" if operstate == "BUILD" else "OP_INSTANCE_SHUTDOWN",
            "instance_name": "snf-1",
        }
        jobs = [] if jobStatus == "missing" else [{"id": 10, "status": jobStatus, "ops": [op], "end_ts": [ended, 0]}]
        thresholds = Thresholds(grace=timedelta(0))
        current = s
        for drift in r.detectServers(
            1,
            [attrs.evolve(dbServer(1), server=current)],
            r.parseInstances(records),
            r.parseJobs(jobs),
            NOW,
            thresholds,
        ):
            for message in r.fixMessages(drift, NOW, "c"):
                current = _applied(current, message)
        left = r.detectServers(
            1,
            [] if current.deleted else [attrs.evolve(dbServer(1), server=current)],
            r.parseInstances(records),
            r.parseJobs(jobs),
            NOW,
            thresholds,
        )
        kept = current.operstate == "ERROR" and current.action != "DESTROY" and instance == "absent"
        # a pending task whose job Ganeti no longer lists is cleared by the
        # shell directly (no message): not part of this property
        directly = r.PENDING_TASK if jobStatus == "missing" else None
        self.assertEqual([(d.kind, d.db, d.ganeti) for d in left if not kept and d.kind != directly], [])
        if instance == "absent" and not kept:
            self.assertTrue(current.deleted or current.operstate == "ERROR", current)
