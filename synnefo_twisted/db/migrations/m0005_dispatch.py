"""
What the dispatcher needs to apply Ganeti's messages in any order
(L{synnefo_twisted.logic.dispatch}): each part of a server's state that
messages set is a last-writer-wins register, stamped with the C{event_time}
of the message that wrote it, so a late or repeated message never undoes a
newer one.

 - C{servers.jobtime}: the job fields (C{backendjobid}, status, opcode,
   log message);
 - C{servers.statetime}: C{operstate} and C{deleted};
 - C{servers.flavortime}: the flavor set from a job's beparams;
 - C{servers.detailstime}: NICs, disks and hvparams (rescue);
 - C{backend_networks.jobtime}: the backend network's job fields (its
   C{backendtime} stamps its operstate).

C{servers.backendtime} keeps the original's meaning: the time of the latest
successful (or terminal) job.
"""

from __future__ import annotations

STATEMENTS = [
    "ALTER TABLE servers ADD COLUMN jobtime TIMESTAMPTZ",
    "ALTER TABLE servers ADD COLUMN statetime TIMESTAMPTZ",
    "ALTER TABLE servers ADD COLUMN flavortime TIMESTAMPTZ",
    "ALTER TABLE servers ADD COLUMN detailstime TIMESTAMPTZ",
    "ALTER TABLE backend_networks ADD COLUMN jobtime TIMESTAMPTZ",
    "CREATE INDEX diagnostics_source ON diagnostics(server_id, source_date)",
]


def statements(dialect: str, fill: dict[str, str]) -> list[str]:
    """
    The statements for C{dialect} (the same for both).
    """
    return list(STATEMENTS)
