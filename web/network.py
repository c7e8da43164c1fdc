# -*- test-case-name: tests.web.test_network -*-
"""
The network API (spec §1.8-1.10), Neutron v2 compatible, under
C{/network/v2.0}: networks, subnets, ports and floating IPs; and the
compute flavour of floating IPs, C{/compute/v2.x/os-floating-ips}, with
the server actions C{addFloatingIp} / C{removeFloatingIp}
(L{NetworkAPI.serverActions}, mounted through the servers API).

Validation, allocation and deletion are the network logic's
(L{synnefo_twisted.logic.networks}); what reaches Ganeti (network
create/connect, NIC add/remove, network removal) is
L{synnefo_twisted.logic.networkops}. The logic's refusals become faults
naming the field (C{details: "field: subnet.cidr"}).

Quotas: a private network charges C{cyclades.network.private}, a floating
IP C{cyclades.floating_ip}, on the caller's project (the one named in the
body, else the user's base project), in the transaction that creates it
(413 C{overLimit} and nothing written when it does not fit); deleting
releases the charge in the deleting transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import attrs
from twisted.web.iweb import IRequest

from synnefo_twisted.db import models
from synnefo_twisted.db.manage import AdminQueries
from synnefo_twisted.db.pools import IPPoolRepository
from synnefo_twisted.db.repositories import (
    NetworkRepository,
    PortRepository,
    ProjectRepository,
    ServerRepository,
    SubnetRepository,
)
from synnefo_twisted.logic import networkops
from synnefo_twisted.logic import networks as logic
from synnefo_twisted.logic.networks import NetworkDefaults, NetworkRequestError, QuotaCharge
from synnefo_twisted.logic.servers import ServerFault
from web.compute import VERSIONS
from web.faults import (
    BadRequest,
    Conflict,
    Fault,
    Forbidden,
    ItemNotFound,
    NotImplementedFault,
    NotModified,
    ServiceUnavailable,
)
from web.http import Reply, parseID, queryArg, readJSON
from web.routing import Router
from web.servers import ExtraAction, parseChangesSince, webFault

T = TypeVar("T")
M = TypeVar("M", models.Network, models.Subnet, models.Port, models.IPAddress)

V = "v2.0"
PREFIX = f"/network/{V}"
_VERSION_UPDATED = "2013-03-20T00:00:00Z"

#: the attributes a list may be filtered by (C{?device_id=42}), as Neutron does
FILTERS: Mapping[str, frozenset[str]] = {
    "networks": frozenset({"id", "name", "status", "type", "public", "shared", "router:external", "tenant_id"}),
    "subnets": frozenset({"id", "name", "network_id", "cidr", "ip_version", "gateway_ip", "enable_dhcp", "tenant_id"}),
    "ports": frozenset({"id", "name", "network_id", "device_id", "device_owner", "mac_address", "status", "tenant_id"}),
    "floatingips": frozenset(
        {"id", "floating_ip_address", "floating_network_id", "port_id", "instance_id", "tenant_id"}
    ),
}

NETWORK_QUOTA = "cyclades.network.private"
FLOATING_IP_QUOTA = "cyclades.floating_ip"


def networkFault(error: NetworkRequestError | ServerFault) -> Fault:
    """
    The API fault of a logic refusal; a 400 names the field in its message
    too (C{Invalid 'subnet.cidr': Malformed CIDR '10/8'}).
    """
    fault = webFault(error)
    if isinstance(error, NetworkRequestError) and error.code == 400:
        fault.message = f"Invalid '{error.field}': {error.message}"
        fault.args = (fault.message,)
    return fault


async def _guard(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except (NetworkRequestError, ServerFault) as e:
        raise networkFault(e) from None


def _text(value: object) -> str | None:
    """
    An attribute as a query value compares: booleans C{true}/C{false}.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _name(body: Mapping[str, Any], field: str) -> str:
    """
    The C{name} of an update body: a string of at most 255 characters.
    """
    name = body.get("name")
    if not isinstance(name, str) or len(name) > 255:
        raise BadRequest(f"Invalid '{field}': must be a string of at most 255 characters", f"field: {field}")
    return name


class NetworkAPI:
    """
    The network routes.

    @param database: the L{IDatabase}.
    @param clock: an C{IReactorTime} dating C{changes-since}.
    @param baseURL: the public URL of the API (links).
    @param backends: the L{IBackendRegistry}; without one, ports cannot be
        attached to servers (503) and deleted networks stay on their
        clusters.
    @param defaults: the deployment's network settings (enabled types,
        bridges, MAC prefix, largest CIDR).
    @param hotplug: NICs are added to running servers (Ganeti hotplug).
    @param pollLimit: the oldest C{changes-since} accepted, in seconds.
    @param sharingEnabled: networks and floating IPs may be shared to
        their project's members (C{shared_to_project}; else 403).
    """

    def __init__(
        self,
        database: Any,
        clock: Any,
        baseURL: str,
        *,
        backends: Any = None,
        defaults: NetworkDefaults | None = None,
        hotplug: bool = True,
        pollLimit: float = 3600.0,
        sharingEnabled: bool = False,
    ) -> None:
        self._db = database
        self._base = baseURL.rstrip("/")
        self._backends = backends
        self._defaults = defaults or NetworkDefaults()
        self._hotplug = hotplug
        self._clock = clock
        self._pollLimit = pollLimit
        self._sharing = sharingEnabled
        self._networks = NetworkRepository(database)
        self._subnets = SubnetRepository(database)
        self._ports = PortRepository(database)
        self._ipPools = IPPoolRepository(database)
        self._admin = AdminQueries(database)

    def register(self, router: Router) -> None:
        tag = "network"

        def guarded(method: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
            def handler(request: IRequest, user: models.User, **kwargs: Any) -> Any:
                return _guard(method(request, user, **kwargs))

            return handler

        add = router.add
        add("GET", "/network", self.versions, "network API versions", auth="none", tag=tag)
        add("GET", PREFIX, self.version, "network v2.0 version document", tag=tag)
        add("GET", f"{PREFIX}/extensions", self.extensions, "network extensions (none)", tag=tag)
        for kind, one, idName, handlers in (
            ("networks", "network", "network_id", self._handlers("Networks", "networkAction")),
            ("subnets", "subnet", "subnet_id", self._handlers("Subnets")),
            ("ports", "port", "port_id", self._handlers("Ports")),
            ("floatingips", "floating IP", "floatingip_id", self._handlers("FloatingIPs", "floatingIPAction")),
        ):
            p = f"{PREFIX}/{kind}"
            item = f"{p}/<{idName}>"
            add("GET", p, guarded(handlers["list"]), f"list {kind}", tag=tag)
            if kind != "floatingips":
                add("GET", f"{p}/detail", guarded(handlers["list"]), f"list {kind} (detail)", tag=tag)
            add("POST", p, guarded(handlers["create"]), f"create a {one}", tag=tag)
            add("GET", item, guarded(handlers["show"]), f"show a {one}", tag=tag)
            add("PUT", item, guarded(handlers["update"]), f"update a {one}", tag=tag)
            add("DELETE", item, guarded(handlers["delete"]), f"delete a {one}", tag=tag)
            if "action" in handlers:
                add("POST", f"{item}/action", guarded(handlers["action"]), f"{one} action (reassign)", tag=tag)
        for v in VERSIONS:
            p = f"/compute/{v}/os-floating-ips"
            add("GET", p, guarded(self.listComputeFloatingIPs), "list floating IPs (compute)", tag="compute")
            add("POST", p, guarded(self.allocateComputeFloatingIP), "allocate a floating IP (compute)", tag="compute")
            add("GET", f"{p}/<floatingip_id>", guarded(self.showComputeFloatingIP), "show a floating IP", tag="compute")
            add(
                "DELETE",
                f"{p}/<floatingip_id>",
                guarded(self.releaseComputeFloatingIP),
                "release a floating IP (compute)",
                tag="compute",
            )
            add(
                "GET",
                f"/compute/{v}/os-floating-ip-pools",
                guarded(self.floatingIPPools),
                "floating IP pools (networks)",
                tag="compute",
            )

    def _handlers(self, collection: str, action: str | None = None) -> dict[str, Callable[..., Awaitable[Any]]]:
        """
        C{list<collection>} and C{create/show/update/delete<one>} (and the
        C{action} method) by verb, for C{collection} such as C{Networks}.
        """
        one = collection[:-1]
        handlers = {"list": getattr(self, f"list{collection}")}
        handlers.update({verb: getattr(self, f"{verb}{one}") for verb in ("create", "show", "update", "delete")})
        if action is not None:
            handlers["action"] = getattr(self, action)
        return handlers

    def serverActions(self) -> dict[str, ExtraAction]:
        """
        The server actions this API provides (for L{web.servers.ServersAPI}).
        """

        def guarded(method: Callable[[models.User, models.Server, object], Awaitable[None]]) -> ExtraAction:
            def action(user: models.User, server: models.Server, args: object) -> Awaitable[None]:
                return _guard(method(user, server, args))

            return action

        return {"addFloatingIp": guarded(self.addFloatingIp), "removeFloatingIp": guarded(self.removeFloatingIp)}

    # -- versions ------------------------------------------------------------------------------

    def _versionDoc(self) -> dict[str, Any]:
        return {
            "id": V,
            "status": "CURRENT",
            "updated": _VERSION_UPDATED,
            "links": [{"rel": "self", "href": f"{self._base}{PREFIX}/"}],
        }

    def versions(self, request: IRequest) -> dict[str, Any]:
        return {"versions": [self._versionDoc()]}

    def version(self, request: IRequest, user: models.User) -> dict[str, Any]:
        resources = [
            {
                "name": name,
                "collection": f"{name}s",
                "links": [{"rel": "self", "href": f"{self._base}{PREFIX}/{name}s"}],
            }
            for name in ("network", "subnet", "port", "floatingip")
        ]
        return {"version": self._versionDoc(), "resources": resources}

    def extensions(self, request: IRequest, user: models.User) -> dict[str, Any]:
        return {"extensions": []}

    # -- helpers -------------------------------------------------------------------------------

    def _links(self, kind: str, ident: object) -> list[dict[str, str]]:
        return [
            {"rel": "self", "href": f"{self._base}{PREFIX}/{kind}/{ident}"},
            {"rel": "bookmark", "href": f"{self._base}/network/{kind}/{ident}"},
        ]

    @staticmethod
    def _body(request: IRequest, key: str) -> dict[str, Any]:
        document = readJSON(request)
        if not isinstance(document, dict) or not isinstance(document.get(key), dict):
            raise BadRequest(f"Malformed request. Missing attribute '{key}'.", f"field: {key}")
        body: dict[str, Any] = document[key]
        return body

    async def _project(self, user: models.User, requested: str | None, field: str) -> models.Project:
        projects = await ProjectRepository(self._db).projectsOf(user.id)
        if requested is not None:
            for project in projects:
                if project.uuid == requested:
                    return project
            raise Forbidden(f"Not a member of project {requested}.", f"field: {field}")
        for project in projects:
            if project.is_base and project.owner_uuid == user.uuid:
                return project
        if projects:
            return projects[0]
        raise Forbidden("The user belongs to no project.", f"field: {field}")

    def _since(self, request: IRequest) -> datetime | None:
        raw = queryArg(request, "changes-since")
        if raw is None:
            return None
        return parseChangesSince(raw, datetime.fromtimestamp(self._clock.seconds(), UTC), self._pollLimit)

    @staticmethod
    def _changed(items: Iterable[M], since: datetime | None) -> list[M]:
        """
        Without C{since}: the live items. With it (spec §1.2
        C{changes-since}): the items updated since then, deleted ones
        included; none is a 304.
        """
        if since is None:
            return [i for i in items if not getattr(i, "deleted", False)]
        changed = [i for i in items if i.updated >= since]
        if not changed:
            raise NotModified()
        return changed

    @staticmethod
    def _filtered(request: IRequest, kind: str, views: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """
        The views whose attributes equal the query's filters (C{true}/C{false}
        for booleans; several values of one filter: any of them).
        """
        args: dict[bytes, list[bytes]] = getattr(request, "args", None) or {}
        for rawKey, rawValues in args.items():
            key = rawKey.decode("utf-8", "replace")
            if key not in FILTERS[kind]:
                continue
            wanted = {v.decode("utf-8", "replace") for v in rawValues}
            views = [v for v in views if _text(v.get(key)) in wanted]
        return views

    def _checkSharing(self, shared: bool, field: str) -> None:
        if shared and not self._sharing:
            raise Forbidden("Sharing resources to a project is not enabled.", f"field: {field}")

    async def _reassignArgs(self, request: IRequest, user: models.User) -> tuple[models.Project, bool]:
        """
        The project and sharing of a C{{"reassign": {"project", "shared_to_project"?}}} action body.
        """
        document = readJSON(request)
        if not isinstance(document, dict) or len(document) != 1:
            raise BadRequest("Malformed request: one action expected.", "field: action")
        action, args = next(iter(document.items()))
        if action != "reassign":
            raise BadRequest(f"Action {action} not supported.", "field: action")
        if not isinstance(args, dict) or not isinstance(args.get("project"), str):
            raise BadRequest("Malformed request. Missing attribute 'project'.", "field: reassign.project")
        shared = args.get("shared_to_project", False)
        if not isinstance(shared, bool):
            raise BadRequest(
                "Invalid 'reassign.shared_to_project': must be true or false", "field: reassign.shared_to_project"
            )
        self._checkSharing(shared, "reassign.shared_to_project")
        return await self._project(user, args["project"], "reassign.project"), shared

    # -- networks ------------------------------------------------------------------------------

    async def _network(self, user: models.User, raw: str) -> models.Network:
        networkId = parseID(raw, "Network")
        network = await self._networks.get(networkId)
        if network is None or network.deleted or not (network.public or network.userid == user.uuid or user.isAdmin):
            raise ItemNotFound(f"Network {raw} not found.")
        return network

    async def _networkView(self, network: models.Network) -> dict[str, Any]:
        subnets = await self._subnets.listByNetwork(network.id)
        view = logic.networkView(network, [s.id for s in subnets])
        view["links"] = self._links("networks", network.id)
        return view

    async def listNetworks(self, request: IRequest, user: models.User) -> dict[str, Any]:
        since = self._since(request)
        networks = self._changed(await self._networks.list(user.uuid, includeDeleted=since is not None), since)
        return {"networks": self._filtered(request, "networks", [await self._networkView(n) for n in networks])}

    async def createNetwork(self, request: IRequest, user: models.User) -> Reply:
        body = {"network": self._body(request, "network")}
        wanted = logic.parseNetwork(body, self._defaults, admin=user.isAdmin)
        self._checkSharing(wanted.sharedToProject, "network.shared_to_project")
        project = await self._project(user, wanted.project, "network.project")
        charge = QuotaCharge(project.id, user.id, NETWORK_QUOTA, 1, name="network create")
        created = await logic.createNetwork(
            self._db, attrs.evolve(wanted, project=project.uuid), user.uuid, self._defaults, quota=charge
        )
        # on no backend yet: ACTIVE (it is created on a cluster with its first port there)
        network = await logic.updateNetworkState(self._db, created.network.id)
        assert network is not None
        return Reply(201, {"network": await self._networkView(network)})

    async def showNetwork(self, request: IRequest, user: models.User, network_id: str) -> dict[str, Any]:
        return {"network": await self._networkView(await self._network(user, network_id))}

    async def updateNetwork(self, request: IRequest, user: models.User, network_id: str) -> dict[str, Any]:
        network = await self._network(user, network_id)
        body = self._body(request, "network")
        name = _name(body, "network.name")
        if network.public and not user.isAdmin:
            raise Forbidden("Cannot rename the public network.", "field: network")
        if network.userid != user.uuid and not user.isAdmin:
            raise ItemNotFound(f"Network {network_id} not found.")
        updated = await self._networks.update(network.id, name=name)
        assert updated is not None
        return {"network": await self._networkView(updated)}

    async def deleteNetwork(self, request: IRequest, user: models.User, network_id: str) -> Reply:
        network = await self._network(user, network_id)
        marked = await logic.deleteNetwork(
            self._db, network.id, user.uuid, admin=user.isAdmin, quotaResource=NETWORK_QUOTA
        )
        if not marked.deleted and self._backends is not None:
            await networkops.removeNetworkFromBackends(self._db, self._backends, marked)
        return Reply(204)

    async def networkAction(self, request: IRequest, user: models.User, network_id: str) -> dict[str, Any]:
        network = await self._network(user, network_id)
        project, shared = await self._reassignArgs(request, user)
        moved = await logic.reassignNetwork(
            self._db,
            network.id,
            None if user.isAdmin else user.uuid,
            project.uuid,
            shared=shared,
            quotaResource=NETWORK_QUOTA,
        )
        return {"network": await self._networkView(moved)}

    # -- subnets -------------------------------------------------------------------------------

    async def _subnetView(self, subnet: models.Subnet) -> dict[str, Any]:
        view = logic.subnetView(subnet, await self._ipPools.listBySubnet(subnet.id))
        view["links"] = self._links("subnets", subnet.id)
        return view

    async def _subnet(self, user: models.User, raw: str) -> tuple[models.Subnet, models.Network]:
        subnetId = parseID(raw, "Subnet")
        subnet = await self._subnets.get(subnetId)
        if subnet is None or subnet.deleted:
            raise ItemNotFound(f"Subnet {raw} not found.")
        try:
            network = await self._network(user, str(subnet.network_id))
        except ItemNotFound:
            raise ItemNotFound(f"Subnet {raw} not found.") from None
        return subnet, network

    async def listSubnets(self, request: IRequest, user: models.User) -> dict[str, Any]:
        since = self._since(request)
        visible = {n.id for n in await self._networks.list(user.uuid, includeDeleted=since is not None)}
        subnets = [s for s in await self._admin.subnets(includeDeleted=since is not None) if s.network_id in visible]
        views = [await self._subnetView(s) for s in self._changed(subnets, since)]
        return {"subnets": self._filtered(request, "subnets", views)}

    async def createSubnet(self, request: IRequest, user: models.User) -> Reply:
        body = {"subnet": self._body(request, "subnet")}
        wanted = logic.parseSubnet(body, self._defaults)
        subnet = await logic.createSubnet(self._db, wanted, None if user.isAdmin else user.uuid)
        return Reply(201, {"subnet": await self._subnetView(subnet)})

    async def showSubnet(self, request: IRequest, user: models.User, subnet_id: str) -> dict[str, Any]:
        subnet, _network = await self._subnet(user, subnet_id)
        return {"subnet": await self._subnetView(subnet)}

    async def updateSubnet(self, request: IRequest, user: models.User, subnet_id: str) -> dict[str, Any]:
        subnet, network = await self._subnet(user, subnet_id)
        body = self._body(request, "subnet")
        others = sorted(set(body) - {"name"})
        if others:
            raise BadRequest(
                f"Invalid 'subnet.{others[0]}': only the name of a subnet can be updated", f"field: subnet.{others[0]}"
            )
        name = _name(body, "subnet.name")
        if network.userid != user.uuid and not user.isAdmin:
            raise Forbidden("Cannot update a subnet of another user's network.", "field: subnet")
        updated = await self._admin.renameSubnet(subnet.id, name)
        assert updated is not None
        return {"subnet": await self._subnetView(updated)}

    async def deleteSubnet(self, request: IRequest, user: models.User, subnet_id: str) -> Reply:
        await self._subnet(user, subnet_id)
        raise BadRequest("Deletion of a subnet is not supported", "field: subnet")

    # -- ports ---------------------------------------------------------------------------------

    async def _portView(self, port: models.Port) -> dict[str, Any]:
        view = logic.portView(port, await self._ports.ipsOfPort(port.id))
        view["links"] = self._links("ports", port.id)
        return view

    async def _port(self, user: models.User, raw: str) -> models.Port:
        portId = parseID(raw, "Port")
        port = await self._ports.get(portId)
        if port is None or (port.userid != user.uuid and not user.isAdmin):
            raise ItemNotFound(f"Port {raw} not found.")
        return port

    def _registry(self) -> Any:
        if self._backends is None:
            raise ServiceUnavailable("No Ganeti backend is configured.")
        return self._backends

    async def _server(self, user: models.User, serverId: int, field: str) -> models.Server:
        server = await ServerRepository(self._db).get(serverId)
        if server is None or server.deleted or (server.userid != user.uuid and not user.isAdmin):
            raise ItemNotFound(f"Server {serverId} not found.", f"field: {field}")
        return server

    async def listPorts(self, request: IRequest, user: models.User) -> dict[str, Any]:
        ports = self._changed(await self._admin.ports(userid=user.uuid), self._since(request))
        return {"ports": self._filtered(request, "ports", [await self._portView(p) for p in ports])}

    async def createPort(self, request: IRequest, user: models.User) -> Reply:
        wanted = logic.parsePort({"port": self._body(request, "port")})
        try:
            network = await self._network(user, str(wanted.networkId))
        except ItemNotFound:
            raise ItemNotFound(f"Network {wanted.networkId} not found.", "field: port.network_id") from None
        if wanted.deviceId is not None:
            server = await self._server(user, wanted.deviceId, "port.device_id")
            attached = await networkops.attachPort(
                self._db,
                self._registry(),
                server,
                network,
                isAdmin=user.isAdmin,
                hotplug=self._hotplug,
                address=wanted.address,
                name=wanted.name,
            )
            port = attached.port
        else:
            created = await logic.createPort(self._db, network.id, user.uuid, address=wanted.address, name=wanted.name)
            port = created.port
        if wanted.securityGroups:
            updated = await self._ports.update(port.id, security_groups=list(wanted.securityGroups))
            assert updated is not None
            port = updated
        return Reply(201, {"port": await self._portView(port)})

    async def showPort(self, request: IRequest, user: models.User, port_id: str) -> dict[str, Any]:
        return {"port": await self._portView(await self._port(user, port_id))}

    async def updatePort(self, request: IRequest, user: models.User, port_id: str) -> dict[str, Any]:
        port = await self._port(user, port_id)
        body = self._body(request, "port")
        fields: dict[str, object] = {}
        if "name" in body:
            name = body["name"]
            if not isinstance(name, str) or len(name) > 255:
                raise BadRequest("Invalid 'port.name': must be a string of at most 255 characters", "field: port.name")
            fields["name"] = name
        if "security_groups" in body:
            groups = body["security_groups"]
            if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
                raise BadRequest(
                    "Invalid 'port.security_groups': must be a list of strings", "field: port.security_groups"
                )
            fields["security_groups"] = groups
        if fields:
            updated = await self._ports.update(port.id, **fields)
            assert updated is not None
            port = updated
        return {"port": await self._portView(port)}

    async def deletePort(self, request: IRequest, user: models.User, port_id: str) -> Reply:
        port = await self._port(user, port_id)
        registry = self._registry() if port.server_id is not None else self._backends
        await networkops.detachPort(self._db, registry, port, isAdmin=user.isAdmin, hotplug=self._hotplug)
        return Reply(204)

    # -- floating IPs --------------------------------------------------------------------------

    async def _floatingIP(self, user: models.User, raw: str) -> models.IPAddress:
        ipId = parseID(raw, "Floating IP")
        ip = await self._admin.ip(ipId)
        if ip is None or not ip.floating_ip or ip.deleted or (ip.userid != user.uuid and not user.isAdmin):
            raise ItemNotFound(f"Floating IP {raw} not found.")
        return ip

    async def _attachedPort(self, ip: models.IPAddress) -> models.Port | None:
        return None if ip.port_id is None else await self._ports.get(ip.port_id)

    async def _floatingView(self, ip: models.IPAddress) -> dict[str, Any]:
        return logic.floatingIPView(ip, await self._attachedPort(ip))

    async def _allocate(self, user: models.User, wanted: logic.FloatingIPRequest, field: str) -> models.IPAddress:
        self._checkSharing(wanted.sharedToProject, "floatingip.shared_to_project")
        project = await self._project(user, wanted.project, field)
        charge = QuotaCharge(project.id, user.id, FLOATING_IP_QUOTA, 1, name="floating IP allocate")
        return await logic.allocateFloatingIP(self._db, user.uuid, wanted, project=project.uuid, quota=charge)

    async def _releaseIP(self, user: models.User, raw: str) -> None:
        ip = await self._floatingIP(user, raw)
        await logic.releaseFloatingIP(
            self._db, ip.id, None if user.isAdmin else user.uuid, quotaResource=FLOATING_IP_QUOTA
        )

    async def listFloatingIPs(self, request: IRequest, user: models.User) -> dict[str, Any]:
        since = self._since(request)
        ips = await self._admin.ips(floating=True, userid=user.uuid, includeDeleted=since is not None)
        views = [await self._floatingView(ip) for ip in self._changed(ips, since)]
        return {"floatingips": self._filtered(request, "floatingips", views)}

    async def createFloatingIP(self, request: IRequest, user: models.User) -> dict[str, Any]:
        wanted = logic.parseFloatingIP({"floatingip": self._body(request, "floatingip")})
        ip = await self._allocate(user, wanted, "floatingip.project")
        return {"floatingip": await self._floatingView(ip)}

    async def showFloatingIP(self, request: IRequest, user: models.User, floatingip_id: str) -> dict[str, Any]:
        return {"floatingip": await self._floatingView(await self._floatingIP(user, floatingip_id))}

    async def updateFloatingIP(self, request: IRequest, user: models.User, floatingip_id: str) -> Reply:
        await self._floatingIP(user, floatingip_id)
        raise NotImplementedFault("Updating a floating IP is not supported; use the server actions.")

    async def deleteFloatingIP(self, request: IRequest, user: models.User, floatingip_id: str) -> Reply:
        await self._releaseIP(user, floatingip_id)
        return Reply(204)

    async def floatingIPAction(self, request: IRequest, user: models.User, floatingip_id: str) -> dict[str, Any]:
        ip = await self._floatingIP(user, floatingip_id)
        project, shared = await self._reassignArgs(request, user)
        moved = await logic.reassignFloatingIP(
            self._db,
            ip.id,
            None if user.isAdmin else user.uuid,
            project.uuid,
            shared=shared,
            quotaResource=FLOATING_IP_QUOTA,
        )
        return {"floatingip": await self._floatingView(moved)}

    # -- compute os-floating-ips -----------------------------------------------------------------

    async def _computeView(self, ip: models.IPAddress) -> dict[str, Any]:
        port = await self._attachedPort(ip)
        serverId = None if port is None or port.server_id is None else str(port.server_id)
        return {"fixed_ip": None, "id": ip.id, "instance_id": serverId, "ip": ip.address, "pool": None}

    async def listComputeFloatingIPs(self, request: IRequest, user: models.User) -> dict[str, Any]:
        ips = await self._admin.ips(floating=True, userid=user.uuid)
        return {"floating_ips": [await self._computeView(ip) for ip in ips]}

    async def allocateComputeFloatingIP(self, request: IRequest, user: models.User) -> dict[str, Any]:
        pool: object = None
        content = getattr(request, "content", None)
        raw = content.read() if content is not None else b""
        if content is not None and raw.strip():
            content.seek(0)
            document = readJSON(request)
            if not isinstance(document, dict):
                raise BadRequest("Malformed request. Invalid 'pool' field", "field: pool")
            pool = document.get("pool")
        if pool is not None and (isinstance(pool, bool) or not str(pool).isdigit()):
            raise BadRequest("Malformed request. Invalid 'pool' field", "field: pool")
        wanted = logic.FloatingIPRequest(None if pool is None else int(str(pool)), None, None, False)
        ip = await self._allocate(user, wanted, "project")
        return {"floating_ip": await self._computeView(ip)}

    async def showComputeFloatingIP(self, request: IRequest, user: models.User, floatingip_id: str) -> dict[str, Any]:
        return {"floating_ip": await self._computeView(await self._floatingIP(user, floatingip_id))}

    async def releaseComputeFloatingIP(self, request: IRequest, user: models.User, floatingip_id: str) -> Reply:
        await self._releaseIP(user, floatingip_id)
        return Reply(204)

    async def floatingIPPools(self, request: IRequest, user: models.User) -> dict[str, Any]:
        pools = [n for n in await self._networks.list(user.uuid) if n.floating_ip_pool]
        return {"floating_ip_pools": [{"name": str(n.id)} for n in pools]}

    # -- server actions --------------------------------------------------------------------------

    async def _ipByAddress(self, server: models.Server, args: object) -> models.IPAddress:
        if not isinstance(args, Mapping) or not isinstance(args.get("address"), str):
            raise BadRequest("Malformed request. Missing attribute 'address'.", "field: address")
        address = args["address"]
        for ip in await self._admin.ips(floating=True, userid=server.userid):
            if ip.address == address:
                return ip
        raise ItemNotFound(f"Floating IP '{address}' not found.", "field: address")

    async def addFloatingIp(self, user: models.User, server: models.Server, args: object) -> None:
        ip = await self._ipByAddress(server, args)
        if ip.port_id is not None:
            raise Conflict(f"Floating IP '{ip.address}' is already attached to port {ip.port_id}.", "field: address")
        network = await self._networks.get(ip.network_id)
        assert network is not None
        await networkops.attachPort(
            self._db,
            self._registry(),
            server,
            network,
            isAdmin=user.isAdmin,
            hotplug=self._hotplug,
            address=ip.address,
        )

    async def removeFloatingIp(self, user: models.User, server: models.Server, args: object) -> None:
        ip = await self._ipByAddress(server, args)
        port = await self._attachedPort(ip)
        if port is None or port.server_id != server.id:
            raise Conflict(f"Floating IP '{ip.address}' is not attached to server {server.id}.", "field: address")
        await networkops.detachPort(self._db, self._registry(), port, isAdmin=user.isAdmin, hotplug=self._hotplug)
