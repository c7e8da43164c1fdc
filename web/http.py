# -*- test-case-name: tests.web.test_app -*-
"""
JSON in and out (spec §1.2): request bodies, query arguments, response
headers, dates and C{limit}/C{marker} pagination. Plain functions over a
Twisted request.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import attrs
import orjson
from twisted.web.iweb import IRequest

from web.faults import BadRequest, ItemNotFound

T = TypeVar("T")

JSON_TYPE = b"application/json; charset=UTF-8"

# Every API response carries these (spec §1.2: never cached, varies by token).
COMMON_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"Content-Type", JSON_TYPE),
    (b"Cache-Control", b"no-cache, no-store, must-revalidate, max-age=0"),
    (b"Expires", b"Thu, 01 Jan 1970 00:00:00 GMT"),
    (b"Vary", b"X-Auth-Token"),
)


@attrs.frozen
class Reply:
    """
    What a handler returns when the status is not 200 or there is no body.
    """

    code: int
    body: Any = None
    headers: tuple[tuple[str, str], ...] = ()
    # the body (bytes) is an answer reused while nothing changes (web.memo):
    # it is sent gzip-compressed to clients that accept it, compressed once
    shared: bool = False


def acceptsGzip(request: IRequest) -> bool:
    """
    Whether the request's C{Accept-Encoding} admits C{gzip} (or C{*}) with
    a quality above 0 (RFC 9110 section 12.5.3), as python-requests (hence
    keystoneauth, openstacksdk, novaclient) and browsers send by default.
    """
    raw = request.getHeader(b"accept-encoding")
    if not raw:
        return False
    header = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    for item in header.split(","):
        name, _, params = item.partition(";")
        if name.strip().lower() not in ("gzip", "x-gzip", "*"):
            continue
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0
        return quality > 0
    return False


def setCommonHeaders(request: IRequest) -> None:
    for name, value in COMMON_HEADERS:
        request.setHeader(name, value)


_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps(document: Any) -> bytes:
    """
    C{document} as compact UTF-8 JSON (orjson; the standard library's
    encoder for what orjson refuses, such as integers beyond 64 bits).
    """
    try:
        return orjson.dumps(document, option=_ORJSON_OPTIONS)
    except TypeError:
        return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def isoformat(moment: datetime | None) -> str | None:
    """
    Synnefo's date format: UTC with C{+00:00} (microseconds kept when present).
    """
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat() + "+00:00"


def queryArg(request: IRequest, name: str) -> str | None:
    """
    The first value of query argument C{name}, decoded, or None.
    """
    args: dict[bytes, list[bytes]] = getattr(request, "args", None) or {}
    values = args.get(name.encode("ascii"))
    if not values:
        return None
    try:
        return values[0].decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"Invalid '{name}' parameter.") from None


def readJSON(request: IRequest) -> Any:
    """
    The request body as JSON, checked as Synnefo's C{get_json_body} does.
    """
    contentType = request.getHeader(b"content-type")
    if contentType is None:
        raise BadRequest("Missing Content-Type header field")
    ct = contentType.decode("latin-1")
    if not ct.lower().startswith("application/json"):
        raise BadRequest(f"Unsupported Content-type: '{ct}'")
    content = getattr(request, "content", None)
    raw: bytes = content.read() if content is not None else b""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("Could not decode request as UTF-8 string") from None
    try:
        return json.loads(text)
    except ValueError:
        raise BadRequest("Could not decode request body as JSON") from None


_MISSING = object()


def attribute(obj: Any, name: str, kind: type | tuple[type, ...], required: bool = True, default: Any = None) -> Any:
    """
    C{obj[name]} checked to be of C{kind} (Synnefo's C{get_attribute}).
    """
    if not isinstance(obj, dict):
        raise BadRequest(f"Malformed request. Invalid '{name}' field")
    value = obj.get(name, _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise BadRequest(f"Malformed request. Missing attribute '{name}'.")
        return default
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, (int,))):
        raise BadRequest(f"Malformed request. Invalid '{name}' field")
    return value


def paginate(request: IRequest, items: Sequence[T], key: Callable[[T], object]) -> tuple[list[T], bool]:
    """
    Apply C{?marker=} (the id of the last item already seen) and
    C{?limit=}; also say whether the limit cut the list (a next page may exist).
    """
    result = list(items)
    marker = queryArg(request, "marker")
    if marker is not None:
        ids = [str(key(item)) for item in result]
        if marker not in ids:
            raise BadRequest(f"marker [{marker}] not found")
        result = result[ids.index(marker) + 1 :]
    rawLimit = queryArg(request, "limit")
    if rawLimit is None:
        return result, False
    try:
        limit = int(rawLimit)
    except ValueError:
        raise BadRequest("limit param must be an integer") from None
    if limit < 0:
        raise BadRequest("limit param must be positive")
    return result[:limit], len(result) > limit


def parseID(raw: str, what: str) -> int:
    """
    An integer id from a URL, else 404 (ids that cannot exist are not found).
    """
    if not raw.isdigit():
        raise ItemNotFound(f"{what} {raw} not found")
    return int(raw)
