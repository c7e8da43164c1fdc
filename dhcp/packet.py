# -*- test-case-name: tests.dhcp.test_packet -*-
"""
Ethernet, IPv4, IPv6 and UDP framing with plain C{struct}.

Parsers take C{bytes} and return a value or C{None} for anything that is
not a well-formed packet of the expected kind; they never raise. Builders
compute every checksum, so the frames they return can be written as they
are on an C{AF_PACKET} socket.
"""

from __future__ import annotations

import ipaddress
import struct

import attrs

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
PROTO_UDP = 17
PROTO_ICMPV6 = 58

_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_UDP = struct.Struct("!HHHH")

BROADCAST_MAC = b"\xff" * 6


def checksum(data: bytes) -> int:
    """
    The Internet checksum (RFC 1071) of C{data}.

    The ones'-complement sum of 16-bit words equals the big-endian integer
    value of the data modulo 0xFFFF (because 2**16 is 1 modulo 0xFFFF),
    which C computes much faster than a Python loop over the words.
    """
    if len(data) % 2:
        data += b"\0"
    n = int.from_bytes(data, "big")
    s = n % 0xFFFF
    if s == 0 and n:
        s = 0xFFFF
    return ~s & 0xFFFF


def macToText(mac: bytes) -> str:
    """
    C{b"\\x02\\x00..."} to C{"02:00:..."}.
    """
    return mac.hex(":")


def macFromText(text: str) -> bytes:
    """
    C{"02:00:00:00:01:01"} (or with dashes) to six bytes.

    @raise ValueError: when it is not a MAC address.
    """
    parts = text.strip().replace("-", ":").split(":")
    if len(parts) != 6 or not all(1 <= len(p) <= 2 for p in parts):
        raise ValueError(f"not a MAC address: {text!r}")
    return bytes(int(p, 16) for p in parts)


def eui64(mac: bytes) -> bytes:
    """
    The modified EUI-64 interface identifier (RFC 4291 appendix A) of a MAC.
    """
    return bytes([mac[0] ^ 0x02]) + mac[1:3] + b"\xff\xfe" + mac[3:6]


def linkLocal(mac: bytes) -> bytes:
    """
    The fe80::/64 address derived from a MAC, as 16 bytes.
    """
    return b"\xfe\x80" + b"\0" * 6 + eui64(mac)


def slaacAddress(mac: bytes, prefix: ipaddress.IPv6Network) -> ipaddress.IPv6Address:
    """
    The SLAAC address a host with C{mac} takes in the /64 C{prefix}.
    """
    return ipaddress.IPv6Address(prefix.network_address.packed[:8] + eui64(mac))


def multicastMac(address: bytes) -> bytes:
    """
    The Ethernet multicast MAC of an IPv6 multicast address (RFC 2464).
    """
    return b"\x33\x33" + address[12:16]


# ---------------------------------------------------------------- IPv4/UDP


@attrs.define(slots=True)  # not frozen: one per packet, and frozen init costs 3x
class UDPv4:
    """
    A UDP datagram in an IPv4 packet (what NFQUEUE hands us: no Ethernet).
    """

    src: bytes
    dst: bytes
    sport: int
    dport: int
    payload: bytes


def udp4Bounds(data: bytes) -> tuple[int, int, int] | None:
    """
    Where the UDP payload of an IPv4 packet lies: (start, end, destination
    port), without copying; C{None} for anything else (other protocols,
    fragments, truncation, inconsistent lengths).
    """
    if len(data) < 28 or data[0] >> 4 != 4:
        return None
    ihl = (data[0] & 0x0F) * 4
    if ihl < 20 or len(data) < ihl + 8:
        return None
    total = (data[2] << 8) | data[3]
    if total < ihl + 8 or total > len(data):
        return None
    if data[9] != PROTO_UDP:
        return None
    if ((data[6] & 0x1F) << 8) | data[7] or data[6] & 0x20:  # offset or MF: a fragment
        return None
    ulen = (data[ihl + 4] << 8) | data[ihl + 5]
    if ulen < 8 or ihl + ulen > total:
        return None
    return ihl + 8, ihl + ulen, (data[ihl + 2] << 8) | data[ihl + 3]


def parseUDPv4(data: bytes) -> UDPv4 | None:
    """
    Parse an IPv4 packet carrying UDP; C{None} for anything else.
    """
    bounds = udp4Bounds(data)
    if bounds is None:
        return None
    start, end, dport = bounds
    return UDPv4(data[12:16], data[16:20], (data[start - 8] << 8) | data[start - 7], dport, data[start:end])


def partialSum(data: bytes) -> int:
    """
    The ones'-complement sum of C{data} (even length) modulo 0xFFFF, to be
    added to the sum of the data before it (see L{buildUDPv4FrameFromParts}).
    """
    return int.from_bytes(data, "big") % 0xFFFF


class UDPv4Template:
    """
    Frames of IPv4/UDP datagrams whose payload is a variable C{head} of a
    fixed, even length followed by a constant C{tail}: the IPv4 header, the
    UDP header and the checksum contribution of everything constant are
    computed once, so a frame costs one sum over the head and a few
    concatenations.
    """

    __slots__ = ("_prefix", "_sum", "_tail", "headLength")

    def __init__(self, src: bytes, dst: bytes, sport: int, dport: int, headLength: int, tail: bytes) -> None:
        if headLength % 2:
            raise ValueError("the head must have an even length")
        self.headLength = headLength
        ulen = 8 + headLength + len(tail)
        header = _IPV4.pack(0x45, 0, 20 + ulen, 0, 0x4000, 64, PROTO_UDP, 0, src, dst)
        header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
        udp = _UDP.pack(sport, dport, ulen, 0)
        self._prefix = b"\x08\x00" + header + udp[:6]
        constant = src + dst + struct.pack("!HH", PROTO_UDP, ulen) + udp
        # the head sits between the constant prefix (even length) and the tail: word-aligned on both sides
        self._sum = (partialSum(constant) + partialSum(tail + b"\0" * (len(tail) % 2))) % 0xFFFF
        self._tail = tail

    def frame(self, srcMac: bytes, dstMac: bytes, head: bytes) -> bytes:
        s = (int.from_bytes(head, "big") + self._sum) % 0xFFFF
        ucsum = (~s & 0xFFFF) or 0xFFFF
        return dstMac + srcMac + self._prefix + ucsum.to_bytes(2, "big") + head + self._tail


def buildUDPv4FrameFromParts(
    srcMac: bytes, dstMac: bytes, src: bytes, dst: bytes, sport: int, dport: int, head: bytes, tail: bytes, tailSum: int
) -> bytes:
    """
    Like L{buildUDPv4Frame} for the payload C{head + tail}, where C{tail}'s
    checksum contribution C{tailSum} (L{partialSum}) was computed once:
    C{head} must have an even length so that C{tail} starts on a 16-bit
    word.
    """
    ulen = 8 + len(head) + len(tail)
    udp = _UDP.pack(sport, dport, ulen, 0)
    s = (int.from_bytes(src + dst + struct.pack("!HH", PROTO_UDP, ulen) + udp + head, "big") + tailSum) % 0xFFFF
    ucsum = (~s & 0xFFFF) or 0xFFFF  # s == 0 only for all-zero data, impossible here (ports, length)
    header = _IPV4.pack(0x45, 0, 20 + ulen, 0, 0x4000, 64, PROTO_UDP, 0, src, dst)
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return dstMac + srcMac + b"\x08\x00" + header + _UDP.pack(sport, dport, ulen, ucsum) + head + tail


def buildUDPv4Frame(
    srcMac: bytes, dstMac: bytes, src: bytes, dst: bytes, sport: int, dport: int, payload: bytes, ttl: int = 64
) -> bytes:
    """
    An Ethernet frame holding an IPv4/UDP datagram, checksums filled in.
    """
    ulen = 8 + len(payload)
    pseudo = src + dst + struct.pack("!BBH", 0, PROTO_UDP, ulen)
    ucsum = checksum(pseudo + _UDP.pack(sport, dport, ulen, 0) + payload) or 0xFFFF
    header = _IPV4.pack(0x45, 0, 20 + ulen, 0, 0x4000, ttl, PROTO_UDP, 0, src, dst)
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return dstMac + srcMac + b"\x08\x00" + header + _UDP.pack(sport, dport, ulen, ucsum) + payload


# ---------------------------------------------------------------- IPv6


@attrs.frozen
class IPv6Packet:
    """
    An IPv6 packet without extension headers (NDP and DHCPv6 never carry
    any that we must walk: a packet with one is not ours to answer).
    """

    src: bytes
    dst: bytes
    nextHeader: int
    hopLimit: int
    payload: bytes


def parseIPv6(data: bytes) -> IPv6Packet | None:
    """
    Parse an IPv6 packet; C{None} when malformed or truncated.
    """
    if len(data) < 40 or data[0] >> 4 != 6:
        return None
    _, plen, nh, hlim, src, dst = _IPV6.unpack_from(data)
    if 40 + plen > len(data):
        return None
    return IPv6Packet(src, dst, nh, hlim, data[40 : 40 + plen])


def _pseudo6(src: bytes, dst: bytes, length: int, nh: int) -> bytes:
    return src + dst + struct.pack("!I3xB", length, nh)


def upperChecksumOK(packet: IPv6Packet) -> bool:
    """
    Whether the ICMPv6/UDP checksum of an IPv6 packet's payload verifies.
    """
    return checksum(_pseudo6(packet.src, packet.dst, len(packet.payload), packet.nextHeader) + packet.payload) == 0


def buildIPv6Frame(
    srcMac: bytes, dstMac: bytes, src: bytes, dst: bytes, nextHeader: int, payload: bytes, hopLimit: int = 255
) -> bytes:
    """
    An Ethernet frame holding an IPv6 packet whose payload is ICMPv6 or UDP
    with its checksum field zeroed; the checksum is computed here.
    """
    offset = 2 if nextHeader == PROTO_ICMPV6 else 6
    csum = checksum(_pseudo6(src, dst, len(payload), nextHeader) + payload)
    if nextHeader == PROTO_UDP and csum == 0:
        csum = 0xFFFF
    payload = payload[:offset] + struct.pack("!H", csum) + payload[offset + 2 :]
    header = _IPV6.pack(0x60000000, len(payload), nextHeader, hopLimit, src, dst)
    return dstMac + srcMac + b"\x86\xdd" + header + payload


def parseUDP(payload: bytes) -> tuple[int, int, bytes] | None:
    """
    (sport, dport, data) of a UDP header + data; C{None} when malformed.
    """
    if len(payload) < 8:
        return None
    sport, dport, ulen, _ = _UDP.unpack_from(payload)
    if ulen < 8 or ulen > len(payload):
        return None
    return sport, dport, payload[8:ulen]


def buildUDP(sport: int, dport: int, data: bytes) -> bytes:
    """
    A UDP header (checksum zero, to be filled by L{buildIPv6Frame}) + data.
    """
    return _UDP.pack(sport, dport, 8 + len(data), 0) + data
