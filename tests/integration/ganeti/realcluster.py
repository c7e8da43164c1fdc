"""
Where the real Ganeti 3.0 test cluster is (C{tests/harness/ganeti.sh}
brings it up). Environment overrides: C{SNF_TEST_GANETI_RAPI},
C{SNF_TEST_GANETI_USER}, C{SNF_TEST_GANETI_PASSWORD},
C{SNF_TEST_GANETI_RO_USER}, C{SNF_TEST_GANETI_RO_PASSWORD},
C{SNF_TEST_GANETI_NODE}, C{SNF_TEST_GANETI_CERT}, C{SNF_TEST_GANETI_DATA}.
"""

from __future__ import annotations

import os

RAPI_URL = os.environ.get("SNF_TEST_GANETI_RAPI", "https://127.0.0.1:5080")
USER = os.environ.get("SNF_TEST_GANETI_USER", "gnt-admin")
PASSWORD = os.environ.get("SNF_TEST_GANETI_PASSWORD", "gnt-secret")
RO_USER = os.environ.get("SNF_TEST_GANETI_RO_USER", "gnt-reader")
RO_PASSWORD = os.environ.get("SNF_TEST_GANETI_RO_PASSWORD", "gnt-reader-secret")
NODE = os.environ.get("SNF_TEST_GANETI_NODE", "node1.ganeti.lab")
DATA_DIR = os.environ.get("SNF_TEST_GANETI_DATA", "/var/lib/ganeti")
CERT = os.environ.get("SNF_TEST_GANETI_CERT", os.path.join(DATA_DIR, "rapi.pem"))
QUEUE_DIR = os.path.join(DATA_DIR, "queue")
HOOKS_DIR = os.environ.get("SNF_TEST_GANETI_HOOKS", "/etc/ganeti/hooks")
MISSING = "the real Ganeti test cluster is not available; run tests/harness/ganeti.sh (as root) first"


def pinnedCert() -> bytes:
    """
    The RAPI server certificate (Ganeti's self-signed rapi.pem) to pin.
    """
    try:
        with open(CERT, "rb") as f:
            return f.read()
    except OSError as e:
        raise AssertionError(f"{MISSING} ({CERT}: {e.strerror})") from e
