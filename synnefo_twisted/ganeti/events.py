# -*- test-case-name: tests.ganeti.test_events -*-
"""
Translation of job-file ops into the messages snf-ganeti-eventd publishes
(spec §2.3). Pure functions: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from synnefo_twisted.ganeti import jobfile, naming
from synnefo_twisted.ganeti.jobfile import QueuedJob, QueuedOp, Timestamp

OP_STATUS = "ganeti-op-status"
NETWORK_STATUS = "ganeti-network-status"
CLUSTER_STATUS = "ganeti-cluster-status"
HEARTBEAT = "eventd-heartbeat"
HEARTBEAT_TAG = "snf:eventd:heartbeat"

#: Ops after which the instance's NICs, disks and hvparams are attached,
#: with the statuses that trigger it (Ganeti spells it "canceled"; the
#: original also accepted "cancelled").
_DETAILS_AFTER: Mapping[str, frozenset[str]] = {
    "OP_INSTANCE_CREATE": frozenset({jobfile.SUCCESS}),
    "OP_INSTANCE_STARTUP": frozenset({jobfile.SUCCESS}),
    "OP_INSTANCE_SET_PARAMS": frozenset({jobfile.SUCCESS, jobfile.ERROR, jobfile.CANCELED, "cancelled"}),
    "OP_INSTANCE_GROW_DISK": frozenset({jobfile.SUCCESS, jobfile.ERROR, jobfile.CANCELED, "cancelled"}),
}

_NETWORK_OPS = frozenset(
    {
        "OP_NETWORK_ADD",
        "OP_NETWORK_CONNECT",
        "OP_NETWORK_DISCONNECT",
        "OP_NETWORK_REMOVE",
        "OP_NETWORK_SET_PARAMS",
    }
)


class NotPublished(Exception):
    """
    An op of a kind the watcher handles that cannot become a message; the
    message says why (no instance name, several instances, no timestamp).
    """


@attrs.frozen
class InstanceDetails:
    """
    What eventd attaches about an instance after some ops: its NICs
    (C{name, network, ip, mac, mode, link, uuid}, plus C{firewall} from the
    instance tags), disks (C{name, size, uuid}) and hvparams
    (C{boot_order, cdrom_image_path}).
    """

    nics: tuple[Mapping[str, Any], ...]
    disks: tuple[Mapping[str, Any], ...]
    hvparams: Mapping[str, Any]


DetailsLookup = Callable[[str], "InstanceDetails | None"]


@attrs.frozen
class EventMessage:
    """
    One message to publish on exchange C{ganeti}.
    """

    routingKey: str
    body: Mapping[str, Any]
    jobId: int
    opIndex: int
    status: str


def firewallProfiles(tags: list[str] | tuple[str, ...]) -> dict[str, str]:
    """
    NIC name to firewall profile, from instance tags
    C{synnefo:network:<nic name>:<profile>}; malformed tags are ignored.
    """
    profiles: dict[str, str] = {}
    for tag in tags:
        parts = tag.split(":")
        if parts[:2] == ["synnefo", "network"] and len(parts) == 4:
            profiles.setdefault(parts[2], parts[3])
    return profiles


def eventTime(job: QueuedJob, op: QueuedOp) -> Timestamp:
    """
    The C{event_time} of an op's message, from Ganeti's own timestamps:
    queued → the job's received time; waiting → the op's start (else the
    job's end); canceling → the op's start; running → the op's exec time;
    finalized → the op's end (else the job's end).

    @raise NotPublished: when the timestamp the rule needs is missing.
    """
    status = op.status
    ts: Timestamp | None
    if status == jobfile.QUEUED:
        ts = job.received_timestamp
    elif status == jobfile.WAITING:
        ts = op.start_timestamp or job.end_timestamp
    elif status == jobfile.CANCELING:
        ts = op.start_timestamp or job.received_timestamp
    elif status == jobfile.RUNNING:
        ts = op.exec_timestamp
    else:
        ts = op.end_timestamp or job.end_timestamp
    if ts is None:
        raise NotPublished(f"job {job.id}: op {op.opId} is {status} but has no timestamp for it")
    return ts


def isHeartbeat(op: QueuedOp) -> bool:
    """
    Whether an op is the dispatcher's status-check probe: a dry-run
    C{OP_TAGS_SET} on the cluster whose first tag starts with
    C{snf:eventd:heartbeat}.
    """
    tags = op.input.get("tags") or []
    return (
        op.opId == "OP_TAGS_SET"
        and op.input.get("kind") == "cluster"
        and bool(op.input.get("dry_run"))
        and bool(tags)
        and isinstance(tags[0], str)
        and tags[0].startswith(HEARTBEAT_TAG)
    )


def shouldPublish(op: QueuedOp, previousStatus: str | None) -> bool:
    """
    Whether an op's current state is news, given the status last published
    for it (None if nothing was). A heartbeat probe is answered once, as soon
    as it is seen waiting, running or done.
    """
    if isHeartbeat(op):
        return previousStatus is None and op.status in (jobfile.WAITING, jobfile.RUNNING, jobfile.SUCCESS)
    return op.status != previousStatus


def wantsDetails(op: QueuedOp) -> str | None:
    """
    The instance whose details the message for this op will carry, or None
    when it carries none (so the watcher fetches them only when needed).
    """
    if op.status in _DETAILS_AFTER.get(op.opId, frozenset()):
        name = op.input.get("instance_name")
        if isinstance(name, list) and len(name) == 1:
            name = name[0]
        return name if isinstance(name, str) and name else None
    return None


def _common(job: QueuedJob, op: QueuedOp, cluster: str) -> dict[str, Any]:
    sec, usec = eventTime(job, op)
    return {
        "event_time": [sec, usec],
        "operation": op.opId,
        "status": op.status,
        "cluster": cluster,
        "logmsg": op.lastLogMessage(),
        "result": op.result,
        "jobId": job.id,
    }


def _instanceName(job: QueuedJob, op: QueuedOp) -> str:
    name = op.input.get("instance_name")
    if isinstance(name, list):
        if len(name) != 1:
            raise NotPublished(f"job {job.id}: op {op.opId} concerns {len(name)} instances, not one")
        name = name[0]
    if not isinstance(name, str) or not name:
        raise NotPublished(f"job {job.id}: op {op.opId} names no instance")
    return name


def _instanceMessage(job: QueuedJob, index: int, op: QueuedOp, cluster: str, lookup: DetailsLookup) -> EventMessage:
    instance = _instanceName(job, op)
    opInput = op.input
    body: dict[str, Any] = {"type": OP_STATUS, "instance": instance}
    body.update(_common(job, op, cluster))
    opId = op.opId
    if opId == "OP_INSTANCE_CREATE" and op.status == jobfile.ERROR:
        # The whole input, so the dispatcher can resubmit the creation.
        jobFields: dict[str, Any] = dict(opInput)
    elif opId in ("OP_INSTANCE_SET_PARAMS", "OP_INSTANCE_CREATE"):
        jobFields = {k: opInput.get(k) for k in ("nics", "disks", "hvparams", "beparams")}
    elif opId == "OP_INSTANCE_SNAPSHOT":
        disks = [list(d) for d in (opInput.get("disks") or [])]
        reason = opInput.get("reason") or []
        if disks and isinstance(disks[0], list) and len(disks[0]) == 2 and isinstance(disks[0][1], dict):
            disks[0][1] = dict(disks[0][1])
            disks[0][1]["snapshot_info"] = reason[0][1] if reason and len(reason[0]) > 1 else None
        jobFields = {"disks": disks}
    else:
        jobFields = {}
    body["job_fields"] = jobFields
    body["tags"] = opInput.get("tags")
    if op.status in _DETAILS_AFTER.get(opId, frozenset()):
        details = lookup(instance)
        if details is not None:
            body["instance_nics"] = [dict(n) for n in details.nics]
            body["instance_disks"] = [dict(d) for d in details.disks]
            body["instance_hvparams"] = dict(details.hvparams)
    return EventMessage(naming.opRoutingKey(instance), body, job.id, index, op.status)


def _networkMessage(job: QueuedJob, index: int, op: QueuedOp, cluster: str) -> EventMessage:
    network = op.input.get("network_name")
    if not isinstance(network, str) or not network:
        raise NotPublished(f"job {job.id}: op {op.opId} names no network")
    body: dict[str, Any] = {"type": NETWORK_STATUS, "network": network}
    body.update(_common(job, op, cluster))
    opInput = op.input
    body["job_fields"] = {
        "subnet": opInput.get("network"),
        "gateway": opInput.get("gateway"),
        "add_reserved_ips": opInput.get("add_reserved_ips"),
        "remove_reserved_ips": opInput.get("remove_reserved_ips"),
        "group_name": opInput.get("group_name"),
    }
    return EventMessage(naming.networkRoutingKey(network), body, job.id, index, op.status)


def _tagMessage(job: QueuedJob, index: int, op: QueuedOp, cluster: str) -> EventMessage | None:
    kind = op.input.get("kind")
    if isHeartbeat(op):
        body: dict[str, Any] = {"type": HEARTBEAT}
        body.update(_common(job, op, cluster))
        return EventMessage(naming.HEARTBEAT_ROUTING_KEY, body, job.id, index, op.status)
    if kind == "instance" and op.status in jobfile.FINALIZED:
        instance = op.input.get("name")
        if not isinstance(instance, str) or not instance:
            raise NotPublished(f"job {job.id}: op {op.opId} names no instance")
        body = {"type": OP_STATUS, "instance": instance}
        body.update(_common(job, op, cluster))
        body["tags"] = op.input.get("tags")
        body["job_fields"] = {"dry_run": op.input.get("dry_run")}
        return EventMessage(naming.opRoutingKey(instance), body, job.id, index, op.status)
    return None


def messageForOp(
    job: QueuedJob,
    index: int,
    cluster: str,
    lookup: DetailsLookup,
) -> EventMessage | None:
    """
    The message for op C{index} of C{job} in its current state, or None for
    an op eventd does not report (other kinds, tags on other objects, ...).

    @param cluster: the cluster name put in every message.
    @param lookup: gives the L{InstanceDetails} of an instance by name (or
        None when it is unknown); called only for the ops that carry them.
    @raise NotPublished: an op of a reported kind that cannot be reported.
    """
    op = job.ops[index]
    opId = op.opId
    if opId.startswith("OP_INSTANCE_"):
        return _instanceMessage(job, index, op, cluster, lookup)
    if opId in _NETWORK_OPS:
        return _networkMessage(job, index, op, cluster)
    if opId == "OP_CLUSTER_SET_PARAMS":
        body: dict[str, Any] = {"type": CLUSTER_STATUS}
        body.update(_common(job, op, cluster))
        return EventMessage(naming.CLUSTER_ROUTING_KEY, body, job.id, index, op.status)
    if opId in ("OP_TAGS_SET", "OP_TAGS_DEL"):
        return _tagMessage(job, index, op, cluster)
    return None
