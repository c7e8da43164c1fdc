"""
The server operations (L{synnefo_twisted.logic.serverops}) on real
PostgreSQL (C{realservices.PG_URL}), each test in a schema of its own and
with a pool of several connections, so that concurrent actions really run
side by side and the row lock decides.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from synnefo_twisted.db import openDatabase
from synnefo_twisted.db.migrations import migrate
from tests.integration import realservices
from tests.integration.db.test_postgres import SchemaMixin, withSearchPath
from tests.logic.test_serverops import ServerOpsMixin


class PostgresServerOpsTests(SchemaMixin, ServerOpsMixin, TestCase):
    """
    Every server-operation test, on PostgreSQL.
    """

    async def makeDatabase(self) -> Any:
        db = openDatabase(withSearchPath(realservices.PG_URL, self.makeSchema()), reactor, poolSize=4)
        await db.startService()
        await migrate(db)
        return db
