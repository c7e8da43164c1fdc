# -*- test-case-name: tests.vncproxy.test_forwarding -*-
"""
One forwarding: the connection to the VM's VNC server (handshaked before
the control request is answered), the listener waiting for the one viewer,
the viewer's RFB authentication with the one-time password, then the relay.

The relay is symmetric and flow controlled: each side's transport is
registered as a streaming producer on the other side's transport, so when
one side cannot keep up (its send buffer fills) the other stops reading, and
memory stays bounded by the transports' buffers. TCP_NODELAY is set on TCP
sides. An end of stream from one TCP side is passed on as a half-close; the
forwarding ends when both directions are finished or either side is lost.

Every exit path ends in L{Forwarding._finish}, which stops the listeners,
cancels the timers, closes both connections and gives the port back once;
L{Forwarding.finished} fires then.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from typing import Protocol as TypingProtocol

from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.interfaces import IDelayedCall, IHalfCloseableProtocol, IListeningPort, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from vncproxy import splice
from vncproxy.control import ControlRequest
from vncproxy.rfb import BackendHandshake, ViewerHandshake

log = Logger()

# Bytes a VNC server may send between its SecurityResult and the viewer's
# ClientInit (normally none).
_MAX_EARLY = 64 * 1024
# Read size, send size and pause threshold of the relay's TCP sockets.
RELAY_CHUNK = 256 * 1024
# Attempts (1 ms apart) to find both write buffers empty before moving a
# plain relay to splice(2); after them the Twisted relay simply goes on.
_HANDOVER_TRIES = 200
# Seconds a closing connection may take to flush before it is aborted.
CLOSE_GRACE = 5.0


class BackendError(Exception):
    """
    The VNC server could not be reached or its handshake failed; C{str()} is the reason.
    """


def _setNoDelay(transport: Any) -> None:
    setter = getattr(transport, "setTcpNoDelay", None)
    if setter is not None:
        try:
            setter(True)
        except OSError:
            pass


@implementer(IHalfCloseableProtocol)
class BackendProtocol(Protocol):
    """
    The proxy's connection to the VM's VNC server.

    L{handshaken} fires with this protocol when the security phase is done,
    or fails with L{BackendError}.
    """

    transport: Any

    def __init__(self, password: str | None = None) -> None:
        self.handshake = BackendHandshake(password)
        self.handshaken: Deferred[BackendProtocol] = Deferred()
        self.forwarding: Forwarding | None = None
        self.early = bytearray()
        self.connected = False

    def connectionMade(self) -> None:
        self.connected = True
        _setNoDelay(self.transport)

    def dataReceived(self, data: bytes) -> None:
        if self.forwarding is not None:
            self.forwarding.backendData(data)
            return
        if not self.handshake.done:
            out = self.handshake.receive(data)
            if out:
                self.transport.write(out)
            if self.handshake.failure is not None:
                self.transport.loseConnection()
                self._fail(self.handshake.failure)
            elif self.handshake.done:
                self.early += self.handshake.leftover
                self.handshaken.callback(self)
            return
        self.early += data
        if len(self.early) > _MAX_EARLY:
            log.warn("vncproxy: VNC server sent data before the viewer came; dropping it")
            self.transport.loseConnection()

    def _fail(self, reason: str) -> None:
        if not self.handshaken.called:
            self.handshaken.errback(BackendError(reason))

    def readConnectionLost(self) -> None:
        if self.forwarding is not None:
            self.forwarding.backendEOF()
        else:
            self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        if self.forwarding is not None:
            self.forwarding.backendWriteClosed()

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:  # noqa: B008
        self.connected = False
        self._fail(f"VNC server closed the connection during the handshake ({reason.getErrorMessage()})")
        if self.forwarding is not None:
            self.forwarding.backendLost(reason)


def _tuneForRelay(transport: Any) -> None:
    """
    Read and write in larger chunks than Twisted's defaults (64 KiB reads,
    128 KiB sends) on the relay's TCP sockets: fewer system calls and
    callbacks per byte. C{bufferSize} is also the send buffer above which the
    other side is paused, so memory per forwarding stays bounded by a few
    times L{RELAY_CHUNK}.
    """
    while transport is not None and not hasattr(transport, "socket"):
        transport = getattr(transport, "transport", None)  # under TLS: the TCP transport
    if transport is None:
        return
    transport.bufferSize = RELAY_CHUNK
    transport.SEND_LIMIT = RELAY_CHUNK


class ViewerChannel(TypingProtocol):
    """
    What a forwarding needs from the viewer's side (TCP or WebSocket).
    """

    transport: Any

    def sendBytes(self, data: bytes) -> None: ...

    def close(self) -> None: ...

    def endOfStream(self) -> None: ...

    def flowTransport(self) -> Any: ...


@implementer(IHalfCloseableProtocol)
class ViewerTCPProtocol(Protocol):
    """
    A plain RFB viewer.
    """

    transport: Any

    def __init__(self, forwarding: Forwarding) -> None:
        self.forwarding = forwarding
        self.accepted = False

    def connectionMade(self) -> None:
        _setNoDelay(self.transport)
        self.accepted = self.forwarding.viewerConnected(self)
        if not self.accepted:
            self.transport.abortConnection()

    def dataReceived(self, data: bytes) -> None:
        if self.accepted:
            self.forwarding.viewerData(data)

    def readConnectionLost(self) -> None:
        if self.accepted:
            self.forwarding.viewerEOF()

    def writeConnectionLost(self) -> None:
        if self.accepted:
            self.forwarding.viewerWriteClosed()

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:  # noqa: B008
        if self.accepted:
            self.forwarding.viewerLost(reason)

    # ViewerChannel
    def sendBytes(self, data: bytes) -> None:
        self.transport.write(data)

    def close(self) -> None:
        self.transport.loseConnection()

    def endOfStream(self) -> None:
        self.transport.loseWriteConnection()

    def flowTransport(self) -> Any:
        return self.transport


class ViewerTCPFactory(Factory):
    noisy = False

    def __init__(self, forwarding: Forwarding) -> None:
        self.forwarding = forwarding

    def buildProtocol(self, addr: Any) -> ViewerTCPProtocol:
        return ViewerTCPProtocol(self.forwarding)


class Forwarding:
    """
    One one-time forwarding (see the module docstring).

    @ivar state: C{waiting} (for the viewer), C{auth} (viewer connected,
        authenticating), C{relaying}, C{closed}.
    """

    def __init__(
        self,
        clock: IReactorTime,
        port: int,
        request: ControlRequest,
        backend: BackendProtocol,
        release: Callable[[Forwarding], None],
        randomBytes: Callable[[int], bytes],
        connectTimeout: float,
        onRelay: Callable[[Forwarding], None] = lambda f: None,
        onAuthFailure: Callable[[Forwarding, str], None] = lambda f, r: None,
        useSplice: bool = True,
    ) -> None:
        self.clock = clock
        self.port = port
        self.request = request
        self.backend = backend
        self._release = release
        self._random = randomBytes
        self.connectTimeout = connectTimeout
        self._onRelay = onRelay
        self._onAuthFailure = onAuthFailure
        self.state = "waiting"
        self.listeners: list[IListeningPort] = []
        self.viewer: ViewerChannel | None = None
        self.handshake: ViewerHandshake | None = None
        self.finished: Deferred[None] = Deferred()
        self.endReason = ""
        self.bytesToViewer = 0
        self.bytesToBackend = 0
        self._timer: IDelayedCall | None = None
        self._viewerGone = False
        self._backendGone = not backend.connected
        self._eofFromViewer = False
        self._eofFromBackend = False
        self._listenersStopped: Deferred[Any] | None = None
        self._killTimer: IDelayedCall | None = None
        self._handoverTimer: IDelayedCall | None = None
        self.splice: splice.SpliceRelay | None = None
        self.useSplice = useSplice
        self.finishHooks: list[Callable[[], None]] = []
        backend.forwarding = self

    def __repr__(self) -> str:
        return f"<Forwarding port={self.port} to {self.request.destination_address}:{self.request.destination_port} {self.state}>"

    # -- waiting --------------------------------------------------------------

    def listening(self, listeners: list[IListeningPort]) -> None:
        """
        The listeners are up: start waiting for the viewer.
        """
        self.listeners = listeners
        self._setTimer(self.connectTimeout, f"no viewer connected within {self.connectTimeout:g} s")
        if self._backendGone:
            self._finish("the VNC server closed the connection before the viewer came")

    def _setTimer(self, seconds: float, why: str) -> None:
        self._cancelTimer()
        self._timer = self.clock.callLater(seconds, self._timedOut, why)

    def _cancelTimer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _timedOut(self, why: str) -> None:
        self._timer = None
        self._finish(why)

    def _stopListening(self) -> None:
        if self._listenersStopped is None:
            listeners, self.listeners = self.listeners, []
            self._listenersStopped = DeferredList(
                [maybeDeferred(listener.stopListening) for listener in listeners], consumeErrors=True
            )

    def viewerConnected(self, viewer: ViewerChannel) -> bool:
        """
        A viewer connected: accept it if it is the first one.
        """
        if self.state != "waiting":
            log.info("vncproxy port {port}: refusing another viewer", port=self.port)
            return False
        self._stopListening()
        self.state = "auth"
        self.viewer = viewer
        self.handshake = ViewerHandshake(self.request.password, self._random)
        self._setTimer(self.connectTimeout, f"the viewer did not authenticate within {self.connectTimeout:g} s")
        viewer.sendBytes(self.handshake.start())
        return True

    # -- viewer authentication -------------------------------------------------

    def viewerData(self, data: bytes) -> None:
        if self.state == "relaying":
            self.bytesToBackend += len(data)
            self.backend.transport.write(data)
            return
        if self.state != "auth" or self.handshake is None or self.viewer is None:
            return
        out = self.handshake.receive(data)
        if out:
            self.viewer.sendBytes(out)
        if self.handshake.failure is not None:
            log.info("vncproxy port {port}: viewer refused: {reason}", port=self.port, reason=self.handshake.failure)
            self._onAuthFailure(self, self.handshake.failure)
            self._finish(self.handshake.failure)
        elif self.handshake.done:
            self._startRelay(self.handshake.leftover)

    def _startRelay(self, leftover: bytes) -> None:
        assert self.viewer is not None
        self._cancelTimer()
        self.state = "relaying"
        self._onRelay(self)
        log.info(
            "vncproxy port {port}: viewer authenticated, relaying to {host}:{dport}",
            port=self.port,
            host=self.request.destination_address,
            dport=self.request.destination_port,
        )
        if self.backend.early:
            early, self.backend.early = bytes(self.backend.early), bytearray()
            self.backendData(early)
        if leftover:
            self.viewerData(leftover)
        viewerTransport = self.viewer.flowTransport()
        backendTransport = self.backend.transport
        for transport in (viewerTransport, backendTransport):
            _tuneForRelay(transport)
        # A full send buffer on one side pauses reading on the other.
        viewerTransport.registerProducer(backendTransport, True)
        backendTransport.registerProducer(viewerTransport, True)
        if self.useSplice and isinstance(self.viewer, ViewerTCPProtocol):
            if splice.available(self.clock, viewerTransport, backendTransport):
                self._handoverTimer = self.clock.callLater(0, self._handover, 0)

    def _handover(self, attempt: int) -> None:
        """
        Move the relay to splice(2) once both transports have sent what they hold.
        """
        self._handoverTimer = None
        if self.state != "relaying" or self.viewer is None or self._eofFromViewer or self._eofFromBackend:
            return
        transports = (self.viewer.transport, self.backend.transport)
        if any(getattr(t, "disconnecting", False) for t in transports):
            return
        if any(splice.writeBuffered(t) for t in transports):
            if attempt < _HANDOVER_TRIES:
                self._handoverTimer = self.clock.callLater(0.001, self._handover, attempt + 1)
            return
        self.splice = splice.SpliceRelay(self.clock, transports[0], transports[1], self._spliceEnded)
        log.debug("vncproxy port {port}: relaying with splice(2)", port=self.port)

    def _spliceEnded(self, relay: splice.SpliceRelay, why: str) -> None:
        self.bytesToViewer += relay.toViewer
        self.bytesToBackend += relay.toServer
        self._finish(why)

    # -- relay -------------------------------------------------------------------

    def backendData(self, data: bytes) -> None:
        if self.state == "relaying" and self.viewer is not None:
            self.bytesToViewer += len(data)
            self.viewer.sendBytes(data)
        elif self.state in ("waiting", "auth"):
            self.backend.early += data
            if len(self.backend.early) > _MAX_EARLY:
                self._finish("the VNC server sent too much data before the viewer authenticated")

    def backendEOF(self) -> None:
        self._eofFromBackend = True
        if self.state == "relaying" and self.viewer is not None and not self._viewerGone:
            self.viewer.endOfStream()
            if self._eofFromViewer:
                self._finish("both sides finished")
        else:
            self._finish("the VNC server closed the connection")

    def backendWriteClosed(self) -> None:
        if self._eofFromBackend:
            self._finish("both sides finished")

    def viewerEOF(self) -> None:
        self._eofFromViewer = True
        if self.state == "relaying" and not self._backendGone:
            self.backend.transport.loseWriteConnection()
            if self._eofFromBackend:
                self._finish("both sides finished")
        else:
            self._finish("the viewer closed the connection")

    def viewerWriteClosed(self) -> None:
        if self._eofFromViewer:
            self._finish("both sides finished")

    def backendLost(self, reason: Failure) -> None:
        self._backendGone = True
        self._finish("the VNC server connection ended")

    def viewerLost(self, reason: Failure) -> None:
        self._viewerGone = True
        self._finish("the viewer connection ended")

    # -- the one exit ------------------------------------------------------------

    def abort(self, why: str) -> None:
        """
        End the forwarding now (service stopping).
        """
        self._finish(why)

    def _finish(self, why: str) -> None:
        if self.state == "closed":
            self._maybeDone()
            return
        previous = self.state
        self.state = "closed"
        self.endReason = why
        self._cancelTimer()
        if self._handoverTimer is not None and self._handoverTimer.active():
            self._handoverTimer.cancel()
        self._handoverTimer = None
        if self.splice is not None:
            self.splice.stop(why)
        self._stopListening()
        for hook in self.finishHooks:
            hook()
        log.info(
            "vncproxy port {port}: forwarding ended ({why}) after {toViewer} bytes to the viewer, {toBackend} to the server",
            port=self.port,
            why=why,
            toViewer=self.bytesToViewer,
            toBackend=self.bytesToBackend,
        )
        if self.viewer is not None and not self._viewerGone:
            self.viewer.close()
        if not self._backendGone:
            self.backend.transport.loseConnection()
        del previous
        # A peer that never reads would keep a flushing close pending forever.
        self._killTimer = self.clock.callLater(CLOSE_GRACE, self._abortConnections)
        self._maybeDone()

    def _abortConnections(self) -> None:
        self._killTimer = None
        if self.viewer is not None and not self._viewerGone:
            self.viewer.transport.abortConnection()
        if not self._backendGone:
            self.backend.transport.abortConnection()

    def _maybeDone(self) -> None:
        if self.finished.called or self.state != "closed":
            return
        if not self._backendGone or (self.viewer is not None and not self._viewerGone):
            return
        assert self._listenersStopped is not None

        if self._killTimer is not None and self._killTimer.active():
            self._killTimer.cancel()
        self._killTimer = None

        def released(_: object) -> None:
            if not self.finished.called:
                self._release(self)
                self.finished.callback(None)

        self._listenersStopped.addCallback(released)
