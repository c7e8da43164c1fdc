"""
The L{IDatabase} contract, as a mixin run against every implementation
(SQLite in L{tests.db.test_sqlite}, real PostgreSQL in
L{tests.integration.db.test_postgres}).

A concrete test case provides C{reactor} and C{makeDatabase()} (an
unstarted database on a fresh, empty store); the mixin starts it and stops
it at cleanup.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg2
from twisted.application.service import IService
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import deferLater
from zope.interface.verify import verifyObject

from synnefo_twisted.db import DatabaseUnavailableError, IntegrityError, models
from synnefo_twisted.db.migrations import DIALECT_FILL, allMigrations, appliedMigrations, migrate, pendingMigrations
from synnefo_twisted.db.models import Server
from synnefo_twisted.db.repositories import (
    BackendRepository,
    ConsoleForwardingRepository,
    FlavorRepository,
    ImageRepository,
    KeyPairRepository,
    NetworkRepository,
    PortRepository,
    ProjectRepository,
    QuotaExceededError,
    QuotaRepository,
    ServerRepository,
    SubnetRepository,
    UserRepository,
    hashToken,
)
from synnefo_twisted.health import Health
from synnefo_twisted.interfaces import IDatabase, IHealthReporter, ITransaction
from synnefo_twisted.metrics import MetricsRegistry

ALL_MIGRATIONS = [m.name for m in allMigrations()]


async def waitFor(reactor: Any, predicate: Any, timeout: float = 10.0, step: float = 0.01) -> None:
    """
    Poll C{predicate} until it is true, failing after C{timeout} seconds.
    """
    deadline = reactor.seconds() + timeout
    while not predicate():
        if reactor.seconds() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await deferLater(reactor, step, lambda: None)


if TYPE_CHECKING:
    from twisted.trial.unittest import TestCase as _Base
else:
    _Base = object


class DatabaseContractMixin(_Base):
    """
    What every L{IDatabase} does.
    """

    reactor: Any

    def makeDatabase(self, metrics: MetricsRegistry | None = None) -> Any:
        raise NotImplementedError

    async def started(self, metrics: MetricsRegistry | None = None) -> Any:
        db = self.makeDatabase(metrics=metrics)
        await db.startService()
        self.addCleanup(self._stopIfRunning, db)
        return db

    @staticmethod
    def _stopIfRunning(db: Any) -> Deferred[None] | None:
        if db.running:
            d: Deferred[None] = db.stopService()
            return d
        return None

    async def table(self, db: Any) -> None:
        pk = DIALECT_FILL[db.dialect]["pk"]
        await db.runOperation(f"CREATE TABLE items (id {pk}, name TEXT NOT NULL UNIQUE, n INTEGER NOT NULL DEFAULT 0)")

    # -- interface ---------------------------------------------------------

    async def test_interfaces(self) -> None:
        """
        The database provides IDatabase, IService and IHealthReporter, and the
        transaction an interaction receives provides ITransaction.
        """
        db = await self.started()
        self.assertTrue(verifyObject(IDatabase, db))
        self.assertTrue(verifyObject(IService, db))
        self.assertTrue(verifyObject(IHealthReporter, db))
        self.assertIn(db.dialect, ("sqlite", "postgresql"))
        seen = await db.runInteraction(lambda tx: verifyObject(ITransaction, tx))
        self.assertTrue(seen)

    async def test_healthUpThenStopped(self) -> None:
        """
        health() is ok once started and not ok once stopped.
        """
        db = await self.started()
        health = db.health()
        self.assertIsInstance(health, Health)
        self.assertTrue(health.ok, health)
        await db.stopService()
        self.assertFalse(db.health().ok)

    # -- statements ----------------------------------------------------------

    async def test_queryAndOperation(self) -> None:
        """
        runOperation returns None, runQuery returns a list of tuples (empty for
        a statement without rows), RETURNING reads back inserted values.
        """
        db = await self.started()
        await self.table(db)
        self.assertIsNone(await db.runOperation("INSERT INTO items (name, n) VALUES (%s, %s)", ("a", 1)))
        rows = await db.runQuery("INSERT INTO items (name, n) VALUES (%s, %s) RETURNING name, n", ("b", 2))
        self.assertEqual(rows, [("b", 2)])
        self.assertEqual(await db.runQuery("SELECT name, n FROM items ORDER BY name"), [("a", 1), ("b", 2)])
        self.assertEqual(await db.runQuery("UPDATE items SET n = 5 WHERE name = %s", ("zz",)), [])
        self.assertEqual(await db.runQuery("SELECT name FROM items WHERE n > %s", (10,)), [])

    async def test_parameterStyles(self) -> None:
        """
        %s and %(name)s parameters both work, a named parameter may repeat,
        %% is a literal percent, and unicode text round-trips.
        """
        db = await self.started()
        await self.table(db)
        name = "snf-\u00e9\u20ac-\u2603-\U0001f600"
        await db.runOperation("INSERT INTO items (name, n) VALUES (%s, %s)", (name, 7))
        rows = await db.runQuery(
            "SELECT name, n FROM items WHERE name = %(name)s AND n = %(n)s AND n + %(n)s = 14", {"name": name, "n": 7}
        )
        self.assertEqual(rows, [(name, 7)])
        rows = await db.runQuery("SELECT name FROM items WHERE name LIKE %s", ("snf-%",))
        self.assertEqual(rows, [(name,)])
        rows = await db.runQuery("SELECT '50%%'", ())
        self.assertEqual(rows, [("50%",)])
        rows = await db.runQuery("SELECT name FROM items WHERE name LIKE 'snf-%%'")
        self.assertEqual(rows, [(name,)])

    async def test_integrityError(self) -> None:
        """
        A unique violation fails with the driver-neutral IntegrityError.
        """
        db = await self.started()
        await self.table(db)
        await db.runOperation("INSERT INTO items (name) VALUES (%s)", ("x",))
        with self.assertRaises(IntegrityError):
            await db.runOperation("INSERT INTO items (name) VALUES (%s)", ("x",))

    # -- interactions ---------------------------------------------------------

    async def test_interactionCommits(self) -> None:
        """
        runInteraction calls the function with a transaction and extra
        arguments, commits its statements and fires with its result.
        """
        db = await self.started()
        await self.table(db)

        async def work(tx: Any, first: str, second: str = "") -> int:
            await tx.execute("INSERT INTO items (name) VALUES (%s)", (first,))
            await tx.execute("INSERT INTO items (name) VALUES (%(name)s)", {"name": second})
            rows = await tx.execute("SELECT count(*) FROM items")
            return int(rows[0][0])

        self.assertEqual(await db.runInteraction(work, "p", second="q"), 2)
        self.assertEqual(await db.runQuery("SELECT name FROM items ORDER BY name"), [("p",), ("q",)])

    async def test_interactionSynchronousResult(self) -> None:
        """
        An interaction may return a plain value instead of a Deferred.
        """
        db = await self.started()
        self.assertEqual(await db.runInteraction(lambda tx, x: x * 2, 21), 42)

    async def test_interactionRollsBack(self) -> None:
        """
        When the interaction fails, its statements are rolled back and the
        failure is passed on.
        """
        db = await self.started()
        await self.table(db)

        async def work(tx: Any) -> None:
            await tx.execute("INSERT INTO items (name) VALUES (%s)", ("gone",))
            raise ValueError("boom")

        with self.assertRaises(ValueError):
            await db.runInteraction(work)
        self.assertEqual(await db.runQuery("SELECT name FROM items"), [])

    async def test_interactionRollsBackOnConstraint(self) -> None:
        """
        A statement that breaks a constraint fails the interaction with
        IntegrityError and undoes its earlier statements.
        """
        db = await self.started()
        await self.table(db)
        await db.runOperation("INSERT INTO items (name) VALUES (%s)", ("taken",))

        async def work(tx: Any) -> None:
            await tx.execute("INSERT INTO items (name) VALUES (%s)", ("new",))
            await tx.execute("INSERT INTO items (name) VALUES (%s)", ("taken",))

        with self.assertRaises(IntegrityError):
            await db.runInteraction(work)
        self.assertEqual(await db.runQuery("SELECT name FROM items ORDER BY name"), [("taken",)])

    async def test_forUpdateCounter(self) -> None:
        """
        Two concurrent read-modify-write loops of 50 interactions each, reading
        with SELECT ... FOR UPDATE, add exactly 100.
        """
        db = await self.started()
        await self.table(db)
        await db.runOperation("INSERT INTO items (name, n) VALUES (%s, %s)", ("counter", 1000))

        async def increment(tx: Any) -> None:
            rows = await tx.execute("SELECT n FROM items WHERE name = %s FOR UPDATE", ("counter",))
            await deferLater(self.reactor, 0, lambda: None)  # let the other loop run meanwhile
            await tx.execute("UPDATE items SET n = %s WHERE name = %s", (rows[0][0] + 1, "counter"))

        async def loop() -> None:
            for _ in range(50):
                await db.runInteraction(increment)

        await gatherResults([Deferred.fromCoroutine(loop()), Deferred.fromCoroutine(loop())])
        self.assertEqual(await db.runQuery("SELECT n FROM items WHERE name = %s", ("counter",)), [(1100,)])

    async def test_executeAfterInteractionFails(self) -> None:
        """
        Using the transaction after the interaction returned is an error.
        """
        db = await self.started()
        kept = await db.runInteraction(lambda tx: tx)
        self.assertRaises(RuntimeError, kept.execute, "SELECT 1")
        self.assertRaises(RuntimeError, kept.notify, "c", "p")

    # -- notifications ----------------------------------------------------------

    async def test_notifyAfterCommitOnly(self) -> None:
        """
        A notification is delivered to listeners after its transaction
        commits, never before and never when it rolls back.
        """
        db = await self.started()
        got: list[str] = []
        await db.listen("snf_events", got.append)

        async def rolledBack(tx: Any) -> None:
            tx.notify("snf_events", "lost")
            raise ValueError("no")

        with self.assertRaises(ValueError):
            await db.runInteraction(rolledBack)

        seenInside: list[list[str]] = []

        async def committed(tx: Any) -> None:
            tx.notify("snf_events", "one \u00e9")
            await tx.execute("SELECT 1")
            await deferLater(self.reactor, 0.05, lambda: None)
            seenInside.append(list(got))

        await db.runInteraction(committed)
        await waitFor(self.reactor, lambda: got)
        self.assertEqual(seenInside, [[]])
        self.assertEqual(got, ["one \u00e9"])

    async def test_notificationLimits(self) -> None:
        """
        PostgreSQL's NOTIFY limits hold on every driver: a channel of at most
        63 bytes, a payload under 8000 bytes; notify raises ValueError and
        the interaction fails.
        """
        db = await self.started()
        for channel, payload in (("c" * 64, "p"), ("", "p"), ("c", "\u00e9" * 4000)):
            with self.assertRaises(ValueError):
                await db.runInteraction(lambda tx, c=channel, p=payload: tx.notify(c, p))
        got: list[str] = []
        await db.listen("c" * 63, got.append)
        await db.runInteraction(lambda tx: tx.notify("c" * 63, "x" * 7999))
        await waitFor(self.reactor, lambda: got)
        self.assertEqual(got, ["x" * 7999])

    async def test_listenSeveralAndUnlisten(self) -> None:
        """
        Every callback of a channel is called, callbacks of other channels are
        not, and after unlisten a callback is no longer called.
        """
        db = await self.started()
        first: list[str] = []
        second: list[str] = []
        other: list[str] = []
        await db.listen("chan_a", first.append)
        await db.listen("chan_a", second.append)
        await db.listen("chan_b", other.append)

        def send(tx: Any, payload: str) -> None:
            tx.notify("chan_a", payload)

        await db.runInteraction(send, "1")
        await waitFor(self.reactor, lambda: first and second)
        await db.unlisten("chan_a", first.append)
        await db.runInteraction(send, "2")
        await waitFor(self.reactor, lambda: len(second) == 2)
        await db.unlisten("chan_a", second.append)
        await db.runInteraction(send, "3")
        await db.runInteraction(lambda tx: tx.notify("chan_b", "b"))
        await waitFor(self.reactor, lambda: other)
        self.assertEqual((first, second, other), (["1"], ["1", "2"], ["b"]))

    # -- lifecycle ----------------------------------------------------------------

    async def test_stopWaitsForInFlight(self) -> None:
        """
        stopService fires only after the interactions in flight finish, and
        calls made after it started fail with DatabaseUnavailableError.
        """
        db = await self.started()
        await self.table(db)
        release: Deferred[None] = Deferred()

        async def slow(tx: Any) -> str:
            await tx.execute("INSERT INTO items (name) VALUES (%s)", ("slow",))
            await release
            return "done"

        running = db.runInteraction(slow)
        await deferLater(self.reactor, 0.05, lambda: None)
        stopping = db.stopService()
        self.assertFalse(stopping.called)
        with self.assertRaises(DatabaseUnavailableError):
            await db.runQuery("SELECT 1")
        release.callback(None)
        self.assertEqual(await running, "done")
        await stopping

    async def test_metrics(self) -> None:
        """
        With a metrics registry, each call is counted by kind and outcome and
        its duration observed.
        """
        metrics = MetricsRegistry()
        db = await self.started(metrics=metrics)
        await db.runQuery("SELECT 1")
        await db.runInteraction(lambda tx: tx.execute("SELECT 1"))
        with self.assertRaises((sqlite3.OperationalError, psycopg2.ProgrammingError)):
            await db.runOperation("SELECT * FROM no_such_table")
        count = metrics.counter("synnefo_db_queries_total", "", ("dialect", "kind", "outcome"))
        self.assertEqual(count.value(dialect=db.dialect, kind="query", outcome="ok"), 1)
        self.assertEqual(count.value(dialect=db.dialect, kind="interaction", outcome="ok"), 1)
        self.assertEqual(count.value(dialect=db.dialect, kind="operation", outcome="error"), 1)
        latency = metrics.histogram("synnefo_db_query_seconds", "", ("dialect", "kind"))
        self.assertEqual(latency.count(dialect=db.dialect, kind="query"), 1)
        self.assertIn("synnefo_db_query_seconds_bucket", metrics.render())

    # -- migrations ------------------------------------------------------------------

    async def test_migrationsOnceAndIdempotent(self) -> None:
        """
        migrate applies every pending migration once; a second run applies
        nothing and nothing is pending afterwards.
        """
        db = await self.started()
        self.assertEqual(await pendingMigrations(db), ALL_MIGRATIONS)
        self.assertEqual(await migrate(db), ALL_MIGRATIONS)
        self.assertEqual(await migrate(db), [])
        self.assertEqual(await pendingMigrations(db), [])
        self.assertEqual(await appliedMigrations(db), ALL_MIGRATIONS)

    async def test_migrationsRace(self) -> None:
        """
        Two migrate calls racing on a fresh database apply each migration
        exactly once between them.
        """
        db = await self.started()
        other = await self.started()
        results = await gatherResults([migrate(db), migrate(other)])
        self.assertEqual(sorted(results[0] + results[1]), ALL_MIGRATIONS)
        self.assertEqual(await appliedMigrations(db), ALL_MIGRATIONS)

    # -- repositories ------------------------------------------------------------------

    async def migrated(self) -> Any:
        db = await self.started()
        await migrate(db)
        return db

    async def test_modelsMatchTables(self) -> None:
        """
        Every model's fields are exactly its table's columns, in any order, so
        that rows read with columns(Model) build the model.
        """
        db = await self.migrated()
        pairs = {
            "users": models.User,
            "tokens": models.Token,
            "projects": models.Project,
            "quotas": models.Quota,
            "commissions": models.Commission,
            "backends": models.Backend,
            "volume_types": models.VolumeType,
            "flavors": models.Flavor,
            "images": models.Image,
            "servers": models.Server,
            "server_tags": models.ServerTag,
            "diagnostics": models.Diagnostic,
            "volumes": models.Volume,
            "networks": models.Network,
            "backend_networks": models.BackendNetwork,
            "subnets": models.Subnet,
            "ip_pools": models.IPPool,
            "resource_pools": models.ResourcePool,
            "ports": models.Port,
            "ips": models.IPAddress,
            "keypairs": models.KeyPair,
            "console_forwardings": models.ConsoleForwarding,
        }
        for table, model in pairs.items():
            if db.dialect == "sqlite":
                rows = await db.runQuery(f"SELECT name FROM pragma_table_info('{table}')")
            else:
                rows = await db.runQuery(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                    "AND table_schema = current_schema()",
                    (table,),
                )
            expected = {c.strip() for c in models.columns(model).split(",")}
            self.assertEqual({r[0] for r in rows}, expected, table)

    async def test_users(self) -> None:
        """
        Users are created with a hashed token found again by the clear token
        until it expires or is revoked; duplicates fail with IntegrityError.
        """
        db = await self.migrated()
        users = UserRepository(db)
        now = datetime(2030, 1, 1, tzinfo=UTC)
        user, token = await users.create("a@example.org", "Ann", roles=["admin"], tokenExpires=now + timedelta(hours=1))
        self.assertTrue(user.isAdmin)
        self.assertEqual(user.email, "a@example.org")
        self.assertEqual((await users.byToken(token, now)), user)
        self.assertIsNone(await users.byToken(token, now + timedelta(hours=2)))
        self.assertIsNone(await users.byToken("wrong", now))
        stored = await db.runQuery("SELECT token_hash FROM tokens")
        self.assertEqual(stored, [(hashToken(token),)])
        self.assertNotIn(token, repr(stored))
        second = await users.addToken(user.id, name="cli")
        self.assertEqual(await users.byToken(second, now), user)
        bob, _ = await users.create("b@example.org", token="fixed-token")
        self.assertEqual(await users.byToken("fixed-token", now), bob)
        self.assertEqual([u.email for u in await users.list()], ["a@example.org", "b@example.org"])
        self.assertEqual(await users.byUUID(bob.uuid), bob)
        with self.assertRaises(IntegrityError):
            await users.create("a@example.org")
        await users.revokeTokens(user.id)
        self.assertIsNone(await users.byToken(second, now))
        modified = await users.modify(bob.id, is_active=False)
        assert modified is not None
        self.assertFalse(modified.is_active)
        self.assertIsNone(await users.byToken("fixed-token", now))

    async def test_backends(self) -> None:
        """
        Backends are added, listed, read and modified; a duplicate
        clustername fails and unknown fields are refused.
        """
        db = await self.migrated()
        backends = BackendRepository(db)
        b1 = await backends.add("cluster1.example.org", "https://c1:5080", username="u", password="secret")
        b2 = await backends.add("sim", "http://127.0.0.1:5081", simulated=True)
        self.assertNotIn("secret", repr(b1))
        self.assertEqual([b.clustername for b in await backends.list()], ["cluster1.example.org", "sim"])
        self.assertEqual(await backends.get(b2.id), b2)
        self.assertTrue(b2.simulated)
        self.assertTrue(b1.usable)
        drained = await backends.modify(b1.id, drained=True, mfree=2048, disk_templates=["plain", "drbd"])
        assert drained is not None
        self.assertEqual((drained.drained, drained.mfree, drained.disk_templates), (True, 2048, ("plain", "drbd")))
        self.assertFalse(drained.usable)
        self.assertGreaterEqual(drained.updated, b1.updated)
        self.assertEqual(await backends.byClustername("sim"), b2)
        self.assertIsNone(await backends.get(999))
        self.assertIsNone(await backends.modify(999, drained=True))
        self.assertRaises(ValueError, backends.modify, b1.id, id=5)
        with self.assertRaises(IntegrityError):
            await backends.add("sim", "http://x")

    async def test_flavorsAndImages(self) -> None:
        """
        Flavors get Synnefo's default name and are unique per (cpu, ram, disk,
        volume type); images round-trip with their properties.
        """
        db = await self.migrated()
        flavors = FlavorRepository(db)
        vt = await flavors.addVolumeType("drbd", "drbd")
        f1 = await flavors.create(1, 1024, 20, vt.id)
        self.assertEqual(f1.name, "C1R1024D20drbd")
        self.assertEqual(await flavors.get(f1.id), f1)
        self.assertEqual(await flavors.bySpec(1, 1024, 20, vt.id), f1)
        with self.assertRaises(IntegrityError):
            await flavors.create(1, 1024, 20, vt.id, name="other")
        with self.assertRaises(IntegrityError):
            await flavors.create(0, 1024, 20, vt.id)
        await flavors.modify(f1.id, deleted=True)
        self.assertEqual(await flavors.list(), [])
        self.assertEqual(len(await flavors.list(includeDeleted=True)), 1)

        images = ImageRepository(db)
        image = await images.register(
            "Debian",
            "owner-uuid",
            "file:///images/debian.img",
            size=1 << 30,
            properties={"OS": "debian", "USERS": "root"},
        )
        again = await images.get(image.id)
        self.assertEqual(again, image)
        assert again is not None
        self.assertEqual(again.properties, {"OS": "debian", "USERS": "root"})
        await images.setProperties(image.id, {"OS": "debian12", "GUI": "no"})
        merged = await images.get(image.id)
        assert merged is not None
        self.assertEqual(merged.properties, {"OS": "debian12", "USERS": "root", "GUI": "no"})
        public = await images.register("Public", "someone", "file:///p.img", isPublic=True)
        await images.register("Private", "someone", "file:///q.img")
        self.assertEqual([i.name for i in await images.list(owner="owner-uuid")], ["Debian", "Public"])
        self.assertEqual(public.properties, {})

    async def test_serversAndNetworks(self) -> None:
        """
        Servers are created, read, listed by user, updated (fields and the
        updated time) and locked with getForUpdate inside an interaction;
        networks are created, read and listed with the public ones.
        """
        db = await self.migrated()
        user, _ = await UserRepository(db).create("u@example.org")
        flavors = FlavorRepository(db)
        vt = await flavors.addVolumeType("plain", "plain")
        flavor = await flavors.create(2, 2048, 10, vt.id)
        backend = await BackendRepository(db).add("c", "http://c")
        servers = ServerRepository(db)
        s1 = await servers.create("web \u00e9", user.uuid, flavor.id, "img-1", backendId=backend.id, keyNames=["k1"])
        s2 = await servers.create("db", user.uuid, flavor.id, "img-1")
        self.assertEqual((s1.operstate, s1.deleted, s1.key_names, s1.buildpercentage), ("BUILD", False, ("k1",), 0))
        self.assertEqual(await servers.get(s1.id), s1)
        when = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
        updated = await servers.update(
            s1.id, operstate="STARTED", backendjobid=17, backendopcode="OP_INSTANCE_CREATE",
            backendjobstatus="success", backendtime=when, task=None, task_job_id=None,
        )  # fmt: skip
        assert updated is not None
        self.assertEqual((updated.operstate, updated.backendjobid, updated.backendtime), ("STARTED", 17, when))
        await servers.update(s2.id, deleted=True)
        self.assertEqual([s.id for s in await servers.listByUser(user.uuid)], [s1.id])
        self.assertEqual(len(await servers.listByUser(user.uuid, includeDeleted=True)), 2)
        with self.assertRaises(IntegrityError):
            await servers.update(s1.id, buildpercentage=101)
        with self.assertRaises(IntegrityError):
            await servers.create("x", "no-such-user", flavor.id, "img")

        async def lockAndBump(tx: Any, serverId: int) -> Server | None:
            server = await ServerRepository.getForUpdate(tx, serverId)
            assert server is not None
            return await ServerRepository(tx).update(serverId, buildpercentage=server.buildpercentage + 10)

        bumped = await db.runInteraction(lockAndBump, s1.id)
        assert bumped is not None
        self.assertEqual(bumped.buildpercentage, 10)
        self.assertIsNone(await db.runInteraction(ServerRepository.getForUpdate, 12345))
        self.assertEqual(await servers.setMetadata(s1.id, {"OS": "debian"}), {"OS": "debian"})
        self.assertEqual(
            await servers.setMetadata(s1.id, {"OS": "ubuntu", "users": "root"}), {"OS": "ubuntu", "users": "root"}
        )
        self.assertTrue(await servers.addTag(s1.id, "user:web"))
        self.assertFalse(await servers.addTag(s1.id, "user:web"))
        diag = await servers.addDiagnostic(s1.id, "image-info", "INFO", "copying", sourceDate=when)
        self.assertEqual((await servers.diagnostics(s1.id))[0], diag)

        networks = NetworkRepository(db)
        private = await networks.create("mine", "MAC_FILTERED", userid=user.uuid, macPrefix="aa:00:1")
        public = await networks.create("internet", "IP_LESS_ROUTED", public=True, mode="routed")
        await networks.create("theirs", "CUSTOM", link="br9")
        self.assertEqual(await networks.get(private.id), private)
        self.assertEqual([n.name for n in await networks.list(userid=user.uuid)], ["mine", "internet"])
        self.assertTrue(public.public)
        with self.assertRaises(IntegrityError):
            await networks.create("clash", "MAC_FILTERED", macPrefix="aa:00:1")
        with self.assertRaises(IntegrityError):
            await networks.create("bad", "NO_SUCH_FLAVOR")

    async def test_projectsAndQuotas(self) -> None:
        """
        Commissions reserve within the limits of the project and member
        holdings, fail with QuotaExceededError changing nothing, move usage
        when accepted, release when rejected, and concurrent commissions never
        exceed a limit.
        """
        db = await self.migrated()
        user, _ = await UserRepository(db).create("q@example.org")
        projects = ProjectRepository(db)
        project = await projects.create("proj", ownerUUID=user.uuid)
        self.assertTrue(await projects.addMember(project.id, user.id))
        self.assertFalse(await projects.addMember(project.id, user.id))
        self.assertEqual(await projects.projectsOf(user.id), [project])
        self.assertEqual(await projects.byUUID(project.uuid), project)
        quotas = QuotaRepository(db)
        await quotas.setLimit(project.id, "cyclades.vm", 5)
        await quotas.setLimit(project.id, "cyclades.ram", 4096)
        await quotas.setLimit(project.id, "cyclades.ram", 8192)
        await quotas.setLimit(project.id, "cyclades.ram", 2048, userId=user.id)

        def held() -> Any:
            return quotas.holdings(project.id).addCallback(
                lambda hs: {(h.resource, h.user_id): (h.quota_limit, h.usage, h.pending) for h in hs}
            )

        c1 = await quotas.issue(project.id, user.id, {"cyclades.vm": 1, "cyclades.ram": 1024}, name="create 1")
        self.assertEqual(c1.state, "pending")
        self.assertEqual(
            await held(),
            {
                ("cyclades.vm", None): (5, 0, 1),
                ("cyclades.ram", None): (8192, 0, 1024),
                ("cyclades.ram", user.id): (2048, 0, 1024),
            },
        )
        with self.assertRaises(QuotaExceededError) as caught:
            await quotas.issue(project.id, user.id, {"cyclades.vm": 1, "cyclades.ram": 2048})
        self.assertEqual((caught.exception.resource, caught.exception.limit), ("cyclades.ram", 2048))
        accepted = await quotas.accept(c1.id)
        assert accepted is not None
        self.assertEqual(accepted.state, "accepted")
        self.assertEqual(await quotas.accept(c1.id), accepted)
        c2 = await quotas.issue(project.id, user.id, {"cyclades.ram": 512})
        await quotas.reject(c2.id)
        c3 = await quotas.issue(project.id, user.id, {"cyclades.vm": -1, "cyclades.ram": -1024})
        self.assertEqual([c.id for c in await quotas.pending()], [c3.id])
        await quotas.accept(c3.id)
        self.assertEqual(
            await held(),
            {
                ("cyclades.vm", None): (5, 0, 0),
                ("cyclades.ram", None): (8192, 0, 0),
                ("cyclades.ram", user.id): (2048, 0, 0),
            },
        )

        async def tryOne() -> bool:
            try:
                await quotas.issue(project.id, None, {"cyclades.vm": 1})
            except QuotaExceededError:
                return False
            return True

        outcomes = await gatherResults([Deferred.fromCoroutine(tryOne()) for _ in range(12)])
        self.assertEqual(sum(outcomes), 5)
        self.assertEqual((await held())[("cyclades.vm", None)], (5, 0, 5))

    async def test_portsKeypairsConsoles(self) -> None:
        """
        Ports, subnets and IP addresses round-trip (one live row per address
        and network); key pair names are unique among live ones; console
        forwardings are recorded and marked used.
        """
        db = await self.migrated()
        user, _ = await UserRepository(db).create("p@example.org")
        network = await NetworkRepository(db).create("n", "MAC_FILTERED", userid=user.uuid, macPrefix="aa:00:2")
        subnet = await SubnetRepository(db).create(
            network.id, "10.0.0.0/24", 4, gateway="10.0.0.1", dnsNameservers=["8.8.8.8"]
        )
        self.assertEqual(await SubnetRepository(db).listByNetwork(network.id), [subnet])
        self.assertEqual(subnet.dns_nameservers, ("8.8.8.8",))
        ports = PortRepository(db)
        port = await ports.create(network.id, userid=user.uuid, mac="aa:00:02:00:00:01", deviceOwner="vm")
        self.assertEqual((port.state, port.security_groups), ("BUILD", ()))
        active = await ports.update(port.id, state="ACTIVE", firewall_profile="ENABLED", idx=0)
        assert active is not None
        self.assertEqual((active.state, active.firewall_profile), ("ACTIVE", "ENABLED"))
        ip = await ports.addIP(subnet.id, network.id, "10.0.0.5", 4, portId=port.id, userid=user.uuid)
        self.assertEqual(await ports.ipsOfPort(port.id), [ip])
        with self.assertRaises(IntegrityError):
            await ports.addIP(subnet.id, network.id, "10.0.0.5", 4)
        with self.assertRaises(IntegrityError):
            await ports.create(network.id, mac="aa:00:02:00:00:01")
        await ports.releaseIP(ip.id)
        self.assertEqual(await ports.ipsOfPort(port.id), [])
        await ports.addIP(subnet.id, network.id, "10.0.0.5", 4)
        self.assertEqual(await ports.listByNetwork(network.id), [active])
        self.assertTrue(await ports.delete(port.id))

        keys = KeyPairRepository(db)
        k1 = await keys.create(user.uuid, "laptop", "ssh-ed25519 AAAA", "aa:bb")
        with self.assertRaises(IntegrityError):
            await keys.create(user.uuid, "laptop", "ssh-ed25519 BBBB", "cc:dd")
        self.assertEqual(await keys.list(user.uuid), [k1])
        self.assertTrue(await keys.delete(user.uuid, "laptop"))
        self.assertIsNone(await keys.get(user.uuid, "laptop"))
        k2 = await keys.create(user.uuid, "laptop", "ssh-ed25519 BBBB", "cc:dd")
        self.assertEqual(await keys.get(user.uuid, "laptop"), k2)

        consoles = ConsoleForwardingRepository(db)
        flavor = await FlavorRepository(db).create(
            1, 512, 5, (await FlavorRepository(db).addVolumeType("t", "plain")).id
        )
        server = await ServerRepository(db).create("s", user.uuid, flavor.id, "img")
        fwd = await consoles.record(server.id, user.uuid, "vnc-wss", "node1", 5901, "proxy", 25001)
        self.assertIsNone(fwd.used)
        used = await consoles.markUsed(fwd.id, "192.0.2.7", "relayed")
        assert used is not None
        self.assertEqual((used.client_address, used.outcome), ("192.0.2.7", "relayed"))
        self.assertIsNotNone(used.used)
        self.assertEqual(await consoles.listForServer(server.id), [used])
        with self.assertRaises(IntegrityError):
            await consoles.record(server.id, user.uuid, "rdp", "node1", 5901, "proxy", 25001)
