# -*- test-case-name: tests.dhcp.test_service -*-
"""
The responder service: NFQUEUE readers on the reactor, the binding store
kept up to date by inotify, periodic router advertisements, and replies
written as Ethernet frames on an C{AF_PACKET} socket bound to each tap.

A packet is matched to a binding by the ifindex of the bridge port it came
in on (bridged) or of its input device (routed): the ifindex is turned into
a name once and cached until the bindings change.
"""

from __future__ import annotations

import fcntl
import socket
import struct
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger
from zope.interface import implementer

from dhcp import responder
from dhcp.binding import Binding, BindingStore, BindingWatcher
from dhcp.nfqueue import NF_ACCEPT, NFQueueReader, NFQueueSocket, QueuedPacket
from dhcp.responder import Answer, Link, ResponderConfig
from synnefo_twisted.health import Health
from synnefo_twisted.interfaces import IHealthReporter
from synnefo_twisted.metrics import MetricsRegistry

log = Logger()

SIOCGIFHWADDR = 0x8927
SIOCGIFMTU = 0x8921

QUEUE_SETTINGS = (("dhcp", "dhcp_queue"), ("rs", "rs_queue"), ("ns", "ns_queue"), ("dhcpv6", "dhcpv6_queue"))


class Sender:
    """
    Something that writes one complete Ethernet frame on a tap.
    """

    def send(self, frame: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class PacketSocketSender(Sender):
    """
    An C{AF_PACKET}/C{SOCK_RAW} socket bound to one interface, protocol 0
    so that it receives nothing; frames are written without blocking (a
    full device queue loses the reply; the client retries, as with any
    lost datagram).
    """

    def __init__(self, ifname: str) -> None:
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 0)
            self._sock.bind((ifname, 0))
        except OSError:
            self._sock.close()
            raise

    def send(self, frame: bytes) -> None:
        self._sock.send(frame, socket.MSG_DONTWAIT)

    def close(self) -> None:
        self._sock.close()


def _ifreq(sock: socket.socket, request: int, name: str) -> bytes:
    return fcntl.ioctl(sock.fileno(), request, struct.pack("16s24x", name.encode()[:15]))


def interfaceLink(name: str) -> Link:
    """
    The MAC and MTU of an interface, by ioctl in this process's network
    namespace (sysfs may show another one).

    @raise OSError: when there is no such interface.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        mac = _ifreq(s, SIOCGIFHWADDR, name)[18:24]
        mtu = struct.unpack_from("i", _ifreq(s, SIOCGIFMTU, name), 16)[0]
    return Link(mac, mtu)


@attrs.define
class Client:
    """
    A binding resolved on this node: where replies go and come from.
    """

    binding: Binding
    link: Link
    sender: Sender


@attrs.frozen
class Platform:
    """
    The operating-system seams of the service (real by default; tests pass
    in-memory ones).
    """

    openQueue: Callable[[int], NFQueueSocket]
    openSender: Callable[[str], Sender] = PacketSocketSender
    indexToName: Callable[[int], str] = socket.if_indextoname
    linkOf: Callable[[str], Link] = interfaceLink
    watchBindings: bool = True


def defaultPlatform(maxLen: int = 4096) -> Platform:
    def openQueue(number: int) -> NFQueueSocket:
        q = NFQueueSocket(number, maxLen=maxLen)
        q.open()
        return q

    return Platform(openQueue=openQueue)


@implementer(IHealthReporter)
class DHCPService(service.Service):
    """
    The C{dhcp} plugin's service.
    """

    healthName = "dhcp"

    def __init__(
        self,
        reactor: Any,
        config: ResponderConfig,
        bindingsDir: Path,
        queues: Mapping[str, int],
        metrics: MetricsRegistry,
        platform: Platform | None = None,
        batch: int = 64,
        rescanPeriod: float = 60.0,
        logPackets: bool = True,
    ) -> None:
        self._reactor = reactor
        self._logPackets = logPackets
        self.config = config
        self.queues = dict(queues)
        self.platform = platform if platform is not None else defaultPlatform()
        self._batch = batch
        self.store = BindingStore(bindingsDir, onChange=self._bindingChanged)
        self._watcher = BindingWatcher(self.store, reactor, rescanPeriod) if self.platform.watchBindings else None
        self._readers: list[NFQueueReader] = []
        self._clients: dict[int, Client | None] = {}
        self._senders: dict[str, Sender] = {}
        self._raLoop: task.LoopingCall | None = None
        self._health = Health(False, "stopped", "not started")
        self._packets = metrics.counter(
            "snf_dhcp_packets_total", "packets read from the NFQUEUEs, by queue and outcome", ("queue", "outcome")
        )
        self._replies = metrics.counter("snf_dhcp_replies_total", "replies sent, by kind", ("kind",))
        self._sendErrors = metrics.counter("snf_dhcp_send_errors_total", "replies that could not be written")
        metrics.gauge("snf_dhcp_bindings", "binding files loaded", collect=lambda: [({}, float(len(self.store)))])
        self._tally: dict[tuple[str, str], int] = {}
        self._replyTally: dict[str, int] = {}
        self._handlers = {kind: self._makeHandler(kind) for kind in self.queues}

    # ------------------------------------------------------------ lifecycle

    def startService(self) -> defer.Deferred[None]:
        super().startService()
        try:
            if self._watcher is not None:
                self._watcher.start()
            else:
                self.store.rescan()
            for kind, number in sorted(self.queues.items(), key=lambda kv: kv[1]):
                q = self.platform.openQueue(number)
                reader = NFQueueReader(q, self._handlers[kind], self._batch, self._flushTally)
                self._readers.append(reader)
                self._reactor.addReader(reader)
                log.info("NFQUEUE {queue} bound for {kind}", queue=number, kind=kind)
        except Exception as e:
            self._health = Health(False, "failed", str(e))
            self._teardown()
            self.running = False
            return defer.fail()
        if self.config.raPeriod > 0 and "rs" in self.queues:
            self._raLoop = task.LoopingCall(self.sendPeriodicRAs)
            self._raLoop.clock = self._reactor
            self._raLoop.start(self.config.raPeriod, now=False)
        self._health = Health(True, "running", f"queues {sorted(self.queues.values())}, {len(self.store)} bindings")
        log.info("dhcp responder running with {count} bindings", count=len(self.store))
        return defer.succeed(None)

    def stopService(self) -> defer.Deferred[None]:
        super().stopService()
        # answer what is already queued, so that no packet is left in the kernel
        for reader in self._readers:
            reader.doRead()
        self._teardown()
        self._health = Health(False, "stopped", "")
        return defer.succeed(None)

    def _teardown(self) -> None:
        if self._raLoop is not None and self._raLoop.running:
            self._raLoop.stop()
        self._raLoop = None
        for reader in self._readers:
            self._reactor.removeReader(reader)
            reader.queue.close()
        self._readers = []
        if self._watcher is not None:
            self._watcher.stop()
        for sender in self._senders.values():
            sender.close()
        self._senders.clear()
        self._clients.clear()

    def health(self) -> Health:
        if self._health.ok:
            return Health(True, "running", f"queues {sorted(self.queues.values())}, {len(self.store)} bindings")
        return self._health

    # ------------------------------------------------------------ clients

    def _bindingChanged(self, tap: str, binding: Binding | None) -> None:
        self._clients.clear()
        sender = self._senders.pop(tap, None)
        if sender is not None:
            sender.close()

    def _resolve(self, ifindex: int) -> Client | None:
        try:
            return self._clients[ifindex]
        except KeyError:
            pass
        client: Client | None = None
        try:
            name = self.platform.indexToName(ifindex)
        except OSError:
            name = None
        binding = self.store.get(name) if name is not None else None
        if binding is not None:
            client = self._client(binding)
        if len(self._clients) > 65536:
            self._clients.clear()
        self._clients[ifindex] = client
        return client

    def _client(self, binding: Binding) -> Client | None:
        try:
            link = self.platform.linkOf(binding.indev)
            sender = self._senders.get(binding.tap)
            if sender is None:
                sender = self._senders[binding.tap] = self.platform.openSender(binding.tap)
        except OSError as e:
            log.warn("binding {tap}: interface unusable ({error}), ignored", tap=binding.tap, error=str(e))
            return None
        return Client(binding, link, sender)

    # ------------------------------------------------------------ packets

    def _count(self, number: str, outcome: str) -> None:
        key = (number, outcome)
        self._tally[key] = self._tally.get(key, 0) + 1

    def _flushTally(self) -> None:
        """
        Move the per-packet tallies into the metrics, once per batch
        (labelled counter updates cost more than the tallies).
        """
        for (number, outcome), n in self._tally.items():
            self._packets.inc(n, queue=number, outcome=outcome)
        self._tally.clear()
        for kind, n in self._replyTally.items():
            self._replies.inc(n, kind=kind)
        self._replyTally.clear()

    def _makeHandler(self, kind: str) -> Callable[[QueuedPacket], int]:
        answer = responder.HANDLERS[kind]
        config = self.config
        number = str(self.queues[kind])
        count = self._count
        clients = self._clients

        def handle(packet: QueuedPacket) -> int:
            client = clients.get(packet.physindev or packet.indev)
            if client is None:
                client = self._resolve(packet.physindev or packet.indev)
            if client is None:
                count(number, "no-binding")
                return NF_ACCEPT
            result = answer(config, client.binding, client.link, packet)
            self._deliver(kind, number, client, result)
            return result.verdict

        return handle

    def _deliver(self, kind: str, number: str, client: Client, result: Answer) -> None:
        if result.frame is None:
            if result.verdict == NF_ACCEPT:
                self._count(number, "passed")
                if self._logPackets:
                    log.debug(
                        "{tap}: {kind} packet passed: {reason}", tap=client.binding.tap, kind=kind, reason=result.reason
                    )
            else:
                self._count(number, result.kind)
                log.info("{tap}: {event}", tap=client.binding.tap, event=result.detail)
            return
        self._count(number, "answered")
        try:
            client.sender.send(result.frame)
        except OSError as e:
            self._sendFailed(client, result.kind, e)
            return
        self._replyTally[result.kind] = self._replyTally.get(result.kind, 0) + 1
        if self._logPackets:
            log.info("{tap}: {detail} -> {reply}", tap=client.binding.tap, detail=result.detail, reply=result.kind)

    def _sendFailed(self, client: Client, kind: str, error: OSError) -> None:
        """
        Count and log a reply that could not be written, and forget the
        tap's socket and lookups: if the tap was recreated under the same
        name, the next packet opens a socket on the new one.
        """
        self._sendErrors.inc()
        log.warn("{tap}: sending {reply} failed: {error}", tap=client.binding.tap, reply=kind, error=str(error))
        sender = self._senders.pop(client.binding.tap, None)
        if sender is not None:
            sender.close()
        self._clients.clear()

    def sendPeriodicRAs(self) -> None:
        """
        Send an unsolicited RA to every binding with an IPv6 subnet.
        """
        for binding in self.store:
            if binding.subnet6 is None:
                continue
            client = self._client(binding)
            if client is None:
                continue
            frame = responder.periodicRA(self.config, binding, client.link)
            if frame is None:
                continue
            try:
                client.sender.send(frame)
            except OSError as e:
                self._sendFailed(client, "RA-periodic", e)
                continue
            self._replies.inc(kind="RA-periodic")


def queuesFromSettings(settings: Mapping[str, Any]) -> dict[str, int]:
    """
    The queues to bind: kind to number; a negative number disables one.
    """
    return {kind: settings[key] for kind, key in QUEUE_SETTINGS if settings[key] >= 0}


def makeDHCPService(
    reactor: Any, settings: Mapping[str, Any], metrics: MetricsRegistry, platform: Platform | None = None
) -> DHCPService:
    """
    Build the service from a C{[dhcp]} section.
    """
    return DHCPService(
        reactor,
        ResponderConfig.fromSettings(settings),
        Path(settings["bindings_dir"]),
        queuesFromSettings(settings),
        metrics,
        platform if platform is not None else defaultPlatform(settings["queue_maxlen"]),
        batch=settings["batch"],
        rescanPeriod=float(settings["rescan_period"]),
        logPackets=settings["log_packets"],
    )
