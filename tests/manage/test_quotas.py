"""
Tests for the quota commands of snf-manage (L{synnefo_twisted.manage.quotas}).
"""

from __future__ import annotations

from synnefo_twisted.db.repositories import ProjectRepository
from tests.manage.support import WorldTestCase


class QuotaCommandTests(WorldTestCase):
    def limits(self, rows: list[dict]) -> dict[str, int]:
        return {r["resource"]: r["limit"] for r in rows}

    async def test_setUserBaseQuota(self) -> None:
        """
        quota-set --user sets the user's base project totals, with aliases
        and units; cpu and ram set the total and the active limit.
        """
        rows = await self.manageJSON("quota-set", "--user", "user@example.org", "servers=3", "cpu=8", "ram=4G",
                                     "disk=100G", "networks=2", "floating-ips=1")  # fmt: skip
        self.assertEqual(
            self.limits(rows),
            {
                "cyclades.vm": 3,
                "cyclades.total_cpu": 8,
                "cyclades.cpu": 8,
                "cyclades.total_ram": 4 << 30,
                "cyclades.ram": 4 << 30,
                "cyclades.disk": 100 << 30,
                "cyclades.network.private": 2,
                "cyclades.floating_ip": 1,
            },
        )
        self.assertEqual({r["project"] for r in rows}, {self.project.uuid})
        listed = await self.manageJSON("quota-list", "--user", "user@example.org")
        self.assertEqual(self.limits(listed)["cyclades.vm"], 3)
        self.assertEqual({r["user"] for r in listed}, {"(project total)"})

    async def test_quotaIsEnforced(self) -> None:
        """
        A limit set with quota-set is what the server logic enforces:
        usage shows in quota-list, and over the limit a create is refused.
        """
        await self.createServer()
        await self.manageJSON("quota-set", "--project", "base", "servers=1")
        listed = await self.manageJSON("quota-list", "--project", self.project.uuid)
        vm = next(r for r in listed if r["resource"] == "cyclades.vm")
        self.assertEqual((vm["limit"], vm["usage"], vm["pending"]), (1, 1, 0))
        from synnefo_twisted.logic.servers import OverLimit

        with self.assertRaises(OverLimit):
            await self.createServer("two")
        code, _out, err = await self.manage("quota-set", "--project", "base", "servers=0")
        self.assertEqual(code, 0)
        self.assertIn("warning: cyclades.vm is over its new limit 0", err)

    async def test_memberShare(self) -> None:
        """
        --project with --user sets a member's share; a non-member is refused.
        """
        projects = ProjectRepository(self.database)
        shared = await projects.create("research")
        await projects.addMember(shared.id, self.user.id)
        rows = await self.manageJSON("quota-set", "--project", "research", "--user", "user@example.org", "cpu=2")
        self.assertEqual({r["user"] for r in rows}, {self.user.uuid})
        listed = await self.manageJSON("quota-list", "--project", shared.uuid, "--display-mails")
        self.assertEqual(
            sorted((r["user"], r["resource"], r["limit"]) for r in listed),
            [("user@example.org", "cyclades.cpu", 2), ("user@example.org", "cyclades.total_cpu", 2)],
        )
        code, _out, err = await self.manage("quota-set", "--project", "research", "--user", "other@example.org",
                                            "cpu=2")  # fmt: skip
        self.assertEqual(code, 1)
        self.assertIn("not a member", err)
        code, _out, err = await self.manage("quota-set", "--user", "other@example.org", "cpu=2")
        self.assertEqual(code, 1)
        self.assertIn("no base project", err)

    async def test_badInput(self) -> None:
        """
        Unknown resources, malformed values, units on counts, or no target
        are one-line errors with exit status 2 and change nothing.
        """
        before = await self.manageJSON("quota-list")
        for argv in [
            ("--user", "user@example.org", "gpus=2"),
            ("--user", "user@example.org", "servers=-1"),
            ("--user", "user@example.org", "servers=2G"),
            ("--user", "user@example.org", "ram"),
            ("--user", "user@example.org", "servers=3", "ram=lots"),
            ("servers=3",),
        ]:
            code, out, err = await self.manage("quota-set", *argv)
            self.assertEqual((code, out), (2, ""), argv)
            self.assertEqual(len(err.splitlines()), 1)
        self.assertEqual(await self.manageJSON("quota-list"), before)
        code, _out, err = await self.manage("quota-list", "--project", "nope")
        self.assertEqual(code, 1)
        self.assertIn("no project 'nope'", err)
