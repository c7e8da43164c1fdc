"""
End-to-end tests of the installed C{snf-manage} console script, run as a
real process on an SQLite file database.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

SNF_MANAGE = str(Path(sys.executable).with_name("snf-manage"))

#: every command the issue names; the console script must offer each one
EXPECTED = [
    "backend-add",
    "backend-list",
    "backend-modify",
    "backend-remove",
    "backend-update-status",
    "config-show",
    "flavor-create",
    "flavor-list",
    "flavor-modify",
    "floating-ip-attach",
    "floating-ip-create",
    "floating-ip-detach",
    "floating-ip-list",
    "floating-ip-remove",
    "image-list",
    "image-register",
    "migrate",
    "network-create",
    "network-inspect",
    "network-list",
    "network-modify",
    "network-remove",
    "pool-create",
    "pool-list",
    "pool-modify",
    "pool-show",
    "port-create",
    "port-inspect",
    "port-list",
    "port-remove",
    "quota-list",
    "quota-set",
    "server-inspect",
    "server-list",
    "server-modify",
    "server-remove",
    "server-show",
    "subnet-create",
    "subnet-inspect",
    "subnet-list",
    "subnet-modify",
    "user-add",
    "user-list",
    "user-modify",
]


class ConsoleScriptTests(TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.dir = Path(self.mktemp()).resolve()
        self.dir.mkdir()
        (self.dir / "snf.toml").write_text(f'[database]\nurl = "sqlite:///{self.dir}/snf.db"\n')

    async def snfManage(self, *argv: str) -> tuple[int, str, str]:
        env = {k: v for k, v in os.environ.items() if k != "SNF_CONFIG"}
        out, err, code = await getProcessOutputAndValue(
            SNF_MANAGE, ["--config", str(self.dir / "snf.toml"), *argv], env=env, path=str(self.dir), reactor=reactor
        )
        return code, out.decode(), err.decode()

    def test_helpListsEveryCommand(self) -> Deferred[None]:
        """
        C{snf-manage --help} lists the user, catalog and backend commands
        next to the core ones.
        """

        async def check() -> None:
            code, out, err = await self.snfManage("--help")
            self.assertEqual(code, 0, err)
            for name in EXPECTED:
                self.assertIn(name, out)

        return Deferred.fromCoroutine(check())

    def test_commandsRunAgainstTheDatabase(self) -> Deferred[None]:
        """
        The script migrates the configured database, adds a user (JSON with
        a token), lists it, and a malformed argument is one line on stderr
        with exit status 2.
        """

        async def check() -> None:
            code, _out, err = await self.snfManage("migrate")
            self.assertEqual(code, 0, err)
            code, out, err = await self.snfManage("--output-format", "json", "user-add", "ops@example.org", "--admin")
            self.assertEqual(code, 0, err)
            added = json.loads(out)
            self.assertTrue(added["admin"])
            self.assertTrue(added["token"])
            code, out, err = await self.snfManage("user-list", "--output-format", "csv")
            self.assertEqual(code, 0, err)
            self.assertIn("ops@example.org", out)
            code, out, err = await self.snfManage("flavor-create", "x", "1024", "20", "drbd")
            self.assertEqual((code, out), (2, ""))
            self.assertEqual(len(err.strip().splitlines()), 1, err)
            self.assertIn("snf-manage flavor-create: error:", err)

        return Deferred.fromCoroutine(check())
