"""
Tests for L{synnefo_twisted.db.volumes} and L{synnefo_twisted.db.servers}:
volumes, listings with changes-since, detail relations, VMAPI parameters,
cached passwords and tags, on SQLite and on the real PostgreSQL server.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.trial.unittest import TestCase

from synnefo_twisted.db import openDatabase
from synnefo_twisted.db import servers as dbservers
from synnefo_twisted.db.migrations import migrate
from synnefo_twisted.db.repositories import (
    FlavorRepository,
    NetworkRepository,
    PortRepository,
    ServerRepository,
    SubnetRepository,
    UserRepository,
)
from synnefo_twisted.db.servers import (
    ServerListRepository,
    ServerParamsRepository,
    ServerPasswordRepository,
    ServerTagRepository,
)
from synnefo_twisted.db.volumes import VolumeRepository
from synnefo_twisted.testing import memoryDatabase
from tests.integration import realservices
from tests.integration.db.test_postgres import SchemaMixin, withSearchPath

if TYPE_CHECKING:
    _Base = TestCase
else:
    _Base = object

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


class ServerStoreMixin(_Base):
    timeout = 30

    def openDatabase(self) -> Deferred[Any]:
        raise NotImplementedError()

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        return Deferred.fromCoroutine(self._setUp())

    async def _setUp(self) -> None:
        self.db = await self.openDatabase()
        self.addCleanup(self.db.stopService)
        self.user, _ = await UserRepository(self.db).create("u@example.org")
        self.other, _ = await UserRepository(self.db).create("o@example.org")
        flavors = FlavorRepository(self.db)
        self.volumeType = await flavors.addVolumeType("drbd", "drbd")
        self.flavor = await flavors.create(1, 512, 5, self.volumeType.id)
        self.servers = ServerRepository(self.db)

    async def server(self, name: str = "vm", user: Any = None) -> Any:
        return await self.servers.create(name, (user or self.user).uuid, self.flavor.id, "img")

    async def test_volumes(self) -> None:
        """
        Volumes are created, listed per server in attachment order (deleted ones hidden) and updated.
        """
        server = await self.server()
        volumes = VolumeRepository(self.db)
        root = await volumes.create(self.user.uuid, self.volumeType.id, 5, serverId=server.id, idx=0, source="image:x")
        extra = await volumes.create(self.user.uuid, self.volumeType.id, 10, serverId=server.id, idx=1)
        self.assertEqual((root.status, root.size, root.source, root.idx), ("CREATING", 5, "image:x", 0))
        self.assertEqual([v.id for v in await volumes.listByServer(server.id)], [root.id, extra.id])
        updated = await volumes.update(extra.id, status="ERROR", deleted=True)
        assert updated is not None
        self.assertEqual((updated.status, updated.deleted), ("ERROR", True))
        self.assertEqual([v.id for v in await volumes.listByServer(server.id)], [root.id])
        self.assertEqual(len(await volumes.listByServer(server.id, includeDeleted=True)), 2)
        self.assertEqual(await volumes.idsByServers([server.id, 999]), {server.id: [root.id], 999: []})
        self.assertEqual((await volumes.get(root.id)).server_id, server.id)  # type: ignore[union-attr]
        self.assertRaises(ValueError, volumes.update, root.id, status="MELTED")
        self.assertRaises(ValueError, volumes.create, self.user.uuid, self.volumeType.id, 1, status="MELTED")

    async def test_listForUser(self) -> None:
        """
        The list holds the user's live servers; with since, every server updated since then, deleted included.
        """
        alive = await self.server("a")
        gone = await self.server("b")
        await self.server("c", self.other)
        await self.servers.update(gone.id, deleted=True)
        lists = ServerListRepository(self.db)
        self.assertEqual([s.id for s in await lists.listForUser(self.user.uuid)], [alive.id])
        since = alive.created - timedelta(seconds=1)
        self.assertEqual([s.id for s in await lists.listForUser(self.user.uuid, since)], [alive.id, gone.id])
        self.assertEqual(await lists.listForUser(self.user.uuid, datetime.now(UTC) + timedelta(hours=1)), [])

    async def test_relations(self) -> None:
        """
        Relations of many servers come back per server, the same in chunks.
        """
        one, two = await self.server("1"), await self.server("2")
        await self.servers.setMetadata(one.id, {"k": "v"})
        await self.servers.addTag(one.id, "t")
        volume = await VolumeRepository(self.db).create(self.user.uuid, self.volumeType.id, 5, serverId=one.id, idx=0)
        await self.servers.addDiagnostic(one.id, "s", "INFO", "old")
        await self.servers.addDiagnostic(one.id, "s", "INFO", "new")
        lists = ServerListRepository(self.db)
        found = await lists.relations([one.id, two.id])
        self.assertEqual(
            (found[one.id].metadata, found[one.id].tags, found[one.id].volumeIds), ({"k": "v"}, ["t"], [volume.id])
        )
        self.assertEqual(found[one.id].diagnostic.message, "new")  # type: ignore[union-attr]
        self.assertEqual(found[two.id], dbservers.ServerRelations())
        self.patch(dbservers, "_CHUNK", 1)
        self.assertEqual(await lists.relations([one.id, two.id]), found)

    async def test_detailsForUser(self) -> None:
        """
        The details read hold the user's live servers and their relations (each port with its live addresses);
        the fingerprint is equal for an unchanged read and differs once a related row changes.
        """
        one, two = await self.server("1"), await self.server("2")
        await self.server("theirs", self.other)
        await self.servers.setMetadata(one.id, {"k": "v"})
        await self.servers.addTag(two.id, "t")
        await self.servers.addDiagnostic(one.id, "s", "INFO", "old")
        await self.servers.addDiagnostic(one.id, "s", "INFO", "new")
        network = await NetworkRepository(self.db).create("net", "IP_LESS_ROUTED")
        subnet = await SubnetRepository(self.db).create(network.id, "10.0.0.0/24", 4)
        ports = PortRepository(self.db)
        port = await ports.create(network.id, serverId=one.id, state="ACTIVE")
        bare = await ports.create(network.id, serverId=one.id)
        first = await ports.addIP(subnet.id, network.id, "10.0.0.2", 4, portId=port.id)
        second = await ports.addIP(subnet.id, network.id, "10.0.0.3", 4, portId=port.id)
        gone = await ports.addIP(subnet.id, network.id, "10.0.0.4", 4, portId=port.id)
        await ports.releaseIP(gone.id)
        lists = ServerListRepository(self.db)
        rows = await lists.detailsForUser(self.user.uuid)
        self.assertEqual([s.id for s in rows.servers()], [one.id, two.id])
        self.assertEqual(rows.servers(), await lists.listForUser(self.user.uuid))
        relations = rows.relations()
        self.assertEqual(relations, await lists.relations([one.id, two.id]))
        self.assertEqual(
            [(p.id, [ip.id for ip in ips]) for p, ips in relations[one.id].ports],
            [
                (port.id, [first.id, second.id]),
                (bare.id, []),
            ],
        )
        self.assertEqual(relations[one.id].diagnostic.message, "new")  # type: ignore[union-attr]
        self.assertEqual((relations[two.id].tags, relations[two.id].metadata), (["t"], {}))
        again = await lists.detailsForUser(self.user.uuid)
        self.assertEqual(hash(again.fingerprint), hash(rows.fingerprint))
        self.assertEqual(again.fingerprint, rows.fingerprint)
        await self.servers.setMetadata(one.id, {"k": "w"})
        changed = await lists.detailsForUser(self.user.uuid)
        self.assertNotEqual(changed.fingerprint, rows.fingerprint)
        self.assertEqual(changed.relations()[one.id].metadata, {"k": "w"})
        self.patch(dbservers, "_CHUNK", 1)
        self.assertEqual((await lists.detailsForUser(self.user.uuid)).relations(), changed.relations())
        await self.servers.update(two.id, deleted=True)
        live = await lists.detailsForUser(self.user.uuid)
        self.assertEqual(([s.id for s in live.servers()], set(live.relations())), ([one.id], {one.id}))
        since = await lists.detailsForUser(self.user.uuid, one.created - timedelta(seconds=1))
        self.assertEqual([s.id for s in since.servers()], [one.id, two.id])
        self.assertEqual(since.relations()[two.id].tags, ["t"])

    async def test_params(self) -> None:
        """
        Parameters are read once (two racing reads: one wins), not after expiry, and discarded with their server.
        """
        server = await self.server()
        params = ServerParamsRepository(self.db)
        await params.store("a" * 32, server.id, {"img_passwd": "x"})
        results = await gatherResults([params.take("a" * 32, NOW), params.take("a" * 32, NOW)])
        self.assertEqual(sorted(results, key=repr), sorted([{"img_passwd": "x"}, None], key=repr))
        await params.store("b" * 32, server.id, {"p": 1}, expires=NOW)
        self.assertIsNone(await params.take("b" * 32, NOW))
        await params.store("c" * 32, server.id, {"p": 1}, expires=NOW + timedelta(seconds=1))
        await params.store("d" * 32, None, {"p": 2}, expires=NOW - timedelta(seconds=1))
        self.assertEqual(await params.purgeExpired(NOW), 1)
        self.assertEqual(await params.discardForServer(server.id), 1)
        self.assertIsNone(await params.take("c" * 32, NOW))

    async def test_passwords(self) -> None:
        """
        A password is readable until it expires or is forgotten; remembering again replaces it.
        """
        server = await self.server()
        passwords = ServerPasswordRepository(self.db)
        self.assertIsNone(await passwords.get(server.id, NOW))
        await passwords.remember(server.id, "one", NOW + timedelta(seconds=10))
        await passwords.remember(server.id, "two", NOW + timedelta(seconds=10))
        self.assertEqual(await passwords.get(server.id, NOW), "two")
        self.assertIsNone(await passwords.get(server.id, NOW + timedelta(seconds=10)))
        self.assertFalse(await passwords.forget(server.id, NOW + timedelta(seconds=11)))
        await passwords.remember(server.id, "three")
        self.assertTrue(await passwords.forget(server.id, NOW))
        other = await self.server("other")
        await passwords.remember(server.id, "old", NOW)
        await passwords.remember(other.id, "kept")
        self.assertEqual(await passwords.purgeExpired(NOW), 1)
        self.assertEqual(await passwords.get(other.id, NOW), "kept")
        self.assertTrue(await passwords.forget(other.id, NOW))
        self.assertFalse(await passwords.forget(server.id, NOW))

    async def test_tags(self) -> None:
        """
        Tags are replaced, removed one by one or all at once.
        """
        server = await self.server()
        tags = ServerTagRepository(self.db)
        await self.servers.addTag(server.id, "old", "ACTIVE")
        replaced = await tags.replace(server.id, ["b", "a", "b"])
        self.assertEqual([(t.tag, t.status) for t in replaced], [("a", "PENDADD"), ("b", "PENDADD")])
        self.assertTrue(await tags.remove(server.id, "a"))
        self.assertFalse(await tags.remove(server.id, "a"))
        self.assertEqual(await tags.removeAll(server.id), ["b"])
        self.assertEqual(await tags.removeAll(server.id), [])


class SQLiteServerStoreTests(ServerStoreMixin, TestCase):
    def openDatabase(self) -> Deferred[Any]:
        return memoryDatabase(reactor)


class PostgresServerStoreTests(SchemaMixin, ServerStoreMixin, TestCase):
    def openDatabase(self) -> Deferred[Any]:
        return Deferred.fromCoroutine(self._open())

    async def _open(self) -> Any:
        database = openDatabase(withSearchPath(realservices.PG_URL, self.makeSchema()), reactor, poolSize=2)
        await database.startService()
        await migrate(database)
        return database
