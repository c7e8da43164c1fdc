# -*- test-case-name: tests.dhcp.test_nfqueue -*-
"""
nfnetlink_queue spoken directly over an C{AF_NETLINK}/C{NETLINK_NETFILTER}
socket, read from the reactor.

Why not a binding library: C{NetfilterQueue} (Cython over
libnetfilter_queue) only offers C{run(block=False)}, which drains the
socket completely inside one callback, so one flooded queue starves the
others and the reactor; it also needs a compiler and the -dev packages.
The protocol is small (linux/netfilter/nfnetlink_queue.h): a bind and a
few configuration messages, packet messages in, verdict messages out. Here
it is plain C{struct} over a non-blocking socket:

  - L{NFQueueSocket} opens one socket per queue, binds it (copy mode
    packet, a copy range, a maximum queue length and C{FAIL_OPEN}, so a
    full queue lets packets through instead of dropping them), and reads
    at most C{batch} messages per call;
  - the verdicts of one batch go out in a single C{send} (netlink carries
    several messages per datagram);
  - L{NFQueueReader} is the C{IReadDescriptor} the reactor polls.

A packet that userspace has not given a verdict for is held by the
kernel; when the socket closes, the kernel drops whatever is still queued.
The reader therefore gives a verdict to every packet of a batch before it
returns, and operators add C{--queue-bypass} to the iptables rules, so that
packets pass (instead of being dropped) while no responder is bound.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Callable, Iterable

import attrs
from twisted.internet.interfaces import IReadDescriptor
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

log = Logger()

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_NO_ENOBUFS = 5

NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQNL_MSG_VERDICT_BATCH = 3

NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLMSG_ERROR = 0x2
NLMSG_DONE = 0x3

NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_IFINDEX_INDEV = 5
NFQA_IFINDEX_PHYSINDEV = 7
NFQA_HWADDR = 9
NFQA_PAYLOAD = 10

NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQA_CFG_MASK = 4
NFQA_CFG_FLAGS = 5

NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_PACKET = 2
NFQA_CFG_F_FAIL_OPEN = 1

NF_DROP = 0
NF_ACCEPT = 1

_NLMSGHDR = struct.Struct("=IHHII")
_NFGENMSG = struct.Struct("!BBH")
_NLATTR = struct.Struct("=HH")
_U32 = struct.Struct("!I")
_PACKET_HDR = struct.Struct("!IHB")
_MSG_PACKET_TYPE = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET
_HEAD = _NLMSGHDR.size + _NFGENMSG.size


class NFQueueError(Exception):
    """
    The kernel refused a configuration request (C{errno} set).
    """

    def __init__(self, queue: int, what: str, error: int) -> None:
        self.queue = queue
        self.errno = error
        hint = ""
        if error == errno.EPERM:
            hint = " (not root / no CAP_NET_ADMIN, or another process is bound to this queue)"
        super().__init__(f"NFQUEUE {queue}: {what}: {os.strerror(error)}{hint}")


@attrs.define(slots=True)
class QueuedPacket:
    """
    One packet handed to userspace.

    @ivar packetId: the id its verdict must name.
    @ivar hwProtocol: the link-layer protocol (C{0x0800}, C{0x86dd}).
    @ivar indev: ifindex of the input device (the bridge when bridged), 0
        when unknown.
    @ivar physindev: ifindex of the bridge port it came in on (br_netfilter),
        0 when not bridged.
    @ivar hwaddr: the link-layer source address, when the kernel gave one.
    @ivar payload: the network-layer packet (IPv4 or IPv6 header onwards).
    """

    packetId: int
    hwProtocol: int
    indev: int
    physindev: int
    hwaddr: bytes | None
    payload: bytes


def _attr(kind: int, value: bytes) -> bytes:
    length = _NLATTR.size + len(value)
    return _NLATTR.pack(length, kind) + value + b"\0" * ((-length) % 4)


def encodeMessage(msgType: int, flags: int, seq: int, family: int, resId: int, attributes: bytes) -> bytes:
    """
    One nfnetlink message: netlink header, nfgenmsg, attributes.
    """
    body = _NFGENMSG.pack(family, 0, resId) + attributes
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), msgType, flags, seq, 0) + body


def configMessage(queue: int, seq: int, attributes: bytes) -> bytes:
    return encodeMessage(
        (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, seq, socket.AF_UNSPEC, queue, attributes
    )


def bindAttributes(command: int) -> bytes:
    return _attr(NFQA_CFG_CMD, struct.pack("!BxH", command, 0))


def paramsAttributes(copyRange: int, maxLen: int, failOpen: bool) -> bytes:
    out = _attr(NFQA_CFG_PARAMS, struct.pack("!IB", copyRange, NFQNL_COPY_PACKET))
    out += _attr(NFQA_CFG_QUEUE_MAXLEN, _U32.pack(maxLen))
    if failOpen:
        out += _attr(NFQA_CFG_FLAGS, _U32.pack(NFQA_CFG_F_FAIL_OPEN))
        out += _attr(NFQA_CFG_MASK, _U32.pack(NFQA_CFG_F_FAIL_OPEN))
    return out


def verdictMessage(queue: int, packetId: int, verdict: int, batch: bool = False) -> bytes:
    """
    The verdict message for one packet; with C{batch}, for every queued
    packet up to and including C{packetId}.
    """
    return encodeMessage(
        (NFNL_SUBSYS_QUEUE << 8) | (NFQNL_MSG_VERDICT_BATCH if batch else NFQNL_MSG_VERDICT),
        NLM_F_REQUEST,
        0,
        socket.AF_UNSPEC,
        queue,
        _attr(NFQA_VERDICT_HDR, struct.pack("!II", verdict, packetId)),
    )


def parseMessages(data: bytes) -> Iterable[tuple[int, int, bytes]]:
    """
    Split a netlink datagram into (type, seq, body after the netlink header)
    triples. Stops at the first truncated message.
    """
    i, n = 0, len(data)
    while i + _NLMSGHDR.size <= n:
        length, msgType, _, seq, _ = _NLMSGHDR.unpack_from(data, i)
        if length < _NLMSGHDR.size or i + length > n:
            return
        yield msgType, seq, data[i + _NLMSGHDR.size : i + length]
        i += (length + 3) & ~3


def parsePacket(data: bytes, offset: int = 0, end: int | None = None) -> QueuedPacket | None:
    """
    Decode an C{NFQNL_MSG_PACKET} message body (after the netlink header:
    nfgenmsg and attributes) found in C{data[offset:end]}; C{None} when it
    lacks the packet header or the payload.
    """
    if end is None:
        end = len(data)
    i = offset + _NFGENMSG.size
    packetId = -1
    hwProtocol = indev = physindev = 0
    hwaddr: bytes | None = None
    payload: bytes | None = None
    unpack = _NLATTR.unpack_from
    while i + 4 <= end:
        length, kind = unpack(data, i)
        if length < 4 or i + length > end:
            break
        kind &= 0x3FFF
        if kind == NFQA_PAYLOAD:
            payload = data[i + 4 : i + length]
        elif kind == NFQA_PACKET_HDR and length >= 11:
            packetId, hwProtocol, _ = _PACKET_HDR.unpack_from(data, i + 4)
        elif kind == NFQA_IFINDEX_INDEV and length >= 8:
            indev = _U32.unpack_from(data, i + 4)[0]
        elif kind == NFQA_IFINDEX_PHYSINDEV and length >= 8:
            physindev = _U32.unpack_from(data, i + 4)[0]
        elif kind == NFQA_HWADDR and length >= 8:
            hwlen = struct.unpack_from("!H", data, i + 4)[0]
            if 0 < hwlen <= 8 and length >= 8 + hwlen:
                hwaddr = data[i + 8 : i + 8 + hwlen]
        i += (length + 3) & ~3
    if packetId < 0 or payload is None:
        return None
    return QueuedPacket(packetId, hwProtocol, indev, physindev, hwaddr, payload)


def encodePacketMessage(
    queue: int,
    packetId: int,
    payload: bytes,
    indev: int = 0,
    physindev: int = 0,
    hwaddr: bytes | None = None,
    hwProtocol: int = 0x0800,
) -> bytes:
    """
    A packet message as the kernel sends it (for tests).
    """
    attrsOut = _attr(NFQA_PACKET_HDR, _PACKET_HDR.pack(packetId, hwProtocol, 0) + b"\0")
    if indev:
        attrsOut += _attr(NFQA_IFINDEX_INDEV, _U32.pack(indev))
    if physindev:
        attrsOut += _attr(NFQA_IFINDEX_PHYSINDEV, _U32.pack(physindev))
    if hwaddr is not None:
        attrsOut += _attr(NFQA_HWADDR, struct.pack("!Hxx", len(hwaddr)) + hwaddr.ljust(8, b"\0"))
    attrsOut += _attr(NFQA_PAYLOAD, payload)
    return encodeMessage(_MSG_PACKET_TYPE, 0, 0, socket.AF_UNSPEC, queue, attrsOut)


def parseVerdict(body: bytes) -> tuple[int, int] | None:
    """
    (packet id, verdict) of a verdict or batch verdict message body (for
    tests).
    """
    i = _NFGENMSG.size
    while i + 4 <= len(body):
        length, kind = _NLATTR.unpack_from(body, i)
        if length < 4:
            return None
        if kind & 0x3FFF == NFQA_VERDICT_HDR and length >= 12:
            verdict, packetId = struct.unpack_from("!II", body, i + 4)
            return packetId, verdict
        i += (length + 3) & ~3
    return None


class NFQueueSocket:
    """
    One bound NFQUEUE: a non-blocking netlink socket.

    @param sock: an already created socket (tests pass one end of a
        C{socketpair}); by default a new C{NETLINK_NETFILTER} socket.
    """

    def __init__(
        self,
        queue: int,
        maxLen: int = 4096,
        copyRange: int = 2048,
        failOpen: bool = True,
        rcvbuf: int = 4 << 20,
        sock: socket.socket | None = None,
    ) -> None:
        self.queue = queue
        self._maxLen = maxLen
        self._copyRange = copyRange
        self._failOpen = failOpen
        self._rcvbuf = rcvbuf
        self._bufsize = max(copyRange + 256, 4096)
        self._seq = 0
        self._sock = sock
        self._pending: list[tuple[int, int]] = []
        self.received = 0
        self.overruns = 0

    def fileno(self) -> int:
        assert self._sock is not None
        return self._sock.fileno()

    def open(self) -> None:
        """
        Create and bind the socket and configure the queue.

        @raise NFQueueError: e.g. C{EPERM} without C{CAP_NET_ADMIN},
            C{EBUSY} when another process holds the queue.
        """
        if self._sock is None:
            self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
            try:
                self._sock.bind((0, 0))
                try:
                    self._sock.setsockopt(socket.SOL_SOCKET, 33, self._rcvbuf)  # SO_RCVBUFFORCE
                except OSError:
                    self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._rcvbuf)
                self._sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
                self._request("bind", bindAttributes(NFQNL_CFG_CMD_BIND))
                self._request("configure", paramsAttributes(self._copyRange, self._maxLen, self._failOpen))
            except BaseException:
                self._sock.close()
                self._sock = None
                raise
        self._sock.setblocking(False)

    def _request(self, what: str, attributes: bytes) -> None:
        assert self._sock is not None
        self._seq += 1
        self._sock.send(configMessage(self.queue, self._seq, attributes))
        while True:
            data = self._sock.recv(8192)
            for msgType, seq, body in parseMessages(data):
                if msgType == NLMSG_ERROR and seq == self._seq:
                    error = -struct.unpack_from("=i", body)[0]
                    if error:
                        raise NFQueueError(self.queue, what, error)
                    return

    def readBatch(self, limit: int) -> list[QueuedPacket]:
        """
        Read at most C{limit} packets without blocking.
        """
        assert self._sock is not None
        out: list[QueuedPacket] = []
        recv = self._sock.recv
        size = self._bufsize
        while len(out) < limit:
            try:
                data = recv(size)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    self.overruns += 1
                    continue
                raise
            n = len(data)
            i = 0
            while i + 16 <= n:
                length, msgType = _NLMSGHDR.unpack_from(data, i)[:2]
                if length < 16 or i + length > n:
                    break
                if msgType == _MSG_PACKET_TYPE:
                    packet = parsePacket(data, i + 16, i + length)
                    if packet is not None:
                        out.append(packet)
                elif msgType == NLMSG_ERROR:
                    error = -struct.unpack_from("=i", data, i + 16)[0]
                    if error:
                        log.warn("NFQUEUE {queue}: netlink error {error}", queue=self.queue, error=os.strerror(error))
                i += (length + 3) & ~3
        self.received += len(out)
        return out

    def verdict(self, packetId: int, verdict: int) -> None:
        """
        Queue a verdict; L{flush} sends all queued ones in one datagram.
        """
        self._pending.append((packetId, verdict))

    def flush(self) -> None:
        """
        Send the queued verdicts: one batch verdict (every packet up to the
        highest id) when they are all the same, else one message each, in
        one datagram. Packets arrive in id order and each batch is read
        completely before its verdicts go out, so a batch verdict covers
        exactly the packets of this batch.
        """
        pending = self._pending
        if not pending or self._sock is None:
            return
        first = pending[0][1]
        if len(pending) > 1 and all(v == first for _, v in pending):
            data = verdictMessage(self.queue, max(i for i, _ in pending), first, batch=True)
        else:
            data = b"".join([verdictMessage(self.queue, i, v) for i, v in pending])
        pending.clear()
        try:
            self._sock.send(data)
        except OSError as e:
            log.error("NFQUEUE {queue}: sending verdicts failed: {error}", queue=self.queue, error=str(e))

    def close(self) -> None:
        """
        Send pending verdicts and close. Closing the netlink socket unbinds
        the queue (the kernel releases the instance); packets still queued
        in the kernel are dropped by it, and from then on the iptables
        rule's C{--queue-bypass} lets new packets pass.
        """
        if self._sock is None:
            return
        self.flush()
        self._sock.close()
        self._sock = None


PacketHandler = Callable[[QueuedPacket], int]


@implementer(IReadDescriptor)
class NFQueueReader:
    """
    Read one queue from the reactor: at most C{batch} packets per
    C{doRead}, each passed to C{handler}, which returns the verdict; the
    verdicts are then sent together. A handler that raises gets the packet
    accepted (and the failure logged), so every packet gets exactly one
    verdict.
    """

    def __init__(
        self,
        queue: NFQueueSocket,
        handler: PacketHandler,
        batch: int = 64,
        afterBatch: Callable[[], None] | None = None,
    ) -> None:
        self.queue = queue
        self._handler = handler
        self._batch = batch
        self._afterBatch = afterBatch
        self.errors = 0

    def fileno(self) -> int:
        return self.queue.fileno()

    def logPrefix(self) -> str:
        return f"nfqueue-{self.queue.queue}"

    def doRead(self) -> None:
        queue = self.queue
        handler = self._handler
        for packet in queue.readBatch(self._batch):
            try:
                verdict = handler(packet)
            except Exception:
                self.errors += 1
                log.failure("NFQUEUE {queue}: handler failed; packet accepted", queue=queue.queue)
                verdict = NF_ACCEPT
            queue.verdict(packet.packetId, verdict)
        queue.flush()
        if self._afterBatch is not None:
            self._afterBatch()

    def connectionLost(self, reason: Failure) -> None:
        log.info("NFQUEUE {queue} reader stopped", queue=self.queue.queue)
