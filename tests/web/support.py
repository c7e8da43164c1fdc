"""
Shared set-up of the web tests: a migrated in-memory SQLite database, the
API application and a L{StubTreq} over its resource.
"""

from __future__ import annotations

import json
from typing import Any

from treq.testing import StubTreq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from twisted.web.server import Site

from synnefo_twisted.db.repositories import UserRepository
from synnefo_twisted.testing import memoryDatabase
from web.app import APIApplication

BASE = "http://api.example.org"


class Reply:
    def __init__(self, code: int, headers: Any, body: bytes) -> None:
        self.code = code
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        values = self.headers.getRawHeaders(name)
        return values[0] if values else None


class APITestCase(TestCase):
    """
    C{self.app}, C{self.database}, C{self.user}/C{self.token} (a plain
    user) and C{self.admin}/C{self.adminToken}.
    """

    timeout = 30

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        return Deferred.fromCoroutine(self._setUp())

    async def _setUp(self) -> None:
        self.database = await self.openDatabase()
        self.addCleanup(self.database.stopService)
        self.app = APIApplication(self.database, reactor, BASE)
        self.stub: Any = StubTreq(self.app.resource())
        self.users = UserRepository(self.database)
        self.user, self.token = await self.users.create("user@example.org", "A User")
        self.admin, self.adminToken = await self.users.create("admin@example.org", roles=["admin"])

    def openDatabase(self) -> Deferred[Any]:
        """
        A started, migrated database (SQLite in memory; overridden to run the same tests on PostgreSQL).
        """
        return memoryDatabase(reactor)

    def call(
        self,
        method: str,
        path: str,
        token: str | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Deferred[Reply]:
        return Deferred.fromCoroutine(self._call(method, path, token, body, headers, raw))

    async def _call(
        self,
        method: str,
        path: str,
        token: str | None,
        body: Any,
        headers: dict[str, str] | None,
        raw: bytes | None,
    ) -> Reply:
        allHeaders = dict(headers or {})
        if token is not None:
            allHeaders["X-Auth-Token"] = token
        data = raw
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            allHeaders.setdefault("Content-Type", "application/json")
        response = await self._settle(self.stub.request(method, BASE + path, headers=allHeaders, data=data))
        payload = await self._settle(self.stub.content(response))
        return Reply(response.code, response.headers, payload)

    async def _settle(self, d: Deferred[Any]) -> Any:
        """
        Pump the stub until C{d} has a result (the database answers from a thread).
        """
        results: list[Any] = []
        d.addBoth(results.append)
        while not results:
            self.stub.flush()
            if not results:
                await deferLater(reactor, 0.001, lambda: None)
        if isinstance(results[0], Failure):
            results[0].raiseException()
        return results[0]

    async def rawExchange(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[bytes, dict[bytes, bytes], bytes]:
        """
        One request over a real TCP connection, read as bytes (a client
        library would hide the framing headers, and treq asks for gzip and
        decodes it): status line, headers (lower-cased names), body.
        """
        port = reactor.listenTCP(0, Site(self.app.resource()), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        received = Deferred[bytes]()

        class Collect(Protocol):
            chunks: list[bytes] = []

            def connectionMade(self) -> None:
                self.chunks = []
                self.transport.write(
                    b"%s %s HTTP/1.1\r\nHost: api\r\nX-Auth-Token: %s\r\nContent-Length: %d\r\n%s"
                    b"Connection: close\r\n\r\n%s" % (method.encode(), path.encode(), token, len(body), extra, body)
                )

            def dataReceived(self, data: bytes) -> None:
                self.chunks.append(data)

            def connectionLost(self, reason: object = None) -> None:
                received.callback(b"".join(self.chunks))

        token = self.token.encode()
        extra = b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in (headers or {}).items())
        await TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port).connect(Factory.forProtocol(Collect))
        raw = await received
        head, _, payload = raw.partition(b"\r\n\r\n")
        status, *lines = head.split(b"\r\n")
        found = {name.strip().lower(): value.strip() for name, _, value in (line.partition(b":") for line in lines)}
        return status, found, payload

    def assertFault(self, reply: Reply, name: str, code: int) -> dict[str, Any]:
        """
        C{reply} is the fault C{name} with status C{code}; its inner object.
        """
        self.assertEqual(reply.code, code, reply.body)
        document = reply.json()
        self.assertEqual(list(document), [name])
        inner: dict[str, Any] = document[name]
        self.assertEqual(inner["code"], code)
        self.assertIsInstance(inner["message"], str)
        self.assertIsInstance(inner["details"], str)
        return inner
