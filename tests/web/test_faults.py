"""
Tests for L{web.faults} and the error handling of the route table.
"""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from tests.web.support import APITestCase
from web import faults


class FaultTests(SynchronousTestCase):
    def test_envelope(self) -> None:
        """
        A fault renders as C{{name: {code, message, details}}} with its class name lower-camel-cased.
        """
        fault = faults.BadRequest("Invalid 'name' field", details="x")
        self.assertEqual(
            json.loads(fault.body()), {"badRequest": {"code": 400, "message": "Invalid 'name' field", "details": "x"}}
        )

    def test_codes(self) -> None:
        """
        Each fault of spec §1.2 has its name and status.
        """
        expected = {
            faults.BadRequest: ("badRequest", 400),
            faults.Unauthorized: ("unauthorized", 401),
            faults.Forbidden: ("forbidden", 403),
            faults.ItemNotFound: ("itemNotFound", 404),
            faults.Conflict: ("conflict", 409),
            faults.BuildInProgress: ("buildInProgress", 409),
            faults.OverLimit: ("overLimit", 413),
            faults.BadMediaType: ("badMediaType", 415),
            faults.NotImplementedFault: ("notImplemented", 501),
            faults.ServiceUnavailable: ("serviceUnavailable", 503),
            faults.InternalServerError: ("internalServerError", 500),
        }
        for cls, (name, code) in expected.items():
            fault = cls()
            self.assertEqual((fault.name, fault.code), (name, code))
            self.assertEqual(json.loads(fault.body())[name]["code"], code)

    def test_notAllowedHeader(self) -> None:
        """
        L{faults.NotAllowed} carries an C{Allow} header with the sorted methods.
        """
        self.assertEqual(faults.NotAllowed(["POST", "GET"]).headers, {"Allow": "GET,POST"})

    def test_notModifiedHasNoBody(self) -> None:
        """
        A 304 fault renders no body.
        """
        self.assertEqual(faults.NotModified().body(), b"")


class RoutingFaultTests(APITestCase):
    async def test_unknownURL(self) -> None:
        """
        An unknown URL is a 404 itemNotFound fault with JSON headers.
        """
        reply = await self.call("GET", "/compute/v2.0/nothing-here", self.token)
        inner = self.assertFault(reply, "itemNotFound", 404)
        self.assertEqual(inner["message"], "API endpoint not found")
        self.assertEqual(reply.header("Content-Type"), "application/json; charset=UTF-8")
        self.assertEqual(reply.header("Vary"), "X-Auth-Token")

    async def test_sized(self) -> None:
        """
        Answers and faults carry their length (one write, no chunks); an
        answer without a body (204) carries none.
        """
        reply = await self.call("POST", "/compute/v2.0/os-keypairs", self.token, {"keypair": {"name": "k"}})
        self.assertEqual(reply.code, 201, reply.body)
        for method, path, code in (
            ("GET", "/compute/v2.0/os-keypairs", b"200"),
            ("GET", "/compute/v2.0/nothing-here", b"404"),
            ("DELETE", "/compute/v2.0/os-keypairs/k", b"204"),
        ):
            status, headers, payload = await self.rawExchange(method, path)
            self.assertEqual(status.split()[1], code, (path, status, payload))
            self.assertNotIn(b"transfer-encoding", headers)
            if code == b"204":
                self.assertEqual(payload, b"")
                self.assertNotIn(b"content-length", headers)
            else:
                self.assertEqual(headers[b"content-length"], b"%d" % len(payload))
                json.loads(payload)

    async def test_wrongMethod(self) -> None:
        """
        A wrong method is a 405 notAllowed fault with C{Allow} listing the methods.
        """
        reply = await self.call("PUT", "/compute/v2.0/os-keypairs", self.token)
        self.assertFault(reply, "notAllowed", 405)
        self.assertEqual(set((reply.header("Allow") or "").split(",")), {"GET", "POST", "HEAD"})

    async def test_nonIntegerId(self) -> None:
        """
        A flavor id that is not a number does not match a route: 404.
        """
        reply = await self.call("GET", "/compute/v2.0/flavors/abc", self.token)
        self.assertFault(reply, "itemNotFound", 404)

    async def test_unexpectedError(self) -> None:
        """
        An exception that is not a fault is a logged 500 internalServerError.
        """

        def broken(request: object) -> object:
            raise ZeroDivisionError("oops")

        self.app.router.add("GET", "/broken", broken, "always fails", auth="none")
        reply = await self.call("GET", "/broken")
        inner = self.assertFault(reply, "internalServerError", 500)
        self.assertEqual(inner["message"], "Unexpected error")
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    async def test_badBodies(self) -> None:
        """
        Missing or wrong Content-Type, invalid UTF-8 and invalid JSON are 400 faults naming the problem.
        """
        path = "/compute/v2.0/os-keypairs"
        cases = [
            ({}, b"{}", "Missing Content-Type header field"),
            ({"Content-Type": "text/plain"}, b"{}", "Unsupported Content-type: 'text/plain'"),
            ({"Content-Type": "application/json"}, b"\xff\xfe", "Could not decode request as UTF-8 string"),
            ({"Content-Type": "application/json"}, b"{nope", "Could not decode request body as JSON"),
        ]
        for headers, raw, message in cases:
            reply = await self.call("POST", path, self.token, headers=headers, raw=raw)
            self.assertEqual(self.assertFault(reply, "badRequest", 400)["message"], message)
