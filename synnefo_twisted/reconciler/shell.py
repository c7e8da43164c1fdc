# -*- test-case-name: tests.reconciler.test_drift -*-
"""
The thin I/O shell of reconciliation: read Ganeti (RAPI bulk listings) and
the database, run the pure detection of L{synnefo_twisted.logic.reconcile},
and apply the fixes that are enabled:

 - servers: every fix is a simulated op-status message applied by the
   dispatcher's own state machine (C{applyMessage(db, "op", message)}); a
   pending task gets its job's own final message when Ganeti still lists
   the job, else it is cleared by a guarded update; orphans are removed
   from Ganeti (C{DeleteInstance}). A fix is reported C{fixed} only if the
   server then agrees with its instance (C{not converged} otherwise);
 - networks: unsynced, stale and unreserved-address findings through
   C{applyMessage(db, "network", …)}; hanging networks are connected,
   orphans disconnected and removed, parted ones get their row; missing
   ones are only reported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from synnefo_twisted.db.models import Backend
from synnefo_twisted.db.pools import IPPoolRepository
from synnefo_twisted.db.reconcile import ReconcileRepository
from synnefo_twisted.ganeti import naming
from synnefo_twisted.ganeti.errors import GanetiError
from synnefo_twisted.logic import pools
from synnefo_twisted.logic import reconcile as logic
from synnefo_twisted.logic.dispatchapply import applyMessage
from synnefo_twisted.logic.reconcile import Drift, NetworkDrift, Thresholds

log = Logger()

Apply = Callable[[Any, str, Mapping[str, Any]], "Deferred[Any]"]


def defaultApply(prefix: str) -> Apply:
    """
    The dispatcher's C{applyMessage} for names with C{prefix}: the one
    state machine every fix goes through.
    """

    def apply(db: Any, kind: str, message: Mapping[str, Any]) -> Deferred[Any]:
        d: Deferred[Any] = applyMessage(db, kind, message, prefix=prefix)
        return d

    return apply


@attrs.frozen
class FixOptions:
    """
    Which server findings to fix (the C{--fix-*} flags of spec §3).
    """

    stale: bool = False
    orphans: bool = False
    buildErrors: bool = False
    operstate: bool = False
    flavors: bool = False
    nics: bool = False
    tags: bool = False
    pendingTasks: bool = False

    @classmethod
    def all(cls) -> FixOptions:
        return cls(True, True, True, True, True, True, True, True)

    def enabled(self, kind: str) -> bool:
        return {
            logic.STALE: self.stale,
            logic.ORPHAN: self.orphans,
            logic.BUILD_ERROR: self.buildErrors,
            logic.UNSYNCED_OPERSTATE: self.operstate,
            logic.UNSYNCED_FLAVOR: self.flavors,
            logic.UNSYNCED_NICS: self.nics,
            logic.UNSYNCED_TAGS: self.tags,
            logic.PENDING_TASK: self.pendingTasks,
        }[kind]

    @property
    def any(self) -> bool:
        return any(attrs.astuple(self))


NO_FIXES = FixOptions()
DEFAULT_THRESHOLDS = Thresholds()


@attrs.define
class Finding:
    """
    A finding and what was done about it: C{fix} is C{""} (report only),
    C{"fixed"}, C{"unchanged"} (the state machine found nothing to do) or
    C{"failed: …"}.
    """

    drift: Drift | NetworkDrift
    fix: str = ""

    def row(self) -> dict[str, Any]:
        out = self.drift.row()
        out["fix"] = self.fix
        return out


@attrs.define
class BatchResult:
    """
    What one pass over (part of) a backend found.
    """

    backendId: int
    servers: int = 0
    instances: int = 0
    findings: list[Finding] = attrs.field(factory=list)


async def _applyAll(db: Any, apply: Apply, kind: str, messages: Iterable[Mapping[str, Any]]) -> str:
    applied = False
    for message in messages:
        outcome = await apply(db, kind, message)
        applied = applied or bool(getattr(outcome, "applied", False))
    return "fixed" if applied else "unchanged"


async def _fixServer(
    db: Any, client: Any, backend: Backend, drift: Drift, now: datetime, prefix: str, apply: Apply
) -> str:
    if drift.kind == logic.ORPHAN:
        await client.deleteInstance(naming.instanceName(drift.serverId, prefix))
        return "fixed"
    messages = logic.fixMessages(drift, now, backend.clustername, prefix)
    if drift.kind == logic.PENDING_TASK and not messages:
        repo = ReconcileRepository(db)
        if drift.jobId is None:
            assert drift.server is not None and drift.server.server.task is not None
            cleared = await repo.abandonJoblessTask(drift.serverId, drift.server.server.task)
        else:
            cleared = await repo.clearPendingTask(drift.serverId, drift.jobId)
        return "fixed" if cleared else "unchanged"
    result = await _applyAll(db, apply, "op", messages)
    if drift.kind == logic.PENDING_TASK and drift.jobId is not None:
        # the job's message settled the task unless a newer one replaced it
        if await ReconcileRepository(db).clearPendingTask(drift.serverId, drift.jobId):
            return "fixed"
    if result == "fixed" and drift.kind in _CHECKED and drift.instance is not None:
        if await _persists(db, backend, drift, prefix):
            return "not converged: the state machine kept the database's view"
    return result


#: kinds whose fix is checked by comparing the server again afterwards
_CHECKED = frozenset({logic.UNSYNCED_OPERSTATE, logic.UNSYNCED_FLAVOR, logic.UNSYNCED_NICS, logic.UNSYNCED_TAGS})
_WHENEVER = datetime.max.replace(tzinfo=UTC)


async def _persists(db: Any, backend: Backend, drift: Drift, prefix: str) -> bool:
    """
    Whether the server still differs from its instance the same way after
    its fix was applied (it changed just now, so no grace period applies).
    """
    assert drift.instance is not None
    servers = await ReconcileRepository(db).serversOfBackend(backend.id, drift.serverId, drift.serverId)
    again = logic.detectServers(
        backend.id,
        servers,
        {drift.serverId: drift.instance},
        {},
        _WHENEVER,
        Thresholds(grace=timedelta(0)),
        prefix=prefix,
    )
    return any(d.kind == drift.kind for d in again)


def _inRange(serverId: int, low: int | None, high: int | None) -> bool:
    return (low is None or serverId >= low) and (high is None or serverId <= high)


@attrs.frozen
class GanetiSnapshot:
    """
    One backend's instances and jobs as read at C{taken} (the bulk
    listings, parsed once and shared by every batch of a pass).
    """

    instances: Mapping[int, logic.GanetiInstance]
    jobs: Mapping[int, logic.GanetiJob]
    taken: datetime


async def takeSnapshot(client: Any, now: Callable[[], datetime], prefix: str = naming.DEFAULT_PREFIX) -> GanetiSnapshot:
    """
    Read a backend's instances and jobs (two RAPI bulk calls). The time is
    taken before the reads, so that anything changed while they run counts
    as newer than the snapshot.
    """
    taken = now()
    records = await client.getInstances(bulk=True)
    jobs = logic.parseJobs(await client.getJobs(bulk=True))
    return GanetiSnapshot(logic.parseInstances(records, prefix), jobs, taken)


async def reconcileServers(
    db: Any,
    backend: Backend,
    client: Any,
    now: Callable[[], datetime],
    *,
    fix: FixOptions | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    prefix: str = naming.DEFAULT_PREFIX,
    low: int | None = None,
    high: int | None = None,
    apply: Apply | None = None,
    snapshot: GanetiSnapshot | None = None,
) -> BatchResult:
    """
    Reconcile the servers of one backend with ids in C{[low, high]} (all
    of them by default) against C{snapshot} (read now when None). The
    database is read after Ganeti, and every server or deleted row changed
    after the snapshot (less the grace period) is left alone: a snapshot
    shared by the batches of a long pass never overrides newer news.
    """
    apply = apply or defaultApply(prefix)
    fix = fix or NO_FIXES
    if snapshot is None:
        snapshot = await takeSnapshot(client, now, prefix)
    instances = {i: g for i, g in snapshot.instances.items() if _inRange(i, low, high)}
    repo = ReconcileRepository(db)
    servers = await repo.serversOfBackend(backend.id, low, high)
    known = {s.server.id for s in servers}
    deleted = await repo.deletedAmong([i for i in instances if i not in known])
    for serverId, updated in deleted.items():
        if snapshot.taken - updated < thresholds.grace:
            instances.pop(serverId, None)  # deleted after (or just before) the snapshot
    drifts = logic.detectServers(
        backend.id, servers, instances, snapshot.jobs, snapshot.taken, thresholds, deletedIds=deleted, prefix=prefix
    )
    result = BatchResult(backend.id, len(servers), len(instances))
    for drift in drifts:
        finding = Finding(drift)
        result.findings.append(finding)
        log.info(
            "reconcile backend {backend} server {server_id}: {kind} (db {db}, ganeti {ganeti})",
            backend=backend.id,
            server_id=drift.serverId,
            kind=drift.kind,
            db=drift.db,
            ganeti=drift.ganeti,
        )
        if not fix.enabled(drift.kind):
            continue
        try:
            finding.fix = await _fixServer(db, client, backend, drift, now(), prefix, apply)
        except GanetiError as e:
            finding.fix = f"failed: {e}"
            log.failure("reconcile: fixing {kind} of server {server_id}", kind=drift.kind, server_id=drift.serverId)
        except Exception as e:  # one server's failure must not stop the pass; it is logged and reported
            finding.fix = f"failed: {type(e).__name__}: {e}"
            log.failure("reconcile: fixing {kind} of server {server_id}", kind=drift.kind, server_id=drift.serverId)
    return result


async def reconcileNetworks(
    db: Any,
    backend: Backend,
    client: Any,
    now: Callable[[], datetime],
    *,
    fix: bool = False,
    prefix: str = naming.DEFAULT_PREFIX,
    apply: Apply | None = None,
) -> BatchResult:
    """
    C{reconcile-networks} for one backend (spec §3).
    """
    apply = apply or defaultApply(prefix)
    ganeti = logic.parseNetworks(await client.getNetworks(bulk=True), prefix)
    groups = [g["name"] for g in await client.getGroups(bulk=True) if isinstance(g, Mapping) and "name" in g]
    repo = ReconcileRepository(db)
    networks = await repo.liveNetworks()
    rows = await repo.backendNetworks(backend.id)
    unreserved = await _unreserved(db, [n.id for n in networks], ganeti)
    drifts = logic.detectNetworks(backend.id, networks, rows, ganeti, groups, unreserved)
    result = BatchResult(backend.id)
    byId = {n.id: n for n in networks}
    for drift in drifts:
        finding = Finding(drift)
        result.findings.append(finding)
        log.info(
            "reconcile backend {backend} network {network_id}: {kind} ({detail})",
            backend=backend.id,
            network_id=drift.networkId,
            kind=drift.kind,
            detail=drift.detail,
        )
        if not fix:
            continue
        try:
            finding.fix = await _fixNetwork(db, client, backend, drift, byId, rows, now(), prefix, apply)
        except GanetiError as e:
            finding.fix = f"failed: {e}"
            log.failure("reconcile: fixing {kind} of network {network_id}", kind=drift.kind, network_id=drift.networkId)
    return result


async def _unreserved(
    db: Any, networkIds: list[int], ganeti: Mapping[int, logic.GanetiNetwork]
) -> dict[int, list[str]]:
    """
    By network id, Ganeti's external reservations that fall in the
    network's IPv4 pools without being reserved there.
    """
    out: dict[int, list[str]] = {}
    repo = IPPoolRepository(db)
    for networkId in networkIds:
        g = ganeti.get(networkId)
        if g is None or not g.external:
            continue
        for pool in await repo.listByNetwork(networkId):
            bitmap = pools.Bitmap.load(pool.size, pool.available, pool.reserved)
            for address in sorted(g.external):
                index = pools.indexOf(pool, address)
                if index is not None and not bitmap.isReserved(index):
                    out.setdefault(networkId, []).append(address)
    return out


async def _fixNetwork(
    db: Any,
    client: Any,
    backend: Backend,
    drift: NetworkDrift,
    networks: Mapping[int, Any],
    rows: Mapping[int, Any],
    now: datetime,
    prefix: str,
    apply: Apply,
) -> str:
    name = naming.networkName(drift.networkId, prefix)
    row = rows.get(drift.networkId)
    stamps = [t for t in (row.backendtime, getattr(row, "jobtime", None)) if t is not None] if row is not None else []
    after = max(stamps) if stamps else None
    if drift.kind == logic.NET_UNSYNCED:
        message = logic.networkMessage(
            drift.networkId, "OP_NETWORK_CONNECT", "success", now, after, backend.clustername, prefix
        )
        return await _applyAll(db, apply, "network", [message])
    if drift.kind == logic.NET_STALE:
        message = logic.networkMessage(
            drift.networkId, "OP_NETWORK_REMOVE", "success", now, after, backend.clustername, prefix
        )
        return await _applyAll(db, apply, "network", [message])
    if drift.kind == logic.NET_UNRESERVED:
        message = logic.networkMessage(
            drift.networkId,
            "OP_NETWORK_SET_PARAMS",
            "success",
            now,
            after,
            backend.clustername,
            prefix,
            jobFields={"add_reserved_ips": list(drift.addresses)},
        )
        return await _applyAll(db, apply, "network", [message])
    if drift.kind == logic.NET_PARTED:
        from synnefo_twisted.db.pools import BackendNetworkRepository

        await BackendNetworkRepository(db).getOrCreate(drift.networkId, backend.id)
        return "fixed"
    if drift.kind == logic.NET_HANGING:
        network = networks[drift.networkId]
        for group in drift.groups:
            await client.connectNetwork(name, group, network.mode, network.link or "")
        return "fixed"
    if drift.kind == logic.NET_ORPHAN:
        jobs = [await client.disconnectNetwork(name, group) for group in drift.groups]
        depends = [[job, ["success", "error", "canceled"]] for job in jobs]
        await client.deleteNetwork(name, **({"depends": depends} if depends else {}))
        return "fixed"
    return "not fixed: the network must be created on the backend again"
