"""
Running snf-manage commands in-process on a memory database.
"""

from __future__ import annotations

import io
import json
from typing import Any

import attrs
from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import TestCase

from synnefo_twisted.backends import BackendRegistry
from synnefo_twisted.config import loadConfig
from synnefo_twisted.db.models import Backend
from synnefo_twisted.manage.base import ManageContext
from synnefo_twisted.manage.main import run
from synnefo_twisted.testing import InMemoryCluster, memoryDatabase

#: the RAPI URL that reaches the simulated cluster in these tests
SIM_URL = "http://simulated-cluster"


@attrs.define
class KeptOpenContext(ManageContext):
    """
    A context whose database outlives each command (the test stops it).
    """

    registry: Any = None

    def close(self) -> Deferred[None]:
        return succeed(None)

    def backends(self, database: Any) -> Any:
        return self.registry if self.registry is not None else super().backends(database)


class ManageTestCase(TestCase):
    timeout = 30

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        return Deferred.fromCoroutine(self._setUp())

    async def _setUp(self) -> None:
        self.database = await self.makeDatabase()
        self.addCleanup(self.database.stopService)
        self.registry: Any = None

    async def makeDatabase(self) -> Any:
        """
        A started, migrated database (SQLite in memory; PostgreSQL in the
        integration subclasses).
        """
        return await memoryDatabase(reactor)

    def simulate(self) -> InMemoryCluster:
        """
        A simulated cluster on the real reactor (short job durations): the
        commands reach it, with the credentials of each backend row, for
        backends whose RAPI URL is L{SIM_URL}; other URLs are unreachable.
        """
        sim = InMemoryCluster.create(reactor, defaultDuration=0.01, pollInterval=0.01)
        self.addCleanup(sim.queue.stop)

        def clientFor(_reactor: Any, backend: Backend) -> Any:
            if backend.rapi_url.rstrip("/") == SIM_URL:
                return sim.clientFor(backend.username, backend.password)
            from synnefo_twisted.backends import rapiClientFor

            return rapiClientFor(reactor, backend)

        self.registry = BackendRegistry(self.database, "snf-", reactor, clientFactory=clientFor)
        return sim

    async def manage(self, *argv: str) -> tuple[int, str, str]:
        """
        Run snf-manage; (exit status, standard output, standard error).
        """
        context = KeptOpenContext(
            reactor=reactor,
            config=loadConfig(None, {}, environ={}),
            out=io.StringIO(),
            err=io.StringIO(),
            database=self.database,
            registry=self.registry,
        )
        code = await run(reactor, list(argv), context)
        return code, context.out.getvalue(), context.err.getvalue()  # type: ignore[attr-defined]

    async def manageJSON(self, *argv: str) -> Any:
        code, out, err = await self.manage("--output-format", "json", *argv)
        self.assertEqual(code, 0, err)
        return json.loads(out)
