"""
The reconciler's database reads and drift proofs on real PostgreSQL
(C{realservices.PG_URL}), each test in a schema of its own.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from synnefo_twisted.db import openDatabase
from synnefo_twisted.db.migrations import migrate
from tests.integration import realservices
from tests.integration.db.test_postgres import SchemaMixin, withSearchPath
from tests.reconciler.test_drift import DriftMixin
from tests.reconciler.test_repository import RepositoryMixin


class _Postgres(SchemaMixin):
    async def makeDatabase(self) -> Any:
        db = openDatabase(withSearchPath(realservices.PG_URL, self.makeSchema()), reactor, poolSize=4)
        await db.startService()
        await migrate(db)
        return db


class PostgresRepositoryTests(_Postgres, RepositoryMixin, TestCase):
    """
    The reconciliation reads on PostgreSQL.
    """


class PostgresDriftTests(_Postgres, DriftMixin, TestCase):
    """
    The drift proofs on PostgreSQL.
    """
