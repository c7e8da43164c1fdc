"""
Real OpenStack clients against the network API over loopback HTTP:
openstacksdk (Keystone v2 through C{/identity/v2.0/tokens}, the network
endpoint found in the service catalog and by version discovery) lists the
seeded public network, its subnet and the ports, creates a private network
and subnet, creates and deletes a floating IP, and attaches and detaches a
floating IP to a server on the simulated cluster with the
C{addFloatingIp}/C{removeFloatingIp} actions; the compute flavour
(C{os-floating-ips}, whose proxy novaclient no longer ships) answers a
keystoneauth session that found compute in the catalog.

The clients block, so they run in a thread while the reactor serves.
"""

from __future__ import annotations

from typing import Any, cast

import openstack  # type: ignore[import-untyped,import-not-found,unused-ignore]
from keystoneauth1 import session as ksession  # type: ignore[import-untyped,import-not-found,unused-ignore]
from keystoneauth1.identity import v2  # type: ignore[import-untyped,import-not-found,unused-ignore]
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.protocols.policies import WrappingFactory
from twisted.trial.unittest import TestCase

from synnefo_twisted.backends import BackendRegistry
from synnefo_twisted.db.repositories import BackendRepository, PortRepository, ServerRepository
from synnefo_twisted.logic.networks import ensureResourcePools
from synnefo_twisted.logic.serverops import ServerOptions
from synnefo_twisted.testing import FakeConsoleBroker, InMemoryCluster, memoryDatabase
from tests.web.test_clients import _Lazy, _QuietSite, closeAll
from web.app import APIApplication
from web.seed import DEMO_IMAGE_ID, DEMO_PUBLIC_CIDR, seedDemo


class NetworkClientTests(TestCase):
    timeout = 60

    async def serve(self) -> tuple[str, str]:
        """
        Serve the API (servers over an in-memory simulated cluster on the
        reactor, C{self.sim}) on a loopback port; (base URL, the demo
        user's token).
        """
        self.database = database = await memoryDatabase(reactor)
        self.addCleanup(database.stopService)
        await ensureResourcePools(database)
        seeded = await seedDemo(database)
        assert seeded.token is not None and seeded.network is not None
        self.publicId = seeded.network
        holder: list[APIApplication] = []
        factory = WrappingFactory(_QuietSite(_Lazy(holder)))
        port = reactor.listenTCP(0, cast(Any, factory), interface="127.0.0.1")
        self.addCleanup(lambda: Deferred.fromCoroutine(closeAll(factory)))
        self.addCleanup(port.stopListening)
        base = f"http://127.0.0.1:{cast(IPv4Address, port.getHost()).port}"
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

    def connect(self, base: str, token: str) -> tuple[Any, Any]:
        auth = v2.Password(auth_url=f"{base}/identity/v2.0", username="demo@example.org", password=token)
        sess = ksession.Session(auth=auth)
        return sess, openstack.connection.Connection(session=sess, region_name="default")

    async def test_openstacksdkNetworks(self) -> None:
        """
        openstacksdk lists networks, subnets and ports, creates a private network with a subnet and a port on it,
        and creates and deletes a floating IP.
        """
        base, token = await self.serve()

        def client() -> dict[str, Any]:
            sess, conn = self.connect(base, token)
            try:
                before = [(n.name, n.is_shared) for n in conn.network.networks()]
                subnets = [s.cidr for s in conn.network.subnets()]
                ports = list(conn.network.ports())
                network = conn.network.create_network(name="lan", type="MAC_FILTERED")
                subnet = conn.network.create_subnet(
                    network_id=network.id,
                    cidr="10.20.0.0/24",
                    ip_version=4,
                    allocation_pools=[{"start": "10.20.0.10", "end": "10.20.0.20"}],
                )
                port = conn.network.create_port(network_id=network.id, name="spare")
                fip = conn.network.create_ip(floating_network_id=str(self.publicId))
                listed = [ip.floating_ip_address for ip in conn.network.ips()]
                conn.network.delete_ip(fip)
                after = list(conn.network.ips())
                conn.network.delete_port(port)
                shown = conn.network.get_network(network.id)
                conn.network.delete_network(network)
                remaining = [n.name for n in conn.network.networks()]
                return {
                    "before": before,
                    "subnets": subnets,
                    "ports": ports,
                    "network": (network.name, network.status),
                    "subnet": (subnet.cidr, subnet.gateway_ip, [dict(p) for p in subnet.allocation_pools]),
                    "port": [ip["ip_address"] for ip in port.fixed_ips],
                    "fip": fip.floating_ip_address,
                    "listed": listed,
                    "after": after,
                    "shownSubnets": shown.subnet_ids,
                    "subnetId": subnet.id,
                    "remaining": remaining,
                }
            finally:
                sess.session.close()

        result = await deferToThread(client)
        self.assertEqual(result["before"], [("public", True)])
        self.assertEqual(result["subnets"], [DEMO_PUBLIC_CIDR])
        self.assertEqual(result["ports"], [])
        self.assertEqual(result["network"], ("lan", "ACTIVE"))
        self.assertEqual(
            result["subnet"], ("10.20.0.0/24", "10.20.0.1", [{"start": "10.20.0.10", "end": "10.20.0.20"}])
        )
        self.assertEqual(result["port"], ["10.20.0.10"])
        self.assertEqual(result["fip"], "203.0.113.2")
        self.assertEqual((result["listed"], result["after"]), (["203.0.113.2"], []))
        self.assertEqual(result["shownSubnets"], [result["subnetId"]])
        self.assertEqual(result["remaining"], ["public"])

    async def running(self, base: str, token: str) -> str:
        """
        A server created through the API whose create job finished, marked
        STARTED as the dispatcher would.
        """

        def create() -> str:
            sess, conn = self.connect(base, token)
            try:
                flavor = sorted(conn.compute.flavors(), key=lambda f: f.ram)[0]
                server = conn.compute.create_server(
                    name="web", image_id=DEMO_IMAGE_ID, flavor_id=flavor.id, networks=[]
                )
                return str(server.id)
            finally:
                sess.session.close()

        serverId = await deferToThread(create)
        while f"snf-{serverId}" not in self.sim.cluster.instances:
            await deferLater(reactor, 0.05, lambda: None)
        await ServerRepository(self.database).update(int(serverId), operstate="STARTED", task=None, action=None)
        return serverId

    async def test_openstacksdkServerFloatingIP(self) -> None:
        """
        openstacksdk attaches a floating IP to a server (addFloatingIp: a port with that address and a NIC add job
        on the simulated cluster) and detaches it again (removeFloatingIp: NIC removed, port gone, IP kept).
        """
        base, token = await self.serve()
        serverId = await self.running(base, token)

        def attach() -> dict[str, Any]:
            sess, conn = self.connect(base, token)
            try:
                fip = conn.network.create_ip()
                conn.compute.add_floating_ip_to_server(serverId, fip.floating_ip_address)
                shown = conn.network.get_ip(fip.id)
                return {"address": fip.floating_ip_address, "id": fip.id, "instance": shown.port_id}
            finally:
                sess.session.close()

        attached = await deferToThread(attach)
        [port] = await PortRepository(self.database).listByServer(int(serverId))
        self.assertEqual(attached["instance"], str(port.id))
        nic = [dict(op.input) for job in self.sim.queue.jobs.values() for op in job.ops][-1]
        self.assertEqual(nic["OP_ID"], "OP_INSTANCE_SET_PARAMS")
        self.assertEqual(nic["nics"][0][2]["ip"], attached["address"])
        while f"snf-nic-{port.id}" not in [n.name for n in self.sim.cluster.instances[f"snf-{serverId}"].nics]:
            await deferLater(reactor, 0.05, lambda: None)

        def detach() -> tuple[Any, bool]:
            sess, conn = self.connect(base, token)
            try:
                conn.compute.remove_floating_ip_from_server(serverId, attached["address"])
                shown = conn.network.get_ip(attached["id"])
                conn.network.delete_ip(attached["id"])
                return shown.port_id, any(True for _ in conn.network.ips())
            finally:
                sess.session.close()

        portAfter, anyLeft = await deferToThread(detach)
        self.assertEqual((portAfter, anyLeft), (None, False))
        self.assertEqual(await PortRepository(self.database).listByServer(int(serverId)), [])
        ops = [dict(op.input) for job in self.sim.queue.jobs.values() for op in job.ops]
        self.assertEqual(ops[-1]["nics"], [["remove", f"snf-nic-{port.id}", {}]])

    async def test_computeFloatingIPs(self) -> None:
        """
        The compute flavour (os-floating-ips): allocate with C{{"pool": null}} as old novaclient sent, list, release,
        through a keystoneauth session and the catalog's compute endpoint.
        """
        base, token = await self.serve()

        def client() -> tuple[list[str], list[str]]:
            auth = v2.Password(auth_url=f"{base}/identity/v2.0", username="demo@example.org", password=token)
            sess = ksession.Session(auth=auth)
            try:
                endpoint = sess.get_endpoint(service_type="compute", region_name="default")
                created = sess.post(f"{endpoint}/os-floating-ips", json={"pool": None}).json()["floating_ip"]
                listed = sess.get(f"{endpoint}/os-floating-ips").json()["floating_ips"]
                sess.delete(f"{endpoint}/os-floating-ips/{created['id']}")
                after = sess.get(f"{endpoint}/os-floating-ips").json()["floating_ips"]
                return [f["ip"] for f in listed], [f["ip"] for f in after]
            finally:
                sess.session.close()

        listed, after = await deferToThread(client)
        self.assertEqual((listed, after), (["203.0.113.2"], []))
