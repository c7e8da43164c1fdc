# -*- test-case-name: tests.ganeti.test_sim_queue -*-
"""
The simulated job queue: runs ops asynchronously on the injected clock,
with per-object locks, job dependencies, cancellation and failure
injection, and writes every change of a job to C{<queue_dir>/job-<id>} the
way Ganeti does (one JSON line to a temporary file, then a rename).
"""

from __future__ import annotations

import os
import random
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.filepath import FilePath

from synnefo_twisted.ganeti import jobfile
from synnefo_twisted.ganeti.jobfile import LogEntry, QueuedJob, QueuedOp, Timestamp
from synnefo_twisted.ganeti.sim.model import OpError, SimCluster

log = Logger()

#: Summary field per op kind, as Ganeti's OP_DSC_FIELD.
_SUMMARY_FIELD = ("instance_name", "network_name", "name", "group_name")

_CREATE_LOG = ("* creating instance disks...", "adding instance {name} to cluster config", "* starting instance...")


def _stamp(t: float) -> Timestamp:
    sec = int(t)
    return (sec, min(int((t - sec) * 1_000_000), 999_999))


@attrs.define
class SimOp:
    input: dict[str, Any]
    status: str = jobfile.QUEUED
    result: Any = None
    log: list[LogEntry] = attrs.field(factory=list)
    start: Timestamp | None = None
    exec: Timestamp | None = None
    end: Timestamp | None = None

    @property
    def opId(self) -> str:
        return str(self.input.get("OP_ID"))

    def toQueued(self) -> QueuedOp:
        return QueuedOp(self.input, self.status, self.result, tuple(self.log), self.start, self.exec, self.end, 0)


@attrs.define
class SimJob:
    id: int
    ops: list[SimOp]
    received: Timestamp
    start: Timestamp | None = None
    end: Timestamp | None = None
    current: int = 0
    logSerial: int = 0
    timer: IDelayedCall | None = None
    locks: tuple[str, ...] = ()

    def toQueued(self) -> QueuedJob:
        return QueuedJob(
            self.id,
            tuple(op.toQueued() for op in self.ops),
            received_timestamp=self.received,
            start_timestamp=self.start,
            end_timestamp=self.end,
            livelock=f"/var/run/ganeti/livelocks/job_{self.id:06d}_{self.received[0]}",
            process_id=os.getpid(),
        )

    def status(self) -> str:
        return jobfile.jobStatus(self.toQueued())

    def finalized(self) -> bool:
        return all(op.status in jobfile.FINALIZED for op in self.ops)

    def toRapi(self) -> dict[str, Any]:
        """
        The RAPI C{GET /2/jobs/<id>} record (Ganeti's J_FIELDS).
        """
        return {
            "id": self.id,
            "ops": [dict(op.input) for op in self.ops],
            "status": self.status(),
            "summary": [summary(op.input) for op in self.ops],
            "opstatus": [op.status for op in self.ops],
            "received_ts": list(self.received),
            "start_ts": list(self.start) if self.start else None,
            "end_ts": list(self.end) if self.end else None,
            "oplog": [[e.toJSON() for e in op.log] for op in self.ops],
            "opresult": [op.result for op in self.ops],
        }


def summary(opInput: Mapping[str, Any]) -> str:
    """
    Ganeti's op summary, e.g. C{INSTANCE_STARTUP(snf-1)}.
    """
    name = str(opInput.get("OP_ID", "OP_UNKNOWN"))[3:]
    for field in _SUMMARY_FIELD:
        value = opInput.get(field)
        if isinstance(value, str) and value:
            return f"{name}({value})"
    return name


@attrs.define
class FailureRule:
    """
    Make the next C{count} ops C{opId} (on object C{target}, or any) fail.
    """

    opId: str
    target: str | None = None
    count: int = 1
    errorClass: str = "OpExecError"
    message: str = "Simulated failure"
    code: str | None = None


@attrs.define
class DelayRule:
    """
    Make the next C{count} ops C{opId} (on C{target}, or any) take
    C{seconds} longer.
    """

    opId: str
    seconds: float
    target: str | None = None
    count: int = 1


def _target(opInput: Mapping[str, Any]) -> str | None:
    for field in ("instance_name", "network_name", "name"):
        value = opInput.get(field)
        if isinstance(value, str):
            return value
    return None


def _lockKeys(opInput: Mapping[str, Any]) -> tuple[str, ...]:
    opId = str(opInput.get("OP_ID"))
    if opId.startswith("OP_INSTANCE_") and isinstance(opInput.get("instance_name"), str):
        return ("instance:" + opInput["instance_name"],)
    if opId.startswith("OP_NETWORK_"):
        return ("network:" + str(opInput.get("network_name")),)
    if opId.startswith("OP_TAGS_"):
        return (f"{opInput.get('kind')}:{opInput.get('name')}",)
    if opId.startswith("OP_CLUSTER_"):
        return ("cluster",)
    return ()


class JobQueue:
    """
    Runs submitted jobs against a L{SimCluster}.

    @param durations: seconds each op runs, by C{OP_ID}; others take
        C{defaultDuration}.
    @param errorRates: probability (0..1) that an op of a kind fails.
    @param maxRunning: jobs that may be past C{queued} at once (Ganeti's
        C{max_running_jobs}).
    @param onApplied: called with each op input after it succeeded.
    """

    def __init__(
        self,
        clock: IReactorTime,
        cluster: SimCluster,
        queueDir: FilePath[str] | None = None,
        durations: Mapping[str, float] | None = None,
        defaultDuration: float = 0.1,
        errorRates: Mapping[str, float] | None = None,
        rng: random.Random | None = None,
        maxRunning: int = 20,
        onApplied: Callable[[Mapping[str, Any]], None] | None = None,
        firstJobId: int = 1,
    ) -> None:
        self._clock = clock
        self.cluster = cluster
        self.queueDir = queueDir
        self.durations = dict(durations or {})
        self.defaultDuration = defaultDuration
        self.errorRates = dict(errorRates or {})
        self._rng = rng or random.Random(0)
        self.maxRunning = maxRunning
        self.onApplied = onApplied
        self.failures: list[FailureRule] = []
        self.delays: list[DelayRule] = []
        self.jobs: dict[int, SimJob] = {}
        self._nextId = firstJobId
        self._pending: deque[int] = deque()
        self._active: set[int] = set()
        self._locks: dict[str, int] = {}
        self._wakeup: IDelayedCall | None = None
        self.stopped = False
        if queueDir is not None:
            queueDir.makedirs(ignoreExistingDirectory=True)

    # ------------------------------------------------------------ API

    def submit(self, opInputs: Sequence[Mapping[str, Any]], source: str = "gnt:library:rlib2") -> int:
        """
        Queue a job of one or more ops; returns its id at once.
        """
        jobId = self._nextId
        self._nextId += 1
        now = self._clock.seconds()
        ns = int(now * 1e9)
        ops = []
        for index, raw in enumerate(opInputs):
            opInput = {k: v for k, v in raw.items() if k != "OP_ID"}
            opInput.setdefault("dry_run", False)
            opInput.setdefault("debug_level", 0)
            opInput.setdefault("priority", 0)
            opInput.setdefault("depends", None)
            opInput.setdefault("comment", None)
            opId = str(raw["OP_ID"])
            opInput["reason"] = [
                [source, "", ns],
                [f"gnt:opcode:{opId[3:].lower()}", f"job={jobId};index={index}", ns],
            ]
            opInput["OP_ID"] = opId
            ops.append(SimOp(opInput))
        job = SimJob(jobId, ops, _stamp(now))
        self.jobs[jobId] = job
        self._pending.append(jobId)
        self._write(job)
        self._schedule()
        return jobId

    def cancel(self, jobId: int) -> list[Any]:
        """
        Cancel a job that has not started running: C{[cancelled, message]}.
        """
        job = self.jobs.get(jobId)
        if job is None or job.finalized():
            return [False, f"Job {jobId} not found in queue"]
        if any(op.status in (jobfile.RUNNING, jobfile.SUCCESS, jobfile.ERROR) for op in job.ops):
            return [False, f"Job {jobId} is no longer waiting in the queue"]
        now = _stamp(self._clock.seconds())
        for op in job.ops:
            op.status = jobfile.CANCELED
            op.result = ["OpExecError", ["Job canceled by request"]]
            op.end = now
        job.end = now
        if job.timer is not None and job.timer.active():
            job.timer.cancel()
        job.timer = None
        self._finish(job)
        return [True, f"Job {jobId} canceled"]

    def stop(self) -> None:
        """
        Cancel every timer (jobs stay as they are, like a stopped master).
        """
        self.stopped = True
        for job in self.jobs.values():
            if job.timer is not None and job.timer.active():
                job.timer.cancel()
            job.timer = None
        if self._wakeup is not None and self._wakeup.active():
            self._wakeup.cancel()
        self._wakeup = None

    def abandon(self, reason: str = "Unclean master daemon shutdown") -> int:
        """
        End every unfinished job in error, as Ganeti does for jobs a master
        restart interrupted (the state of the cluster is left as it is).
        Returns how many jobs were ended.
        """
        now = _stamp(self._clock.seconds())
        ended = 0
        for job in self.jobs.values():
            if job.finalized():
                continue
            for op in job.ops:
                if op.status not in jobfile.FINALIZED:
                    op.status = jobfile.ERROR
                    op.result = ["OpExecError", [reason]]
                    op.end = now
            job.end = now
            if job.timer is not None and job.timer.active():
                job.timer.cancel()
            job.timer = None
            self._write(job)
            ended += 1
        self._pending.clear()
        self._active.clear()
        self._locks.clear()
        return ended

    def archive(self, olderThan: float) -> int:
        """
        Move the files of jobs finished before C{olderThan} (clock seconds)
        to C{archive/<id // 10000>/} as Ganeti's archiving does, and forget
        them. Returns how many.
        """
        moved = 0
        for jobId in [j for j, job in self.jobs.items() if job.finalized() and job.end and job.end[0] < olderThan]:
            del self.jobs[jobId]
            moved += 1
            if self.queueDir is None:
                continue
            target = self.queueDir.child("archive").child(str(jobId // 10000))
            target.makedirs(ignoreExistingDirectory=True)
            name = jobfile.jobFileName(jobId)
            try:
                os.rename(os.path.join(self.queueDir.path, name), os.path.join(target.path, name))
            except FileNotFoundError:
                pass
        return moved

    def failNext(self, rule: FailureRule) -> None:
        """
        Force failures (see L{FailureRule}).
        """
        self.failures.append(rule)

    def delayNext(self, rule: DelayRule) -> None:
        """
        Slow jobs down (see L{DelayRule}).
        """
        self.delays.append(rule)

    # -------------------------------------------------------- engine

    def _schedule(self) -> None:
        if self.stopped or (self._wakeup is not None and self._wakeup.active()):
            return
        self._wakeup = self._clock.callLater(0, self._pump)

    def _pump(self) -> None:
        self._wakeup = None
        # As Ganeti 3.0's scheduler: a job whose dependencies are not
        # finished stays queued (no start time) until they are.
        blocked: deque[int] = deque()
        while self._pending and len(self._active) < self.maxRunning:
            jobId = self._pending.popleft()
            job = self.jobs[jobId]
            if job.finalized():
                continue
            if self._dependency(job.ops[job.current], job) == "wait":
                blocked.append(jobId)
                continue
            self._active.add(jobId)
            job.start = _stamp(self._clock.seconds())
            self._advance(job)
        blocked.extend(self._pending)
        self._pending = blocked
        # jobs waiting on locks or dependencies
        for jobId in sorted(self._active):
            job = self.jobs[jobId]
            if job.timer is None and not job.finalized():
                self._advance(job)

    def _dependency(self, op: SimOp, job: SimJob) -> str | None:
        """
        None when the op's dependencies allow it to run, C{"wait"} while
        they are pending, or an error message when one ended wrongly.
        An empty status list accepts any final status (Ganeti's
        semantics: wait for the job to finish, whatever its outcome).
        """
        for dep in op.input.get("depends") or []:
            depId, statuses = int(dep[0]), list(dep[1])
            if depId < 0:
                depId = job.id + depId
            other = self.jobs.get(depId)
            if other is None:
                continue
            if not other.finalized():
                return "wait"
            status = other.status()
            if statuses and status not in statuses:
                return f"Job dependency {depId} finished with status '{status}', not one of '{', '.join(statuses)}'"
        return None

    def _advance(self, job: SimJob) -> None:
        """
        Move the job's current op forward as far as it can go now.
        """
        if self.stopped:
            return
        op = job.ops[job.current]
        now = self._clock.seconds()
        if op.status == jobfile.QUEUED:
            op.status = jobfile.WAITING
            op.start = _stamp(now)
            self._write(job)
        dep = self._dependency(op, job)
        if dep == "wait":
            return
        if dep is not None:
            self._endOp(job, op, error=OpError("OpExecError", dep))
            return
        keys = _lockKeys(op.input)
        if any(self._locks.get(k, job.id) != job.id for k in keys):
            return
        for k in keys:
            self._locks[k] = job.id
        job.locks = keys
        op.status = jobfile.RUNNING
        op.exec = _stamp(now)
        try:
            self.cluster.check(op.input)
        except OpError as e:
            self._endOp(job, op, error=e)
            return
        self._write(job)
        duration = self._duration(op)
        job.timer = self._clock.callLater(duration, self._execute, job)

    def _duration(self, op: SimOp) -> float:
        duration = self.durations.get(op.opId, self.defaultDuration)
        target = _target(op.input)
        for rule in list(self.delays):
            if rule.opId == op.opId and rule.target in (None, target):
                duration += rule.seconds
                rule.count -= 1
                if rule.count <= 0:
                    self.delays.remove(rule)
                break
        return duration

    def _injected(self, op: SimOp) -> OpError | None:
        target = _target(op.input)
        for rule in list(self.failures):
            if rule.opId == op.opId and rule.target in (None, target):
                rule.count -= 1
                if rule.count <= 0:
                    self.failures.remove(rule)
                return OpError(rule.errorClass, rule.message, rule.code)
        rate = self.errorRates.get(op.opId, 0.0)
        if rate and self._rng.random() < rate:
            return OpError("OpExecError", f"Simulated random failure of {op.opId}")
        return None

    def _execute(self, job: SimJob) -> None:
        job.timer = None
        op = job.ops[job.current]
        error = self._injected(op)
        if error is None:
            if op.opId == "OP_INSTANCE_CREATE" and not op.input.get("dry_run"):
                for line in _CREATE_LOG:
                    self._log(job, op, line.format(name=op.input.get("instance_name")))
            try:
                op.result = self.cluster.apply(op.input, self._clock.seconds())
            except OpError as e:
                error = e
        self._endOp(job, op, error=error)
        if error is None and self.onApplied is not None and not op.input.get("dry_run"):
            try:
                self.onApplied(op.input)
            except Exception:
                log.failure("simulated cluster: change listener failed for {op}", op=op.opId)

    def _log(self, job: SimJob, op: SimOp, message: str) -> None:
        job.logSerial += 1
        op.log.append(LogEntry(job.logSerial, _stamp(self._clock.seconds()), "message", message))

    def _endOp(self, job: SimJob, op: SimOp, error: OpError | None) -> None:
        now = _stamp(self._clock.seconds())
        op.end = now
        if error is not None:
            op.status = jobfile.ERROR
            op.result = error.result()
            for later in job.ops[job.current + 1 :]:
                later.status = jobfile.ERROR
                later.result = ["OpExecError", ["Preceding opcode failed"]]
        else:
            op.status = jobfile.SUCCESS
        for k in job.locks:
            if self._locks.get(k) == job.id:
                del self._locks[k]
        job.locks = ()
        if error is None and job.current + 1 < len(job.ops):
            job.current += 1
            self._write(job)
            self._advance(job)
            return
        job.end = now
        self._finish(job)

    def _finish(self, job: SimJob) -> None:
        self._write(job)
        self._active.discard(job.id)
        self._schedule()

    # ---------------------------------------------------------- files

    def _write(self, job: SimJob) -> None:
        if self.queueDir is None:
            return
        data = jobfile.encodeJob(job.toQueued())
        final = os.path.join(self.queueDir.path, jobfile.jobFileName(job.id))
        temporary = os.path.join(self.queueDir.path, f".{jobfile.jobFileName(job.id)}.tmp")
        with open(temporary, "wb") as f:
            f.write(data)
        os.rename(temporary, final)
