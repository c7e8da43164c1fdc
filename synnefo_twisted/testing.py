# -*- test-case-name: tests.test_testing -*-
"""
Public test doubles for code built on synnefo-twisted.

Nothing here is a mock: each object is an implementation that passes the
same contract suite as the production one it stands in for.

 - L{MemoryBus}: the in-process L{IMessageBus} (contract: C{tests/bus/contract.py},
   run against it and against RabbitMQ).
 - L{SQLiteDatabase} / L{memoryDatabase}: the embedded L{IDatabase}
   (contract: C{tests/db/contract.py}, run against it and against PostgreSQL).
 - L{InMemoryCluster}: the simulated Ganeti cluster reached through
   L{treq.testing.StubTreq} on a given clock (contract:
   C{tests/ganeti/rapi_contract.py}, run against it, the simulator over HTTP
   and a real Ganeti 3.0 cluster).
 - L{FakeConsoleBroker}: an L{IConsoleBroker} answering at once (contract:
   C{tests/vncproxy/test_broker.py}, with the real control-socket broker).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from synnefo_twisted.bus.memory import MemoryBus
from synnefo_twisted.db import openDatabase
from synnefo_twisted.db.migrations import migrate
from synnefo_twisted.db.sqlite import SQLiteDatabase
from synnefo_twisted.ganeti.sim.memory import InMemoryCluster
from vncproxy.testing import FakeConsoleBroker

__all__ = ["FakeConsoleBroker", "InMemoryCluster", "MemoryBus", "SQLiteDatabase", "memoryDatabase"]


async def _started(database: Any) -> Any:
    await database.startService()
    await migrate(database)
    return database


def memoryDatabase(reactor: Any) -> Deferred[SQLiteDatabase]:
    """
    A started, fully migrated SQLite database in memory; stop it with
    C{stopService()} when done.
    """
    return Deferred.fromCoroutine(_started(openDatabase("sqlite:///:memory:", reactor)))
