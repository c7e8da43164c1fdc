# -*- test-case-name: tests.web.test_service -*-
"""
The API as a service: make sure the MAC-prefix and bridge pools exist,
seed demo data (when asked), then listen; on stop, stop listening.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.web.server import Site
from zope.interface import implementer

from synnefo_twisted.health import Health
from synnefo_twisted.interfaces import IHealthReporter
from synnefo_twisted.logic.networks import ensureResourcePools
from web.app import APIApplication
from web.seed import DEMO_PUBLIC_CIDR, seedDemo


class _QuietSite(Site):
    """
    A site that does not write an access line per request.
    """

    def log(self, request: Any) -> None:
        pass


@implementer(IHealthReporter)
class APIService(Service):
    """
    @param endpoint: a Twisted server endpoint description.
    """

    log = Logger()
    name = "api"
    healthName = "api"

    def __init__(
        self,
        reactor: Any,
        database: Any,
        endpoint: str,
        baseURL: str,
        seedDemo: bool = True,
        publicNetworkCidr: str = DEMO_PUBLIC_CIDR,
        resourcePools: Mapping[str, Any] | None = None,
        **applicationArgs: Any,
    ) -> None:
        """
        @param publicNetworkCidr: the subnet of the seeded public network
            (empty: none is seeded).
        @param resourcePools: the keyword arguments of
            L{ensureResourcePools} (C{macPrefixBase}, C{macPrefixSize},
            C{bridgeBase}, C{bridgeSize}); pools that exist are kept.
        @param applicationArgs: the keyword arguments of L{APIApplication}
            (C{backends}, C{consoleBroker}, C{serverOptions}, ...).
        """
        self._reactor = reactor
        self._database = database
        self._endpoint = endpoint
        self._seed = seedDemo
        self._publicCidr = publicNetworkCidr
        self._resourcePools = dict(resourcePools or {})
        self._networkDefaults = applicationArgs.get("networkDefaults")
        self.application = APIApplication(database, reactor, baseURL, **applicationArgs)
        self.port: IListeningPort | None = None

    def startService(self) -> Deferred[None]:
        Service.startService(self)
        return Deferred.fromCoroutine(self._start())

    async def _start(self) -> None:
        await ensureResourcePools(self._database, **self._resourcePools)
        if self._seed:
            seeded = await seedDemo(self._database, self._publicCidr, self._networkDefaults)
            if seeded.token is not None:
                self.log.info(
                    "demo user {email} created; its API token is {token}",
                    email="demo@example.org",
                    token=seeded.token,
                )
            if seeded.network is not None:
                self.log.info(
                    "demo data: public network {network_id} on {cidr}", network_id=seeded.network, cidr=self._publicCidr
                )
            if seeded.flavors or seeded.images:
                self.log.info(
                    "demo data: {flavors} flavors, {images} images added", flavors=seeded.flavors, images=seeded.images
                )
        site = _QuietSite(self.application.resource(), reactor=self._reactor)
        port = await serverFromString(self._reactor, self._endpoint).listen(site)
        self.port = port
        host = port.getHost()
        self.log.info(
            "{listener} listening on {address}", listener="api", address=str(host), port=getattr(host, "port", None)
        )

    def health(self) -> Health:
        if self.port is None:
            return Health.down("not listening")
        return Health.up()

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        port, self.port = self.port, None
        if port is None:
            return succeed(None)
        d = port.stopListening()
        return d if isinstance(d, Deferred) else succeed(None)
