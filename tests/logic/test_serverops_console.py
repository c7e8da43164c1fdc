"""
The console action end to end on loopback: L{serverops.serverConsole} asks
the real VNC proxy (its control socket, through L{vncproxy.broker}) to
forward to the simulated cluster's real RFB console, and a viewer with the
one-time password reaches the instance's desktop through the proxy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from synnefo_twisted.backends import BackendRegistry
from synnefo_twisted.db.repositories import (
    BackendRepository,
    FlavorRepository,
    ImageRepository,
    ProjectRepository,
    QuotaRepository,
    ServerRepository,
    UserRepository,
)
from synnefo_twisted.logic import serverops
from synnefo_twisted.logic.servers import parseCreateRequest
from synnefo_twisted.testing import InMemoryCluster, memoryDatabase
from tests.integration.vncproxy.lab import rfbHandshake
from tests.logic.test_serverops import LIMITS
from vncproxy.broker import makeBroker
from vncproxy.service import ProxyConfig, VNCProxy, VNCProxyService
from vncproxy.shacrypt import sha512Crypt
from vncproxy.users import UsersFile


class ConsoleEndToEndTests(TestCase):
    timeout = 30

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        return Deferred.fromCoroutine(self._setUp())

    async def _setUp(self) -> None:
        self.db = await memoryDatabase(reactor)
        self.addCleanup(self.db.stopService)
        self.clock = Clock()
        self.sim = InMemoryCluster.create(self.clock, consoleReactor=reactor)
        self.addCleanup(self.sim.queue.stop)
        consoles: Any = self.sim.rapi.consoles
        self.addCleanup(consoles.closeAll)
        backend = await BackendRepository(self.db).add("sim", "http://simulated-cluster", simulated=True)
        self.backendId = backend.id
        self.registry = BackendRegistry(self.db, "snf-", self.clock, clientFactory=lambda r, b: self.sim.client)
        self.user, _ = await UserRepository(self.db).create("user@example.org")
        project = await ProjectRepository(self.db).create("base", ownerUUID=self.user.uuid, isBase=True)
        await ProjectRepository(self.db).addMember(project.id, self.user.id)
        for resource, limit in LIMITS.items():
            await QuotaRepository(self.db).setLimit(project.id, resource, limit)
        volumeType = await FlavorRepository(self.db).addVolumeType("plain", "plain")
        self.flavor = await FlavorRepository(self.db).create(1, 512, 5, volumeType.id)
        self.image = await ImageRepository(self.db).register("img", self.user.uuid, "file:///img", isPublic=True)
        users = Path(self.mktemp())
        users.write_text("synnefo:" + sha512Crypt("secret", "testsalt") + "\n")
        proxy = VNCProxy(reactor, UsersFile(str(users)), ProxyConfig(portLow=41000, portHigh=41999))
        service = VNCProxyService(reactor, proxy, "tcp:0:interface=127.0.0.1")
        await service.startService()
        self.addCleanup(service.stopService)
        assert service.controlPort is not None
        address: Any = service.controlPort.getHost()
        controlPort = address.port
        self.broker = makeBroker(reactor, f"tcp:host=127.0.0.1:port={controlPort}", "synnefo", "secret")

    async def test_viewerReachesInstance(self) -> None:
        """
        The console answer lets a viewer authenticate at the proxy and see the instance's desktop name.
        """
        request = parseCreateRequest(
            {"server": {"name": "vm", "imageRef": self.image.id, "flavorRef": self.flavor.id, "networks": []}}
        )
        created = await serverops.createServer(self.db, self.registry, self.user, request)
        self.clock.pump([0.1] * 5)
        await ServerRepository(self.db).update(created.server.id, operstate="STARTED", task=None)
        console = await serverops.serverConsole(self.db, self.registry, self.broker, self.user, created.server.id)
        self.assertEqual((console["type"], console["host"]), ("vnc", "127.0.0.1"))
        self.assertTrue(41000 <= console["port"] <= 41999)
        sock, serverInit = await deferToThread(rfbHandshake, console["port"], console["password"])
        sock.close()
        self.assertTrue(serverInit.endswith(f"snf-{created.server.id}".encode()))
