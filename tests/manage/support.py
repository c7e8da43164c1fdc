"""
Running snf-manage commands in-process on a memory database.
"""

from __future__ import annotations

import io
import json
from typing import Any

import attrs
from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import TestCase

from synnefo_twisted.backends import BackendRegistry
from synnefo_twisted.config import loadConfig
from synnefo_twisted.db.models import Backend
from synnefo_twisted.manage.base import ManageContext
from synnefo_twisted.manage.main import run
from synnefo_twisted.testing import InMemoryCluster, memoryDatabase

#: the RAPI URL that reaches the simulated cluster in these tests
SIM_URL = "http://simulated-cluster"


@attrs.define
class KeptOpenContext(ManageContext):
    """
    A context whose database outlives each command (the test stops it).
    """

    registry: Any = None

    def close(self) -> Deferred[None]:
        return succeed(None)

    def backends(self, database: Any) -> Any:
        return self.registry if self.registry is not None else super().backends(database)


class ManageTestCase(TestCase):
    timeout = 30

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        return Deferred.fromCoroutine(self._setUp())

    async def _setUp(self) -> None:
        self.database = await self.makeDatabase()
        self.addCleanup(self.database.stopService)
        self.registry: Any = None

    async def makeDatabase(self) -> Any:
        """
        A started, migrated database (SQLite in memory; PostgreSQL in the
        integration subclasses).
        """
        return await memoryDatabase(reactor)

    def simulate(self) -> InMemoryCluster:
        """
        A simulated cluster on the real reactor (short job durations): the
        commands reach it, with the credentials of each backend row, for
        backends whose RAPI URL is L{SIM_URL}; other URLs are unreachable.
        """
        sim = InMemoryCluster.create(reactor, defaultDuration=0.01, pollInterval=0.01)
        self.addCleanup(sim.queue.stop)

        def clientFor(_reactor: Any, backend: Backend) -> Any:
            if backend.rapi_url.rstrip("/") == SIM_URL:
                return sim.clientFor(backend.username, backend.password)
            from synnefo_twisted.backends import rapiClientFor

            return rapiClientFor(reactor, backend)

        self.registry = BackendRegistry(self.database, "snf-", reactor, clientFactory=clientFor)
        return sim

    async def manage(self, *argv: str) -> tuple[int, str, str]:
        """
        Run snf-manage; (exit status, standard output, standard error).
        """
        context = KeptOpenContext(
            reactor=reactor,
            config=loadConfig(None, {}, environ={}),
            out=io.StringIO(),
            err=io.StringIO(),
            database=self.database,
            registry=self.registry,
        )
        code = await run(reactor, list(argv), context)
        return code, context.out.getvalue(), context.err.getvalue()  # type: ignore[attr-defined]

    async def manageJSON(self, *argv: str) -> Any:
        code, out, err = await self.manage("--output-format", "json", *argv)
        self.assertEqual(code, 0, err)
        return json.loads(out)


#: quota limits of the fixture's project (bytes for RAM and disk)
LIMITS = {
    "cyclades.vm": 10,
    "cyclades.total_cpu": 40,
    "cyclades.cpu": 40,
    "cyclades.total_ram": 64 << 30,
    "cyclades.ram": 64 << 30,
    "cyclades.disk": 1 << 40,
}


class WorldTestCase(ManageTestCase):
    """
    A deployment to run commands on: the simulated cluster as a backend,
    a user with a base project and quotas, two flavors and an image.
    """

    async def _setUp(self) -> None:
        await super()._setUp()
        from synnefo_twisted.db.repositories import (
            BackendRepository,
            FlavorRepository,
            ImageRepository,
            ProjectRepository,
            QuotaRepository,
            UserRepository,
        )

        self.sim = self.simulate()
        self.backend = await BackendRepository(self.database).add(
            "sim.ganeti.local", SIM_URL, username="synnefo", password="synnefo-sim", verifyTLS=False, simulated=True
        )
        users = UserRepository(self.database)
        self.user, _ = await users.create("user@example.org", "User")
        self.other, _ = await users.create("other@example.org", "Other")
        projects = ProjectRepository(self.database)
        self.project = await projects.create("base", ownerUUID=self.user.uuid, isBase=True)
        await projects.addMember(self.project.id, self.user.id)
        self.quotas = QuotaRepository(self.database)
        for resource, limit in LIMITS.items():
            await self.quotas.setLimit(self.project.id, resource, limit)
        flavors = FlavorRepository(self.database)
        volumeType = await flavors.addVolumeType("drbd", "drbd")
        self.flavor = await flavors.create(2, 1024, 10, volumeType.id)
        self.bigger = await flavors.create(4, 2048, 10, volumeType.id)
        self.image = await ImageRepository(self.database).register(
            "debian", self.user.uuid, "file:///images/debian", isPublic=True
        )

    async def createServer(self, name: str = "vm1", started: bool = True) -> Any:
        """
        A server created through the server logic; its create job done and
        (with C{started}) marked STARTED as the dispatcher would.
        """
        from synnefo_twisted.db.repositories import ServerRepository
        from synnefo_twisted.logic import serverops
        from synnefo_twisted.logic.servers import parseCreateRequest

        request = parseCreateRequest(
            {"server": {"name": name, "imageRef": self.image.id, "flavorRef": str(self.flavor.id), "networks": []}}
        )
        result = await serverops.createServer(self.database, self.registry, self.user, request)
        server = result.server
        assert server.backendjobid is not None
        await self.sim.client.waitForJob(server.backendjobid)
        if started:
            server = await ServerRepository(self.database).update(
                server.id, operstate="STARTED", task=None, action=None
            )
            if server.serial_id is not None:
                await self.quotas.accept(server.serial_id)
        return server
