"""
Tests for L{synnefo_twisted.logic.serverops}: create, actions and console
over the embedded database, the simulated Ganeti cluster on a Clock
(L{InMemoryCluster}) and L{FakeConsoleBroker}.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from synnefo_twisted.backends import BackendRegistry
from synnefo_twisted.db import servers as dbservers
from synnefo_twisted.db.models import Network, Port
from synnefo_twisted.db.repositories import (
    BackendRepository,
    ConsoleForwardingRepository,
    FlavorRepository,
    ImageRepository,
    KeyPairRepository,
    NetworkRepository,
    PortRepository,
    ProjectRepository,
    QuotaRepository,
    ServerRepository,
    SubnetRepository,
    UserRepository,
)
from synnefo_twisted.interfaces import IConsoleBroker, IGanetiClient
from synnefo_twisted.logic import serverops, serverviews
from synnefo_twisted.logic.servernets import parseNetworkChoices
from synnefo_twisted.logic.servers import (
    BadRequest,
    BuildInProgress,
    CreateSettings,
    Forbidden,
    ItemNotFound,
    NotImplementedFault,
    OverLimit,
    ServerFault,
    ServiceUnavailable,
    parseCreateRequest,
    passwordIsStrong,
)
from synnefo_twisted.testing import FakeConsoleBroker, InMemoryCluster, memoryDatabase

LIMITS = {
    "cyclades.vm": 10,
    "cyclades.total_cpu": 40,
    "cyclades.cpu": 40,
    "cyclades.total_ram": 64 << 30,
    "cyclades.ram": 64 << 30,
    "cyclades.disk": 1 << 40,
}


if TYPE_CHECKING:
    _Base = TestCase
else:
    _Base = object


class ServerOpsMixin(_Base):
    """
    The server operations over C{makeDatabase()}: a started, migrated
    L{IDatabase}.
    """

    timeout = 30

    async def makeDatabase(self) -> Any:
        raise NotImplementedError()

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        return Deferred.fromCoroutine(self._setUp())

    async def _setUp(self) -> None:
        self.db = await self.makeDatabase()
        self.addCleanup(self.db.stopService)
        self.clock = Clock()
        self.sim = InMemoryCluster.create(self.clock)
        self.addCleanup(self.sim.queue.stop)
        self.client: Any = self.sim.client
        backends = BackendRepository(self.db)
        self.backend = await backends.add("sim.ganeti.local", "http://simulated-cluster", simulated=True)
        self.registry = BackendRegistry(self.db, "snf-", self.clock, clientFactory=lambda r, b: self.client)
        users = UserRepository(self.db)
        self.user, _ = await users.create("user@example.org", "User")
        self.other, _ = await users.create("other@example.org", "Other")
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

    def request(self, **fields: Any) -> Any:
        server = {"name": "vm1", "imageRef": self.image.id, "flavorRef": str(self.flavor.id), "networks": []}
        server.update(fields)
        return parseCreateRequest({"server": server})

    async def holding(self, resource: str) -> tuple[int, int]:
        for quota in await self.quotas.holdings(self.project.id):
            if quota.resource == resource and quota.user_id is None:
                return quota.usage, quota.pending
        raise AssertionError(resource)

    def op(self, jobId: int | None) -> dict[str, Any]:
        assert jobId is not None
        job = self.sim.queue.jobs[jobId]
        return dict(job.ops[0].input)

    async def accept(self, commissionId: int | None) -> None:
        assert commissionId is not None
        await self.quotas.accept(commissionId)

    async def fails(self, d: Deferred[Any], cls: type[ServerFault]) -> ServerFault:
        try:
            await d
        except cls as e:
            return e
        raise AssertionError(f"{cls.__name__} not raised")

    async def running(self, request: Any = None, **options: Any) -> Any:
        """
        A created server whose create job completed, marked STARTED as the dispatcher would.
        """
        result = await serverops.createServer(
            self.db, self.registry, self.user, request or self.request(), serverops.ServerOptions(**options)
        )
        self.clock.pump([0.1] * 5)
        self.assertIn(f"snf-{result.server.id}", self.sim.cluster.instances)
        server = await self.servers.update(result.server.id, operstate="STARTED", task=None, action=None)
        assert server is not None
        await self.accept(server.serial_id)
        return server

    # -- the doubles ------------------------------------------------------------------

    def test_doubles(self) -> None:
        """
        The simulated cluster's client and the fake broker provide the interfaces the logic uses.
        """
        self.assertTrue(verifyObject(IGanetiClient, self.client))
        self.assertTrue(verifyObject(IConsoleBroker, FakeConsoleBroker()))

    # -- create -----------------------------------------------------------------------

    async def test_create(self) -> None:
        """
        A create records the server in BUILD with its job, volume, metadata and quota, and the cluster gets spec §2.2's job.
        """
        result = await serverops.createServer(
            self.db,
            self.registry,
            self.user,
            self.request(metadata={"OS": "debian"}, tags=["web"], personality=[{"path": "/f", "contents": "eA=="}]),
            serverops.ServerOptions(vmapiURL="http://api.example.org/vmapi/v1.0/server-params/"),
        )
        server = result.server
        self.assertTrue(passwordIsStrong(result.adminPass))
        self.assertEqual(
            (server.operstate, server.task, server.action, server.backendopcode, server.backend_id),
            ("BUILD", "BUILD", "CREATE", "OP_INSTANCE_CREATE", self.backend.id),
        )
        self.assertEqual(server.task_job_id, server.backendjobid)
        self.assertEqual((server.userid, server.project), (self.user.uuid, self.project.uuid))
        self.assertEqual(server.config_url, f"http://api.example.org/vmapi/v1.0/server-params/{result.configKey}")
        self.assertEqual(result.serverParams["img_passwd"], result.adminPass)
        self.assertNotIn(result.adminPass, repr(self.op(server.backendjobid)))
        op = self.op(server.backendjobid)
        self.assertEqual(op["OP_ID"], "OP_INSTANCE_CREATE")
        self.assertEqual((op["instance_name"], op["disk_template"]), (f"snf-{server.id}", "drbd"))
        rows = await self.db.runQuery("SELECT id, size, server_id, idx FROM volumes")
        self.assertEqual(len(rows), 1)
        volumeId = rows[0][0]
        self.assertEqual(tuple(rows[0][1:]), (10, server.id, 0))
        self.assertEqual(op["disks"], [{"name": f"snf-vol-{volumeId}", "size": 10 * 1024}])
        self.assertEqual(op["nics"], [])
        self.assertEqual(op["beparams"], {"auto_balance": True, "vcpus": 2, "memory": 1024})
        self.assertEqual(
            op["osparams"],
            {"config_url": server.config_url, "img_id": "file:///images/debian", "img_format": "diskdump"},
        )
        self.assertEqual((op["ip_check"], op["name_check"], op["opportunistic_locking"]), (False, False, True))
        self.assertEqual((op["os_type"], op["tags"], op["dry_run"]), ("snf-image+default", ["web"], False))
        self.assertEqual(await self.servers.metadata(server.id), {"OS": "debian"})
        self.assertEqual([t.tag for t in await self.servers.tags(server.id)], ["web"])
        self.assertEqual(await self.holding("cyclades.vm"), (0, 1))
        self.assertEqual(await self.holding("cyclades.ram"), (0, 1024 << 20))
        self.assertIsNotNone(server.serial_id)
        self.clock.pump([0.1] * 5)
        instance = self.sim.cluster.instances[f"snf-{server.id}"]
        self.assertEqual(instance.beparams["vcpus"], 2)

    async def test_createKeys(self) -> None:
        """
        Named key pairs go to the snf-image parameters; an unknown one is a 404 and nothing is written.
        """
        await KeyPairRepository(self.db).create(self.user.uuid, "k1", "ssh-ed25519 AAAA k1", "fp")
        result = await serverops.createServer(self.db, self.registry, self.user, self.request(key_name="k1"))
        self.assertEqual(result.serverParams["auth_keys"], "ssh-ed25519 AAAA k1")
        self.assertEqual(result.server.key_names, ("k1",))
        fault = await self.fails(
            serverops.createServer(self.db, self.registry, self.user, self.request(key_name="nope")), ItemNotFound
        )
        self.assertEqual(fault.field, "key_name")
        self.assertEqual(len(await self.servers.listByUser(self.user.uuid)), 1)

    async def test_createOverLimit(self) -> None:
        """
        A create over the quota is a 413 naming the resource; no row is written and no job sent.
        """
        await self.quotas.setLimit(self.project.id, "cyclades.cpu", 1)
        fault = await self.fails(serverops.createServer(self.db, self.registry, self.user, self.request()), OverLimit)
        self.assertEqual(fault.field, "cyclades.cpu")
        self.assertEqual(await self.servers.listByUser(self.user.uuid, includeDeleted=True), [])
        self.assertEqual(await self.db.runQuery("SELECT id FROM volumes"), [])
        self.assertEqual(await self.quotas.pending(), [])
        self.assertEqual(self.sim.queue.jobs, {})

    async def test_createUnknown(self) -> None:
        """
        Unknown or deleted flavors, unknown or private images of others are 404s naming the field.
        """
        fault = await self.fails(
            serverops.createServer(self.db, self.registry, self.user, self.request(flavorRef=999)), ItemNotFound
        )
        self.assertEqual(fault.field, "flavorRef")
        private = await ImageRepository(self.db).register("mine", self.other.uuid, "file:///x")
        fault = await self.fails(
            serverops.createServer(self.db, self.registry, self.user, self.request(imageRef=private.id)), ItemNotFound
        )
        self.assertEqual(fault.field, "imageRef")
        await FlavorRepository(self.db).modify(self.flavor.id, allow_create=False)
        await self.fails(serverops.createServer(self.db, self.registry, self.user, self.request()), Forbidden)
        self.assertEqual(await self.servers.listByUser(self.user.uuid, includeDeleted=True), [])

    async def test_createNotAMember(self) -> None:
        """
        A user in no project cannot create; naming another project is a 403.
        """
        await self.fails(serverops.createServer(self.db, self.registry, self.other, self.request()), Forbidden)
        await self.fails(
            serverops.createServer(self.db, self.registry, self.user, self.request(project="no-such")), Forbidden
        )

    async def test_createNoBackend(self) -> None:
        """
        With the only backend drained (or offline), create is a 503 and nothing is written.
        """
        for flag in ("drained", "offline"):
            await BackendRepository(self.db).modify(self.backend.id, **{flag: True})
            fault = await self.fails(
                serverops.createServer(self.db, self.registry, self.user, self.request()), ServiceUnavailable
            )
            self.assertEqual(fault.message, "No available backends")
            await BackendRepository(self.db).modify(self.backend.id, **{flag: False})
        self.assertEqual(await self.servers.listByUser(self.user.uuid, includeDeleted=True), [])

    async def test_createSubmitFails(self) -> None:
        """
        When Ganeti refuses the job, the server is left in ERROR and its commission rejected.
        """
        self.client = self.sim.clientFor("synnefo", "wrong-password")
        fault = await self.fails(
            serverops.createServer(self.db, self.registry, self.user, self.request()), ServiceUnavailable
        )
        self.assertEqual(fault.message, "Failed to send job to Ganeti.")
        [server] = await self.servers.listByUser(self.user.uuid)
        self.assertEqual((server.operstate, server.backendlogmsg), ("ERROR", "Failed to send job to Ganeti."))
        self.assertEqual(await self.holding("cyclades.vm"), (0, 0))
        self.assertEqual(await self.db.runQuery("SELECT status FROM volumes"), [("ERROR",)])
        self.assertEqual(len(self.flushLoggedErrors()), 1)
        gone = await serverops.destroyServer(self.db, self.registry, self.user, server.id)
        self.assertEqual((gone.deleted, gone.operstate, gone.task), (True, "DESTROYED", None))
        self.assertEqual(await self.holding("cyclades.vm"), (0, 0))
        self.assertEqual(self.sim.queue.jobs, {})

    async def test_createWithNetworks(self) -> None:
        """
        Ports are made on the forced network then the named ones, their IPs come from the allocator, and the job
        depends on the network jobs.
        """
        networks = NetworkRepository(self.db)
        public = await networks.create("public", "IP_LESS_ROUTED", public=True)
        private = await networks.create("mine", "MAC_FILTERED", userid=self.user.uuid)
        activated: list[int] = []

        async def activate(backend: Any, network: Network) -> list[int]:
            name = f"snf-net-{network.id}"
            cidr = "10.0.0.0/24" if network.public else "192.168.0.0/24"
            created = await self.client.createNetwork(name, cidr)
            connected = await self.client.connectNetwork(
                name, "default", "bridged", "br0", depends=[[created, ["success"]]]
            )
            activated.append(network.id)
            return [created, connected]

        async def allocate(tx: Any, network: Network, port: Port, fixedIp: str | None) -> str | None:
            return fixedIp or ("10.0.0.7" if network.public else None)

        options = serverops.ServerOptions(
            ipAllocator=allocate, activateNetwork=activate, forcedNetworks=parseNetworkChoices([str(public.id)])
        )
        result = await serverops.createServer(
            self.db,
            self.registry,
            self.user,
            self.request(networks=[{"uuid": str(private.id), "fixed_ip": "192.168.0.9"}]),
            options,
        )
        ports = await PortRepository(self.db).listByServer(result.server.id)
        self.assertEqual(
            [(p.network_id, p.idx, p.device_owner) for p in ports], [(public.id, 0, "vm"), (private.id, 1, "vm")]
        )
        op = self.op(result.server.backendjobid)
        self.assertEqual(
            op["nics"],
            [
                {"name": f"snf-nic-{ports[0].id}", "network": f"snf-net-{public.id}", "ip": "10.0.0.7"},
                {"name": f"snf-nic-{ports[1].id}", "network": f"snf-net-{private.id}", "ip": "192.168.0.9"},
            ],
        )
        self.assertEqual(activated, [public.id, private.id])
        self.assertEqual([dep[0] for dep in op["depends"]], [1, 2, 3, 4])
        self.clock.pump([0.1] * 20)
        instance = self.sim.cluster.instances[f"snf-{result.server.id}"]
        self.assertEqual([n.ip for n in instance.nics], ["10.0.0.7", "192.168.0.9"])

    async def test_createNetworkNotVisible(self) -> None:
        """
        Another user's private network is a 404 and nothing is written.
        """
        theirs = await NetworkRepository(self.db).create("theirs", "MAC_FILTERED", userid=self.other.uuid)
        fault = await self.fails(
            serverops.createServer(
                self.db, self.registry, self.user, self.request(networks=[{"uuid": str(theirs.id)}])
            ),
            ItemNotFound,
        )
        self.assertEqual(fault.field, "networks")
        self.assertEqual(await self.servers.listByUser(self.user.uuid, includeDeleted=True), [])
        self.assertEqual(await self.quotas.pending(), [])

    async def test_createDefaultNetworks(self) -> None:
        """
        Without a networks field the default networks are used; with [] none are.
        """
        public = await NetworkRepository(self.db).create("public", "IP_LESS_ROUTED", public=True)
        options = serverops.ServerOptions(
            defaultNetworks=parseNetworkChoices([str(public.id)]), create=CreateSettings(dryRun=True)
        )
        request = parseCreateRequest({"server": {"name": "a", "imageRef": self.image.id, "flavorRef": self.flavor.id}})
        result = await serverops.createServer(self.db, self.registry, self.user, request, options)
        self.assertEqual(
            [p.network_id for p in await PortRepository(self.db).listByServer(result.server.id)], [public.id]
        )
        self.assertTrue(self.op(result.server.backendjobid)["dry_run"])
        result = await serverops.createServer(self.db, self.registry, self.user, self.request(), options)
        self.assertEqual(await PortRepository(self.db).listByServer(result.server.id), [])

    # -- actions ----------------------------------------------------------------------

    async def test_stopStart(self) -> None:
        """
        Stop and start submit their jobs, record task and job id, and move the running CPU/RAM quota.
        """
        server = await self.running()
        stopped = await serverops.stopServer(self.db, self.registry, self.user, server.id)
        self.assertEqual((stopped.task, stopped.action), ("STOP", "STOP"))
        op = self.op(stopped.task_job_id)
        self.assertEqual((op["OP_ID"], op["instance_name"]), ("OP_INSTANCE_SHUTDOWN", f"snf-{server.id}"))
        self.assertEqual(await self.holding("cyclades.cpu"), (2, 0))
        await self.accept(stopped.serial_id)
        self.assertEqual(await self.holding("cyclades.cpu"), (0, 0))
        fault = await self.fails(serverops.startServer(self.db, self.registry, self.user, server.id), BadRequest)
        self.assertEqual(fault.message, "Cannot perform 'START' action while there is a pending 'STOP'.")
        self.clock.pump([0.1] * 5)
        await self.servers.update(server.id, operstate="STOPPED", task=None)
        started = await serverops.startServer(self.db, self.registry, self.user, server.id)
        self.assertEqual(self.op(started.task_job_id)["OP_ID"], "OP_INSTANCE_STARTUP")
        self.assertEqual(await self.holding("cyclades.cpu"), (0, 2))

    async def test_reboot(self) -> None:
        """
        Reboots are always Ganeti 'hard'; HARD ones have shutdown timeout 0; bad types are 400s.
        """
        server = await self.running()
        hard = await serverops.rebootServer(self.db, self.registry, self.user, server.id, "HARD")
        op = self.op(hard.task_job_id)
        self.assertEqual((op["OP_ID"], op["reboot_type"], op["shutdown_timeout"]), ("OP_INSTANCE_REBOOT", "hard", 0))
        self.clock.pump([0.1] * 5)
        await self.servers.update(server.id, task=None)
        soft = await serverops.rebootServer(self.db, self.registry, self.user, server.id, "SOFT")
        self.assertEqual(self.op(soft.task_job_id)["reboot_type"], "hard")
        self.assertNotEqual(self.op(soft.task_job_id).get("shutdown_timeout"), 0)
        await self.servers.update(server.id, task=None)
        await self.fails(serverops.rebootServer(self.db, self.registry, self.user, server.id, "WARM"), BadRequest)

    async def test_resize(self) -> None:
        """
        Resize of a stopped server submits new beparams and commissions the CPU/RAM difference.
        """
        server = await self.running()
        await self.fails(
            serverops.resizeServer(self.db, self.registry, self.user, server.id, self.bigger.id), BadRequest
        )
        await self.servers.update(server.id, operstate="STOPPED")
        await self.fails(
            serverops.resizeServer(self.db, self.registry, self.user, server.id, self.flavor.id), BadRequest
        )
        resized = await serverops.resizeServer(self.db, self.registry, self.user, server.id, self.bigger.id)
        op = self.op(resized.task_job_id)
        self.assertEqual(
            (op["OP_ID"], op["beparams"]), ("OP_INSTANCE_SET_PARAMS", {"vcpus": 4, "minmem": 2048, "maxmem": 2048})
        )
        self.assertEqual(await self.holding("cyclades.total_cpu"), (2, 2))

    async def test_destroy(self) -> None:
        """
        Destroy submits the remove job and releases the whole quota once accepted.
        """
        server = await self.running()
        destroyed = await serverops.destroyServer(self.db, self.registry, self.user, server.id)
        self.assertEqual(self.op(destroyed.task_job_id)["OP_ID"], "OP_INSTANCE_REMOVE")
        self.assertEqual(destroyed.task, "DESTROY")
        await self.accept(destroyed.serial_id)
        self.assertEqual(await self.holding("cyclades.vm"), (0, 0))
        self.assertEqual(await self.holding("cyclades.cpu"), (0, 0))

    async def test_destroyRepeated(self) -> None:
        """
        A DELETE repeated while the first destroy is pending submits the remove job again but issues no second
        commission: the pending one is the server's, and accepting it releases the quota once.
        """
        server = await self.running()
        first = await serverops.destroyServer(self.db, self.registry, self.user, server.id)
        pending = await self.db.runQuery("SELECT count(*) FROM commissions WHERE state = 'pending'")
        again = await serverops.destroyServer(self.db, self.registry, self.user, server.id)
        self.assertEqual(self.op(again.task_job_id)["OP_ID"], "OP_INSTANCE_REMOVE")
        self.assertNotEqual(again.task_job_id, first.task_job_id)
        self.assertEqual((again.task, again.serial_id), ("DESTROY", first.serial_id))
        self.assertEqual(await self.db.runQuery("SELECT count(*) FROM commissions WHERE state = 'pending'"), pending)
        await self.accept(first.serial_id)
        self.assertEqual(await self.holding("cyclades.vm"), (0, 0))
        self.assertEqual(await self.holding("cyclades.cpu"), (0, 0))

    async def test_destroyWhileBuilding(self) -> None:
        """
        Destroying a server whose instance does not exist yet is a 409 and leaves it unclaimed.
        """
        result = await serverops.createServer(self.db, self.registry, self.user, self.request())
        await self.servers.update(result.server.id, task=None)
        await self.fails(serverops.destroyServer(self.db, self.registry, self.user, result.server.id), BuildInProgress)
        server = await self.servers.get(result.server.id)
        assert server is not None
        self.assertEqual((server.task, server.action), (None, None))
        self.assertEqual(len(self.sim.queue.jobs), 1)

    async def test_actionChecks(self) -> None:
        """
        Another user's server is a 404; a building one a 409; refused actions submit nothing.
        """
        result = await serverops.createServer(self.db, self.registry, self.user, self.request())
        await self.fails(serverops.stopServer(self.db, self.registry, self.other, result.server.id), ItemNotFound)
        await self.fails(serverops.stopServer(self.db, self.registry, self.user, 999), ItemNotFound)
        await self.fails(serverops.stopServer(self.db, self.registry, self.user, result.server.id), BuildInProgress)
        await self.fails(
            serverops.serverAction(self.db, self.registry, self.user, result.server.id, "console"), BadRequest
        )
        self.assertEqual(len(self.sim.queue.jobs), 1)

    async def test_actionSubmitFails(self) -> None:
        """
        When the job cannot be sent, the claim is undone and the commission rejected.
        """
        server = await self.running()
        self.client = self.sim.clientFor("synnefo", "wrong-password")
        self.registry = BackendRegistry(self.db, "snf-", self.clock, clientFactory=lambda r, b: self.client)
        fault = await self.fails(serverops.stopServer(self.db, self.registry, self.user, server.id), ServiceUnavailable)
        self.assertEqual(fault.message, "Failed to send job to Ganeti.")
        self.assertEqual(len(self.flushLoggedErrors()), 1)
        after = await self.servers.get(server.id)
        assert after is not None
        self.assertEqual((after.task, after.action), (None, None))
        self.assertEqual(await self.holding("cyclades.cpu"), (2, 0))

    # -- console ----------------------------------------------------------------------

    async def test_console(self) -> None:
        """
        The console asks the broker to forward to the instance's VNC address and answers the proxy's.
        """
        server = await self.running()
        broker = FakeConsoleBroker(host="proxy.example.org", firstPort=25000)
        console = await serverops.serverConsole(self.db, self.registry, broker, self.user, server.id, "vnc-wss")
        [(host, port, password, kind)] = broker.requests
        vnc = await self.client.getInstanceConsole(f"snf-{server.id}")
        self.assertEqual((host, port, kind), (vnc["host"], vnc["port"], "vnc-wss"))
        self.assertEqual(console, {"type": "vnc-wss", "host": "proxy.example.org", "port": 25000, "password": password})
        [forwarding] = await ConsoleForwardingRepository(self.db).listForServer(server.id)
        self.assertEqual((forwarding.proxy_port, forwarding.destination_port), (25000, vnc["port"]))

    async def test_consoleRefused(self) -> None:
        """
        Bad types are 400s, stopped servers 400 "Server not in ACTIVE state.", a failing proxy 503.
        """
        server = await self.running()
        broker = FakeConsoleBroker()
        await self.fails(
            serverops.serverConsole(self.db, self.registry, broker, self.user, server.id, "rdp"), BadRequest
        )
        await self.fails(serverops.serverConsole(self.db, self.registry, broker, self.other, server.id), ItemNotFound)
        broker.failWith = "boom"
        await self.fails(
            serverops.serverConsole(self.db, self.registry, broker, self.user, server.id), ServiceUnavailable
        )
        self.flushLoggedErrors()
        await self.servers.update(server.id, operstate="STOPPED")
        fault = await self.fails(
            serverops.serverConsole(self.db, self.registry, broker, self.user, server.id), BadRequest
        )
        self.assertEqual(fault.message, "Server not in ACTIVE state.")

    async def test_consoleInstanceDown(self) -> None:
        """
        When Ganeti says the instance is down although the database says STARTED, the console is a 400.
        """
        server = await self.running()
        self.sim.cluster.instances[f"snf-{server.id}"].operUp = False
        fault = await self.fails(
            serverops.serverConsole(self.db, self.registry, FakeConsoleBroker(), self.user, server.id), BadRequest
        )
        self.assertEqual(fault.message, "Server not in ACTIVE state.")

    # -- races ------------------------------------------------------------------------

    async def test_concurrentActions(self) -> None:
        """
        Of two concurrent actions on one server exactly one is accepted; the other sees its pending task.
        """
        server = await self.running()
        results = await DeferredList(
            [
                serverops.stopServer(self.db, self.registry, self.user, server.id),
                serverops.rebootServer(self.db, self.registry, self.user, server.id, "HARD"),
            ],
            consumeErrors=True,
        )
        outcomes = sorted(ok for ok, _ in results)
        self.assertEqual(outcomes, [False, True])
        failure: Any = next(value for ok, value in results if not ok)
        failure.trap(BadRequest)
        self.assertEqual(len(self.sim.queue.jobs), 2)

    async def test_concurrentCreatesRespectQuota(self) -> None:
        """
        With room for two servers, four concurrent creates give two servers and two overLimit faults.
        """
        await self.quotas.setLimit(self.project.id, "cyclades.vm", 2)
        results = await DeferredList(
            [serverops.createServer(self.db, self.registry, self.user, self.request()) for _ in range(4)],
            consumeErrors=True,
        )
        self.assertEqual(sorted(ok for ok, _ in results), [False, False, True, True])
        failures: list[Any] = [value for ok, value in results if not ok]
        for failure in failures:
            failure.trap(OverLimit)
        self.assertEqual(len(await self.servers.listByUser(self.user.uuid, includeDeleted=True)), 2)
        self.assertEqual(await self.holding("cyclades.vm"), (0, 2))

    # -- rename, metadata, firewall, reassign -------------------------------------------

    async def test_rename(self) -> None:
        """
        Rename changes the name; a non-string name is a 400 and another user's server a 404.
        """
        server = await self.running()
        renamed = await serverops.renameServer(self.db, self.user, server.id, "new name")
        self.assertEqual(renamed.name, "new name")
        await self.fails(serverops.renameServer(self.db, self.user, server.id, 5), BadRequest)
        await self.fails(serverops.renameServer(self.db, self.other, server.id, "x"), ItemNotFound)

    async def test_metadata(self) -> None:
        """
        Metadata merges up to the item limit counted on the result; deleting a missing key is a 404.
        """
        server = await self.running()
        merged = await serverops.updateMetadata(self.db, self.user, server.id, {str(i): "v" for i in range(8)})
        self.assertEqual(len(merged), 8)
        merged = await serverops.updateMetadata(self.db, self.user, server.id, {"0": "w", "8": "v", "9": "v"})
        self.assertEqual((len(merged), merged["0"]), (10, "w"))
        fault = await self.fails(serverops.updateMetadata(self.db, self.user, server.id, {"10": "v"}), BadRequest)
        self.assertEqual(fault.message, "Virtual Machines cannot have more than 10 metadata items")
        self.assertEqual(len(await self.servers.metadata(server.id)), 10)
        await serverops.deleteMetadata(self.db, self.user, server.id, "0")
        await self.fails(serverops.deleteMetadata(self.db, self.user, server.id, "0"), ItemNotFound)
        await self.servers.update(server.id, suspended=True)
        await self.fails(serverops.updateMetadata(self.db, self.user, server.id, {"a": "b"}), Forbidden)
        await self.servers.update(server.id, deleted=True)
        await self.fails(serverops.deleteMetadata(self.db, self.user, server.id, "1"), BadRequest)

    async def test_firewall(self) -> None:
        """
        A firewall profile replaces the NIC's tag on the instance, sends a no-op modify and is recorded on the port.
        """
        public = await NetworkRepository(self.db).create("public", "IP_LESS_ROUTED", public=True)

        async def activate(backend: Any, network: Network) -> list[int]:
            name = f"snf-net-{network.id}"
            created = await self.client.createNetwork(name, "10.0.0.0/24")
            return [created, await self.client.connectNetwork(name, "default", "bridged", "br0")]

        server = await self.running(self.request(networks=[{"uuid": str(public.id)}]), activateNetwork=activate)
        [port] = await PortRepository(self.db).listByServer(server.id)
        name, nic = f"snf-{server.id}", f"snf-nic-{port.id}"
        tags = self.sim.cluster.instances[name].tags
        updated = await serverops.setFirewallProfile(
            self.db, self.registry, self.user, server.id, {"profile": "ENABLED", "nic": port.id}
        )
        self.assertEqual(updated.firewall_profile, "ENABLED")
        self.clock.pump([0.1] * 10)
        self.assertEqual(tags, [f"synnefo:network:{nic}:protected"])
        await serverops.setFirewallProfile(
            self.db, self.registry, self.user, server.id, {"profile": "PROTECTED", "nic": str(port.id)}
        )
        self.clock.pump([0.1] * 10)
        self.assertEqual(tags, [f"synnefo:network:{nic}:limited"])
        await serverops.setFirewallProfile(
            self.db, self.registry, self.user, server.id, {"profile": "DISABLED", "nic": port.id}
        )
        self.clock.pump([0.1] * 10)
        self.assertEqual(tags, [])
        ops = [job.ops[0].input["OP_ID"] for job in self.sim.queue.jobs.values()]
        self.assertEqual(ops.count("OP_INSTANCE_SET_PARAMS"), 3)
        await self.fails(
            serverops.setFirewallProfile(
                self.db, self.registry, self.user, server.id, {"profile": "ENABLED", "nic": 999}
            ),
            ItemNotFound,
        )
        await self.fails(
            serverops.setFirewallProfile(self.db, self.registry, self.user, server.id, {"profile": "OPEN", "nic": 1}),
            BadRequest,
        )

    async def test_reassign(self) -> None:
        """
        Reassign moves the server and its quota usage to another project of the user, without a Ganeti job.
        """
        server = await self.running()
        projects = ProjectRepository(self.db)
        team = await projects.create("team")
        await projects.addMember(team.id, self.user.id)
        for resource, limit in LIMITS.items():
            await self.quotas.setLimit(team.id, resource, limit)
        jobs = len(self.sim.queue.jobs)
        moved = await serverops.reassignServer(self.db, self.user, server.id, {"project": team.uuid})
        self.assertEqual(moved.project, team.uuid)
        self.assertEqual(await self.holding("cyclades.vm"), (0, 0))
        teamVMs = [q for q in await self.quotas.holdings(team.id) if q.resource == "cyclades.cpu"]
        self.assertEqual([(q.usage, q.pending) for q in teamVMs], [(2, 0)])
        self.assertEqual(len(self.sim.queue.jobs), jobs)
        await self.fails(
            serverops.reassignServer(self.db, self.user, server.id, {"project": team.uuid, "shared_to_project": True}),
            Forbidden,
        )
        await self.fails(serverops.reassignServer(self.db, self.user, server.id, {"project": "nope"}), Forbidden)
        await self.fails(serverops.reassignServer(self.db, self.user, server.id, {}), BadRequest)

    async def test_reassignOverLimit(self) -> None:
        """
        Reassigning into a project without room is a 413 and nothing moves.
        """
        server = await self.running()
        projects = ProjectRepository(self.db)
        team = await projects.create("team")
        await projects.addMember(team.id, self.user.id)
        await self.quotas.setLimit(team.id, "cyclades.vm", 0)
        await self.fails(serverops.reassignServer(self.db, self.user, server.id, {"project": team.uuid}), OverLimit)
        after = await self.servers.get(server.id)
        assert after is not None
        self.assertEqual(after.project, self.project.uuid)
        self.assertEqual(await self.holding("cyclades.vm"), (1, 0))

    # -- the action endpoint ---------------------------------------------------------------

    async def test_runAction(self) -> None:
        """
        Action bodies dispatch to jobs (202), consoles (200 with the console) and reassign (200); others are faults.
        """
        server = await self.running()
        broker = FakeConsoleBroker(host="proxy")

        def run(body: object) -> Deferred[serverops.ActionResult]:
            return serverops.runAction(
                self.db, self.registry, broker, self.user, server.id, body, consolePageURL="https://ui/console"
            )

        console = await run({"console": {"type": "vnc"}})
        self.assertEqual((console.code, console.body["console"]["host"]), (200, "proxy"))  # type: ignore[index]
        novnc = await run({"os-getVNCConsole": {"type": "novnc"}})
        self.assertTrue(novnc.body["console"]["url"].startswith("https://ui/console?host=proxy&port="))  # type: ignore[index]
        self.assertEqual(broker.requests[-1][3], "vnc-wss")
        self.assertEqual(await run({"reassign": {"project": self.project.uuid}}), serverops.ActionResult(200))
        self.assertEqual(await run({"os-stop": None}), serverops.ActionResult(202))
        self.assertEqual(self.op((await self.servers.get(server.id)).task_job_id)["OP_ID"], "OP_INSTANCE_SHUTDOWN")  # type: ignore[union-attr]
        for body, fault in (
            ({"suspend": {}}, Forbidden),
            ({"dance": {}}, BadRequest),
            ({"start": {}, "stop": {}}, BadRequest),
            ({"start": []}, BadRequest),
            ({"console": {}}, BadRequest),
            ({"changePassword": {}}, NotImplementedFault),
            ({"addFloatingIp": {"address": "1.2.3.4"}}, NotImplementedFault),
        ):
            await self.fails(run(body), fault)

    # -- views --------------------------------------------------------------------------------

    async def test_serverExtras(self) -> None:
        """
        The extras of many servers come back per server: metadata, tags, ports with IPs, volumes, latest diagnostic.
        """
        public = await NetworkRepository(self.db).create("public", "IP_LESS_ROUTED", public=True)
        first = await serverops.createServer(
            self.db,
            self.registry,
            self.user,
            self.request(metadata={"OS": "debian"}, tags=["a"], networks=[{"uuid": str(public.id)}]),
        )
        second = await serverops.createServer(self.db, self.registry, self.user, self.request())
        ports = PortRepository(self.db)
        [port] = await ports.listByServer(first.server.id)
        subnet = await SubnetRepository(self.db).create(public.id, "10.0.0.0/24", 4)
        await ports.addIP(subnet.id, public.id, "10.0.0.2", 4, portId=port.id)
        await ports.update(port.id, state="ACTIVE", mac="aa:00:00:00:00:01")
        await self.servers.addDiagnostic(first.server.id, "image-info", "DEBUG", "old")
        await self.servers.addDiagnostic(first.server.id, "image-info", "INFO", "new")
        extras = await serverops.serverExtras(self.db, [first.server.id, second.server.id], "snf-{id}.vm.example.org")
        one, two = extras[first.server.id], extras[second.server.id]
        self.assertEqual((one.metadata, list(one.tags), len(one.volumeIds)), ({"OS": "debian"}, ["a"], 1))
        self.assertEqual([(p.id, [ip.address for ip in i]) for p, i in one.ports], [(port.id, ["10.0.0.2"])])
        assert one.diagnostic is not None
        self.assertEqual((one.diagnostic.message, one.fqdn), ("new", f"snf-{first.server.id}.vm.example.org"))
        self.assertEqual((two.metadata, list(two.tags), list(two.ports), two.diagnostic), ({}, [], [], None))
        links = serverviews.ServerLinks("https://api/compute/v2.0", "https://api/image/v1.0")
        view = serverviews.serverDetail(first.server, links, one)
        self.assertEqual(
            view["addresses"], {str(public.id): [{"version": 4, "addr": "10.0.0.2", "OS-EXT-IPS:type": "fixed"}]}
        )
        self.assertEqual(await serverops.serverExtras(self.db, []), {})
        self.patch(dbservers, "_CHUNK", 1)
        chunked = await serverops.serverExtras(self.db, [first.server.id, second.server.id], "snf-{id}.vm.example.org")
        self.assertEqual(chunked, extras)


class SQLiteServerOpsTests(ServerOpsMixin, TestCase):
    """
    The server operations on the embedded database.
    """

    async def makeDatabase(self) -> Any:
        return await memoryDatabase(reactor)
