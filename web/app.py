# -*- test-case-name: tests.web.test_app -*-
"""
The API as one Klein resource tree: identity, compute and C{/openapi.json}.

Mount points for the rest (each a class with C{register(router)}):
C{/network/v2.0} (network API, L{web.network}), C{/image/v1.0} (image API),
C{/vmapi/v1.0} (server parameters); add them in L{APIApplication.__init__}.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from synnefo_twisted import __version__
from synnefo_twisted.db.changes import ChangeStamps
from synnefo_twisted.db.repositories import (
    FlavorRepository,
    ImageRepository,
    KeyPairRepository,
    ProjectRepository,
    QuotaRepository,
    UserRepository,
)
from synnefo_twisted.logic.imageops import ImageRegistry
from synnefo_twisted.logic.networks import NetworkDefaults
from synnefo_twisted.logic.serverops import ServerOptions
from web.auth import Authenticator
from web.compute import ComputeAPI
from web.identity import IdentityAPI
from web.image import ImageAPI
from web.network import NetworkAPI
from web.openapi import openAPIDocument
from web.routing import Router
from web.servers import ExtraAction, ServersAPI
from web.vmapi import VMAPI


class APIApplication:
    """
    Every API route over one database.

    @param database: an L{synnefo_twisted.interfaces.IDatabase}.
    @param clock: an L{twisted.internet.interfaces.IReactorTime}.
    @param baseURL: the public URL of the API (C{[api] base_url}), used in
        the service catalog and links.
    @param imageFileRoots: directories below which users may register
        file images (C{[api] image_file_roots}); C{clock} must then also
        provide C{getThreadPool} (files are read in a thread).
    """

    def __init__(
        self,
        database: Any,
        clock: Any,
        baseURL: str,
        *,
        backends: Any = None,
        consoleBroker: Any = None,
        serverOptions: ServerOptions | None = None,
        serverSettings: Mapping[str, Any] | None = None,
        extraServerActions: Mapping[str, ExtraAction] | None = None,
        imageFileRoots: Sequence[str] = (),
        networkDefaults: NetworkDefaults | None = None,
        listingStaleness: float = 0.0,
    ) -> None:
        """
        @param backends: the L{IBackendRegistry}; the servers API is mounted
            only with one.
        @param consoleBroker: the L{IConsoleBroker} of server consoles.
        @param serverSettings: keyword arguments of L{ServersAPI}
            (C{fqdnTemplate}, C{statsURL}, C{pollLimit}, ...).
        @param extraServerActions: more server actions (the network API's
            C{addFloatingIp} and C{removeFloatingIp} are always there).
        @param networkDefaults: the network settings (enabled network
            types, bridges, MAC prefix, largest CIDR).
        @param listingStaleness: how late, in seconds, listings reused while
            nothing changed may show other processes' writes (C{[api]
            listing_staleness}; this process's own writes show at once;
            0: never late, one change-stamp query per listing). See
            L{synnefo_twisted.db.changes.ChangeStamps}.
        """
        self.baseURL = baseURL.rstrip("/")
        users = UserRepository(database)
        projects = ProjectRepository(database)
        self.authenticator = Authenticator(users, clock)
        stamps = ChangeStamps(database, clock, listingStaleness)
        self.router = Router(self.authenticator)
        IdentityAPI(users, projects, self.authenticator, self.baseURL).register(self.router)
        self.imageRegistry = imageRegistry = ImageRegistry(database, clock, imageFileRoots)
        ComputeAPI(
            FlavorRepository(database),
            ImageRepository(database),
            KeyPairRepository(database),
            projects,
            QuotaRepository(database),
            self.baseURL,
            imageRegistry=imageRegistry,
            changeStamp=stamps.current,
        ).register(self.router)
        self.network = NetworkAPI(
            database,
            clock,
            self.baseURL,
            backends=backends,
            defaults=networkDefaults,
            hotplug=serverOptions.hotplug if serverOptions is not None else True,
            pollLimit=float((serverSettings or {}).get("pollLimit", 3600.0)),
            sharingEnabled=bool((serverSettings or {}).get("sharingEnabled", False)),
        )
        self.network.register(self.router)
        self.servers: ServersAPI | None = None
        if backends is not None:
            self.servers = ServersAPI(
                database,
                backends,
                consoleBroker,
                clock,
                self.baseURL,
                serverOptions,
                extraActions={**self.network.serverActions(), **dict(extraServerActions or {})},
                changeStamps=stamps.current,
                **dict(serverSettings or {}),
            )
            self.servers.register(self.router)
        VMAPI(database, clock).register(self.router)
        ImageAPI(imageRegistry, self.baseURL).register(self.router)
        self.router.add("GET", "/openapi.json", self.openapi, "this document", auth="none", tag="meta")

    def openapi(self, request: IRequest) -> dict[str, Any]:
        return openAPIDocument(self.router.routes, self.baseURL, __version__)

    def resource(self) -> IResource:
        resource: IResource = self.router.app.resource()
        return resource
