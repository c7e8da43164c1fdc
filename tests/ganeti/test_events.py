"""
Tests for L{synnefo_twisted.ganeti.events}: job-file ops to eventd messages.
"""

from typing import Any

import attrs
from twisted.trial.unittest import SynchronousTestCase

from synnefo_twisted.ganeti import events, jobfile
from synnefo_twisted.ganeti.events import InstanceDetails, NotPublished
from synnefo_twisted.ganeti.jobfile import QueuedJob, QueuedOp
from tests.ganeti.samples import sampleBytes

DETAILS = InstanceDetails(
    nics=({"name": "snf-nic-5", "network": "snf-net-9", "ip": "10.0.0.2", "mac": "aa:00:00:00:00:01"},),
    disks=({"name": "snf-vol-1", "size": 64, "uuid": "u"},),
    hvparams={"boot_order": None, "cdrom_image_path": None},
)


def lookup(name: str) -> InstanceDetails | None:
    return DETAILS if name.startswith("demo") or name.startswith("snf-") else None


def sample(name: str) -> QueuedJob:
    return jobfile.parseJobFile(sampleBytes(name))


def withStatus(job: QueuedJob, status: str, **changes: Any) -> QueuedJob:
    op = attrs.evolve(job.ops[0], status=status, **changes)
    return attrs.evolve(job, ops=(op, *job.ops[1:]))


class RealJobTests(SynchronousTestCase):
    def test_create(self) -> None:
        """
        A successful OP_INSTANCE_CREATE becomes ganeti-op-status with job fields, tags, the instance's NICs/disks/hvparams and the op's end time.
        """
        job = sample("job-3-create.queuefile.json")
        msg = events.messageForOp(job, 0, "cluster.ganeti.lab", lookup)
        assert msg is not None
        body = msg.body
        self.assertEqual(msg.routingKey, "ganeti.demo1.ganeti.lab.event.op")
        self.assertEqual(body["type"], "ganeti-op-status")
        self.assertEqual(body["instance"], "demo1.ganeti.lab")
        self.assertEqual(body["operation"], "OP_INSTANCE_CREATE")
        self.assertEqual(body["status"], "success")
        self.assertEqual(body["event_time"], [1795313444, 778963])
        self.assertEqual(body["cluster"], "cluster.ganeti.lab")
        self.assertEqual(body["jobId"], 3)
        self.assertEqual(body["logmsg"], "* starting instance...")
        self.assertEqual(body["result"], ["node1.ganeti.lab"])
        self.assertEqual(body["tags"], ["demo"])
        self.assertEqual(
            body["job_fields"],
            {
                "nics": [{"mode": "bridged", "link": "gnt-br0"}],
                "disks": [],
                "hvparams": {},
                "beparams": {"maxmem": 128, "minmem": 128, "vcpus": 1},
            },
        )
        self.assertEqual(body["instance_nics"], [dict(DETAILS.nics[0])])
        self.assertEqual(body["instance_disks"], [dict(DETAILS.disks[0])])
        self.assertEqual(body["instance_hvparams"], dict(DETAILS.hvparams))

    def test_shutdownHasNoDetails(self) -> None:
        """
        OP_INSTANCE_SHUTDOWN carries no job_fields content and no instance_* fields.
        """
        msg = events.messageForOp(sample("job-4-shutdown.queuefile.json"), 0, "c", lookup)
        assert msg is not None
        self.assertEqual(msg.body["job_fields"], {})
        self.assertNotIn("instance_nics", msg.body)
        self.assertIsNone(msg.body["logmsg"])

    def test_detailsOnlyWhereEventdSendsThem(self) -> None:
        """
        instance_* are attached for CREATE/STARTUP on success and SET_PARAMS/GROW_DISK on success, error or canceled, never otherwise.
        """
        cases = [
            ("job-3-create.queuefile.json", "success", True),
            ("job-3-create.queuefile.json", "running", False),
            ("job-5-startup.queuefile.json", "success", True),
            ("job-5-startup.queuefile.json", "error", False),
            ("job-6-reboot.queuefile.json", "success", False),
            ("job-12-modify-addnic.queuefile.json", "success", True),
            ("job-12-modify-addnic.queuefile.json", "error", True),
            ("job-12-modify-addnic.queuefile.json", "canceled", True),
            ("job-12-modify-addnic.queuefile.json", "running", False),
        ]
        for name, status, expected in cases:
            job = withStatus(sample(name), status)
            msg = events.messageForOp(job, 0, "c", lookup)
            assert msg is not None
            self.assertEqual("instance_nics" in msg.body, expected, (name, status))

    def test_unknownInstanceHasNoDetails(self) -> None:
        """
        When the lookup does not know the instance, the message goes out without instance_* fields.
        """
        msg = events.messageForOp(sample("job-5-startup.queuefile.json"), 0, "c", lambda name: None)
        assert msg is not None
        self.assertNotIn("instance_nics", msg.body)

    def test_createErrorSendsWholeInput(self) -> None:
        """
        A failed OP_INSTANCE_CREATE carries the whole op input as job_fields, so it can be retried.
        """
        job = withStatus(sample("job-3-create.queuefile.json"), "error")
        msg = events.messageForOp(job, 0, "c", lookup)
        assert msg is not None
        self.assertEqual(msg.body["job_fields"], dict(job.ops[0].input))

    def test_networkOps(self) -> None:
        """
        Network add/connect/disconnect/remove become ganeti-network-status with the subnet, gateway and group fields.
        """
        expected = {
            "job-9-net-add.queuefile.json": ("OP_NETWORK_ADD", "10.123.0.0/24", "10.123.0.1", None),
            "job-10-net-connect.queuefile.json": ("OP_NETWORK_CONNECT", None, None, "default"),
            "job-14-net-disconnect.queuefile.json": ("OP_NETWORK_DISCONNECT", None, None, "default"),
            "job-15-net-remove.queuefile.json": ("OP_NETWORK_REMOVE", None, None, None),
        }
        for name, (opId, subnet, gateway, group) in expected.items():
            job = sample(name)
            msg = events.messageForOp(job, 0, "c", lookup)
            assert msg is not None
            self.assertEqual(msg.routingKey, "ganeti.demonet.event.network")
            self.assertEqual(msg.body["type"], "ganeti-network-status")
            self.assertEqual(msg.body["network"], "demonet")
            self.assertEqual(msg.body["operation"], opId)
            self.assertEqual(msg.body["event_time"], list(job.ops[0].end_timestamp or ()))
            fields = msg.body["job_fields"]
            self.assertEqual((fields["subnet"], fields["gateway"], fields["group_name"]), (subnet, gateway, group))

    def test_queryOpHasNoInstance(self) -> None:
        """
        OP_INSTANCE_QUERY_DATA names no single instance: NotPublished says so.
        """
        e = self.assertRaises(NotPublished, events.messageForOp, sample("job-7-info.queuefile.json"), 0, "c", lookup)
        self.assertIn("names no instance", str(e))


def _job(opInput: dict[str, Any], status: str = "success", **ts: Any) -> QueuedJob:
    op = QueuedOp(opInput, status, **ts)
    return QueuedJob(
        7,
        (op,),
        received_timestamp=(100, 1),
        start_timestamp=(101, 0),
        end_timestamp=ts.get("end_timestamp") and (110, 9),
    )


class EventTimeTests(SynchronousTestCase):
    def test_rules(self) -> None:
        """
        event_time is received (queued), op start (waiting, canceling), op exec (running), op end (final).
        """
        ts = {"start_timestamp": (102, 2), "exec_timestamp": (103, 3), "end_timestamp": (104, 4)}
        expected = {
            "queued": (100, 1),
            "waiting": (102, 2),
            "canceling": (102, 2),
            "running": (103, 3),
            "success": (104, 4),
            "error": (104, 4),
            "canceled": (104, 4),
        }
        for status, when in expected.items():
            job = _job({"OP_ID": "OP_INSTANCE_STARTUP", "instance_name": "snf-1"}, status, **ts)
            self.assertEqual(events.eventTime(job, job.ops[0]), when, status)

    def test_fallbacks(self) -> None:
        """
        A final op without its own end time uses the job's end time; a waiting op without start does too.
        """
        op = QueuedOp({"OP_ID": "OP_X"}, "canceled")
        job = QueuedJob(1, (op,), received_timestamp=(1, 0), end_timestamp=(5, 5))
        self.assertEqual(events.eventTime(job, op), (5, 5))
        op = QueuedOp({"OP_ID": "OP_X"}, "waiting")
        job = QueuedJob(1, (op,), received_timestamp=(1, 0), end_timestamp=(6, 6))
        self.assertEqual(events.eventTime(job, op), (6, 6))

    def test_missing(self) -> None:
        """
        A running op with no exec timestamp cannot be dated: NotPublished.
        """
        job = _job({"OP_ID": "OP_INSTANCE_STARTUP", "instance_name": "snf-1"}, "running")
        self.assertRaises(NotPublished, events.messageForOp, job, 0, "c", lookup)


class OtherOpTests(SynchronousTestCase):
    def test_clusterSetParams(self) -> None:
        """
        OP_CLUSTER_SET_PARAMS becomes ganeti-cluster-status on ganeti.event.cluster.
        """
        job = _job({"OP_ID": "OP_CLUSTER_SET_PARAMS"}, end_timestamp=(9, 9))
        msg = events.messageForOp(job, 0, "c", lookup)
        assert msg is not None
        self.assertEqual((msg.routingKey, msg.body["type"]), ("ganeti.event.cluster", "ganeti-cluster-status"))

    def test_ignoredOps(self) -> None:
        """
        Node, group and other cluster ops are not reported.
        """
        for opId in ["OP_NODE_ADD", "OP_GROUP_ADD", "OP_CLUSTER_VERIFY", "OP_TEST_DELAY"]:
            self.assertIsNone(events.messageForOp(_job({"OP_ID": opId}, end_timestamp=(1, 1)), 0, "c", lookup))

    def test_instanceTags(self) -> None:
        """
        Final instance tag ops become ganeti-op-status with the tags and dry_run; non-final ones are not reported.
        """
        opInput = {"OP_ID": "OP_TAGS_SET", "kind": "instance", "name": "snf-3", "tags": ["a"], "dry_run": False}
        msg = events.messageForOp(_job(opInput, end_timestamp=(1, 1)), 0, "c", lookup)
        assert msg is not None
        self.assertEqual(msg.routingKey, "ganeti.snf.event.op")
        self.assertEqual(
            (msg.body["instance"], msg.body["tags"], msg.body["job_fields"]), ("snf-3", ["a"], {"dry_run": False})
        )
        running = _job(opInput, "running", exec_timestamp=(1, 1))
        self.assertIsNone(events.messageForOp(running, 0, "c", lookup))

    def test_heartbeat(self) -> None:
        """
        A dry-run cluster tag snf:eventd:heartbeat* becomes one eventd-heartbeat on eventd.heartbeat.
        """
        opInput = {
            "OP_ID": "OP_TAGS_SET",
            "kind": "cluster",
            "name": None,
            "tags": ["snf:eventd:heartbeat:h:1"],
            "dry_run": True,
        }
        job = _job(opInput, "waiting", start_timestamp=(3, 3))
        msg = events.messageForOp(job, 0, "cl", lookup)
        assert msg is not None
        self.assertEqual(
            (msg.routingKey, msg.body["type"], msg.body["cluster"]), ("eventd.heartbeat", "eventd-heartbeat", "cl")
        )
        self.assertTrue(events.shouldPublish(job.ops[0], None))
        self.assertFalse(events.shouldPublish(attrs.evolve(job.ops[0], status="success"), "waiting"))
        self.assertFalse(events.shouldPublish(attrs.evolve(job.ops[0], status="queued"), None))
        notDry = dict(opInput, dry_run=False)
        self.assertFalse(events.isHeartbeat(QueuedOp(notDry, "waiting")))

    def test_shouldPublishOnChange(self) -> None:
        """
        Ordinary ops are published whenever their status differs from the last one published.
        """
        op = QueuedOp({"OP_ID": "OP_INSTANCE_STARTUP"}, "running")
        self.assertTrue(events.shouldPublish(op, None))
        self.assertTrue(events.shouldPublish(op, "queued"))
        self.assertFalse(events.shouldPublish(op, "running"))

    def test_snapshot(self) -> None:
        """
        OP_INSTANCE_SNAPSHOT job_fields carry the disks with the job reason as snapshot_info of the first disk.
        """
        opInput = {
            "OP_ID": "OP_INSTANCE_SNAPSHOT",
            "instance_name": "snf-3",
            "disks": [["uuid-1", {"snapshot_name": "s"}]],
            "reason": [["gnt:user", '{"snapshot_id": 9}', 1]],
        }
        msg = events.messageForOp(_job(opInput, end_timestamp=(1, 1)), 0, "c", lookup)
        assert msg is not None
        self.assertEqual(
            msg.body["job_fields"],
            {"disks": [["uuid-1", {"snapshot_name": "s", "snapshot_info": '{"snapshot_id": 9}'}]]},
        )

    def test_severalInstances(self) -> None:
        """
        An op naming a list of several instances is skipped with the reason.
        """
        job = _job({"OP_ID": "OP_INSTANCE_STARTUP", "instance_name": ["a", "b"]}, end_timestamp=(1, 1))
        e = self.assertRaises(NotPublished, events.messageForOp, job, 0, "c", lookup)
        self.assertIn("2 instances", str(e))

    def test_firewallProfiles(self) -> None:
        """
        Firewall profiles come from synnefo:network:<nic>:<profile> tags; malformed ones are ignored.
        """
        self.assertEqual(
            events.firewallProfiles(["synnefo:network:snf-nic-1:protected", "synnefo:network:x", "other:a:b:c"]),
            {"snf-nic-1": "protected"},
        )
