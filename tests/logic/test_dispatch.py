"""
Tests for the pure parts of L{synnefo_twisted.logic.dispatch}: decoding,
the registers of L{decideOp}, NIC planning and the single-statement path's
eligibility.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from synnefo_twisted.db.models import Port, Server
from synnefo_twisted.logic import dispatch
from synnefo_twisted.logic.dispatch import MalformedMessage
from synnefo_twisted.logic.servers import encodeTag

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def server(**fields: Any) -> Server:
    values: dict[str, Any] = dict(
        id=7, name="vm", userid="u", project=None, shared_to_project=False, backend_id=1, flavor_id=1,
        image_id="img", operstate="STARTED", action=None, backendjobid=None, backendopcode=None,
        backendjobstatus=None, backendlogmsg=None, backendtime=None, task=None, task_job_id=None,
        buildpercentage=0, suspended=False, deleted=False, rescue=False, rescue_image=None, serial_id=None,
        key_names=[], config_url=None, created=T0, updated=T0,
    )  # fmt: skip
    values.update(fields)
    return Server(**values)


def message(op: str = "OP_INSTANCE_STARTUP", status: str = "success", seconds: float = 10, **extra: Any) -> Any:
    body = {
        "type": "ganeti-op-status",
        "instance": "snf-7",
        "operation": op,
        "status": status,
        "jobId": 3,
        "event_time": dispatch.toEventTime(T0 + timedelta(seconds=seconds)),
    }
    body.update(extra)
    return dispatch.parseOpMessage(body)


class DecodingTests(SynchronousTestCase):
    def test_eventTimeRoundTrip(self) -> None:
        """
        event_time [seconds, microseconds] decodes to an aware UTC datetime and encodes back exactly.
        """
        moment = datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=UTC)
        encoded = dispatch.toEventTime(moment)
        self.assertEqual(dispatch.parseEventTime(encoded), moment)
        for bad in ("now", [1], [1, -2], [True, 0], None):
            self.assertRaises(MalformedMessage, dispatch.parseEventTime, bad)

    def test_tagRoundTrip(self) -> None:
        """
        decodeTag inverts the API's encodeTag.
        """
        for tag in ("web", "a_b", "100%", "x/y z", "ünï"):
            self.assertEqual(dispatch.decodeTag(encodeTag(tag)), tag)

    def test_opMessage(self) -> None:
        """
        The op message is decoded; Ganeti's "cancelled" spelling is accepted; another prefix is not ours.
        """
        m = message(status="cancelled", logmsg=5)
        self.assertEqual((m.serverId, m.status, m.logmsg, m.final), (7, "canceled", "5", True))
        other = dispatch.parseOpMessage({**_raw(), "instance": "vm-7"})
        self.assertIsNone(other.serverId)

    def test_opMalformed(self) -> None:
        """
        Missing or mistyped keys and unknown statuses are malformed, with the reason.
        """
        with self.assertRaises(MalformedMessage) as e:
            dispatch.parseOpMessage({k: v for k, v in _raw().items() if k != "operation"})
        self.assertEqual(e.exception.reason, "missing key 'operation'")
        for patch in ({"jobId": "x"}, {"status": "gone"}, {"instance_nics": {}}, {"tags": [1]}, {"job_fields": []}):
            self.assertRaises(MalformedMessage, dispatch.parseOpMessage, {**_raw(), **patch})
        self.assertRaises(MalformedMessage, dispatch.parseOpMessage, [1, 2])


def _raw() -> dict[str, Any]:
    return {
        "type": "ganeti-op-status",
        "instance": "snf-7",
        "operation": "OP_INSTANCE_STARTUP",
        "status": "success",
        "jobId": 3,
        "event_time": [1700000000, 0],
    }


class DecideTests(SynchronousTestCase):
    def test_registers(self) -> None:
        """
        A success newer than every register writes job fields, state and backendtime; one older than the state
        register writes only what is still newer.
        """
        d = dispatch.decideOp(server(operstate="STOPPED"), message())
        self.assertEqual(d.fields["operstate"], "STARTED")
        self.assertEqual(d.fields["backendtime"], T0 + timedelta(seconds=10))
        newer = T0 + timedelta(seconds=20)
        d = dispatch.decideOp(server(operstate="STOPPED", statetime=newer, backendtime=newer), message())
        self.assertNotIn("operstate", d.fields)
        self.assertEqual(d.fields["backendjobstatus"], "success")
        d = dispatch.decideOp(server(statetime=newer, backendtime=newer, jobtime=newer), message())
        self.assertEqual((d.applied, d.reason), (False, "stale"))

    def test_taskCommission(self) -> None:
        """
        The final status of the task's job (by id, or by opcode before the id is recorded) resolves its
        commission and clears the task; another job's does not.
        """
        d = dispatch.decideOp(server(task="START", task_job_id=3, serial_id=40), message())
        self.assertEqual((d.commission, d.accept, d.fields["task"]), (40, True, None))
        d = dispatch.decideOp(server(task="START", task_job_id=None, serial_id=40), message(status="error"))
        self.assertEqual((d.commission, d.accept), (40, False))
        d = dispatch.decideOp(server(task="STOP", task_job_id=None, serial_id=40), message())
        self.assertIsNone(d.commission)
        synthetic = message(jobId=0)
        d = dispatch.decideOp(server(task="START", task_job_id=None, serial_id=40), synthetic)
        self.assertIsNone(d.commission, "the reconciler's simulated events resolve no task")

    def test_deleted(self) -> None:
        """
        Nothing newer than a removal applies to a deleted server.
        """
        d = dispatch.decideOp(server(deleted=True, statetime=T0), message())
        self.assertEqual(d.reason, "deleted")


class NicPlanTests(SynchronousTestCase):
    def port(self, ident: int, created: datetime, state: str = "ACTIVE") -> Port:
        return Port(ident, "", "u", None, 1, 7, "vm", None, None, None, state, [], created, created)

    def test_plan(self) -> None:
        """
        Ganeti's NICs update their ports; a port Ganeti lacks is deleted only when older than the message minus
        the grace; unknown NICs are reported.
        """
        t = T0 + timedelta(seconds=600)
        old, young = self.port(1, T0), self.port(2, t - timedelta(seconds=10), "BUILD")
        kept = self.port(3, T0, "BUILD")
        nics = [{"name": "snf-nic-3", "mac": "AA:BB:00:00:00:01", "firewall": "enabled"}, {"name": "snf-nic-99"}]
        plan = dispatch.planNics([old, young, kept], nics, t)
        self.assertEqual(
            plan.updates,
            ((3, {"state": "ACTIVE", "idx": 0, "mac": "aa:bb:00:00:00:01", "firewall_profile": "ENABLED"}),),
        )
        self.assertEqual((plan.delete, plan.unknown), ((1,), ("snf-nic-99",)))


class RowUpdateTests(SynchronousTestCase):
    def test_eligible(self) -> None:
        """
        Status changes and start/stop ends take the single-statement path; creates, removes, resizes, tags and
        messages with details do not.
        """
        self.assertIsNotNone(dispatch.rowUpdate(message(status="running")))
        update = dispatch.rowUpdate(message(op="OP_INSTANCE_SHUTDOWN"))
        assert update is not None
        self.assertEqual((update.operstate, update.backendtime, update.final), ("STOPPED", True, True))
        self.assertIsNotNone(dispatch.rowUpdate(message(op="OP_INSTANCE_CREATE", status="running")))
        for op in ("OP_INSTANCE_CREATE", "OP_INSTANCE_REMOVE", "OP_INSTANCE_SET_PARAMS", "OP_TAGS_SET"):
            self.assertIsNone(dispatch.rowUpdate(message(op=op)))
        self.assertIsNone(dispatch.rowUpdate(message(instance_nics=[])))
