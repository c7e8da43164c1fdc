# -*- test-case-name: tests.logic.test_network_shell -*-
"""
Repositories of the allocation tables: C{ip_pools} (one row per allocation
pool of an IPv4 subnet), C{resource_pools} (the MAC-prefix and bridge
pools) and C{backend_networks} (a network's state on each Ganeti backend).

The bitmaps are opaque bytes here; L{synnefo_twisted.logic.pools} reads
and flips them. The C{lock*} methods take row locks and so belong inside
an interaction (a repository built on an L{ITransaction}).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from synnefo_twisted.db import models
from synnefo_twisted.db.models import columns
from synnefo_twisted.db.repositories import Rows, _Repository

__all__ = ["BackendNetworkRepository", "IPPoolRepository", "ResourcePoolRepository"]


class IPPoolRepository(_Repository):
    """
    The IPv4 allocation pools of subnets.
    """

    _cols = columns(models.IPPool)
    _prefixed = ", ".join(f"p.{c.strip()}" for c in columns(models.IPPool).split(","))

    def create(
        self, subnetId: int, base: str, size: int, offset: int, available: bytes, reserved: bytes
    ) -> Deferred[models.IPPool]:
        d = self._query(
            "INSERT INTO ip_pools (subnet_id, base, size, pool_offset, available, reserved) "
            f"VALUES (%s, %s, %s, %s, %s, %s) RETURNING {self._cols}",
            (subnetId, base, size, offset, available, reserved),
        )
        return d.addCallback(lambda rows: models.IPPool(*rows[0]))

    def listBySubnet(self, subnetId: int) -> Deferred[list[models.IPPool]]:
        return self._many(
            models.IPPool, f"SELECT {self._cols} FROM ip_pools WHERE subnet_id = %s ORDER BY id", (subnetId,)
        )

    def listByNetwork(self, networkId: int) -> Deferred[list[models.IPPool]]:
        """
        The pools of the network's live IPv4 subnet, in order.
        """
        return self._many(models.IPPool, self._byNetwork(""), (networkId,))

    def lockByNetwork(self, networkId: int) -> Deferred[list[models.IPPool]]:
        """
        As L{listByNetwork}, locking the pool rows until the transaction
        ends (always in id order, so that lockers cannot deadlock).
        """
        return self._many(models.IPPool, self._byNetwork(" FOR UPDATE OF p"), (networkId,))

    def _byNetwork(self, lock: str) -> str:
        return (
            f"SELECT {self._prefixed} FROM ip_pools p JOIN subnets s ON s.id = p.subnet_id "
            f"WHERE s.network_id = %s AND s.ipversion = 4 AND s.deleted = FALSE ORDER BY p.id{lock}"
        )

    def lockAll(self) -> Deferred[list[models.IPPool]]:
        """
        Every pool of a live IPv4 subnet, locked, in id order.
        """
        return self._many(
            models.IPPool,
            f"SELECT {self._prefixed} FROM ip_pools p JOIN subnets s ON s.id = p.subnet_id "
            "WHERE s.ipversion = 4 AND s.deleted = FALSE ORDER BY p.id FOR UPDATE OF p",
        )

    def liveAddresses(self, subnetId: int) -> Deferred[list[str]]:
        """
        The addresses of the subnet's live (not deleted) IP rows.
        """
        d = self._query("SELECT address FROM ips WHERE subnet_id = %s AND deleted = FALSE", (subnetId,))
        return d.addCallback(lambda rows: [row[0] for row in rows])

    def store(self, poolId: int, available: bytes, reserved: bytes) -> Deferred[None]:
        d = self._query(
            "UPDATE ip_pools SET available = %s, reserved = %s WHERE id = %s", (available, reserved, poolId)
        )
        return d.addCallback(lambda _: None)

    def deleteByNetwork(self, networkId: int) -> Deferred[int]:
        d = self._query(
            "DELETE FROM ip_pools WHERE subnet_id IN (SELECT id FROM subnets WHERE network_id = %s) RETURNING id",
            (networkId,),
        )
        return d.addCallback(len)


class ResourcePoolRepository(_Repository):
    """
    The MAC-prefix and bridge pools (one row per kind).
    """

    _cols = columns(models.ResourcePool)

    def ensure(
        self, kind: str, base: str, size: int, available: bytes, reserved: bytes
    ) -> Deferred[models.ResourcePool]:
        """
        Create the pool of C{kind} unless it exists (then it is left as it
        is); Deferred with the stored pool.
        """

        async def ensure(tx: Any) -> models.ResourcePool:
            await tx.execute(
                "INSERT INTO resource_pools (kind, base, size, available, reserved) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (kind) DO NOTHING",
                (kind, base, size, available, reserved),
            )
            rows: Rows = await tx.execute(f"SELECT {self._cols} FROM resource_pools WHERE kind = %s", (kind,))
            return models.ResourcePool(*rows[0])

        return self._atomic(ensure)

    def get(self, kind: str) -> Deferred[models.ResourcePool | None]:
        return self._one(models.ResourcePool, f"SELECT {self._cols} FROM resource_pools WHERE kind = %s", (kind,))

    def lock(self, kind: str) -> Deferred[models.ResourcePool | None]:
        return self._one(
            models.ResourcePool, f"SELECT {self._cols} FROM resource_pools WHERE kind = %s FOR UPDATE", (kind,)
        )

    def store(self, poolId: int, available: bytes, reserved: bytes) -> Deferred[None]:
        d = self._query(
            "UPDATE resource_pools SET available = %s, reserved = %s WHERE id = %s", (available, reserved, poolId)
        )
        return d.addCallback(lambda _: None)


class BackendNetworkRepository(_Repository):
    """
    A network's presence and state on each backend.
    """

    _cols = columns(models.BackendNetwork)

    def create(
        self, networkId: int, backendId: int, *, operstate: str = "PENDING", macPrefix: str | None = None
    ) -> Deferred[models.BackendNetwork]:
        d = self._query(
            "INSERT INTO backend_networks (network_id, backend_id, operstate, mac_prefix) "
            f"VALUES (%s, %s, %s, %s) RETURNING {self._cols}",
            (networkId, backendId, operstate, macPrefix),
        )
        return d.addCallback(lambda rows: models.BackendNetwork(*rows[0]))

    def getOrCreate(
        self, networkId: int, backendId: int, *, macPrefix: str | None = None
    ) -> Deferred[models.BackendNetwork]:
        """
        The row of (network, backend), created PENDING when missing; safe
        when two callers race (the loser reads the winner's row).
        """

        async def getOrCreate(tx: Any) -> models.BackendNetwork:
            await tx.execute(
                "INSERT INTO backend_networks (network_id, backend_id, mac_prefix) VALUES (%s, %s, %s) "
                "ON CONFLICT (network_id, backend_id) DO NOTHING",
                (networkId, backendId, macPrefix),
            )
            rows: Rows = await tx.execute(
                f"SELECT {self._cols} FROM backend_networks WHERE network_id = %s AND backend_id = %s",
                (networkId, backendId),
            )
            return models.BackendNetwork(*rows[0])

        return self._atomic(getOrCreate)

    def get(self, networkId: int, backendId: int) -> Deferred[models.BackendNetwork | None]:
        return self._one(
            models.BackendNetwork,
            f"SELECT {self._cols} FROM backend_networks WHERE network_id = %s AND backend_id = %s",
            (networkId, backendId),
        )

    def listByNetwork(self, networkId: int) -> Deferred[list[models.BackendNetwork]]:
        return self._many(
            models.BackendNetwork,
            f"SELECT {self._cols} FROM backend_networks WHERE network_id = %s ORDER BY backend_id",
            (networkId,),
        )

    def listByBackend(self, backendId: int) -> Deferred[list[models.BackendNetwork]]:
        return self._many(
            models.BackendNetwork,
            f"SELECT {self._cols} FROM backend_networks WHERE backend_id = %s ORDER BY network_id",
            (backendId,),
        )

    def update(self, backendNetworkId: int, **fields: object) -> Deferred[models.BackendNetwork | None]:
        allowed = (
            "operstate",
            "backendjobid",
            "backendopcode",
            "backendjobstatus",
            "backendlogmsg",
            "backendtime",
            "mac_prefix",
            "jobtime",
        )
        return self._update(models.BackendNetwork, "backend_networks", backendNetworkId, fields, allowed)

    def deleteByNetwork(self, networkId: int) -> Deferred[int]:
        d = self._query("DELETE FROM backend_networks WHERE network_id = %s RETURNING id", (networkId,))
        return d.addCallback(len)
