"""
Tests for L{vncproxy.websocket}: a viewer over a WebSocket (autobahn client
through iosim), as noVNC connects.
"""

from typing import Any

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet.address import IPv4Address
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from tests.vncproxy.helpers import ProxyHarness, request
from tests.vncproxy.peers import TestViewer


class _WSWrite:
    """
    A transport for L{TestViewer} that sends each write as one binary WebSocket message.
    """

    def __init__(self, ws: "WSViewer") -> None:
        self.ws = ws

    def write(self, data: bytes) -> None:
        self.ws.sendMessage(data, isBinary=True)

    def loseConnection(self) -> None:
        self.ws.sendClose(1000)


class WSViewer(WebSocketClientProtocol):
    viewer: TestViewer
    factory: Any

    def onConnect(self, response: Any) -> None:
        self.factory.subprotocol = response.protocol

    def onOpen(self) -> None:
        self.factory.opened = True
        self.viewer.transport = _WSWrite(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.binary.append(isBinary)
        self.viewer.dataReceived(payload)

    def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
        self.factory.closed = (code, reason)


class WebSocketTests(SynchronousTestCase):
    def connectWS(self, h: ProxyHarness, port: int, viewer: TestViewer, protocols: list[str] | None) -> tuple[Any, Any]:
        factory: Any = WebSocketClientFactory(
            f"ws://127.0.0.1:{port}/websockify", protocols=protocols, reactor=h.reactor
        )
        factory.setProtocolOptions(openHandshakeTimeout=0, closeHandshakeTimeout=0, serverConnectionDropTimeout=0)
        factory.protocol = WSViewer
        factory.binary = []
        factory.opened = False
        factory.closed = None
        factory.subprotocol = None
        client: Any = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", port))
        client.viewer = viewer
        server = h.listenerFor(port).buildProtocol(IPv4Address("TCP", "127.0.0.1", 40001))
        pump = iosim.connect(
            server, iosim.makeFakeServer(server), client, iosim.makeFakeClient(client), greet=False, clock=h.reactor
        )
        h.viewerPumps.append(pump)
        h.pumpAll()
        return factory, client

    def test_noSubprotocol(self) -> None:
        """
        A client offering no subprotocol (noVNC 1.3) is accepted; RFB auth and the relay run in binary frames.
        """
        h = ProxyHarness(self)
        reply = h.ask(request(type="vnc-ws"))
        self.assertEqual(reply["status"], "OK")
        v = TestViewer("onetime12")
        factory, client = self.connectWS(h, reply["source_port"], v, None)
        self.assertTrue(factory.opened)
        self.assertIsNone(factory.subprotocol)
        self.assertEqual(v.result, "ok")
        self.assertEqual(set(factory.binary), {True})
        server = h.endpoint.servers[0]
        server.transport.write(b"pixels")
        client.sendMessage(b"\x03" + bytes(9), isBinary=True)
        h.pumpAll()
        self.assertEqual(v.received, b"pixels")
        self.assertEqual(server.received, b"\x03" + bytes(9))
        client.sendClose(1000)
        h.pumpAll()
        self.assertEqual(h.proxy.forwardings, set())
        self.assertEqual(h.proxy.ports.inUse, frozenset())
        self.assertEqual(h.reactor.getDelayedCalls(), [])

    def test_binarySubprotocol(self) -> None:
        """
        A client offering "binary" gets it.
        """
        h = ProxyHarness(self)
        port = h.ask(request(type="vnc-ws"))["source_port"]
        v = TestViewer("onetime12")
        factory, _ = self.connectWS(h, port, v, ["binary"])
        self.assertEqual(factory.subprotocol, "binary")
        self.assertEqual(v.result, "ok")

    def test_base64Refused(self) -> None:
        """
        A client offering only the base64 subprotocol is refused at the upgrade.
        """
        h = ProxyHarness(self)
        port = h.ask(request(type="vnc-ws"))["source_port"]
        factory, _ = self.connectWS(h, port, TestViewer("onetime12"), ["base64"])
        self.assertFalse(factory.opened)
        self.assertEqual(len(h.proxy.forwardings), 1)

    def test_wrongPassword(self) -> None:
        """
        A wrong password over the WebSocket gets the 3.8 failure reason, and the forwarding ends.
        """
        h = ProxyHarness(self)
        port = h.ask(request(type="vnc-ws"))["source_port"]
        v = TestViewer("wrongpwd")
        factory, _ = self.connectWS(h, port, v, None)
        self.assertEqual(v.result, "failed: Authentication failed")
        self.assertIsNotNone(factory.closed)
        self.assertEqual(h.proxy.forwardings, set())
        self.assertEqual(h.reactor.getDelayedCalls(), [])

    def test_secondWebSocketRefused(self) -> None:
        """
        After one WebSocket is open, another upgrade on the same forwarding is refused.
        """
        h = ProxyHarness(self)
        port = h.ask(request(type="vnc-ws"))["source_port"]
        first = TestViewer("onetime12")
        self.connectWS(h, port, first, None)
        secondFactory, _ = self.connectWS(h, port, TestViewer("onetime12"), None)
        self.assertEqual(first.result, "ok")
        self.assertFalse(secondFactory.opened)

    def test_straysClosed(self) -> None:
        """
        A connection that never upgrades is dropped when the forwarding ends (here: its timeout).
        """
        h = ProxyHarness(self, connectTimeout=5.0)
        port = h.ask(request(type="vnc-ws"))["source_port"]
        server = h.listenerFor(port).buildProtocol(IPv4Address("TCP", "127.0.0.1", 40002))
        idle = TestViewer("x")
        h.viewerPumps.append(
            iosim.connect(
                server, iosim.makeFakeServer(server), idle, iosim.makeFakeClient(idle), greet=False, clock=h.reactor
            )
        )
        h.pumpAll()
        h.reactor.advance(5)
        h.pumpAll()
        self.assertIsNotNone(idle.lost)
        self.assertEqual(h.proxy.forwardings, set())

    def test_textFrameRefused(self) -> None:
        """
        A text frame after authentication ends the forwarding.
        """
        h = ProxyHarness(self)
        port = h.ask(request(type="vnc-ws"))["source_port"]
        v = TestViewer("onetime12")
        _, client = self.connectWS(h, port, v, None)
        client.sendMessage(b"hello", isBinary=False)
        h.pumpAll()
        self.assertEqual(h.proxy.forwardings, set())


class NegotiationTests(SynchronousTestCase):
    def test_alpn(self) -> None:
        """
        The viewer factory declares ALPN http/1.1, so a browser's TLS handshake (which offers ALPN) succeeds.
        """
        from twisted.internet.interfaces import IProtocolNegotiationFactory
        from zope.interface.verify import verifyObject

        from vncproxy.websocket import ViewerWebSocketFactory

        h = ProxyHarness(self)
        h.ask(request(type="vnc-ws"))
        (forwarding,) = h.proxy.forwardings
        factory = ViewerWebSocketFactory(forwarding, h.reactor)
        self.assertTrue(verifyObject(IProtocolNegotiationFactory, factory))
        self.assertEqual(factory.acceptableProtocols(), [b"http/1.1"])
