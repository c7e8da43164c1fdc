"""
Tests for L{dhcp.nfqueue}: the nfnetlink_queue codec, the batch reader
(over a socketpair standing in for the netlink socket), and binding a real
kernel queue.
"""

from __future__ import annotations

import errno
import os
import socket

from twisted.internet import defer
from twisted.internet import reactor as real_reactor  # tests only: fairness on the real epoll reactor
from twisted.internet.interfaces import IReadDescriptor
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from dhcp import nfqueue
from dhcp.nfqueue import NF_ACCEPT, NF_DROP, NFQueueReader, NFQueueSocket, QueuedPacket


def pair() -> tuple[NFQueueSocket, socket.socket]:
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    q = NFQueueSocket(42, sock=ours)
    q.open()
    return q, kernel


def verdictsIn(data: bytes, batch: bool = False) -> list[tuple[int, int]]:
    out = []
    kind = nfqueue.NFQNL_MSG_VERDICT_BATCH if batch else nfqueue.NFQNL_MSG_VERDICT
    for msgType, _, body in nfqueue.parseMessages(data):
        assert msgType == (nfqueue.NFNL_SUBSYS_QUEUE << 8) | kind
        v = nfqueue.parseVerdict(body)
        assert v is not None
        out.append(v)
    return out


class CodecTests(SynchronousTestCase):
    def test_packetRoundTrip(self) -> None:
        """
        A packet message with every attribute we read decodes to the same
        id, protocol, devices, hardware address and payload.
        """
        data = nfqueue.encodePacketMessage(
            42, 99, b"payload!", indev=7, physindev=9, hwaddr=b"\x02" * 6, hwProtocol=0x86DD
        )
        messages = list(nfqueue.parseMessages(data))
        self.assertEqual(len(messages), 1)
        packet = nfqueue.parsePacket(data, 16)
        self.assertEqual(packet, QueuedPacket(99, 0x86DD, 7, 9, b"\x02" * 6, b"payload!"))

    def test_packetWithoutPayload(self) -> None:
        """
        A packet message without a payload or header attribute is not a
        packet.
        """
        self.assertIsNone(nfqueue.parsePacket(nfqueue.encodeMessage(0x300, 0, 0, 0, 42, b"")[16:]))

    def test_truncated(self) -> None:
        """
        Truncated datagrams stop the message iterator and the attribute
        walk without raising.
        """
        data = nfqueue.encodePacketMessage(42, 1, b"x" * 40)
        for n in range(len(data)):
            list(nfqueue.parseMessages(data[:n]))
            nfqueue.parsePacket(data[:n], 16)

    def test_configMessages(self) -> None:
        """
        The bind request is a config message for the queue (big-endian
        res_id), asking for an acknowledgement, with the bind command.
        """
        data = nfqueue.configMessage(0x1234, 5, nfqueue.bindAttributes(nfqueue.NFQNL_CFG_CMD_BIND))
        ((msgType, seq, body),) = nfqueue.parseMessages(data)
        self.assertEqual(msgType, 0x302)
        self.assertEqual(seq, 5)
        self.assertEqual(body[2:4], b"\x12\x34")
        self.assertEqual(body[4:12], b"\x08\x00\x01\x00\x01\x00\x00\x00")


class ReaderTests(SynchronousTestCase):
    def test_interface(self) -> None:
        """
        The reader is an IReadDescriptor on the socket's descriptor.
        """
        q, kernel = pair()
        self.addCleanup(kernel.close)
        reader = NFQueueReader(q, lambda p: NF_ACCEPT)
        self.assertTrue(verifyObject(IReadDescriptor, reader))
        self.assertEqual(reader.fileno(), q.fileno())
        self.assertEqual(reader.logPrefix(), "nfqueue-42")

    def test_boundedBatch(self) -> None:
        """
        One doRead handles at most C{batch} packets and sends their
        verdicts in one datagram; the rest waits for the next doRead.
        """
        q, kernel = pair()
        self.addCleanup(kernel.close)
        for i in range(10):
            kernel.send(nfqueue.encodePacketMessage(42, i, b"p%d" % i, indev=3))
        seen: list[int] = []

        def handler(p: QueuedPacket) -> int:
            seen.append(p.packetId)
            return NF_DROP if p.packetId % 2 else NF_ACCEPT

        reader = NFQueueReader(q, handler, batch=4)
        reader.doRead()
        self.assertEqual(seen, [0, 1, 2, 3])
        self.assertEqual(verdictsIn(kernel.recv(65536)), [(0, NF_ACCEPT), (1, NF_DROP), (2, NF_ACCEPT), (3, NF_DROP)])
        reader.doRead()
        reader.doRead()
        self.assertEqual(seen, list(range(10)))
        reader.doRead()
        self.assertEqual(seen, list(range(10)))
        self.assertEqual(q.received, 10)

    def test_batchVerdict(self) -> None:
        """
        When every packet of a batch gets the same verdict, one batch
        verdict naming the highest id goes out instead of one per packet.
        """
        q, kernel = pair()
        self.addCleanup(kernel.close)
        for i in (5, 6, 7):
            kernel.send(nfqueue.encodePacketMessage(42, i, b"x"))
        NFQueueReader(q, lambda p: NF_DROP).doRead()
        self.assertEqual(verdictsIn(kernel.recv(65536), batch=True), [(7, NF_DROP)])

    def test_afterBatch(self) -> None:
        """
        The afterBatch hook runs once per doRead, after the verdicts.
        """
        q, kernel = pair()
        self.addCleanup(kernel.close)
        calls: list[int] = []
        kernel.send(nfqueue.encodePacketMessage(42, 1, b"x"))
        NFQueueReader(q, lambda p: NF_DROP, afterBatch=lambda: calls.append(1)).doRead()
        self.assertEqual(calls, [1])

    def test_handlerFailure(self) -> None:
        """
        A handler that raises gets its packet accepted and the failure
        logged; the other packets of the batch are handled normally.
        """
        q, kernel = pair()
        self.addCleanup(kernel.close)
        kernel.send(nfqueue.encodePacketMessage(42, 1, b"a"))
        kernel.send(nfqueue.encodePacketMessage(42, 2, b"b"))

        def handler(p: QueuedPacket) -> int:
            if p.payload == b"a":
                raise RuntimeError("boom")
            return NF_DROP

        reader = NFQueueReader(q, handler)
        reader.doRead()
        self.assertEqual(verdictsIn(kernel.recv(65536)), [(1, NF_ACCEPT), (2, NF_DROP)])
        self.assertEqual(reader.errors, 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_nothingToRead(self) -> None:
        """
        A doRead with nothing pending sends nothing.
        """
        q, kernel = pair()
        self.addCleanup(kernel.close)
        kernel.setblocking(False)
        NFQueueReader(q, lambda p: NF_ACCEPT).doRead()
        self.assertRaises(BlockingIOError, kernel.recv, 100)


class KernelTests(SynchronousTestCase):
    """
    Against the real nfnetlink_queue of this kernel (needs CAP_NET_ADMIN:
    the suite runs as root). A high queue number with no rule pointing at
    it carries no traffic.
    """

    def setUp(self) -> None:
        if os.geteuid() != 0:
            raise self.skipTest("binding an NFQUEUE needs root (CAP_NET_ADMIN)")
        self.number = 60000 + os.getpid() % 5000

    def test_bindTwice(self) -> None:
        """
        The kernel accepts our bind and configuration; a second socket
        binding the same queue is refused (EPERM: the queue belongs to
        another netlink port) with a message naming the likely cause; after
        close the queue is free again.
        """
        first = NFQueueSocket(self.number)
        first.open()
        second = NFQueueSocket(self.number)
        error = self.assertRaises(nfqueue.NFQueueError, second.open)
        self.assertEqual(error.errno, errno.EPERM)
        self.assertIn(f"NFQUEUE {self.number}", str(error))
        self.assertIn("another process", str(error))
        first.close()
        third = NFQueueSocket(self.number)
        third.open()
        self.assertEqual(third.readBatch(10), [])
        third.close()


class FairnessTests(TestCase):
    """
    On the real reactor: a flooded queue does not starve another one.
    """

    def test_floodedQueueDoesNotStarve(self):
        """
        With 4000 packets waiting on one queue and one on another, the
        lone packet is handled after at most a couple of batches of the
        flooded queue, not after all of them.
        """
        flooded, floodKernel = pair()
        quiet, quietKernel = pair()
        for sk in (flooded, quiet):
            self.addCleanup(sk.close)
        self.addCleanup(floodKernel.close)
        self.addCleanup(quietKernel.close)
        floodKernel.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        sent = 0
        floodKernel.setblocking(False)
        while sent < 4000:
            try:
                floodKernel.send(nfqueue.encodePacketMessage(42, sent, b"x" * 64))
            except BlockingIOError:
                break
            sent += 1
        self.assertGreater(sent, 500)
        quietKernel.send(nfqueue.encodePacketMessage(43, 1, b"y"))
        handledBefore: list[int] = []
        floodCount = [0]
        done: defer.Deferred[None] = defer.Deferred()

        def onFlood(p: QueuedPacket) -> int:
            floodCount[0] += 1
            if floodCount[0] == sent and not done.called:
                real_reactor.callLater(0, done.callback, None)
            return NF_DROP

        def onQuiet(p: QueuedPacket) -> int:
            handledBefore.append(floodCount[0])
            return NF_DROP

        readers = [NFQueueReader(flooded, onFlood, batch=64), NFQueueReader(quiet, onQuiet, batch=64)]
        for r in readers:
            real_reactor.addReader(r)
            self.addCleanup(real_reactor.removeReader, r)

        def check(_: None) -> None:
            self.assertEqual(len(handledBefore), 1)
            self.assertLessEqual(handledBefore[0], 2 * 64)

        return done.addCallback(check)
