"""
Where the real services for the integration suites are, and how to restart
them. C{tests/harness/services.sh} (run by C{make test}) prepares them.

Environment overrides: C{SNF_TEST_PG_URL}, C{SNF_TEST_AMQP_URL},
C{SNF_TEST_PG_RESTART}, C{SNF_TEST_AMQP_RESTART} (shell commands).
"""

from __future__ import annotations

import os
import subprocess

PG_URL = os.environ.get("SNF_TEST_PG_URL", "postgresql://synnefo_test@127.0.0.1:5432/synnefo_test")
AMQP_URL = os.environ.get("SNF_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/synnefo-test")


def _pgVersion() -> str:
    return sorted(os.listdir("/etc/postgresql"), key=lambda v: [int(p) for p in v.split(".")])[-1]


def pgRestartCommand() -> str:
    return os.environ.get(
        "SNF_TEST_PG_RESTART",
        f"pg_ctlcluster --skip-systemctl-redirect {_pgVersion()} main restart -m fast",
    )


def amqpRestartCommand() -> str:
    # stop_app/start_app restarts the broker application (all connections
    # dropped, durable queues and persistent messages kept) without the
    # Erlang VM start-up cost.
    return os.environ.get("SNF_TEST_AMQP_RESTART", "rabbitmqctl -q stop_app && rabbitmqctl -q start_app")


def runBlocking(command: str) -> None:
    """
    Run a shell command to completion (test set-up only; blocks the reactor
    on purpose, since the service is down meanwhile anyway).
    """
    subprocess.run(["bash", "-c", command], check=True, stdout=subprocess.DEVNULL)
