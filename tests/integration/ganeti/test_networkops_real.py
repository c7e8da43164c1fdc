"""
L{synnefo_twisted.logic.networkops} against the real Ganeti 3.0 test
cluster: the C{CreateNetwork}/C{ConnectNetwork} jobs a port attach submits
(with their IPv4/IPv6, MAC prefix, tags and conflict-check arguments) are
accepted and succeed, and removing the network disconnects and removes it.
Networks get a per-run name prefix so that parallel runs do not collide;
whatever a failed run leaves is removed in cleanup.
"""

from __future__ import annotations

import uuid

from twisted.internet import reactor  # tests only: real cluster, real reactor
from twisted.internet.defer import Deferred

from synnefo_twisted.backends import BackendRegistry
from synnefo_twisted.db.pools import BackendNetworkRepository
from synnefo_twisted.db.repositories import (
    BackendRepository,
    FlavorRepository,
    ImageRepository,
    PortRepository,
    ServerRepository,
    UserRepository,
)
from synnefo_twisted.ganeti import naming
from synnefo_twisted.ganeti.errors import GanetiError, RapiNotFound
from synnefo_twisted.logic import networkops
from synnefo_twisted.logic import networks as netlogic
from synnefo_twisted.logic.networks import NetworkDefaults, NetworkRequest, parseSubnet
from synnefo_twisted.testing import memoryDatabase
from tests.integration.ganeti import realcluster
from tests.integration.ganeti.test_rapi_real import QuiescingTestCase, realClient

DEFAULTS = NetworkDefaults()


class RealNetworkOpsTests(QuiescingTestCase):
    timeout = 180

    async def test_createConnectRemove(self) -> None:
        """
        A dual-stack MAC_FILTERED network is created and connected to the node group by the jobs
        L{networkops.ensureNetworkActive} submits; L{networkops.removeNetworkFromBackends} removes it again.
        """
        client = realClient(realcluster.USER, realcluster.PASSWORD)
        db = await memoryDatabase(reactor)
        self.addCleanup(db.stopService)
        prefix = f"snft{uuid.uuid4().hex[:8]}-"
        backend = await BackendRepository(db).add("real", realcluster.RAPI_URL)
        registry = BackendRegistry(db, prefix, reactor, clientFactory=lambda r, b: client)
        await netlogic.ensureResourcePools(db)
        user, _token = await UserRepository(db).create("u@example.org")
        created = await netlogic.createNetwork(
            db,
            NetworkRequest("MAC_FILTERED", "real", None, False),
            user.uuid,
            DEFAULTS,
            subnets=[
                parseSubnet({"subnet": {"cidr": "10.213.7.0/29"}}, DEFAULTS, networkId=0),
                parseSubnet({"subnet": {"cidr": "2001:db8:213::/64", "ip_version": 6}}, DEFAULTS, networkId=0),
            ],
        )
        network = created.network
        name = naming.networkName(network.id, prefix)
        self.addCleanup(lambda: Deferred.fromCoroutine(self.removeLeftover(client, name)))

        jobs = await networkops.ensureNetworkActive(db, registry, backend, network)
        self.assertGreaterEqual(len(jobs), 2)
        for job in jobs:
            result = await client.waitForJob(job, timeout=120)
            self.assertEqual(result["status"], "success")
        info = await client.getNetwork(name)
        self.assertEqual((info["network"], info["gateway"]), ("10.213.7.0/29", "10.213.7.1"))
        self.assertEqual(
            (info["network6"], info["mac_prefix"]),
            ("2001:db8:213::/64", networkops.ganetiMacPrefix(network.mac_prefix)),
        )
        self.assertEqual(sorted(info["tags"]), ["nfdhcpd", "private", "private-filtered"])
        self.assertTrue(info["group_list"])
        row = await BackendNetworkRepository(db).get(network.id, backend.id)
        assert row is not None
        await BackendNetworkRepository(db).update(row.id, operstate="ACTIVE")

        marked = await netlogic.deleteNetwork(db, network.id, None, admin=True)
        pending = await networkops.removeNetworkFromBackends(db, registry, marked)
        self.assertEqual((pending.deleted, pending.action), (False, "DESTROY"))
        row = await BackendNetworkRepository(db).get(network.id, backend.id)
        assert row is not None and row.backendjobid is not None
        self.assertEqual(row.backendopcode, "OP_NETWORK_REMOVE")
        self.assertEqual((await client.waitForJob(row.backendjobid, timeout=120))["status"], "success")
        with self.assertRaises(RapiNotFound):
            await client.getNetwork(name)

    async def test_attachDetachPort(self) -> None:
        """
        A port attached to a running server (the network created and connected first, the NIC add depending on
        those jobs, hotplug where possible) gives the instance a NIC with the port's name and address; detaching
        removes it.
        """
        client = realClient(realcluster.USER, realcluster.PASSWORD)
        db = await memoryDatabase(reactor)
        self.addCleanup(db.stopService)
        prefix = f"snft{uuid.uuid4().hex[:8]}-"
        backend = await BackendRepository(db).add("real", realcluster.RAPI_URL)
        registry = BackendRegistry(db, prefix, reactor, clientFactory=lambda r, b: client)
        await netlogic.ensureResourcePools(db)
        # the test cluster's bridge
        defaults = NetworkDefaults(default_mac_filtered_bridge="gnt-br0")
        user, _token = await UserRepository(db).create("u@example.org")
        created = await netlogic.createNetwork(
            db,
            NetworkRequest("MAC_FILTERED", "real", None, False),
            user.uuid,
            defaults,
            subnets=[parseSubnet({"subnet": {"cidr": "10.213.8.0/29"}}, defaults, networkId=0)],
        )
        network = created.network
        self.addCleanup(
            lambda: Deferred.fromCoroutine(self.removeLeftover(client, naming.networkName(network.id, prefix)))
        )
        flavors = FlavorRepository(db)
        volumeType = await flavors.addVolumeType("file", "file")
        flavor = await flavors.create(1, 128, 1, volumeType.id)
        image = await ImageRepository(db).register("noop", user.uuid, "file:///noop")
        server = await ServerRepository(db).create("vm", user.uuid, flavor.id, image.id, backendId=backend.id)
        instance = naming.instanceName(server.id, prefix)
        self.addCleanup(lambda: Deferred.fromCoroutine(self.removeInstance(client, instance)))
        job = await client.createInstance(
            instance,
            "file",
            [{"size": 32, "name": naming.volumeName(server.id, prefix)}],
            [],
            os="noop",
            pnode=realcluster.NODE,
            hypervisor="fake",
            beparams={"maxmem": 128, "minmem": 128, "vcpus": 1},
            ip_check=False,
            name_check=False,
            wait_for_sync=False,
        )
        self.assertEqual((await client.waitForJob(job, timeout=120))["status"], "success")
        running = await ServerRepository(db).update(server.id, operstate="STARTED")
        assert running is not None

        attached = await networkops.attachPort(db, registry, running, network)
        self.assertEqual((await client.waitForJob(attached.jobId, timeout=120))["status"], "success")
        info = await client.getInstance(instance)
        nicName = naming.nicName(attached.port.id, prefix)
        self.assertEqual(info["nic.names"], [nicName])
        self.assertEqual(info["nic.ips"], ["10.213.8.2"])
        self.assertEqual(info["nic.networks.names"], [naming.networkName(network.id, prefix)])

        port = await PortRepository(db).get(attached.port.id)
        assert port is not None
        jobId = await networkops.detachPort(db, registry, port)
        assert jobId is not None
        self.assertEqual((await client.waitForJob(jobId, timeout=120))["status"], "success")
        self.assertEqual((await client.getInstance(instance))["nic.names"], [])
        self.assertIsNone(await PortRepository(db).get(attached.port.id))

    async def removeInstance(self, client: object, name: str) -> None:
        try:
            jobId = await client.deleteInstance(name, shutdownTimeout=0)  # type: ignore[attr-defined]
            await client.waitForJob(jobId, timeout=120)  # type: ignore[attr-defined]
        except GanetiError:
            pass

    async def removeLeftover(self, client: object, name: str) -> None:
        jobId = await networkops.removeFromBackend(client, name)
        if jobId is not None:
            await client.waitForJob(jobId, timeout=120)  # type: ignore[attr-defined]
