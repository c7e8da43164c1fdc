# -*- test-case-name: tests.ganeti.test_jobfile -*-
"""
Ganeti job-queue files (C{/var/lib/ganeti/queue/job-<id>}): parsing, and
writing them exactly as Ganeti 3.0 does.

A job file is one line of JSON (then a newline) written to a temporary file
and renamed into place on every change of the job. It carries the ops with
their own status, result, log and timestamps; there is no job-level status
(L{jobStatus} derives it as Ganeti does).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

Timestamp = tuple[int, int]

QUEUED = "queued"
WAITING = "waiting"
CANCELING = "canceling"
RUNNING = "running"
CANCELED = "canceled"
SUCCESS = "success"
ERROR = "error"

OP_STATUSES = frozenset({QUEUED, WAITING, CANCELING, RUNNING, CANCELED, SUCCESS, ERROR})
FINALIZED = frozenset({CANCELED, SUCCESS, ERROR})

JOB_FILE_RE = re.compile(r"^job-(\d+)$")


class JobFileError(ValueError):
    """
    A job file that cannot be understood; the message says why.
    """


def jobIdFromFileName(name: str) -> int | None:
    """
    The job id in a queue file name C{job-<digits>}, or None for any other
    name (temporary files, C{serial}, C{lock}, C{archive}).
    """
    match = JOB_FILE_RE.match(name)
    return int(match.group(1)) if match else None


def jobFileName(jobId: int) -> str:
    """
    The queue file name for a job id.
    """
    return f"job-{jobId}"


@attrs.frozen
class LogEntry:
    """
    One op log line: C{[serial, [sec, usec], type, message]}.
    """

    serial: int
    timestamp: Timestamp
    logType: str
    message: Any

    def toJSON(self) -> list[Any]:
        return [self.serial, list(self.timestamp), self.logType, self.message]


@attrs.frozen
class QueuedOp:
    """
    One opcode of a job as stored in the queue file.
    """

    input: Mapping[str, Any]
    status: str
    result: Any = None
    log: tuple[LogEntry, ...] = ()
    start_timestamp: Timestamp | None = None
    exec_timestamp: Timestamp | None = None
    end_timestamp: Timestamp | None = None
    priority: int = 0

    @property
    def opId(self) -> str:
        """
        The C{OP_ID} of the op's input (C{OP_INSTANCE_CREATE}, ...).
        """
        return str(self.input.get("OP_ID", ""))

    def lastLogMessage(self) -> Any:
        """
        The message of the last log line, or None when there is none.
        """
        return self.log[-1].message if self.log else None

    def toJSON(self) -> dict[str, Any]:
        return {
            "input": dict(self.input),
            "status": self.status,
            "result": self.result,
            "log": [entry.toJSON() for entry in self.log],
            "start_timestamp": _tsOut(self.start_timestamp),
            "exec_timestamp": _tsOut(self.exec_timestamp),
            "end_timestamp": _tsOut(self.end_timestamp),
            "priority": self.priority,
        }


@attrs.frozen
class QueuedJob:
    """
    A job as stored in the queue file.
    """

    id: int
    ops: tuple[QueuedOp, ...]
    received_timestamp: Timestamp | None = None
    start_timestamp: Timestamp | None = None
    end_timestamp: Timestamp | None = None
    livelock: str | None = None
    process_id: int | None = None

    def toJSON(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "ops": [op.toJSON() for op in self.ops],
            "start_timestamp": _tsOut(self.start_timestamp),
            "end_timestamp": _tsOut(self.end_timestamp),
            "received_timestamp": _tsOut(self.received_timestamp),
        }
        if self.livelock is not None:
            data["livelock"] = self.livelock
        if self.process_id is not None:
            data["process_id"] = self.process_id
        return data


def _tsOut(ts: Timestamp | None) -> list[int] | None:
    return None if ts is None else [ts[0], ts[1]]


def _timestamp(value: Any, where: str) -> Timestamp | None:
    if value is None:
        return None
    if (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return (value[0], value[1])
    raise JobFileError(f"{where}: timestamp {value!r} is not [seconds, microseconds]")


def _logEntry(value: Any, where: str) -> LogEntry:
    if not isinstance(value, list) or len(value) != 4:
        raise JobFileError(f"{where}: log entry {value!r} is not [serial, timestamp, type, message]")
    serial, ts, logType, message = value
    stamp = _timestamp(ts, where)
    if not isinstance(serial, int) or stamp is None:
        raise JobFileError(f"{where}: malformed log entry {value!r}")
    return LogEntry(serial, stamp, str(logType), message)


def _op(value: Any, where: str) -> QueuedOp:
    if not isinstance(value, dict):
        raise JobFileError(f"{where}: op is not an object")
    opInput = value.get("input")
    if not isinstance(opInput, dict):
        raise JobFileError(f"{where}: op has no input object")
    if not isinstance(opInput.get("OP_ID"), str):
        raise JobFileError(f"{where}: op input has no OP_ID")
    status = value.get("status")
    if status not in OP_STATUSES:
        raise JobFileError(f"{where}: unknown op status {status!r}")
    log = value.get("log") or []
    if not isinstance(log, list):
        raise JobFileError(f"{where}: log is not a list")
    return QueuedOp(
        input=opInput,
        status=status,
        result=value.get("result"),
        log=tuple(_logEntry(e, where) for e in log),
        start_timestamp=_timestamp(value.get("start_timestamp"), where),
        exec_timestamp=_timestamp(value.get("exec_timestamp"), where),
        end_timestamp=_timestamp(value.get("end_timestamp"), where),
        priority=int(value.get("priority") or 0),
    )


def parseJob(data: Any) -> QueuedJob:
    """
    Build a L{QueuedJob} from the decoded JSON of a job file.

    @raise JobFileError: when a required field is missing or malformed.
    """
    if not isinstance(data, dict):
        raise JobFileError("job file is not a JSON object")
    jobId = data.get("id")
    if isinstance(jobId, str) and jobId.isdigit():
        jobId = int(jobId)
    if not isinstance(jobId, int) or isinstance(jobId, bool):
        raise JobFileError(f"job id {jobId!r} is not an integer")
    ops = data.get("ops")
    if not isinstance(ops, list) or not ops:
        raise JobFileError(f"job {jobId}: no ops")
    where = f"job {jobId}"
    processId = data.get("process_id")
    return QueuedJob(
        id=jobId,
        ops=tuple(_op(op, f"{where} op {i}") for i, op in enumerate(ops)),
        received_timestamp=_timestamp(data.get("received_timestamp"), where),
        start_timestamp=_timestamp(data.get("start_timestamp"), where),
        end_timestamp=_timestamp(data.get("end_timestamp"), where),
        livelock=data.get("livelock") if isinstance(data.get("livelock"), str) else None,
        process_id=processId if isinstance(processId, int) else None,
    )


def parseJobFile(content: bytes) -> QueuedJob:
    """
    Parse the bytes of a job file.

    @raise JobFileError: empty, truncated or non-JSON content, or a
        malformed job.
    """
    if not content.strip():
        raise JobFileError("job file is empty")
    try:
        data = json.loads(content)
    except ValueError as e:
        raise JobFileError(f"job file is not valid JSON ({e})") from e
    return parseJob(data)


def encodeJob(job: QueuedJob) -> bytes:
    """
    Serialise a job the way Ganeti writes its queue files: one line of JSON
    in Ganeti's field order, then a newline.
    """
    return json.dumps(job.toJSON()).encode("utf-8") + b"\n"


def jobStatus(job: QueuedJob) -> str:
    """
    The job status Ganeti derives from its op statuses (C{_QueuedJob.CalcStatus}).
    """
    statuses = [op.status for op in job.ops]
    status = QUEUED
    allSuccess = True
    for s in statuses:
        if s == SUCCESS:
            continue
        allSuccess = False
        if s == QUEUED:
            pass
        elif s in (WAITING, RUNNING):
            status = s
        elif s == ERROR:
            return ERROR
        elif s == CANCELING:
            return CANCELING
        elif s == CANCELED:
            return CANCELED
    return SUCCESS if allSuccess else status
