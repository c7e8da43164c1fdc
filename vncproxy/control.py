# -*- test-case-name: tests.vncproxy.test_control -*-
"""
The control protocol of snf-vncauthproxy: one JSON object per connection,
answered with one JSON object, then the connection is closed.

Request (the original's fields; C{destination_password} is ours)::

    {"source_port": 0, "destination_address": "node1", "destination_port": 11000,
     "password": "<one-time>", "auth_user": "u", "auth_password": "p",
     "type": "vnc" | "vnc-ws" | "vnc-wss", "destination_password": "<optional>"}

Reply: C{{"source_port", "status": "OK"|"FAILED", "proxy_address"[, "reason"]}}
(a reason on every failure), followed by a newline.

The request is read robustly: across partial reads, with or without a
trailing newline, up to L{MAX_REQUEST} bytes and within a read timeout.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IDelayedCall, IHalfCloseableProtocol, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

log = Logger()

CONSOLE_TYPES = ("vnc", "vnc-ws", "vnc-wss")
MAX_REQUEST = 64 * 1024
READ_TIMEOUT = 10.0


class RequestError(Exception):
    """
    The request cannot be served; C{str()} is the reason for the reply.
    """


@attrs.frozen
class ControlRequest:
    source_port: int
    destination_address: str
    destination_port: int
    password: str = attrs.field(repr=False)
    auth_user: str
    auth_password: str = attrs.field(repr=False)
    type: str = "vnc"
    destination_password: str | None = attrs.field(default=None, repr=False)


def _isInt(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def validateRequest(obj: Any) -> ControlRequest:
    """
    Check a decoded request (pure).

    @raise RequestError: naming the first problem.
    """
    if not isinstance(obj, dict):
        raise RequestError("Malformed request: expected a JSON object")
    for key in ("source_port", "destination_address", "destination_port", "password", "auth_user", "auth_password"):
        if key not in obj:
            raise RequestError(f"Malformed request: missing key {key!r}")
    consoleType = obj.get("type", "vnc")
    if consoleType not in CONSOLE_TYPES:
        raise RequestError(f"{consoleType} not supported")
    sport, daddr, dport = obj["source_port"], obj["destination_address"], obj["destination_port"]
    if not _isInt(sport) or not 0 <= sport <= 65535:
        raise RequestError("Malformed request: source_port must be an integer in [0, 65535]")
    if not isinstance(daddr, str) or not daddr or len(daddr) > 255:
        raise RequestError("Malformed request: destination_address must be a host name or address")
    if not _isInt(dport) or not 1 <= dport <= 65535:
        raise RequestError("Malformed request: destination_port must be an integer in [1, 65535]")
    for key in ("password", "auth_user", "auth_password"):
        if not isinstance(obj[key], str):
            raise RequestError(f"Malformed request: {key} must be a string")
    password = obj["password"]
    if not password:
        raise RequestError("Malformed request: password must not be empty")
    dpass = obj.get("destination_password")
    for key, value in (("password", password), ("destination_password", dpass or "")):
        try:
            value.encode("latin-1") if isinstance(value, str) else None
        except UnicodeEncodeError:
            raise RequestError(f"Malformed request: {key} must be latin-1 text (VNC passwords are bytes)") from None
    if dpass is not None and not isinstance(dpass, str):
        raise RequestError("Malformed request: destination_password must be a string")
    return ControlRequest(
        source_port=sport,
        destination_address=daddr,
        destination_port=dport,
        password=password,
        auth_user=obj["auth_user"],
        auth_password=obj["auth_password"],
        type=consoleType,
        destination_password=dpass or None,
    )


_INCOMPLETE = object()


def decodeRequest(buffer: bytes, final: bool = False) -> Any:
    """
    Decode the JSON request in C{buffer}.

    @param final: no more bytes will come (the peer closed or the limit was hit).
    @return: the decoded object, or L{_INCOMPLETE} when more bytes may complete it.
    @raise RequestError: when the bytes cannot be (the start of) one JSON object.
    """
    try:
        text = buffer.decode("utf-8")
    except UnicodeDecodeError as e:
        if not final and e.reason == "unexpected end of data":
            return _INCOMPLETE
        raise RequestError("Malformed request: not UTF-8") from None
    doc = text.strip()
    if not doc:
        if final:
            raise RequestError("Malformed request: empty")
        return _INCOMPLETE
    if not doc.startswith("{"):
        raise RequestError("Malformed request: expected a JSON object")
    try:
        obj, end = json.JSONDecoder().raw_decode(doc)
    except json.JSONDecodeError as e:
        truncated = e.pos >= len(doc) or e.msg.startswith("Unterminated string")
        if truncated and not final:
            return _INCOMPLETE
        raise RequestError(f"Malformed request: {e.msg} at byte {e.pos}") from None
    if doc[end:].strip():
        raise RequestError("Malformed request: data after the JSON object")
    return obj


def failedReply(reason: str) -> dict[str, Any]:
    return {"source_port": 0, "status": "FAILED", "proxy_address": None, "reason": reason}


def okReply(port: int, proxyAddress: str) -> dict[str, Any]:
    return {"source_port": port, "status": "OK", "proxy_address": proxyAddress}


Handler = Callable[[ControlRequest], "Deferred[dict[str, Any]]"]


@implementer(IHalfCloseableProtocol)
class ControlProtocol(Protocol):
    """
    Read one request, hand it to the handler, write its reply, close.
    """

    transport: Any

    def __init__(self, handler: Handler, clock: IReactorTime, timeout: float = READ_TIMEOUT) -> None:
        self._handler = handler
        self._clock = clock
        self._timeout = timeout
        self._buffer = bytearray()
        self._timer: IDelayedCall | None = None
        self._answered = False
        self._connected = False

    def connectionMade(self) -> None:
        self._connected = True
        self._timer = self._clock.callLater(self._timeout, self._timedOut)

    def _cancelTimer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _timedOut(self) -> None:
        self._timer = None
        self._tryDecode(final=True, why=f"no complete request within {self._timeout:g} s")

    def dataReceived(self, data: bytes) -> None:
        if self._answered:
            return
        self._buffer += data
        if len(self._buffer) > MAX_REQUEST:
            self._reply(failedReply(f"Malformed request: larger than {MAX_REQUEST} bytes"))
            return
        self._tryDecode(final=False)

    def readConnectionLost(self) -> None:
        # IHalfCloseableProtocol: the client half-closed after its request.
        if not self._answered:
            self._tryDecode(final=True)

    def writeConnectionLost(self) -> None:
        pass

    def _tryDecode(self, final: bool, why: str = "") -> None:
        if self._answered:
            return
        try:
            obj = decodeRequest(bytes(self._buffer), final=final)
            if obj is _INCOMPLETE:
                return
            request = validateRequest(obj)
        except RequestError as e:
            reason = str(e) if not why else f"Malformed request: {why}"
            log.info("vncproxy control request refused: {reason}", reason=reason)
            self._reply(failedReply(reason))
            return
        self._answered = True
        self._cancelTimer()
        d = maybeDeferred(self._handler, request)
        d.addErrback(self._handlerFailed)
        d.addCallback(self._reply)

    def _handlerFailed(self, failure: Failure) -> dict[str, Any]:
        log.failure("vncproxy control request failed", failure)
        return failedReply(f"internal error: {failure.getErrorMessage()}")

    def _reply(self, reply: dict[str, Any]) -> None:
        self._answered = True
        self._cancelTimer()
        if self._connected:
            self.transport.write(json.dumps(reply).encode("utf-8") + b"\n")
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:  # noqa: B008
        self._connected = False
        self._cancelTimer()


class ControlFactory(Factory):
    noisy = False

    def __init__(self, handler: Handler, clock: IReactorTime, timeout: float = READ_TIMEOUT) -> None:
        self.handler = handler
        self.clock = clock
        self.timeout = timeout

    def buildProtocol(self, addr: Any) -> ControlProtocol:
        return ControlProtocol(self.handler, self.clock, self.timeout)
