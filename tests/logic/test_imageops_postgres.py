"""
The image registry (L{synnefo_twisted.logic.imageops}) and its repository
on real PostgreSQL (C{realservices.PG_URL}), each test in a schema of its
own with a pool of several connections, so that racing registrations
really run side by side.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred

from synnefo_twisted.db import openDatabase
from synnefo_twisted.db.migrations import migrate
from tests.integration import realservices
from tests.integration.db.test_postgres import SchemaMixin, withSearchPath
from tests.logic import test_imageops


class PostgresMixin(SchemaMixin):
    def openDatabase(self) -> Deferred[Any]:
        return Deferred.fromCoroutine(self._openPostgres())

    async def _openPostgres(self) -> Any:
        database = openDatabase(withSearchPath(realservices.PG_URL, self.makeSchema()), reactor, poolSize=4)
        await database.startService()
        await migrate(database)
        return database


class PostgresRegistryTests(PostgresMixin, test_imageops.RegistryTests):
    """
    The image registry on PostgreSQL.
    """


class PostgresRepositoryTests(PostgresMixin, test_imageops.RepositoryTests):
    """
    The image member repository on PostgreSQL.
    """
