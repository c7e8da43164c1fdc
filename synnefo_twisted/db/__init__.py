# -*- test-case-name: tests.db.test_open -*-
"""
The relational store: L{openDatabase} picks the driver from a URL.

  - C{sqlite:///relative/path.db}, C{sqlite:////absolute/path.db} (the
    embedded default; the parent directory is created), C{sqlite:///:memory:};
  - C{postgresql://user:password@host:port/dbname} (also C{postgres://}).

Drivers: L{synnefo_twisted.db.sqlite.SQLiteDatabase} and
L{synnefo_twisted.db.postgres.PostgresDatabase}; schema:
L{synnefo_twisted.db.migrations}; models and repositories:
L{synnefo_twisted.db.models}, L{synnefo_twisted.db.repositories}.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from synnefo_twisted.config import maskSecret
from synnefo_twisted.db._sql import DatabaseError, DatabaseUnavailableError, IntegrityError, ParameterError
from synnefo_twisted.metrics import MetricsRegistry

__all__ = [
    "DatabaseError",
    "DatabaseUnavailableError",
    "IntegrityError",
    "ParameterError",
    "openDatabase",
    "sqlitePath",
]


def _masked(url: str) -> str:
    try:
        return maskSecret(url)
    except ValueError:  # unparsable (e.g. a bad port): mask user:password@ by hand
        return re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", url)


def sqlitePath(url: str) -> str:
    """
    The file path of a C{sqlite://} URL: C{sqlite:///var/x.db} is the
    relative C{var/x.db}, C{sqlite:////var/x.db} the absolute C{/var/x.db}
    (SQLAlchemy's convention).

    @raise ValueError: not a usable sqlite URL.
    """
    shown = _masked(url)
    if not url.startswith("sqlite:///"):
        raise ValueError(
            f"invalid database URL {shown!r}: write sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    rest = url[len("sqlite:///") :]
    if "?" in rest or "#" in rest:
        raise ValueError(f"invalid database URL {shown!r}: sqlite URLs take no query or fragment")
    path = unquote(rest)
    if not path or path.endswith("/"):
        raise ValueError(f"invalid database URL {shown!r}: no file name")
    return path


def openDatabase(url: str, reactor: Any, *, poolSize: int = 4, metrics: MetricsRegistry | None = None) -> Any:
    """
    Build (not start) the L{synnefo_twisted.interfaces.IDatabase} for
    C{url}; it is also an C{IService}: start it and wait for the Deferred
    C{startService} returns.

    @raise ValueError: the URL is not one of the supported forms (the
        message says which are).
    """
    if not isinstance(url, str):
        raise ValueError(f"invalid database URL {url!r}: not a string")
    shown = _masked(url)
    if "://" not in url:
        raise ValueError(
            f"invalid database URL {shown!r}: expected sqlite:///PATH or postgresql://user:password@host:port/dbname"
        )
    scheme = url.split("://", 1)[0].lower()
    if scheme == "sqlite":
        from synnefo_twisted.db.sqlite import SQLiteDatabase

        path = sqlitePath(url)
        if path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        return SQLiteDatabase(path, reactor, metrics=metrics)
    if scheme in ("postgresql", "postgres"):
        from synnefo_twisted.db.postgres import PostgresDatabase

        parts = urlsplit(url)
        try:
            parts.port  # noqa: B018  (raises ValueError for a bad port)
        except ValueError:
            raise ValueError(f"invalid database URL {shown!r}: bad port") from None
        if not parts.hostname and "host=" not in parts.query:
            raise ValueError(f"invalid database URL {shown!r}: no host (postgresql://user:password@host:port/dbname)")
        if parts.path in ("", "/"):
            raise ValueError(f"invalid database URL {shown!r}: no database name (postgresql://user@host:port/dbname)")
        if poolSize < 1:
            raise ValueError(f"pool size must be at least 1, not {poolSize}")
        return PostgresDatabase(url, reactor, poolSize=poolSize, metrics=metrics)
    raise ValueError(f"unsupported database URL scheme {scheme!r} in {shown!r}: use sqlite:///PATH or postgresql://...")
