# -*- test-case-name: tests.manage.test_servers -*-
"""
The administrative queries of snf-manage: listings across every user with
filters, and the few updates no API path needs (renaming a subnet,
reserving addresses of an IP pool, quota holdings of a user).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from synnefo_twisted.db import models
from synnefo_twisted.db.models import columns
from synnefo_twisted.db.repositories import _Repository

__all__ = ["AdminQueries"]


def _where(conditions: list[str]) -> str:
    return (" WHERE " + " AND ".join(conditions)) if conditions else ""


class AdminQueries(_Repository):
    """
    Listings for operators (every user's objects).
    """

    def servers(
        self,
        *,
        userid: str | None = None,
        backendId: int | None = None,
        includeDeleted: bool = False,
    ) -> Deferred[list[models.Server]]:
        conditions: list[str] = [] if includeDeleted else ["deleted = FALSE"]
        params: list[Any] = []
        if userid is not None:
            conditions.append("userid = %s")
            params.append(userid)
        if backendId is not None:
            conditions.append("backend_id = %s")
            params.append(backendId)
        return self._many(
            models.Server,
            f"SELECT {columns(models.Server)} FROM servers{_where(conditions)} ORDER BY id",
            tuple(params),
        )

    def subnets(self, *, networkId: int | None = None, includeDeleted: bool = False) -> Deferred[list[models.Subnet]]:
        conditions: list[str] = [] if includeDeleted else ["deleted = FALSE"]
        params: tuple[Any, ...] = ()
        if networkId is not None:
            conditions.append("network_id = %s")
            params = (networkId,)
        return self._many(
            models.Subnet, f"SELECT {columns(models.Subnet)} FROM subnets{_where(conditions)} ORDER BY id", params
        )

    def renameSubnet(self, subnetId: int, name: str) -> Deferred[models.Subnet | None]:
        return self._update(models.Subnet, "subnets", subnetId, {"name": name}, ("name",))

    def ports(
        self, *, networkId: int | None = None, serverId: int | None = None, userid: str | None = None
    ) -> Deferred[list[models.Port]]:
        conditions: list[str] = []
        params: list[Any] = []
        for column, value in (("network_id", networkId), ("server_id", serverId), ("userid", userid)):
            if value is not None:
                conditions.append(f"{column} = %s")
                params.append(value)
        return self._many(
            models.Port, f"SELECT {columns(models.Port)} FROM ports{_where(conditions)} ORDER BY id", tuple(params)
        )

    def ips(
        self,
        *,
        floating: bool | None = None,
        userid: str | None = None,
        networkId: int | None = None,
        portId: int | None = None,
        includeDeleted: bool = False,
    ) -> Deferred[list[models.IPAddress]]:
        conditions: list[str] = [] if includeDeleted else ["deleted = FALSE"]
        params: list[Any] = []
        if floating is not None:
            conditions.append("floating_ip = %s")
            params.append(floating)
        for column, value in (("userid", userid), ("network_id", networkId), ("port_id", portId)):
            if value is not None:
                conditions.append(f"{column} = %s")
                params.append(value)
        return self._many(
            models.IPAddress,
            f"SELECT {columns(models.IPAddress)} FROM ips{_where(conditions)} ORDER BY id",
            tuple(params),
        )

    def ip(self, ipId: int) -> Deferred[models.IPAddress | None]:
        return self._one(models.IPAddress, f"SELECT {columns(models.IPAddress)} FROM ips WHERE id = %s", (ipId,))

    def ipPools(self) -> Deferred[list[models.IPPool]]:
        return self._many(models.IPPool, f"SELECT {columns(models.IPPool)} FROM ip_pools ORDER BY id")

    def ipPool(self, poolId: int) -> Deferred[models.IPPool | None]:
        return self._one(models.IPPool, f"SELECT {columns(models.IPPool)} FROM ip_pools WHERE id = %s", (poolId,))

    def resourcePools(self) -> Deferred[list[models.ResourcePool]]:
        return self._many(models.ResourcePool, f"SELECT {columns(models.ResourcePool)} FROM resource_pools ORDER BY id")

    def resizeResourcePool(
        self, poolId: int, size: int, available: bytes, reserved: bytes
    ) -> Deferred[models.ResourcePool | None]:
        """
        Store a MAC-prefix or bridge pool with a new size (and the bitmaps
        for it); inside the transaction that locked the pool.
        """
        return self._one(
            models.ResourcePool,
            "UPDATE resource_pools SET size = %s, available = %s, reserved = %s WHERE id = %s "
            f"RETURNING {columns(models.ResourcePool)}",
            (size, available, reserved, poolId),
        )

    def quotas(self, *, projectId: int | None = None, userId: int | None = None) -> Deferred[list[models.Quota]]:
        conditions: list[str] = []
        params: list[Any] = []
        if projectId is not None:
            conditions.append("project_id = %s")
            params.append(projectId)
        if userId is not None:
            conditions.append("user_id = %s")
            params.append(userId)
        return self._many(
            models.Quota,
            f"SELECT {columns(models.Quota)} FROM quotas{_where(conditions)} ORDER BY project_id, user_id IS NOT NULL, user_id, resource",
            tuple(params),
        )
