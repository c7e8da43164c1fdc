"""
Builders shared by the dhcp tests: bindings, client packets as NFQUEUE
hands them over (network layer, no Ethernet), and frame parsing.
"""

from __future__ import annotations

import ipaddress
import struct

from dhcp import dhcpv4, dhcpv6, ndp
from dhcp.binding import Binding, parseBinding
from dhcp.nfqueue import QueuedPacket
from dhcp.packet import PROTO_ICMPV6, PROTO_UDP, buildIPv6Frame, buildUDP, buildUDPv4Frame, linkLocal
from dhcp.responder import Link, ResponderConfig

VM_MAC = bytes.fromhex("020000000101")
HOST_MAC = bytes.fromhex("02fe00000101")
OTHER_MAC = bytes.fromhex("02000000ffff")

ROUTED = """INDEV=tap1
IP=192.0.2.10
MAC=02:00:00:00:01:01
HOSTNAME=vm1.test.example
TAGS="a b"
GATEWAY=192.0.2.1
SUBNET=192.0.2.0/24
GATEWAY6=2001:db8:1::1
SUBNET6=2001:db8:1::/64
EUI64=2001:db8:1::ff:fe00:101
"""

CONFIG = ResponderConfig(
    nameservers=(ipaddress.IPv4Address("192.0.2.53"),),
    nameservers6=(ipaddress.IPv6Address("2001:db8::53"),),
    leaseLifetime=3600,
    leaseRenewal=600,
    raPeriod=300,
    ipv6Mode="slaac+dhcpv6",
)
LINK = Link(HOST_MAC, 1500)


def binding(text: str = ROUTED, tap: str = "tap1", **replace: str) -> Binding:
    lines = [line for line in text.splitlines() if line.split("=", 1)[0] not in replace]
    lines += [f"{k}={v}" for k, v in replace.items()]
    return parseBinding(tap, "\n".join(lines) + "\n")


def ipv4Payload(frame: bytes) -> bytes:
    """
    The network layer of an Ethernet frame (what NFQUEUE hands over).
    """
    return frame[14:]


def dhcpPacket(messageType: int, mac: bytes = VM_MAC, options=(), ciaddr=b"\0\0\0\0", flags=0, hwaddr=None, xid=0x1234):
    payload = dhcpv4.buildRequest(messageType, mac, xid, options, ciaddr=ciaddr, flags=flags)
    frame = buildUDPv4Frame(mac, b"\xff" * 6, ciaddr, b"\xff\xff\xff\xff", 68, 67, payload)
    return QueuedPacket(7, 0x0800, 3, 0, hwaddr if hwaddr is not None else mac, ipv4Payload(frame))


def icmp6Packet(body: bytes, src: bytes, dst: bytes, mac: bytes = VM_MAC, hopLimit: int = 255, hwaddr=None):
    frame = buildIPv6Frame(mac, b"\x33\x33\0\0\0\x02", src, dst, PROTO_ICMPV6, body, hopLimit)
    return QueuedPacket(8, 0x86DD, 3, 0, hwaddr if hwaddr is not None else mac, frame[14:])


def dhcpv6Packet(messageType: int, options, src: bytes | None = None, mac: bytes = VM_MAC):
    data = dhcpv6.buildMessage(messageType, 0xABCDEF, options)
    dst = bytes.fromhex("ff020000000000000000000000010002")
    frame = buildIPv6Frame(
        mac, b"\x33\x33\0\x01\0\x02", src or linkLocal(mac), dst, PROTO_UDP, buildUDP(546, 547, data), 1
    )
    return QueuedPacket(9, 0x86DD, 3, 0, mac, frame[14:])


RS_ALL_ROUTERS = bytes.fromhex("ff020000000000000000000000000002")


def solicitedNode(target: bytes) -> bytes:
    return bytes.fromhex("ff0200000000000000000001ff") + target[13:]


def ethernet(frame: bytes) -> tuple[bytes, bytes, int]:
    return frame[0:6], frame[6:12], struct.unpack("!H", frame[12:14])[0]


__all__ = ["ndp"]
