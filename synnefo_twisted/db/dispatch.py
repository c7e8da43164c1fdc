# -*- test-case-name: tests.logic.test_dispatchapply -*-
"""
The rows the dispatcher reads and writes, inside the transaction of one
message (L{synnefo_twisted.logic.dispatchapply}): the server or network row
locked with C{SELECT ... FOR UPDATE}, then the few statements the state
machine's decision needs. Kept to the minimum per message: a status
message costs one locked SELECT and one UPDATE.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred

from synnefo_twisted.db.models import BackendNetwork, Flavor, Network, Port, Server, Volume, columns
from synnefo_twisted.db.repositories import ServerRepository, _dbValue, _Repository

if TYPE_CHECKING:
    from synnefo_twisted.logic.dispatch import RowUpdate

Rows = list[tuple[Any, ...]]

_SERVER_COLUMNS = frozenset(ServerRepository.UPDATABLE)
_PORT_COLUMNS = frozenset({"state", "mac", "idx", "firewall_profile"})
_VOLUME_COLUMNS = frozenset({"status", "idx", "size", "deleted"})
_BACKEND_NETWORK_COLUMNS = frozenset(
    {"operstate", "backendjobid", "backendopcode", "backendjobstatus", "backendlogmsg", "backendtime", "jobtime"}
)


def _assignments(fields: Mapping[str, object], allowed: frozenset[str], table: str) -> tuple[str, list[object]]:
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise ValueError(f"cannot update {table}.{', '.join(unknown)}")
    return ", ".join(f"{name} = %s" for name in fields), [_dbValue(v) for v in fields.values()]


class DispatchRepository(_Repository):
    """
    Built on the L{ITransaction} of one message.
    """

    _serverCols = columns(Server)
    _portCols = columns(Port)
    _volumeCols = columns(Volume)
    _bnCols = columns(BackendNetwork)

    # -- servers ------------------------------------------------------------------------------

    def lockServer(self, serverId: int) -> Deferred[Server | None]:
        return self._one(Server, f"SELECT {self._serverCols} FROM servers WHERE id = %s FOR UPDATE", (serverId,))

    def updateServer(self, serverId: int, fields: Mapping[str, object]) -> Deferred[None]:
        """
        Write some of L{ServerRepository.UPDATABLE} (and C{updated}).
        """
        sets, params = _assignments(fields, _SERVER_COLUMNS, "servers")
        d = self._query(f"UPDATE servers SET {sets}, updated = {self._now()} WHERE id = %s", (*params, serverId))
        return d.addCallback(lambda _: None)

    def applyRowUpdate(self, update: RowUpdate) -> Deferred[bool]:
        """
        Apply a L{RowUpdate} in one statement (its own transaction when run
        on the database; the UPDATE locks the row): each register written
        only if the message is newer than its stamp, nothing at all when
        the server is deleted or, for a final status, has a task this job
        may be (those take the full path). Deferred True when something
        was written; False: nothing to write, or the full path must decide.
        """
        newer = "({col} IS NULL OR {col} < %(t)s)"
        jobNewer = newer.format(col="jobtime")
        params: dict[str, object] = {"t": update.eventTime, "id": update.serverId, "job": update.jobId}
        sets = []
        for column, value in update.jobFields.items():
            if column == "jobtime":
                continue
            params[column] = value
            sets.append(f"{column} = CASE WHEN {jobNewer} THEN %({column})s ELSE {column} END")
        sets.append(f"jobtime = CASE WHEN {jobNewer} THEN %(t)s ELSE jobtime END")
        wanted = [jobNewer]
        if update.backendtime:
            btNewer = newer.format(col="backendtime")
            sets.append(f"backendtime = CASE WHEN {btNewer} THEN %(t)s ELSE backendtime END")
            wanted.append(btNewer)
        if update.operstate is not None:
            stNewer = newer.format(col="statetime")
            params["operstate"] = update.operstate
            sets.append(f"operstate = CASE WHEN {stNewer} THEN %(operstate)s ELSE operstate END")
            sets.append(f"statetime = CASE WHEN {stNewer} THEN %(t)s ELSE statetime END")
            wanted.append(stNewer)
        where = "id = %(id)s AND deleted = FALSE AND (" + " OR ".join(wanted) + ")"
        if update.final:
            where += " AND (task IS NULL OR (task_job_id IS NOT NULL AND task_job_id <> %(job)s))"
        d = self._query(
            f"UPDATE servers SET {', '.join(sets)}, updated = {self._now()} WHERE {where} RETURNING id", params
        )
        return d.addCallback(bool)

    def recordSubmittedJob(
        self, serverId: int, jobId: int, *, backendJob: bool = False, retake: bool = False
    ) -> Deferred[Server | None]:
        """
        Record the job the API just submitted for the server's task, without
        clobbering what the dispatcher may already have written: C{task_job_id}
        only while the task is still pending and has no job (with C{retake},
        for a repeated destroy: while the task is pending, whatever its job),
        and (with C{backendJob}, for a create) C{backendjobid} only while no
        message was applied. Deferred with the server.
        """
        pending = "task IS NOT NULL" if retake else "task IS NOT NULL AND task_job_id IS NULL"
        sets = f"task_job_id = CASE WHEN {pending} THEN %s ELSE task_job_id END"
        params: list[object] = [jobId]
        if backendJob:
            sets += ", backendjobid = CASE WHEN jobtime IS NULL THEN %s ELSE backendjobid END"
            params.append(jobId)
        return self._one(
            Server,
            f"UPDATE servers SET {sets}, updated = {self._now()} WHERE id = %s RETURNING {self._serverCols}",
            (*params, serverId),
        )

    def flavorLike(self, flavorId: int, cpu: int, ram: int) -> Deferred[int | None]:
        """
        The id of the flavor with C{cpu} and C{ram} (-1: the current one's)
        and the disk and volume type of flavor C{flavorId}; None when none.
        """

        async def find(tx: Any) -> int | None:
            rows = await tx.execute(f"SELECT {columns(Flavor)} FROM flavors WHERE id = %s", (flavorId,))
            if not rows:
                return None
            current = Flavor(*rows[0])
            wantCpu = current.cpu if cpu < 0 else cpu
            wantRam = current.ram if ram < 0 else ram
            if (wantCpu, wantRam) == (current.cpu, current.ram):
                return current.id
            found = await tx.execute(
                "SELECT id FROM flavors WHERE cpu = %s AND ram = %s AND disk = %s AND volume_type_id = %s "
                "ORDER BY deleted, id",
                (wantCpu, wantRam, current.disk, current.volume_type_id),
            )
            return int(found[0][0]) if found else None

        return self._atomic(find)

    def ports(self, serverId: int) -> Deferred[list[Port]]:
        return self._many(Port, f"SELECT {self._portCols} FROM ports WHERE server_id = %s ORDER BY id", (serverId,))

    def updatePort(self, portId: int, fields: Mapping[str, object]) -> Deferred[None]:
        sets, params = _assignments(fields, _PORT_COLUMNS, "ports")
        d = self._query(f"UPDATE ports SET {sets}, updated = {self._now()} WHERE id = %s", (*params, portId))
        return d.addCallback(lambda _: None)

    def markPorts(self, serverId: int, state: str) -> Deferred[None]:
        d = self._query(
            f"UPDATE ports SET state = %s, updated = {self._now()} WHERE server_id = %s AND state != %s",
            (state, serverId, state),
        )
        return d.addCallback(lambda _: None)

    def volumes(self, serverId: int) -> Deferred[list[Volume]]:
        return self._many(
            Volume, f"SELECT {self._volumeCols} FROM volumes WHERE server_id = %s ORDER BY id", (serverId,)
        )

    def updateVolume(self, volumeId: int, fields: Mapping[str, object]) -> Deferred[None]:
        sets, params = _assignments(fields, _VOLUME_COLUMNS, "volumes")
        d = self._query(f"UPDATE volumes SET {sets}, updated = {self._now()} WHERE id = %s", (*params, volumeId))
        return d.addCallback(lambda _: None)

    def markVolumes(self, serverId: int, status: str, deleted: bool = False) -> Deferred[None]:
        """
        Every live volume of the server gets C{status} (and C{deleted}).
        """
        d = self._query(
            f"UPDATE volumes SET status = %s, deleted = %s, updated = {self._now()} "
            "WHERE server_id = %s AND deleted = FALSE",
            (status, deleted, serverId),
        )
        return d.addCallback(lambda _: None)

    def setTagsStatus(self, serverId: int, status: str) -> Deferred[None]:
        d = self._query(
            "UPDATE server_tags SET status = %s WHERE server_id = %s AND status != %s", (status, serverId, status)
        )
        return d.addCallback(lambda _: None)

    def deleteTags(self, serverId: int, tags: Iterable[str] | None = None) -> Deferred[None]:
        """
        Delete C{tags} of the server (all of them when None).
        """
        if tags is None:
            d = self._query("DELETE FROM server_tags WHERE server_id = %s", (serverId,))
            return d.addCallback(lambda _: None)

        async def delete(tx: Any) -> None:
            for tag in tags:
                await tx.execute("DELETE FROM server_tags WHERE server_id = %s AND tag = %s", (serverId, tag))

        return self._atomic(delete)

    def activateTags(self, serverId: int, tags: Iterable[str]) -> Deferred[None]:
        async def add(tx: Any) -> None:
            for tag in tags:
                await tx.execute(
                    "INSERT INTO server_tags (server_id, tag, status) VALUES (%s, %s, 'ACTIVE') "
                    "ON CONFLICT (server_id, tag) DO UPDATE SET status = 'ACTIVE'",
                    (serverId, tag),
                )

        return self._atomic(add)

    def addDiagnosticOnce(
        self,
        serverId: int,
        source: str,
        level: str,
        message: str,
        details: str | None,
        sourceDate: datetime,
    ) -> Deferred[bool]:
        """
        Record a diagnostic unless the same one (source, date, message) is
        there already; Deferred True when recorded.
        """

        async def add(tx: Any) -> bool:
            rows = await tx.execute(
                "SELECT id FROM diagnostics WHERE server_id = %s AND source_date = %s AND source = %s AND message = %s",
                (serverId, sourceDate, source, message),
            )
            if rows:
                return False
            await tx.execute(
                "INSERT INTO diagnostics (server_id, source, level, message, details, source_date) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (serverId, source, level, message, details, sourceDate),
            )
            return True

        return self._atomic(add)

    # -- networks -------------------------------------------------------------------------------

    def lockNetwork(self, networkId: int) -> Deferred[Network | None]:
        return self._one(Network, f"SELECT {columns(Network)} FROM networks WHERE id = %s FOR UPDATE", (networkId,))

    def backendIdByCluster(self, clustername: str) -> Deferred[int | None]:
        d = self._query("SELECT id FROM backends WHERE clustername = %s", (clustername,))
        return d.addCallback(lambda rows: int(rows[0][0]) if rows else None)

    def lockBackendNetwork(self, networkId: int, backendId: int) -> Deferred[BackendNetwork]:
        """
        The (network, backend) row, created PENDING when missing, locked.
        """

        async def lock(tx: Any) -> BackendNetwork:
            await tx.execute(
                "INSERT INTO backend_networks (network_id, backend_id) VALUES (%s, %s) "
                "ON CONFLICT (network_id, backend_id) DO NOTHING",
                (networkId, backendId),
            )
            rows = await tx.execute(
                f"SELECT {self._bnCols} FROM backend_networks WHERE network_id = %s AND backend_id = %s FOR UPDATE",
                (networkId, backendId),
            )
            return BackendNetwork(*rows[0])

        return self._atomic(lock)

    def updateBackendNetwork(self, backendNetworkId: int, fields: Mapping[str, object]) -> Deferred[None]:
        sets, params = _assignments(fields, _BACKEND_NETWORK_COLUMNS, "backend_networks")
        d = self._query(
            f"UPDATE backend_networks SET {sets}, updated = {self._now()} WHERE id = %s", (*params, backendNetworkId)
        )
        return d.addCallback(lambda _: None)
