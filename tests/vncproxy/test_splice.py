"""
Tests for L{vncproxy.splice}: the zero-copy relay, on real socket pairs and a
private (not installed) epoll reactor driven by hand.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from twisted.internet.epollreactor import EPollReactor
from twisted.trial.unittest import SynchronousTestCase

from vncproxy import splice


class FakeTCPTransport:
    """
    Stands for a Twisted TCP transport whose socket the relay takes over.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.socket = sock
        self.calls: list[str] = []
        self.dataBuffer = b""
        self.offset = 0
        self._tempDataLen = 0

    def unregisterProducer(self) -> None:
        self.calls.append("unregisterProducer")

    def stopReading(self) -> None:
        self.calls.append("stopReading")

    def stopWriting(self) -> None:
        self.calls.append("stopWriting")

    def loseConnection(self) -> None:
        self.calls.append("loseConnection")
        self.socket.close()


class SpliceRelayTests(SynchronousTestCase):
    def setUp(self) -> None:
        if not hasattr(os, "splice"):
            raise self.skipTest("this Python has no os.splice (Linux only)")
        self.reactor = EPollReactor()
        # viewer <-> [viewerSide | relay | serverSide] <-> server
        self.viewer, viewerSide = socket.socketpair()
        self.server, serverSide = socket.socketpair()
        for s in (self.viewer, self.server, viewerSide, serverSide):
            s.setblocking(False)
            self.addCleanup(s.close)
        self.ta, self.tb = FakeTCPTransport(viewerSide), FakeTCPTransport(serverSide)
        self.ended: list[str] = []
        self.relay = splice.SpliceRelay(self.reactor, self.ta, self.tb, lambda r, why: self.ended.append(why))
        self.addCleanup(self.relay.stop, "test over")

    def spin(self, times: int = 50, timeout: float = 0.001) -> None:
        for _ in range(times):
            self.reactor.runUntilCurrent()
            self.reactor.doIteration(timeout)

    def recvAll(self, sock: socket.socket) -> bytes:
        out = b""
        while True:
            try:
                chunk = sock.recv(1 << 20)
            except BlockingIOError:
                return out
            if not chunk:
                return out
            out += chunk

    def test_available(self) -> None:
        """
        Splice is available for socket-backed transports on an fd reactor, not for others.
        """
        self.assertTrue(splice.available(self.reactor, self.ta, self.tb))
        self.assertFalse(splice.available(self.reactor, self.ta, object()))
        self.assertFalse(splice.available(object(), self.ta, self.tb))

    def test_takesOver(self) -> None:
        """
        The transports stop reading and writing and lose their producers when the relay starts.
        """
        for t in (self.ta, self.tb):
            self.assertEqual(t.calls, ["unregisterProducer", "stopReading", "stopWriting"])

    def test_bothWays(self) -> None:
        """
        Bytes flow viewer to server and server to viewer, and are counted.
        """
        self.viewer.send(b"hello server")
        self.server.send(b"hello viewer")
        self.spin()
        self.assertEqual(self.recvAll(self.server), b"hello server")
        self.assertEqual(self.recvAll(self.viewer), b"hello viewer")
        self.assertEqual((self.relay.toServer, self.relay.toViewer), (12, 12))

    def test_bulkWithSlowReader(self) -> None:
        """
        Eight MiB reach a reader that drains slowly, intact and in order (flow control holds the rest).
        """
        payload = os.urandom(8 << 20)
        sent = 0
        received = bytearray()
        for _ in range(20000):
            if sent < len(payload):
                try:
                    sent += self.server.send(payload[sent : sent + 65536])
                except BlockingIOError:
                    pass
            self.spin(1, timeout=0)
            try:
                received += self.viewer.recv(32768)
            except BlockingIOError:
                pass
            if len(received) == len(payload):
                break
        self.assertEqual(bytes(received), payload)
        self.assertLessEqual(self.relay.b.toPeer.pending, splice.PIPE_SIZE)

    def test_halfClose(self) -> None:
        """
        A side's end of stream reaches the other as EOF after the data; the relay ends when both have ended.
        """
        self.viewer.send(b"last words")
        self.viewer.shutdown(socket.SHUT_WR)
        self.spin()
        self.assertEqual(self.recvAll(self.server), b"last words")
        self.assertEqual(self.server.recv(10), b"")  # EOF passed on
        self.assertEqual(self.ended, [])
        self.server.send(b"reply")  # the other direction still works
        self.spin()
        self.assertEqual(self.recvAll(self.viewer), b"reply")
        self.server.shutdown(socket.SHUT_WR)
        self.spin()
        self.assertEqual(self.ended, ["both sides finished"])
        for t in (self.ta, self.tb):
            self.assertEqual(t.calls[-1], "loseConnection")

    def test_reset(self) -> None:
        """
        A side that goes away ends the relay once, and both transports are closed.
        """
        self.server.close()
        self.viewer.send(b"x" * 100000)
        self.spin()
        self.assertEqual(len(self.ended), 1)
        self.assertEqual(sum(t.calls.count("loseConnection") for t in (self.ta, self.tb)), 2)

    def test_stop(self) -> None:
        """
        stop() ends the relay at once and later events do nothing.
        """
        self.relay.stop("service stopping")
        self.relay.stop("again")
        self.assertEqual(self.ended, ["service stopping"])
        ends = {self.relay.a, self.relay.b}
        self.assertFalse(ends & set(self.reactor.getReaders()))
        self.assertFalse(ends & set(self.reactor.getWriters()))

    def test_writeBuffered(self) -> None:
        """
        writeBuffered reports bytes a transport still holds.
        """
        t: Any = FakeTCPTransport(self.viewer)
        self.assertFalse(splice.writeBuffered(t))
        t._tempDataLen = 3
        self.assertTrue(splice.writeBuffered(t))
        t._tempDataLen, t.dataBuffer, t.offset = 0, b"abcd", 2
        self.assertTrue(splice.writeBuffered(t))
