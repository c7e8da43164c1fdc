"""
Tests for L{web.auth}: where tokens come from, expiry, revocation, the admin role.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from twisted.internet.task import Clock

from tests.web.support import APITestCase
from web.auth import Authenticator, requireAdmin
from web.faults import Forbidden

PATH = "/compute/v2.0/flavors"


class AuthTests(APITestCase):
    async def test_header(self) -> None:
        """
        A valid token in the X-Auth-Token header is accepted.
        """
        reply = await self.call("GET", PATH, self.token)
        self.assertEqual(reply.code, 200)

    async def test_queryParameters(self) -> None:
        """
        The token may also come as the X-Auth-Token or token query parameter.
        """
        for name in ("X-Auth-Token", "token"):
            reply = await self.call("GET", f"{PATH}?{name}={self.token}")
            self.assertEqual(reply.code, 200, name)

    async def test_missing(self) -> None:
        """
        No token is a 401 unauthorized fault with Synnefo's message.
        """
        reply = await self.call("GET", PATH)
        inner = self.assertFault(reply, "unauthorized", 401)
        self.assertEqual(inner["message"], "Access denied. No authentication token")

    async def test_unknown(self) -> None:
        """
        An unknown token is 401.
        """
        self.assertFault(await self.call("GET", PATH, "not-a-token"), "unauthorized", 401)

    async def test_expired(self) -> None:
        """
        A token past its expiry is 401, one before it is accepted.
        """
        past = datetime.now(UTC) - timedelta(minutes=1)
        future = datetime.now(UTC) + timedelta(hours=1)
        old = await self.users.addToken(self.user.id, expires=past)
        fresh = await self.users.addToken(self.user.id, expires=future)
        self.assertFault(await self.call("GET", PATH, old), "unauthorized", 401)
        self.assertEqual((await self.call("GET", PATH, fresh)).code, 200)

    async def test_revoked(self) -> None:
        """
        A revoked token is 401.
        """
        await self.users.revokeTokens(self.user.id)
        self.assertFault(await self.call("GET", PATH, self.token), "unauthorized", 401)

    async def test_inactiveUser(self) -> None:
        """
        The token of a deactivated user is 401.
        """
        await self.users.modify(self.user.id, is_active=False)
        self.assertFault(await self.call("GET", PATH, self.token), "unauthorized", 401)

    async def test_adminRoute(self) -> None:
        """
        A route registered for admins is 403 forbidden for other users and served for admins.
        """
        self.app.router.add("GET", "/admin-only", lambda request, user: {"who": user.email}, "x", auth="admin")
        self.assertFault(await self.call("GET", "/admin-only", self.token), "forbidden", 403)
        reply = await self.call("GET", "/admin-only", self.adminToken)
        self.assertEqual(reply.json(), {"who": "admin@example.org"})

    def test_requireAdmin(self) -> None:
        """
        L{requireAdmin} returns an admin and raises L{Forbidden} for others.
        """
        self.assertIs(requireAdmin(self.admin), self.admin)
        self.assertRaises(Forbidden, requireAdmin, self.user)


class CacheTests(APITestCase):
    async def test_validationReused(self) -> None:
        """
        A valid token is served from the cache within cacheSeconds (even once revoked), and looked up again after.
        """
        clock = Clock()
        clock.advance(datetime.now(UTC).timestamp())
        authenticator = Authenticator(self.users, clock, cacheSeconds=10)
        self.assertEqual(await authenticator.userForToken(self.token), self.user)
        await self.users.revokeTokens(self.user.id)
        clock.advance(9)
        self.assertEqual(await authenticator.userForToken(self.token), self.user)
        clock.advance(2)
        self.assertIsNone(await authenticator.userForToken(self.token))

    async def test_unknownNotCached(self) -> None:
        """
        An unknown token is not remembered: once it exists, it is accepted at once.
        """
        authenticator = Authenticator(self.users, Clock(), cacheSeconds=10)
        self.assertIsNone(await authenticator.userForToken("later"))
        await self.users.addToken(self.user.id, token="later")
        self.assertEqual(await authenticator.userForToken("later"), self.user)

    async def test_sizeBound(self) -> None:
        """
        At most cacheSize validations are kept; the oldest goes first.
        """
        authenticator = Authenticator(self.users, Clock(), cacheSeconds=10, cacheSize=1)
        await authenticator.userForToken(self.token)
        await authenticator.userForToken(self.adminToken)
        await self.users.revokeTokens(self.user.id)
        self.assertIsNone(await authenticator.userForToken(self.token))
