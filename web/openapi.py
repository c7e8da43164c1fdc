# -*- test-case-name: tests.web.test_openapi -*-
"""
The OpenAPI 3 document of what the API serves, built from the route
table (L{web.routing.Router.routes}).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from web.routing import MAX_ID, Route

_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")

_ERRORS = {
    "400": "badRequest fault",
    "401": "unauthorized fault",
    "403": "forbidden fault",
    "404": "itemNotFound fault",
    "405": "notAllowed fault",
}


def openAPIPath(rule: str) -> str:
    """
    A werkzeug rule as an OpenAPI path: C{<int:flavor_id>} -> C{{flavor_id}}.
    """
    return _PARAM.sub(lambda m: "{" + m.group(2) + "}", rule)


def _operation(route: Route) -> dict[str, Any]:
    parameters = [
        {
            "name": m.group(2),
            "in": "path",
            "required": True,
            "schema": (
                {"type": "integer", "format": "int64", "minimum": 0, "maximum": MAX_ID}
                if m.group(1) == "int"
                else {"type": "string"}
            ),
        }
        for m in _PARAM.finditer(route.path)
    ]
    responses: dict[str, Any] = {
        "default": {"description": "success or a fault", "content": {"application/json": {"schema": {}}}}
    }
    for code, description in _ERRORS.items():
        if code in ("401", "403") and route.auth == "none":
            continue
        responses[code] = {"description": description, "content": {"application/json": {"schema": _FAULT}}}
    operation: dict[str, Any] = {
        "summary": route.summary,
        "operationId": f"{route.method.lower()}_{openAPIPath(route.path)}",
        "tags": [route.tag] if route.tag else [],
        "parameters": parameters,
        "responses": responses,
    }
    if route.auth == "none":
        operation["security"] = []
    elif route.auth == "admin":
        operation["x-synnefo-admin"] = True
    if route.method in ("POST", "PUT"):
        operation["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    return operation


_FAULT: dict[str, Any] = {
    "type": "object",
    "minProperties": 1,
    "maxProperties": 1,
    "additionalProperties": {
        "type": "object",
        "required": ["code", "message", "details"],
        "properties": {"code": {"type": "integer"}, "message": {"type": "string"}, "details": {"type": "string"}},
    },
}


def openAPIDocument(routes: Sequence[Route], baseURL: str, version: str) -> dict[str, Any]:
    """
    The OpenAPI 3.0 document of C{routes}.
    """
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(openAPIPath(route.path), {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "synnefo-twisted API",
            "version": version,
            "description": "Synnefo (Cyclades/Astakos) compatible compute, network, image and identity APIs.",
        },
        "servers": [{"url": baseURL.rstrip("/") or "/"}],
        "components": {
            "securitySchemes": {"token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"}},
            "schemas": {"Fault": _FAULT},
        },
        "security": [{"token": []}],
        "paths": dict(sorted(paths.items())),
    }
