"""
Tests for L{dhcp.packet}: checksums, MAC helpers, IPv4/UDP and IPv6 framing.
"""

from __future__ import annotations

import ipaddress
import struct

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from dhcp import packet


def naiveChecksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


class ChecksumTests(SynchronousTestCase):
    @given(st.binary(max_size=2000))
    def test_matchesRFC1071(self, data: bytes) -> None:
        """
        The modulo-based checksum equals the word-by-word RFC 1071 sum with
        end-around carry, for any data (odd lengths and all-zero included).
        """
        self.assertEqual(packet.checksum(data), naiveChecksum(data))

    def test_knownVector(self) -> None:
        """
        The IPv4 header example from RFC 1071's usual illustration checks
        out: a header with its checksum in place sums to zero.
        """
        header = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
        csum = packet.checksum(header)
        self.assertEqual(csum, 0xB861)
        self.assertEqual(packet.checksum(header[:10] + struct.pack("!H", csum) + header[12:]), 0)


class MacTests(SynchronousTestCase):
    def test_roundTrip(self) -> None:
        """
        A MAC in text form converts to six bytes and back (lowercase).
        """
        mac = packet.macFromText("02:00:0A:00:01:FF")
        self.assertEqual(mac, b"\x02\x00\x0a\x00\x01\xff")
        self.assertEqual(packet.macToText(mac), "02:00:0a:00:01:ff")

    def test_malformed(self) -> None:
        """
        Anything but six hex octets is refused with ValueError.
        """
        for bad in ("", "02:00:00:00:01", "02:00:00:00:01:01:01", "zz:00:00:00:01:01", "0200:00:00:01:01:01"):
            self.assertRaises(ValueError, packet.macFromText, bad)

    def test_eui64(self) -> None:
        """
        The SLAAC address and link-local of a MAC follow RFC 4291 (U/L bit
        flipped, ff:fe inserted).
        """
        mac = packet.macFromText("02:00:00:00:01:01")
        self.assertEqual(
            packet.slaacAddress(mac, ipaddress.IPv6Network("2001:db8:1::/64")),
            ipaddress.IPv6Address("2001:db8:1::ff:fe00:101"),
        )
        self.assertEqual(ipaddress.IPv6Address(packet.linkLocal(mac)), ipaddress.IPv6Address("fe80::ff:fe00:101"))
        self.assertEqual(packet.multicastMac(bytes.fromhex("ff020000000000000000000000000001")), b"\x33\x33\0\0\0\x01")


class UDPv4Tests(SynchronousTestCase):
    def test_roundTrip(self) -> None:
        """
        A built frame parses back to the same addresses, ports and payload,
        and both its IPv4 header and UDP checksums verify.
        """
        src, dst = bytes([192, 0, 2, 1]), bytes([192, 0, 2, 10])
        frame = packet.buildUDPv4Frame(b"\x02" * 6, b"\x04" * 6, src, dst, 67, 68, b"hello")
        self.assertEqual(frame[:6], b"\x04" * 6)
        self.assertEqual(frame[6:12], b"\x02" * 6)
        ip = frame[14:]
        self.assertEqual(packet.checksum(ip[:20]), 0)
        pseudo = src + dst + struct.pack("!BBH", 0, 17, len(ip) - 20)
        self.assertEqual(packet.checksum(pseudo + ip[20:]), 0)
        self.assertEqual(packet.parseUDPv4(ip), packet.UDPv4(src, dst, 67, 68, b"hello"))

    @given(st.binary(max_size=60), st.binary(max_size=400))
    def test_fromParts(self, head: bytes, tail: bytes) -> None:
        """
        Building from a head and a tail whose checksum contribution was
        computed separately gives exactly the frame built in one go.
        """
        head = head[: len(head) - len(head) % 2]
        tailSum = packet.partialSum(tail + b"\0" * (len(tail) % 2))
        args = (b"\x02" * 6, b"\x04" * 6, bytes([192, 0, 2, 1]), bytes([192, 0, 2, 10]), 67, 68)
        self.assertEqual(
            packet.buildUDPv4FrameFromParts(*args, head, tail, tailSum), packet.buildUDPv4Frame(*args, head + tail)
        )

    @given(st.binary(min_size=22, max_size=22), st.binary(max_size=400), st.booleans())
    def test_template(self, head: bytes, tail: bytes, broadcast: bool) -> None:
        """
        A template's frame for any head is exactly the frame built in one
        go; an odd head length is refused.
        """
        head = head * 2
        dst = b"\xff" * 4 if broadcast else bytes([192, 0, 2, 10])
        template = packet.UDPv4Template(bytes([192, 0, 2, 1]), dst, 67, 68, len(head), tail)
        self.assertEqual(
            template.frame(b"\x02" * 6, b"\x04" * 6, head),
            packet.buildUDPv4Frame(b"\x02" * 6, b"\x04" * 6, bytes([192, 0, 2, 1]), dst, 67, 68, head + tail),
        )
        self.assertRaises(ValueError, packet.UDPv4Template, dst, dst, 67, 68, 43, tail)

    def test_rejects(self) -> None:
        """
        TCP, fragments, truncated and inconsistent packets are not parsed.
        """
        ip = packet.buildUDPv4Frame(b"\x02" * 6, b"\x04" * 6, b"\0" * 4, b"\xff" * 4, 68, 67, b"x" * 10)[14:]
        tcp = ip[:9] + b"\x06" + ip[10:]
        fragment = ip[:6] + b"\x20\x00" + ip[8:]
        offset = ip[:6] + b"\x00\x10" + ip[8:]
        for bad in (b"", ip[:27], tcp, fragment, offset, b"\x60" + ip[1:], ip[:2] + b"\x00\x10" + ip[4:]):
            self.assertIsNone(packet.parseUDPv4(bad))

    @given(st.binary(max_size=600))
    def test_garbage(self, data: bytes) -> None:
        """
        Random bytes never make the parsers raise.
        """
        packet.parseUDPv4(data)
        packet.parseIPv6(data)
        packet.parseUDP(data)


class IPv6Tests(SynchronousTestCase):
    def test_roundTrip(self) -> None:
        """
        An ICMPv6 frame parses back and its checksum verifies.
        """
        src = packet.linkLocal(b"\x02" * 6)
        dst = bytes.fromhex("ff020000000000000000000000000001")
        frame = packet.buildIPv6Frame(b"\x02" * 6, b"\x33\x33\0\0\0\x01", src, dst, 58, b"\x86\x00\0\0" + b"x" * 12)
        parsed = packet.parseIPv6(frame[14:])
        assert parsed is not None
        self.assertEqual((parsed.src, parsed.dst, parsed.nextHeader, parsed.hopLimit), (src, dst, 58, 255))
        self.assertTrue(packet.upperChecksumOK(parsed))
        self.assertEqual(struct.unpack("!H", frame[12:14])[0], packet.ETH_P_IPV6)

    def test_udpChecksumNeverZero(self) -> None:
        """
        A UDP/IPv6 checksum that computes to zero is sent as 0xffff (zero
        means "no checksum", which IPv6 forbids).
        """
        for n in range(300):
            frame = packet.buildIPv6Frame(
                b"\x02" * 6, b"\x04" * 6, b"\0" * 16, b"\0" * 16, 17, packet.buildUDP(n, 547, b"")
            )
            self.assertNotEqual(frame[14 + 40 + 6 : 14 + 40 + 8], b"\0\0")
