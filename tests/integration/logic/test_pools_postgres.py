"""
The network shell on real PostgreSQL (C{realservices.PG_URL}), each test in
a schema of its own, with a pool of several connections so that the
concurrent tests really run transactions side by side: 50 concurrent port
creations on a pool of 50 addresses get 50 distinct addresses, then a clear
exhaustion error; concurrent MAC prefixes and floating IPs stay distinct.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.trial.unittest import TestCase

from synnefo_twisted.db import IntegrityError, openDatabase
from synnefo_twisted.db.pools import IPPoolRepository
from synnefo_twisted.logic import pools
from synnefo_twisted.logic.networks import createPort
from tests.integration import realservices
from tests.integration.db.test_postgres import SchemaMixin, withSearchPath
from tests.logic.test_network_shell import NetworkShellMixin


class PostgresNetworkShellTests(SchemaMixin, NetworkShellMixin, TestCase):
    """
    The shell's behaviour and race-freedom on PostgreSQL.
    """

    def makeDatabase(self) -> Any:
        return openDatabase(withSearchPath(realservices.PG_URL, self.makeSchema()), self.reactor, poolSize=10)

    async def test_lockSerialisesAllocators(self) -> None:
        """
        While one transaction holds the pool rows of a network, another
        allocation on the same network waits, then gets the next address
        rather than the same one.
        """
        db = await self.database()
        net = (await self.network(db)).network
        release: Deferred[None] = Deferred()
        held: list[str] = []

        async def holder(tx: Any) -> str:
            _subnet, address = await pools.allocateIP(tx, net.id)
            held.append(address)
            await release
            return address

        first = db.runInteraction(holder)
        self.addCleanup(lambda: None if release.called else release.callback(None))
        while not held:
            await Deferred.fromCoroutine(_tick(self.reactor))
        second = createPort(db, net.id, self.userid)
        finished: list[object] = []

        def record(result: object) -> object:
            finished.append(result)
            return result

        second.addBoth(record)
        for _ in range(10):
            await Deferred.fromCoroutine(_tick(self.reactor))
        self.assertEqual(finished, [])
        release.callback(None)
        self.assertEqual(await first, "10.0.0.2")
        port = await second
        self.assertEqual(port.ips[0].address, "10.0.0.3")

    async def test_withoutTheLockTheRaceIsReal(self) -> None:
        """
        Negative control: with the pool rows read without FOR UPDATE, 50
        concurrent allocations collide (so the concurrent test above can
        fail), and the unique index on (network, address) still refuses
        every duplicate: the addresses that were handed out are distinct.
        """
        self.patch(IPPoolRepository, "lockByNetwork", IPPoolRepository.listByNetwork)
        db = await self.database()
        net = (await self.network(db, allocation_pools=[{"start": "10.0.0.10", "end": "10.0.0.59"}])).network
        results = await gatherResults(
            [createPort(db, net.id, self.userid).addErrback(lambda f: f.trap(IntegrityError)) for _ in range(50)]
        )
        collisions = [r for r in results if r is IntegrityError]
        addresses = [r.ips[0].address for r in results if r is not IntegrityError]
        self.assertGreater(len(collisions), 0)
        self.assertEqual(len(addresses), len(set(addresses)))

    async def test_concurrentAcrossNetworks(self) -> None:
        """
        Concurrent allocations on two networks neither block each other
        into a deadlock nor collide: each network hands out distinct
        addresses.
        """
        db = await self.database()
        a = (await self.network(db)).network
        b = (await self.network(db)).network
        created = await gatherResults(
            [createPort(db, (a if i % 2 else b).id, self.userid) for i in range(40)], consumeErrors=True
        )
        byNetwork: dict[int, list[str]] = {}
        for c in created:
            byNetwork.setdefault(c.port.network_id, []).append(c.ips[0].address)
        self.assertEqual(sorted(len(set(v)) for v in byNetwork.values()), [20, 20])


async def _tick(reactor: Any) -> None:
    d: Deferred[None] = Deferred()
    reactor.callLater(0.02, d.callback, None)
    await d
