"""
Tests for the simulated job queue (L{synnefo_twisted.ganeti.sim.queue}) on a
deterministic clock: op lifecycle, job files, dependencies, locks,
cancellation and failure injection.
"""

from __future__ import annotations

import random
from typing import Any

from twisted.internet.task import Clock
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from synnefo_twisted.ganeti import events, jobfile
from synnefo_twisted.ganeti.sim.model import SimCluster
from synnefo_twisted.ganeti.sim.queue import DelayRule, FailureRule, JobQueue


def createOp(name: str, **extra: Any) -> dict[str, Any]:
    op = {
        "OP_ID": "OP_INSTANCE_CREATE",
        "instance_name": name,
        "mode": "create",
        "disk_template": "diskless",
        "disks": [],
        "nics": [],
        "tags": ["t"],
    }
    op.update(extra)
    return op


class RecordingQueue(JobQueue):
    """
    A queue that also keeps every job-file content it wrote, in order.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.written: list[tuple[int, bytes]] = []
        super().__init__(*args, **kwargs)

    def _write(self, job: Any) -> None:
        super()._write(job)
        self.written.append((job.id, jobfile.encodeJob(job.toQueued())))


class QueueTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.cluster = SimCluster()
        self.dir = FilePath(self.mktemp())
        self.queue = RecordingQueue(
            self.clock, self.cluster, self.dir, durations={"OP_INSTANCE_CREATE": 2.0}, defaultDuration=1.0
        )

    def statuses(self, jobId: int) -> list[str]:
        return [jobfile.parseJobFile(raw).ops[0].status for i, raw in self.queue.written if i == jobId]

    def test_lifecycle(self) -> None:
        """
        A job goes queued → waiting → running → success on the clock, each state written to job-<id> with Ganeti's timestamps.
        """
        jobId = self.queue.submit([createOp("snf-1")])
        self.assertEqual(self.statuses(jobId), ["queued"])
        self.clock.advance(0)
        self.assertEqual(self.statuses(jobId), ["queued", "waiting", "running"])
        self.assertNotIn("snf-1", self.cluster.instances)
        self.clock.advance(2.0)
        self.assertEqual(self.statuses(jobId), ["queued", "waiting", "running", "success"])
        self.assertIn("snf-1", self.cluster.instances)
        job = jobfile.parseJobFile(self.dir.child(f"job-{jobId}").getContent())
        (op,) = job.ops
        self.assertEqual(op.status, "success")
        self.assertEqual(op.result, [self.cluster.node])
        self.assertEqual(op.end_timestamp, (1_800_000_002, 0))
        self.assertEqual(op.exec_timestamp, (1_800_000_000, 0))
        self.assertEqual(job.received_timestamp, (1_800_000_000, 0))
        self.assertEqual(op.lastLogMessage(), "* starting instance...")
        self.assertEqual(op.input["reason"][1][1], f"job={jobId};index=0")
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual([p.basename() for p in self.dir.children() if p.basename().startswith(".")], [])

    def test_filesTranslate(self) -> None:
        """
        The simulator's job files become the same eventd messages as real ones (create success with instance details).
        """
        jobId = self.queue.submit([createOp("snf-1")])
        self.clock.advance(0)
        self.clock.advance(2)
        job = jobfile.parseJobFile(self.dir.child(f"job-{jobId}").getContent())
        msg = events.messageForOp(job, 0, self.cluster.name, lambda name: events.InstanceDetails((), (), {}))
        assert msg is not None
        self.assertEqual(
            (msg.body["operation"], msg.body["status"], msg.body["tags"]), ("OP_INSTANCE_CREATE", "success", ["t"])
        )
        self.assertEqual(msg.body["event_time"], [1_800_000_002, 0])
        self.assertIn("instance_nics", msg.body)

    def test_prereqFailure(self) -> None:
        """
        An op whose prerequisites fail ends in error at once with Ganeti's [class, [message, code]] result.
        """
        jobId = self.queue.submit([{"OP_ID": "OP_INSTANCE_STARTUP", "instance_name": "snf-9"}])
        self.clock.advance(0)
        job = self.queue.jobs[jobId]
        self.assertEqual(job.status(), "error")
        self.assertEqual(job.ops[0].result, ["OpPrereqError", ["Instance 'snf-9' not known", "unknown_entity"]])
        self.assertEqual(self.statuses(jobId), ["queued", "waiting", "error"])

    def test_multiOpFailure(self) -> None:
        """
        When an op fails, the job's later ops are marked error "Preceding opcode failed".
        """
        jobId = self.queue.submit(
            [{"OP_ID": "OP_INSTANCE_STARTUP", "instance_name": "nope"}, {"OP_ID": "OP_CLUSTER_SET_PARAMS"}]
        )
        self.clock.advance(0)
        ops = self.queue.jobs[jobId].ops
        self.assertEqual([o.status for o in ops], ["error", "error"])
        self.assertEqual(ops[1].result, ["OpExecError", ["Preceding opcode failed"]])

    def test_dependencies(self) -> None:
        """
        A job depending on another stays queued until it ends, and fails when it ended with an unwanted status.
        """
        first = self.queue.submit([createOp("snf-1")])
        second = self.queue.submit(
            [{"OP_ID": "OP_INSTANCE_SHUTDOWN", "instance_name": "snf-1", "depends": [[first, ["success"]]]}]
        )
        third = self.queue.submit(
            [{"OP_ID": "OP_INSTANCE_STARTUP", "instance_name": "snf-1", "depends": [[-2, ["error"]]]}]
        )
        self.clock.advance(0)
        self.assertEqual(self.queue.jobs[second].status(), "queued")
        self.assertIsNone(self.queue.jobs[second].start)
        self.clock.advance(2)
        self.clock.advance(0)
        self.assertEqual(self.queue.jobs[second].status(), "running")
        self.assertEqual(self.queue.jobs[third].status(), "error")
        self.assertIn("Job dependency", self.queue.jobs[third].ops[0].result[1][0])
        self.clock.advance(1)
        self.assertFalse(self.cluster.instances["snf-1"].adminUp)

    def test_dependencyAnyFinalStatus(self) -> None:
        """
        A dependency with an empty status list waits for the job to end and then accepts any final status.
        """
        failing = self.queue.submit([{"OP_ID": "OP_INSTANCE_STARTUP", "instance_name": "snf-9"}])
        waiter = self.queue.submit([{**createOp("snf-2"), "depends": [[failing, []]]}])
        self.clock.advance(0)
        self.assertEqual(self.queue.jobs[failing].status(), "error")
        self.clock.advance(0)
        self.assertEqual(self.queue.jobs[waiter].status(), "running")
        self.clock.advance(2)
        self.assertEqual(self.queue.jobs[waiter].status(), "success")
        self.assertIn("snf-2", self.cluster.instances)

    def test_dependencyAnyStatusWaits(self) -> None:
        """
        A dependency with an empty status list still keeps the job queued while the other job runs.
        """
        first = self.queue.submit([createOp("snf-1")])
        second = self.queue.submit([{**createOp("snf-2"), "depends": [[first, []]]}])
        self.clock.advance(0)
        self.assertEqual(self.queue.jobs[first].status(), "running")
        self.assertEqual(self.queue.jobs[second].status(), "queued")
        self.clock.advance(2)
        self.clock.advance(0)
        self.assertEqual(self.queue.jobs[second].status(), "running")

    def test_locksSerialize(self) -> None:
        """
        Two jobs on the same instance run one after the other; the second waits (status waiting) meanwhile.
        """
        self.queue.submit([createOp("snf-1")])
        self.clock.advance(0)
        self.clock.advance(2)
        a = self.queue.submit([{"OP_ID": "OP_INSTANCE_SHUTDOWN", "instance_name": "snf-1"}])
        b = self.queue.submit([{"OP_ID": "OP_INSTANCE_STARTUP", "instance_name": "snf-1"}])
        self.clock.advance(0)
        self.assertEqual((self.queue.jobs[a].status(), self.queue.jobs[b].status()), ("running", "waiting"))
        self.clock.advance(1)
        self.assertEqual((self.queue.jobs[a].status(), self.queue.jobs[b].status()), ("success", "running"))
        self.clock.advance(1)
        self.assertTrue(self.cluster.instances["snf-1"].operUp)

    def test_cancel(self) -> None:
        """
        A queued job can be cancelled (all ops canceled, file written); running and finished ones cannot.
        """
        self.queue.maxRunning = 1
        running = self.queue.submit([createOp("snf-1")])
        queued = self.queue.submit([createOp("snf-2")])
        self.clock.advance(0)
        self.assertEqual(self.queue.cancel(queued), [True, f"Job {queued} canceled"])
        self.assertEqual(self.statuses(queued), ["queued", "canceled"])
        self.assertFalse(self.queue.cancel(running)[0])
        self.clock.advance(2)
        self.assertEqual(self.queue.cancel(running), [False, f"Job {running} not found in queue"])
        self.assertEqual(self.queue.cancel(999)[0], False)
        self.clock.advance(5)
        self.assertNotIn("snf-2", self.cluster.instances)

    def test_forcedFailure(self) -> None:
        """
        failNext makes the next matching op fail with the given class, message and code, once.
        """
        self.queue.failNext(
            FailureRule(
                "OP_INSTANCE_CREATE",
                "snf-1",
                errorClass="OpPrereqError",
                message="no room",
                code="temp_insufficient_resources",
            )
        )
        first = self.queue.submit([createOp("snf-1")])
        self.clock.advance(0)
        self.clock.advance(2)
        self.assertEqual(
            self.queue.jobs[first].ops[0].result, ["OpPrereqError", ["no room", "temp_insufficient_resources"]]
        )
        self.assertNotIn("snf-1", self.cluster.instances)
        second = self.queue.submit([createOp("snf-1")])
        self.clock.advance(0)
        self.clock.advance(2)
        self.assertEqual(self.queue.jobs[second].status(), "success")

    def test_errorRate(self) -> None:
        """
        A per-op error rate fails about that share of ops (seeded).
        """
        queue = JobQueue(
            self.clock,
            self.cluster,
            None,
            errorRates={"OP_TAGS_SET": 0.3},
            rng=random.Random(7),
            defaultDuration=0.01,
            maxRunning=1000,
        )
        ids = [
            queue.submit([{"OP_ID": "OP_TAGS_SET", "kind": "cluster", "name": None, "tags": [f"t{i}"]}])
            for i in range(400)
        ]
        self.clock.pump([0, 0.01, 0.01] * 400)
        failed = sum(queue.jobs[i].status() == "error" for i in ids)
        self.assertTrue(80 < failed < 160, failed)

    def test_slowJobs(self) -> None:
        """
        delayNext stretches the next matching op by the given seconds.
        """
        self.queue.delayNext(DelayRule("OP_INSTANCE_CREATE", 10.0))
        jobId = self.queue.submit([createOp("snf-1")])
        self.clock.advance(0)
        self.clock.advance(11.9)
        self.assertEqual(self.queue.jobs[jobId].status(), "running")
        self.clock.advance(0.1)
        self.assertEqual(self.queue.jobs[jobId].status(), "success")

    def test_dryRun(self) -> None:
        """
        A dry-run op succeeds without changing the cluster.
        """
        jobId = self.queue.submit([createOp("snf-1", dry_run=True)])
        self.clock.advance(0)
        self.clock.advance(2)
        self.assertEqual(self.queue.jobs[jobId].status(), "success")
        self.assertNotIn("snf-1", self.cluster.instances)

    def test_stop(self) -> None:
        """
        stop() cancels every timer.
        """
        self.queue.submit([createOp("snf-1")])
        self.clock.advance(0)
        self.queue.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
