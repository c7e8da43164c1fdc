# -*- test-case-name: tests.vncproxy.test_service -*-
"""
The running VNC proxy: the control listener, the forwardings it creates,
health and metrics.

A control request is served as the original did, in this order: validate,
authenticate the control user, take a port, connect to the VNC server and
complete its handshake, listen for the viewer, reply OK. Any failure on the
way gives the port back and replies FAILED with a reason.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import Any

import attrs
from OpenSSL import crypto
from twisted.application.service import Service
from twisted.internet import ssl
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks, succeed
from twisted.internet.endpoints import HostnameEndpoint, serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

from synnefo_twisted.health import Health
from synnefo_twisted.interfaces import IHealthReporter
from synnefo_twisted.metrics import MetricsRegistry
from vncproxy.control import ControlFactory, ControlRequest, failedReply, okReply
from vncproxy.forwarding import BackendError, BackendProtocol, Forwarding, ViewerTCPFactory
from vncproxy.ports import PortPool, PortUnavailable
from vncproxy.users import AuthenticationFailed, UsersFile

log = Logger()

EndpointFactory = Callable[[str, int], IStreamClientEndpoint]


@attrs.frozen
class ProxyConfig:
    """
    The settings of the proxy (from the C{[vncproxy]} section).
    """

    listenAddress: str = "127.0.0.1"
    publicAddress: str = ""
    portLow: int = 25000
    portHigh: int = 30000
    connectTimeout: float = 30.0
    serverTimeout: float = 60.0
    connectRetries: int = 3
    retryWait: float = 0.1
    listenRetries: int = 8


def isWildcard(address: str) -> bool:
    return address in ("", "*", "0.0.0.0", "::")


def loadTLSContext(certFile: str, keyFile: str) -> ssl.ContextFactory:
    """
    A server TLS context from PEM files (the chain may follow the certificate).
    """
    with open(certFile, "rb") as f:
        certPEM = f.read()
    with open(keyFile, "rb") as f:
        keyPEM = f.read()
    certs = ssl.Certificate.loadPEM(certPEM)
    key = ssl.PrivateCertificate.fromCertificateAndKeyPair(certs, ssl.KeyPair.load(keyPEM, crypto.FILETYPE_PEM))
    return key.options()


class VNCProxy:
    """
    Serves control requests: owns the port pool and the live forwardings.
    """

    def __init__(
        self,
        reactor: Any,
        users: UsersFile,
        config: ProxyConfig,
        tlsContext: Any = None,
        endpointFor: EndpointFactory | None = None,
        randomBytes: Callable[[int], bytes] = os.urandom,
        metrics: MetricsRegistry | None = None,
        portChoice: Callable[..., int] | None = None,
    ) -> None:
        self.reactor = reactor
        self.users = users
        self.config = config
        self.tlsContext = tlsContext
        self.ports = PortPool(config.portLow, config.portHigh, *(() if portChoice is None else (portChoice,)))
        self.forwardings: set[Forwarding] = set()
        self._pending = 0
        self._random = randomBytes
        self._endpointFor = endpointFor or (
            lambda host, port: HostnameEndpoint(reactor, host, port, timeout=config.serverTimeout)
        )
        self.stopping = False
        self.proxyAddress = config.publicAddress or (
            socket.getfqdn() if isWildcard(config.listenAddress) else config.listenAddress
        )
        self._interface = "::" if isWildcard(config.listenAddress) else config.listenAddress
        m = metrics or MetricsRegistry()
        self.mRequests = m.counter("snf_vncproxy_requests_total", "Control requests by outcome", ["status", "type"])
        self.mViewerAuth = m.counter("snf_vncproxy_viewer_auth_total", "Viewer authentications by outcome", ["result"])
        self.mSetup = m.histogram("snf_vncproxy_setup_seconds", "Control request to OK reply")
        self.mBytes = m.counter("snf_vncproxy_relayed_bytes_total", "Bytes relayed", ["direction"])
        self.mRelays = m.counter("snf_vncproxy_relays_total", "Finished relays by mode (splice or twisted)", ["mode"])
        m.gauge("snf_vncproxy_forwardings", "Live forwardings", collect=lambda: [({}, float(len(self.forwardings)))])
        m.gauge("snf_vncproxy_ports_free", "Free ports in the pool", collect=lambda: [({}, float(self.ports.free()))])

    def handleRequest(self, request: ControlRequest) -> Deferred[dict[str, Any]]:
        started = time.perf_counter()
        d = self._serve(request)

        def count(reply: dict[str, Any]) -> dict[str, Any]:
            self.mRequests.inc(status=reply["status"], type=request.type)
            if reply["status"] == "OK":
                self.mSetup.observe(time.perf_counter() - started)
            else:
                log.info(
                    "vncproxy request for {host}:{dport} by {user} failed: {reason}",
                    host=request.destination_address,
                    dport=request.destination_port,
                    user=request.auth_user,
                    reason=reply.get("reason"),
                )
            return reply

        return d.addCallback(count)

    @inlineCallbacks
    def _serve(self, request: ControlRequest) -> Any:
        if self.stopping:
            return failedReply("the VNC proxy is shutting down")
        try:
            self.users.authenticate(request.auth_user, request.auth_password)
        except AuthenticationFailed as e:
            return failedReply(str(e))
        if request.type == "vnc-wss" and self.tlsContext is None:
            return failedReply("vnc-wss not available: [vncproxy] cert_file and key_file are not set")
        try:
            port = self.ports.allocate(request.source_port)
        except PortUnavailable as e:
            return failedReply(str(e))
        backend: BackendProtocol | None = None
        handedOver = False
        self._pending += 1
        try:
            try:
                backend = yield self._connectBackend(request)
            except BackendError as e:
                return failedReply(str(e))
            assert backend is not None
            if self.stopping:
                backend.transport.loseConnection()
                return failedReply("the VNC proxy is shutting down")
            forwarding = Forwarding(
                self.reactor,
                port,
                request,
                backend,
                release=self._released,
                randomBytes=self._random,
                connectTimeout=self.config.connectTimeout,
                onRelay=self._relayStarted,
                onAuthFailure=lambda f, r: self.mViewerAuth.inc(result="failed"),
            )
            try:
                listeners, port = self._listen(forwarding, port, request.source_port == 0)
            except CannotListenError as e:
                backend.transport.loseConnection()
                return failedReply(f"cannot listen on port {port}: {e.socketError}")
            forwarding.port = port
            self.forwardings.add(forwarding)
            forwarding.listening(listeners)
            handedOver = True
            log.info(
                "vncproxy: port {port} ({type}) forwards to {host}:{dport} for {user}",
                port=port,
                type=request.type,
                host=request.destination_address,
                dport=request.destination_port,
                user=request.auth_user,
            )
            return okReply(port, self.proxyAddress)
        finally:
            self._pending -= 1
            if not handedOver:
                # every failure after the port was taken gives it back
                self.ports.release(port)

    def _connectBackend(self, request: ControlRequest) -> Deferred[BackendProtocol]:
        """
        Connect to the VNC server (retrying) and complete its handshake, within the server timeout.
        """
        host, dport = request.destination_address, request.destination_port
        result: Deferred[BackendProtocol] = Deferred()
        attempt = {"n": 0}
        protocolHolder: dict[str, BackendProtocol] = {}

        def timedOut() -> None:
            proto: Any = protocolHolder.get("p")
            if proto is not None and proto.transport is not None:
                proto.transport.abortConnection()
            if not result.called:
                result.errback(
                    BackendError(f"VNC server {host}:{dport} handshake timed out after {self.config.serverTimeout:g} s")
                )

        timer = self.reactor.callLater(self.config.serverTimeout, timedOut)

        def done(value: Any) -> Any:
            if timer.active():
                timer.cancel()
            return value

        result.addBoth(done)

        def tryOnce() -> None:
            attempt["n"] += 1
            proto = BackendProtocol(request.destination_password)
            protocolHolder["p"] = proto
            factory = Factory.forProtocol(lambda: proto)
            factory.noisy = False
            d = self._endpointFor(host, dport).connect(factory)

            def connected(p: Any) -> Deferred[BackendProtocol]:
                return proto.handshaken

            def failed(f: Any) -> None:
                if result.called:
                    return
                if f.check(BackendError):
                    result.errback(f)
                elif attempt["n"] < self.config.connectRetries:
                    deferLater(self.reactor, self.config.retryWait, tryOnce).addErrback(
                        lambda f: log.failure("vncproxy: retry failed", f)
                    )
                else:
                    result.errback(BackendError(f"cannot connect to VNC server {host}:{dport}: {f.getErrorMessage()}"))

            def ok(p: BackendProtocol) -> None:
                if result.called:
                    p.transport.loseConnection()
                else:
                    result.callback(p)

            d.addCallback(connected)
            d.addCallbacks(ok, failed)

        tryOnce()
        return result

    def _listen(self, forwarding: Forwarding, port: int, mayMove: bool) -> tuple[list[IListeningPort], int]:
        """
        Listen for the forwarding's viewer on C{port}; when the port turns out to be taken
        by something else and the port was chosen by us, try other ports of the pool.
        """
        tries = self.config.listenRetries if mayMove else 1
        avoid: set[int] = set()
        while True:
            try:
                return [self._listenOne(forwarding, port)], port
            except CannotListenError:
                tries -= 1
                if tries <= 0:
                    self.ports.release(port)
                    raise
                avoid.add(port)
                self.ports.release(port)
                try:
                    port = self.ports.allocate(0, avoid=frozenset(avoid))
                except PortUnavailable as e:
                    raise CannotListenError(self._interface, port, OSError(str(e))) from None

    def _listenOne(self, forwarding: Forwarding, port: int) -> IListeningPort:
        consoleType = forwarding.request.type
        factory: Any
        if consoleType == "vnc":
            factory = ViewerTCPFactory(forwarding)
        else:
            from vncproxy.websocket import ViewerWebSocketFactory

            factory = ViewerWebSocketFactory(forwarding, self.reactor)
        if consoleType == "vnc-wss":
            factory = TLSMemoryBIOFactory(self.tlsContext, False, factory)
        return self.reactor.listenTCP(port, factory, backlog=8, interface=self._interface)

    def _relayStarted(self, forwarding: Forwarding) -> None:
        self.mViewerAuth.inc(result="ok")

    def _released(self, forwarding: Forwarding) -> None:
        self.forwardings.discard(forwarding)
        self.ports.release(forwarding.port)
        self.mBytes.inc(forwarding.bytesToViewer, direction="to_viewer")
        self.mBytes.inc(forwarding.bytesToBackend, direction="to_server")
        if forwarding.bytesToViewer or forwarding.bytesToBackend:
            self.mRelays.inc(mode="splice" if forwarding.splice is not None else "twisted")

    def stop(self) -> Deferred[Any]:
        """
        Refuse new requests, end every forwarding; fires when all are closed.
        """
        self.stopping = True
        waits = []
        for forwarding in list(self.forwardings):
            waits.append(forwarding.finished)
            forwarding.abort("the VNC proxy is stopping")
        return DeferredList(waits, consumeErrors=True) if waits else succeed(None)


@implementer(IHealthReporter)
class VNCProxyService(Service):
    """
    The C{vncproxy} plugin's service: the control listener and the proxy.
    """

    healthName = "vncproxy"

    def __init__(self, reactor: Any, proxy: VNCProxy, controlListen: str, controlTLS: Any = None) -> None:
        self.reactor = reactor
        self.proxy = proxy
        self.controlListen = controlListen
        self.controlTLS = controlTLS
        self.controlPort: IListeningPort | None = None
        self._failure = ""

    def startService(self) -> Deferred[None]:
        super().startService()
        self.proxy.stopping = False
        factory: Any = ControlFactory(self.proxy.handleRequest, self.reactor)
        if self.controlTLS is not None:
            factory = TLSMemoryBIOFactory(self.controlTLS, False, factory)
        d = serverFromString(self.reactor, self.controlListen).listen(factory)

        def listening(port: IListeningPort) -> None:
            self.controlPort = port
            host = port.getHost()
            log.info(
                "vncproxy control socket on {host}:{port}{tls}",
                host=getattr(host, "host", "?"),
                port=getattr(host, "port", "?"),
                tls=" (TLS)" if self.controlTLS is not None else "",
            )
            users = self.proxy.users.users
            if not users:
                log.warn("vncproxy: no users in {path}; add one with snf-vncproxy-users", path=self.proxy.users.path)

        def failed(f: Any) -> Any:
            self._failure = f"cannot listen on {self.controlListen}: {f.getErrorMessage()}"
            return f

        return d.addCallbacks(listening, failed)

    def stopService(self) -> Deferred[Any]:
        super().stopService()
        port, self.controlPort = self.controlPort, None
        waits: list[Deferred[Any]] = [self.proxy.stop()]
        if port is not None:
            waits.append(port.stopListening() or succeed(None))
        return DeferredList(waits, consumeErrors=True)

    def health(self) -> Health:
        if self._failure:
            return Health.down(self._failure)
        if self.controlPort is None:
            return Health(False, "stopped" if not self.running else "starting", "control socket not listening")
        if not self.proxy.users.users:
            return Health.down(f"no users in {self.proxy.users.path}: every control request fails")
        return Health.up(f"{len(self.proxy.forwardings)} forwarding(s), {self.proxy.ports.free()} free port(s)")
