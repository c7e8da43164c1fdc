"""
Real OpenStack clients against the API over loopback HTTP: openstacksdk and
python-novaclient authenticate through C{/identity/v2.0/tokens} (the
Astakos way: user name and the API token as password), find compute in the
service catalog, and list flavors and images, manage key pairs and read
limits; the fixed-token style of the lab's clouds.yaml works too.

The clients block, so they run in a thread while the reactor serves.
"""

from __future__ import annotations

from typing import Any, cast

# The clients are in the dev extra (setup.py): a missing one is an error, not a skip.
import openstack  # type: ignore[import-untyped,import-not-found,unused-ignore]
from keystoneauth1 import session as ksession  # type: ignore[import-untyped,import-not-found,unused-ignore]
from keystoneauth1.identity import v2  # type: ignore[import-untyped,import-not-found,unused-ignore]
from keystoneauth1.token_endpoint import Token  # type: ignore[import-untyped,import-not-found,unused-ignore]
from novaclient import client as novaclient  # type: ignore[import-untyped,import-not-found,unused-ignore]
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.protocols.policies import WrappingFactory
from twisted.trial.unittest import TestCase
from twisted.web.server import Site

from synnefo_twisted.backends import BackendRegistry
from synnefo_twisted.db.repositories import BackendRepository
from synnefo_twisted.logic.serverops import ServerOptions
from synnefo_twisted.testing import FakeConsoleBroker, InMemoryCluster, memoryDatabase
from web.app import APIApplication
from web.seed import DEMO_IMAGE_ID, seedDemo


class _QuietSite(Site):
    def log(self, request: Any) -> None:
        pass


async def closeAll(factory: WrappingFactory) -> None:
    """
    Drop every connection the clients left open, and wait until they are gone.
    """
    for wrapper in list(factory.protocols):
        wrapper.transport.abortConnection()
    while factory.protocols:
        await deferLater(reactor, 0.01, lambda: None)


class ClientTests(TestCase):
    timeout = 60

    async def serve(self, servers: bool = False) -> tuple[str, str]:
        """
        Serve the API on a loopback port; (base URL, the demo user's token).
        With C{servers}, the servers API runs over an in-memory simulated
        cluster on the reactor (C{self.sim}).
        """
        database = await memoryDatabase(reactor)
        self.addCleanup(database.stopService)
        seeded = await seedDemo(database)
        assert seeded.token is not None
        holder: list[APIApplication] = []
        factory = WrappingFactory(_QuietSite(_Lazy(holder)))
        port = reactor.listenTCP(0, cast(Any, factory), interface="127.0.0.1")
        self.addCleanup(lambda: Deferred.fromCoroutine(closeAll(factory)))
        self.addCleanup(port.stopListening)
        base = f"http://127.0.0.1:{cast(IPv4Address, port.getHost()).port}"
        if not servers:
            holder.append(APIApplication(database, reactor, base))
            return base, seeded.token
        self.sim = InMemoryCluster.create(reactor)
        self.addCleanup(self.sim.queue.stop)
        await BackendRepository(database).add("sim.ganeti.local", "http://simulated-cluster", simulated=True)
        registry = BackendRegistry(database, "snf-", reactor, clientFactory=lambda r, b: self.sim.client)
        options = ServerOptions(vmapiURL=f"{base}/vmapi/v1.0/server-params", clock=reactor)
        holder.append(
            APIApplication(
                database, reactor, base, backends=registry, consoleBroker=FakeConsoleBroker(), serverOptions=options
            )
        )
        return base, seeded.token

    async def test_openstacksdkWithIdentity(self) -> None:
        """
        openstacksdk (Keystone v2 password = token) lists flavors and images, creates and deletes a key pair, reads limits.
        """
        base, token = await self.serve()

        def client() -> dict[str, Any]:
            auth = v2.Password(auth_url=f"{base}/identity/v2.0", username="demo@example.org", password=token)
            sess = ksession.Session(auth=auth)
            conn = openstack.connection.Connection(session=sess, region_name="default")
            flavors = sorted(f.name for f in conn.compute.flavors())
            images = [i.name for i in conn.compute.images()]
            keypair = conn.compute.create_keypair(name="laptop")
            names = [k.name for k in conn.compute.keypairs()]
            conn.compute.delete_keypair("laptop")
            after = [k.name for k in conn.compute.keypairs()]
            limits = conn.compute.get_limits().absolute
            sess.session.close()
            return {
                "flavors": flavors,
                "images": images,
                "private": bool(keypair.private_key),
                "names": names,
                "after": after,
                "instances": limits.instances,
            }

        result = await deferToThread(client)
        self.assertEqual(result["flavors"], ["C1R1024D20drbd", "C2R2048D40drbd", "C4R4096D80drbd"])
        self.assertEqual(result["images"], ["Debian Bookworm (demo)"])
        self.assertEqual((result["private"], result["names"], result["after"]), (True, ["laptop"], []))
        self.assertEqual(result["instances"], 10)

    async def test_novaclient(self) -> None:
        """
        python-novaclient (version 2, through the catalog) lists flavors and key pairs and reads limits.
        """
        base, token = await self.serve()

        def client() -> tuple[list[str], list[str], int]:
            auth = v2.Password(auth_url=f"{base}/identity/v2.0", username="demo@example.org", password=token)
            sess = ksession.Session(auth=auth)
            nova = novaclient.Client("2", session=sess, region_name="default")
            flavors = sorted(f.name for f in nova.flavors.list())
            keypairs = [k.name for k in nova.keypairs.list()]
            limits = nova.limits.get().to_dict()["absolute"]
            sess.session.close()
            return flavors, keypairs, limits["maxTotalRAMSize"]

        flavors, keypairs, ram = await deferToThread(client)
        self.assertEqual(len(flavors), 3)
        self.assertEqual((keypairs, ram), ([], 20480))

    async def test_novaclientServers(self) -> None:
        """
        python-novaclient creates a server (adminPass), finds it in the detailed list, shows, renames and tags it
        with metadata, and the simulated cluster receives the CreateInstance job.
        """
        base, token = await self.serve(servers=True)

        def client() -> dict[str, Any]:
            auth = v2.Password(auth_url=f"{base}/identity/v2.0", username="demo@example.org", password=token)
            sess = ksession.Session(auth=auth)
            nova = novaclient.Client("2", session=sess, region_name="default")
            flavor = sorted(nova.flavors.list(), key=lambda f: f.ram)[0]
            created = nova.servers.create("from-nova", DEMO_IMAGE_ID, flavor, nics=[], meta={"role": "test"})
            listed = [(s.id, s.status) for s in nova.servers.list()]
            nova.servers.update(created, name="renamed")
            nova.servers.set_meta(created, {"extra": "1"})
            shown = nova.servers.get(created.id)
            sess.session.close()
            return {
                "id": created.id,
                "adminPass": created.adminPass,
                "listed": listed,
                "name": shown.name,
                "metadata": shown.metadata,
                "status": shown.status,
            }

        result = await deferToThread(client)
        self.assertEqual(result["listed"], [(result["id"], "BUILD")])
        self.assertEqual((result["name"], result["status"]), ("renamed", "BUILD"))
        self.assertEqual(result["metadata"], {"role": "test", "extra": "1"})
        self.assertGreaterEqual(len(result["adminPass"]), 10)
        ops = [job.ops[0].input for job in self.sim.queue.jobs.values()]
        self.assertEqual(
            [(o["OP_ID"], o["instance_name"]) for o in ops], [("OP_INSTANCE_CREATE", f"snf-{result['id']}")]
        )

    async def test_fixedToken(self) -> None:
        """
        The lab's clouds.yaml style (fixed token, compute endpoint override, no identity call) works.
        """
        base, token = await self.serve()

        def client() -> list[str]:
            auth = Token(f"{base}/compute/v2.1", token)
            sess = ksession.Session(auth=auth)
            conn = openstack.connection.Connection(session=sess, compute_endpoint_override=f"{base}/compute/v2.1")
            names = sorted(f.name for f in conn.compute.flavors())
            sess.session.close()
            return names

        self.assertEqual(len(await deferToThread(client)), 3)


class _Lazy:
    """
    A resource that forwards to the application once it exists (its base
    URL needs the port, which exists only once listening).
    """

    isLeaf = True

    def __init__(self, holder: list[APIApplication]) -> None:
        self._holder = holder

    def render(self, request: Any) -> Any:
        return self._holder[0].resource().render(request)

    def getChildWithDefault(self, name: bytes, request: Any) -> Any:
        return self

    def putChild(self, path: bytes, child: Any) -> None:
        raise NotImplementedError()
