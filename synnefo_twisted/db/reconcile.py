# -*- test-case-name: tests.logic.test_reconcile_shell -*-
"""
What reconciliation reads (and the one thing it writes directly): the live
servers of a backend with their flavor, ports, IPv4 addresses and tags, in
a fixed number of queries whatever the number of servers (one per table,
joined on the backend), and the live networks with one backend's rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from twisted.internet.defer import Deferred

from synnefo_twisted.db._sql import parseTimestamp
from synnefo_twisted.db.models import BackendNetwork, Network, Server, columns
from synnefo_twisted.db.repositories import QuotaRepository, _Repository
from synnefo_twisted.logic.reconcile import DBPort, DBServer

_CHUNK = 500


def _scols(alias: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in columns(Server).split(","))


class ReconcileRepository(_Repository):
    """
    Reads for L{synnefo_twisted.logic.reconcile}.
    """

    def serversOfBackend(
        self, backendId: int, low: int | None = None, high: int | None = None
    ) -> Deferred[list[DBServer]]:
        """
        The live servers of a backend (with ids from C{low} to C{high}
        inclusive, when given) as L{DBServer}s in id order, read in one
        transaction with four queries whatever their number.
        """
        return self._atomic(_serversOfBackend, backendId, low, high)

    def deletedAmong(self, serverIds: Sequence[int]) -> Deferred[dict[int, datetime]]:
        """
        Which of C{serverIds} are rows of deleted servers, with the time
        each row last changed.
        """
        return self._atomic(_deletedAmong, list(serverIds))

    def serverIds(self, backendId: int) -> Deferred[list[int]]:
        """
        The ids of a backend's live servers, in order.
        """
        d = self._query("SELECT id FROM servers WHERE backend_id = %s AND deleted = FALSE ORDER BY id", (backendId,))
        return d.addCallback(lambda rows: [int(r[0]) for r in rows])

    def clearPendingTask(self, serverId: int, jobId: int) -> Deferred[bool]:
        """
        Clear the task of a server whose task job is over, unless another
        task has replaced it meanwhile; True when cleared.
        """
        d = self._query(
            f"UPDATE servers SET task = NULL, task_job_id = NULL, updated = {self._now()} "
            "WHERE id = %s AND task_job_id = %s RETURNING id",
            (serverId, jobId),
        )
        return d.addCallback(lambda rows: bool(rows))

    def abandonJoblessTask(self, serverId: int, task: str) -> Deferred[bool]:
        """
        Clear a task that never got its job, as the API does when its
        submission fails: the task and action go and the action's quota
        commission (the server's C{serial_id}, when still pending) is
        rejected, in one transaction, unless the task got a job or was
        replaced meanwhile; True when cleared.
        """

        async def abandon(tx: Any) -> bool:
            rows = await tx.execute(
                f"UPDATE servers SET task = NULL, action = NULL, updated = {self._now()} "
                "WHERE id = %s AND task = %s AND task_job_id IS NULL RETURNING serial_id",
                (serverId, task),
            )
            if not rows:
                return False
            if rows[0][0] is not None:
                await QuotaRepository(tx).reject(int(rows[0][0]))
            return True

        return self._atomic(abandon)

    def liveNetworks(self) -> Deferred[list[Network]]:
        return self._many(Network, f"SELECT {columns(Network)} FROM networks WHERE deleted = FALSE ORDER BY id")

    def backendNetworks(self, backendId: int) -> Deferred[dict[int, BackendNetwork]]:
        d = self._many(
            BackendNetwork,
            f"SELECT {columns(BackendNetwork)} FROM backend_networks WHERE backend_id = %s",
            (backendId,),
        )
        return d.addCallback(lambda rows: {r.network_id: r for r in rows})


async def _serversOfBackend(tx: Any, backendId: int, low: int | None, high: int | None) -> list[DBServer]:
    cond = "s.backend_id = %s AND s.deleted = FALSE"
    p: tuple[Any, ...] = (backendId,)
    if low is not None:
        cond += " AND s.id >= %s"
        p += (low,)
    if high is not None:
        cond += " AND s.id <= %s"
        p += (high,)
    rows: list[tuple[Server, tuple[Any, ...]]] = []
    ports: dict[int, list[DBPort]] = {}
    tags: dict[int, dict[str, str]] = {}
    for row in await tx.execute(
        f"SELECT {_scols('s')}, f.cpu, f.ram, f.disk, f.volume_type_id FROM servers s "
        f"JOIN flavors f ON f.id = s.flavor_id WHERE {cond} ORDER BY s.id",
        p,
    ):
        n = len(row) - 4
        rows.append((Server(*row[:n]), tuple(row[n:])))
    ipv4: dict[int, str] = {}
    for portId, address in await tx.execute(
        "SELECT i.port_id, i.address FROM ips i JOIN ports p ON p.id = i.port_id "
        f"JOIN servers s ON s.id = p.server_id WHERE {cond} AND i.deleted = FALSE AND i.ipversion = 4 "
        "ORDER BY i.id",
        p,
    ):
        ipv4.setdefault(int(portId), address)
    for portId, serverId, networkId, mac, firewall, state, created in await tx.execute(
        "SELECT p.id, p.server_id, p.network_id, p.mac, p.firewall_profile, p.state, p.created FROM ports p "
        f"JOIN servers s ON s.id = p.server_id WHERE {cond} ORDER BY p.id",
        p,
    ):
        createdAt = parseTimestamp(created)
        assert createdAt is not None
        ports.setdefault(int(serverId), []).append(
            DBPort(int(portId), int(networkId), mac, ipv4.get(int(portId)), firewall, state, createdAt)
        )
    for serverId, tag, status in await tx.execute(
        f"SELECT t.server_id, t.tag, t.status FROM server_tags t JOIN servers s ON s.id = t.server_id WHERE {cond}",
        p,
    ):
        tags.setdefault(int(serverId), {})[tag] = status
    return [
        DBServer(
            server=server,
            cpu=int(extra[0]),
            ram=int(extra[1]),
            disk=int(extra[2]),
            volumeTypeId=int(extra[3]),
            ports=tuple(ports.get(server.id, ())),
            tags=tags.get(server.id, {}),
        )
        for server, extra in rows
    ]


async def _deletedAmong(tx: Any, serverIds: list[int]) -> dict[int, datetime]:
    out: dict[int, datetime] = {}
    for start in range(0, len(serverIds), _CHUNK):
        chunk = tuple(serverIds[start : start + _CHUNK])
        for serverId, updated in await tx.execute(
            f"SELECT id, updated FROM servers WHERE deleted = TRUE AND id IN ({', '.join(['%s'] * len(chunk))})", chunk
        ):
            moment = parseTimestamp(updated)
            assert moment is not None
            out[int(serverId)] = moment
    return out
