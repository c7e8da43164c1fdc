# -*- test-case-name: tests.web.test_app -*-
"""
The route table of the API: one Klein application whose routes are
registered with what they need (no token, a user, an admin) and a summary,
so that the OpenAPI document (L{web.openapi}) is built from the same table
the application serves.

Handlers take C{(request, user, **pathArguments)} (or C{(request,
**pathArguments)} for public routes) and return a JSON-able object (200),
a L{web.http.Reply}, or a Deferred/coroutine of either; they raise
L{web.faults.Fault}s. Unknown URLs are 404 C{itemNotFound}, wrong methods
405 C{notAllowed} with C{Allow}, anything unexpected 500 (logged).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import attrs
from klein import Klein
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import IntegerConverter, Map

from web.auth import Authenticator, requireAdmin
from web.faults import Fault, InternalServerError, ItemNotFound, NotAllowed
from web.http import Reply, acceptsGzip, dumps, setCommonHeaders
from web.memo import CompressedBodies

log = Logger()

AUTH_KINDS = ("none", "user", "admin")

# The largest id a database column holds (BIGINT): larger ids in URLs match no route (404), never reach a query.
MAX_ID = (1 << 63) - 1


class IdConverter(IntegerConverter):
    """
    C{<int:name>}: a non-negative integer of at most L{MAX_ID}.
    """

    def __init__(self, map: Map, fixed_digits: int = 0, min: int | None = 0, max: int | None = MAX_ID) -> None:
        super().__init__(map, fixed_digits, min, max)


@attrs.frozen
class Route:
    """
    One method on one path (a werkzeug rule such as C{/compute/v2.0/flavors/<int:flavor_id>}).
    """

    method: str
    path: str
    summary: str
    auth: str
    tag: str


class Router:
    """
    Routes and their handlers, over one Klein application (C{self.app}).
    """

    def __init__(self, authenticator: Authenticator) -> None:
        self.app = Klein()
        self.app.url_map.converters["int"] = IdConverter
        self.routes: list[Route] = []
        self._authenticator = authenticator
        # gzip forms of reused answers (Reply.shared)
        self.compressed = CompressedBodies()
        self.app.handle_errors(Exception)(self._failed)

    def add(
        self,
        method: str,
        path: str,
        handler: Callable[..., Any],
        summary: str,
        auth: str = "user",
        tag: str = "",
    ) -> None:
        """
        Serve C{method path} with C{handler}.

        @param auth: C{none} (public), C{user} (a valid token) or C{admin}
            (a valid token of a user with the admin role).
        """
        if auth not in AUTH_KINDS:
            raise ValueError(f"auth must be one of {AUTH_KINDS}, not {auth!r}")
        route = Route(method.upper(), path, summary, auth, tag)
        if any((r.method, r.path) == (route.method, route.path) for r in self.routes):
            raise ValueError(f"route {route.method} {route.path} registered twice")
        self.routes.append(route)
        authenticator = self._authenticator
        compressed = self.compressed

        async def endpoint(request: IRequest, **kwargs: Any) -> bytes:
            setCommonHeaders(request)
            if auth == "none":
                result = handler(request, **kwargs)
            else:
                user = await authenticator.authenticate(request)
                if auth == "admin":
                    requireAdmin(user)
                result = handler(request, user, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            return _render(request, result, compressed)

        self.app.route(
            path,
            methods=[route.method],
            endpoint=f"{route.method} {path}",
            strict_slashes=False,
        )(endpoint)

    def _failed(self, request: IRequest, failure: Failure) -> bytes:
        error = failure.value
        if isinstance(error, Fault):
            fault = error
        elif isinstance(error, MethodNotAllowed):
            fault = NotAllowed(error.valid_methods or ())
        elif isinstance(error, NotFound):
            fault = ItemNotFound("API endpoint not found")
        elif isinstance(error, HTTPException):
            fault = Fault(error.description or error.name)
            fault.code = error.code or 500  # type: ignore[misc]
        else:
            log.failure("unexpected error serving {method} {uri}", failure, method=request.method, uri=request.uri)
            fault = InternalServerError()
        setCommonHeaders(request)
        request.setResponseCode(fault.code)
        for name, value in fault.headers.items():
            request.setHeader(name, value)
        return _sized(request, fault.body())


def _sized(request: IRequest, body: bytes) -> bytes:
    # a length, rather than chunks: one write of the whole answer (and what
    # HEAD answers should tell); 204 and 304 answers have no body to size
    if body or getattr(request, "code", 200) not in (204, 304):
        request.setHeader(b"Content-Length", b"%d" % len(body))
    return body


# reused answers shorter than this are sent as they are
GZIP_MIN_SIZE = 1024


def _render(request: IRequest, result: Any, compressed: CompressedBodies) -> bytes:
    if isinstance(result, Reply):
        request.setResponseCode(result.code)
        for name, value in result.headers:
            request.setHeader(name, value)
        if result.body is None:
            return _sized(request, b"")
        if isinstance(result.body, bytes):
            body = result.body
            if result.shared:
                request.setHeader(b"Vary", b"X-Auth-Token, Accept-Encoding")
                if len(body) >= GZIP_MIN_SIZE and acceptsGzip(request):
                    request.setHeader(b"Content-Encoding", b"gzip")
                    body = compressed.gzip(body)
            return _sized(request, body)
        return _sized(request, dumps(result.body))
    return _sized(request, dumps(result))
