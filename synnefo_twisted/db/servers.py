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
        return self._listRows(userid, since).addCallback(lambda rows: [Server(*row) for row in rows])

    def relations(self, serverIds: Sequence[int]) -> Deferred[dict[int, ServerRelations]]:
        """
        L{ServerRelations} of each server, read in one transaction with a
        fixed number of queries per 500 servers, whatever their count.
        """
        ids = list(serverIds)

        async def load(tx: Any) -> dict[int, ServerRelations]:
            return _buildRelations(ids, await _relationRows(tx, ids))

        return self._atomic(load)

    def detailsForUser(self, userid: str, since: datetime | None = None) -> Deferred[ServerDetailRows]:
        """
        L{listForUser} and the L{relations} of those servers, read in one
        transaction with six queries whatever their count (the relations
        select the servers by user, not by a list of ids), as
        L{ServerDetailRows}.
        """
        params: tuple[Any, ...]
        if since is None:
            which, params = "userid = %s AND deleted = FALSE", (userid,)
        else:
            which, params = "userid = %s AND updated >= %s", (userid, since)

        async def load(tx: Any) -> ServerDetailRows:
            rows = await tx.execute(f"SELECT {self._cols} FROM servers WHERE {which} ORDER BY id", params)
            servers = tuple(map(tuple, rows))
            where = f"server_id IN (SELECT id FROM servers WHERE {which})"
            related = await _relationRowsWhere(tx, where, params)
            return ServerDetailRows((servers, related))

        return self._atomic(load)

    def _listRows(self, userid: str, since: datetime | None) -> Deferred[Any]:
        if since is None:
            return self._query(
                f"SELECT {self._cols} FROM servers WHERE userid = %s AND deleted = FALSE ORDER BY id", (userid,)
            )
        return self._query(
            f"SELECT {self._cols} FROM servers WHERE userid = %s AND updated >= %s ORDER BY id", (userid, since)
        )


_PORT_WIDTH = len(columns(Port).split(", "))
_PORT_SERVER = columns(Port).split(", ").index("server_id")
_PORT_COLS = ", ".join(f"p.{name}" for name in columns(Port).split(", "))
_IP_COLS = ", ".join(f"i.{name}" for name in columns(IPAddress).split(", "))


async def _relationRows(tx: Any, serverIds: list[int]) -> tuple[tuple[Any, ...], ...]:
    """
    The rows of the relations of these servers, as hashable tuples: metadata,
    tags, ports (each with one of its live addresses, or none), volumes and
    the latest diagnostic of each server; one query of each per 500 servers.
    """
    parts: list[list[Any]] = [[], [], [], [], []]
    for start in range(0, len(serverIds), _CHUNK):
        chunk = tuple(serverIds[start : start + _CHUNK])
        for part, rows in zip(parts, await _relationRowsWhere(tx, f"server_id IN ({_marks(len(chunk))})", chunk)):
            part.extend(rows)
    return tuple(tuple(part) for part in parts)


async def _relationRowsWhere(tx: Any, where: str, params: tuple[Any, ...]) -> tuple[tuple[Any, ...], ...]:
    """
    L{_relationRows} of the servers that C{where} (a condition on
    C{server_id} with C{params}) selects, one query each.
    """
    metadata = await tx.execute(
        f"SELECT server_id, meta_key, meta_value FROM server_metadata WHERE {where} ORDER BY meta_key", params
    )
    tags = await tx.execute(f"SELECT server_id, tag FROM server_tags WHERE {where} ORDER BY tag", params)
    ports = await tx.execute(
        f"SELECT {_PORT_COLS}, {_IP_COLS} FROM ports p LEFT JOIN ips i ON i.port_id = p.id AND i.deleted = FALSE "
        f"WHERE p.{where} ORDER BY p.id, i.id",
        params,
    )
    volumes = await tx.execute(
        f"SELECT server_id, id FROM volumes WHERE {where} AND deleted = FALSE ORDER BY idx, id", params
    )
    diagnostics = await tx.execute(
        f"SELECT {columns(Diagnostic)} FROM diagnostics WHERE id IN "
        f"(SELECT MAX(id) FROM diagnostics WHERE {where} GROUP BY server_id)",
        params,
    )
    return tuple(tuple(map(tuple, rows)) for rows in (metadata, tags, ports, volumes, diagnostics))


def _buildRelations(serverIds: Sequence[int], rows: tuple[tuple[Any, ...], ...]) -> dict[int, ServerRelations]:
    # rows of a server not in serverIds (made between two statements of a
    # read committed transaction) are left out
    metadata, tags, ports, volumes, diagnostics = rows
    out = {i: ServerRelations() for i in serverIds}
    for serverId, key, value in metadata:
        if serverId in out:
            out[serverId].metadata[key] = value
    for serverId, tag in tags:
        if serverId in out:
            out[serverId].tags.append(tag)
    previous: tuple[Port, list[IPAddress]] | None = None
    for row in ports:
        if row[_PORT_SERVER] not in out:
            continue
        if previous is None or previous[0].id != row[0]:
            port = Port(*row[:_PORT_WIDTH])
            assert port.server_id is not None
            previous = (port, [])
            out[port.server_id].ports.append(previous)
        if row[_PORT_WIDTH] is not None:
            previous[1].append(IPAddress(*row[_PORT_WIDTH:]))
    for serverId, volumeId in volumes:
        if serverId in out:
            out[serverId].volumeIds.append(volumeId)
    for row in diagnostics:
        diagnostic = Diagnostic(*row)
        current = out.get(diagnostic.server_id)
        if current is not None:
            out[diagnostic.server_id] = ServerRelations(
                current.metadata, current.tags, current.ports, current.volumeIds, diagnostic
            )
    return out


@attrs.frozen(eq=False)
class ServerDetailRows:
    """
    A user's servers and the relations their detailed views show, as read
    in one transaction (L{ServerListRepository.detailsForUser}).

    @ivar fingerprint: an opaque hashable value, equal for two reads that
        found the same rows: what is computed from the rows alone can be
        reused while it is unchanged.
    """

    fingerprint: tuple[Any, ...]

    def servers(self) -> list[Server]:
        return [Server(*row) for row in self.fingerprint[0]]

    def relations(self) -> dict[int, ServerRelations]:
        return _buildRelations([row[0] for row in self.fingerprint[0]], self.fingerprint[1])


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
