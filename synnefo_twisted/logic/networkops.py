# -*- test-case-name: tests.logic.test_networkops -*-
"""
The Ganeti side of network operations, over an L{IBackendRegistry}: make
a network exist and be connected on a server's cluster
(L{ensureNetworkActive}: C{CreateNetwork} + one C{ConnectNetwork} per node
group, spec §2.2), attach a port to a server (L{attachPort}: the port, then
C{ModifyInstance(nics=[["add", -1, {name, network, ip}]])} depending on
those jobs), detach it (L{detachPort}: C{nics=[["remove", <nic>, {}]]},
then the port goes and its addresses with it; a floating IP is only
detached) and remove a network from every cluster that has it
(L{removeNetworkFromBackends}).

Decisions and database writes are the network logic's
(L{synnefo_twisted.logic.networks}); refusals are its
L{NetworkRequestError}s, plus L{BackendUnavailable} (503) when Ganeti
cannot be reached, and the server logic's L{ServerFault} for server states
that do not allow a NIC change.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs
from twisted.logger import Logger

from synnefo_twisted.db import models
from synnefo_twisted.db.pools import BackendNetworkRepository
from synnefo_twisted.db.repositories import ServerRepository, SubnetRepository
from synnefo_twisted.ganeti import naming
from synnefo_twisted.ganeti.errors import GanetiError, JobNotFound, RapiNotFound
from synnefo_twisted.logic import networks as netlogic
from synnefo_twisted.logic.networks import NetworkRequestError
from synnefo_twisted.logic.servers import validateServerAction

log = Logger()

#: a dependent job waits for these, whatever the outcome
FINAL = ["success", "error", "canceled"]

#: the address Ganeti gets for a network without an IPv4 subnet (spec §2.2)
DUMMY_NETWORK = "10.0.0.0/29"

_PENDING_OPCODES = ("OP_NETWORK_ADD", "OP_NETWORK_CONNECT")
_RUNNING = ("queued", "waiting", "running", "canceling")


class BackendUnavailable(NetworkRequestError):
    """
    Ganeti refused or could not be reached (503); nothing was left half done.
    """

    code = 503
    fault = "serviceUnavailable"


@attrs.frozen
class AttachedPort:
    """
    A port created on a server, its addresses and the NIC-add job.
    """

    port: models.Port
    ips: tuple[models.IPAddress, ...]
    jobId: int


async def serverBackend(registry: Any, server: models.Server) -> models.Backend:
    """
    The backend a server runs on.

    @raise BackendUnavailable: it has none (never placed) or it is gone.
    """
    for backend in await registry.backends():
        if backend.id == server.backend_id:
            found: models.Backend = backend
            return found
    raise BackendUnavailable("server", f"server {server.id} has no backend")


def ganetiMacPrefix(prefix: str | None) -> str | None:
    """
    A network's MAC prefix as Ganeti takes it: three full octets. Synnefo's
    five-hex-digit prefixes (C{aa:00:1}, the MAC-prefix pool's values) get a
    trailing zero (C{aa:00:10}), so the NICs Ganeti makes stay inside the
    network's prefix and distinct prefixes stay distinct.
    """
    if prefix is None:
        return None
    octets = prefix.lower().split(":")
    if len(octets) == 3 and len(octets[2]) == 1:
        octets[2] += "0"
    return ":".join(octets)


def ganetiNetworkParameters(network: models.Network, subnets: Sequence[models.Subnet]) -> tuple[str, dict[str, Any]]:
    """
    The C{CreateNetwork} address and keyword arguments of a network (spec
    §1.9/§2.2): IPv4 CIDR and gateway (a dummy /29 without IPv4), IPv6
    CIDR and gateway, MAC prefix (L{ganetiMacPrefix}), the flavor's tags plus C{nfdhcpd} when
    a subnet has DHCP and C{public}/C{private}.
    """
    v4 = next((s for s in subnets if s.ipversion == 4), None)
    v6 = next((s for s in subnets if s.ipversion == 6), None)
    tags = list(network.tags)
    if any(s.dhcp for s in subnets):
        tags.append("nfdhcpd")
    tags.append("public" if network.public else "private")
    kwargs: dict[str, Any] = {
        "gateway": v4.gateway if v4 is not None else None,
        "network6": v6.cidr if v6 is not None else None,
        "gateway6": v6.gateway if v6 is not None else None,
        "mac_prefix": ganetiMacPrefix(network.mac_prefix),
        "conflicts_check": network.public and v4 is not None,
        "tags": tags,
    }
    return (v4.cidr if v4 is not None else DUMMY_NETWORK), kwargs


async def _groupNames(client: Any) -> list[str]:
    groups = await client.getGroups(bulk=True)
    return [str(g["name"]) for g in groups]


async def ensureNetworkActive(db: Any, registry: Any, backend: models.Backend, network: models.Network) -> list[int]:
    """
    Make C{network} exist and be connected on C{backend}; the ids of the
    jobs a NIC add must wait for (none when it is active there already).

    The (network, backend) row is created PENDING when missing and records
    the last job submitted. While that job runs its id is returned (no
    second submission); once it succeeded, or when Ganeti already has the
    network connected, the row becomes ACTIVE without waiting for the
    dispatcher; a network Ganeti has but not connected is only connected;
    otherwise (the job failed, or was archived and the network is missing)
    it is submitted again.

    @raise BackendUnavailable: Ganeti refused a job or could not be asked.
    """
    backendNetworks = BackendNetworkRepository(db)
    present = await backendNetworks.getOrCreate(network.id, backend.id, macPrefix=network.mac_prefix)
    if present.operstate == "ACTIVE":
        return []
    client = registry.clientFor(backend)
    name = naming.networkName(network.id, registry.prefix)
    try:
        if present.backendjobid is not None and present.backendopcode in _PENDING_OPCODES:
            try:
                status = (await client.getJob(present.backendjobid)).get("status")
            except JobNotFound:
                status = None
            if status in _RUNNING:
                return [present.backendjobid]
            if status == "success":
                await backendNetworks.update(present.id, operstate="ACTIVE", backendjobstatus="success")
                return []
        try:
            info = await client.getNetwork(name)
        except RapiNotFound:
            info = None
        if info is not None and info.get("group_list"):
            await backendNetworks.update(present.id, operstate="ACTIVE")
            return []
        address, kwargs = ganetiNetworkParameters(network, await SubnetRepository(db).listByNetwork(network.id))
        link = network.link or netlogic.defaultLink(network.id)
        jobs = [] if info is not None else [await client.createNetwork(name, address, **kwargs)]
        for group in await _groupNames(client):
            connectKwargs: dict[str, Any] = {"conflicts_check": kwargs["conflicts_check"]}
            if jobs:
                connectKwargs["depends"] = [[jobs[0], FINAL]]
            jobs.append(await client.connectNetwork(name, group, network.mode, link, **connectKwargs))
    except GanetiError as e:
        log.failure("creating network {network} on {cluster}", network=name, cluster=backend.clustername)
        raise BackendUnavailable("network", f"cannot create {name} on {backend.clustername}: {e}") from None
    if not jobs:
        return []
    opcode = "OP_NETWORK_CONNECT" if info is not None or len(jobs) > 1 else "OP_NETWORK_ADD"
    await backendNetworks.update(present.id, backendjobid=jobs[-1], backendopcode=opcode, backendjobstatus="queued")
    log.info(
        "network {network} submitted to {cluster}: jobs {jobs}", network=name, cluster=backend.clustername, jobs=jobs
    )
    return jobs


def networkActivator(db: Any, registry: Any) -> Callable[[models.Backend, models.Network], Awaitable[list[int]]]:
    """
    The server logic's C{activateNetwork}: L{ensureNetworkActive} over
    C{db} and C{registry}, so a new server's NICs wait for their networks.
    """

    def activate(backend: models.Backend, network: models.Network) -> Awaitable[list[int]]:
        return ensureNetworkActive(db, registry, backend, network)

    return activate


async def attachPort(
    db: Any,
    registry: Any,
    server: models.Server,
    network: models.Network,
    *,
    isAdmin: bool = False,
    hotplug: bool = True,
    address: str | None = None,
    name: str = "",
) -> AttachedPort:
    """
    Create a port of the server's owner on C{network} for C{server} (an
    IPv4 from the network's pools, C{address} if given; an C{address} that
    is the owner's floating IP on that network is attached instead), make
    the network active on the server's cluster and submit the NIC add,
    after the network jobs. When a job cannot be submitted the port is
    deleted again.

    @raise ServerFault: the server's state does not allow a NIC change.
    @raise NetworkRequestError: the network logic refused the port.
    @raise BackendUnavailable: Ganeti refused a job.
    """
    validateServerAction(server, "CONNECT", isAdmin=isAdmin, hotplug=hotplug)
    backend = await serverBackend(registry, server)
    created = await netlogic.createPort(
        db, network.id, server.userid, serverId=server.id, address=address, name=name, project=server.project
    )
    try:
        depends = await ensureNetworkActive(db, registry, backend, network)
        client = registry.clientFor(backend)
        ipv4 = next((ip.address for ip in created.ips if ip.ipversion == 4), None)
        nic = {
            "name": naming.nicName(created.port.id, registry.prefix),
            "network": naming.networkName(network.id, registry.prefix),
            "ip": ipv4,
        }
        kwargs: dict[str, Any] = {"nics": [["add", -1, nic]], "hotplug_if_possible": hotplug}
        if depends:
            kwargs["depends"] = [[job, FINAL] for job in depends]
        try:
            jobId: int = await client.modifyInstance(naming.instanceName(server.id, registry.prefix), **kwargs)
        except GanetiError as e:
            log.failure("adding a NIC to server {server_id}", server_id=server.id)
            raise BackendUnavailable("port", f"cannot add the NIC to server {server.id}: {e}") from None
    except Exception:
        await netlogic.deletePort(db, created.port.id)
        raise
    log.info(
        "port {port_id} on network {network_id} attached to server {server_id}: job {job_id}",
        port_id=created.port.id,
        network_id=network.id,
        server_id=server.id,
        job_id=jobId,
    )
    return AttachedPort(created.port, created.ips, jobId)


async def detachPort(
    db: Any, registry: Any, port: models.Port, *, isAdmin: bool = False, hotplug: bool = True
) -> int | None:
    """
    Remove a port: first its NIC from the server (when attached to a live
    one), then the port (its addresses go back to their pools; a floating
    IP is only detached). The NIC-remove job id, None without a server.

    @raise ServerFault: the server's state does not allow a NIC change.
    @raise BackendUnavailable: Ganeti refused the job (the port is kept).
    """
    jobId: int | None = None
    if port.server_id is not None:
        server = await ServerRepository(db).get(port.server_id)
        if server is not None and not server.deleted:
            validateServerAction(server, "DISCONNECT", isAdmin=isAdmin, hotplug=hotplug)
            backend = await serverBackend(registry, server)
            client = registry.clientFor(backend)
            nicName = naming.nicName(port.id, registry.prefix)
            try:
                jobId = await client.modifyInstance(
                    naming.instanceName(server.id, registry.prefix),
                    nics=[["remove", nicName, {}]],
                    hotplug_if_possible=hotplug,
                )
            except GanetiError as e:
                log.failure("removing NIC {nic} from server {server_id}", nic=nicName, server_id=server.id)
                raise BackendUnavailable("port", f"cannot remove NIC {nicName} from server {server.id}: {e}") from None
            log.info("port {port_id} detached from server {server_id}: job {job_id}",
                     port_id=port.id, server_id=server.id, job_id=jobId)  # fmt: skip
    await netlogic.deletePort(db, port.id)
    return jobId


async def removeFromBackend(client: Any, name: str) -> int | None:
    """
    Disconnect the Ganeti network C{name} from each node group, then remove
    it (one job depending on the disconnects); None when it is not there.
    """
    try:
        info = await client.getNetwork(name)
    except RapiNotFound:
        return None
    depends = []
    for group in info.get("group_list") or []:
        groupName = group[0] if isinstance(group, list) else str(group).split("(")[0]
        depends.append([await client.disconnectNetwork(name, groupName), FINAL])
    jobId: int = await client.deleteNetwork(name, depends=depends) if depends else await client.deleteNetwork(name)
    return jobId


async def removeNetworkFromBackends(db: Any, registry: Any, network: models.Network) -> models.Network:
    """
    After L{netlogic.deleteNetwork} marked a network for deletion: remove it
    from every backend that has it (a backend where Ganeti does not know it
    is DELETED at once), then recompute its state (DELETED, with its pools
    released, when no backend has it any more).

    @raise BackendUnavailable: Ganeti refused a job.
    """
    if network.deleted:
        return network
    backendNetworks = BackendNetworkRepository(db)
    name = naming.networkName(network.id, registry.prefix)
    backends = {b.id: b for b in await registry.backends()}
    for bn in await backendNetworks.listByNetwork(network.id):
        backend = backends.get(bn.backend_id)
        if backend is None:
            await backendNetworks.update(bn.id, operstate="DELETED")
            continue
        try:
            jobId = await removeFromBackend(registry.clientFor(backend), name)
        except GanetiError as e:
            log.failure("removing network {network} from {cluster}", network=name, cluster=backend.clustername)
            raise BackendUnavailable("network", f"cannot remove {name} from {backend.clustername}: {e}") from None
        if jobId is None:
            await backendNetworks.update(bn.id, operstate="DELETED")
        else:
            await backendNetworks.update(
                bn.id, backendjobid=jobId, backendopcode="OP_NETWORK_REMOVE", backendjobstatus="queued"
            )
    finished = await netlogic.updateNetworkState(db, network.id)
    return network if finished is None else finished
