"""
The reconciler against the real Ganeti 3.0 cluster (shared: one instance,
an id no other test uses, and only that id's range is reconciled, so other
tests' instances are never judged nor touched): a server in sync shows no
drift; stopped directly in Ganeti it is found unsynced and fixed to STOPPED
through the dispatcher's state machine; removed directly in Ganeti it is
found stale and fixed to deleted. A second pass each time finds nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from twisted.internet import reactor

from synnefo_twisted.backends import BackendRegistry
from synnefo_twisted.db.repositories import (
    BackendRepository,
    FlavorRepository,
    ImageRepository,
    ProjectRepository,
    ServerRepository,
    UserRepository,
)
from synnefo_twisted.logic.reconcile import Thresholds
from synnefo_twisted.reconciler.shell import BatchResult, FixOptions, reconcileServers
from synnefo_twisted.testing import memoryDatabase
from tests.ganeti.rapi_contract import ClusterEnv, RapiHelpers, uniqueId
from tests.integration.ganeti import realcluster
from tests.integration.ganeti.test_rapi_real import QuiescingTestCase, realClient


class RealClusterDriftTests(RapiHelpers, QuiescingTestCase):
    timeout = 300

    async def setUp(self) -> None:  # type: ignore[override]
        QuiescingTestCase.setUp(self)
        self.client = realClient(realcluster.USER, realcluster.PASSWORD)
        self.env = ClusterEnv(pnode=realcluster.NODE)
        self.db = await memoryDatabase(reactor)
        self.addCleanup(self.db.stopService)
        info = await self.client.getInfo()
        self.backend = await BackendRepository(self.db).add(info["name"], realcluster.RAPI_URL)
        self.registry = BackendRegistry(self.db, "snf-", reactor, clientFactory=lambda r, b: self.client)
        user, _ = await UserRepository(self.db).create("real@example.org", "Real")
        project = await ProjectRepository(self.db).create("real", ownerUUID=user.uuid, isBase=True)
        flavors = FlavorRepository(self.db)
        volumeType = await flavors.addVolumeType("file", "file")
        flavor = await flavors.create(1, 128, 0, volumeType.id)
        image = await ImageRepository(self.db).register("noop", user.uuid, "file:///noop", isPublic=True)
        # An id no other test's instance has: the row sequence starts there.
        self.serverId = uniqueId()
        await self.db.runOperation(
            "INSERT INTO sqlite_sequence (name, seq) VALUES ('servers', %s)", (self.serverId - 1,)
        )
        self.servers = ServerRepository(self.db)
        server = await self.servers.create(
            "real", user.uuid, flavor.id, image.id, project=project.uuid, backendId=self.backend.id
        )
        self.assertEqual(server.id, self.serverId)

    async def reconcile(self, fix: FixOptions | None = None) -> BatchResult:
        return await reconcileServers(
            self.db,
            self.backend,
            self.client,
            lambda: datetime.now(UTC),
            fix=fix or FixOptions(),
            thresholds=Thresholds(grace=timedelta(0)),
            low=self.serverId,
            high=self.serverId,
        )

    def kinds(self, result: BatchResult) -> list[str]:
        return [f.drift.kind for f in result.findings]

    async def server(self) -> Any:
        server = await self.servers.get(self.serverId)
        assert server is not None
        return server

    async def test_driftOnRealCluster(self) -> None:
        """
        Stopped, then removed behind the system's back: found and fixed
        each time, and nothing is left to find.
        """
        name = await self.makeInstance(self.serverId, [])
        await self.servers.update(
            self.serverId, operstate="STARTED", action=None, backendtime=datetime.now(UTC) - timedelta(minutes=1)
        )
        self.assertEqual(self.kinds(await self.reconcile()), [])

        await self.wait(self.client.shutdownInstance(name, timeout=0))
        self.assertEqual(self.kinds(await self.reconcile()), ["unsynced-operstate"])
        result = await self.reconcile(FixOptions.all())
        self.assertEqual([f.fix for f in result.findings], ["fixed"])
        self.assertEqual((await self.server()).operstate, "STOPPED")
        self.assertEqual(self.kinds(await self.reconcile()), [])

        await self.wait(self.client.deleteInstance(name, shutdownTimeout=0))
        self.assertEqual(self.kinds(await self.reconcile()), ["stale"])
        await self.reconcile(FixOptions.all())
        server = await self.server()
        self.assertEqual((server.deleted, server.operstate), (True, "DESTROYED"))
        self.assertEqual(self.kinds(await self.reconcile()), [])
