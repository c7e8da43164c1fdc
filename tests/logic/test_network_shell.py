"""
The async network shell over a real database: networks with pooled MAC
prefixes and bridges, subnets with IPv4 pools, ports allocating and
releasing addresses, floating IPs and network state from backend networks.

L{NetworkShellMixin} runs here on SQLite and, in
L{tests.integration.logic.test_pools_postgres}, on real PostgreSQL, where
the concurrent tests prove the row locks.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet import reactor as _globalReactor  # noqa: N812  (tests only: real threads need the real reactor)
from twisted.internet.defer import Deferred, gatherResults
from twisted.trial.unittest import TestCase

from synnefo_twisted.db import IntegrityError, openDatabase
from synnefo_twisted.db.migrations import migrate
from synnefo_twisted.db.pools import BackendNetworkRepository, IPPoolRepository, ResourcePoolRepository
from synnefo_twisted.db.repositories import BackendRepository, PortRepository, SubnetRepository, UserRepository
from synnefo_twisted.logic import networks, pools
from synnefo_twisted.logic.networks import (
    ConflictError,
    ForbiddenError,
    NetworkDefaults,
    NotFoundError,
    allocateFloatingIP,
    createNetwork,
    createPort,
    createSubnet,
    deleteNetwork,
    deletePort,
    ensureResourcePools,
    parseFloatingIP,
    parseNetwork,
    parseSubnet,
    releaseFloatingIP,
    updateNetworkState,
)
from synnefo_twisted.logic.pools import reconcilePools

if TYPE_CHECKING:
    from twisted.trial.unittest import TestCase as _Base
else:
    _Base = object

DEFAULTS = NetworkDefaults(enabledFlavors=frozenset({"MAC_FILTERED", "PHYSICAL_VLAN", "CUSTOM"}))
CONCURRENCY = 50
E = TypeVar("E", bound=Exception)


def netRequest(flavor: str = "MAC_FILTERED", name: str = "net") -> networks.NetworkRequest:
    return parseNetwork({"network": {"type": flavor, "name": name}}, DEFAULTS)


def subnetRequest(cidr: str = "10.0.0.0/24", **fields: Any) -> networks.SubnetRequest:
    return parseSubnet({"subnet": {"cidr": cidr, **fields}}, DEFAULTS, networkId=1)


class NetworkShellMixin(_Base):
    """
    The shell's behaviour on one database; a concrete case provides
    C{makeDatabase()} (unstarted, on an empty store).
    """

    reactor: Any = _globalReactor

    def makeDatabase(self) -> Any:
        raise NotImplementedError

    async def failsWith(self, d: Deferred[Any], kind: type[E]) -> E:
        error: object = await self.assertFailure(d, kind)
        assert isinstance(error, kind)
        return error

    async def database(self, macPrefixSize: int = 4096, bridgeSize: int = 20) -> Any:
        db = self.makeDatabase()
        await db.startService()
        self.addCleanup(db.stopService)
        await migrate(db)
        await ensureResourcePools(db, macPrefixSize=macPrefixSize, bridgeSize=bridgeSize)
        user, _token = await UserRepository(db).create("user@example.org")
        self.userid = user.uuid
        return db

    async def network(self, db: Any, cidr: str = "10.0.0.0/24", **subnetFields: Any) -> networks.CreatedNetwork:
        return await createNetwork(
            db, netRequest(), self.userid, DEFAULTS, subnets=[subnetRequest(cidr, **subnetFields)]
        )

    async def test_createNetworkWithSubnet(self) -> None:
        """
        A MAC_FILTERED network takes a MAC prefix from the pool (the first
        one after the reserved default), the filtered bridge, its Ganeti
        tag, and a subnet whose pool has the gateway reserved.
        """
        db = await self.database()
        created = await self.network(db)
        self.assertEqual(
            (created.network.flavor, created.network.link, created.network.mac_prefix, created.network.tags),
            ("MAC_FILTERED", "prv0", "aa:00:1", ("private-filtered",)),
        )
        [subnet] = created.subnets
        self.assertEqual(
            (subnet.cidr, subnet.gateway, subnet.network_id), ("10.0.0.0/24", "10.0.0.1", created.network.id)
        )
        [pool] = await IPPoolRepository(db).listBySubnet(subnet.id)
        self.assertEqual((pool.base, pool.size), ("10.0.0.1", 254))
        second = await self.network(db)
        self.assertEqual(second.network.mac_prefix, "aa:00:2")

    async def test_linkDefaultsAndBridgePool(self) -> None:
        """
        A PHYSICAL_VLAN network takes a bridge from the pool; an
        IP_LESS_ROUTED network gets link snf-link-<id>.
        """
        db = await self.database()
        vlan = await createNetwork(db, netRequest("PHYSICAL_VLAN"), self.userid, DEFAULTS)
        self.assertEqual((vlan.network.link, vlan.network.mac_prefix), ("prv0", "aa:00:0"))
        routed = await createNetwork(
            db, parseNetwork({"network": {"type": "IP_LESS_ROUTED"}}, DEFAULTS, admin=True), None, DEFAULTS
        )
        self.assertEqual((routed.network.mode, routed.network.link), ("routed", f"snf-link-{routed.network.id}"))

    async def test_macPrefixPoolExhausted(self) -> None:
        """
        When the MAC-prefix pool is full, creating a MAC_FILTERED network
        is a conflict naming network.type, and nothing is written.
        """
        db = await self.database(macPrefixSize=3)
        await self.network(db)
        await self.network(db)
        d = createNetwork(db, netRequest(), self.userid, DEFAULTS, subnets=[subnetRequest()])
        e = await self.failsWith(d, ConflictError)
        self.assertEqual((e.field, e.code), ("network.type", 409))
        self.assertIn("mac_prefix pool is exhausted", e.message)
        rows = await db.runQuery("SELECT COUNT(*) FROM networks")
        self.assertEqual(rows[0][0], 2)

    async def test_createSubnetLater(self) -> None:
        """
        A subnet added to an existing network gets its pools; a second
        IPv4 subnet conflicts; another user's network is not found.
        """
        db = await self.database()
        created = await createNetwork(db, netRequest(), self.userid, DEFAULTS)
        request = parseSubnet(
            {
                "subnet": {
                    "cidr": "192.168.5.0/24",
                    "allocation_pools": [{"start": "192.168.5.10", "end": "192.168.5.20"}],
                }
            },
            DEFAULTS,
            networkId=created.network.id,
        )
        subnet = await createSubnet(db, request, self.userid)
        [pool] = await IPPoolRepository(db).listBySubnet(subnet.id)
        self.assertEqual((pool.base, pool.size, pool.pool_offset), ("192.168.5.10", 11, 10))
        await self.assertFailure(createSubnet(db, request, self.userid), ConflictError)
        await self.assertFailure(createSubnet(db, request, "someone-else"), NotFoundError)

    async def test_portAllocatesAndDeleteReleases(self) -> None:
        """
        Ports get the lowest free addresses (after the reserved gateway);
        deleting a port returns its address, which the next port gets, and
        both events are in the IP history.
        """
        db = await self.database()
        net = (await self.network(db)).network
        first = await createPort(db, net.id, self.userid)
        second = await createPort(db, net.id, self.userid)
        self.assertEqual([ip.address for ip in first.ips + second.ips], ["10.0.0.2", "10.0.0.3"])
        self.assertTrue(await deletePort(db, first.port.id))
        self.assertFalse(await deletePort(db, first.port.id))
        third = await createPort(db, net.id, self.userid)
        self.assertEqual(third.ips[0].address, "10.0.0.2")
        rows = await db.runQuery("SELECT action FROM ip_history WHERE address = '10.0.0.2' ORDER BY id")
        self.assertEqual([r[0] for r in rows], ["allocate", "release", "allocate"])

    async def test_portWithAddress(self) -> None:
        """
        A requested address is allocated when free; taken, reserved or
        outside the pools it fails with the field of the address.
        """
        db = await self.database()
        net = (await self.network(db, allocation_pools=[{"start": "10.0.0.10", "end": "10.0.0.20"}])).network
        port = await createPort(db, net.id, self.userid, address="10.0.0.15")
        self.assertEqual(port.ips[0].address, "10.0.0.15")
        e = await self.failsWith(createPort(db, net.id, self.userid, address="10.0.0.15"), ConflictError)
        self.assertEqual(e.field, "port.fixed_ips[0].ip_address")
        e2 = await self.failsWith(createPort(db, net.id, self.userid, address="10.0.0.50"), networks.BadRequestError)
        self.assertEqual(e2.field, "port.fixed_ips[0].ip_address")
        await self.assertFailure(createPort(db, 999, self.userid), NotFoundError)

    async def test_portWithoutSubnet(self) -> None:
        """
        A port on a network with no IPv4 subnet has no address.
        """
        db = await self.database()
        net = (await createNetwork(db, netRequest(), self.userid, DEFAULTS)).network
        port = await createPort(db, net.id, self.userid)
        self.assertEqual(port.ips, ())

    async def test_concurrentPortsDistinctThenExhausted(self) -> None:
        """
        50 concurrent port creations on a pool of exactly 50 addresses get
        50 distinct addresses; the next one fails with a conflict saying
        the network has no free address.
        """
        db = await self.database()
        net = (await self.network(db, allocation_pools=[{"start": "10.0.0.10", "end": "10.0.0.59"}])).network
        created = await gatherResults(
            [createPort(db, net.id, self.userid) for _ in range(CONCURRENCY)], consumeErrors=True
        )
        addresses = [c.ips[0].address for c in created]
        self.assertEqual(len(set(addresses)), CONCURRENCY)
        self.assertEqual(sorted(addresses), sorted(f"10.0.0.{i}" for i in range(10, 60)))
        e = await self.failsWith(createPort(db, net.id, self.userid), ConflictError)
        self.assertEqual(e.field, "port.network_id")
        self.assertIn("no free IPv4 address", e.message)
        rows = await db.runQuery("SELECT COUNT(*) FROM ports")
        self.assertEqual(rows[0][0], CONCURRENCY)

    async def test_concurrentMacPrefixes(self) -> None:
        """
        Concurrent MAC_FILTERED network creations get distinct MAC prefixes.
        """
        db = await self.database()
        created = await gatherResults(
            [createNetwork(db, netRequest(), self.userid, DEFAULTS) for _ in range(20)], consumeErrors=True
        )
        prefixes = {c.network.mac_prefix for c in created}
        self.assertEqual(len(prefixes), 20)

    async def test_uniqueAddressBacksThePool(self) -> None:
        """
        Even if the pool bitmap were wrong, the database refuses a second
        live row for the same address on the network.
        """
        db = await self.database()
        created = await self.network(db)
        port = await createPort(db, created.network.id, self.userid)
        d = PortRepository(db).addIP(created.subnets[0].id, created.network.id, port.ips[0].address, 4)
        await self.assertFailure(d, IntegrityError)

    async def floatingNetwork(self, db: Any) -> Any:
        created = await createNetwork(
            db,
            parseNetwork({"network": {"type": "CUSTOM", "name": "public"}}, DEFAULTS),
            None,
            DEFAULTS,
            subnets=[subnetRequest("192.0.2.0/24", allocation_pools=[{"start": "192.0.2.10", "end": "192.0.2.12"}])],
            public=True,
            floatingIPPool=True,
        )
        return created.network

    async def test_floatingIPs(self) -> None:
        """
        Floating IPs come from a floating-IP pool network until it is
        exhausted; an attached one cannot be released, and deleting its
        port only detaches it; a released one returns to the pool.
        """
        db = await self.database()
        public = await self.floatingNetwork(db)
        request = parseFloatingIP({"floatingip": {}})
        ips = [await allocateFloatingIP(db, self.userid, request) for _ in range(3)]
        self.assertEqual([ip.address for ip in ips], ["192.0.2.10", "192.0.2.11", "192.0.2.12"])
        self.assertTrue(all(ip.floating_ip and ip.network_id == public.id for ip in ips))
        await self.assertFailure(allocateFloatingIP(db, self.userid, request), ConflictError)

        private = (await createNetwork(db, netRequest(), self.userid, DEFAULTS)).network
        port = await createPort(db, private.id, self.userid)
        await db.runOperation("UPDATE ips SET port_id = %s WHERE id = %s", (port.port.id, ips[0].id))
        await self.assertFailure(releaseFloatingIP(db, ips[0].id, self.userid), ConflictError)
        await deletePort(db, port.port.id)
        released = await releaseFloatingIP(db, ips[0].id, self.userid)
        self.assertTrue(released.deleted)
        await self.assertFailure(releaseFloatingIP(db, ips[0].id, self.userid), NotFoundError)
        again = await allocateFloatingIP(
            db, self.userid, parseFloatingIP({"floatingip": {"floating_network_id": public.id}})
        )
        self.assertEqual(again.address, "192.0.2.10")

    async def test_portAttachesFloatingIP(self) -> None:
        """
        A port created with the address of the user's floating IP attaches
        that floating IP; a second such port conflicts, as does another
        user's; deleting the port detaches the floating IP but keeps it.
        """
        db = await self.database()
        public = await self.floatingNetwork(db)
        fip = await allocateFloatingIP(db, self.userid, parseFloatingIP({"floatingip": {}}))
        port = await createPort(db, public.id, self.userid, address=fip.address)
        self.assertEqual([(ip.id, ip.port_id) for ip in port.ips], [(fip.id, port.port.id)])
        await self.failsWith(createPort(db, public.id, self.userid, address=fip.address), ConflictError)
        other, _token = await UserRepository(db).create("other@example.org")
        await self.failsWith(createPort(db, public.id, other.uuid, address=fip.address), ConflictError)
        await deletePort(db, port.port.id)
        rows = await db.runQuery("SELECT port_id, deleted FROM ips WHERE id = %s", (fip.id,))
        self.assertEqual([(r[0], bool(r[1])) for r in rows], [(None, False)])

    async def test_floatingIPNetworkMustBePool(self) -> None:
        """
        Asking for a floating IP on a network that is not a floating-IP
        pool is not found.
        """
        db = await self.database()
        net = (await self.network(db)).network
        request = parseFloatingIP({"floatingip": {"floating_network_id": net.id}})
        e = await self.failsWith(allocateFloatingIP(db, self.userid, request), NotFoundError)
        self.assertEqual(e.field, "floatingip.floating_network_id")

    async def test_concurrentFloatingIPs(self) -> None:
        """
        Concurrent floating-IP allocations on a pool of 3 give 3 distinct
        addresses and conflicts for the rest.
        """
        db = await self.database()
        await self.floatingNetwork(db)
        request = parseFloatingIP({"floatingip": {}})
        results = await gatherResults(
            [allocateFloatingIP(db, self.userid, request).addErrback(lambda f: f.trap(ConflictError)) for _ in range(8)]
        )
        addresses = [r.address for r in results if r is not ConflictError]
        self.assertEqual(sorted(addresses), ["192.0.2.10", "192.0.2.11", "192.0.2.12"])

    async def test_networkStateFromBackends(self) -> None:
        """
        A network is ACTIVE once one backend network is; when every backend
        network is DELETED the network is deleted, its MAC prefix goes back
        to the pool, its subnets are deleted and its pools and backend
        networks dropped.
        """
        db = await self.database()
        created = await self.network(db)
        net = created.network
        backends = [await BackendRepository(db).add(f"cluster{i}", f"https://c{i}:5080") for i in range(2)]
        repo = BackendNetworkRepository(db)
        rows = [await repo.getOrCreate(net.id, b.id) for b in backends]
        self.assertEqual(await repo.getOrCreate(net.id, backends[0].id), rows[0])
        state = await updateNetworkState(db, net.id)
        assert state is not None
        self.assertEqual(state.state, "PENDING")
        await repo.update(rows[0].id, operstate="ACTIVE")
        state = await updateNetworkState(db, net.id)
        assert state is not None
        self.assertEqual(state.state, "ACTIVE")
        for row in rows:
            await repo.update(row.id, operstate="DELETED")
        state = await updateNetworkState(db, net.id)
        assert state is not None
        self.assertEqual((state.state, state.deleted), ("DELETED", True))
        self.assertEqual(await SubnetRepository(db).listByNetwork(net.id), [])
        self.assertEqual(await IPPoolRepository(db).listByNetwork(net.id), [])
        self.assertEqual(await repo.listByNetwork(net.id), [])
        again = await self.network(db)
        self.assertEqual(again.network.mac_prefix, net.mac_prefix)
        self.assertIsNone(await updateNetworkState(db, 9999))

    async def test_deleteRefusedWithFloatingIPs(self) -> None:
        """
        A floating-IP pool network with allocated floating IPs is not
        deleted even when every backend says DELETED.
        """
        db = await self.database()
        public = await self.floatingNetwork(db)
        await allocateFloatingIP(db, self.userid, parseFloatingIP({"floatingip": {}}))
        backend = await BackendRepository(db).add("cluster", "https://c:5080")
        row = await BackendNetworkRepository(db).getOrCreate(public.id, backend.id)
        await BackendNetworkRepository(db).update(row.id, operstate="DELETED")
        await self.assertFailure(updateNetworkState(db, public.id), ConflictError)

    async def test_deleteNetwork(self) -> None:
        """
        Deleting a network with ports is a conflict; someone else's private
        network is not found; a public one is forbidden to non-admins;
        without ports and backends it is deleted at once and its MAC prefix
        returns to the pool.
        """
        db = await self.database()
        created = await self.network(db)
        net = created.network
        port = await createPort(db, net.id, self.userid)
        e = await self.failsWith(deleteNetwork(db, net.id, self.userid), ConflictError)
        self.assertIn("ports still configured", e.message)
        await self.failsWith(deleteNetwork(db, net.id, "someone-else"), NotFoundError)
        public = await self.floatingNetwork(db)
        await self.failsWith(deleteNetwork(db, public.id, self.userid), ForbiddenError)
        await deletePort(db, port.port.id)
        deleted = await deleteNetwork(db, net.id, self.userid)
        self.assertEqual((deleted.state, deleted.deleted, deleted.action), ("DELETED", True, "DESTROY"))
        await self.failsWith(deleteNetwork(db, net.id, self.userid), NotFoundError)
        again = await self.network(db)
        self.assertEqual(again.network.mac_prefix, net.mac_prefix)

    async def test_deleteNetworkOnBackends(self) -> None:
        """
        A network present on a backend is only marked DESTROY; it is
        deleted when the backend network becomes DELETED and the state is
        recomputed.
        """
        db = await self.database()
        net = (await createNetwork(db, netRequest("PHYSICAL_VLAN"), self.userid, DEFAULTS)).network
        backend = await BackendRepository(db).add("cluster", "https://c:5080")
        row = await BackendNetworkRepository(db).getOrCreate(net.id, backend.id)
        marked = await deleteNetwork(db, net.id, self.userid)
        self.assertEqual((marked.deleted, marked.action), (False, "DESTROY"))
        await BackendNetworkRepository(db).update(row.id, operstate="DELETED")
        done = await updateNetworkState(db, net.id)
        assert done is not None
        self.assertTrue(done.deleted)
        vlan = await createNetwork(db, netRequest("PHYSICAL_VLAN"), self.userid, DEFAULTS)
        self.assertEqual(vlan.network.link, net.link)

    async def test_reconcilePools(self) -> None:
        """
        reconcile-pools reports an address marked taken but unused and a
        live address marked free, and a MAC prefix leaked by hand; with fix
        it rebuilds the bitmaps, after which nothing is reported.
        """
        db = await self.database()
        created = await self.network(db)
        net = created.network
        port = await createPort(db, net.id, self.userid)
        self.assertEqual(await reconcilePools(db), [])
        await db.runOperation("UPDATE ips SET deleted = TRUE WHERE id = %s", (port.ips[0].id,))
        await PortRepository(db).addIP(created.subnets[0].id, net.id, "10.0.0.77", 4)

        async def leakPrefix(tx: Any) -> str:
            return await pools.allocateResource(tx, pools.MAC_PREFIX)

        leakedPrefix = await db.runInteraction(leakPrefix)
        report = await reconcilePools(db)
        self.assertEqual(
            [(r.leaked, r.unmarked, r.fixed) for r in report],
            [(("10.0.0.2",), ("10.0.0.77",), False), ((leakedPrefix,), (), False)],
        )
        self.assertEqual(report[1].pool, pools.MAC_PREFIX)
        self.assertEqual([r.fixed for r in await reconcilePools(db, fix=True)], [True, True])
        self.assertEqual(await reconcilePools(db), [])
        again = await createPort(db, net.id, self.userid)
        self.assertEqual(again.ips[0].address, "10.0.0.2")

    async def test_views(self) -> None:
        """
        The API objects carry the fields of spec §1.9/1.10/1.8: ids as
        strings, the subnet ids, the allocation pools, the fixed IPs, and a
        floating IP's port and server.
        """
        db = await self.database()
        created = await self.network(db, allocation_pools=[{"start": "10.0.0.10", "end": "10.0.0.20"}])
        net, subnet = created.network, created.subnets[0]
        view = networks.networkView(net, [subnet.id])
        self.assertEqual(
            {k: view[k] for k in ("id", "type", "status", "subnets", "public", "SNF:floating_ip_pool")},
            {
                "id": str(net.id),
                "type": "MAC_FILTERED",
                "status": "PENDING",
                "subnets": [str(subnet.id)],
                "public": False,
                "SNF:floating_ip_pool": False,
            },
        )
        self.assertTrue(view["created"].endswith("+00:00"))
        sview = networks.subnetView(subnet, await IPPoolRepository(db).listBySubnet(subnet.id))
        self.assertEqual(sview["allocation_pools"], [{"start": "10.0.0.10", "end": "10.0.0.20"}])
        self.assertEqual((sview["gateway_ip"], sview["cidr"], sview["ip_version"]), ("10.0.0.1", "10.0.0.0/24", 4))
        self.assertNotIn("enable_slaac", sview)
        port = await createPort(db, net.id, self.userid)
        pview = networks.portView(port.port, port.ips)
        self.assertEqual(pview["fixed_ips"], [{"ip_address": "10.0.0.10", "subnet": str(subnet.id)}])
        self.assertEqual((pview["status"], pview["device_id"], pview["network_id"]), ("BUILD", None, str(net.id)))
        await self.floatingNetwork(db)
        fip = await allocateFloatingIP(db, self.userid, parseFloatingIP({"floatingip": {}}))
        fview = networks.floatingIPView(fip)
        self.assertEqual(
            (fview["floating_ip_address"], fview["port_id"], fview["instance_id"]), ("192.0.2.10", None, None)
        )

    async def test_ipv6FromMac(self) -> None:
        """
        A port's IPv6 address is EUI-64 of its MAC in the network's /64;
        setting the same MAC again keeps it, a new MAC replaces it, and a
        network without IPv6 subnet gives no IPv6 address.
        """
        db = await self.database()
        v6 = parseSubnet({"subnet": {"cidr": "2001:db8::/64", "ip_version": 6}}, DEFAULTS, networkId=1)
        net = (await createNetwork(db, netRequest(), self.userid, DEFAULTS, subnets=[subnetRequest(), v6])).network
        port = await createPort(db, net.id, self.userid)
        [ip] = await networks.setPortMac(db, port.port.id, "aa:00:00:12:34:56")
        self.assertEqual((ip.address, ip.ipversion), ("2001:db8::a800:ff:fe12:3456", 6))
        [same] = await networks.setPortMac(db, port.port.id, "aa:00:00:12:34:56")
        self.assertEqual(same.id, ip.id)
        [other] = await networks.setPortMac(db, port.port.id, "aa:00:00:12:34:57")
        self.assertEqual(other.address, "2001:db8::a800:ff:fe12:3457")
        live = await PortRepository(db).ipsOfPort(port.port.id)
        self.assertEqual(sorted(i.address for i in live), ["10.0.0.2", "2001:db8::a800:ff:fe12:3457"])
        self.assertEqual((await PortRepository(db).get(port.port.id)).mac, "aa:00:00:12:34:57")  # type: ignore[union-attr]
        plain = (await self.network(db)).network
        plainPort = await createPort(db, plain.id, self.userid)
        self.assertEqual(await networks.setPortMac(db, plainPort.port.id, "aa:00:00:00:00:01"), ())
        await self.failsWith(networks.setPortMac(db, 9999, "aa:00:00:00:00:01"), NotFoundError)

    async def test_repositories(self) -> None:
        """
        The pool repositories: no resource pool before it is ensured,
        backend networks listed per backend, unknown columns refused on
        update, pools and backend networks removed per network.
        """
        db = self.makeDatabase()
        await db.startService()
        self.addCleanup(db.stopService)
        await migrate(db)
        self.assertIsNone(await ResourcePoolRepository(db).get(pools.BRIDGE))

        async def allocate(tx: Any) -> str:
            return await pools.allocateResource(tx, pools.BRIDGE)

        e = await self.failsWith(db.runInteraction(allocate), pools.PoolExhaustedError)
        self.assertIn("no bridge pool", e.message)
        user, _token = await UserRepository(db).create("u@example.org")
        created = await createNetwork(db, netRequest("CUSTOM"), user.uuid, DEFAULTS, subnets=[subnetRequest()])
        backend = await BackendRepository(db).add("cluster", "https://c:5080")
        repo = BackendNetworkRepository(db)
        row = await repo.create(created.network.id, backend.id, macPrefix="aa:00:1")
        self.assertEqual(await repo.listByBackend(backend.id), [row])
        self.assertEqual(await repo.get(created.network.id, backend.id), row)
        self.assertRaises(ValueError, repo.update, row.id, network_id=3)
        updated = await repo.update(row.id, operstate="ACTIVE", backendjobid=7, backendjobstatus="success")
        assert updated is not None
        self.assertEqual((updated.operstate, updated.backendjobid), ("ACTIVE", 7))
        self.assertEqual(await IPPoolRepository(db).deleteByNetwork(created.network.id), 1)
        self.assertEqual(await repo.deleteByNetwork(created.network.id), 1)
        self.assertIsNone(await repo.get(created.network.id, backend.id))

    async def test_ensureResourcePoolsKeepsExisting(self) -> None:
        """
        Ensuring the resource pools again leaves allocations in place.
        """
        db = await self.database()
        await self.network(db)
        await ensureResourcePools(db, macPrefixSize=4096)
        pool = await ResourcePoolRepository(db).get(pools.MAC_PREFIX)
        assert pool is not None
        bitmap = pools.Bitmap.load(pool.size, pool.available, pool.reserved)
        self.assertFalse(bitmap.isFree(1))


class SQLiteNetworkShellTests(NetworkShellMixin, TestCase):
    """
    The shell on SQLite (a file, as the embedded default).
    """

    def makeDatabase(self) -> Any:
        return openDatabase(f"sqlite:///{os.path.join(self.mktemp(), 'net.db')}", self.reactor)
