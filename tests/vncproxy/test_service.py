"""
Tests for L{vncproxy.service} and L{vncproxy.forwarding}: whole forwardings
in memory (MemoryReactorClock, iosim pumps), from control request to teardown.
"""

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.error import CannotListenError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from synnefo_twisted.interfaces import IHealthReporter
from synnefo_twisted.metrics import MetricsRegistry
from tests.vncproxy.helpers import ProxyHarness, request, viewer
from tests.vncproxy.peers import FakeVNCServer, serverInit
from vncproxy.forwarding import BackendProtocol, Forwarding
from vncproxy.service import ProxyConfig, VNCProxy, VNCProxyService
from vncproxy.users import UsersFile


class ForwardingFlowTests(SynchronousTestCase):
    def assertReleased(self, h: ProxyHarness) -> None:
        self.assertEqual(h.proxy.forwardings, set())
        self.assertEqual(h.proxy.ports.inUse, frozenset())
        self.assertEqual(h.reactor.getDelayedCalls(), [])

    def test_relay(self) -> None:
        """
        OK names a pool port; the viewer authenticates with the one-time password, gets the
        server's ServerInit, bytes flow both ways, and closing the viewer frees everything.
        """
        h = ProxyHarness(self)
        reply = h.ask(request())
        self.assertEqual(reply["status"], "OK")
        self.assertEqual(reply["proxy_address"], "127.0.0.1")
        port = reply["source_port"]
        self.assertTrue(25000 <= port <= 25999)
        self.assertEqual(h.reactor.tcpServers[-1][3], "127.0.0.1")
        v = viewer()
        h.connectViewer(port, v)
        self.assertEqual(v.result, "ok")
        self.assertEqual(v.offered, [2])
        self.assertEqual(v.serverInit, serverInit())
        server = h.endpoint.servers[0]
        assert isinstance(server, FakeVNCServer)
        v.transport.write(b"\x03\x00\x00\x00\x00\x00\x00\x10\x00\x10")
        server.transport.write(b"framebuffer bytes")
        h.pumpAll()
        self.assertEqual(server.received, b"\x03\x00\x00\x00\x00\x00\x00\x10\x00\x10")
        self.assertEqual(v.received, b"framebuffer bytes")
        v.transport.loseConnection()
        h.pumpAll()
        self.assertIsNotNone(server.lost)
        self.assertReleased(h)

    def test_serverClosesFirst(self) -> None:
        """
        When the VNC server ends the session the viewer is disconnected and the port freed.
        """
        h = ProxyHarness(self)
        port = h.ask(request())["source_port"]
        v = viewer()
        h.connectViewer(port, v)
        h.endpoint.servers[0].transport.loseConnection()
        h.pumpAll()
        self.assertIsNotNone(v.lost)
        self.assertReleased(h)

    def test_rfb33Viewer(self) -> None:
        """
        An RFB 3.3 viewer is offered VNC authentication (u32 2) and relayed.
        """
        h = ProxyHarness(self)
        port = h.ask(request())["source_port"]
        v = viewer(version=b"RFB 003.003\n")
        h.connectViewer(port, v)
        self.assertEqual((v.offered, v.result), ([2], "ok"))

    def test_rfb33And37Servers(self) -> None:
        """
        VNC servers speaking RFB 3.3 and 3.7 are handshaken and relayed.
        """
        for version in (b"RFB 003.003\n", b"RFB 003.007\n"):

            def makeServer(version: bytes = version) -> FakeVNCServer:
                return FakeVNCServer(version)

            h = ProxyHarness(self, makeServer=makeServer)
            port = h.ask(request())["source_port"]
            v = viewer()
            h.connectViewer(port, v)
            self.assertEqual(v.result, "ok", version)

    def test_wrongPassword(self) -> None:
        """
        A wrong one-time password gets SecurityResult 1 with the reason, and the forwarding is gone.
        """
        h = ProxyHarness(self)
        port = h.ask(request())["source_port"]
        v = viewer("notright")
        h.connectViewer(port, v)
        self.assertEqual(v.result, "failed: Authentication failed")
        self.assertIsNotNone(v.lost)
        self.assertReleased(h)
        self.assertIsNotNone(h.endpoint.servers[0].lost)

    def test_noneRefused(self) -> None:
        """
        A viewer that picks security None is refused and never reaches the server.
        """
        h = ProxyHarness(self)
        port = h.ask(request())["source_port"]
        v = viewer(choose=1)
        h.connectViewer(port, v)
        self.assertIn("only VNC authentication", v.result or "")
        server = h.endpoint.servers[0]
        assert isinstance(server, FakeVNCServer)
        self.assertEqual(server.state, "clientinit")
        self.assertReleased(h)

    def test_secondViewerRefused(self) -> None:
        """
        Only the first viewer is served: the listener stops and a later connection is dropped.
        """
        h = ProxyHarness(self)
        port = h.ask(request())["source_port"]
        factory = h.listenerFor(port)
        first = viewer()
        h.connectViewer(port, first)
        second = viewer()
        h.connectViewer(port, second)
        self.assertEqual(first.result, "ok")
        self.assertIsNone(second.result)
        self.assertIsNotNone(second.lost)
        self.assertIs(factory, h.listenerFor(port))

    def test_viewerNeverComes(self) -> None:
        """
        Without a viewer within connect_timeout the forwarding ends and the port is freed.
        """
        h = ProxyHarness(self, connectTimeout=30.0)
        h.ask(request())
        h.reactor.advance(29)
        self.assertEqual(len(h.proxy.forwardings), 1)
        h.reactor.advance(1)
        h.pumpAll()
        self.assertReleased(h)
        self.assertIsNotNone(h.endpoint.servers[0].lost)

    def test_viewerNeverAuthenticates(self) -> None:
        """
        A viewer that connects but never answers the challenge is dropped after connect_timeout.
        """
        h = ProxyHarness(self, connectTimeout=5.0)
        port = h.ask(request())["source_port"]
        idle = viewer()
        idle.dataReceived = lambda data: None  # type: ignore[method-assign]
        h.connectViewer(port, idle)
        h.reactor.advance(5)
        h.pumpAll()
        self.assertIsNotNone(idle.lost)
        self.assertReleased(h)

    def test_requestedPort(self) -> None:
        """
        A nonzero source_port is used as given; asking for it again while held fails.
        """
        h = ProxyHarness(self)
        self.assertEqual(h.ask(request(source_port=31000))["source_port"], 31000)
        reply = h.ask(request(source_port=31000))
        self.assertEqual(reply["status"], "FAILED")
        self.assertIn("in use", reply["reason"])

    def test_controlAuthFailure(self) -> None:
        """
        Wrong control credentials fail before any connection to the server.
        """
        h = ProxyHarness(self)
        reply = h.ask(request(auth_password="nope"))
        self.assertEqual(
            reply,
            {
                "source_port": 0,
                "status": "FAILED",
                "proxy_address": None,
                "reason": "vncauthproxy authentication failure: wrong password",
            },
        )
        self.assertEqual(h.endpoint.attempts, 0)

    def test_serverUnreachable(self) -> None:
        """
        Connection attempts are retried; when all fail the reply says why and the port is back.
        """
        h = ProxyHarness(self, refuse=10, connectRetries=3, retryWait=0.1)
        d = h.proxy.handleRequest(request())
        results: list[Any] = []
        d.addCallback(results.append)
        h.reactor.advance(0.1)
        h.reactor.advance(0.1)
        self.assertEqual(h.endpoint.attempts, 3)
        self.assertEqual(results[0]["status"], "FAILED")
        self.assertIn("cannot connect to VNC server node1:5901", results[0]["reason"])
        self.assertReleased(h)

    def test_retrySucceeds(self) -> None:
        """
        A server that refuses once and then accepts is used.
        """
        h = ProxyHarness(self, refuse=1)
        d = h.proxy.handleRequest(request())
        results: list[Any] = []
        d.addCallback(results.append)
        h.reactor.advance(0.1)
        h.pumpAll()
        self.assertEqual(results[0]["status"], "OK")

    def test_serverDemandsAuth(self) -> None:
        """
        A VNC-auth server is refused without destination_password and used with it.
        """
        h = ProxyHarness(self, makeServer=lambda: FakeVNCServer(password="vncpass1"))
        reply = h.ask(request())
        self.assertIn("Error, server demands authentication", reply["reason"])
        self.assertReleased(h)
        reply = h.ask(request(destination_password="vncpass1"))
        self.assertEqual(reply["status"], "OK")
        v = viewer()
        h.connectViewer(reply["source_port"], v)
        self.assertEqual(v.result, "ok")
        reply = h.ask(request(destination_password="wrong"))
        self.assertIn("VNC server authentication failed: bad password", reply["reason"])

    def test_serverHandshakeTimeout(self) -> None:
        """
        A server that accepts but never speaks is given up after server_timeout.
        """
        h = ProxyHarness(self, makeServer=lambda: FakeVNCServer(version=b""), serverTimeout=60.0)
        d = h.proxy.handleRequest(request())
        results: list[Any] = []
        d.addCallback(results.append)
        h.pumpAll()
        h.reactor.advance(60)
        self.assertIn("handshake timed out after 60 s", results[0]["reason"])
        self.assertReleased(h)

    def test_cannotListen(self) -> None:
        """
        A port taken by another program: a pool port moves to another one, a requested port fails.
        """
        h = ProxyHarness(self)
        real = h.reactor.listenTCP
        taken = {31000}

        def listenTCP(port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
            if port in taken:
                raise CannotListenError(interface, port, OSError(98, "Address already in use"))
            taken.add(port)
            return real(port, factory, backlog, interface)

        h.reactor.listenTCP = listenTCP  # type: ignore[method-assign]
        reply = h.ask(request(source_port=31000))
        self.assertEqual(reply["status"], "FAILED")
        self.assertIn("cannot listen on port 31000", reply["reason"])
        self.assertReleased(h)
        first = h.ask(request())["source_port"]
        h.proxy.ports.release(first)  # pretend the pool forgot it: the next pick hits a busy port
        h.proxy.ports._choice = lambda seq: first if first in seq else seq[0]
        second = h.ask(request())
        self.assertEqual(second["status"], "OK")
        self.assertNotEqual(second["source_port"], first)

    def test_wssWithoutCertificate(self) -> None:
        """
        vnc-wss without cert_file/key_file fails with a reason.
        """
        h = ProxyHarness(self)
        self.assertIn("cert_file", h.ask(request(type="vnc-wss"))["reason"])

    def test_manyForwardings(self) -> None:
        """
        200 concurrent forwardings get distinct ports and all give them back.
        """
        h = ProxyHarness(self)
        ports = [h.ask(request())["source_port"] for _ in range(200)]
        self.assertEqual(len(set(ports)), 200)
        viewers = []
        for port in ports:
            v = viewer()
            h.connectViewer(port, v)
            viewers.append(v)
        self.assertEqual({v.result for v in viewers}, {"ok"})
        for v in viewers:
            v.transport.loseConnection()
        h.pumpAll()
        self.assertReleased(h)

    def test_stop(self) -> None:
        """
        Stopping ends every forwarding (waiting or relaying) and refuses new requests.
        """
        h = ProxyHarness(self)
        h.ask(request())
        port = h.ask(request())["source_port"]
        h.connectViewer(port, viewer())
        d = h.proxy.stop()
        h.pumpAll()
        self.assertIsNone(self.successResultOf(d) and None)
        self.assertReleased(h)
        self.assertIn("shutting down", h.ask(request())["reason"])

    def test_metrics(self) -> None:
        """
        Requests, viewer authentications and relayed bytes are counted.
        """
        registry = MetricsRegistry()
        h = ProxyHarness(self)
        h.proxy = VNCProxy(
            h.reactor, h.proxy.users, h.proxy.config, endpointFor=lambda a, b: h.endpoint, metrics=registry
        )
        port = h.ask(request())["source_port"]
        h.ask(request(auth_user="nobody"))
        v = viewer()
        h.connectViewer(port, v)
        v.transport.loseConnection()
        h.pumpAll()
        text = registry.render()
        self.assertIn('snf_vncproxy_requests_total{status="OK",type="vnc"} 1', text)
        self.assertIn('snf_vncproxy_requests_total{status="FAILED",type="vnc"} 1', text)
        self.assertIn('snf_vncproxy_viewer_auth_total{result="ok"} 1', text)
        self.assertIn("snf_vncproxy_forwardings 0", text)


class AddressTests(SynchronousTestCase):
    def test_wildcardListensOnAllFamilies(self) -> None:
        """
        A wildcard proxy_listen_address listens on :: (IPv4 and IPv6) and replies with the public address.
        """
        h = ProxyHarness(self, listenAddress="*", publicAddress="vnc.example.org")
        reply = h.ask(request())
        self.assertEqual(reply["proxy_address"], "vnc.example.org")
        self.assertEqual(h.reactor.tcpServers[-1][3], "::")

    def test_specificAddress(self) -> None:
        """
        A specific address is both where viewers connect and what the reply names.
        """
        h = ProxyHarness(self, listenAddress="::1")
        reply = h.ask(request())
        self.assertEqual((reply["proxy_address"], h.reactor.tcpServers[-1][3]), ("::1", "::1"))


class FlowControlTests(SynchronousTestCase):
    def test_producersRegistered(self) -> None:
        """
        Once relaying, each side's transport is the other's streaming producer: a full viewer
        buffer pauses reading from the server, and the other way round.
        """
        clock = MemoryReactorClock()
        backend = BackendProtocol()
        backendTransport = StringTransport()
        backend.makeConnection(backendTransport)
        backend.dataReceived(b"RFB 003.008\n\x01\x01\x00\x00\x00\x00")
        self.assertTrue(backend.handshake.done)
        released: list[Forwarding] = []
        forwarding = Forwarding(clock, 25000, request(), backend, released.append, lambda n: bytes(n), 30.0)
        forwarding.listening([])
        from vncproxy.forwarding import ViewerTCPProtocol

        viewerProto = ViewerTCPProtocol(forwarding)
        viewerTransport = StringTransport()
        viewerProto.makeConnection(viewerTransport)
        v = viewer()
        v.makeConnection(StringTransport())
        # shuttle the handshake bytes between the test viewer and the proxy's viewer side
        for _ in range(10):
            toViewer = viewerTransport.value()
            viewerTransport.clear()
            if toViewer:
                v.dataReceived(toViewer)
            toProxy = v.transport.value()
            v.transport.clear()
            if toProxy:
                viewerProto.dataReceived(toProxy)
        self.assertEqual(forwarding.state, "relaying")
        self.assertIs(viewerTransport.producer, backendTransport)
        self.assertIs(backendTransport.producer, viewerTransport)
        self.assertTrue(viewerTransport.streaming and backendTransport.streaming)
        viewerTransport.producer.pauseProducing()  # type: ignore[union-attr]
        self.assertEqual(backendTransport.producerState, "paused")
        backendTransport.producer.pauseProducing()  # type: ignore[union-attr]
        self.assertEqual(viewerTransport.producerState, "paused")
        forwarding.abort("test over")
        backend.connectionLost()
        viewerProto.connectionLost()
        self.assertEqual([f.port for f in released], [25000])
        self.assertEqual(clock.getDelayedCalls(), [])


class ServiceTests(SynchronousTestCase):
    def makeService(self, users: str | None = None) -> tuple[VNCProxyService, MemoryReactorClock]:
        reactor = MemoryReactorClock()
        path = self.mktemp()
        if users is not None:
            with open(path, "w") as f:
                f.write(users)
        proxy = VNCProxy(reactor, UsersFile(path), ProxyConfig())
        return VNCProxyService(reactor, proxy, "tcp:24999:interface=127.0.0.1"), reactor

    def test_interface(self) -> None:
        """
        The service provides IHealthReporter.
        """
        service, _ = self.makeService()
        self.assertTrue(verifyObject(IHealthReporter, service))

    def test_startStop(self) -> None:
        """
        Starting listens on the control endpoint; health is up with users; stopping closes it.
        """
        from tests.vncproxy.helpers import USERS_TEXT

        service, reactor = self.makeService(USERS_TEXT)
        self.assertFalse(service.health().ok)
        self.successResultOf(service.startService())
        port, _factory, _backlog, interface = reactor.tcpServers[0]
        self.assertEqual((port, interface), (24999, "127.0.0.1"))
        health = service.health()
        self.assertTrue(health.ok, health)
        self.assertIn("0 forwarding(s)", health.detail)
        self.successResultOf(service.stopService())
        self.assertFalse(service.health().ok)

    def test_noUsersIsUnhealthy(self) -> None:
        """
        A missing users file is reported on /healthz (every request would fail).
        """
        service, _ = self.makeService()
        self.successResultOf(service.startService())
        health = service.health()
        self.assertFalse(health.ok)
        self.assertIn("no users", health.detail)


class GarbageViewerTests(SynchronousTestCase):
    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=5))
    def test_garbageNeverRelaysNorLeaks(self, chunks: list[bytes]) -> None:
        """
        Whatever bytes a viewer sends without the password, nothing reaches the VNC server,
        and once the viewer is gone (or times out) the port and timers are all released.
        """
        h = ProxyHarness(self, connectTimeout=5.0)
        port = h.ask(request())["source_port"]
        factory = h.listenerFor(port)
        proto = factory.buildProtocol(None)
        transport = StringTransport()
        proto.makeConnection(transport)
        for chunk in chunks:
            proto.dataReceived(chunk)
        self.assertTrue(all(f.state != "relaying" for f in h.proxy.forwardings))
        server = h.endpoint.servers[0]
        self.assertEqual(server.received, b"")
        h.reactor.advance(5)
        proto.connectionLost()
        h.pumpAll()
        h.reactor.advance(10)
        self.assertEqual(h.proxy.forwardings, set())
        self.assertEqual(h.proxy.ports.inUse, frozenset())
        self.assertEqual(h.reactor.getDelayedCalls(), [])
