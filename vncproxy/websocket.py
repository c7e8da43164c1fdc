# -*- test-case-name: tests.vncproxy.test_websocket -*-
"""
The viewer side over a WebSocket (C{vnc-ws}, and C{vnc-wss} behind TLS),
for noVNC: any path, binary frames, the C{binary} subprotocol when the
client offers it or none (noVNC 1.3 offers none); a client offering only
other subprotocols (C{base64}) is refused. One WebSocket per forwarding:
later ones are closed with 1001 "Only a single connection allowed". RFB
authentication then runs over the WebSocket.

autobahn's own timers would use the global reactor, so they are all
disabled; the forwarding's timers (injected clock) bound the handshake and
L{CLOSE_TIMEOUT} bounds the closing handshake.
"""

from __future__ import annotations

import struct
from typing import Any

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.internet.interfaces import IDelayedCall, IProtocolNegotiationFactory, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from vncproxy.forwarding import Forwarding

log = Logger()

CLOSE_TIMEOUT = 5.0
MAX_MESSAGE = 4 * 1024 * 1024


class ViewerWebSocketProtocol(WebSocketServerProtocol):
    """
    A noVNC viewer.
    """

    factory: ViewerWebSocketFactory

    def __init__(self) -> None:
        super().__init__()
        self.accepted = False
        self._closeTimer: IDelayedCall | None = None

    def connectionMade(self) -> None:
        super().connectionMade()
        self.factory.connections.add(self)
        setter = getattr(self.transport, "setTcpNoDelay", None)
        if setter is not None:
            try:
                setter(True)
            except OSError:
                pass

    def onConnect(self, request: ConnectionRequest) -> str | None:
        if self.factory.forwarding.state != "waiting":
            raise ConnectionDeny(409, "Only a single connection allowed")
        if not request.protocols or "binary" in request.protocols:
            return "binary" if request.protocols else None
        raise ConnectionDeny(ConnectionDeny.BAD_REQUEST, "only the 'binary' WebSocket subprotocol is supported")

    def onOpen(self) -> None:
        self.accepted = self.factory.forwarding.viewerConnected(self)
        if not self.accepted:
            self.sendClose(1001, "Only a single connection allowed")
            self._armCloseTimer()

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if not self.accepted:
            return
        if not isBinary:
            log.info("vncproxy port {port}: text WebSocket frame refused", port=self.factory.forwarding.port)
            self.factory.forwarding.abort("the viewer sent a text WebSocket message")
            return
        self.factory.forwarding.viewerData(payload)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        pass

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:  # noqa: B008
        if self._closeTimer is not None and self._closeTimer.active():
            self._closeTimer.cancel()
        self._closeTimer = None
        self.factory.connections.discard(self)
        super().connectionLost(reason)
        if self.accepted:
            self.factory.forwarding.viewerLost(reason)

    def _armCloseTimer(self) -> None:
        if self._closeTimer is None:
            self._closeTimer = self.factory.clock.callLater(CLOSE_TIMEOUT, self._closeTimedOut)

    def _closeTimedOut(self) -> None:
        self._closeTimer = None
        self.dropConnection(abort=True)

    # ViewerChannel
    def sendBytes(self, data: bytes) -> None:
        # One unmasked binary frame (RFC 6455 5.2) written as header + payload:
        # autobahn's sendMessage would first copy the payload into one buffer.
        if self.state != self.STATE_OPEN:
            return
        n = len(data)
        if n < 126:
            header = struct.pack("!BB", 0x82, n)
        elif n < 65536:
            header = struct.pack("!BBH", 0x82, 126, n)
        else:
            header = struct.pack("!BBQ", 0x82, 127, n)
        transport: Any = self.transport
        transport.write(header)
        transport.write(data)

    def close(self) -> None:
        if self.state == self.STATE_OPEN:
            self.sendClose(1000)
            self._armCloseTimer()
        elif self.transport is not None:
            self.transport.loseConnection()

    def endOfStream(self) -> None:
        self.close()

    def flowTransport(self) -> Any:
        return self.transport


@implementer(IProtocolNegotiationFactory)
class ViewerWebSocketFactory(WebSocketServerFactory):
    """
    The viewer side of one forwarding.

    Under TLS (vnc-wss) it declares ALPN C{http/1.1}: browsers offer ALPN,
    and Twisted's ALPN callback answers an empty selection when the wrapped
    factory declares nothing, which OpenSSL 4 turns into a handshake
    "internal error" (the browser reports ERR_SSL_PROTOCOL_ERROR).
    """

    protocol = ViewerWebSocketProtocol  # type: ignore[assignment]
    noisy = False

    def __init__(self, forwarding: Forwarding, reactor: Any) -> None:
        super().__init__(reactor=reactor)
        self.forwarding = forwarding
        self.clock: IReactorTime = reactor
        self.connections: set[ViewerWebSocketProtocol] = set()
        forwarding.finishHooks.append(self.closeOthers)
        self.setProtocolOptions(
            openHandshakeTimeout=0,
            closeHandshakeTimeout=0,
            autoPingInterval=0,
            utf8validateIncoming=False,
            maxMessagePayloadSize=MAX_MESSAGE,
            maxFramePayloadSize=MAX_MESSAGE,
            perMessageCompressionAccept=lambda offers: None,
            failByDrop=True,
        )

    def closeOthers(self) -> None:
        """
        The forwarding is over: drop connections that never became its viewer
        (an HTTP request that never upgraded, a refused second WebSocket).
        """
        for proto in list(self.connections):
            transport: Any = proto.transport
            if not proto.accepted and transport is not None:
                transport.abortConnection()

    def acceptableProtocols(self) -> list[bytes]:
        return [b"http/1.1"]
