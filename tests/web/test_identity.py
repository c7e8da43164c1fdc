"""
Tests for L{web.identity}.
"""

from __future__ import annotations

from typing import Any

from synnefo_twisted.db.repositories import ProjectRepository
from tests.web.support import BASE, APITestCase
from web.identity import serviceCatalog

TOKENS = "/identity/v2.0/tokens"


class TokensTests(APITestCase):
    def assertAccess(self, document: dict[str, Any], token: str) -> dict[str, Any]:
        access: dict[str, Any] = document["access"]
        self.assertEqual(access["token"]["id"], token)
        self.assertTrue(access["token"]["expires"].endswith("+00:00"))
        self.assertEqual(access["token"]["tenant"]["id"], self.user.uuid)
        self.assertEqual(access["user"]["id"], self.user.uuid)
        self.assertEqual(access["user"]["name"], "A User")
        self.assertEqual(access["serviceCatalog"], serviceCatalog(BASE))
        return access

    async def test_tokenCredentials(self) -> None:
        """
        C{{"auth": {"token": {"id": T}}}} answers the Keystone v2 access document for T's user.
        """
        reply = await self.call("POST", TOKENS, body={"auth": {"token": {"id": self.token}}})
        self.assertEqual(reply.code, 200)
        self.assertAccess(reply.json(), self.token)

    async def test_passwordCredentials(self) -> None:
        """
        passwordCredentials with the user's uuid or e-mail and the token as password are accepted.
        """
        for username in (self.user.uuid, self.user.email):
            body = {"auth": {"passwordCredentials": {"username": username, "password": self.token}}}
            reply = await self.call("POST", TOKENS, body=body)
            self.assertEqual(reply.code, 200, username)
            self.assertAccess(reply.json(), self.token)

    async def test_wrongUser(self) -> None:
        """
        A token presented with another user's name is 401.
        """
        body = {"auth": {"passwordCredentials": {"username": self.admin.uuid, "password": self.token}}}
        self.assertFault(await self.call("POST", TOKENS, body=body), "unauthorized", 401)

    async def test_badToken(self) -> None:
        """
        An unknown token is 401.
        """
        body = {"auth": {"token": {"id": "nope"}}}
        self.assertFault(await self.call("POST", TOKENS, body=body), "unauthorized", 401)

    async def test_malformed(self) -> None:
        """
        Missing credentials are 400 faults naming the attribute.
        """
        inner = self.assertFault(await self.call("POST", TOKENS, body={}), "badRequest", 400)
        self.assertIn("'auth'", inner["message"])
        inner = self.assertFault(await self.call("POST", TOKENS, body={"auth": {}}), "badRequest", 400)
        self.assertIn("passwordCredentials", inner["message"])
        body = {"auth": {"token": {"id": 5}}}
        inner = self.assertFault(await self.call("POST", TOKENS, body=body), "badRequest", 400)
        self.assertIn("'id'", inner["message"])

    async def test_tenant(self) -> None:
        """
        A tenant the user is a member of is echoed; any other is 401.
        """
        projects = ProjectRepository(self.database)
        project = await projects.create("team")
        await projects.addMember(project.id, self.user.id)
        body = {"auth": {"token": {"id": self.token}, "tenantId": project.uuid}}
        reply = await self.call("POST", TOKENS, body=body)
        self.assertEqual(reply.json()["access"]["token"]["tenant"]["id"], project.uuid)
        self.assertIn(project.uuid, reply.json()["access"]["user"]["projects"])
        body = {"auth": {"token": {"id": self.token}, "tenantId": "someone-else"}}
        self.assertFault(await self.call("POST", TOKENS, body=body), "unauthorized", 401)

    async def test_adminRole(self) -> None:
        """
        The admin role is listed among the user's roles.
        """
        reply = await self.call("POST", TOKENS, body={"auth": {"token": {"id": self.adminToken}}})
        self.assertEqual([r["name"] for r in reply.json()["access"]["user"]["roles"]], ["admin"])


class CatalogTests(APITestCase):
    def test_serviceCatalog(self) -> None:
        """
        The catalog names compute (versioned URL), network and image (unversioned), and account.
        """
        urls = {s["type"]: s["endpoints"][0]["publicURL"] for s in serviceCatalog(BASE + "/")}
        self.assertEqual(urls["compute"], BASE + "/compute/v2.0")
        self.assertEqual(urls["network"], BASE + "/network")
        self.assertEqual(urls["image"], BASE + "/image")
        self.assertEqual(urls["account"], BASE + "/account/v1.0")

    async def test_versionDocuments(self) -> None:
        """
        /identity/v3 and /identity/v2.0 answer version documents without a token.
        """
        reply = await self.call("GET", "/identity/v3")
        self.assertEqual(reply.json()["version"]["id"], "v3.0")
        self.assertEqual(reply.json()["version"]["links"][0]["href"], BASE + "/identity/v3")
        reply = await self.call("GET", "/identity/v2.0")
        self.assertEqual(reply.json()["version"]["id"], "v2.0")
        reply = await self.call("GET", "/identity")
        self.assertEqual([v["id"] for v in reply.json()["versions"]["values"]], ["v3.0", "v2.0"])

    async def test_userCatalogs(self) -> None:
        """
        user_catalogs maps known uuids to e-mails and e-mails to uuids, leaving out unknown ones.
        """
        body = {"uuids": [self.admin.uuid, "nobody"], "displaynames": ["user@example.org", "x@y"]}
        reply = await self.call("POST", "/account/v1.0/user_catalogs", self.token, body=body)
        self.assertEqual(
            reply.json(),
            {
                "uuid_catalog": {self.admin.uuid: "admin@example.org"},
                "displayname_catalog": {"user@example.org": self.user.uuid},
            },
        )

    async def test_userCatalogsNeedsToken(self) -> None:
        """
        user_catalogs without a token is 401; with a non-list field it is 400.
        """
        self.assertFault(await self.call("POST", "/account/v1.0/user_catalogs", body={}), "unauthorized", 401)
        reply = await self.call("POST", "/account/v1.0/user_catalogs", self.token, body={"uuids": "x"})
        self.assertFault(reply, "badRequest", 400)
