# -*- test-case-name: tests.web.test_servers -*-
"""
The compute API, servers part (spec §1.2-§1.4), under C{/compute/v2.0} and
C{/compute/v2.1}: list, detail, show, create, rename, delete, metadata,
tags, the cached admin password, addresses, statistics URLs, diagnostics
and C{POST /servers/<id>/action}.

The decisions are made by L{synnefo_twisted.logic.servers} and carried out
by L{synnefo_twisted.logic.serverops}; this module reads requests, calls
them and shapes answers. The logic's refusals (L{ServerFault},
L{NetworkRequestError}) become API faults in one place, L{webFault}.

Actions this module does not implement itself (C{addFloatingIp} and
C{removeFloatingIp}, provided by the network API) are dispatched through
C{extraActions}: C{handler(user, server, args)}, called after the common
state checks of spec §1.4; it raises L{ServerFault} or
L{NetworkRequestError} subclasses and the action answers 202.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from synnefo_twisted.db.changes import ChangeStamps
from synnefo_twisted.db.models import Server, User
from synnefo_twisted.db.repositories import ServerRepository
from synnefo_twisted.db.servers import (
    ServerListRepository,
    ServerParamsRepository,
    ServerPasswordRepository,
    ServerTagRepository,
)
from synnefo_twisted.ganeti import naming
from synnefo_twisted.ganeti.errors import GanetiError
from synnefo_twisted.logic import serverops, serverviews
from synnefo_twisted.logic import servers as logic
from synnefo_twisted.logic.networks import NetworkRequestError
from synnefo_twisted.logic.servers import ServerFault
from web.compute import VERSIONS
from web.faults import (
    BadRequest,
    BuildInProgress,
    Conflict,
    Fault,
    FeatureNotEnabled,
    Forbidden,
    InternalServerError,
    ItemNotFound,
    NotImplementedFault,
    NotModified,
    OverLimit,
    ServiceUnavailable,
)
from web.http import Reply, attribute, dumps, paginate, queryArg, readJSON
from web.memo import RenderedMemo
from web.routing import Router

log = Logger()

T = TypeVar("T")

ExtraAction = Callable[[User, Server, object], Awaitable[None]]

_FAULTS: Mapping[str, type[Fault]] = {
    "badRequest": BadRequest,
    "forbidden": Forbidden,
    "itemNotFound": ItemNotFound,
    "conflict": Conflict,
    "buildInProgress": BuildInProgress,
    "overLimit": OverLimit,
    "notImplemented": NotImplementedFault,
    "serviceUnavailable": ServiceUnavailable,
    "internalServerError": InternalServerError,
}


def webFault(error: ServerFault | NetworkRequestError) -> Fault:
    """
    The API fault for a refusal of the server or network logic: same code
    and fault name, the message, and the field at fault in C{details}.
    """
    if isinstance(error, ServerFault):
        name, code, message, field = error.faultName, error.code, error.message, error.field
    else:
        name, code, message, field = error.fault, error.code, error.message, error.field
    details = f"field: {field}" if field else ""
    cls = _FAULTS.get(name)
    if cls is not None and cls.code == code:
        return cls(message, details)
    fault = Fault(message, details)
    fault.code = code  # type: ignore[misc]
    return fault


async def _guard(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except (ServerFault, NetworkRequestError) as e:
        raise webFault(e) from None


def parseChangesSince(raw: str, now: datetime, pollLimit: float) -> datetime:
    """
    The C{changes-since} query value (ISO 8601; naive means UTC), checked
    as Synnefo does: not in the future, not older than C{pollLimit} seconds.
    """
    try:
        since = datetime.fromisoformat(raw.strip().replace(" ", "+"))
    except ValueError:
        raise BadRequest("Invalid changes-since parameter.", "field: changes-since") from None
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    if since > now:
        raise BadRequest("changes-since value set in the future.", "field: changes-since")
    if pollLimit > 0 and now - since > timedelta(seconds=pollLimit):
        raise BadRequest("Too old changes-since value.", "field: changes-since")
    return since


class ServersAPI:
    """
    The server routes.

    @param database: the L{IDatabase}.
    @param backends: the L{IBackendRegistry}.
    @param broker: the L{IConsoleBroker} consoles are asked from (None:
        consoles answer 503).
    @param clock: an C{IReactorTime} (changes-since, password expiry).
    @param options: the server logic's settings (its C{clock} should be
        C{clock}).
    @param extraActions: action key → handler, for actions provided by
        other APIs (C{addFloatingIp}, C{removeFloatingIp}).
    @param fqdnTemplate: C{SNF:fqdn} as C{snf-{id}.vm.example.org} (None: null).
    @param consolePageURL: the noVNC page of C{os-getVNCConsole} C{novnc} URLs.
    @param sharingEnabled: C{reassign} may share a server to its project.
    @param statsURL: base of the statistics graphs (C{<statsURL>/cpu-bar/<instance>});
        empty: C{/stats} answers 404 featureNotEnabled.
    @param pollLimit: the oldest C{changes-since} accepted, in seconds.
    @param changeStamps: the database's change stamp (default: a
        L{ChangeStamps} of C{database}); while it is unchanged a plain
        C{/servers/detail} is answered again without reading the servers.
    """

    def __init__(
        self,
        database: Any,
        backends: Any,
        broker: Any,
        clock: Any,
        baseURL: str,
        options: serverops.ServerOptions | None = None,
        *,
        extraActions: Mapping[str, ExtraAction] | None = None,
        fqdnTemplate: str | None = None,
        consolePageURL: str = "",
        sharingEnabled: bool = False,
        statsURL: str = "",
        statsRefresh: int = 60,
        pollLimit: float = 3600.0,
        changeStamps: Callable[[], Deferred[Hashable | None]] | None = None,
    ) -> None:
        self._db = database
        self._backends = backends
        self._broker = broker
        self._clock = clock
        self._base = baseURL.rstrip("/")
        self._options = options or serverops.ServerOptions(clock=clock)
        self._extraActions = dict(extraActions or {})
        self._fqdn = fqdnTemplate
        self._consolePage = consolePageURL or f"{self._base}/ui/console"
        self._sharing = sharingEnabled
        self._statsURL = statsURL.rstrip("/")
        self._statsRefresh = statsRefresh
        self._pollLimit = pollLimit
        self._servers = ServerRepository(database)
        self._lists = ServerListRepository(database)
        self._passwords = ServerPasswordRepository(database)
        self._params = ServerParamsRepository(database)
        self._tags = ServerTagRepository(database)
        self._memo = RenderedMemo()
        self._changeStamp = changeStamps or ChangeStamps(database).current

    @property
    def broker(self) -> Any:
        """
        The L{IConsoleBroker} consoles are asked from (None: none).
        """
        return self._broker

    @property
    def options(self) -> serverops.ServerOptions:
        return self._options

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.seconds(), UTC)

    def register(self, router: Router) -> None:
        tag = "servers"
        for v in VERSIONS:

            def bind(method: Any, v: str = v) -> Any:
                def bound(request: IRequest, user: User, **kwargs: Any) -> Any:
                    return _guard(method(request, user, v, **kwargs))

                return bound

            p = f"/compute/{v}/servers"
            s = f"{p}/<int:server_id>"
            add = router.add
            add("GET", p, bind(self.listServers), "list servers (changes-since, limit, marker)", tag=tag)
            add("POST", p, bind(self.createServer), "create a server (202 with adminPass)", tag=tag)
            add("GET", f"{p}/detail", bind(self.listServersDetail), "list servers with details", tag=tag)
            add("GET", s, bind(self.showServer), "show a server", tag=tag)
            add("PUT", s, bind(self.renameServer), "rename a server", tag=tag)
            add("DELETE", s, bind(self.deleteServer), "delete a server", tag=tag)
            add("POST", f"{s}/action", bind(self.action), "run a server action", tag=tag)
            add("GET", f"{s}/password", bind(self.getPassword), "the cached admin password", tag=tag)
            add("DELETE", f"{s}/password", bind(self.forgetPassword), "forget the cached admin password", tag=tag)
            add("GET", f"{s}/ips", bind(self.listAddresses), "the server's addresses", tag=tag)
            add("GET", f"{s}/ips/<network_id>", bind(self.networkAddresses), "addresses on one network", tag=tag)
            add("GET", f"{s}/metadata", bind(self.listMetadata), "server metadata", tag=tag)
            add("POST", f"{s}/metadata", bind(self.updateMetadata), "merge server metadata", tag=tag)
            add("GET", f"{s}/metadata/<key>", bind(self.showMeta), "one metadata item", tag=tag)
            add("PUT", f"{s}/metadata/<key>", bind(self.setMeta), "set one metadata item", tag=tag)
            add("DELETE", f"{s}/metadata/<key>", bind(self.deleteMeta), "delete one metadata item", tag=tag)
            add("GET", f"{s}/tags", bind(self.listTags), "server tags and their statuses", tag=tag)
            add("PUT", f"{s}/tags", bind(self.replaceTags), "replace the server's tags", tag=tag)
            add("DELETE", f"{s}/tags", bind(self.deleteTags), "delete every tag", tag=tag)
            add("GET", f"{s}/tags/<tag>", bind(self.checkTag), "whether a tag is set", tag=tag)
            add("PUT", f"{s}/tags/<tag>", bind(self.addTag), "add a tag", tag=tag)
            add("DELETE", f"{s}/tags/<tag>", bind(self.deleteTag), "delete a tag", tag=tag)
            add("GET", f"{s}/stats", bind(self.stats), "statistics graph URLs", tag=tag)
            add("GET", f"{s}/diagnostics", bind(self.diagnostics), "server diagnostics, newest first", tag=tag)

    # -- helpers ----------------------------------------------------------------------------------

    def _links(self, v: str) -> serverviews.ServerLinks:
        return serverviews.ServerLinks(f"{self._base}/compute/{v}", f"{self._base}/image/v1.0")

    async def _server(self, user: User, serverId: int) -> Server:
        server = await self._servers.get(serverId)
        if server is None or (server.userid != user.uuid and not user.isAdmin):
            raise ItemNotFound(f"Server {serverId} not found.")
        return server

    async def _extras(self, servers: Sequence[Server]) -> dict[int, serverviews.ServerExtras]:
        return await serverops.serverExtras(self._db, [s.id for s in servers], self._fqdn)

    def _nextLinks(self, request: IRequest, v: str, path: str, items: Sequence[Server], more: bool) -> list[Any]:
        if not more or not items:
            return []
        limit = queryArg(request, "limit")
        return [{"rel": "next", "href": f"{self._base}/compute/{v}/{path}?limit={limit}&marker={items[-1].id}"}]

    # -- list, show ----------------------------------------------------------------------------------

    async def _list(self, request: IRequest, user: User, v: str, detail: bool) -> dict[str, Any] | Reply:
        raw = queryArg(request, "changes-since")
        since = None if raw is None else parseChangesSince(raw, self.now(), self._pollLimit)
        links = self._links(v)
        if not detail:
            found = await self._lists.listForUser(user.uuid, since)
            if since is not None and not found:
                raise NotModified()
            servers, more = paginate(request, found, lambda s: s.id)
            items = [serverviews.serverSummary(s, links) for s in servers]
            return self._listDocument(request, v, "servers", items, servers, more)
        # the plain listing (no changes-since, limit or marker) is a function of the rows alone
        plain = since is None and queryArg(request, "limit") is None and queryArg(request, "marker") is None
        stampKey = None
        if plain:
            # taken before the rows are read: while it is unchanged, so are they
            stamp = await self._changeStamp()
            if stamp is not None:
                stampKey = ("servers/detail@", v, user.uuid, stamp)
                body = self._memo.get(stampKey)
                if body is not None:
                    return Reply(200, body, shared=True)
        rows = await self._lists.detailsForUser(user.uuid, since)
        key = None
        if plain:
            key = ("servers/detail", v, rows.fingerprint)
            body = self._memo.get(key)
            if body is not None:
                if stampKey is not None:
                    self._memo.put(stampKey, body)
                return Reply(200, body, shared=True)
        found = rows.servers()
        if since is not None and not found:
            raise NotModified()
        servers, more = paginate(request, found, lambda s: s.id)
        extras = serverops.extrasFromRelations(rows.relations(), self._fqdn)
        items = [serverviews.serverDetail(s, links, extras[s.id]) for s in servers]
        document = self._listDocument(request, v, "servers/detail", items, servers, more)
        if key is None:
            return document
        body = dumps(document)
        self._memo.put(key, body)
        if stampKey is not None:
            self._memo.put(stampKey, body)
        return Reply(200, body, shared=True)

    def _listDocument(
        self, request: IRequest, v: str, path: str, items: list[dict[str, Any]], servers: Sequence[Server], more: bool
    ) -> dict[str, Any]:
        document: dict[str, Any] = {"servers": items}
        nextLinks = self._nextLinks(request, v, path, servers, more)
        if nextLinks:
            document["servers_links"] = nextLinks
        return document

    def listServers(self, request: IRequest, user: User, v: str) -> Awaitable[dict[str, Any] | Reply]:
        return self._list(request, user, v, detail=False)

    def listServersDetail(self, request: IRequest, user: User, v: str) -> Awaitable[dict[str, Any] | Reply]:
        return self._list(request, user, v, detail=True)

    async def _detail(self, server: Server, v: str) -> dict[str, Any]:
        extras = await self._extras([server])
        return serverviews.serverDetail(server, self._links(v), extras[server.id])

    async def showServer(self, request: IRequest, user: User, v: str, server_id: int) -> dict[str, Any]:
        server = await self._server(user, server_id)
        return {"server": await self._detail(server, v)}

    # -- create, rename, delete ----------------------------------------------------------------------------

    async def createServer(self, request: IRequest, user: User, v: str) -> Reply:
        wanted = logic.parseCreateRequest(readJSON(request), self._options.limits)
        result = await serverops.createServer(self._db, self._backends, user, wanted, self._options)
        # Expired secrets of earlier creates go now (they are unreadable already).
        now = self.now()
        await self._params.purgeExpired(now)
        await self._passwords.purgeExpired(now)
        extras = await self._extras([result.server])
        view = serverviews.createdServer(result.server, self._links(v), result.adminPass, extras[result.server.id])
        return Reply(202, {"server": view})

    async def renameServer(self, request: IRequest, user: User, v: str, server_id: int) -> Reply:
        body = attribute(readJSON(request), "server", dict)
        name = attribute(body, "name", str)
        await serverops.renameServer(self._db, user, server_id, name, self._options)
        return Reply(204)

    async def deleteServer(self, request: IRequest, user: User, v: str, server_id: int) -> Reply:
        await serverops.serverAction(self._db, self._backends, user, server_id, "DESTROY", {}, self._options)
        return Reply(204)

    # -- actions -----------------------------------------------------------------------------------------------

    async def action(self, request: IRequest, user: User, v: str, server_id: int) -> Reply:
        body = readJSON(request)
        key, args = serverops.parseActionBody(body)
        handler = self._extraActions.get(key)
        if handler is not None:
            server = await self._server(user, server_id)
            logic.validateServerAction(server, key.upper(), isAdmin=user.isAdmin, hotplug=self._options.hotplug)
            await handler(user, server, args)
            return Reply(202)
        if key in ("rescue", "unrescue"):
            await self._server(user, server_id)
            raise FeatureNotEnabled("Rescue mode is not enabled.")
        if key in ("console", "os-getVNCConsole") and self._broker is None:
            await self._server(user, server_id)
            raise ServiceUnavailable("No VNC console proxy is configured.")
        result = await serverops.runAction(
            self._db,
            self._backends,
            self._broker,
            user,
            server_id,
            body,
            self._options,
            consolePageURL=self._consolePage,
            sharingEnabled=self._sharing,
        )
        return Reply(result.code, dict(result.body) if result.body is not None else None)

    # -- password ---------------------------------------------------------------------------------------------

    async def getPassword(self, request: IRequest, user: User, v: str, server_id: int) -> dict[str, Any]:
        server = await self._server(user, server_id)
        password = await self._passwords.get(server.id, self.now())
        if password is None:
            raise ItemNotFound("No password for this server.")
        return {"password": password}

    async def forgetPassword(self, request: IRequest, user: User, v: str, server_id: int) -> Reply:
        server = await self._server(user, server_id)
        if not await self._passwords.forget(server.id, self.now()):
            raise ItemNotFound("No password for this server.")
        return Reply(204)

    # -- addresses ---------------------------------------------------------------------------------------------

    async def _ports(self, user: User, serverId: int) -> Any:
        server = await self._server(user, serverId)
        return (await self._extras([server]))[server.id].ports

    async def listAddresses(self, request: IRequest, user: User, v: str, server_id: int) -> dict[str, Any]:
        ports = await self._ports(user, server_id)
        return {"addresses": serverviews.addresses(ports), "attachments": serverviews.attachments(ports)}

    async def networkAddresses(
        self, request: IRequest, user: User, v: str, server_id: int, network_id: str
    ) -> dict[str, Any]:
        addresses = serverviews.addresses(await self._ports(user, server_id))
        if network_id not in addresses:
            raise ItemNotFound(f"Server {server_id} is not connected to network {network_id}.")
        return {"network": {network_id: addresses[network_id]}}

    # -- metadata -----------------------------------------------------------------------------------------------

    async def listMetadata(self, request: IRequest, user: User, v: str, server_id: int) -> dict[str, Any]:
        server = await self._server(user, server_id)
        return {"metadata": await self._servers.metadata(server.id)}

    async def updateMetadata(self, request: IRequest, user: User, v: str, server_id: int) -> Reply:
        items = attribute(readJSON(request), "metadata", dict)
        merged = await serverops.updateMetadata(self._db, user, server_id, items, self._options)
        return Reply(201, {"metadata": merged})

    async def showMeta(self, request: IRequest, user: User, v: str, server_id: int, key: str) -> dict[str, Any]:
        server = await self._server(user, server_id)
        metadata = await self._servers.metadata(server.id)
        if key not in metadata:
            raise ItemNotFound("Metadata key not found.")
        return {"meta": {key: metadata[key]}}

    async def setMeta(self, request: IRequest, user: User, v: str, server_id: int, key: str) -> Reply:
        meta = attribute(readJSON(request), "meta", dict)
        if len(meta) != 1 or key not in meta:
            raise BadRequest("Malformed request. The 'meta' field must hold exactly the URL's key.", "field: meta")
        await serverops.updateMetadata(self._db, user, server_id, {key: meta[key]}, self._options)
        return Reply(201, {"meta": {key: meta[key]}})

    async def deleteMeta(self, request: IRequest, user: User, v: str, server_id: int, key: str) -> Reply:
        await serverops.deleteMetadata(self._db, user, server_id, key)
        return Reply(204)

    # -- tags ---------------------------------------------------------------------------------------------------

    async def _tagged(self, user: User, serverId: int) -> Server:
        server = await self._server(user, serverId)
        logic.validateMetadataWrite(server, user.isAdmin)
        return server

    def _checkTag(self, tag: str) -> None:
        if not tag or len(tag) > self._options.limits.maxTagLength:
            raise BadRequest(
                f"Tag '{tag[:20]}' must be 1 to {self._options.limits.maxTagLength} characters", "field: tag"
            )

    async def _syncTags(self, server: Server, add: Sequence[str], remove: Sequence[str]) -> None:
        """
        Submit the Ganeti jobs adding and deleting user tags (encoded as
        spec §1.3 says) on the server's instance. A server still being built
        gets its create-time tags from the create job; tags changed before
        its instance exists are recorded only in the database.
        """
        if server.operstate == "BUILD" or server.backend_id is None or not (add or remove):
            return
        backend = next((b for b in await self._backends.backends() if b.id == server.backend_id), None)
        if backend is None:
            raise ServiceUnavailable(f"Server {server.id} has no backend.")
        client = self._backends.clientFor(backend)
        name = naming.instanceName(server.id, self._backends.prefix)
        try:
            if remove:
                await client.deleteInstanceTags(name, [logic.encodeTag(t) for t in remove])
            if add:
                await client.addInstanceTags(name, [logic.encodeTag(t) for t in add])
        except GanetiError:
            log.failure("tags of server {server_id}", server_id=server.id)
            raise ServiceUnavailable("Failed to send job to Ganeti.") from None

    @staticmethod
    def _tagDocument(tags: Sequence[Any]) -> dict[str, Any]:
        return {"tags": [t.tag for t in tags], "statuses": [t.status for t in tags]}

    async def listTags(self, request: IRequest, user: User, v: str, server_id: int) -> dict[str, Any]:
        server = await self._server(user, server_id)
        return self._tagDocument(await self._servers.tags(server.id))

    async def replaceTags(self, request: IRequest, user: User, v: str, server_id: int) -> dict[str, Any]:
        raw = readJSON(request)
        if not isinstance(raw, dict) or "tags" not in raw:
            raise BadRequest("Malformed request. Missing attribute 'tags'.", "field: tags")
        wanted = logic.validateTags(raw["tags"], self._options.limits)
        server = await self._tagged(user, server_id)
        current = [t.tag for t in await self._servers.tags(server.id)]
        await self._syncTags(server, [t for t in wanted if t not in current], [t for t in current if t not in wanted])
        return self._tagDocument(await self._tags.replace(server.id, wanted))

    async def deleteTags(self, request: IRequest, user: User, v: str, server_id: int) -> Reply:
        server = await self._tagged(user, server_id)
        current = [t.tag for t in await self._servers.tags(server.id)]
        if not current:
            raise ItemNotFound("The server has no tags.")
        await self._syncTags(server, [], current)
        await self._tags.removeAll(server.id)
        return Reply(204)

    async def checkTag(self, request: IRequest, user: User, v: str, server_id: int, tag: str) -> Reply:
        server = await self._server(user, server_id)
        for found in await self._servers.tags(server.id):
            if found.tag == tag:
                return Reply(204, headers=(("tag-status", found.status),))
        raise ItemNotFound(f"Tag '{tag}' not found.")

    async def addTag(self, request: IRequest, user: User, v: str, server_id: int, tag: str) -> Reply:
        self._checkTag(tag)
        server = await self._tagged(user, server_id)
        current = [t.tag for t in await self._servers.tags(server.id)]
        if tag in current:
            return Reply(204)
        if len(current) >= self._options.limits.maxTags:
            raise BadRequest(
                f"Virtual Machines cannot have more than {self._options.limits.maxTags} tags", "field: tag"
            )
        await self._syncTags(server, [tag], [])
        await self._servers.addTag(server.id, tag)
        location = f"{self._base}/compute/{v}/servers/{server.id}/tags/{tag}"
        return Reply(201, headers=(("Location", location),))

    async def deleteTag(self, request: IRequest, user: User, v: str, server_id: int, tag: str) -> Reply:
        server = await self._tagged(user, server_id)
        if tag not in [t.tag for t in await self._servers.tags(server.id)]:
            raise ItemNotFound(f"Tag '{tag}' not found.")
        await self._syncTags(server, [], [tag])
        await self._tags.remove(server.id, tag)
        return Reply(204)

    # -- stats, diagnostics ---------------------------------------------------------------------------------------

    async def stats(self, request: IRequest, user: User, v: str, server_id: int) -> dict[str, Any]:
        server = await self._server(user, server_id)
        if not self._statsURL:
            raise FeatureNotEnabled("Server statistics are not configured.")
        name = naming.instanceName(server.id, self._backends.prefix)
        base = self._statsURL
        return {
            "stats": {
                "serverRef": server.id,
                "refresh": self._statsRefresh,
                "cpuBar": f"{base}/cpu-bar/{name}",
                "cpuTimeSeries": f"{base}/cpu-ts/{name}",
                "netBar": f"{base}/net-bar/{name}",
                "netTimeSeries": f"{base}/net-ts/{name}",
            }
        }

    async def diagnostics(self, request: IRequest, user: User, v: str, server_id: int) -> list[dict[str, Any]]:
        server = await self._server(user, server_id)
        return [serverviews.diagnosticView(d) for d in await self._servers.diagnostics(server.id)]
