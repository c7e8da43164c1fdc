"""
Tests for L{synnefo_twisted.logic.networkops}: the Ganeti side of network
operations against the in-memory simulated cluster and SQLite.
"""

from __future__ import annotations

import time
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from synnefo_twisted.backends import BackendRegistry
from synnefo_twisted.db import models
from synnefo_twisted.db.pools import BackendNetworkRepository
from synnefo_twisted.db.repositories import (
    BackendRepository,
    NetworkRepository,
    PortRepository,
    SubnetRepository,
    UserRepository,
)
from synnefo_twisted.logic import networkops
from synnefo_twisted.logic import networks as netlogic
from synnefo_twisted.logic.networks import NetworkDefaults, NetworkRequest, parseSubnet
from synnefo_twisted.testing import InMemoryCluster, memoryDatabase

DEFAULTS = NetworkDefaults()


def _network(**fields: Any) -> models.Network:
    values: dict[str, Any] = {
        "id": 7,
        "name": "n",
        "userid": "u",
        "project": None,
        "shared_to_project": False,
        "flavor": "MAC_FILTERED",
        "mode": "bridged",
        "link": "prv0",
        "mac_prefix": "aa:00:1",
        "public": False,
        "external_router": False,
        "floating_ip_pool": False,
        "drained": False,
        "state": "ACTIVE",
        "action": None,
        "tags": '["private-filtered"]',
        "deleted": False,
        "serial_id": None,
        "created": "2026-01-01 00:00:00",
        "updated": "2026-01-01 00:00:00",
    }
    values.update(fields)
    return models.Network(**values)


def _subnet(version: int, cidr: str, gateway: str | None, dhcp: bool = True) -> models.Subnet:
    return models.Subnet(
        1, 7, "", "u", version, cidr, gateway, dhcp, True, "[]", "[]", False, False,
        "2026-01-01 00:00:00", "2026-01-01 00:00:00",
    )  # fmt: skip


class ParametersTests(SynchronousTestCase):
    def test_dualStack(self) -> None:
        """
        IPv4 and IPv6 CIDRs and gateways, the MAC prefix, the flavor's tags plus nfdhcpd and private.
        """
        address, kwargs = networkops.ganetiNetworkParameters(
            _network(), [_subnet(4, "10.0.0.0/24", "10.0.0.1"), _subnet(6, "2001:db8::/64", "2001:db8::1")]
        )
        self.assertEqual(address, "10.0.0.0/24")
        self.assertEqual(
            kwargs,
            {
                "gateway": "10.0.0.1",
                "network6": "2001:db8::/64",
                "gateway6": "2001:db8::1",
                "mac_prefix": "aa:00:10",
                "conflicts_check": False,
                "tags": ["private-filtered", "nfdhcpd", "private"],
            },
        )

    def test_noSubnet(self) -> None:
        """
        Without an IPv4 subnet Ganeti gets the dummy /29; a public IPv4 network checks conflicts; no DHCP, no nfdhcpd.
        """
        address, kwargs = networkops.ganetiNetworkParameters(_network(public=True, tags="[]"), [])
        self.assertEqual((address, kwargs["gateway"], kwargs["tags"]), ("10.0.0.0/29", None, ["public"]))
        _address, kwargs = networkops.ganetiNetworkParameters(
            _network(public=True, tags="[]"), [_subnet(4, "192.0.2.0/24", None, dhcp=False)]
        )
        self.assertEqual((kwargs["conflicts_check"], kwargs["tags"]), (True, ["public"]))


class MacPrefixTests(SynchronousTestCase):
    def test_ganetiMacPrefix(self) -> None:
        """
        Five-digit prefixes get a trailing zero (inside their space, still distinct); full ones are kept.
        """
        self.assertEqual(
            [networkops.ganetiMacPrefix(p) for p in ("aa:00:0", "aa:00:1", "aa:0f:f", "AA:00:01", None)],
            ["aa:00:00", "aa:00:10", "aa:0f:f0", "aa:00:01", None],
        )


class BackendTests(TestCase):
    async def setUp(self) -> None:  # type: ignore[override]
        self.db = await memoryDatabase(reactor)
        self.addCleanup(self.db.stopService)
        self.clock = Clock()
        self.clock.advance(time.time())
        self.sim = InMemoryCluster.create(self.clock)
        self.addCleanup(self.sim.queue.stop)
        self.backend = await BackendRepository(self.db).add("sim.ganeti.local", "http://sim", simulated=True)
        self.registry = BackendRegistry(self.db, "snf-", self.clock, clientFactory=lambda r, b: self.sim.client)
        await netlogic.ensureResourcePools(self.db)
        user, _token = await UserRepository(self.db).create("u@example.org")
        created = await netlogic.createNetwork(
            self.db,
            NetworkRequest("MAC_FILTERED", "n", None, False),
            user.uuid,
            DEFAULTS,
            subnets=[parseSubnet({"subnet": {"cidr": "10.0.0.0/29"}}, DEFAULTS, networkId=0)],
        )
        self.network = created.network

    def ops(self) -> list[dict[str, Any]]:
        return [dict(op.input) for job in sorted(self.sim.queue.jobs.values(), key=lambda j: j.id) for op in job.ops]

    async def test_ensureCreatesOnce(self) -> None:
        """
        The first call submits the create and a connect per node group and records the last job; a second call
        while they are pending returns that job without submitting again; an ACTIVE network needs no job.
        """
        jobs = await networkops.ensureNetworkActive(self.db, self.registry, self.backend, self.network)
        self.assertEqual(len(jobs), 2)
        add, connect = self.ops()
        self.assertEqual(
            (add["OP_ID"], add["network_name"], add["network"]),
            ("OP_NETWORK_ADD", f"snf-net-{self.network.id}", "10.0.0.0/29"),
        )
        self.assertEqual(
            (connect["OP_ID"], connect["network_link"], connect["depends"]),
            ("OP_NETWORK_CONNECT", "prv0", [[jobs[0], networkops.FINAL]]),
        )
        row = await BackendNetworkRepository(self.db).get(self.network.id, self.backend.id)
        assert row is not None
        self.assertEqual(
            (row.operstate, row.backendjobid, row.backendopcode), ("PENDING", jobs[1], "OP_NETWORK_CONNECT")
        )
        self.assertEqual(
            await networkops.ensureNetworkActive(self.db, self.registry, self.backend, self.network), [jobs[1]]
        )
        self.assertEqual(len(self.ops()), 2)
        # once the connect job succeeded the network is ACTIVE there, without waiting for the dispatcher
        self.clock.pump([0.1] * 20)
        self.assertEqual(await self.ensure(), [])
        row = await BackendNetworkRepository(self.db).get(self.network.id, self.backend.id)
        assert row is not None
        self.assertEqual(row.operstate, "ACTIVE")
        self.assertEqual(len(self.ops()), 2)

    def ensure(self) -> Any:
        return networkops.ensureNetworkActive(self.db, self.registry, self.backend, self.network)

    async def test_ensureRecovers(self) -> None:
        """
        A recorded job Ganeti no longer knows: a network Ganeti has connected is ACTIVE at once; one it lacks is
        submitted again.
        """
        repo = BackendNetworkRepository(self.db)
        await self.ensure()
        self.clock.pump([0.1] * 20)
        row = await repo.get(self.network.id, self.backend.id)
        assert row is not None
        await repo.update(row.id, backendjobid=987654, operstate="PENDING")
        self.assertEqual(await self.ensure(), [])
        self.assertEqual(len(self.ops()), 2)
        self.sim.cluster.networks.clear()
        await repo.update(row.id, backendjobid=987654, operstate="PENDING")
        jobs = await self.ensure()
        self.assertEqual([o["OP_ID"] for o in self.ops()[2:]], ["OP_NETWORK_ADD", "OP_NETWORK_CONNECT"])
        self.assertEqual(len(jobs), 2)

    async def test_removeFromBackends(self) -> None:
        """
        A network on a cluster is disconnected and removed there (DESTROY pending); one Ganeti does not know is
        DELETED at once and the deletion finishes.
        """
        await networkops.ensureNetworkActive(self.db, self.registry, self.backend, self.network)
        self.clock.pump([0.1] * 20)
        marked = await netlogic.deleteNetwork(self.db, self.network.id, None, admin=True)
        pending = await networkops.removeNetworkFromBackends(self.db, self.registry, marked)
        self.assertEqual((pending.deleted, pending.action), (False, "DESTROY"))
        self.assertEqual([o["OP_ID"] for o in self.ops()][-2:], ["OP_NETWORK_DISCONNECT", "OP_NETWORK_REMOVE"])
        self.clock.pump([0.1] * 20)
        self.assertNotIn(f"snf-net-{self.network.id}", self.sim.cluster.networks)
        # Ganeti no longer has it: the next removal finds nothing and finishes the deletion
        done = await networkops.removeNetworkFromBackends(self.db, self.registry, pending)
        self.assertEqual((done.deleted, done.state), (True, "DELETED"))
        self.assertEqual(await SubnetRepository(self.db).listByNetwork(self.network.id), [])
        stored = await NetworkRepository(self.db).get(self.network.id)
        assert stored is not None
        self.assertTrue(stored.deleted)

    async def test_serverPortIP(self) -> None:
        """
        The server logic's allocator takes the next free address, or the fixed one, and refuses used ones.
        """
        port = await self._port()
        self.assertEqual(
            await self.db.runInteraction(netlogic.allocateServerPortIP, self.network, port, None), "10.0.0.2"
        )
        other = await self._port()
        self.assertEqual(
            await self.db.runInteraction(netlogic.allocateServerPortIP, self.network, other, "10.0.0.6"), "10.0.0.6"
        )
        third = await self._port()
        error = await self.assertFailure(
            self.db.runInteraction(netlogic.allocateServerPortIP, self.network, third, "10.0.0.6"),
            netlogic.ConflictError,
        )
        self.assertEqual(error.field, "networks")

    async def _port(self) -> models.Port:
        return await PortRepository(self.db).create(self.network.id, userid=self.network.userid)
