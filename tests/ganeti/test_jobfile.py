"""
Tests for L{synnefo_twisted.ganeti.jobfile}.
"""

import json

from twisted.trial.unittest import SynchronousTestCase

from synnefo_twisted.ganeti import jobfile
from synnefo_twisted.ganeti.jobfile import JobFileError, QueuedJob, QueuedOp
from tests.ganeti.samples import QUEUE_FILES, sampleBytes


class FileNameTests(SynchronousTestCase):
    def test_jobFileNames(self) -> None:
        """
        Only C{job-<digits>} names are job files.
        """
        self.assertEqual(jobfile.jobIdFromFileName("job-17"), 17)
        for other in ["job-", "job-1.tmp", "tmp-job-1", "serial", "lock", "archive", ".job-3", "job-3x"]:
            self.assertIsNone(jobfile.jobIdFromFileName(other), other)
        self.assertEqual(jobfile.jobFileName(5), "job-5")


class ParseTests(SynchronousTestCase):
    def test_realFiles(self) -> None:
        """
        Every queue file captured from Ganeti 3.0.2 parses, with its id, ops and timestamps.
        """
        self.assertEqual(len(QUEUE_FILES), 13)
        for name in QUEUE_FILES:
            job = jobfile.parseJobFile(sampleBytes(name))
            self.assertEqual(name.split("-")[1], str(job.id))
            self.assertTrue(job.ops)
            self.assertIsNotNone(job.received_timestamp)
        create = jobfile.parseJobFile(sampleBytes("job-3-create.queuefile.json"))
        (op,) = create.ops
        self.assertEqual(op.opId, "OP_INSTANCE_CREATE")
        self.assertEqual(op.status, "success")
        self.assertEqual(op.end_timestamp, (1795313444, 778963))
        self.assertEqual(op.lastLogMessage(), "* starting instance...")
        self.assertEqual(jobfile.jobStatus(create), "success")

    def test_roundTripIsByteExact(self) -> None:
        """
        Encoding a parsed real job file gives back Ganeti's exact bytes (one line, field order, newline).
        """
        for name in QUEUE_FILES:
            raw = sampleBytes(name)
            self.assertEqual(jobfile.encodeJob(jobfile.parseJobFile(raw)), raw, name)

    def test_badContent(self) -> None:
        """
        Empty, truncated, non-JSON and malformed files raise JobFileError with a reason.
        """
        raw = sampleBytes("job-4-shutdown.queuefile.json")
        cases = {
            b"": "empty",
            raw[: len(raw) // 2]: "not valid JSON",
            b"\x00\xff garbage": "not valid JSON",
            b"[1, 2]": "not a JSON object",
            b'{"id": "x", "ops": []}': "not an integer",
            b'{"id": 3, "ops": []}': "no ops",
            b'{"id": 3, "ops": [{"input": {}, "status": "success"}]}': "no OP_ID",
            b'{"id": 3, "ops": [{"input": {"OP_ID": "OP_X"}, "status": "bogus"}]}': "unknown op status",
            b'{"id": 3, "ops": [{"input": {"OP_ID": "OP_X"}, "status": "queued", "start_timestamp": 5}]}': "timestamp",
            b'{"id": 3, "ops": [{"input": {"OP_ID": "OP_X"}, "status": "queued", "log": [[1]]}]}': "log entry",
        }
        for content, reason in cases.items():
            e = self.assertRaises(JobFileError, jobfile.parseJobFile, content)
            self.assertIn(reason, str(e))


class JobStatusTests(SynchronousTestCase):
    def _job(self, *statuses: str) -> QueuedJob:
        return QueuedJob(1, tuple(QueuedOp({"OP_ID": "OP_X"}, s) for s in statuses))

    def test_status(self) -> None:
        """
        The job status follows Ganeti's CalcStatus: errors and cancels win, then the last waiting/running op.
        """
        self.assertEqual(jobfile.jobStatus(self._job("success", "success")), "success")
        self.assertEqual(jobfile.jobStatus(self._job("queued", "queued")), "queued")
        self.assertEqual(jobfile.jobStatus(self._job("success", "running", "queued")), "running")
        self.assertEqual(jobfile.jobStatus(self._job("success", "waiting")), "waiting")
        self.assertEqual(jobfile.jobStatus(self._job("success", "error", "error")), "error")
        self.assertEqual(jobfile.jobStatus(self._job("canceled", "canceled")), "canceled")
        self.assertEqual(jobfile.jobStatus(self._job("canceling", "queued")), "canceling")

    def test_encodeOneLine(self) -> None:
        """
        An encoded job is a single JSON line ending in a newline.
        """
        data = jobfile.encodeJob(self._job("queued"))
        self.assertEqual(data.count(b"\n"), 1)
        self.assertTrue(data.endswith(b"\n"))
        self.assertEqual(json.loads(data)["ops"][0]["status"], "queued")
