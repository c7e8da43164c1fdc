"""
Tests for the user commands of snf-manage (L{synnefo_twisted.manage.users}).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from synnefo_twisted.db.repositories import UserRepository
from tests.manage.support import ManageTestCase


class UserCommandTests(ManageTestCase):
    async def test_addJSON(self) -> None:
        """
        user-add prints the id, uuid and a token that authenticates the new user (JSON on request).
        """
        data = await self.manageJSON("user-add", "ann@example.org")
        self.assertEqual((data["email"], data["admin"]), ("ann@example.org", False))
        user = await UserRepository(self.database).byToken(data["token"], datetime.now(UTC))
        assert user is not None
        self.assertEqual((user.id, user.uuid), (data["id"], data["uuid"]))

    async def test_addAdminPretty(self) -> None:
        """
        user-add --admin creates an admin; the pretty output shows the token.
        """
        code, out, err = await self.manage("user-add", "root@example.org", "--admin")
        self.assertEqual(code, 0, err)
        self.assertIn("token", out)
        user = await UserRepository(self.database).byEmail("root@example.org")
        assert user is not None
        self.assertTrue(user.isAdmin)

    async def test_addTwiceOrInvalid(self) -> None:
        """
        A duplicate e-mail or a non-address is an error (exit 1) naming the problem.
        """
        await self.manage("user-add", "ann@example.org")
        code, _out, err = await self.manage("user-add", "ann@example.org")
        self.assertEqual(code, 1)
        self.assertIn("already exists", err)
        code, _out, err = await self.manage("user-add", "not-an-address")
        self.assertEqual(code, 1)
        self.assertIn("not an e-mail", err)

    async def test_list(self) -> None:
        """
        user-list shows every user with the admin flag, in csv too.
        """
        await self.manage("user-add", "a@example.org")
        await self.manage("user-add", "b@example.org", "--admin")
        rows = await self.manageJSON("user-list")
        self.assertEqual([(r["email"], r["admin"]) for r in rows], [("a@example.org", False), ("b@example.org", True)])
        _code, out, _err = await self.manage("--output-format", "csv", "user-list")
        self.assertEqual(out.splitlines()[0], "id,uuid,email,name,admin,active,created")

    async def test_modify(self) -> None:
        """
        user-modify toggles the admin role and the active flag by e-mail, uuid or id.
        """
        data = await self.manageJSON("user-add", "a@example.org")
        await self.manageJSON("user-modify", "a@example.org", "--admin", "True")
        user = await UserRepository(self.database).get(data["id"])
        assert user is not None
        self.assertTrue(user.isAdmin)
        await self.manageJSON("user-modify", data["uuid"], "--admin", "false", "--active", "False")
        user = await UserRepository(self.database).get(data["id"])
        assert user is not None
        self.assertEqual((user.isAdmin, user.is_active), (False, False))

    async def test_renewToken(self) -> None:
        """
        --renew-token revokes the old token and prints a new one that works.
        """
        data = await self.manageJSON("user-add", "a@example.org")
        renewed = await self.manageJSON("user-modify", str(data["id"]), "--renew-token")
        users = UserRepository(self.database)
        self.assertIsNone(await users.byToken(data["token"], datetime.now(UTC)))
        self.assertIsNotNone(await users.byToken(renewed["token"], datetime.now(UTC)))

    async def test_modifyErrors(self) -> None:
        """
        An unknown user or nothing to change is an error.
        """
        code, _out, err = await self.manage("user-modify", "ghost@example.org", "--admin", "true")
        self.assertEqual(code, 1)
        self.assertIn("no user", err)
        await self.manage("user-add", "a@example.org")
        code, _out, err = await self.manage("user-modify", "a@example.org")
        self.assertEqual(code, 1)
        self.assertIn("nothing to change", err)

    async def test_tokenExpiry(self) -> None:
        """
        --token-days gives the new token (at user-add or renewal) an expiry:
        it works before and not after; --token-days without a renewal or
        out of range is bad input.
        """
        data = await self.manageJSON("user-add", "a@example.org", "--token-days", "2")
        users = UserRepository(self.database)
        now = datetime.now(UTC)
        self.assertIsNotNone(await users.byToken(data["token"], now + timedelta(days=1)))
        self.assertIsNone(await users.byToken(data["token"], now + timedelta(days=3)))
        renewed = await self.manageJSON("user-modify", "a@example.org", "--renew-token", "--token-days", "30")
        self.assertTrue(renewed["token_expires"])
        self.assertIsNotNone(await users.byToken(renewed["token"], now + timedelta(days=29)))
        self.assertIsNone(await users.byToken(renewed["token"], now + timedelta(days=31)))
        code, _out, err = await self.manage("user-modify", "a@example.org", "--token-days", "3")
        self.assertEqual(code, 2)
        self.assertIn("--renew-token", err)
        code, _out, _err = await self.manage("user-add", "b@example.org", "--token-days", "0")
        self.assertEqual(code, 2)
