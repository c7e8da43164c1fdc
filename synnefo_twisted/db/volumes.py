# -*- test-case-name: tests.db.test_volumes -*-
"""
Volumes (disks of servers): the SQL of the C{volumes} table behind
methods returning L{synnefo_twisted.db.models.Volume}s.
"""

from __future__ import annotations

from collections.abc import Sequence

from twisted.internet.defer import Deferred

from synnefo_twisted.db.models import Volume, columns
from synnefo_twisted.db.repositories import _Repository

STATUSES = frozenset({"CREATING", "AVAILABLE", "ATTACHING", "DETACHING", "IN_USE", "DELETING", "DELETED", "ERROR"})

_CHUNK = 500


class VolumeRepository(_Repository):
    """
    Volumes, on an L{IDatabase} or inside a transaction (see
    L{synnefo_twisted.db.repositories}).
    """

    _cols = columns(Volume)

    def create(
        self,
        userid: str,
        volumeTypeId: int,
        size: int,
        *,
        project: str | None = None,
        serverId: int | None = None,
        idx: int | None = None,
        source: str | None = None,
        status: str = "CREATING",
        name: str = "",
        deleteOnTermination: bool = True,
    ) -> Deferred[Volume]:
        """
        Record a volume of C{size} GiB.

        @param source: where its data comes from (C{image:<id>}, C{snapshot:<id>}, None for blank).
        """
        if status not in STATUSES:
            raise ValueError(f"unknown volume status {status!r}")
        d = self._query(
            "INSERT INTO volumes (name, userid, project, server_id, volume_type_id, size, idx, source, status, "
            f"delete_on_termination) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {self._cols}",
            (name, userid, project, serverId, volumeTypeId, size, idx, source, status, deleteOnTermination),
        )
        return d.addCallback(lambda rows: Volume(*rows[0]))

    def get(self, volumeId: int) -> Deferred[Volume | None]:
        return self._one(Volume, f"SELECT {self._cols} FROM volumes WHERE id = %s", (volumeId,))

    def listByServer(self, serverId: int, includeDeleted: bool = False) -> Deferred[list[Volume]]:
        """
        The server's volumes in attachment order (C{idx}, then id).
        """
        where = "" if includeDeleted else " AND deleted = FALSE"
        return self._many(
            Volume, f"SELECT {self._cols} FROM volumes WHERE server_id = %s{where} ORDER BY idx, id", (serverId,)
        )

    def idsByServers(self, serverIds: Sequence[int]) -> Deferred[dict[int, list[int]]]:
        """
        The ids of the live volumes of each of these servers, in attachment
        order; one query per 500 servers.
        """
        ids = list(serverIds)

        async def load(tx: object) -> dict[int, list[int]]:
            out: dict[int, list[int]] = {i: [] for i in ids}
            for start in range(0, len(ids), _CHUNK):
                chunk = tuple(ids[start : start + _CHUNK])
                marks = ", ".join(["%s"] * len(chunk))
                rows = await tx.execute(  # type: ignore[attr-defined]
                    f"SELECT server_id, id FROM volumes WHERE server_id IN ({marks}) AND deleted = FALSE "
                    "ORDER BY idx, id",
                    chunk,
                )
                for serverId, volumeId in rows:
                    out[serverId].append(volumeId)
            return out

        return self._atomic(load)

    def update(self, volumeId: int, **fields: object) -> Deferred[Volume | None]:
        """
        Change C{status}, C{deleted}, C{server_id}, C{idx}, C{backendjobid},
        C{name} or C{delete_on_termination}; Deferred with the new model.
        """
        status = fields.get("status")
        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown volume status {status!r}")
        allowed = ("status", "deleted", "server_id", "idx", "backendjobid", "name", "delete_on_termination")
        return self._update(Volume, "volumes", volumeId, fields, allowed)
