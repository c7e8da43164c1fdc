"""
A database (C{makeDatabase()}: SQLite here, PostgreSQL in subclasses), a
simulated cluster on a L{Clock} registered as backend 1, and the catalog
(user, project with quotas, flavors, image) servers need.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
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
from synnefo_twisted.testing import InMemoryCluster, memoryDatabase

LIMITS = {
    "cyclades.vm": 100000,
    "cyclades.total_cpu": 400000,
    "cyclades.cpu": 400000,
    "cyclades.total_ram": 1 << 50,
    "cyclades.ram": 1 << 50,
    "cyclades.disk": 1 << 55,
}

if TYPE_CHECKING:
    _Base = TestCase
else:
    _Base = object


class ClusterMixin(_Base):
    timeout = 60

    async def makeDatabase(self) -> Any:
        return await memoryDatabase(reactor)

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        return Deferred.fromCoroutine(self._setUp())

    async def _setUp(self) -> None:
        self.db = await self.makeDatabase()
        self.addCleanup(self.db.stopService)
        self.clock = Clock()
        self.clock.advance(time.time())
        self.sim = InMemoryCluster.create(self.clock)
        self.addCleanup(self.sim.queue.stop)
        self.client: Any = self.sim.client
        self.backend = await BackendRepository(self.db).add(
            self.sim.cluster.name, "http://simulated-cluster", simulated=True
        )
        self.registry = BackendRegistry(self.db, "snf-", self.clock, clientFactory=lambda r, b: self.client)
        self.user, _ = await UserRepository(self.db).create("user@example.org", "User")
        projects = ProjectRepository(self.db)
        self.project = await projects.create("base", ownerUUID=self.user.uuid, isBase=True)
        await projects.addMember(self.project.id, self.user.id)
        self.quotas = QuotaRepository(self.db)
        for resource, limit in LIMITS.items():
            await self.quotas.setLimit(self.project.id, resource, limit)
        flavors = FlavorRepository(self.db)
        self.volumeType = await flavors.addVolumeType("drbd", "drbd")
        self.flavor = await flavors.create(2, 1024, 10, self.volumeType.id)
        self.bigger = await flavors.create(4, 2048, 10, self.volumeType.id)
        self.image = await ImageRepository(self.db).register(
            "debian", self.user.uuid, "file:///images/debian", isPublic=True, properties={"OS": "debian"}
        )
        self.servers = ServerRepository(self.db)

    async def plainServers(self, n: int, operstate: str = "STARTED") -> list[int]:
        """
        C{n} server rows on the backend, in C{operstate}, that Ganeti has
        never heard of.
        """
        ids = []
        for i in range(n):
            server = await self.servers.create(
                f"vm{i}",
                self.user.uuid,
                self.flavor.id,
                self.image.id,
                project=self.project.uuid,
                backendId=self.backend.id,
            )
            await self.servers.update(server.id, operstate=operstate, action=None)
            ids.append(server.id)
        return ids
