"""
Tests for L{web.openapi}: C{/openapi.json} lists exactly what the application serves.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.web.support import APITestCase
from web.openapi import openAPIPath


class OpenAPIPathTests(SynchronousTestCase):
    def test_converters(self) -> None:
        """
        werkzeug placeholders become OpenAPI path templates.
        """
        self.assertEqual(openAPIPath("/a/<int:flavor_id>/b/<name>"), "/a/{flavor_id}/b/{name}")


class OpenAPIDocumentTests(APITestCase):
    async def test_matchesRoutes(self) -> None:
        """
        Every (method, path) of the Klein URL map is in the document and nothing else is.
        """
        reply = await self.call("GET", "/openapi.json")
        self.assertEqual(reply.code, 200)
        document = reply.json()
        self.assertEqual(document["openapi"], "3.0.3")
        documented = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
        served = set()
        for rule in self.app.router.app.url_map.iter_rules():
            methods = set(rule.methods or ())
            for method in methods:
                # werkzeug adds HEAD to GET rules; a HEAD rule of its own is served (and documented)
                if method == "OPTIONS" or (method == "HEAD" and methods != {"HEAD"}):
                    continue
                served.add((method, openAPIPath(rule.rule)))
        self.assertEqual(documented, served)
        self.assertIn(("GET", "/compute/v2.0/flavors/{flavor_id}"), documented)
        self.assertIn(("POST", "/identity/v2.0/tokens"), documented)
        self.assertIn(("HEAD", "/image/v1.0/images/{image_id}"), documented)

    async def test_publicRoutesNeedNoToken(self) -> None:
        """
        Operations without security are served without a token; others answer 401 without one.
        """
        document = (await self.call("GET", "/openapi.json")).json()
        for path, ops in document["paths"].items():
            if "{" in path:
                continue
            for method, operation in ops.items():
                if method != "get":
                    continue
                reply = await self.call("GET", path)
                if operation.get("security") == []:
                    self.assertEqual(reply.code, 200, path)
                else:
                    self.assertEqual(reply.code, 401, path)
