# -*- test-case-name: tests.logic.test_dispatch -*-
"""
The dispatcher's state machine (spec §2.5), pure and synchronous: it
decodes the messages the watcher and snf-progress-monitor publish and,
given the current models, decides what changes. The transactional shell
that reads and writes the rows is L{synnefo_twisted.logic.dispatchapply}.

Order and repetition do not matter. Every part of a server's state that
messages write is a last-writer-wins register stamped with the
C{event_time} of the message that wrote it (migration C{0005_dispatch}):

 - the job fields (C{backendjobid}, status, opcode, log message):
   C{jobtime}, written by every message;
 - C{operstate} (and C{deleted}): C{statetime}, written by the final
   statuses that decide a state (spec §2.5 C{OPER_STATE_FROM_OPCODE}, a
   failed create, a remove);
 - the flavor: C{flavortime}, written by successful jobs with beparams;
 - NICs, disks and hvparams: C{detailstime}, written by messages that
   carry them (and by a failed create, which marks the NICs ERROR).

A message older than (or as old as) a register's stamp leaves that
register alone, so a redelivered or stale message changes nothing, and any
interleaving of the messages of a set of jobs ends in the state in-order
delivery gives. This generalises the original's single C{event_time <=
backendtime} guard, under which a late "running" could undo a newer
error. C{backendtime} keeps its original meaning: the time of the latest
success or terminal job (it only moves forward).

Quota: the final status of the server's pending task's job (C{task_job_id},
or, before the API recorded the job id, a real job (not the reconciler's
job 0) whose opcode is the task's)
accepts (success) or rejects (error, canceled) the task's commission
(C{serial_id}) and clears the task.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import attrs

from synnefo_twisted.db.models import BackendNetwork, Port, Server, Volume
from synnefo_twisted.ganeti import naming
from synnefo_twisted.logic.networks import backendNetworkOperstate

QUEUED = "queued"
WAITING = "waiting"
CANCELING = "canceling"
RUNNING = "running"
CANCELED = "canceled"
SUCCESS = "success"
ERROR = "error"
JOB_STATUSES = frozenset({QUEUED, WAITING, CANCELING, RUNNING, CANCELED, SUCCESS, ERROR})
FINALIZED = frozenset({CANCELED, SUCCESS, ERROR})

#: spec §2.5 OPER_STATE_FROM_OPCODE (successful jobs)
OPER_STATE_FROM_OPCODE: Mapping[str, str] = {
    "OP_INSTANCE_CREATE": "STARTED",
    "OP_INSTANCE_REMOVE": "DESTROYED",
    "OP_INSTANCE_STARTUP": "STARTED",
    "OP_INSTANCE_SHUTDOWN": "STOPPED",
    "OP_INSTANCE_REBOOT": "STARTED",
}

#: The server task (set by the API when it submits the job) each opcode ends.
TASK_OF_OPCODE: Mapping[str, str] = {
    "OP_INSTANCE_CREATE": "BUILD",
    "OP_INSTANCE_STARTUP": "START",
    "OP_INSTANCE_SHUTDOWN": "STOP",
    "OP_INSTANCE_REBOOT": "REBOOT",
    "OP_INSTANCE_SET_PARAMS": "RESIZE",
    "OP_INSTANCE_REMOVE": "DESTROY",
}

KINDS = ("op", "network", "progress", "cluster")

#: How Ganeti says an instance it was asked to remove does not exist.
_INSTANCE_GONE = re.compile(r"not known|does not exist|unknown instance", re.IGNORECASE)

_PROGRESS_TYPES = frozenset({"image-copy-progress", "image-info", "image-warning", "image-error", "image-helper"})
_DIAGNOSTIC_LEVELS: Mapping[str, str] = {"image-info": "INFO", "image-warning": "WARNING", "image-error": "ERROR"}
_HELPER_LEVELS: Mapping[str, str] = {
    "task-start": "DEBUG",
    "task-end": "DEBUG",
    "warning": "WARNING",
    "error": "ERROR",
    "info": "INFO",
}


class MalformedMessage(Exception):
    """
    A message that can never be applied (not JSON, a missing or mistyped
    key, an unknown status); it is dead-lettered with C{reason}.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DispatchError(Exception):
    """
    A well-formed message that cannot be applied now (e.g. no flavor
    matches a job's beparams); the dispatcher retries it, then
    dead-letters it.
    """


# -- decoding ------------------------------------------------------------------------------------


def _require(body: Mapping[str, Any], key: str) -> Any:
    if key not in body:
        raise MalformedMessage(f"missing key {key!r}")
    return body[key]


def _str(body: Mapping[str, Any], key: str, *, optional: bool = False) -> str | None:
    value = body.get(key) if optional else _require(body, key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise MalformedMessage(f"{key!r} must be a non-empty string, not {value!r}")
    return value


def _int(body: Mapping[str, Any], key: str) -> int:
    value = _require(body, key)
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.isdigit():
            return int(value)
        raise MalformedMessage(f"{key!r} must be an integer, not {value!r}")
    return value


def parseEventTime(value: object) -> datetime:
    """
    C{event_time} (C{[seconds, microseconds]}) as an aware UTC datetime.

    @raise MalformedMessage: not a pair of non-negative integers.
    """
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    ):
        raise MalformedMessage(f"'event_time' must be [seconds, microseconds], not {value!r}")
    seconds, micros = value
    try:
        return datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=micros)
    except (OverflowError, OSError, ValueError):
        raise MalformedMessage(f"'event_time' out of range: {value!r}") from None


def toEventTime(moment: datetime) -> list[int]:
    """
    The C{event_time} of a message for C{moment} (the inverse of
    L{parseEventTime}).
    """
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return [delta.days * 86400 + delta.seconds, delta.microseconds]


def _status(body: Mapping[str, Any]) -> str:
    status = _str(body, "status")
    assert status is not None
    if status == "cancelled":
        status = CANCELED
    if status not in JOB_STATUSES:
        raise MalformedMessage(f"unknown job status {status!r}")
    return status


def _mapping(body: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise MalformedMessage(f"{key!r} must be an object, not {type(value).__name__}")
    return value


def _objects(body: Mapping[str, Any], key: str) -> tuple[Mapping[str, Any], ...] | None:
    if key not in body or body[key] is None:
        return None
    value = body[key]
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise MalformedMessage(f"{key!r} must be a list of objects")
    return tuple(value)


def _type(body: Mapping[str, Any], expected: str) -> None:
    kind = body.get("type", expected)
    if kind != expected:
        raise MalformedMessage(f"message type {kind!r} on the queue of {expected!r} messages")


def _checkBody(body: object) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise MalformedMessage(f"the body must be a JSON object, not {type(body).__name__}")
    return body


def _idOf(name: str, parse: Any, prefix: str) -> int | None:
    try:
        ident: int = parse(name, prefix)
    except ValueError:
        return None
    return ident


@attrs.frozen
class OpMessage:
    """
    A decoded C{ganeti-op-status} message; C{serverId} is None for an
    instance that is not ours (another prefix).
    """

    instance: str
    serverId: int | None
    operation: str
    status: str
    jobId: int
    eventTime: datetime
    logmsg: str | None
    jobFields: Mapping[str, Any]
    result: Any
    nics: tuple[Mapping[str, Any], ...] | None
    disks: tuple[Mapping[str, Any], ...] | None
    hvparams: Mapping[str, Any] | None
    tags: tuple[str, ...] | None
    cluster: str | None

    @property
    def final(self) -> bool:
        return self.status in FINALIZED


def parseOpMessage(body: object, prefix: str = naming.DEFAULT_PREFIX) -> OpMessage:
    """
    Decode a C{ganeti-op-status} message (spec §2.3).

    @raise MalformedMessage: a key is missing or mistyped, the status is unknown.
    """
    body = _checkBody(body)
    _type(body, "ganeti-op-status")
    instance = _str(body, "instance")
    operation = _str(body, "operation")
    assert instance is not None and operation is not None
    status = _status(body)
    jobId = _int(body, "jobId")
    eventTime = parseEventTime(_require(body, "event_time"))
    logmsg = body.get("logmsg")
    if logmsg is not None and not isinstance(logmsg, str):
        logmsg = str(logmsg)
    hvparams = body.get("instance_hvparams")
    if hvparams is not None and not isinstance(hvparams, Mapping):
        raise MalformedMessage("'instance_hvparams' must be an object")
    tags = body.get("tags")
    if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
        raise MalformedMessage("'tags' must be a list of strings")
    cluster = body.get("cluster")
    return OpMessage(
        instance=instance,
        serverId=_idOf(instance, naming.idFromInstanceName, prefix),
        operation=operation,
        status=status,
        jobId=jobId,
        eventTime=eventTime,
        logmsg=logmsg,
        jobFields=_mapping(body, "job_fields"),
        result=body.get("result"),
        nics=_objects(body, "instance_nics"),
        disks=_objects(body, "instance_disks"),
        hvparams=hvparams,
        tags=None if tags is None else tuple(tags),
        cluster=cluster if isinstance(cluster, str) else None,
    )


# -- op status -----------------------------------------------------------------------------------


def _after(moment: datetime, stamp: datetime | None) -> bool:
    return stamp is None or moment > stamp


def beparamsSpec(message: OpMessage) -> tuple[int, int] | None:
    """
    C{(vcpus, ram MiB)} of a successful job's beparams (C{maxmem}, or
    the older C{memory}), when it sets them; the shell looks up the flavor
    with that cpu and ram and the server's disk and volume type.
    """
    if message.status != SUCCESS:
        return None
    beparams = message.jobFields.get("beparams")
    if not isinstance(beparams, Mapping):
        return None
    vcpus = beparams.get("vcpus")
    ram = beparams.get("maxmem", beparams.get("memory"))
    if not isinstance(vcpus, int) and not isinstance(ram, int):
        return None
    return (vcpus if isinstance(vcpus, int) else -1, ram if isinstance(ram, int) else -1)


def decodeTag(tag: str) -> str:
    """
    A user tag from its Ganeti form (the inverse of
    L{synnefo_twisted.logic.servers.encodeTag}).
    """
    return unquote(tag.replace("*", "_").replace("/", "%"))


@attrs.frozen
class OpDecision:
    """
    What an op-status message changes.

    @ivar fields: the server columns to write.
    @ivar commission: the commission to resolve (accept when C{accept}).
    @ivar remove: the server is gone: release its IPs (detach floating
        ones), delete its ports, mark its volumes deleted.
    @ivar createFailed: mark its volumes ERROR, delete its tags.
    @ivar portsError: mark its ports ERROR (the create failed).
    @ivar activateTags: the create succeeded: its tags become ACTIVE (even
        when nothing else changes: a newer message may have come first).
    @ivar nics, disks: Ganeti's NICs / disks to sync (L{planNics}, L{planDisks}).
    @ivar addTags, deleteTags: user tags a tags job set or deleted.
    """

    applied: bool
    reason: str
    fields: Mapping[str, object] = attrs.field(factory=dict)
    commission: int | None = None
    accept: bool = False
    remove: bool = False
    createFailed: bool = False
    portsError: bool = False
    activateTags: bool = False
    nics: tuple[Mapping[str, Any], ...] | None = None
    disks: tuple[Mapping[str, Any], ...] | None = None
    addTags: tuple[str, ...] = ()
    deleteTags: tuple[str, ...] = ()


def _rescue(hvparams: Mapping[str, Any]) -> tuple[bool, str | None]:
    bootOrder = hvparams.get("boot_order")
    image = hvparams.get("cdrom_image_path")
    rescue = isinstance(bootOrder, str) and bootOrder.startswith("cdrom") and bool(image)
    return rescue, (image if rescue and isinstance(image, str) else None)


def _instanceGone(message: OpMessage) -> bool:
    text = " ".join(str(x) for x in (message.logmsg, message.result) if x is not None)
    return bool(_INSTANCE_GONE.search(text))


def onlyJobFields(message: OpMessage) -> bool:
    """
    Whether C{message} can change nothing but the job fields (a status that
    is not final, or a snapshot): then L{decideOp} writes L{jobFields}
    exactly when the server is not deleted and the message is newer than
    C{jobtime}, which the shell does in one conditional UPDATE.
    """
    return not message.final or message.operation == "OP_INSTANCE_SNAPSHOT"


def jobFields(message: OpMessage) -> dict[str, object]:
    """
    The job fields (register C{jobtime}) C{message} writes.
    """
    return {
        "backendjobid": message.jobId,
        "backendjobstatus": message.status,
        "backendopcode": message.operation,
        "backendlogmsg": message.logmsg,
        "jobtime": message.eventTime,
    }


#: Opcodes whose final status may need more than the server row (NICs,
#: volumes, tags, flavor, IPs): never on the single-statement path.
_ROW_ONLY_EXCLUDED = frozenset(
    {"OP_INSTANCE_CREATE", "OP_INSTANCE_REMOVE", "OP_INSTANCE_SET_PARAMS", "OP_TAGS_SET", "OP_TAGS_DEL"}
)


@attrs.frozen
class RowUpdate:
    """
    What a message writes when it touches only the server row and no task
    of the server is concerned: the shell applies it as one conditional
    UPDATE whose register tests are those of L{decideOp}.

    @ivar jobFields: written when newer than C{jobtime}.
    @ivar backendtime: the message moves C{backendtime} (a success).
    @ivar operstate: written with C{statetime} when newer than it (or None).
    @ivar final: the task guard applies (a final status resolves the task
        whose job this is: such servers take the full path).
    """

    serverId: int
    eventTime: datetime
    jobId: int
    jobFields: Mapping[str, object]
    backendtime: bool
    operstate: str | None
    final: bool


def rowUpdate(message: OpMessage) -> RowUpdate | None:
    """
    The L{RowUpdate} of C{message}, or None when it needs the full path
    (L{decideOp} with the rows it reads): a create, remove, resize or tags
    job's end, or a message with NICs, disks, hvparams or beparams.
    """
    if message.serverId is None:
        return None
    if not onlyJobFields(message):
        if message.operation in _ROW_ONLY_EXCLUDED:
            return None
        if message.nics is not None or message.disks is not None or message.hvparams is not None:
            return None
        if beparamsSpec(message) is not None:
            return None
    success = message.final and message.status == SUCCESS and not onlyJobFields(message)
    return RowUpdate(
        serverId=message.serverId,
        eventTime=message.eventTime,
        jobId=message.jobId,
        jobFields=jobFields(message),
        backendtime=success,
        operstate=OPER_STATE_FROM_OPCODE.get(message.operation) if success else None,
        final=message.final and not onlyJobFields(message),
    )


def decideOp(server: Server, message: OpMessage, flavorId: int | None = None) -> OpDecision:
    """
    What C{message} changes on C{server} (spec §2.5 C{process_op_status}).

    @param flavorId: the flavor matching L{beparamsSpec}, looked up by the
        shell (None when the message sets no beparams).
    """
    t = message.eventTime
    if server.deleted and (server.statetime is None or t > server.statetime):
        # Nothing happens to an instance after its removal; older messages
        # still go through the registers (each keeps its newest value).
        return OpDecision(False, "deleted")
    op = message.operation
    status = message.status
    fields: dict[str, object] = {}
    if _after(t, server.jobtime):
        fields.update(jobFields(message))
    if onlyJobFields(message):
        return OpDecision(bool(fields), "applied" if fields else "stale", fields)

    success = status == SUCCESS
    remove = op == "OP_INSTANCE_REMOVE" and (success or (status == ERROR and _instanceGone(message)))
    createFailed = op == "OP_INSTANCE_CREATE" and status in (ERROR, CANCELED)
    newState: str | None
    if remove:
        newState = "DESTROYED"
    elif createFailed:
        newState = "ERROR"
    elif success:
        newState = OPER_STATE_FROM_OPCODE.get(op)
    else:
        newState = None
    if success or remove or createFailed:
        if server.backendtime is None or t > server.backendtime:
            fields["backendtime"] = t
    stateWritten = newState is not None and _after(t, server.statetime)
    if stateWritten:
        fields.update(operstate=newState, statetime=t)
        if remove:
            # rescue is left to the details register: a deleted server's
            # rescue flag means nothing, and resetting it here would let
            # the delivery order decide its final value.
            fields["deleted"] = True
    if success and flavorId is not None and _after(t, server.flavortime):
        if flavorId != server.flavor_id:
            fields["flavor_id"] = flavorId
        fields["flavortime"] = t
    nics = disks = None
    portsError = False
    hasDetails = message.nics is not None or message.disks is not None or message.hvparams is not None
    if (hasDetails or (createFailed and stateWritten)) and _after(t, server.detailstime):
        fields["detailstime"] = t
        portsError = createFailed and stateWritten
        nics, disks = message.nics, message.disks
        if message.hvparams is not None:
            rescue, image = _rescue(message.hvparams)
            fields.update(rescue=rescue, rescue_image=image)
    addTags: tuple[str, ...] = ()
    deleteTags: tuple[str, ...] = ()
    if success and op in ("OP_TAGS_SET", "OP_TAGS_DEL") and not message.jobFields.get("dry_run"):
        userTags = tuple(sorted({decodeTag(t) for t in message.tags or () if not t.startswith("synnefo:")}))
        if op == "OP_TAGS_SET":
            addTags = userTags
        else:
            deleteTags = userTags
    commission: int | None = None
    accept = False
    # The task's job settles the task; so does the server's removal by an
    # earlier REMOVE job while a retried destroy's job is the task's (that
    # job then fails on the missing instance, after the server is deleted).
    removedUnderDestroy = remove and stateWritten and server.task == "DESTROY" and message.jobId != 0
    if server.task is not None and (
        server.task_job_id == message.jobId
        or (server.task_job_id is None and message.jobId != 0 and TASK_OF_OPCODE.get(op) == server.task)
        or removedUnderDestroy
    ):
        commission = server.serial_id
        accept = success or remove
        fields.update(task=None, task_job_id=None, action=None)
    changed = bool(fields) or bool(addTags) or bool(deleteTags)
    return OpDecision(
        applied=changed,
        reason="applied" if changed else "stale",
        fields=fields,
        commission=commission,
        accept=accept,
        remove=remove and stateWritten,
        createFailed=createFailed and stateWritten,
        portsError=portsError,
        activateTags=op == "OP_INSTANCE_CREATE" and success,
        nics=nics,
        disks=disks,
        addTags=addTags,
        deleteTags=deleteTags,
    )


# -- NICs and disks --------------------------------------------------------------------------------


@attrs.frozen
class NicPlan:
    """
    How a server's ports follow Ganeti's NICs (spec §2.5 C{update_vm_nics}).

    @ivar updates: C{(port id, columns)} for ports Ganeti has.
    @ivar delete: ports of the server Ganeti did not have at the message's
        time although they existed C{grace} seconds before it (a newer port
        may be waiting for its attach job).
    @ivar unknown: names of Ganeti NICs that match no port of the server.
    """

    updates: tuple[tuple[int, Mapping[str, object]], ...]
    delete: tuple[int, ...]
    unknown: tuple[str, ...]


#: Seconds a new port may be missing from Ganeti (its attach job pending)
#: before a message without it deletes it (the original's 60 s).
NIC_GRACE = 60.0

_FIREWALL = {"ENABLED": "ENABLED", "DISABLED": "DISABLED", "PROTECTED": "PROTECTED"}


def planNics(
    ports: Sequence[Port],
    nics: Sequence[Mapping[str, Any]],
    eventTime: datetime,
    prefix: str = naming.DEFAULT_PREFIX,
    grace: float = NIC_GRACE,
) -> NicPlan:
    """
    Match Ganeti's NICs (as they were at C{eventTime}) to the server's
    ports by name (C{snf-nic-<id>}).
    """
    byId = {p.id: p for p in ports}
    seen: set[int] = set()
    updates: list[tuple[int, Mapping[str, object]]] = []
    unknown: list[str] = []
    for index, nic in enumerate(nics):
        name = nic.get("name")
        portId = _idOf(name, naming.idFromNicName, prefix) if isinstance(name, str) else None
        port = byId.get(portId) if portId is not None else None
        if port is None:
            unknown.append(str(name))
            continue
        seen.add(port.id)
        wanted: dict[str, object] = {"state": "ACTIVE", "idx": index}
        mac = nic.get("mac")
        if isinstance(mac, str) and mac:
            wanted["mac"] = mac.lower()
        firewall = nic.get("firewall")
        # No profile tag in Ganeti: no profile.
        wanted["firewall_profile"] = _FIREWALL.get(firewall.upper()) if isinstance(firewall, str) else None
        change = {k: v for k, v in wanted.items() if getattr(port, k) != v}
        if change:
            updates.append((port.id, change))
    cutoff = eventTime - timedelta(seconds=grace)
    delete = tuple(p.id for p in ports if p.id not in seen and p.created < cutoff)
    return NicPlan(tuple(updates), delete, tuple(unknown))


def planDisks(
    volumes: Sequence[Volume], disks: Sequence[Mapping[str, Any]], prefix: str = naming.DEFAULT_PREFIX
) -> tuple[tuple[int, Mapping[str, object]], ...]:
    """
    C{(volume id, columns)} for the server's volumes Ganeti reports
    (C{snf-vol-<id>}, size in MiB): IN_USE (unless deleted), at their
    index, with their size in GiB.
    """
    byName = {naming.volumeName(v.id, prefix): v for v in volumes}
    updates: list[tuple[int, Mapping[str, object]]] = []
    for index, disk in enumerate(disks):
        volume = byName.get(str(disk.get("name")))
        if volume is None:
            continue
        # A volume deleted (by a newer removal) keeps its status.
        wanted: dict[str, object] = {"idx": index} if volume.deleted else {"status": "IN_USE", "idx": index}
        size = disk.get("size")
        if isinstance(size, int) and size > 0:
            wanted["size"] = max(1, size >> 10)
        change = {k: v for k, v in wanted.items() if getattr(volume, k) != v}
        if change:
            updates.append((volume.id, change))
    return tuple(updates)


# -- build progress --------------------------------------------------------------------------------


@attrs.frozen
class ProgressMessage:
    """
    A decoded snf-progress-monitor message (spec §2.4).
    """

    instance: str
    serverId: int | None
    type: str
    eventTime: datetime
    progress: int | None
    source: str
    level: str | None
    message: str
    details: str | None


def _messages(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def parseProgressMessage(body: object, prefix: str = naming.DEFAULT_PREFIX) -> ProgressMessage:
    """
    Decode a build-progress message.

    @raise MalformedMessage: missing instance or event time, unknown type.
    """
    body = _checkBody(body)
    instance = _str(body, "instance")
    kind = _str(body, "type")
    assert instance is not None and kind is not None
    if kind not in _PROGRESS_TYPES:
        raise MalformedMessage(f"unknown progress message type {kind!r}")
    eventTime = parseEventTime(_require(body, "event_time"))
    progress: int | None = None
    source = kind
    level: str | None = None
    text = ""
    if kind == "image-copy-progress":
        raw = _require(body, "progress")
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise MalformedMessage(f"'progress' must be a number, not {raw!r}")
        if raw < 0:
            level, text = "ERROR", f"Image copy failed (progress {raw})"
        else:
            progress = min(100, int(raw))
    elif kind == "image-helper":
        subtype = body.get("subtype")
        if not isinstance(subtype, str) or subtype not in _HELPER_LEVELS:
            raise MalformedMessage(f"unknown image-helper subtype {subtype!r}")
        level = _HELPER_LEVELS[subtype]
        if subtype in ("task-start", "task-end"):
            source = f"image-helper-{subtype}"
            text = _messages(body.get("task"))
        else:
            text = _messages(body.get("messages"))
    else:
        level = _DIAGNOSTIC_LEVELS[kind]
        text = _messages(body.get("messages"))
    if level is not None and not text:
        text = source.replace("-", " ").capitalize()
    stderr = body.get("stderr")
    return ProgressMessage(
        instance=instance,
        serverId=_idOf(instance, naming.idFromInstanceName, prefix),
        type=kind,
        eventTime=eventTime,
        progress=progress,
        source=source,
        level=level,
        message=text,
        details=None if stderr is None else _messages(stderr),
    )


def decideProgress(server: Server, message: ProgressMessage) -> int | None:
    """
    The new C{buildpercentage}, or None when it does not grow (progress
    only moves forward, so repeated or late messages change nothing).
    Deleted servers too: a late message still tells what happened (and
    the result does not depend on whether it came before the removal).
    """
    if message.progress is None or message.progress <= server.buildpercentage:
        return None
    return message.progress


# -- networks --------------------------------------------------------------------------------------


@attrs.frozen
class NetworkMessage:
    network: str
    networkId: int | None
    operation: str
    status: str
    jobId: int
    eventTime: datetime
    logmsg: str | None
    cluster: str
    jobFields: Mapping[str, Any]

    @property
    def final(self) -> bool:
        return self.status in FINALIZED


def parseNetworkMessage(body: object, prefix: str = naming.DEFAULT_PREFIX) -> NetworkMessage:
    """
    Decode a C{ganeti-network-status} message.

    @raise MalformedMessage: a key is missing or mistyped, the status is unknown.
    """
    body = _checkBody(body)
    _type(body, "ganeti-network-status")
    network = _str(body, "network")
    operation = _str(body, "operation")
    cluster = _str(body, "cluster")
    assert network is not None and operation is not None and cluster is not None
    logmsg = body.get("logmsg")
    return NetworkMessage(
        network=network,
        networkId=_idOf(network, naming.idFromNetworkName, prefix),
        operation=operation,
        status=_status(body),
        jobId=_int(body, "jobId"),
        eventTime=parseEventTime(_require(body, "event_time")),
        logmsg=None if logmsg is None else str(logmsg),
        cluster=cluster,
        jobFields=_mapping(body, "job_fields"),
    )


def decideNetwork(backendNetwork: BackendNetwork, message: NetworkMessage) -> dict[str, object]:
    """
    The backend-network columns C{message} writes (spec §2.5
    C{process_network_status}), with the same registers as servers: job
    fields under C{jobtime}, operstate under C{backendtime}.
    """
    t = message.eventTime
    fields: dict[str, object] = {}
    if _after(t, backendNetwork.jobtime):
        fields.update(
            backendjobid=message.jobId,
            backendjobstatus=message.status,
            backendopcode=message.operation,
            backendlogmsg=message.logmsg,
            jobtime=t,
        )
    if message.final and message.operation != "OP_NETWORK_SET_PARAMS":
        gone = message.operation == "OP_NETWORK_REMOVE" and bool(_INSTANCE_GONE.search(message.logmsg or ""))
        state = backendNetworkOperstate(message.operation, message.status, backendNetwork.operstate, networkGone=gone)
        moves = message.status == SUCCESS or state != backendNetwork.operstate
        if moves and _after(t, backendNetwork.backendtime):
            fields["backendtime"] = t
            if state != backendNetwork.operstate:
                fields["operstate"] = state
    return fields


def reservedIPs(message: NetworkMessage) -> tuple[list[str], list[str]]:
    """
    C{(add, remove)}: the addresses an C{OP_NETWORK_SET_PARAMS} job
    reserved or released externally.
    """

    def addresses(key: str) -> list[str]:
        value = message.jobFields.get(key)
        if not isinstance(value, list):
            return []
        return [str(v) for v in value]

    if message.operation != "OP_NETWORK_SET_PARAMS" or message.status != SUCCESS:
        return [], []
    return addresses("add_reserved_ips"), addresses("remove_reserved_ips")


# -- cluster ---------------------------------------------------------------------------------------


@attrs.frozen
class ClusterMessage:
    cluster: str
    operation: str
    status: str
    eventTime: datetime


def parseClusterMessage(body: object) -> ClusterMessage:
    """
    Decode a C{ganeti-cluster-status} message.
    """
    body = _checkBody(body)
    _type(body, "ganeti-cluster-status")
    cluster = _str(body, "cluster")
    operation = _str(body, "operation")
    assert cluster is not None and operation is not None
    return ClusterMessage(cluster, operation, _status(body), parseEventTime(_require(body, "event_time")))
