"""
The dispatcher's shell (L{synnefo_twisted.logic.dispatchapply}) on real
PostgreSQL (C{realservices.PG_URL}), each test in a schema of its own and
with a pool of several connections, so that messages for one server applied
concurrently really wait for the row lock.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import gatherResults
from twisted.trial.unittest import TestCase

from synnefo_twisted.db import openDatabase
from synnefo_twisted.logic.dispatchapply import applyMessage
from tests.integration import realservices
from tests.integration.db.test_postgres import SchemaMixin, withSearchPath
from tests.logic.dispatchfixture import opMessage
from tests.logic.test_dispatchapply import DispatchApplyMixin


class PostgresDispatchApplyTests(SchemaMixin, DispatchApplyMixin, TestCase):
    """
    Every shell test, on PostgreSQL.
    """

    def makeDatabase(self) -> Any:
        return openDatabase(withSearchPath(realservices.PG_URL, self.makeSchema()), self.reactor, poolSize=8)

    async def test_concurrentMessagesOneServer(self) -> None:
        """
        Forty messages of twenty jobs for one server, applied at once on
        eight connections, end as in-order delivery does: the row lock
        serialises them and the newest of each register wins.
        """
        built = await self.fx.server(jobId=1)
        bodies = [opMessage(built.id, "OP_INSTANCE_CREATE", "success", 1, 1)]
        for job in range(2, 21):
            op = "OP_INSTANCE_SHUTDOWN" if job % 2 == 0 else "OP_INSTANCE_STARTUP"
            bodies.append(opMessage(built.id, op, "running", job, job * 10))
            bodies.append(opMessage(built.id, op, "success", job, job * 10 + 1))
        await gatherResults([applyMessage(self.db, "op", b) for b in reversed(bodies)])
        server = await self.get(built.id)
        self.assertEqual(
            (server.operstate, server.backendjobid, server.backendjobstatus, server.task),
            ("STOPPED", 20, "success", None),
        )
