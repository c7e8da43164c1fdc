# -*- test-case-name: tests.web.test_faults -*-
"""
API faults: the exceptions handlers raise and their JSON envelope (spec §1.2)::

    {"<faultName>": {"code": <int>, "message": "<str>", "details": "<str>"}}

The HTTP status equals C{code}; the fault name is the class name with its
first letter lower-cased.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import ClassVar


class Fault(Exception):
    """
    An API error rendered as a fault document.

    @cvar code: the HTTP status (and the document's C{code}).
    @cvar defaultMessage: the message when none is given.
    @ivar headers: extra response headers (C{Allow} for L{NotAllowed}).
    """

    code: ClassVar[int] = 500
    defaultMessage: ClassVar[str] = "Unexpected error"

    def __init__(self, message: str | None = None, details: str = "", headers: Mapping[str, str] | None = None):
        self.message = self.defaultMessage if message is None else message
        self.details = details
        self.headers: dict[str, str] = dict(headers or {})
        super().__init__(self.message)

    @property
    def name(self) -> str:
        cls = type(self).__name__
        return cls[:1].lower() + cls[1:]

    def document(self) -> dict[str, dict[str, object]]:
        return {self.name: {"code": self.code, "message": self.message, "details": self.details}}

    def body(self) -> bytes:
        """
        The JSON body; empty for 304, which must not carry one.
        """
        if self.code == 304:
            return b""
        return json.dumps(self.document()).encode("utf-8")


class NotModified(Fault):
    code = 304
    defaultMessage = "Not modified"


class BadRequest(Fault):
    code = 400
    defaultMessage = "Malformed request"


class Unauthorized(Fault):
    code = 401
    defaultMessage = "Access denied. No authentication token"


class Forbidden(Fault):
    code = 403
    defaultMessage = "Forbidden"


class ResizeNotAllowed(Fault):
    code = 403
    defaultMessage = "Resize not allowed"


class ItemNotFound(Fault):
    code = 404
    defaultMessage = "Item not found"


class FeatureNotEnabled(Fault):
    code = 404
    defaultMessage = "Feature not enabled"


class NotAllowed(Fault):
    """
    405 with the C{Allow} header listing the methods the resource accepts.
    """

    code = 405
    defaultMessage = "Method not allowed"

    def __init__(self, allowed: Iterable[str], message: str | None = None, details: str = "") -> None:
        self.allowed = sorted(set(allowed))
        super().__init__(message, details, {"Allow": ",".join(self.allowed)})


class Conflict(Fault):
    code = 409
    defaultMessage = "Conflict"


class BuildInProgress(Fault):
    code = 409
    defaultMessage = "Build in progress"


class LengthRequired(Fault):
    code = 411
    defaultMessage = "Length required"


class PreconditionFailed(Fault):
    code = 412
    defaultMessage = "Precondition failed"


class RequestEntityTooLarge(Fault):
    code = 413
    defaultMessage = "Request entity too large"


class OverLimit(Fault):
    code = 413
    defaultMessage = "Quota limit exceeded"


class BadMediaType(Fault):
    code = 415
    defaultMessage = "Unsupported media type"


class RangeNotSatisfiable(Fault):
    code = 416
    defaultMessage = "Range not satisfiable"


class NetworkInUse(Fault):
    code = 421
    defaultMessage = "Network in use"


class UnprocessableEntity(Fault):
    code = 422
    defaultMessage = "Unprocessable entity"


class InternalServerError(Fault):
    code = 500
    defaultMessage = "Unexpected error"


class NotImplementedFault(Fault):
    """
    501 C{notImplemented} (named so as not to shadow the builtin).
    """

    code = 501
    defaultMessage = "Not implemented"

    @property
    def name(self) -> str:
        return "notImplemented"


class ServiceUnavailable(Fault):
    code = 503
    defaultMessage = "Service unavailable"
