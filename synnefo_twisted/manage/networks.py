# -*- test-case-name: tests.manage.test_networks -*-
"""
Network commands: network-create/list/inspect/modify/remove,
subnet-create/list/inspect/modify, port-create/list/inspect/remove and
floating-ip-create/list/attach/detach/remove.

Validation, allocation and deletion are the network logic's
(L{synnefo_twisted.logic.networks}); what reaches Ganeti (NIC add/remove
on a server, removing a network from its clusters) goes through the
node's backend registry.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
from collections.abc import Sequence
from typing import Any

import attrs

from synnefo_twisted.db import models
from synnefo_twisted.db.manage import AdminQueries
from synnefo_twisted.db.pools import BackendNetworkRepository, IPPoolRepository
from synnefo_twisted.db.repositories import (
    BackendRepository,
    NetworkRepository,
    PortRepository,
    ServerRepository,
    SubnetRepository,
    UserRepository,
)
from synnefo_twisted.ganeti import naming
from synnefo_twisted.ganeti.errors import GanetiError
from synnefo_twisted.logic import networks as netlogic
from synnefo_twisted.logic import pools as poollogic
from synnefo_twisted.logic.networkops import removeFromBackend
from synnefo_twisted.logic.networks import BadRequestError, NetworkRequestError
from synnefo_twisted.logic.servers import ServerFault, validateServerAction
from synnefo_twisted.manage.base import JOB_WAIT_TIMEOUT, BadInput, CommandError, ManageContext, command
from synnefo_twisted.manage.output import formatMapping, formatTable
from synnefo_twisted.manage.pools import changeReservations, poolCounts
from synnefo_twisted.manage.servers import findServer, positiveId
from synnefo_twisted.manage.users import findUser, parseBool


def isUnicastPrefix(value: str) -> bool:
    """
    A MAC prefix Ganeti accepts: three octets (the last may be one hex
    digit, Synnefo's C{aa:00:0} style), the first one unicast.
    """
    if re.fullmatch(r"[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{1,2}", value.lower()) is None:
        return False
    return int(value[:2], 16) & 1 == 0


def refused(e: NetworkRequestError | poollogic.PoolError) -> CommandError:
    """
    The operator-facing error for a refusal of the network logic: a
    malformed value is bad input (exit 2), anything else exit 1.
    """
    if isinstance(e, BadRequestError):
        return BadInput(f"{e.field}: {e.message}")
    return CommandError(e.message)


async def findNetwork(database: Any, networkId: int, *, live: bool = True) -> models.Network:
    network = await NetworkRepository(database).get(networkId)
    if network is None or (live and network.deleted):
        raise CommandError(f"no network {networkId}")
    return network


async def _userid(database: Any, ident: str | None) -> str | None:
    if ident is None:
        return None
    return (await findUser(UserRepository(database), ident)).uuid


def _addressPair(value: str) -> dict[str, str]:
    start, sep, end = value.partition(",")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected START,END, not {value!r}")
    return {"start": start.strip(), "end": end.strip()}


def _route(value: str) -> dict[str, str]:
    destination, sep, nexthop = value.partition(",")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected DESTINATION_CIDR,NEXTHOP, not {value!r}")
    return {"destination": destination.strip(), "nexthop": nexthop.strip()}


def _subnetBody(
    cidr: str,
    *,
    name: str | None = None,
    gateway: str | None = None,
    noGateway: bool = False,
    dhcp: bool | None = None,
    pools: Sequence[dict[str, str]] = (),
    dns: Sequence[str] = (),
    routes: Sequence[dict[str, str]] = (),
    version: int | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"cidr": cidr}
    if version is None:
        try:
            version = ipaddress.ip_network(cidr, strict=False).version
        except ValueError:
            version = 4
    body["ip_version"] = version
    if name is not None:
        body["name"] = name
    if noGateway:
        body["gateway_ip"] = None
    elif gateway is not None:
        body["gateway_ip"] = gateway
    if dhcp is not None:
        body["enable_dhcp"] = dhcp
    if pools:
        body["allocation_pools"] = list(pools)
    if dns:
        body["dns_nameservers"] = list(dns)
    if routes:
        body["host_routes"] = list(routes)
    return {"subnet": body}


# -- networks --------------------------------------------------------------------------------------

NETWORK_COLUMNS = [
    "id",
    "name",
    "flavor",
    "user",
    "public",
    "floating_ip_pool",
    "status",
    "mode",
    "link",
    "mac_prefix",
    "subnets",
    "deleted",
]


def _networkRow(network: models.Network, subnets: Sequence[models.Subnet]) -> list[Any]:
    return [
        network.id,
        network.name,
        network.flavor,
        network.userid,
        network.public,
        network.floating_ip_pool,
        netlogic.apiStatus(network),
        network.mode,
        network.link,
        network.mac_prefix,
        [s.cidr for s in subnets],
        network.deleted,
    ]


def _networkCreateArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", default="", help="network name")
    parser.add_argument("--flavor", required=True, choices=sorted(netlogic.FLAVORS), help="network type")
    parser.add_argument("--user", help="owner (id, uuid or e-mail); required unless --public")
    parser.add_argument("--project", help="project uuid")
    parser.add_argument("--public", action="store_true", help="a public network (every user may use it)")
    parser.add_argument("--floating-ip-pool", type=parseBool, default=False, metavar="True|False",
                        help="floating IPs are allocated from this network")  # fmt: skip
    parser.add_argument("--subnet", metavar="CIDR", help="IPv4 subnet")
    parser.add_argument("--gateway", help="IPv4 gateway (default: the subnet's first address)")
    parser.add_argument("--no-gateway", action="store_true", help="the IPv4 subnet has no gateway")
    parser.add_argument("--subnet6", metavar="CIDR", help="IPv6 subnet (/64)")
    parser.add_argument("--gateway6", help="IPv6 gateway")
    parser.add_argument("--dhcp", type=parseBool, metavar="True|False", help="serve DHCP (default True)")
    parser.add_argument("--allocation-pool", type=_addressPair, action="append", default=[], metavar="START,END",
                        help="IPv4 allocation pool (repeat; default: every host address)")  # fmt: skip
    parser.add_argument("--link", help="bridge of a CUSTOM network (default: the deployment's)")
    parser.add_argument("--mac-prefix", help="MAC prefix of a network whose prefix is not pooled")
    parser.add_argument("--drained", action="store_true", help="create it drained (no new ports)")


@command("network-create", "create a network (and its subnets) as an administrator", _networkCreateArguments)
async def networkCreate(context: ManageContext, args: argparse.Namespace) -> None:
    defaults = netlogic.NetworkDefaults()
    spec = netlogic.FLAVORS[args.flavor]
    if args.link is not None:
        if spec.link != "default_bridge":
            raise BadInput(f"--link applies to CUSTOM networks; a {args.flavor} network's link is not chosen")
        defaults = attrs.evolve(defaults, default_bridge=args.link)
    if args.mac_prefix is not None:
        if spec.macPrefix == netlogic.POOL:
            raise BadInput(f"the MAC prefix of a {args.flavor} network comes from the MAC-prefix pool")
        if not isUnicastPrefix(args.mac_prefix):
            raise BadInput(f"{args.mac_prefix!r} is not a unicast MAC prefix like aa:00:01")
        defaults = attrs.evolve(defaults, default_mac_prefix=args.mac_prefix)
    if args.subnet is None and (args.gateway or args.no_gateway or args.allocation_pool):
        raise BadInput("--gateway, --no-gateway and --allocation-pool need --subnet")
    if args.subnet6 is None and args.gateway6:
        raise BadInput("--gateway6 needs --subnet6")
    if args.public and args.flavor == "MAC_FILTERED":
        raise BadInput("a MAC_FILTERED network cannot be public")
    database = await context.database()
    userid = await _userid(database, args.user)
    if userid is None and not args.public:
        raise BadInput("a private network needs --user")
    try:
        request = netlogic.parseNetwork(
            {"network": {"type": args.flavor, "name": args.name, "project": args.project}}, defaults, admin=True
        )
        subnets = []
        if args.subnet is not None:
            body = _subnetBody(args.subnet, gateway=args.gateway, noGateway=args.no_gateway, dhcp=args.dhcp,
                               pools=args.allocation_pool, version=4)  # fmt: skip
            subnets.append(netlogic.parseSubnet(body, defaults, networkId=0))
        if args.subnet6 is not None:
            body = _subnetBody(args.subnet6, gateway=args.gateway6, noGateway=args.gateway6 is None,
                               dhcp=args.dhcp, version=6)  # fmt: skip
            subnets.append(netlogic.parseSubnet(body, defaults, networkId=0))
        created = await netlogic.createNetwork(
            database,
            request,
            userid,
            defaults,
            subnets=subnets,
            public=args.public,
            floatingIPPool=args.floating_ip_pool,
        )
    except NetworkRequestError as e:
        raise refused(e) from None
    network = created.network
    if args.drained:
        drained = await NetworkRepository(database).update(network.id, drained=True)
        assert drained is not None
        network = drained
    context.out.write(
        formatMapping(dict(zip(NETWORK_COLUMNS, _networkRow(network, created.subnets))), context.outputFormat)
    )


def _networkListArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", help="only this user's networks (id, uuid or e-mail)")
    parser.add_argument("--public", action="store_true", help="only public networks")
    parser.add_argument("--deleted", action="store_true", help="include deleted networks")


@command("network-list", "list networks of every user", _networkListArguments)
async def networkList(context: ManageContext, args: argparse.Namespace) -> None:
    database = await context.database()
    userid = await _userid(database, args.user)
    networks = await NetworkRepository(database).list(includeDeleted=args.deleted)
    if userid is not None:
        networks = [n for n in networks if n.userid == userid]
    if args.public:
        networks = [n for n in networks if n.public]
    subnets = await AdminQueries(database).subnets(includeDeleted=args.deleted)
    rows = [_networkRow(n, [s for s in subnets if s.network_id == n.id]) for n in networks]
    context.out.write(formatTable(NETWORK_COLUMNS, rows, context.outputFormat))


def _idArgument(what: str) -> Any:
    def add(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("id", type=positiveId, help=f"{what} id")

    return add


@command("network-inspect", "show a network: subnets, pools, ports, floating IPs and its state on each backend",
         _idArgument("network"))  # fmt: skip
async def networkInspect(context: ManageContext, args: argparse.Namespace) -> None:
    database = await context.database()
    network = await findNetwork(database, args.id, live=False)
    queries = AdminQueries(database)
    subnets = await queries.subnets(networkId=network.id, includeDeleted=network.deleted)
    data: dict[str, Any] = dict(zip(NETWORK_COLUMNS, _networkRow(network, subnets)))
    data.update(
        {
            "project": network.project,
            "drained": network.drained,
            "state": network.state,
            "action": network.action,
            "tags": list(network.tags),
            "ganeti_name": naming.networkName(network.id, context.backends(database).prefix),
        }
    )
    ipPools = IPPoolRepository(database)
    for subnet in subnets:
        pools = await ipPools.listBySubnet(subnet.id)
        free, size = 0, 0
        for pool in pools:
            counts = poolCounts(pool.size, pool.available, pool.reserved)
            free, size = free + counts["free"], size + pool.size
        data[f"subnet {subnet.id}"] = (
            f"IPv{subnet.ipversion} {subnet.cidr} gateway {subnet.gateway or '-'} dhcp {subnet.dhcp}"
            + (f" free {free}/{size}" if pools else "")
        )
    backends = {b.id: b.clustername for b in await BackendRepository(database).list()}
    for bn in await BackendNetworkRepository(database).listByNetwork(network.id):
        job = f" job {bn.backendjobid} {bn.backendopcode} {bn.backendjobstatus}" if bn.backendjobid else ""
        data[f"backend {backends.get(bn.backend_id, bn.backend_id)}"] = f"{bn.operstate}{job}"
    ports = await PortRepository(database).listByNetwork(network.id)
    data["ports"] = [f"{p.id}" + (f" (server {p.server_id})" if p.server_id else "") for p in ports]
    data["floating_ips"] = [ip.address for ip in await queries.ips(floating=True, networkId=network.id)]
    context.out.write(formatMapping(data, context.outputFormat))


def _networkModifyArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", type=positiveId, help="network id")
    parser.add_argument("--name", help="new name")
    parser.add_argument("--user", help="new owner (id, uuid or e-mail)")
    parser.add_argument("--drained", type=parseBool, metavar="True|False", help="no new ports on it")
    parser.add_argument("--floating-ip-pool", type=parseBool, metavar="True|False",
                        help="floating IPs are allocated from it")  # fmt: skip
    parser.add_argument("--add-reserved-ips", type=lambda v: v.split(","), default=[], metavar="IP,IP",
                        help="never hand out these addresses")  # fmt: skip
    parser.add_argument("--remove-reserved-ips", type=lambda v: v.split(","), default=[], metavar="IP,IP",
                        help="hand these addresses out again")  # fmt: skip


@command("network-modify", "rename, reassign or drain a network; reserve or release addresses", _networkModifyArguments)
async def networkModify(context: ManageContext, args: argparse.Namespace) -> None:
    database = await context.database()
    network = await findNetwork(database, args.id)
    fields: dict[str, Any] = {}
    if args.name is not None:
        fields["name"] = args.name
    if args.user is not None:
        fields["userid"] = await _userid(database, args.user)
    if args.drained is not None:
        fields["drained"] = args.drained
    if args.floating_ip_pool is not None:
        if args.floating_ip_pool and not await IPPoolRepository(database).listByNetwork(network.id):
            raise CommandError(f"network {network.id} has no IPv4 subnet to allocate floating IPs from")
        fields["floating_ip_pool"] = args.floating_ip_pool
    if not fields and not args.add_reserved_ips and not args.remove_reserved_ips:
        raise CommandError(
            "nothing to change (give --name, --user, --drained, --floating-ip-pool, --add-reserved-ips "
            "or --remove-reserved-ips)"
        )
    if args.add_reserved_ips or args.remove_reserved_ips:
        await changeReservations(
            database, "ip", network.id, [a.strip() for a in args.add_reserved_ips],
            [a.strip() for a in args.remove_reserved_ips],
        )  # fmt: skip
    if fields:
        updated = await NetworkRepository(database).update(network.id, **fields)
        assert updated is not None
        network = updated
    subnets = await SubnetRepository(database).listByNetwork(network.id)
    context.out.write(formatMapping(dict(zip(NETWORK_COLUMNS, _networkRow(network, subnets))), context.outputFormat))


def _networkRemoveArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", type=positiveId, help="network id")
    parser.add_argument("--wait", action="store_true", help="wait for the Ganeti jobs to finish")


@command(
    "network-remove",
    "delete a network without ports or floating IPs; remove it from every backend that has it",
    _networkRemoveArguments,
)
async def networkRemove(context: ManageContext, args: argparse.Namespace) -> None:
    database = await context.database()
    await findNetwork(database, args.id)
    try:
        network = await netlogic.deleteNetwork(database, args.id, None, admin=True)
    except NetworkRequestError as e:
        raise refused(e) from None
    rows: list[list[Any]] = []
    if not network.deleted:
        registry = context.backends(database)
        name = naming.networkName(network.id, registry.prefix)
        backendNetworks = BackendNetworkRepository(database)
        for bn in await backendNetworks.listByNetwork(network.id):
            backend = await BackendRepository(database).get(bn.backend_id)
            assert backend is not None
            client = registry.clientFor(backend)
            try:
                jobId = await removeFromBackend(client, name)
            except GanetiError as e:
                raise CommandError(f"cannot remove {name} from {backend.clustername}: {e}") from None
            if jobId is None:
                await backendNetworks.update(bn.id, operstate="DELETED")
                rows.append([backend.clustername, None, "absent"])
                continue
            await backendNetworks.update(bn.id, backendjobid=jobId, backendopcode="OP_NETWORK_REMOVE",
                                         backendjobstatus="queued")  # fmt: skip
            status = "submitted"
            if args.wait:
                try:
                    job = await client.waitForJob(jobId, timeout=JOB_WAIT_TIMEOUT)
                    status = str(job.get("status"))
                except GanetiError as e:
                    raise CommandError(f"removing {name} from {backend.clustername} failed: {e}") from None
            rows.append([backend.clustername, jobId, status])
        finished = await netlogic.updateNetworkState(database, network.id)
        if finished is not None:
            network = finished
    context.err.write(f"network {network.id}: {network.state}\n")
    context.out.write(formatTable(["backend", "job", "status"], rows, context.outputFormat))


# -- subnets -------------------------------------------------------------------------------------------

SUBNET_COLUMNS = ["id", "network", "name", "ipversion", "cidr", "gateway", "dhcp", "public", "pools", "deleted"]


async def _subnetRow(database: Any, subnet: models.Subnet) -> list[Any]:
    pools = await IPPoolRepository(database).listBySubnet(subnet.id)
    ranges = [f"{p.base}-{poollogic.addressOf(p, p.size - 1)}" for p in pools]
    return [
        subnet.id,
        subnet.network_id,
        subnet.name,
        subnet.ipversion,
        subnet.cidr,
        subnet.gateway,
        subnet.dhcp,
        subnet.public,
        ranges,
        subnet.deleted,
    ]


def _subnetCreateArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--network", type=positiveId, required=True, help="network id")
    parser.add_argument("--cidr", required=True, help="the subnet, e.g. 10.0.0.0/24 or 2001:db8::/64")
    parser.add_argument("--name", help="subnet name")
    parser.add_argument("--ip-version", type=int, choices=(4, 6), help="4 or 6 (default: the CIDR's)")
    parser.add_argument("--gateway", help="gateway (default: the first address)")
    parser.add_argument("--no-gateway", action="store_true", help="no gateway")
    parser.add_argument("--dhcp", type=parseBool, metavar="True|False", help="serve DHCP (default True)")
    parser.add_argument("--allocation-pool", type=_addressPair, action="append", default=[], metavar="START,END",
                        help="IPv4 allocation pool (repeat)")  # fmt: skip
    parser.add_argument("--dns", action="append", default=[], metavar="IP", help="DNS name server (repeat)")
    parser.add_argument("--host-route", type=_route, action="append", default=[], metavar="CIDR,NEXTHOP",
                        help="host route (repeat)")  # fmt: skip


@command("subnet-create", "add a subnet (with its IPv4 allocation pools) to a network", _subnetCreateArguments)
async def subnetCreate(context: ManageContext, args: argparse.Namespace) -> None:
    if args.gateway and args.no_gateway:
        raise BadInput("give --gateway or --no-gateway, not both")
    database = await context.database()
    network = await findNetwork(database, args.network)
    body = _subnetBody(
        args.cidr,
        name=args.name,
        gateway=args.gateway,
        noGateway=args.no_gateway,
        dhcp=args.dhcp,
        pools=args.allocation_pool,
        dns=args.dns,
        routes=args.host_route,
        version=args.ip_version,
    )
    try:
        request = netlogic.parseSubnet(body, netlogic.NetworkDefaults(), networkId=network.id)
        subnet = await netlogic.createSubnet(database, request, None)
    except NetworkRequestError as e:
        raise refused(e) from None
    context.out.write(
        formatMapping(dict(zip(SUBNET_COLUMNS, await _subnetRow(database, subnet))), context.outputFormat)
    )


def _subnetListArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--network", type=positiveId, help="only this network's subnets")
    parser.add_argument("--deleted", action="store_true", help="include deleted subnets")


@command("subnet-list", "list subnets", _subnetListArguments)
async def subnetList(context: ManageContext, args: argparse.Namespace) -> None:
    database = await context.database()
    subnets = await AdminQueries(database).subnets(networkId=args.network, includeDeleted=args.deleted)
    rows = [await _subnetRow(database, s) for s in subnets]
    context.out.write(formatTable(SUBNET_COLUMNS, rows, context.outputFormat))


async def findSubnet(database: Any, subnetId: int) -> models.Subnet:
    subnet = await SubnetRepository(database).get(subnetId)
    if subnet is None:
        raise CommandError(f"no subnet {subnetId}")
    return subnet


@command("subnet-inspect", "show a subnet with its allocation pools and their use", _idArgument("subnet"))
async def subnetInspect(context: ManageContext, args: argparse.Namespace) -> None:
    database = await context.database()
    subnet = await findSubnet(database, args.id)
    pools = await IPPoolRepository(database).listBySubnet(subnet.id)
    data = netlogic.subnetView(subnet, pools)
    data["allocation_pools"] = [f"{p['start']}-{p['end']}" for p in data["allocation_pools"]]
    for pool in pools:
        counts = poolCounts(pool.size, pool.available, pool.reserved)
        data[f"pool {pool.id}"] = f"size {pool.size} free {counts['free']} reserved {counts['reserved']}"
    context.out.write(formatMapping(data, context.outputFormat))


def _subnetModifyArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", type=positiveId, help="subnet id")
    parser.add_argument("--name", required=True, help="new name (the only thing a subnet lets change)")


@command("subnet-modify", "rename a subnet", _subnetModifyArguments)
async def subnetModify(context: ManageContext, args: argparse.Namespace) -> None:
    if len(args.name) > 255:
        raise BadInput("--name must be at most 255 characters")
    database = await context.database()
    subnet = await findSubnet(database, args.id)
    if subnet.deleted:
        raise CommandError(f"subnet {subnet.id} is deleted")
    renamed = await AdminQueries(database).renameSubnet(subnet.id, args.name)
    assert renamed is not None
    context.out.write(
        formatMapping(dict(zip(SUBNET_COLUMNS, await _subnetRow(database, renamed))), context.outputFormat)
    )


# -- ports ---------------------------------------------------------------------------------------------

PORT_COLUMNS = ["id", "name", "user", "network", "server", "mac", "state", "device_owner", "ips", "created"]


def _portRow(port: models.Port, ips: Sequence[models.IPAddress]) -> list[Any]:
    return [
        port.id,
        port.name,
        port.userid,
        port.network_id,
        port.server_id,
        port.mac,
        port.state,
        port.device_owner,
        [ip.address for ip in ips],
        port.created.isoformat(),
    ]


async def _serverBackend(database: Any, server: models.Server) -> models.Backend:
    backend = await BackendRepository(database).get(server.backend_id) if server.backend_id is not None else None
    if backend is None:
        raise CommandError(f"server {server.id} has no backend")
    return backend


async def attachPort(
    context: ManageContext,
    database: Any,
    server: models.Server,
    networkId: int,
    *,
    address: str | None,
    name: str,
    wait: bool,
) -> tuple[netlogic.CreatedPort, int, str]:
    """
    Create a port of the server's owner on a network, for the server, and
    submit the NIC add to the server's cluster. The network must be
    active there; when the job cannot be submitted the port is deleted
    again.

    @return: the port and its addresses, the job id and its status.
    """
    try:
        validateServerAction(server, "CONNECT", isAdmin=True)
    except ServerFault as e:
        raise CommandError(f"cannot add a port to server {server.id}: {e.message}") from None
    backend = await _serverBackend(database, server)
    present = await BackendNetworkRepository(database).get(networkId, backend.id)
    if present is None or present.operstate != "ACTIVE":
        raise CommandError(f"network {networkId} is not active on {backend.clustername}, where server {server.id} runs")
    try:
        created = await netlogic.createPort(
            database, networkId, server.userid, serverId=server.id, address=address, name=name, project=server.project
        )
    except (NetworkRequestError, poollogic.PoolError) as e:
        raise refused(e) from None
    registry = context.backends(database)
    client = registry.clientFor(backend)
    ipv4 = next((ip.address for ip in created.ips if ip.ipversion == 4), None)
    nic = {
        "name": naming.nicName(created.port.id, registry.prefix),
        "network": naming.networkName(networkId, registry.prefix),
        "ip": ipv4,
    }
    try:
        jobId: int = await client.modifyInstance(
            naming.instanceName(server.id, registry.prefix), nics=[["add", -1, nic]], hotplug=True
        )
    except GanetiError as e:
        await netlogic.deletePort(database, created.port.id)
        raise CommandError(f"cannot add the NIC to server {server.id} on {backend.clustername}: {e}") from None
    status = await _wait(client, jobId, wait)
    return created, jobId, status


async def _wait(client: Any, jobId: int, wait: bool) -> str:
    if not wait:
        return "submitted"
    try:
        job = await client.waitForJob(jobId, timeout=JOB_WAIT_TIMEOUT)
    except GanetiError as e:
        raise CommandError(f"job {jobId} did not succeed: {e}") from None
    return str(job.get("status"))


async def detachPort(context: ManageContext, database: Any, port: models.Port, wait: bool) -> tuple[int | None, str]:
    """
    Remove a port: first its NIC from the server (when attached to one),
    then the port (its addresses go back to their pools; a floating IP
    is only detached).

    @return: the NIC removal job (None without a server) and its status.
    """
    jobId: int | None = None
    status = "deleted"
    if port.server_id is not None:
        server = await ServerRepository(database).get(port.server_id)
        if server is not None and not server.deleted:
            try:
                validateServerAction(server, "DISCONNECT", isAdmin=True)
            except ServerFault as e:
                raise CommandError(f"cannot remove port {port.id} from server {server.id}: {e.message}") from None
            backend = await _serverBackend(database, server)
            registry = context.backends(database)
            client = registry.clientFor(backend)
            nicName = naming.nicName(port.id, registry.prefix)
            try:
                jobId = await client.modifyInstance(
                    naming.instanceName(server.id, registry.prefix), nics=[["remove", nicName, {}]], hotplug=True
                )
            except GanetiError as e:
                raise CommandError(f"cannot remove NIC {nicName} from server {server.id}: {e}") from None
            assert jobId is not None
            status = await _wait(client, jobId, wait)
    await netlogic.deletePort(database, port.id)
    return jobId, status


def _portCreateArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--network", type=positiveId, required=True, help="network id")
    parser.add_argument("--server", type=positiveId, help="attach to this server (a NIC is added in Ganeti)")
    parser.add_argument("--user", help="owner (id, uuid or e-mail); default: the server's owner")
    parser.add_argument("--name", default="", help="port name")
    parser.add_argument("--ipv4-address", help="this IPv4 address (default: the next free one)")
    parser.add_argument("--wait", action="store_true", help="wait for the NIC add job")


@command("port-create", "create a port on a network, optionally attached to a server", _portCreateArguments)
async def portCreate(context: ManageContext, args: argparse.Namespace) -> None:
    if args.ipv4_address is not None:
        try:
            ipaddress.IPv4Address(args.ipv4_address)
        except ValueError:
            raise BadInput(f"{args.ipv4_address!r} is not an IPv4 address") from None
    database = await context.database()
    await findNetwork(database, args.network)
    userid = await _userid(database, args.user)
    data: dict[str, Any]
    if args.server is not None:
        server = await findServer(database, args.server)
        if userid is not None and userid != server.userid:
            raise CommandError(f"server {server.id} belongs to another user")
        created, jobId, status = await attachPort(
            context, database, server, args.network, address=args.ipv4_address, name=args.name, wait=args.wait
        )
        data = dict(zip(PORT_COLUMNS, _portRow(created.port, created.ips)))
        data.update(job=jobId, job_status=status)
    else:
        if userid is None:
            raise BadInput("give --user (or --server) to own the port")
        try:
            created = await netlogic.createPort(database, args.network, userid, address=args.ipv4_address,
                                                name=args.name)  # fmt: skip
        except (NetworkRequestError, poollogic.PoolError) as e:
            raise refused(e) from None
        data = dict(zip(PORT_COLUMNS, _portRow(created.port, created.ips)))
    context.out.write(formatMapping(data, context.outputFormat))


def _portListArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--network", type=positiveId, help="only ports on this network")
    parser.add_argument("--server", type=positiveId, help="only ports of this server")
    parser.add_argument("--user", help="only this user's ports (id, uuid or e-mail)")


@command("port-list", "list ports", _portListArguments)
async def portList(context: ManageContext, args: argparse.Namespace) -> None:
    database = await context.database()
    userid = await _userid(database, args.user)
    ports = await AdminQueries(database).ports(networkId=args.network, serverId=args.server, userid=userid)
    repo = PortRepository(database)
    rows = [_portRow(p, await repo.ipsOfPort(p.id)) for p in ports]
    context.out.write(formatTable(PORT_COLUMNS, rows, context.outputFormat))


async def findPort(database: Any, portId: int) -> models.Port:
    port = await PortRepository(database).get(portId)
    if port is None:
        raise CommandError(f"no port {portId}")
    return port


@command("port-inspect", "show a port with its addresses", _idArgument("port"))
async def portInspect(context: ManageContext, args: argparse.Namespace) -> None:
    database = await context.database()
    port = await findPort(database, args.id)
    ips = await PortRepository(database).ipsOfPort(port.id)
    data = dict(zip(PORT_COLUMNS, _portRow(port, ips)))
    data.update(
        {
            "project": port.project,
            "firewall_profile": port.firewall_profile,
            "index": port.idx,
            "ganeti_name": naming.nicName(port.id, context.backends(database).prefix),
            "floating_ips": [ip.address for ip in ips if ip.floating_ip],
            "updated": port.updated.isoformat(),
        }
    )
    context.out.write(formatMapping(data, context.outputFormat))


def _portRemoveArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", type=positiveId, help="port id")
    parser.add_argument("--wait", action="store_true", help="wait for the NIC removal job")


@command("port-remove", "delete a port (removing its NIC from the server first)", _portRemoveArguments)
async def portRemove(context: ManageContext, args: argparse.Namespace) -> None:
    database = await context.database()
    port = await findPort(database, args.id)
    jobId, status = await detachPort(context, database, port, args.wait)
    context.out.write(formatMapping({"id": port.id, "job": jobId, "status": status}, context.outputFormat))


# -- floating IPs -------------------------------------------------------------------------------------

FLOATING_COLUMNS = ["id", "address", "network", "user", "project", "port", "server", "deleted"]


async def _floatingRow(database: Any, ip: models.IPAddress) -> list[Any]:
    server = None
    if ip.port_id is not None:
        port = await PortRepository(database).get(ip.port_id)
        server = None if port is None else port.server_id
    return [ip.id, ip.address, ip.network_id, ip.userid, ip.project, ip.port_id, server, ip.deleted]


async def findFloatingIP(database: Any, ipId: int) -> models.IPAddress:
    ip = await AdminQueries(database).ip(ipId)
    if ip is None or not ip.floating_ip or ip.deleted:
        raise CommandError(f"no floating IP {ipId}")
    return ip


def _floatingCreateArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", required=True, help="owner (id, uuid or e-mail)")
    parser.add_argument("--network", type=positiveId, help="floating-IP pool network (default: any with room)")
    parser.add_argument("--address", help="this address (needs --network)")
    parser.add_argument("--project", help="project uuid")


@command("floating-ip-create", "allocate a floating IP to a user", _floatingCreateArguments)
async def floatingIPCreate(context: ManageContext, args: argparse.Namespace) -> None:
    body: dict[str, Any] = {"floating_network_id": args.network, "floating_ip_address": args.address}
    if args.project is not None:
        body["project"] = args.project
    database = await context.database()
    userid = await _userid(database, args.user)
    assert userid is not None
    try:
        request = netlogic.parseFloatingIP({"floatingip": body})
        ip = await netlogic.allocateFloatingIP(database, userid, request)
    except NetworkRequestError as e:
        raise refused(e) from None
    context.out.write(
        formatMapping(dict(zip(FLOATING_COLUMNS, await _floatingRow(database, ip))), context.outputFormat)
    )


def _floatingListArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", help="only this user's floating IPs (id, uuid or e-mail)")
    parser.add_argument("--network", type=positiveId, help="only from this network")
    parser.add_argument("--deleted", action="store_true", help="include released ones")


@command("floating-ip-list", "list floating IPs", _floatingListArguments)
async def floatingIPList(context: ManageContext, args: argparse.Namespace) -> None:
    database = await context.database()
    userid = await _userid(database, args.user)
    ips = await AdminQueries(database).ips(
        floating=True, userid=userid, networkId=args.network, includeDeleted=args.deleted
    )
    rows = [await _floatingRow(database, ip) for ip in ips]
    context.out.write(formatTable(FLOATING_COLUMNS, rows, context.outputFormat))


def _floatingAttachArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", type=positiveId, help="floating IP id")
    parser.add_argument("--server", type=positiveId, required=True, help="the owner's server to attach it to")
    parser.add_argument("--wait", action="store_true", help="wait for the NIC add job")


@command("floating-ip-attach", "attach a floating IP to a server (a new port and NIC)", _floatingAttachArguments)
async def floatingIPAttach(context: ManageContext, args: argparse.Namespace) -> None:
    database = await context.database()
    ip = await findFloatingIP(database, args.id)
    if ip.port_id is not None:
        raise CommandError(f"floating IP {ip.address} is attached to port {ip.port_id} already")
    server = await findServer(database, args.server)
    if server.userid != ip.userid:
        raise CommandError(f"server {server.id} and floating IP {ip.id} belong to different users")
    _created, jobId, status = await attachPort(
        context, database, server, ip.network_id, address=ip.address, name="", wait=args.wait
    )
    ip = await findFloatingIP(database, ip.id)
    data = dict(zip(FLOATING_COLUMNS, await _floatingRow(database, ip)))
    data.update(job=jobId, job_status=status)
    context.out.write(formatMapping(data, context.outputFormat))


def _floatingDetachArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", type=positiveId, help="floating IP id")
    parser.add_argument("--wait", action="store_true", help="wait for the NIC removal job")


@command("floating-ip-detach", "detach a floating IP: remove its port and NIC", _floatingDetachArguments)
async def floatingIPDetach(context: ManageContext, args: argparse.Namespace) -> None:
    database = await context.database()
    ip = await findFloatingIP(database, args.id)
    if ip.port_id is None:
        raise CommandError(f"floating IP {ip.address} is not attached")
    port = await findPort(database, ip.port_id)
    jobId, status = await detachPort(context, database, port, args.wait)
    ip = await findFloatingIP(database, ip.id)
    data = dict(zip(FLOATING_COLUMNS, await _floatingRow(database, ip)))
    data.update(job=jobId, job_status=status)
    context.out.write(formatMapping(data, context.outputFormat))


@command("floating-ip-remove", "release a detached floating IP to its pool", _idArgument("floating IP"))
async def floatingIPRemove(context: ManageContext, args: argparse.Namespace) -> None:
    database = await context.database()
    await findFloatingIP(database, args.id)
    try:
        ip = await netlogic.releaseFloatingIP(database, args.id)
    except NetworkRequestError as e:
        raise refused(e) from None
    context.out.write(
        formatMapping(dict(zip(FLOATING_COLUMNS, await _floatingRow(database, ip))), context.outputFormat)
    )
