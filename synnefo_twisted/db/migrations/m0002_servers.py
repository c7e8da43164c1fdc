"""
Server secrets kept for a short while (the compute API's servers part):

 - C{server_params}: the one-time creation parameters snf-image fetches
   from the VMAPI (C{config_url}); a row is deleted when it is read.
 - C{server_passwords}: the admin password of a new server, readable with
   C{GET /servers/<id>/password} until it expires or is forgotten.
"""

from __future__ import annotations

STATEMENTS = [
    """CREATE TABLE server_params (
        config_key TEXT PRIMARY KEY,
        server_id BIGINT REFERENCES servers(id) ON DELETE CASCADE,
        params TEXT NOT NULL,
        created TIMESTAMPTZ NOT NULL DEFAULT {now},
        expires TIMESTAMPTZ
    )""",
    "CREATE INDEX server_params_server ON server_params(server_id)",
    """CREATE TABLE server_passwords (
        server_id BIGINT PRIMARY KEY REFERENCES servers(id) ON DELETE CASCADE,
        password TEXT NOT NULL,
        created TIMESTAMPTZ NOT NULL DEFAULT {now},
        expires TIMESTAMPTZ
    )""",
]


def statements(dialect: str, fill: dict[str, str]) -> list[str]:
    """
    The statements for C{dialect}, with the placeholders filled.
    """
    return [s.format(**fill) for s in STATEMENTS]
