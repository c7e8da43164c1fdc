"""
Tests for L{dhcp.service}: the responder service with in-memory seams (a
socketpair per queue standing in for netlink, recording senders, a fixed
ifindex table) and a memory reactor with a clock.
"""

from __future__ import annotations

import socket
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.application.service import IService
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from dhcp import dhcpv4, nfqueue
from dhcp.nfqueue import NF_ACCEPT, NF_DROP, NFQueueSocket
from dhcp.responder import Link
from dhcp.service import DHCPService, Platform, Sender, queuesFromSettings
from synnefo_twisted.interfaces import IHealthReporter
from synnefo_twisted.metrics import MetricsRegistry
from tests.dhcp.helpers import CONFIG, HOST_MAC, ROUTED, dhcpPacket

INDEX = {3: "tap1", 4: "tap2", 9: "br0"}


class RecordingSender(Sender):
    def __init__(self, name: str, sent: list[tuple[str, bytes]]) -> None:
        self.name = name
        self.sent = sent
        self.closed = False
        self.fail = False

    def send(self, frame: bytes) -> None:
        if self.fail:
            raise OSError("no buffer space")
        self.sent.append((self.name, frame))

    def close(self) -> None:
        self.closed = True


class Harness:
    def __init__(self, test: SynchronousTestCase, queues=None) -> None:
        self.dir = Path(test.mktemp())
        self.dir.mkdir()
        (self.dir / "tap1").write_text(ROUTED)
        self.kernel: dict[int, socket.socket] = {}
        self.sent: list[tuple[str, bytes]] = []
        self.senders: dict[str, RecordingSender] = {}
        self.reactor = MemoryReactorClock()
        self.metrics = MetricsRegistry()

        def openQueue(number: int) -> NFQueueSocket:
            ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            test.addCleanup(kernel.close)
            self.kernel[number] = kernel
            q = NFQueueSocket(number, sock=ours)
            q.open()
            return q

        def openSender(name: str) -> Sender:
            s = self.senders[name] = RecordingSender(name, self.sent)
            return s

        def indexToName(index: int) -> str:
            try:
                return INDEX[index]
            except KeyError:
                raise OSError("no such device") from None

        self.platform = Platform(
            openQueue=openQueue,
            openSender=openSender,
            indexToName=indexToName,
            linkOf=lambda name: Link(HOST_MAC, 1500),
            watchBindings=False,
        )
        self.service = DHCPService(
            self.reactor,
            CONFIG,
            self.dir,
            queues if queues is not None else {"dhcp": 42, "rs": 43, "ns": 44, "dhcpv6": 45},
            self.metrics,
            self.platform,
            batch=8,
        )

    def inject(self, number: int, packet) -> None:
        self.kernel[number].send(
            nfqueue.encodePacketMessage(
                number, packet.packetId, packet.payload, packet.indev, packet.physindev, packet.hwaddr
            )
        )

    def readAll(self) -> None:
        for reader in list(self.reactor.readers):
            reader.doRead()

    def verdicts(self, number: int) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        kernel = self.kernel[number]
        kernel.setblocking(False)
        while True:
            try:
                data = kernel.recv(65536)
            except BlockingIOError:
                return out
            for _, _, body in nfqueue.parseMessages(data):
                v = nfqueue.parseVerdict(body)
                assert v is not None
                out.append(v)


class ServiceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.h = Harness(self)
        self.successResultOf(self.h.service.startService())
        self.addCleanup(lambda: self.h.service.running and self.h.service.stopService())

    def test_interfaces(self) -> None:
        """
        The service is an IService and reports its health.
        """
        self.assertTrue(verifyObject(IService, self.h.service))
        self.assertTrue(verifyObject(IHealthReporter, self.h.service))
        health = self.h.service.health()
        self.assertTrue(health.ok)
        self.assertIn("1 bindings", health.detail)

    def test_readersRegistered(self) -> None:
        """
        One reader per queue is added to the reactor; stopping removes and
        closes them and stops the RA loop.
        """
        self.assertEqual(len(self.h.reactor.readers), 4)
        self.assertEqual(len(self.h.reactor.getDelayedCalls()), 1)
        self.successResultOf(self.h.service.stopService())
        self.assertEqual(len(self.h.reactor.readers), 0)
        self.assertEqual(self.h.reactor.getDelayedCalls(), [])
        self.assertFalse(self.h.service.health().ok)

    def test_answered(self) -> None:
        """
        A DISCOVER from the bound tap is answered on that tap's sender and
        dropped; metrics count it.
        """
        self.h.inject(42, dhcpPacket(dhcpv4.DISCOVER))
        self.h.readAll()
        self.assertEqual(self.h.verdicts(42), [(7, NF_DROP)])
        self.assertEqual([name for name, _ in self.h.sent], ["tap1"])
        self.assertEqual(self.h.metrics.counter("snf_dhcp_replies_total", "", ("kind",)).value(kind="DHCPOFFER"), 1)
        self.assertIn("snf_dhcp_bindings 1", self.h.metrics.render())

    def test_bridgedByPhysindev(self) -> None:
        """
        The bridge port (physindev) identifies the client, not the bridge.
        """
        (self.h.dir / "tap2").write_text(ROUTED.replace("INDEV=tap1", "INDEV=br0"))
        self.h.service.store.load("tap2")
        p = dhcpPacket(dhcpv4.DISCOVER)
        p.indev, p.physindev = 9, 4
        self.h.inject(42, p)
        self.h.readAll()
        self.assertEqual(self.h.verdicts(42), [(7, NF_DROP)])
        self.assertEqual([name for name, _ in self.h.sent], ["tap2"])

    def test_unknownInterface(self) -> None:
        """
        Packets from an interface without a binding, or an ifindex that no
        longer exists, are accepted and not answered.
        """
        for packetId, index in ((7, 4), (8, 77)):
            p = dhcpPacket(dhcpv4.DISCOVER)
            p.packetId, p.indev = packetId, index
            self.h.inject(42, p)
        self.h.readAll()
        # one batch verdict covers both
        self.assertEqual(self.h.verdicts(42), [(8, NF_ACCEPT)])
        self.assertEqual(self.h.sent, [])

    def test_bindingChangeRefreshes(self) -> None:
        """
        Removing a binding closes its sender and its tap's packets pass;
        adding it back answers them again.
        """
        self.h.inject(42, dhcpPacket(dhcpv4.DISCOVER))
        self.h.readAll()
        (self.h.dir / "tap1").unlink()
        self.h.service.store.rescan()
        self.assertTrue(self.h.senders["tap1"].closed)
        self.h.inject(42, dhcpPacket(dhcpv4.DISCOVER))
        self.h.readAll()
        (self.h.dir / "tap1").write_text(ROUTED)
        self.h.service.store.rescan()
        self.h.inject(42, dhcpPacket(dhcpv4.DISCOVER))
        self.h.readAll()
        self.assertEqual([v for _, v in self.h.verdicts(42)], [NF_DROP, NF_ACCEPT, NF_DROP])

    def test_sendFailure(self) -> None:
        """
        A reply that cannot be written is logged and counted; the request
        is still dropped (the client retries); the tap's socket is closed
        and a new one is opened for the next reply (the tap may have been
        recreated under the same name).
        """
        self.h.inject(42, dhcpPacket(dhcpv4.DISCOVER))
        self.h.readAll()
        broken = self.h.senders["tap1"]
        broken.fail = True
        self.h.inject(42, dhcpPacket(dhcpv4.DISCOVER))
        self.h.readAll()
        self.assertEqual([v for _, v in self.h.verdicts(42)], [NF_DROP, NF_DROP])
        self.assertIn("snf_dhcp_send_errors_total 1", self.h.metrics.render())
        self.assertTrue(broken.closed)
        self.h.inject(42, dhcpPacket(dhcpv4.DISCOVER))
        self.h.readAll()
        self.assertIsNot(self.h.senders["tap1"], broken)
        self.assertEqual(len(self.h.sent), 2)

    def test_periodicRA(self) -> None:
        """
        Every ra_period seconds an unsolicited RA goes to each binding with
        an IPv6 subnet.
        """
        self.h.reactor.advance(CONFIG.raPeriod)
        self.assertEqual(len(self.h.sent), 1)
        name, frame = self.h.sent[0]
        self.assertEqual((name, frame[:6]), ("tap1", b"\x33\x33\0\0\0\x01"))
        self.h.reactor.advance(CONFIG.raPeriod)
        self.assertEqual(len(self.h.sent), 2)

    def test_stopAnswersPending(self) -> None:
        """
        Stopping first handles what is already queued, so no packet is
        left waiting for a verdict.
        """
        self.h.inject(42, dhcpPacket(dhcpv4.DISCOVER))
        self.successResultOf(self.h.service.stopService())
        self.assertEqual(self.h.verdicts(42), [(7, NF_DROP)])


class FuzzTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.h = Harness(self)
        self.successResultOf(self.h.service.startService())
        self.addCleanup(self.h.service.stopService)

    @settings(max_examples=150, deadline=None)
    @given(st.sampled_from([42, 43, 44, 45]), st.binary(max_size=400), st.binary(min_size=6, max_size=8))
    def test_garbageThroughTheService(self, queue: int, payload: bytes, hwaddr: bytes) -> None:
        """
        Random network-layer bytes from a bound tap, on any queue, go
        through the whole path (netlink decode, lookup, responder) without
        an error, get exactly one verdict, accept, and no reply.
        """
        packet = dhcpPacket(dhcpv4.DISCOVER)
        packet.payload, packet.hwaddr = payload, hwaddr
        self.h.inject(queue, packet)
        self.h.readAll()
        self.assertEqual(self.h.verdicts(queue), [(7, NF_ACCEPT)])
        self.assertEqual(self.h.sent, [])
        self.assertEqual([r.errors for r in self.h.reactor.readers], [0, 0, 0, 0])


class StartFailureTests(SynchronousTestCase):
    def test_queueRefused(self) -> None:
        """
        A queue that cannot be bound fails startService with the kernel's
        reason, leaves no reader behind and reports the failure as health.
        """
        h = Harness(self)

        def refuse(number: int) -> NFQueueSocket:
            raise nfqueue.NFQueueError(number, "bind", 1)

        h.service.platform = Platform(openQueue=refuse, watchBindings=False)
        failure = self.failureResultOf(h.service.startService(), nfqueue.NFQueueError)
        self.assertIn("Operation not permitted", str(failure.value))
        self.assertEqual(h.reactor.readers, set())
        self.assertEqual(h.service.health().state, "failed")
        self.assertFalse(h.service.running)


class SettingsTests(SynchronousTestCase):
    def test_disabledQueues(self) -> None:
        """
        A negative queue number leaves that responder out.
        """
        self.assertEqual(
            queuesFromSettings({"dhcp_queue": 42, "rs_queue": -1, "ns_queue": 44, "dhcpv6_queue": -1}),
            {"dhcp": 42, "ns": 44},
        )
