# -*- test-case-name: tests.logic.test_networks -*-
"""
Network business logic (spec §1.8-1.10, §2.5).

Pure part: the network flavors and what they imply (L{FLAVORS},
L{flavorParameters}), validation of the network, subnet, port and
floating-IP request bodies into typed requests (L{parseNetwork},
L{parseSubnet}, L{parsePort}, L{parseFloatingIP}; every error is a
L{NetworkRequestError} naming the field), IPv6 EUI-64 addresses
(L{eui64Address}) and the state of a network derived from its backend
networks (L{networkState}, L{backendNetworkOperstate}), and the API objects
(L{networkView}, L{subnetView}, L{portView}, L{floatingIPView}).

Async shell over an L{IDatabase} (each call one transaction, pools taken
with row locks, see L{synnefo_twisted.logic.pools}): L{createNetwork},
L{createSubnet}, L{createPort}, L{setPortMac}, L{deletePort}, L{allocateFloatingIP},
L{releaseFloatingIP}, L{reassignNetwork}, L{reassignFloatingIP},
L{deleteNetwork}, L{updateNetworkState}, L{ensureResourcePools}; and
L{allocateServerPortIP}, run inside the server-create transaction.

Quota (C{cyclades.network.private}, C{cyclades.floating_ip}) is charged,
released or moved in the same transaction as the change it accounts for
(L{QuotaCharge}); a charge that does not fit is an L{OverLimitError} and
the transaction writes nothing. Row locks are always taken in one order:
the network or address row, then the quota holdings, then the pools.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from synnefo_twisted.db import models
from synnefo_twisted.db.pools import BackendNetworkRepository, IPPoolRepository, ResourcePoolRepository
from synnefo_twisted.db.repositories import (
    NetworkRepository,
    PortRepository,
    ProjectRepository,
    QuotaExceededError,
    QuotaRepository,
    SubnetRepository,
    UserRepository,
)
from synnefo_twisted.logic import pools
from synnefo_twisted.logic.pools import IPRange, PoolExhaustedError

log = Logger()

# -- errors --------------------------------------------------------------------------------


class NetworkRequestError(Exception):
    """
    A request that cannot be honoured. C{field} is the dotted path of the
    offending field (C{subnet.cidr}), C{message} the human explanation and
    C{code} the HTTP status of the fault (spec §1.2).
    """

    code = 400
    fault = "badRequest"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class BadRequestError(NetworkRequestError):
    """
    A malformed body (400).
    """


class ForbiddenError(NetworkRequestError):
    """
    Allowed by the format but not to this user or in this deployment (403).
    """

    code = 403
    fault = "forbidden"


class ConflictError(NetworkRequestError):
    """
    The request conflicts with the state of the resources (409).
    """

    code = 409
    fault = "conflict"


class OverLimitError(NetworkRequestError):
    """
    A size or quota limit (413).
    """

    code = 413
    fault = "overLimit"


class NotFoundError(NetworkRequestError):
    """
    A referenced resource does not exist (404).
    """

    code = 404
    fault = "itemNotFound"


# -- quota --------------------------------------------------------------------------------


@attrs.frozen
class QuotaCharge:
    """
    A quota change that goes with an operation, in its transaction:
    C{quantity} of C{resource} on the project's holding (and the member's
    C{userId}, when it has one); negative releases.
    """

    projectId: int
    userId: int | None
    resource: str
    quantity: int = 1
    name: str = ""


async def _charge(tx: Any, charge: QuotaCharge | None, field: str) -> None:
    """
    Issue and accept C{charge} inside the current transaction (the holdings
    are row-locked, so concurrent charges serialize).

    @raise OverLimitError: it does not fit; the transaction rolls back.
    """
    if charge is None:
        return
    quotas = QuotaRepository(tx)
    try:
        commission = await quotas.issue(
            charge.projectId, charge.userId, {charge.resource: charge.quantity}, name=charge.name
        )
    except QuotaExceededError as e:
        raise OverLimitError(field, f"Resource limit exceeded for your account: {e}") from None
    await quotas.accept(commission.id)


async def _holderCharge(
    tx: Any, owner: str | None, projectUUID: str | None, resource: str, quantity: int, name: str
) -> QuotaCharge | None:
    """
    C{quantity} of C{resource} on project C{projectUUID} for the user
    C{owner}, read inside the transaction (None without such a project).
    """
    if projectUUID is None:
        return None
    project = await ProjectRepository(tx).byUUID(projectUUID)
    if project is None:
        return None
    user = await UserRepository(tx).byUUID(owner) if owner is not None else None
    return QuotaCharge(project.id, None if user is None else user.id, resource, quantity, name)


# -- flavors -----------------------------------------------------------------------------

POOL = "pool"


@attrs.frozen
class FlavorSpec:
    """
    What a network flavor implies: C{link} and C{macPrefix} are a setting
    name (C{"default_bridge"} ...), L{POOL} (taken from the pool) or None.
    """

    mode: str
    link: str | None
    macPrefix: str
    tags: tuple[str, ...]


FLAVORS: Mapping[str, FlavorSpec] = {
    "CUSTOM": FlavorSpec("bridged", "default_bridge", "default_mac_prefix", ()),
    "IP_LESS_ROUTED": FlavorSpec("routed", None, "default_mac_prefix", ("ip-less-routed",)),
    "MAC_FILTERED": FlavorSpec("bridged", "default_mac_filtered_bridge", POOL, ("private-filtered",)),
    "PHYSICAL_VLAN": FlavorSpec("bridged", POOL, "default_mac_prefix", ("physical-vlan",)),
}


@attrs.frozen
class NetworkDefaults:
    """
    The deployment's network settings (Synnefo's C{DEFAULT_BRIDGE},
    C{DEFAULT_MAC_PREFIX}, C{DEFAULT_MAC_FILTERED_BRIDGE},
    C{API_ENABLED_NETWORK_FLAVORS}, C{MAX_CIDR_BLOCK}).
    """

    default_bridge: str = "br0"
    default_mac_prefix: str = "aa:00:0"
    default_mac_filtered_bridge: str = "prv0"
    enabledFlavors: frozenset[str] = frozenset({"MAC_FILTERED"})
    maxCidrBlock: int = 22


@attrs.frozen
class FlavorParameters:
    """
    Mode, link and MAC prefix of a new network; C{link}/C{macPrefix} is
    L{POOL} when it must be taken from its pool, C{link} None when it is
    C{snf-link-<id>} (known once the network has an id).
    """

    mode: str
    link: str | None
    macPrefix: str
    tags: tuple[str, ...]


def flavorParameters(flavor: str, defaults: NetworkDefaults) -> FlavorParameters:
    """
    The settings a network of C{flavor} gets (spec §1.9 table).

    @raise BadRequestError: unknown flavor.
    """
    spec = FLAVORS.get(flavor)
    if spec is None:
        raise BadRequestError("network.type", f"invalid network type {flavor!r} (one of {', '.join(sorted(FLAVORS))})")

    def setting(name: str | None) -> str | None:
        if name is None or name == POOL:
            return name
        value: str = getattr(defaults, name)
        return value

    macPrefix = setting(spec.macPrefix)
    assert macPrefix is not None
    return FlavorParameters(spec.mode, setting(spec.link), macPrefix, spec.tags)


def defaultLink(networkId: int) -> str:
    return f"snf-link-{networkId}"


# -- request parsing --------------------------------------------------------------------------


def _object(body: object, key: str) -> Mapping[str, Any]:
    if not isinstance(body, Mapping) or not isinstance(body.get(key), Mapping):
        raise BadRequestError(key, f"the body must be a JSON object with a {key!r} object")
    inner: Mapping[str, Any] = body[key]
    return inner


def _string(obj: Mapping[str, Any], key: str, field: str, *, default: str = "", maxLength: int = 255) -> str:
    value = obj.get(key, default)
    if value is None:
        value = default
    if not isinstance(value, str):
        raise BadRequestError(field, "must be a string")
    if len(value) > maxLength:
        raise BadRequestError(field, f"must be at most {maxLength} characters")
    return value


def _bool(obj: Mapping[str, Any], key: str, field: str, default: bool) -> bool:
    value = obj.get(key, default)
    if not isinstance(value, bool):
        raise BadRequestError(field, "must be true or false")
    return value


def _id(obj: Mapping[str, Any], key: str, field: str) -> int:
    value = obj.get(key)
    if value is None:
        raise BadRequestError(field, "is required")
    if isinstance(value, bool):
        raise BadRequestError(field, "must be an id")
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or value <= 0:
        raise BadRequestError(field, "must be an id")
    return value


def _optionalId(obj: Mapping[str, Any], key: str, field: str) -> int | None:
    return None if obj.get(key) is None else _id(obj, key, field)


def _ipv4(value: object, field: str) -> ipaddress.IPv4Address:
    if not isinstance(value, str):
        raise BadRequestError(field, "must be an IPv4 address string")
    try:
        return ipaddress.IPv4Address(value)
    except ValueError:
        raise BadRequestError(field, f"{value!r} is not a valid IPv4 address") from None


def _ip(value: object, field: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if not isinstance(value, str):
        raise BadRequestError(field, "must be an IP address string")
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise BadRequestError(field, f"{value!r} is not a valid IP address") from None


@attrs.frozen
class NetworkRequest:
    flavor: str
    name: str
    project: str | None
    sharedToProject: bool


def parseNetwork(body: object, defaults: NetworkDefaults, *, admin: bool = False) -> NetworkRequest:
    """
    Validate a C{POST /networks} body.

    @raise BadRequestError: malformed, or an unknown type.
    @raise ForbiddenError: a type not enabled for the API (admins may use
        every type).
    """
    net = _object(body, "network")
    flavor = net.get("type")
    if flavor is None:
        raise BadRequestError("network.type", "is required")
    if not isinstance(flavor, str) or flavor not in FLAVORS:
        raise BadRequestError("network.type", f"invalid network type {flavor!r} (one of {', '.join(sorted(FLAVORS))})")
    if not admin and flavor not in defaults.enabledFlavors:
        raise ForbiddenError("network.type", f"can not create networks of type {flavor}")
    name = _string(net, "name", "network.name")
    project = net.get("project")
    if project is not None and not isinstance(project, str):
        raise BadRequestError("network.project", "must be a project id string")
    return NetworkRequest(flavor, name, project, _bool(net, "shared_to_project", "network.shared_to_project", False))


@attrs.frozen
class SubnetRequest:
    """
    A validated subnet: IPv4 with C{allocationPools}, or IPv6 (/64,
    addresses derived by EUI-64, no pools).
    """

    networkId: int
    cidr: ipaddress.IPv4Network | ipaddress.IPv6Network
    name: str
    gateway: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    dhcp: bool
    slaac: bool
    allocationPools: tuple[IPRange, ...]
    dnsNameservers: tuple[str, ...]
    hostRoutes: tuple[Mapping[str, str], ...]

    @property
    def ipversion(self) -> int:
        return self.cidr.version


_MISSING = object()


def parseSubnet(body: object, defaults: NetworkDefaults, *, networkId: int | None = None) -> SubnetRequest:
    """
    Validate a C{POST /subnets} body (or the subnet given with a network,
    then C{networkId} stands for C{network_id}).

    Gateway omitted: network address + 1; C{null}: no gateway. Allocation
    pools omitted (IPv4): every host address (the gateway is reserved).

    @raise BadRequestError: malformed (CIDR, addresses, version mismatch).
    @raise OverLimitError: an IPv4 CIDR larger than C{/maxCidrBlock} or
        smaller than /29.
    @raise ConflictError: pools outside the subnet, overlapping, reversed
        or holding the gateway.
    """
    sub = _object(body, "subnet")
    netId = networkId if networkId is not None else _id(sub, "network_id", "subnet.network_id")
    version = sub.get("ip_version", 4)
    if version not in (4, 6) or isinstance(version, bool):
        raise BadRequestError("subnet.ip_version", "must be 4 or 6")
    rawCidr = sub.get("cidr")
    if rawCidr is None:
        raise BadRequestError("subnet.cidr", "is required")
    if not isinstance(rawCidr, str):
        raise BadRequestError("subnet.cidr", "Malformed CIDR")
    try:
        cidr = ipaddress.ip_network(rawCidr, strict=True)
    except ValueError:
        raise BadRequestError("subnet.cidr", f"Malformed CIDR {rawCidr!r}") from None
    if cidr.version != version:
        raise BadRequestError("subnet.cidr", f"{rawCidr} is not an IPv{version} CIDR")
    if isinstance(cidr, ipaddress.IPv4Network):
        if cidr.prefixlen > 29 or cidr.prefixlen < defaults.maxCidrBlock:
            raise OverLimitError(
                "subnet.cidr", f"unsupported network size /{cidr.prefixlen} (from /{defaults.maxCidrBlock} to /29)"
            )
    elif cidr.prefixlen != 64:
        raise BadRequestError("subnet.cidr", "unsupported IPv6 subnet size: the netmask must be /64")

    gateway: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    rawGateway = sub.get("gateway_ip", _MISSING)
    if rawGateway is _MISSING:
        gateway = cidr.network_address + 1
    elif rawGateway is None:
        gateway = None
    else:
        gateway = _ip(rawGateway, "subnet.gateway_ip")
        if gateway.version != cidr.version or gateway not in cidr:
            raise BadRequestError("subnet.gateway_ip", f"{gateway} is not inside {cidr}")
        if isinstance(cidr, ipaddress.IPv4Network) and gateway in (cidr.network_address, cidr.broadcast_address):
            raise BadRequestError("subnet.gateway_ip", f"{gateway} is the network or broadcast address")

    dhcp = _bool(sub, "enable_dhcp", "subnet.enable_dhcp", True)
    slaac = True
    if "enable_slaac" in sub:
        if version == 4:
            raise BadRequestError("subnet.enable_slaac", "applies to IPv6 subnets only")
        slaac = _bool(sub, "enable_slaac", "subnet.enable_slaac", True)

    ranges: tuple[IPRange, ...] = ()
    rawPools = sub.get("allocation_pools")
    if isinstance(cidr, ipaddress.IPv6Network):
        if rawPools is not None:
            raise BadRequestError("subnet.allocation_pools", "IPv6 subnets have no allocation pools")
    else:
        assert gateway is None or isinstance(gateway, ipaddress.IPv4Address)
        if rawPools is None:
            ranges = (pools.defaultAllocationPool(cidr),)
        else:
            ranges = _allocationPools(rawPools, cidr, gateway)

    return SubnetRequest(
        netId,
        cidr,
        _string(sub, "name", "subnet.name"),
        gateway,
        dhcp,
        slaac,
        ranges,
        _nameservers(sub.get("dns_nameservers", [])),
        _hostRoutes(sub.get("host_routes", [])),
    )


def _allocationPools(
    raw: object, cidr: ipaddress.IPv4Network, gateway: ipaddress.IPv4Address | None
) -> tuple[IPRange, ...]:
    field = "subnet.allocation_pools"
    if not isinstance(raw, list) or not raw:
        raise BadRequestError(field, "must be a non-empty list of {start, end} objects")
    ranges = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, Mapping) or "start" not in entry or "end" not in entry:
            raise BadRequestError(f"{field}[{i}]", "must be an object with start and end")
        start = _ipv4(entry["start"], f"{field}[{i}].start")
        end = _ipv4(entry["end"], f"{field}[{i}].end")
        if start > end:
            raise ConflictError(f"{field}[{i}]", f"invalid IP pool range {start}-{end}")
        for which, address in (("start", start), ("end", end)):
            if not (cidr.network_address < address < cidr.broadcast_address):
                raise ConflictError(
                    f"{field}[{i}].{which}", f"IP pool out of bounds: {address} is not a host of {cidr}"
                )
        if gateway is not None and start <= gateway <= end:
            raise ConflictError(f"{field}[{i}]", f"the gateway {gateway} cannot be in the pool range")
        ranges.append(IPRange(start, end))
    ordered = sorted(ranges, key=lambda r: r.start)
    for before, after in itertools.pairwise(ordered):
        if after.start <= before.end:
            raise ConflictError(
                field, f"IP pool ranges {before.start}-{before.end} and {after.start}-{after.end} overlap"
            )
    return tuple(ordered)


def _nameservers(raw: object) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise BadRequestError("subnet.dns_nameservers", "must be a list of IP addresses")
    return tuple(str(_ip(v, f"subnet.dns_nameservers[{i}]")) for i, v in enumerate(raw))


def _hostRoutes(raw: object) -> tuple[Mapping[str, str], ...]:
    field = "subnet.host_routes"
    if not isinstance(raw, list):
        raise BadRequestError(field, "must be a list of {destination, nexthop} objects")
    routes = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("destination"), str):
            raise BadRequestError(f"{field}[{i}]", "must be an object with destination and nexthop")
        try:
            destination = str(ipaddress.ip_network(entry["destination"], strict=True))
        except ValueError:
            raise BadRequestError(f"{field}[{i}].destination", "Malformed CIDR") from None
        nexthop = str(_ip(entry.get("nexthop"), f"{field}[{i}].nexthop"))
        routes.append({"destination": destination, "nexthop": nexthop})
    return tuple(routes)


@attrs.frozen
class PortRequest:
    networkId: int
    deviceId: int | None
    address: str | None
    name: str
    securityGroups: tuple[str, ...]


def parsePort(body: object) -> PortRequest:
    """
    Validate a C{POST /ports} body: at most one C{fixed_ips} entry, IPv4.
    """
    port = _object(body, "port")
    networkId = _id(port, "network_id", "port.network_id")
    deviceId = _optionalId(port, "device_id", "port.device_id")
    address: str | None = None
    fixed = port.get("fixed_ips")
    if fixed is not None:
        if not isinstance(fixed, list):
            raise BadRequestError("port.fixed_ips", "must be a list")
        if len(fixed) > 1:
            raise BadRequestError("port.fixed_ips", "at most one fixed IP is allowed")
        if fixed:
            entry = fixed[0]
            if not isinstance(entry, Mapping) or "ip_address" not in entry:
                raise BadRequestError("port.fixed_ips[0].ip_address", "is required")
            address = str(_ipv4(entry["ip_address"], "port.fixed_ips[0].ip_address"))
    groups = port.get("security_groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise BadRequestError("port.security_groups", "must be a list of strings")
    return PortRequest(networkId, deviceId, address, _string(port, "name", "port.name"), tuple(groups))


@attrs.frozen
class FloatingIPRequest:
    networkId: int | None
    address: str | None
    project: str | None
    sharedToProject: bool


def parseFloatingIP(body: object) -> FloatingIPRequest:
    """
    Validate a C{POST /floatingips} body (every field optional; an address
    needs its network).
    """
    fip = _object(body, "floatingip")
    networkId = _optionalId(fip, "floating_network_id", "floatingip.floating_network_id")
    address: str | None = None
    if fip.get("floating_ip_address") is not None:
        if networkId is None:
            raise BadRequestError("floatingip.floating_network_id", "is required with floating_ip_address")
        address = str(_ipv4(fip["floating_ip_address"], "floatingip.floating_ip_address"))
    project = fip.get("project")
    if project is not None and not isinstance(project, str):
        raise BadRequestError("floatingip.project", "must be a project id string")
    shared = _bool(fip, "shared_to_project", "floatingip.shared_to_project", False)
    return FloatingIPRequest(networkId, address, project, shared)


# -- IPv6 --------------------------------------------------------------------------------------


def eui64Address(cidr: str, mac: str) -> str:
    """
    The SLAAC address of C{mac} in the /64 C{cidr} (RFC 4291 appendix A:
    flip the universal/local bit, insert ff:fe in the middle).

    @raise ValueError: not a /64 or not a 48-bit MAC.
    """
    network = ipaddress.IPv6Network(cidr, strict=True)
    if network.prefixlen != 64:
        raise ValueError(f"{cidr} is not a /64")
    octets = mac.replace("-", ":").split(":")
    if len(octets) != 6 or not all(len(o) == 2 for o in octets):
        raise ValueError(f"{mac!r} is not a MAC address")
    raw = bytes(int(o, 16) for o in octets)
    interface = bytes([raw[0] ^ 0x02]) + raw[1:3] + b"\xff\xfe" + raw[3:]
    return str(ipaddress.IPv6Address(int(network.network_address) | int.from_bytes(interface, "big")))


# -- state ---------------------------------------------------------------------------------------

_SUCCESS_OPERSTATE = {
    "OP_NETWORK_ADD": "PENDING",
    "OP_NETWORK_CONNECT": "ACTIVE",
    "OP_NETWORK_DISCONNECT": "PENDING",
    "OP_NETWORK_REMOVE": "DELETED",
}


def backendNetworkOperstate(opcode: str, status: str, current: str, *, networkGone: bool = False) -> str:
    """
    The operstate of a backend network after a final Ganeti job status
    (spec §2.5 C{process_network_status}); C{current} when the job changes
    nothing.
    """
    if status == "success":
        return _SUCCESS_OPERSTATE.get(opcode, current)
    if opcode == "OP_NETWORK_ADD" and status in ("error", "canceled"):
        return "ERROR"
    if opcode == "OP_NETWORK_REMOVE" and status == "error" and networkGone:
        return "DELETED"
    return current


def networkState(current: str, deleted: bool, action: str | None, backendStates: Sequence[str]) -> str:
    """
    A network's state from the operstates of its backend networks (spec
    §2.5 C{update_network_state}):

      - a deleted network is DELETED;
      - no backend network and no pending DESTROY: ACTIVE;
      - DELETED on every backend: DELETED;
      - ACTIVE on at least one backend: ACTIVE;
      - otherwise ERROR if any backend says so, else PENDING.
    """
    if deleted:
        return "DELETED"
    if not backendStates:
        return current if action == "DESTROY" else "ACTIVE"
    if all(s == "DELETED" for s in backendStates):
        return "DELETED"
    if "ACTIVE" in backendStates:
        return "ACTIVE"
    if "ERROR" in backendStates:
        return "ERROR"
    return "PENDING"


def apiStatus(network: models.Network) -> str:
    """
    The C{status} of the network object: C{SNF:DRAINED} for a drained live
    network, else its state.
    """
    if network.drained and network.state != "DELETED":
        return "SNF:DRAINED"
    return network.state


# -- API views (spec §1.8-1.10 shapes; the web layer adds C{links}) -------------------------------


def _iso(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat() + "+00:00"


def networkView(network: models.Network, subnetIds: Sequence[int]) -> dict[str, Any]:
    """
    The C{network} object of the Network API.
    """
    return {
        "id": str(network.id),
        "name": network.name,
        "user_id": network.userid,
        "tenant_id": network.project or network.userid,
        "shared_to_project": network.shared_to_project,
        "type": network.flavor,
        "updated": _iso(network.updated),
        "created": _iso(network.created),
        "status": apiStatus(network),
        "public": network.public,
        "shared": network.public,
        "router:external": network.external_router,
        "admin_state_up": True,
        "subnets": [str(i) for i in subnetIds],
        "SNF:floating_ip_pool": network.floating_ip_pool,
        "deleted": network.deleted,
    }


def subnetView(subnet: models.Subnet, ipPools: Sequence[models.IPPool]) -> dict[str, Any]:
    """
    The C{subnet} object; C{allocation_pools} from the subnet's IPv4 pools
    (C{enable_slaac} only for IPv6).
    """
    view: dict[str, Any] = {
        "id": str(subnet.id),
        "network_id": str(subnet.network_id),
        "name": subnet.name,
        "tenant_id": subnet.userid,
        "user_id": subnet.userid,
        "public": subnet.public,
        "gateway_ip": subnet.gateway,
        "ip_version": subnet.ipversion,
        "cidr": subnet.cidr,
        "enable_dhcp": subnet.dhcp,
        "dns_nameservers": list(subnet.dns_nameservers),
        "host_routes": list(subnet.host_routes),
        "allocation_pools": [{"start": pool.base, "end": pools.addressOf(pool, pool.size - 1)} for pool in ipPools],
        "deleted": subnet.deleted,
    }
    if subnet.ipversion == 6:
        view["enable_slaac"] = subnet.slaac
    return view


def portView(port: models.Port, ips: Sequence[models.IPAddress]) -> dict[str, Any]:
    """
    The C{port} object.
    """
    return {
        "id": str(port.id),
        "name": port.name,
        "user_id": port.userid,
        "tenant_id": port.project or port.userid,
        "device_id": None if port.server_id is None else str(port.server_id),
        "admin_state_up": True,
        "mac_address": port.mac,
        "status": port.state,
        "device_owner": port.device_owner,
        "network_id": str(port.network_id),
        "updated": _iso(port.updated),
        "created": _iso(port.created),
        "fixed_ips": [{"ip_address": ip.address, "subnet": str(ip.subnet_id)} for ip in ips],
        "security_groups": list(port.security_groups),
    }


def floatingIPView(ip: models.IPAddress, port: models.Port | None = None) -> dict[str, Any]:
    """
    The C{floatingip} object of the Network API (C{port} is the port it is
    attached to, if any).
    """
    serverId = None if port is None or port.server_id is None else str(port.server_id)
    return {
        "id": str(ip.id),
        "floating_ip_address": ip.address,
        "fixed_ip_address": None,
        "instance_id": serverId,
        "port_id": None if ip.port_id is None else str(ip.port_id),
        "floating_network_id": str(ip.network_id),
        "user_id": ip.userid,
        "tenant_id": ip.project or ip.userid,
        "shared_to_project": ip.shared_to_project,
        "deleted": ip.deleted,
    }


# -- the async shell -------------------------------------------------------------------------------


@attrs.frozen
class CreatedNetwork:
    network: models.Network
    subnets: tuple[models.Subnet, ...]


async def _insertSubnet(tx: Any, request: SubnetRequest, userid: str | None, public: bool) -> models.Subnet:
    subnet = await SubnetRepository(tx).create(
        request.networkId,
        str(request.cidr),
        request.ipversion,
        name=request.name,
        gateway=None if request.gateway is None else str(request.gateway),
        dhcp=request.dhcp,
        slaac=request.slaac,
        userid=userid,
        public=public,
        dnsNameservers=request.dnsNameservers,
        hostRoutes=[dict(r) for r in request.hostRoutes],
    )
    if isinstance(request.cidr, ipaddress.IPv4Network):
        gateway = request.gateway if isinstance(request.gateway, ipaddress.IPv4Address) else None
        ipPools = IPPoolRepository(tx)
        for layout in pools.ipPoolLayouts(request.cidr, request.allocationPools, gateway):
            await ipPools.create(subnet.id, layout.base, layout.size, layout.offset, *layout.bitmap().dump())
    return subnet


async def _createNetwork(
    tx: Any,
    request: NetworkRequest,
    userid: str | None,
    defaults: NetworkDefaults,
    subnets: Sequence[SubnetRequest],
    public: bool,
    floatingIPPool: bool,
    quota: QuotaCharge | None = None,
) -> CreatedNetwork:
    await _charge(tx, quota, "network")
    params = flavorParameters(request.flavor, defaults)
    macPrefix, link = params.macPrefix, params.link
    try:
        if macPrefix == POOL:
            macPrefix = await pools.allocateResource(tx, pools.MAC_PREFIX)
        if link == POOL:
            link = await pools.allocateResource(tx, pools.BRIDGE)
    except PoolExhaustedError as e:
        raise ConflictError("network.type", f"cannot create a {request.flavor} network: {e.message}") from None
    repo = NetworkRepository(tx)
    network = await repo.create(
        request.name,
        request.flavor,
        userid=userid,
        project=request.project,
        mode=params.mode,
        link=link,
        macPrefix=macPrefix,
        public=public,
        floatingIPPool=floatingIPPool,
        tags=params.tags,
        sharedToProject=request.sharedToProject,
    )
    if link is None:
        updated = await repo.update(network.id, link=defaultLink(network.id))
        assert updated is not None
        network = updated
    created = []
    for s in subnets:
        created.append(await _insertSubnet(tx, attrs.evolve(s, networkId=network.id), userid, public))
    return CreatedNetwork(network, tuple(created))


def createNetwork(
    db: Any,
    request: NetworkRequest,
    userid: str | None,
    defaults: NetworkDefaults,
    *,
    subnets: Sequence[SubnetRequest] = (),
    public: bool = False,
    floatingIPPool: bool = False,
    quota: QuotaCharge | None = None,
) -> Deferred[CreatedNetwork]:
    """
    Create a network (taking its MAC prefix or bridge from the pool when
    its flavor says so) and its subnets with their IPv4 pools, in one
    transaction.

    @param quota: charged in the same transaction (C{cyclades.network.private}).
    @raise ConflictError: the MAC-prefix or bridge pool is full (field
        C{network.type}).
    @raise OverLimitError: C{quota} does not fit; nothing is written.
    """
    d: Deferred[CreatedNetwork] = db.runInteraction(
        _createNetwork, request, userid, defaults, subnets, public, floatingIPPool, quota
    )
    return d


async def _createSubnet(tx: Any, request: SubnetRequest, userid: str | None) -> models.Subnet:
    network = await NetworkRepository.getForUpdate(tx, request.networkId)
    if network is None or network.deleted:
        raise NotFoundError("subnet.network_id", f"network {request.networkId} not found")
    if userid is not None and network.userid != userid:
        raise NotFoundError("subnet.network_id", f"network {request.networkId} not found")
    for existing in await SubnetRepository(tx).listByNetwork(network.id):
        if existing.ipversion == request.ipversion:
            raise ConflictError(
                "subnet.ip_version", f"network {network.id} already has an IPv{request.ipversion} subnet"
            )
    return await _insertSubnet(tx, request, network.userid, network.public)


def createSubnet(db: Any, request: SubnetRequest, userid: str | None) -> Deferred[models.Subnet]:
    """
    Add a subnet (and its IPv4 pools) to a network of C{userid} (any
    network when None, for admins).

    @raise NotFoundError: no such live network of this user.
    @raise ConflictError: the network already has a subnet of that version.
    """
    d: Deferred[models.Subnet] = db.runInteraction(_createSubnet, request, userid)
    return d


async def _recordHistory(
    tx: Any, address: str, networkId: int, serverId: int | None, userid: str | None, action: str, reason: str
) -> None:
    await tx.execute(
        "INSERT INTO ip_history (address, network_id, server_id, userid, action, action_reason) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        (address, networkId, serverId, userid, action, reason),
    )


@attrs.frozen
class CreatedPort:
    port: models.Port
    ips: tuple[models.IPAddress, ...]


async def _createPort(
    tx: Any,
    networkId: int,
    userid: str | None,
    serverId: int | None,
    address: str | None,
    name: str,
    project: str | None,
) -> CreatedPort:
    network = await NetworkRepository(tx).get(networkId)
    if network is None or network.deleted:
        raise NotFoundError("port.network_id", f"network {networkId} not found")
    if userid is not None and not network.public and network.userid != userid:
        raise NotFoundError("port.network_id", f"network {networkId} not found")
    if network.drained:
        raise ConflictError("port.network_id", f"network {networkId} is drained")
    ports = PortRepository(tx)
    port = await ports.create(
        networkId,
        userid=userid,
        project=project,
        serverId=serverId,
        name=name,
        deviceOwner="vm" if serverId is not None else None,
    )
    ips = []
    if address is not None:
        rows = await tx.execute(
            f"SELECT {models.columns(models.IPAddress)} FROM ips WHERE network_id = %s AND address = %s "
            "AND floating_ip = TRUE AND deleted = FALSE FOR UPDATE",
            (networkId, address),
        )
        if rows:
            floating = models.IPAddress(*rows[0])
            if userid is not None and floating.userid != userid:
                raise ConflictError("port.fixed_ips[0].ip_address", f"address {address} is already in use")
            if floating.port_id is not None:
                raise ConflictError(
                    "port.fixed_ips[0].ip_address", f"floating IP {address} is attached to port {floating.port_id}"
                )
            await tx.execute("UPDATE ips SET port_id = %s WHERE id = %s", (port.id, floating.id))
            return CreatedPort(port, (attrs.evolve(floating, port_id=port.id),))
    field = "port.fixed_ips[0].ip_address" if address is not None else "port.network_id"
    allocated = await _allocatePortIPv4(tx, port, address, field, "port create")
    if allocated is not None:
        ips.append(allocated)
    return CreatedPort(port, tuple(ips))


async def _allocatePortIPv4(
    tx: Any, port: models.Port, address: str | None, field: str, reason: str
) -> models.IPAddress | None:
    """
    Give C{port} an IPv4 address from its network's pools (C{address} if
    given); None when the network has no IPv4 subnet and none was asked for.
    """
    networkId = port.network_id
    if not await IPPoolRepository(tx).listByNetwork(networkId):
        if address is not None:
            raise BadRequestError(field, f"network {networkId} has no IPv4 subnet")
        return None
    try:
        subnetId, taken = await pools.allocateIP(tx, networkId, address)
    except pools.PoolError as e:
        raise PoolErrorKinds.get(type(e), ConflictError)(field, e.message) from None
    ip = await PortRepository(tx).addIP(
        subnetId, networkId, taken, 4, portId=port.id, userid=port.userid, project=port.project
    )
    await _recordHistory(tx, taken, networkId, port.server_id, port.userid, "allocate", reason)
    return ip


async def allocateServerPortIP(tx: Any, network: models.Network, port: models.Port, fixedIp: str | None) -> str | None:
    """
    The IPv4 of a port made for a new server (the server logic's
    C{ipAllocator}), inside the create transaction: taken from the
    network's pools (C{fixedIp} if given) and recorded on the port; None
    on a network without an IPv4 subnet.

    @raise ConflictError: the pools are exhausted or C{fixedIp} is in use.
    @raise BadRequestError: C{fixedIp} outside the pools, or given on a
        network without an IPv4 subnet.
    """
    ip = await _allocatePortIPv4(tx, port, fixedIp, "networks", "server create")
    return None if ip is None else ip.address


PoolErrorKinds: Mapping[type[pools.PoolError], type[NetworkRequestError]] = {
    pools.PoolExhaustedError: ConflictError,
    pools.ValueNotInPoolError: BadRequestError,
    pools.ValueInUseError: ConflictError,
}


def createPort(
    db: Any,
    networkId: int,
    userid: str | None,
    *,
    serverId: int | None = None,
    address: str | None = None,
    name: str = "",
    project: str | None = None,
) -> Deferred[CreatedPort]:
    """
    Create a port on a network, allocating an IPv4 address from the
    network's pools when it has an IPv4 subnet (C{address} if given). An
    C{address} that is a floating IP of C{userid} on that network is
    attached to the port instead (spec §1.8).

    @raise NotFoundError: no such network visible to C{userid}.
    @raise ConflictError: pools exhausted, address in use, network drained.
    @raise BadRequestError: C{address} outside the pools.
    """
    d: Deferred[CreatedPort] = db.runInteraction(_createPort, networkId, userid, serverId, address, name, project)
    return d


async def _deletePort(tx: Any, portId: int) -> bool:
    ports = PortRepository(tx)
    port = await ports.get(portId)
    if port is None:
        return False
    for ip in await ports.ipsOfPort(portId):
        if ip.floating_ip:
            await tx.execute("UPDATE ips SET port_id = NULL WHERE id = %s", (ip.id,))
            continue
        await pools.releaseIP(tx, ip.network_id, ip.address)
        await ports.releaseIP(ip.id)
        await _recordHistory(tx, ip.address, ip.network_id, port.server_id, ip.userid, "release", "port delete")
    return await ports.delete(portId)


def deletePort(db: Any, portId: int) -> Deferred[bool]:
    """
    Delete a port: its addresses go back to their pools, except floating
    IPs, which are only detached. Deferred False when there was no port.
    """
    d: Deferred[bool] = db.runInteraction(_deletePort, portId)
    return d


async def _setPortMac(tx: Any, portId: int, mac: str) -> tuple[models.IPAddress, ...]:
    ports = PortRepository(tx)
    port = await ports.get(portId)
    if port is None:
        raise NotFoundError("port", f"port {portId} not found")
    v6 = [s for s in await SubnetRepository(tx).listByNetwork(port.network_id) if s.ipversion == 6]
    address = eui64Address(v6[0].cidr, mac) if v6 else None
    current = [ip for ip in await ports.ipsOfPort(portId) if ip.ipversion == 6]
    if port.mac != mac:
        await ports.update(portId, mac=mac)
    kept = []
    for ip in current:
        if ip.address == address:
            kept.append(ip)
        else:
            await ports.releaseIP(ip.id)
    if address is not None and not kept:
        kept.append(
            await ports.addIP(
                v6[0].id, port.network_id, address, 6, portId=portId, userid=port.userid, project=port.project
            )
        )
    return tuple(kept)


def setPortMac(db: Any, portId: int, mac: str) -> Deferred[tuple[models.IPAddress, ...]]:
    """
    Record the MAC Ganeti gave a port and derive its IPv6 address (spec
    §1.10: IPv6 addresses are not allocated but EUI-64 of the MAC in the
    network's IPv6 subnet); an address derived from an older MAC is
    released. Deferred with the port's IPv6 address rows (none without an
    IPv6 subnet).

    @raise NotFoundError: no such port.
    """
    d: Deferred[tuple[models.IPAddress, ...]] = db.runInteraction(_setPortMac, portId, mac)
    return d


async def _floatingNetworks(tx: Any, networkId: int | None) -> list[models.Network]:
    repo = NetworkRepository(tx)
    if networkId is not None:
        network = await repo.get(networkId)
        if network is None or network.deleted or not network.floating_ip_pool:
            raise NotFoundError("floatingip.floating_network_id", f"floating IP pool network {networkId} not found")
        return [network]
    return [n for n in await repo.list() if n.floating_ip_pool and not n.drained]


async def _allocateFloatingIP(
    tx: Any, userid: str, request: FloatingIPRequest, project: str | None, quota: QuotaCharge | None = None
) -> models.IPAddress:
    await _charge(tx, quota, "floatingip")
    candidates = await _floatingNetworks(tx, request.networkId)
    for network in candidates:
        try:
            subnetId, taken = await pools.allocateIP(tx, network.id, request.address)
        except PoolExhaustedError:
            continue
        except pools.PoolError as e:
            raise PoolErrorKinds.get(type(e), ConflictError)("floatingip.floating_ip_address", e.message) from None
        ip = await PortRepository(tx).addIP(
            subnetId, network.id, taken, 4, userid=userid, project=request.project or project, floating=True
        )
        if request.sharedToProject:
            await tx.execute("UPDATE ips SET shared_to_project = TRUE WHERE id = %s", (ip.id,))
            ip = attrs.evolve(ip, shared_to_project=True)
        await _recordHistory(tx, taken, network.id, None, userid, "allocate", "floating IP")
        return ip
    raise ConflictError("floatingip.floating_network_id", "no floating IP address is available")


def allocateFloatingIP(
    db: Any,
    userid: str,
    request: FloatingIPRequest,
    *,
    project: str | None = None,
    quota: QuotaCharge | None = None,
) -> Deferred[models.IPAddress]:
    """
    Allocate a floating IP: from the requested network (and address), or
    from the first floating-IP pool network with a free address.

    @param quota: charged in the same transaction (C{cyclades.floating_ip}).
    @raise NotFoundError: the requested network is not a floating-IP pool.
    @raise ConflictError: no free address, or the address is in use.
    @raise OverLimitError: C{quota} does not fit; nothing is allocated.
    """
    d: Deferred[models.IPAddress] = db.runInteraction(_allocateFloatingIP, userid, request, project, quota)
    return d


async def _releaseFloatingIP(
    tx: Any, ipId: int, userid: str | None, quotaResource: str | None = None
) -> models.IPAddress:
    ip = await PortRepository(tx).lockFloatingIP(ipId)
    if ip is None or (userid is not None and ip.userid != userid):
        raise NotFoundError("floatingip", f"floating IP {ipId} not found")
    if ip.port_id is not None:
        raise ConflictError("floatingip", f"floating IP {ip.address} is attached to port {ip.port_id}")
    if quotaResource is not None:
        # locks: the address row, then the quota holding, then the pool (as allocation: holding, then pool)
        release = await _holderCharge(tx, ip.userid, ip.project, quotaResource, -1, "floating IP release")
        await _charge(tx, release, "floatingip")
    await pools.releaseIP(tx, ip.network_id, ip.address)
    released = await PortRepository(tx).releaseIP(ip.id)
    assert released is not None
    await _recordHistory(tx, ip.address, ip.network_id, None, ip.userid, "release", "floating IP")
    return released


def releaseFloatingIP(
    db: Any, ipId: int, userid: str | None = None, *, quotaResource: str | None = None
) -> Deferred[models.IPAddress]:
    """
    Release a floating IP of C{userid} (anyone's when None) back to its pool.

    @raise NotFoundError: no such live floating IP of this user.
    @param quotaResource: release one of this resource on the floating
        IP's project (for its owner), in the same transaction.
    @raise ConflictError: it is still attached to a port.
    """
    d: Deferred[models.IPAddress] = db.runInteraction(_releaseFloatingIP, ipId, userid, quotaResource)
    return d


async def _move(tx: Any, owner: str | None, old: str | None, new: str, quotaResource: str | None) -> None:
    """
    Move one C{quotaResource} of C{owner} from project C{old} to C{new}
    (nothing when unchanged or no resource).

    @raise OverLimitError: it does not fit in the new project.
    """
    if quotaResource is None or old == new:
        return
    take = await _holderCharge(tx, owner, new, quotaResource, 1, "reassign")
    await _charge(tx, take, "reassign.project")
    release = await _holderCharge(tx, owner, old, quotaResource, -1, "reassign")
    await _charge(tx, release, "reassign.project")


async def _reassignNetwork(
    tx: Any,
    networkId: int,
    userid: str | None,
    project: str,
    shared: bool,
    quotaResource: str | None,
) -> models.Network:
    network = await NetworkRepository.getForUpdate(tx, networkId)
    if network is None or network.deleted or (userid is not None and not network.public and network.userid != userid):
        raise NotFoundError("network", f"network {networkId} not found")
    if network.public:
        raise ForbiddenError("network", "cannot reassign a public network")
    await _move(tx, network.userid, network.project, project, quotaResource)
    updated = await NetworkRepository(tx).update(networkId, project=project, shared_to_project=shared)
    assert updated is not None
    return updated


def reassignNetwork(
    db: Any,
    networkId: int,
    userid: str | None,
    project: str,
    *,
    shared: bool = False,
    quotaResource: str | None = None,
) -> Deferred[models.Network]:
    """
    Move a private network of C{userid} (anyone's when None) to
    C{project} and set its sharing, in one transaction: one
    C{quotaResource} is charged to the new project and released from the
    old one (for the network's owner) when the project changes.

    @raise NotFoundError: no such live network of this user.
    @raise ForbiddenError: a public network.
    @raise OverLimitError: the new project's quota does not allow it.
    """
    d: Deferred[models.Network] = db.runInteraction(_reassignNetwork, networkId, userid, project, shared, quotaResource)
    return d


async def _reassignFloatingIP(
    tx: Any,
    ipId: int,
    userid: str | None,
    project: str,
    shared: bool,
    quotaResource: str | None,
) -> models.IPAddress:
    ip = await PortRepository(tx).lockFloatingIP(ipId)
    if ip is None or (userid is not None and ip.userid != userid):
        raise NotFoundError("floatingip", f"floating IP {ipId} not found")
    await _move(tx, ip.userid, ip.project, project, quotaResource)
    moved = await PortRepository(tx).setIPProject(ipId, project, shared)
    assert moved is not None
    return moved


def reassignFloatingIP(
    db: Any,
    ipId: int,
    userid: str | None,
    project: str,
    *,
    shared: bool = False,
    quotaResource: str | None = None,
) -> Deferred[models.IPAddress]:
    """
    Move a floating IP of C{userid} (anyone's when None) to C{project}
    and set its sharing, with the quota moves of L{reassignNetwork}.

    @raise NotFoundError: no such live floating IP of this user.
    @raise OverLimitError: the new project's quota does not allow it.
    """
    d: Deferred[models.IPAddress] = db.runInteraction(_reassignFloatingIP, ipId, userid, project, shared, quotaResource)
    return d


async def _updateNetworkState(tx: Any, networkId: int) -> models.Network | None:
    repo = NetworkRepository(tx)
    network = await NetworkRepository.getForUpdate(tx, networkId)
    if network is None:
        return None
    backendNetworks = BackendNetworkRepository(tx)
    states = [b.operstate for b in await backendNetworks.listByNetwork(networkId)]
    state = networkState(network.state, network.deleted, network.action, states)
    if state != "DELETED" or network.deleted:
        if state == network.state:
            return network
        return await repo.update(networkId, state=state)
    return await _finishDeletion(tx, network)


async def _floatingIPCount(tx: Any, networkId: int) -> int:
    rows = await tx.execute(
        "SELECT COUNT(*) FROM ips WHERE network_id = %s AND floating_ip = TRUE AND deleted = FALSE", (networkId,)
    )
    return int(rows[0][0])


async def _finishDeletion(tx: Any, network: models.Network) -> models.Network:
    networkId = network.id
    repo = NetworkRepository(tx)
    backendNetworks = BackendNetworkRepository(tx)
    if await _floatingIPCount(tx, networkId):
        raise ConflictError("network", f"cannot delete network {networkId}: floating IPs are still allocated")
    spec = FLAVORS[network.flavor]
    if spec.macPrefix == POOL and network.mac_prefix:
        await pools.releaseResource(tx, pools.MAC_PREFIX, network.mac_prefix)
    if spec.link == POOL and network.link:
        await pools.releaseResource(tx, pools.BRIDGE, network.link)
    await tx.execute("UPDATE subnets SET deleted = TRUE WHERE network_id = %s AND deleted = FALSE", (networkId,))
    await IPPoolRepository(tx).deleteByNetwork(networkId)
    await backendNetworks.deleteByNetwork(networkId)
    log.info(
        "network {network_id} deleted; released link {link} and MAC prefix {mac_prefix}",
        network_id=networkId,
        link=network.link,
        mac_prefix=network.mac_prefix,
    )
    deleted = await repo.update(networkId, state="DELETED", deleted=True, drained=False)
    assert deleted is not None
    return deleted


def updateNetworkState(db: Any, networkId: int) -> Deferred[models.Network | None]:
    """
    Recompute a network's state from its backend networks (L{networkState})
    and store it; when it becomes DELETED, release its pooled MAC prefix or
    bridge, mark its subnets deleted, drop its IP pools and backend
    networks. Deferred None when there is no such network.

    @raise ConflictError: it would be deleted while floating IPs remain.
    """
    d: Deferred[models.Network | None] = db.runInteraction(_updateNetworkState, networkId)
    return d


async def _deleteNetwork(
    tx: Any, networkId: int, userid: str | None, admin: bool, quotaResource: str | None = None
) -> models.Network:
    network = await NetworkRepository.getForUpdate(tx, networkId)
    visible = network is not None and not network.deleted
    if network is not None and visible and not admin and not network.public and network.userid != userid:
        visible = False
    if network is None or not visible:
        raise NotFoundError("network", f"network {networkId} not found")
    if network.public and not admin:
        raise ForbiddenError("network", "cannot delete a public network")
    if await PortRepository(tx).listByNetwork(networkId):
        raise ConflictError(
            "network", f"Cannot delete network. There are ports still configured on network network {networkId}"
        )
    if await _floatingIPCount(tx, networkId):
        raise ConflictError("network", f"Cannot delete network {networkId}: floating IPs are still allocated")
    marked = await NetworkRepository(tx).update(networkId, action="DESTROY")
    assert marked is not None
    if quotaResource is not None and not network.public:
        release = await _holderCharge(tx, network.userid, network.project, quotaResource, -1, "network delete")
        await _charge(tx, release, "network")
    if await BackendNetworkRepository(tx).listByNetwork(networkId):
        return marked
    return await _finishDeletion(tx, marked)


def deleteNetwork(
    db: Any, networkId: int, userid: str | None, *, admin: bool = False, quotaResource: str | None = None
) -> Deferred[models.Network]:
    """
    Start deleting a network (spec §1.9 DELETE): mark it C{action=DESTROY};
    when no backend has it, finish at once (state DELETED, pooled MAC
    prefix or bridge released, subnets deleted, pools dropped). Otherwise
    the caller removes it from the backends and L{updateNetworkState}
    finishes once every backend network is DELETED.

    @raise NotFoundError: no such live network visible to C{userid}.
    @raise ForbiddenError: a public network and not an admin.
    @param quotaResource: release one of this resource on the network's
        project (for its owner), in the same transaction (not for public
        networks).
    @raise ConflictError: ports or floating IPs remain.
    """
    d: Deferred[models.Network] = db.runInteraction(_deleteNetwork, networkId, userid, admin, quotaResource)
    return d


def ensureResourcePools(
    db: Any,
    *,
    macPrefixBase: str = "aa:00:0",
    macPrefixSize: int = 65536,
    bridgeBase: str = "prv",
    bridgeSize: int = 20,
) -> Deferred[tuple[models.ResourcePool, models.ResourcePool]]:
    """
    Create the MAC-prefix and bridge pools when missing (existing pools are
    kept as they are).
    """

    async def ensure(tx: Any) -> tuple[models.ResourcePool, models.ResourcePool]:
        repo = ResourcePoolRepository(tx)
        results = []
        for kind, base, size in (
            (pools.MAC_PREFIX, macPrefixBase, macPrefixSize),
            (pools.BRIDGE, bridgeBase, bridgeSize),
        ):
            bitmap = pools.resourcePoolBitmap(kind, base, size)
            results.append(await repo.ensure(kind, base, size, *bitmap.dump()))
        return results[0], results[1]

    d: Deferred[tuple[models.ResourcePool, models.ResourcePool]] = db.runInteraction(ensure)
    return d
