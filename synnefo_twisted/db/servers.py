# -*- test-case-name: tests.db.test_servers -*-
"""
What the servers API reads and writes besides L{ServerRepository}: the
listing with C{changes-since}, what detailed views show (metadata, tags,
ports and addresses, volumes, the latest diagnostic) for many servers at
once, the one-time creation parameters of the VMAPI and the cached admin
passwords (migration C{0002_servers}).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs
from twisted.internet.defer import Deferred

from synnefo_twisted.db._sql import parseTimestamp
from synnefo_twisted.db.models import Diagnostic, IPAddress, Port, Server, ServerTag, columns
from synnefo_twisted.db.repositories import _Repository

_CHUNK = 500


def _marks(n: int) -> str:
    return ", ".join(["%s"] * n)


@attrs.frozen
class ServerRelations:
    """
    The rows a detailed server view shows besides the server's own.
    """

    metadata: dict[str, str] = attrs.field(factory=dict)
    tags: list[str] = attrs.field(factory=list)
    ports: list[tuple[Port, list[IPAddress]]] = attrs.field(factory=list)
    volumeIds: list[int] = attrs.field(factory=list)
    diagnostic: Diagnostic | None = None


class ServerListRepository(_Repository):
    """
    Server listings and the rows of their detailed views.
    """

    _cols = columns(Server)

    def listForUser(self, userid: str, since: datetime | None = None) -> Deferred[list[Server]]:
        """
        The user's servers in id order: the live ones, or with C{since}
        every one (deleted included) updated at or after it.
        """
        if since is None:
            return self._many(
                Server, f"SELECT {self._cols} FROM servers WHERE userid = %s AND deleted = FALSE ORDER BY id", (userid,)
            )
        return self._many(
            Server,
            f"SELECT {self._cols} FROM servers WHERE userid = %s AND updated >= %s ORDER BY id",
            (userid, since),
        )

    def relations(self, serverIds: Sequence[int]) -> Deferred[dict[int, ServerRelations]]:
        """
        L{ServerRelations} of each server, read in one transaction with a
        fixed number of queries per 500 servers, whatever their count.
        """
        return self._atomic(_loadRelations, list(serverIds))


async def _loadRelations(tx: Any, serverIds: list[int]) -> dict[int, ServerRelations]:
    out = {i: ServerRelations() for i in serverIds}
    diagnostics: dict[int, Diagnostic] = {}
    portsById: dict[int, tuple[Port, list[IPAddress]]] = {}
    for start in range(0, len(serverIds), _CHUNK):
        chunk = tuple(serverIds[start : start + _CHUNK])
        where = f"server_id IN ({_marks(len(chunk))})"
        for serverId, key, value in await tx.execute(
            f"SELECT server_id, meta_key, meta_value FROM server_metadata WHERE {where} ORDER BY meta_key", chunk
        ):
            out[serverId].metadata[key] = value
        for serverId, tag in await tx.execute(
            f"SELECT server_id, tag FROM server_tags WHERE {where} ORDER BY tag", chunk
        ):
            out[serverId].tags.append(tag)
        for row in await tx.execute(f"SELECT {columns(Port)} FROM ports WHERE {where} ORDER BY id", chunk):
            port = Port(*row)
            assert port.server_id is not None
            entry: tuple[Port, list[IPAddress]] = (port, [])
            portsById[port.id] = entry
            out[port.server_id].ports.append(entry)
        for serverId, volumeId in await tx.execute(
            f"SELECT server_id, id FROM volumes WHERE {where} AND deleted = FALSE ORDER BY idx, id", chunk
        ):
            out[serverId].volumeIds.append(volumeId)
        for row in await tx.execute(f"SELECT {columns(Diagnostic)} FROM diagnostics WHERE {where} ORDER BY id", chunk):
            diagnostic = Diagnostic(*row)
            diagnostics[diagnostic.server_id] = diagnostic
    portIds = list(portsById)
    for start in range(0, len(portIds), _CHUNK):
        chunk = tuple(portIds[start : start + _CHUNK])
        for row in await tx.execute(
            f"SELECT {columns(IPAddress)} FROM ips WHERE port_id IN ({_marks(len(chunk))}) AND deleted = FALSE "
            "ORDER BY id",
            chunk,
        ):
            ip = IPAddress(*row)
            assert ip.port_id is not None
            portsById[ip.port_id][1].append(ip)
    return {i: attrs.evolve(r, diagnostic=diagnostics.get(i)) for i, r in out.items()}


class ServerParamsRepository(_Repository):
    """
    The one-time creation parameters of new servers, served by the VMAPI
    at C{config_url} under a random key and deleted when read.
    """

    def store(
        self, configKey: str, serverId: int | None, params: Mapping[str, Any], expires: datetime | None = None
    ) -> Deferred[None]:
        d = self._query(
            "INSERT INTO server_params (config_key, server_id, params, expires) VALUES (%s, %s, %s, %s)",
            (configKey, serverId, json.dumps(dict(params)), expires),
        )
        return d.addCallback(lambda _: None)

    def take(self, configKey: str, now: datetime) -> Deferred[dict[str, Any] | None]:
        """
        The parameters stored under C{configKey}, deleted in the same
        statement (so two readers never both get them); None when there are
        none or they expired before C{now}.
        """

        def parse(rows: list[tuple[Any, ...]]) -> dict[str, Any] | None:
            if not rows:
                return None
            params, expires = rows[0]
            expiry = parseTimestamp(expires)
            if expiry is not None and expiry <= now:
                return None
            loaded: dict[str, Any] = json.loads(params)
            return loaded

        d = self._query("DELETE FROM server_params WHERE config_key = %s RETURNING params, expires", (configKey,))
        return d.addCallback(parse)

    def discardForServer(self, serverId: int) -> Deferred[int]:
        """
        Delete the parameters of a server (its create failed); Deferred with how many.
        """
        d = self._query("DELETE FROM server_params WHERE server_id = %s RETURNING config_key", (serverId,))
        return d.addCallback(len)

    def purgeExpired(self, now: datetime) -> Deferred[int]:
        """
        Delete expired parameters; Deferred with how many.
        """
        d = self._query(
            "DELETE FROM server_params WHERE expires IS NOT NULL AND expires <= %s RETURNING config_key", (now,)
        )
        return d.addCallback(len)


class ServerPasswordRepository(_Repository):
    """
    The admin passwords of new servers (Synnefo's C{VM_PASSWORD_CACHE}).
    """

    def remember(self, serverId: int, password: str, expires: datetime | None = None) -> Deferred[None]:
        d = self._query(
            "INSERT INTO server_passwords (server_id, password, expires) VALUES (%s, %s, %s) "
            "ON CONFLICT (server_id) DO UPDATE SET password = excluded.password, expires = excluded.expires",
            (serverId, password, expires),
        )
        return d.addCallback(lambda _: None)

    def get(self, serverId: int, now: datetime) -> Deferred[str | None]:
        """
        The password, unless there is none or it expired before C{now}.
        """
        d = self._query(
            "SELECT password FROM server_passwords WHERE server_id = %s AND (expires IS NULL OR expires > %s)",
            (serverId, now),
        )
        return d.addCallback(lambda rows: str(rows[0][0]) if rows else None)

    def purgeExpired(self, now: datetime) -> Deferred[int]:
        """
        Delete expired passwords; Deferred with how many.
        """
        d = self._query(
            "DELETE FROM server_passwords WHERE expires IS NOT NULL AND expires <= %s RETURNING server_id", (now,)
        )
        return d.addCallback(len)

    def forget(self, serverId: int, now: datetime) -> Deferred[bool]:
        """
        Delete the password; Deferred True when a live one was there.
        """
        d = self._query(
            "DELETE FROM server_passwords WHERE server_id = %s RETURNING expires",
            (serverId,),
        )

        def live(rows: list[tuple[Any, ...]]) -> bool:
            if not rows:
                return False
            expiry = parseTimestamp(rows[0][0])
            return expiry is None or expiry > now

        return d.addCallback(live)


class ServerTagRepository(_Repository):
    """
    Replacing and removing server tags (adding one is
    L{ServerRepository.addTag}).
    """

    _cols = columns(ServerTag)

    def replace(self, serverId: int, tags: Sequence[str], status: str = "PENDADD") -> Deferred[list[ServerTag]]:
        """
        Make C{tags} the server's only tags, all with C{status}.
        """

        async def replace(tx: Any) -> list[ServerTag]:
            await tx.execute("DELETE FROM server_tags WHERE server_id = %s", (serverId,))
            for tag in dict.fromkeys(tags):
                await tx.execute(
                    "INSERT INTO server_tags (server_id, tag, status) VALUES (%s, %s, %s)", (serverId, tag, status)
                )
            rows = await tx.execute(
                f"SELECT {self._cols} FROM server_tags WHERE server_id = %s ORDER BY tag", (serverId,)
            )
            return [ServerTag(*row) for row in rows]

        return self._atomic(replace)

    def remove(self, serverId: int, tag: str) -> Deferred[bool]:
        """
        Delete one tag; Deferred True when it was there.
        """
        d = self._query("DELETE FROM server_tags WHERE server_id = %s AND tag = %s RETURNING id", (serverId, tag))
        return d.addCallback(bool)

    def removeAll(self, serverId: int) -> Deferred[list[str]]:
        """
        Delete every tag of the server; Deferred with the tags deleted.
        """
        d = self._query("DELETE FROM server_tags WHERE server_id = %s RETURNING tag", (serverId,))
        return d.addCallback(lambda rows: sorted(row[0] for row in rows))
