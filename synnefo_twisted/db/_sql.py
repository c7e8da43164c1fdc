# -*- test-case-name: tests.db.test_sql -*-
"""
SQL text helpers shared by the drivers: the C{%s} / C{%(name)s} parameter
style translated for SQLite, row-lock clauses dropped, and the errors the
database layer raises.

Like psycopg2, every statement goes through parameter formatting (the
drivers always pass parameters, possibly empty), so a literal C{%} is
written C{%%} on every driver.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any


class DatabaseError(Exception):
    """
    Base class of the errors of the database layer.
    """


class DatabaseUnavailableError(DatabaseError):
    """
    No working connection: the database is down, not yet connected, or the
    service is stopping.
    """


class IntegrityError(DatabaseError):
    """
    A statement broke a constraint (unique, foreign key, check, not null):
    the same exception on every driver, so that races lose cleanly. The
    driver's exception is the C{__cause__}.
    """


class ParameterError(DatabaseError, ValueError):
    """
    The SQL text and its parameters do not match the C{%s} / C{%(name)s}
    style.
    """


_FORMAT = re.compile(r"%(?:(%)|(s)|\(([A-Za-z_][A-Za-z0-9_]*)\)s|(.?))", re.DOTALL)
_LOCKING = re.compile(
    r"\s+FOR\s+(?:NO\s+KEY\s+UPDATE|UPDATE|KEY\s+SHARE|SHARE)"
    r"(?:\s+OF\s+[A-Za-z_][A-Za-z0-9_]*(?:\s*,\s*[A-Za-z_][A-Za-z0-9_]*)*)?"
    r"(?:\s+NOWAIT|\s+SKIP\s+LOCKED)?\b",
    re.IGNORECASE,
)

_cache: dict[str, tuple[str, str]] = {}
_CACHE_LIMIT = 2048


def translateForSQLite(sql: str) -> tuple[str, str]:
    """
    Translate a statement in the C{%s} / C{%(name)s} style into SQLite's
    C{?} / C{:name} style, turning C{%%} into C{%} and dropping row-locking
    clauses (C{FOR UPDATE}, C{FOR SHARE}, with C{OF}, C{NOWAIT} or
    C{SKIP LOCKED}), which SQLite does not have and does not need since it
    serialises every transaction.

    @return: the translated text and its style: C{"none"}, C{"positional"}
        or C{"named"}.
    @raise ParameterError: both styles mixed, or an unknown C{%} sequence.
    """
    cached = _cache.get(sql)
    if cached is not None:
        return cached
    styles: set[str] = set()

    def replace(m: re.Match[str]) -> str:
        if m.group(1):
            return "%"
        if m.group(2):
            styles.add("positional")
            return "?"
        if m.group(3):
            styles.add("named")
            return ":" + m.group(3)
        raise ParameterError(f"unsupported format sequence %{m.group(4)} in SQL (write %% for a literal %)")

    text = _FORMAT.sub(replace, _LOCKING.sub("", sql))
    if len(styles) > 1:
        raise ParameterError("SQL mixes %s and %(name)s parameters")
    result = (text, styles.pop() if styles else "none")
    if len(_cache) < _CACHE_LIMIT:
        _cache[sql] = result
    return result


def checkParams(style: str, params: object) -> Sequence[Any] | Mapping[str, Any]:
    """
    Check C{params} against the statement's style and return them in the
    shape the driver wants.

    @raise ParameterError: a mapping for C{%s}, a sequence for C{%(name)s}.
    """
    if params is None:
        return ()
    if isinstance(params, Mapping):
        if style == "positional":
            raise ParameterError("SQL uses %s but the parameters are a mapping")
        return params
    if isinstance(params, (str, bytes)) or not isinstance(params, Sequence):
        raise ParameterError(f"parameters must be a sequence or a mapping, not {type(params).__name__}")
    if style == "named" and len(params):
        raise ParameterError("SQL uses %(name)s but the parameters are a sequence")
    return params


def sqliteValue(value: object) -> object:
    """
    Adapt one parameter for SQLite: aware datetimes become ISO-8601 text in
    UTC (naive ones are taken as UTC), which sorts and compares correctly.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat()
    return value


def parseTimestamp(value: object) -> datetime | None:
    """
    A timestamp column's value as an aware UTC datetime, whatever the
    driver returned (datetime, ISO text, bytes), or None for NULL.
    """
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii")
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if not isinstance(value, datetime):
        raise TypeError(f"not a timestamp: {value!r}")
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parseBool(value: object) -> bool:
    """
    A boolean column's value (SQLite stores 0/1).
    """
    if isinstance(value, bytes):
        return value not in (b"0", b"")
    return bool(value)


MAX_CHANNEL_BYTES = 63
MAX_PAYLOAD_BYTES = 7999


def checkNotification(channel: str, payload: str) -> None:
    """
    Enforce PostgreSQL's NOTIFY limits on every driver (a channel is an
    identifier of at most 63 bytes, a payload under 8000 bytes), so that
    code tested on SQLite does not fail on PostgreSQL.

    @raise ValueError: the channel or the payload is not acceptable.
    """
    if not isinstance(channel, str) or not channel or len(channel.encode("utf-8")) > MAX_CHANNEL_BYTES:
        raise ValueError(f"notification channel must be 1 to {MAX_CHANNEL_BYTES} bytes, got {channel!r}")
    if not isinstance(payload, str):
        raise ValueError(f"notification payload must be a string, not {type(payload).__name__}")
    if len(payload.encode("utf-8")) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"notification payload is over {MAX_PAYLOAD_BYTES} bytes; send an id and read the rest")


_LEADING = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*", re.DOTALL)


def readsOnly(sql: str) -> bool:
    """
    Whether a statement can only read: a plain C{SELECT} (row-lock clauses
    included: they change no data). Anything else (C{INSERT}, C{UPDATE},
    C{DELETE}, C{WITH} that may modify, DDL, C{PRAGMA}, ...) counts as a
    write; the answer is conservative, never the other way round.
    """
    start = _LEADING.match(sql)
    head = sql[start.end() if start else 0 :][:7]
    return head[:6].upper() == "SELECT" and (len(head) == 6 or not (head[6].isalnum() or head[6] == "_"))
