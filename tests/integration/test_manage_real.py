"""
The snf-manage commands against the real peers: every command test again
on PostgreSQL (C{realservices.PG_URL}, a schema per test), and
backend-add / server-inspect against the real Ganeti 3.0 cluster, read
only (pinned certificate, the read-only RAPI user).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred

from synnefo_twisted.backends import BackendRegistry
from synnefo_twisted.db import openDatabase
from synnefo_twisted.db.migrations import migrate
from synnefo_twisted.db.repositories import (
    BackendRepository,
    FlavorRepository,
    ImageRepository,
    ServerRepository,
    UserRepository,
)
from tests.integration import realservices
from tests.integration.db.test_postgres import SchemaMixin, withSearchPath
from tests.integration.ganeti import realcluster
from tests.integration.ganeti.test_rapi_real import quiesce
from tests.manage import (
    support,
    test_backends,
    test_catalog,
    test_networks,
    test_pools,
    test_quotas,
    test_servers,
    test_users,
)


class OnPostgres(SchemaMixin):
    """
    Run the command tests on PostgreSQL, each in a fresh schema.
    """

    async def makeDatabase(self) -> Any:
        db = openDatabase(withSearchPath(realservices.PG_URL, self.makeSchema()), reactor, poolSize=2)
        await db.startService()
        await migrate(db)
        return db


class PostgresUserCommandTests(OnPostgres, test_users.UserCommandTests):
    pass


class PostgresFlavorCommandTests(OnPostgres, test_catalog.FlavorCommandTests):
    pass


class PostgresImageCommandTests(OnPostgres, test_catalog.ImageCommandTests):
    pass


class PostgresBackendCommandTests(OnPostgres, test_backends.BackendCommandTests):
    pass


class PostgresServerListShowTests(OnPostgres, test_servers.ServerListShowTests):
    pass


class PostgresServerInspectTests(OnPostgres, test_servers.ServerInspectTests):
    pass


class PostgresServerModifyRemoveTests(OnPostgres, test_servers.ServerModifyRemoveTests):
    pass


class PostgresNetworkCommandTests(OnPostgres, test_networks.NetworkCommandTests):
    pass


class PostgresSubnetCommandTests(OnPostgres, test_networks.SubnetCommandTests):
    pass


class PostgresPortCommandTests(OnPostgres, test_networks.PortCommandTests):
    pass


class PostgresFloatingIPCommandTests(OnPostgres, test_networks.FloatingIPCommandTests):
    pass


class PostgresPoolCommandTests(OnPostgres, test_pools.PoolCommandTests):
    pass


class PostgresQuotaCommandTests(OnPostgres, test_quotas.QuotaCommandTests):
    pass


class RealGanetiTests(support.ManageTestCase):
    """
    backend-add and server-inspect through the node's own backend registry
    (real RAPI clients) against the real cluster; nothing is written there.
    """

    timeout = 120

    async def _setUp(self) -> None:
        await super()._setUp()
        self.addCleanup(lambda: Deferred.fromCoroutine(quiesce()))
        # A prefix no other test's instances use: the inspected instance is
        # certainly absent, whatever else runs on the shared cluster.
        self.registry = BackendRegistry(self.database, "snf-manage-test-", reactor)

    def file(self, data: bytes) -> str:
        path = Path(self.mktemp())
        path.write_bytes(data)
        return str(path)

    async def addReal(self) -> dict[str, Any]:
        return await self.manageJSON(  # type: ignore[no-any-return]
            "backend-add",
            "cluster.ganeti.lab",
            "--url",
            realcluster.RAPI_URL,
            "--user",
            realcluster.RO_USER,
            "--password-file",
            self.file(realcluster.RO_PASSWORD.encode() + b"\n"),
            "--ca-file",
            self.file(realcluster.pinnedCert()),
        )

    async def test_addPinnedBackend(self) -> None:
        """
        backend-add with the cluster's certificate pinned reaches the real
        RAPI, checks the cluster name and stores what the cluster reports,
        without the private key that sits in rapi.pem; a wrong password is
        refused.
        """
        data = await self.addReal()
        self.assertEqual((data["clustername"], data["tls"]), ("cluster.ganeti.lab", "pinned"))
        self.assertTrue(data["disk_templates"])
        backend = await BackendRepository(self.database).get(data["id"])
        assert backend is not None
        self.assertNotIn("PRIVATE KEY", backend.ca_pem)
        self.assertGreater(backend.mtotal, 0)
        self.assertGreater(backend.ctotal, 0)
        self.assertIsNotNone(backend.resources_updated)
        code, _out, err = await self.manage(
            "backend-modify", "cluster.ganeti.lab", "--password-file", self.file(b"wrong\n"), "--check"
        )
        self.assertEqual(code, 1)
        self.assertIn("cannot reach the RAPI of cluster.ganeti.lab", err)

    async def test_inspectAgainstRealCluster(self) -> None:
        """
        server-inspect --jobs asks the real cluster for the instance and its
        jobs: the database view is shown, and the Ganeti view says the
        instance does not exist there (a real RAPI 404).
        """
        data = await self.addReal()
        user, _token = await UserRepository(self.database).create("ops@example.org", "Ops")
        flavors = FlavorRepository(self.database)
        volumeType = await flavors.addVolumeType("file", "file")
        flavor = await flavors.create(1, 128, 1, volumeType.id)
        image = await ImageRepository(self.database).register("img", "system", "file:///img")
        server = await ServerRepository(self.database).create(
            "probe", user.uuid, flavor.id, image.id, backendId=data["id"]
        )
        view = await self.manageJSON("server-inspect", str(server.id), "--jobs")
        self.assertEqual(view["db"]["ganeti_name"], f"snf-manage-test-{server.id}")
        self.assertEqual(view["db"]["backend"], "cluster.ganeti.lab")
        self.assertIsNone(view["ganeti"]["instance"])
        self.assertEqual(
            view["ganeti"]["error"], f"instance snf-manage-test-{server.id} does not exist on cluster.ganeti.lab"
        )
        self.assertEqual(view["ganeti"]["jobs"], [])
        self.assertNotIn("jobs_error", view["ganeti"])
