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

import synnefo_twisted.manage.catalog  # registers the commands
import synnefo_twisted.manage.users  # noqa: F401  (registers the commands)
from synnefo_twisted.config import loadConfig
from synnefo_twisted.manage.base import ManageContext
from synnefo_twisted.manage.main import run
from synnefo_twisted.testing import memoryDatabase


@attrs.define
class KeptOpenContext(ManageContext):
    """
    A context whose database outlives each command (the test stops it).
    """

    def close(self) -> Deferred[None]:
        return succeed(None)


class ManageTestCase(TestCase):
    timeout = 30

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        return Deferred.fromCoroutine(self._setUp())

    async def _setUp(self) -> None:
        self.database = await memoryDatabase(reactor)
        self.addCleanup(self.database.stopService)

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
        )
        code = await run(reactor, list(argv), context)
        return code, context.out.getvalue(), context.err.getvalue()  # type: ignore[attr-defined]

    async def manageJSON(self, *argv: str) -> Any:
        code, out, err = await self.manage("--output-format", "json", *argv)
        self.assertEqual(code, 0, err)
        return json.loads(out)
