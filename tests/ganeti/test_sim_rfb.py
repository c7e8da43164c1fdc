"""
Tests for the simulated instances' RFB consoles.
"""

from __future__ import annotations

import struct

from twisted.internet import reactor  # tests only: real loopback sockets
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from synnefo_twisted.ganeti import errors
from synnefo_twisted.ganeti.rapi import RapiClient
from synnefo_twisted.ganeti.sim.rfb import HEIGHT, WIDTH, RFBServerProtocol, framebuffer, renderText
from tests.ganeti.test_sim_contract import startSim


def serverInitName(data: bytes) -> str:
    (length,) = struct.unpack(">I", data[20:24])
    return data[24 : 24 + length].decode()


class ProtocolTests(SynchronousTestCase):
    def handshake(self, version: bytes) -> tuple[RFBServerProtocol, StringTransport]:
        proto = RFBServerProtocol("snf-42")
        transport = StringTransport()
        proto.makeConnection(transport)
        self.assertEqual(transport.value(), b"RFB 003.008\n")
        transport.clear()
        proto.dataReceived(version)
        return proto, transport

    def test_handshake38(self) -> None:
        """
        RFB 3.8: security None is offered, the result is OK, and ServerInit names the instance.
        """
        proto, transport = self.handshake(b"RFB 003.008\n")
        self.assertEqual(transport.value(), b"\x01\x01")
        transport.clear()
        proto.dataReceived(b"\x01")
        self.assertEqual(transport.value(), b"\x00\x00\x00\x00")
        transport.clear()
        proto.dataReceived(b"\x01")
        init = transport.value()
        self.assertEqual(struct.unpack(">HH", init[:4]), (WIDTH, HEIGHT))
        self.assertEqual(serverInitName(init), "snf-42")

    def test_handshake33(self) -> None:
        """
        RFB 3.3: the server decides security None with a 32-bit type.
        """
        _proto, transport = self.handshake(b"RFB 003.003\n")
        self.assertEqual(transport.value(), b"\x00\x00\x00\x01")

    def test_updates(self) -> None:
        """
        Client messages split across reads are parsed; an update request gets one raw rectangle of the whole screen.
        """
        proto, transport = self.handshake(b"RFB 003.008\n")
        proto.dataReceived(b"\x01\x01")
        transport.clear()
        messages = (
            b"\x02\x00\x00\x02"
            + b"\x00\x00\x00\x00" * 2  # SetEncodings
            + b"\x04\x01\x00\x00\x00\x00\x00\x41"  # KeyEvent
            + b"\x06\x00\x00\x00\x00\x00\x00\x02hi"  # ClientCutText
            + b"\x03\x00\x00\x00\x00\x00\x00\x40\x00\x10"  # FramebufferUpdateRequest
        )
        for i in range(len(messages)):
            proto.dataReceived(messages[i : i + 1])
        data = transport.value()
        self.assertEqual(data[:4], b"\x00\x00\x00\x01")
        self.assertEqual(struct.unpack(">HHHHi", data[4:16]), (0, 0, WIDTH, HEIGHT, 0))
        self.assertEqual(data[16:], framebuffer("snf-42"))

    def test_screenShowsName(self) -> None:
        """
        The screen shows the instance name in pixels: different names give different screens, and "snf-1" draws its glyphs.
        """
        rows = renderText(framebuffer("snf-1"))
        self.assertEqual(len(rows), HEIGHT)
        ink = [r for r in rows if "#" in r]
        self.assertEqual(len(ink), 10)
        self.assertEqual(ink[0][4:14], "..####..##")
        self.assertNotEqual(framebuffer("snf-1"), framebuffer("snf-2"))
        self.assertEqual(len(framebuffer("x" * 500)), WIDTH * HEIGHT * 4)

    def test_badVersion(self) -> None:
        """
        An unknown protocol version closes the connection.
        """
        _proto, transport = self.handshake(b"RFB 004.000\n")
        self.assertTrue(transport.disconnecting)


class Viewer(Protocol):
    def __init__(self) -> None:
        self.data = b""
        self.done: Deferred[str] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        before = len(self.data)
        self.data += data
        if before < 12 <= len(self.data):
            self.transport.write(b"RFB 003.008\n")  # type: ignore[union-attr]
        if before < 14 <= len(self.data):
            self.transport.write(b"\x01")  # type: ignore[union-attr]
        if before < 18 <= len(self.data):
            self.transport.write(b"\x01")  # type: ignore[union-attr]
        if len(self.data) >= 18 + 24:
            body = self.data[18:]
            (length,) = struct.unpack(">I", body[20:24])
            if len(body) >= 24 + length and not self.done.called:
                self.transport.loseConnection()  # type: ignore[union-attr]
                self.done.callback(body[24 : 24 + length].decode())


class ConsoleEndToEndTests(TestCase):
    async def test_console(self) -> None:
        """
        A running simulated instance's console call returns a loopback RFB server whose screen names the instance; after shutdown the console is 503 and the port is closed.
        """
        sim = await startSim(self)
        client = RapiClient.forURL(reactor, sim.rapiUrl, "gnt-admin", "gnt-secret", pollInterval=0.01)
        job = await client.createInstance("snf-5", "diskless", [], [], os="noop")
        await client.waitForJob(job)
        console = await client.getInstanceConsole("snf-5")
        self.assertEqual((console["kind"], console["host"], console["instance"]), ("vnc", "127.0.0.1", "snf-5"))
        viewer = Viewer()
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", console["port"]), viewer)
        self.assertEqual(await viewer.done, "snf-5")
        await client.waitForJob(await client.shutdownInstance("snf-5"))
        with self.assertRaises(errors.RapiServerError):
            await client.getInstanceConsole("snf-5")
        self.assertEqual(sim.consoles.ports, {})
