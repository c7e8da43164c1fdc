"""
The dispatcher service on real PostgreSQL and RabbitMQ
(C{realservices.PG_URL}, C{realservices.AMQP_URL}).
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import TestCase

from synnefo_twisted.bus import openBus
from synnefo_twisted.db import openDatabase
from tests.dispatcher.test_dispatch_db import DispatcherDatabaseMixin
from tests.integration import realservices
from tests.integration.db.test_postgres import SchemaMixin, withSearchPath


class PostgresRabbitDispatcherTests(SchemaMixin, DispatcherDatabaseMixin, TestCase):
    """
    On PostgreSQL (a schema per test, eight connections) and RabbitMQ.
    """

    def makeDatabase(self) -> Any:
        return openDatabase(withSearchPath(realservices.PG_URL, self.makeSchema()), self.reactor, poolSize=8)

    def makeBus(self) -> Any:
        return openBus(realservices.AMQP_URL, self.reactor)
