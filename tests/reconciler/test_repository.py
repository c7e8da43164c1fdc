"""
Tests for L{synnefo_twisted.db.reconcile.ReconcileRepository} on SQLite
(and, in C{tests.reconciler.test_reconcile_postgres}, on PostgreSQL).
"""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from synnefo_twisted.db.reconcile import ReconcileRepository
from synnefo_twisted.db.repositories import NetworkRepository, PortRepository, SubnetRepository
from tests.reconciler.support import ClusterMixin


class RepositoryMixin(ClusterMixin):
    async def test_serversOfBackend(self) -> None:
        """
        Live servers of the backend in id order, within the id range, with
        flavor, ports (IPv4 address) and tags; deleted ones are left out.
        """
        ids = await self.plainServers(4)
        await self.servers.update(ids[1], deleted=True)
        network = await NetworkRepository(self.db).create("n", "CUSTOM", link="br0")
        subnet = await SubnetRepository(self.db).create(network.id, "10.0.0.0/24", 4)
        ports = PortRepository(self.db)
        port = await ports.create(network.id, serverId=ids[2], mac="aa:00:00:00:00:01", state="ACTIVE")
        await ports.addIP(subnet.id, network.id, "10.0.0.5", 4, portId=port.id)
        await self.servers.addTag(ids[2], "web", status="ACTIVE")
        repo = ReconcileRepository(self.db)
        every = await repo.serversOfBackend(self.backend.id)
        self.assertEqual([s.server.id for s in every], [ids[0], ids[2], ids[3]])
        third = every[1]
        self.assertEqual((third.cpu, third.ram, third.disk), (2, 1024, 10))
        self.assertEqual(
            [(p.id, p.mac, p.ipv4, p.networkId) for p in third.ports],
            [(port.id, "aa:00:00:00:00:01", "10.0.0.5", network.id)],
        )
        self.assertEqual(dict(third.tags), {"web": "ACTIVE"})
        ranged = await repo.serversOfBackend(self.backend.id, ids[1], ids[2])
        self.assertEqual([s.server.id for s in ranged], [ids[2]])
        self.assertEqual(await repo.serverIds(self.backend.id), [ids[0], ids[2], ids[3]])
        self.assertEqual(set(await repo.deletedAmong([ids[0], ids[1], 999])), {ids[1]})

    async def test_clearPendingTask(self) -> None:
        """
        The task is cleared only while it is still the one found.
        """
        (serverId,) = await self.plainServers(1)
        await self.servers.update(serverId, task="START", task_job_id=5)
        repo = ReconcileRepository(self.db)
        self.assertFalse(await repo.clearPendingTask(serverId, 4))
        self.assertTrue(await repo.clearPendingTask(serverId, 5))
        server = await self.servers.get(serverId)
        assert server is not None
        self.assertEqual((server.task, server.task_job_id), (None, None))


class SQLiteRepositoryTests(RepositoryMixin, TestCase):
    """
    On SQLite.
    """
