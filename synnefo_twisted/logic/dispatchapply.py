# -*- test-case-name: tests.logic.test_dispatchapply -*-
"""
The transactional shell of the dispatcher's state machine
(L{synnefo_twisted.logic.dispatch}): one message, one database
transaction, the server or network row locked for its whole length, the
quota commission resolved inside it. Whoever calls L{applyMessage} acks
the message once its Deferred fires (after the commit).

The reconciler fixes drift with the same call: it builds a synthetic
C{"op"} message (current time as C{event_time}, the opcode and status
that describe what Ganeti has, C{jobId} 0) and applies it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from synnefo_twisted.db.dispatch import DispatchRepository
from synnefo_twisted.db.pools import IPPoolRepository
from synnefo_twisted.db.repositories import QuotaRepository
from synnefo_twisted.ganeti import naming
from synnefo_twisted.logic import dispatch, pools
from synnefo_twisted.logic import networks as netlogic
from synnefo_twisted.logic.dispatch import DispatchError, MalformedMessage

__all__ = ["ApplyOutcome", "DispatchError", "MalformedMessage", "applyMessage"]

log = Logger()


@attrs.frozen
class ApplyOutcome:
    """
    What applying a message did.

    @ivar applied: something changed (False for a stale or repeated
        message, or one about an unknown or foreign object: still acked).
    @ivar reason: C{applied}, C{stale}, C{deleted}, C{unknown-instance},
        C{unknown-network}, C{unknown-backend}, C{not-ours}, C{cluster}.
    @ivar target: the server or network id concerned, if any.
    @ivar cluster: for a cluster message, the cluster whose resources the
        caller should refresh.
    """

    applied: bool
    reason: str
    kind: str = "op"
    target: int | None = None
    cluster: str | None = None


def applyMessage(
    db: Any, kind: str, message: Mapping[str, Any], *, prefix: str = naming.DEFAULT_PREFIX
) -> Deferred[ApplyOutcome]:
    """
    Apply one decoded message of queue family C{kind} (C{op}, C{network},
    C{progress}, C{cluster}) in one transaction. Idempotent.

    @raise MalformedMessage: (in the Deferred) it can never be applied.
    @raise DispatchError: (in the Deferred) it cannot be applied now.
    """
    return Deferred.fromCoroutine(_apply(db, kind, message, prefix))


async def _apply(db: Any, kind: str, message: Mapping[str, Any], prefix: str) -> ApplyOutcome:
    if kind == "op":
        op = dispatch.parseOpMessage(message, prefix)
        if op.serverId is None:
            return ApplyOutcome(False, "not-ours", kind)
        update = dispatch.rowUpdate(op)
        if update is not None and await DispatchRepository(db).applyRowUpdate(update):
            # The common case (queued, running, a start or stop ending): one
            # statement, its own transaction. When it writes nothing, the
            # full path tells why (stale, deleted, unknown) or does the rest.
            return ApplyOutcome(True, "applied", kind, op.serverId)
        outcome: ApplyOutcome = await db.runInteraction(_applyOp, op, prefix)
    elif kind == "progress":
        progress = dispatch.parseProgressMessage(message, prefix)
        if progress.serverId is None:
            return ApplyOutcome(False, "not-ours", kind)
        outcome = await db.runInteraction(_applyProgress, progress)
    elif kind == "network":
        net = dispatch.parseNetworkMessage(message, prefix)
        if net.networkId is None:
            return ApplyOutcome(False, "not-ours", kind)
        outcome = await db.runInteraction(_applyNetwork, net)
    elif kind == "cluster":
        cluster = dispatch.parseClusterMessage(message)
        wanted = cluster.operation == "OP_CLUSTER_SET_PARAMS" and cluster.status == dispatch.SUCCESS
        outcome = ApplyOutcome(False, "cluster", kind, cluster=cluster.cluster if wanted else None)
    else:
        raise ValueError(f"unknown message kind {kind!r}")
    return outcome


async def _applyOp(tx: Any, message: dispatch.OpMessage, prefix: str) -> ApplyOutcome:
    repo = DispatchRepository(tx)
    assert message.serverId is not None
    server = await repo.lockServer(message.serverId)
    if server is None:
        log.info(
            "op-status for unknown server {instance} (job {job_id}) ignored", instance=message.instance,
            job_id=message.jobId,
        )  # fmt: skip
        return ApplyOutcome(False, "unknown-instance", "op", message.serverId)
    flavorId: int | None = None
    spec = dispatch.beparamsSpec(message)
    if spec is not None:
        flavorId = await repo.flavorLike(server.flavor_id, *spec)
        if flavorId is None and not server.deleted:
            raise DispatchError(f"no flavor with vcpus/ram {spec} like flavor {server.flavor_id} of server {server.id}")
    decision = dispatch.decideOp(server, message, flavorId)
    if decision.activateTags:
        await repo.setTagsStatus(server.id, "ACTIVE")
    if not decision.applied:
        return ApplyOutcome(False, decision.reason, "op", server.id)
    if decision.fields:
        await repo.updateServer(server.id, decision.fields)
    if decision.remove:
        for port in await repo.ports(server.id):
            await netlogic._deletePort(tx, port.id)
        await repo.markVolumes(server.id, "DELETED", deleted=True)
    if decision.portsError:
        await repo.markPorts(server.id, "ERROR")
    if decision.createFailed:
        await repo.markVolumes(server.id, "ERROR")
        await repo.deleteTags(server.id)
    if decision.nics is not None:
        plan = dispatch.planNics(await repo.ports(server.id), decision.nics, message.eventTime, prefix)
        for portId, fields in plan.updates:
            await repo.updatePort(portId, fields)
        for portId in plan.delete:
            await netlogic._deletePort(tx, portId)
        if plan.unknown:
            log.warn("server {server_id}: Ganeti NICs {nics} match no port", server_id=server.id, nics=plan.unknown)
    if decision.disks is not None:
        for volumeId, fields in dispatch.planDisks(await repo.volumes(server.id), decision.disks, prefix):
            await repo.updateVolume(volumeId, fields)
    if decision.addTags:
        await repo.activateTags(server.id, decision.addTags)
    if decision.deleteTags:
        await repo.deleteTags(server.id, decision.deleteTags)
    if decision.commission is not None:
        quotas = QuotaRepository(tx)
        if decision.accept:
            await quotas.accept(decision.commission)
        else:
            await quotas.reject(decision.commission)
    return ApplyOutcome(True, "applied", "op", server.id)


async def _applyProgress(tx: Any, message: dispatch.ProgressMessage) -> ApplyOutcome:
    repo = DispatchRepository(tx)
    assert message.serverId is not None
    server = await repo.lockServer(message.serverId)
    if server is None:
        return ApplyOutcome(False, "unknown-instance", "progress", message.serverId)
    applied = False
    percentage = dispatch.decideProgress(server, message)
    if percentage is not None:
        await repo.updateServer(server.id, {"buildpercentage": percentage})
        applied = True
    if message.level is not None:
        added = await repo.addDiagnosticOnce(
            server.id, message.source, message.level, message.message, message.details, message.eventTime
        )
        applied = applied or added
    return ApplyOutcome(applied, "applied" if applied else "stale", "progress", server.id)


async def _applyNetwork(tx: Any, message: dispatch.NetworkMessage) -> ApplyOutcome:
    repo = DispatchRepository(tx)
    assert message.networkId is not None
    network = await repo.lockNetwork(message.networkId)
    if network is None:
        return ApplyOutcome(False, "unknown-network", "network", message.networkId)
    if network.deleted:
        return ApplyOutcome(False, "deleted", "network", network.id)
    backendId = await repo.backendIdByCluster(message.cluster)
    if backendId is None:
        log.warn("network message from unknown cluster {cluster} ignored", cluster=message.cluster)
        return ApplyOutcome(False, "unknown-backend", "network", network.id)
    backendNetwork = await repo.lockBackendNetwork(network.id, backendId)
    fields = dispatch.decideNetwork(backendNetwork, message)
    add, remove = dispatch.reservedIPs(message)
    if not fields and not add and not remove:
        return ApplyOutcome(False, "stale", "network", network.id)
    if fields:
        await repo.updateBackendNetwork(backendNetwork.id, fields)
    if add or remove:
        await _reserve(tx, network.id, add, remove)
    if "operstate" in fields:
        await netlogic._updateNetworkState(tx, network.id)
    return ApplyOutcome(True, "applied", "network", network.id)


async def _reserve(tx: Any, networkId: int, add: list[str], remove: list[str]) -> None:
    """
    Mark addresses reserved (or no longer) in the network's IPv4 pools, as
    an C{OP_NETWORK_SET_PARAMS} did in Ganeti.
    """
    repo = IPPoolRepository(tx)
    for pool in await repo.lockByNetwork(networkId):
        bitmap = pools.Bitmap.load(pool.size, pool.available, pool.reserved)
        changed = False
        for address, reserve in [(a, True) for a in add] + [(a, False) for a in remove]:
            index = pools.indexOf(pool, address)
            if index is None:
                continue
            if reserve and not bitmap.isReserved(index):
                bitmap.reserve(index)
                changed = True
            elif not reserve and bitmap.isReserved(index):
                bitmap.unreserve(index)
                changed = True
        if changed:
            await repo.store(pool.id, *bitmap.dump())
