# -*- test-case-name: tests.vncproxy.test_broker -*-
"""
L{ConsoleBroker}: the L{IConsoleBroker} the API uses to ask the VNC proxy
for a one-time forwarding, over the control socket (TCP, optionally TLS),
like snf-vncauthproxy's C{request_forwarding}: it retries connecting
(5 times, 0.2 s apart by default), sends one JSON request, reads one JSON
reply (across partial reads) within a timeout.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import clientFromString
from twisted.internet.interfaces import IDelayedCall, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from synnefo_twisted.interfaces import IConsoleBroker
from vncproxy.control import MAX_REQUEST

log = Logger()


class ConsoleUnavailable(Exception):
    """
    The proxy refused or could not be reached; C{str()} says why.
    """


def controlClientEndpoint(reactor: Any, controlListen: str) -> IStreamClientEndpoint:
    """
    The client endpoint reaching a control socket configured as the server
    endpoint description C{controlListen} (C{tcp:PORT:interface=ADDR}).
    """
    parts = controlListen.split(":")
    if parts[0] not in ("tcp", "tcp6") or len(parts) < 2:
        raise ValueError(f"cannot derive a client endpoint from {controlListen!r}")
    port = parts[1]
    host = "127.0.0.1"
    for part in parts[2:]:
        if part.startswith("interface="):
            host = part.split("=", 1)[1] or host
    if host in ("0.0.0.0", "::", "*"):
        host = "127.0.0.1"
    host = host.replace(":", "\\:")
    return clientFromString(reactor, f"tcp:host={host}:port={port}")


class _ReplyProtocol(Protocol):
    transport: Any

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.reply: Deferred[dict[str, Any]] = Deferred()
        self.buffer = bytearray()

    def connectionMade(self) -> None:
        self.transport.write(self.request)

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > MAX_REQUEST:
            self._fail("reply too large")
            return
        try:
            obj = json.loads(self.buffer.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return
        if not self.reply.called:
            if isinstance(obj, dict):
                self.reply.callback(obj)
            else:
                self.reply.errback(ConsoleUnavailable("VNC proxy sent a reply that is not a JSON object"))
        self.transport.loseConnection()

    def _fail(self, why: str) -> None:
        if not self.reply.called:
            self.reply.errback(ConsoleUnavailable(f"VNC proxy: {why}"))
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:  # noqa: B008
        self._fail(f"connection closed before a complete reply ({reason.getErrorMessage()})")


@implementer(IConsoleBroker)
class ConsoleBroker:
    """
    The control-socket client.

    @param endpoint: where the control socket is (wrap it with TLS, e.g.
        C{wrapClientTLS}, for a TLS control socket).
    """

    def __init__(
        self,
        clock: IReactorTime,
        endpoint: IStreamClientEndpoint,
        authUser: str,
        authPassword: str,
        retries: int = 5,
        retryWait: float = 0.2,
        timeout: float = 60.0,
    ) -> None:
        self.clock = clock
        self.endpoint = endpoint
        self.authUser = authUser
        self.authPassword = authPassword
        self.retries = retries
        self.retryWait = retryWait
        self.timeout = timeout

    def requestForwarding(
        self,
        destinationAddress: str,
        destinationPort: int,
        password: str,
        consoleType: str,
    ) -> Deferred[dict[str, Any]]:
        request = {
            "source_port": 0,
            "destination_address": destinationAddress,
            "destination_port": destinationPort,
            "password": password,
            "auth_user": self.authUser,
            "auth_password": self.authPassword,
            "type": consoleType,
        }
        d = self._exchange(json.dumps(request).encode("utf-8") + b"\n")

        def interpret(reply: dict[str, Any]) -> dict[str, Any]:
            if reply.get("status") != "OK":
                raise ConsoleUnavailable(
                    f"vncauthproxy returned error status: {reply.get('reason', 'no reason given')}"
                )
            return {
                "host": reply.get("proxy_address"),
                "port": reply["source_port"],
                "password": password,
                "type": consoleType,
            }

        return d.addCallback(interpret)

    def _exchange(self, payload: bytes) -> Deferred[dict[str, Any]]:
        result: Deferred[dict[str, Any]] = Deferred()
        state: dict[str, Any] = {"attempt": 0, "proto": None}

        def timedOut() -> None:
            proto = state["proto"]
            if proto is not None and proto.transport is not None:
                proto.transport.abortConnection()
            if not result.called:
                result.errback(ConsoleUnavailable(f"VNC proxy did not answer within {self.timeout:g} s"))

        timer: IDelayedCall = self.clock.callLater(self.timeout, timedOut)

        def finished(value: Any) -> Any:
            if timer.active():
                timer.cancel()
            return value

        result.addBoth(finished)

        def attempt() -> None:
            state["attempt"] += 1
            proto = _ReplyProtocol(payload)
            state["proto"] = proto
            factory = Factory.forProtocol(lambda: proto)
            factory.noisy = False
            d = self.endpoint.connect(factory)

            def connected(_: Any) -> None:
                proto.reply.chainDeferred(result) if not result.called else None

            def connectFailed(f: Failure) -> None:
                if result.called:
                    return
                if state["attempt"] < self.retries:
                    deferLater(self.clock, self.retryWait, attempt).addErrback(
                        lambda f: log.failure("vncproxy broker retry failed", f)
                    )
                else:
                    result.errback(ConsoleUnavailable(f"cannot reach the VNC proxy: {f.getErrorMessage()}"))

            d.addCallbacks(connected, connectFailed)

        attempt()
        return result


def makeBroker(reactor: Any, control: str, authUser: str, authPassword: str) -> ConsoleBroker:
    """
    The broker for a control socket given as a Twisted I{client} endpoint
    description: C{tcp:host=127.0.0.1:port=24999}, or for a TLS control
    socket C{tls:host=proxy.example.org:port=24999:trustRoots=/etc/ssl/vnc}.
    """
    return ConsoleBroker(reactor, clientFromString(reactor, control), authUser, authPassword)
