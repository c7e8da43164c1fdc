"""
Pinned RAPI certificates: C{backends.ca_pem} holds the PEM of the CA (or
the cluster's own certificate) that the RAPI server must chain to; empty
means the system trust store (or no check at all when C{verify_tls} is
false). Set by C{snf-manage backend-add/modify --ca-file}.
"""

from __future__ import annotations


def statements(dialect: str, fill: dict[str, str]) -> list[str]:
    """
    The statements for C{dialect} (the same for both).
    """
    return ["ALTER TABLE backends ADD COLUMN ca_pem TEXT NOT NULL DEFAULT ''"]
