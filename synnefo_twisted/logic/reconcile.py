# -*- test-case-name: tests.logic.test_reconcile -*-
"""
Reconciliation of the database with what Ganeti has (spec §3): pure,
synchronous detection over models, and the synthetic op-status messages
that fix what is found.

The inputs are the database's view of one backend (L{DBServer}: a server
row with its flavor, ports and tags), Ganeti's view (the RAPI bulk instance
listing parsed by L{parseInstances}, the bulk job listing by L{parseJobs})
and the time. L{detectServers} returns one L{Drift} per finding. Every fix
of a server is a message in the watcher's format (L{fixMessages}) that the
caller hands to the dispatcher's state machine (C{applyMessage(db, "op",
message)}), so quotas, NICs and states follow the very code path of real
events; pending tasks are cleared directly (there is no job to simulate)
and orphans are removed from Ganeti (there is no row to fix).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from synnefo_twisted.db.models import BackendNetwork, Network, Server
from synnefo_twisted.ganeti import naming
from synnefo_twisted.logic.dispatch import NIC_GRACE, OPER_STATE_FROM_OPCODE
from synnefo_twisted.logic.servers import encodeTag

#: the log message of every simulated event (the original's wording)
LOGMSG = "Reconciliation: simulated Ganeti event"
#: the job id of simulated events
SIMULATED_JOB_ID = 0

FINAL_JOB_STATUSES = frozenset({"success", "error", "canceled"})

# Drift kinds (the report's C{kind} column).
STALE = "stale"
ORPHAN = "orphan"
BUILD_ERROR = "build-error"
UNSYNCED_OPERSTATE = "unsynced-operstate"
UNSYNCED_FLAVOR = "unsynced-flavor"
UNSYNCED_NICS = "unsynced-nics"
UNSYNCED_TAGS = "unsynced-tags"
PENDING_TASK = "pending-task"

SERVER_KINDS = (
    STALE,
    ORPHAN,
    BUILD_ERROR,
    UNSYNCED_OPERSTATE,
    UNSYNCED_FLAVOR,
    UNSYNCED_NICS,
    UNSYNCED_TAGS,
    PENDING_TASK,
)

# Network drift kinds (spec §3 reconcile-networks).
NET_PARTED = "parted"
NET_STALE = "stale"
NET_MISSING = "missing"
NET_HANGING = "hanging"
NET_UNSYNCED = "unsynced"
NET_ORPHAN = "orphan"
NET_UNRESERVED = "unreserved"

NETWORK_KINDS = (NET_PARTED, NET_STALE, NET_MISSING, NET_HANGING, NET_UNSYNCED, NET_ORPHAN, NET_UNRESERVED)

#: Ganeti firewall tag profile → API profile (spec §2.1)
FIREWALL_FROM_TAG: Mapping[str, str] = {"protected": "ENABLED", "unprotected": "DISABLED", "limited": "PROTECTED"}


# -- Ganeti's view ------------------------------------------------------------------------


@attrs.frozen
class GanetiNIC:
    """
    One NIC of an instance as RAPI lists it; C{portId} from its name
    C{snf-nic-<id>} (None for other names) and C{networkId} from
    C{snf-net-<id>}.
    """

    name: str | None
    portId: int | None
    networkId: int | None
    network: str | None
    ip: str | None
    mac: str | None
    mode: str | None
    link: str | None
    uuid: str | None
    firewall: str | None

    def message(self) -> dict[str, Any]:
        """
        The NIC as eventd attaches it to op-status messages
        (C{instance_nics}).
        """
        out: dict[str, Any] = {
            "name": self.name,
            "network": self.network,
            "ip": self.ip,
            "mac": self.mac,
            "mode": self.mode,
            "link": self.link,
            "uuid": self.uuid,
        }
        if self.firewall is not None:
            out["firewall"] = self.firewall
        return out


@attrs.frozen
class GanetiInstance:
    """
    One C{snf-} instance of the bulk listing: C{state} is C{STARTED} when
    it runs, else C{STOPPED}; C{userTags} are the (encoded) user tags, the
    ones without a colon (firewall and system tags all carry one).
    """

    serverId: int
    name: str
    state: str
    vcpus: int | None
    ram: int | None
    disk: int | None
    nics: tuple[GanetiNIC, ...]
    disks: tuple[Mapping[str, Any], ...]
    userTags: frozenset[str]
    tags: tuple[str, ...]
    mtime: float | None


@attrs.frozen
class GanetiJob:
    """
    One job of the bulk listing: its status and the instances its ops name.
    """

    id: int
    status: str
    instances: frozenset[str]
    opId: str | None = None
    endTime: tuple[int, int] | None = None

    @property
    def finalized(self) -> bool:
        return self.status in FINAL_JOB_STATUSES


def _ints(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _idOr(parse: Any, name: Any, prefix: str) -> int | None:
    if not isinstance(name, str):
        return None
    try:
        return int(parse(name, prefix))
    except naming.InvalidBackendIdError:
        return None


def _list(record: Mapping[str, Any], key: str, n: int) -> list[Any]:
    value = record.get(key)
    if not isinstance(value, list):
        return [None] * n
    return list(value) + [None] * (n - len(value))


def parseInstance(record: Mapping[str, Any], prefix: str = naming.DEFAULT_PREFIX) -> GanetiInstance | None:
    """
    A RAPI instance record as a L{GanetiInstance}, or None when its name
    is not C{<prefix><id>}.
    """
    name = record.get("name")
    serverId = _idOr(naming.idFromInstanceName, name, prefix)
    if serverId is None or not isinstance(name, str):
        return None
    tags = tuple(t for t in record.get("tags") or () if isinstance(t, str))
    firewall: dict[str, str] = {}
    for tag in tags:
        parts = tag.split(":")
        if len(parts) == 4 and parts[0] == "synnefo" and parts[1] == "network" and parts[3] in FIREWALL_FROM_TAG:
            firewall[parts[2]] = parts[3]
    names = record.get("nic.names") if isinstance(record.get("nic.names"), list) else []
    assert isinstance(names, list)
    n = len(names)
    nics = []
    for nicName, network, ip, mac, mode, link, uuid in zip(
        names,
        _list(record, "nic.networks.names", n),
        _list(record, "nic.ips", n),
        _list(record, "nic.macs", n),
        _list(record, "nic.modes", n),
        _list(record, "nic.links", n),
        _list(record, "nic.uuids", n),
    ):
        nics.append(
            GanetiNIC(
                name=nicName,
                portId=_idOr(naming.idFromNicName, nicName, prefix),
                networkId=_idOr(naming.idFromNetworkName, network, prefix),
                network=network,
                ip=ip,
                mac=mac,
                mode=mode,
                link=link,
                uuid=uuid,
                firewall=firewall.get(nicName) if isinstance(nicName, str) else None,
            )
        )
    beparams = record.get("beparams") if isinstance(record.get("beparams"), Mapping) else {}
    assert isinstance(beparams, Mapping)
    sizes = record.get("disk.sizes") if isinstance(record.get("disk.sizes"), list) else []
    assert isinstance(sizes, list)
    diskNames = _list(record, "disk.names", len(sizes))
    diskUuids = _list(record, "disk.uuids", len(sizes))
    rootSize = _ints(sizes[0]) if sizes else None
    mtime = record.get("mtime")
    return GanetiInstance(
        serverId=serverId,
        name=name,
        state="STARTED" if record.get("oper_state") else "STOPPED",
        vcpus=_ints(beparams.get("vcpus")),
        ram=_ints(beparams.get("maxmem", beparams.get("memory"))),
        disk=None if rootSize is None else rootSize >> 10,
        nics=tuple(nics),
        disks=tuple({"name": dn, "size": s, "uuid": du} for s, dn, du in zip(sizes, diskNames, diskUuids)),
        userTags=frozenset(t for t in tags if ":" not in t),
        tags=tags,
        mtime=float(mtime) if isinstance(mtime, (int, float)) else None,
    )


def parseInstances(
    records: Iterable[Mapping[str, Any]], prefix: str = naming.DEFAULT_PREFIX
) -> dict[int, GanetiInstance]:
    """
    The C{snf-} instances of a bulk listing by server id; other instances
    are not Synnefo's and are left out.
    """
    out: dict[int, GanetiInstance] = {}
    for record in records:
        if isinstance(record, Mapping):
            inst = parseInstance(record, prefix)
            if inst is not None:
                out[inst.serverId] = inst
    return out


def parseJobs(records: Iterable[Mapping[str, Any]]) -> dict[int, GanetiJob]:
    """
    The bulk job listing by job id, with the instance names the ops name.
    """
    out: dict[int, GanetiJob] = {}
    for record in records:
        if not isinstance(record, Mapping):
            continue
        jobId = _ints(record.get("id"))
        if jobId is None:
            continue
        names = set()
        opId: str | None = None
        for op in record.get("ops") or ():
            if isinstance(op, Mapping):
                if opId is None and isinstance(op.get("OP_ID"), str):
                    opId = op["OP_ID"]
                if isinstance(op.get("instance_name"), str):
                    names.add(op["instance_name"])
        end = record.get("end_ts")
        endTime = None
        if isinstance(end, (list, tuple)) and len(end) == 2 and all(isinstance(x, int) for x in end):
            endTime = (int(end[0]), int(end[1]))
        out[jobId] = GanetiJob(jobId, str(record.get("status")), frozenset(names), opId, endTime)
    return out


# -- the database's view ------------------------------------------------------------------------


@attrs.frozen
class DBPort:
    """
    A server's port as reconciliation compares it: its IPv4 address, if
    any, is the one Ganeti should have on the NIC.
    """

    id: int
    networkId: int
    mac: str | None
    ipv4: str | None
    firewallProfile: str | None
    state: str
    created: datetime


@attrs.frozen
class DBServer:
    """
    A live server row with what reconciliation compares: its flavor's
    cpu/ram/disk, its ports and its tags with their status.
    """

    server: Server
    cpu: int
    ram: int
    disk: int
    volumeTypeId: int
    ports: tuple[DBPort, ...] = ()
    tags: Mapping[str, str] = attrs.field(factory=dict)


# -- findings -----------------------------------------------------------------------------------


@attrs.frozen
class Drift:
    """
    One difference between the database and Ganeti: C{kind} (one of
    L{SERVER_KINDS}), the server (or orphan instance) id, what the database
    says and what Ganeti says, in words.
    """

    kind: str
    backendId: int
    serverId: int
    db: str
    ganeti: str
    instance: GanetiInstance | None = attrs.field(default=None, eq=False, repr=False)
    server: DBServer | None = attrs.field(default=None, eq=False, repr=False)
    jobId: int | None = None
    job: GanetiJob | None = attrs.field(default=None, eq=False, repr=False)

    def row(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "backend": self.backendId,
            "server": self.serverId,
            "db": self.db,
            "ganeti": self.ganeti,
        }


@attrs.frozen
class Thresholds:
    """
    @ivar grace: servers (and instances) changed less than this long ago
        are not judged: a job or a message about them may be in flight.
    """

    grace: timedelta = timedelta(seconds=60)


def _recent(moment: datetime | None, now: datetime, grace: timedelta) -> bool:
    return moment is not None and now - moment < grace


def _flavorMatches(s: DBServer, g: GanetiInstance) -> bool:
    if g.vcpus is not None and g.vcpus != s.cpu:
        return False
    if g.ram is not None and g.ram != s.ram:
        return False
    return g.disk is None or g.disk == s.disk


def _unsettled(s: DBServer, now: datetime) -> set[int]:
    """
    Ports not compared: in BUILD (their NIC may not exist yet), or younger
    than the dispatcher's NIC grace (it would not delete them either).
    """
    cutoff = now - timedelta(seconds=NIC_GRACE)
    return {p.id for p in s.ports if p.state == "BUILD" or p.created >= cutoff}


def nicKey(s: DBServer, skip: set[int] | frozenset[int] = frozenset()) -> list[tuple[Any, ...]]:
    """
    The ports of C{s} (but C{skip}) as ordered comparison tuples (port id,
    mac, network, IPv4).
    """
    return sorted((p.id, (p.mac or "").lower(), p.networkId, p.ipv4) for p in s.ports if p.id not in skip)


def ganetiNicKey(g: GanetiInstance) -> list[tuple[Any, ...]]:
    return sorted((n.portId if n.portId is not None else -1, (n.mac or "").lower(), n.networkId, n.ip) for n in g.nics)


def _nicsDiffer(s: DBServer, g: GanetiInstance, now: datetime) -> str | None:
    skip = _unsettled(s, now)
    db = nicKey(s, skip)
    gn = [k for k in ganetiNicKey(g) if k[0] not in skip]
    if db != gn:
        return f"db {db} ganeti {gn}"
    profiles = {p.id: p.firewallProfile for p in s.ports}
    for nic in g.nics:
        if nic.firewall is None or nic.portId not in profiles:
            continue
        wanted = FIREWALL_FROM_TAG[nic.firewall]
        if (profiles[nic.portId] or "DISABLED") != wanted:
            return f"port {nic.portId} firewall db {profiles[nic.portId]} ganeti {wanted}"
    return None


def _dbTags(s: DBServer) -> frozenset[str]:
    return frozenset(encodeTag(t) for t, status in s.tags.items() if status == "ACTIVE")


def _pendingTags(s: DBServer) -> bool:
    return any(status != "ACTIVE" for status in s.tags.values())


def detectServers(
    backendId: int,
    servers: Sequence[DBServer],
    instances: Mapping[int, GanetiInstance],
    jobs: Mapping[int, GanetiJob],
    now: datetime,
    thresholds: Thresholds = Thresholds(),
    deletedIds: Iterable[int] = (),
    prefix: str = naming.DEFAULT_PREFIX,
) -> list[Drift]:
    """
    Compare the live servers of one backend with its instances and jobs
    (spec §3) and return what differs, server by server in id order.

    @param servers: the backend's live (not deleted) servers.
    @param instances: the backend's C{snf-} instances by server id.
    @param jobs: the backend's jobs by id.
    @param deletedIds: ids among C{instances} whose server exists but is
        deleted (reported as orphans like unknown ones).
    """
    out: list[Drift] = []
    grace = thresholds.grace
    busy: set[str] = set()
    for job in jobs.values():
        if not job.finalized:
            busy.update(job.instances)
    known = set()
    for s in sorted(servers, key=lambda x: x.server.id):
        server = s.server
        known.add(server.id)
        g = instances.get(server.id)
        name = naming.instanceName(server.id, prefix)
        recent = _recent(server.updated, now, grace)
        buildJob = jobs.get(server.backendjobid) if server.backendjobid is not None else None
        if g is None:
            if server.operstate == "BUILD":
                if server.backendjobid is None or name in busy or recent:
                    continue  # not submitted yet, or still building
                if buildJob is None or buildJob.status in ("error", "canceled"):
                    status = "missing" if buildJob is None else buildJob.status
                    out.append(Drift(BUILD_ERROR, backendId, server.id, "BUILD", f"no instance, job {status}", None, s))
                    continue
                if not buildJob.finalized:
                    continue
            elif server.operstate == "ERROR" and server.action != "DESTROY":
                continue  # kept for the user to delete
            if recent or name in busy:
                continue
            out.append(Drift(STALE, backendId, server.id, server.operstate, "no instance", None, s))
            continue
        if recent or name in busy:
            continue
        # a task that never got its job (the API's submission or its
        # recording failed, e.g. with the database down): the job's messages
        # would have settled it by opcode, so none ran
        if server.task is not None and server.task_job_id is None and server.operstate != "BUILD":
            out.append(Drift(PENDING_TASK, backendId, server.id, f"task {server.task} without a job", "no job", g, s))
        # pending task: its job is finished (or gone) but the task stayed
        if server.task is not None and server.task_job_id is not None and server.operstate != "BUILD":
            taskJob = jobs.get(server.task_job_id)
            if taskJob is None or taskJob.finalized:
                what = "missing" if taskJob is None else taskJob.status
                out.append(
                    Drift(
                        PENDING_TASK,
                        backendId,
                        server.id,
                        f"task {server.task} job {server.task_job_id}",
                        f"job {what}",
                        g,
                        s,
                        jobId=server.task_job_id,
                        job=taskJob,
                    )
                )
        if server.operstate == "BUILD" and buildJob is not None and not buildJob.finalized:
            continue
        if server.operstate != g.state:
            out.append(Drift(UNSYNCED_OPERSTATE, backendId, server.id, server.operstate, g.state, g, s))
        if not _flavorMatches(s, g):
            out.append(
                Drift(
                    UNSYNCED_FLAVOR,
                    backendId,
                    server.id,
                    f"cpu={s.cpu} ram={s.ram} disk={s.disk}",
                    f"cpu={g.vcpus} ram={g.ram} disk={g.disk}",
                    g,
                    s,
                )
            )
        if server.operstate != "BUILD":
            nics = _nicsDiffer(s, g, now)
            if nics is not None:
                out.append(Drift(UNSYNCED_NICS, backendId, server.id, "nics", nics, g, s))
        if not _pendingTags(s):
            dbTags = _dbTags(s)
            if dbTags != g.userTags:
                out.append(
                    Drift(
                        UNSYNCED_TAGS,
                        backendId,
                        server.id,
                        ",".join(sorted(dbTags)),
                        ",".join(sorted(g.userTags)),
                        g,
                        s,
                    )
                )
    deleted = set(deletedIds)
    nowTs = now.timestamp()
    for serverId in sorted(instances):
        if serverId in known:
            continue
        g = instances[serverId]
        if g.name in busy or (g.mtime is not None and nowTs - g.mtime < grace.total_seconds()):
            continue
        what = "deleted" if serverId in deleted else "no server"
        out.append(Drift(ORPHAN, backendId, serverId, what, g.state, g, None))
    return out


# -- fixes as simulated events ------------------------------------------------------------------


def latestStamp(server: Server) -> datetime | None:
    """
    The latest event time the dispatcher stamped on C{server} (its
    C{backendtime} and the registers of migration 0005): a simulated event
    must be later to change anything.
    """
    stamps = [
        t
        for t in (
            server.backendtime,
            getattr(server, "jobtime", None),
            getattr(server, "statetime", None),
            getattr(server, "flavortime", None),
            getattr(server, "detailstime", None),
        )
        if t is not None
    ]
    return max(stamps) if stamps else None


def eventTime(now: datetime, after: datetime | None, step: int = 0) -> list[int]:
    """
    C{[seconds, microseconds]} of a simulated event: now, but always
    later than the server's C{backendtime} (so the dispatcher's guard lets
    it through), plus C{step} microseconds for the C{step}-th of a series.
    """
    moment = now
    if after is not None and moment <= after:
        moment = after + timedelta(microseconds=1)
    moment = moment + timedelta(microseconds=step)
    seconds = int(moment.timestamp())
    micro = moment.microsecond
    return [seconds, micro]


def opMessage(
    instance: str,
    operation: str,
    status: str,
    eventTime: list[int],
    cluster: str,
    *,
    jobFields: Mapping[str, Any] | None = None,
    nics: Sequence[Mapping[str, Any]] | None = None,
    disks: Sequence[Mapping[str, Any]] | None = None,
    tags: Sequence[str] | None = None,
    jobId: int = SIMULATED_JOB_ID,
) -> dict[str, Any]:
    """
    A simulated C{ganeti-op-status} message, in the watcher's format.
    """
    msg: dict[str, Any] = {
        "type": "ganeti-op-status",
        "instance": instance,
        "operation": operation,
        "status": status,
        "jobId": jobId,
        "logmsg": LOGMSG,
        "result": None,
        "cluster": cluster,
        "event_time": eventTime,
        "job_fields": dict(jobFields or {}),
        "tags": list(tags or ()),
    }
    if nics is not None:
        msg["instance_nics"] = [dict(n) for n in nics]
    if disks is not None:
        msg["instance_disks"] = [dict(d) for d in disks]
    return msg


def fixMessages(drift: Drift, now: datetime, cluster: str, prefix: str = naming.DEFAULT_PREFIX) -> list[dict[str, Any]]:
    """
    The simulated op-status messages that make the database agree with
    Ganeti for one finding (spec §3), in the order to apply them; empty for
    orphans (removed from Ganeti instead) and for pending tasks whose job
    Ganeti no longer lists (cleared directly: nothing is known to simulate).
    A pending task whose job is listed gets that job's own final message,
    stamped with the job's end time, so its commission is settled as the
    lost message would have.

    The outcome of a build (CREATE success or error) carries the build
    job's id when the server still has it, so the state machine settles
    that job's task and quota commission as the lost message would have;
    every other simulated event has job id 0.
    """
    s = drift.server
    if s is None:
        return []
    server = s.server
    name = naming.instanceName(server.id, prefix)
    after = latestStamp(server)
    g = drift.instance
    if drift.kind == PENDING_TASK:
        job = drift.job
        if job is None or not job.finalized or job.opId is None or not job.opId.startswith("OP_INSTANCE_"):
            return []
        # The task job's own (lost) final message, at the job's end time;
        # then, if that outcome is no longer what Ganeti has (a later change
        # whose message was lost too), the state Ganeti has, now.
        when = list(job.endTime) if job.endTime is not None else eventTime(now, after)
        out = [opMessage(name, job.opId, job.status, when, cluster, jobId=job.id)]
        outcome = OPER_STATE_FROM_OPCODE.get(job.opId) if job.status == "success" else None
        if g is not None and outcome is not None and outcome != g.state:
            op = "OP_INSTANCE_STARTUP" if g.state == "STARTED" else "OP_INSTANCE_SHUTDOWN"
            ended = datetime.fromtimestamp(when[0], UTC) + timedelta(microseconds=when[1])
            latest = ended if after is None else max(after, ended)
            out.append(opMessage(name, op, "success", eventTime(now, latest, 1), cluster))
        return out
    if drift.kind == STALE:
        return [opMessage(name, "OP_INSTANCE_REMOVE", "success", eventTime(now, after), cluster)]
    buildJob = server.backendjobid if server.backendjobid is not None else SIMULATED_JOB_ID
    if drift.kind == BUILD_ERROR:
        return [opMessage(name, "OP_INSTANCE_CREATE", "error", eventTime(now, after), cluster, jobId=buildJob)]
    if g is None:
        return []
    if drift.kind == UNSYNCED_OPERSTATE:
        out = []
        step = 0
        if server.operstate == "BUILD":
            out.append(
                opMessage(
                    name,
                    "OP_INSTANCE_CREATE",
                    "success",
                    eventTime(now, after, step),
                    cluster,
                    nics=[n.message() for n in g.nics],
                    disks=g.disks,
                    jobId=buildJob,
                )
            )
            step += 1
        op = "OP_INSTANCE_STARTUP" if g.state == "STARTED" else "OP_INSTANCE_SHUTDOWN"
        out.append(opMessage(name, op, "success", eventTime(now, after, step), cluster))
        return out
    if drift.kind == UNSYNCED_FLAVOR:
        beparams = {"vcpus": g.vcpus, "maxmem": g.ram, "minmem": g.ram}
        return [
            opMessage(
                name,
                "OP_INSTANCE_SET_PARAMS",
                "success",
                eventTime(now, after),
                cluster,
                jobFields={"beparams": beparams},
                disks=g.disks,
            )
        ]
    if drift.kind == UNSYNCED_NICS:
        return [
            opMessage(
                name,
                "OP_INSTANCE_SET_PARAMS",
                "success",
                eventTime(now, after),
                cluster,
                jobFields={"nics": []},
                nics=[n.message() for n in g.nics],
            )
        ]
    if drift.kind == UNSYNCED_TAGS:
        dbTags = _dbTags(s)
        out = []
        step = 0
        add = sorted(g.userTags - dbTags)
        remove = sorted(dbTags - g.userTags)
        if add:
            out.append(
                opMessage(name, "OP_TAGS_SET", "success", eventTime(now, after, step), cluster, tags=add, jobFields={})
            )
            step += 1
        if remove:
            out.append(
                opMessage(
                    name, "OP_TAGS_DEL", "success", eventTime(now, after, step), cluster, tags=remove, jobFields={}
                )
            )
        return out
    return []


# -- networks ---------------------------------------------------------------------------------


@attrs.frozen
class GanetiNetwork:
    """
    One C{snf-net-} network of the bulk listing: the node groups it is
    connected to and its external reservations.
    """

    networkId: int
    name: str
    groups: frozenset[str]
    external: frozenset[str]


def parseNetworks(
    records: Iterable[Mapping[str, Any]], prefix: str = naming.DEFAULT_PREFIX
) -> dict[int, GanetiNetwork]:
    out: dict[int, GanetiNetwork] = {}
    for record in records:
        if not isinstance(record, Mapping):
            continue
        networkId = _idOr(naming.idFromNetworkName, record.get("name"), prefix)
        if networkId is None:
            continue
        groups = frozenset(g[0] for g in record.get("group_list") or () if isinstance(g, (list, tuple)) and g)
        reservations = record.get("external_reservations") or ""
        external = frozenset(a.strip() for a in str(reservations).split(",") if a.strip())
        out[networkId] = GanetiNetwork(networkId, str(record["name"]), groups, external)
    return out


@attrs.frozen
class NetworkDrift:
    """
    One network finding (C{kind} in L{NETWORK_KINDS}) on one backend.
    """

    kind: str
    backendId: int
    networkId: int
    detail: str
    groups: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()

    def row(self) -> dict[str, Any]:
        return {"kind": self.kind, "backend": self.backendId, "network": self.networkId, "detail": self.detail}


def detectNetworks(
    backendId: int,
    networks: Sequence[Network],
    backendNetworks: Mapping[int, BackendNetwork],
    ganeti: Mapping[int, GanetiNetwork],
    groups: Iterable[str],
    unreserved: Mapping[int, Sequence[str]] | None = None,
) -> list[NetworkDrift]:
    """
    Compare the live networks with one backend's Ganeti networks
    (spec §3 C{reconcile-networks}).

    @param networks: the live (not deleted) networks.
    @param backendNetworks: this backend's rows by network id.
    @param groups: the backend's node groups.
    @param unreserved: by network id, addresses Ganeti reserves externally
        that lie in the network's pools but are not reserved there.
    """
    allGroups = frozenset(groups)
    out: list[NetworkDrift] = []
    live = {n.id: n for n in networks}
    for network in sorted(networks, key=lambda n: n.id):
        bn = backendNetworks.get(network.id)
        g = ganeti.get(network.id)
        if g is not None and bn is None:
            out.append(NetworkDrift(NET_PARTED, backendId, network.id, "in Ganeti, no backend row"))
            continue
        if bn is None:
            continue
        if g is None:
            if bn.operstate == "DELETED":
                continue
            if network.action == "DESTROY":
                out.append(NetworkDrift(NET_STALE, backendId, network.id, f"row {bn.operstate}, not in Ganeti"))
            else:
                out.append(NetworkDrift(NET_MISSING, backendId, network.id, f"row {bn.operstate}, not in Ganeti"))
            continue
        missing = tuple(sorted(allGroups - g.groups))
        if missing:
            out.append(
                NetworkDrift(NET_HANGING, backendId, network.id, f"not connected to {','.join(missing)}", missing)
            )
        elif bn.operstate != "ACTIVE" and network.action != "DESTROY":
            out.append(NetworkDrift(NET_UNSYNCED, backendId, network.id, f"row {bn.operstate}, connected everywhere"))
        addresses = tuple(sorted((unreserved or {}).get(network.id, ())))
        if addresses:
            out.append(
                NetworkDrift(
                    NET_UNRESERVED,
                    backendId,
                    network.id,
                    f"reserved in Ganeti, not in the pool: {', '.join(addresses)}",
                    addresses=addresses,
                )
            )
    for networkId in sorted(ganeti):
        if networkId not in live:
            g = ganeti[networkId]
            out.append(NetworkDrift(NET_ORPHAN, backendId, networkId, "no live network", tuple(sorted(g.groups))))
    return out


def networkMessage(
    networkId: int,
    operation: str,
    status: str,
    now: datetime,
    after: datetime | None,
    cluster: str,
    prefix: str = naming.DEFAULT_PREFIX,
    jobFields: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """
    A simulated C{ganeti-network-status} message.
    """
    return {
        "type": "ganeti-network-status",
        "network": naming.networkName(networkId, prefix),
        "operation": operation,
        "status": status,
        "jobId": SIMULATED_JOB_ID,
        "logmsg": LOGMSG,
        "result": None,
        "cluster": cluster,
        "event_time": eventTime(now, after),
        "job_fields": dict(jobFields or {}),
    }
