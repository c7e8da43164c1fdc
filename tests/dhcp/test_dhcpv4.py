"""
Tests for L{dhcp.dhcpv4}: the BOOTP/DHCP codec.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from dhcp import dhcpv4

MAC = bytes.fromhex("020000000101")


class RequestTests(SynchronousTestCase):
    def test_roundTrip(self) -> None:
        """
        A client request built with options parses back to its type, xid,
        flags, MAC and options.
        """
        data = dhcpv4.buildRequest(
            dhcpv4.REQUEST, MAC, 0xDEADBEEF, [(dhcpv4.OPT_REQUESTED_IP, bytes([192, 0, 2, 10]))], flags=0x8000
        )
        request = dhcpv4.parseRequest(data)
        assert request is not None
        self.assertEqual(request.messageType, dhcpv4.REQUEST)
        self.assertEqual(request.xid, 0xDEADBEEF)
        self.assertEqual(request.flags, 0x8000)
        self.assertEqual(request.mac, MAC)
        self.assertEqual(request.chaddr, MAC + b"\0" * 10)
        self.assertEqual(request.requestedIP, bytes([192, 0, 2, 10]))

    def test_padAndRepeatedOptions(self) -> None:
        """
        PAD bytes are skipped, the first of repeated options wins and
        anything after END is ignored.
        """
        self.assertEqual(dhcpv4.parseOptions(b"\0\0\x35\x01\x01\x35\x01\x03\xff\x99\x99"), {53: b"\x01"})

    def test_rejects(self) -> None:
        """
        Replies, wrong hardware types, missing magic, a missing or
        malformed message type and overrunning options are refused.
        """
        good = dhcpv4.buildRequest(dhcpv4.DISCOVER, MAC, 1)
        self.assertIsNotNone(dhcpv4.parseRequest(good))
        bad = [
            b"",
            good[:239],
            b"\x02" + good[1:],
            good[:1] + b"\x06" + good[2:],
            good[:2] + b"\x10" + good[3:],
            good[:236] + b"\0\0\0\0" + good[240:],
            good[:240] + b"\x35\x02\x01\x01\xff",
            good[:240] + b"\x0c\x05ab",
            good[:240] + b"\x0c",
            good[:240] + b"\xff",
        ]
        for data in bad:
            self.assertIsNone(dhcpv4.parseRequest(data), data[236:])

    def test_requestedIPWrongLength(self) -> None:
        """
        A requested-address option that is not four bytes is treated as
        absent.
        """
        request = dhcpv4.parseRequest(dhcpv4.buildRequest(dhcpv4.REQUEST, MAC, 1, [(50, b"\x01\x02")]))
        assert request is not None
        self.assertIsNone(request.requestedIP)

    @given(st.binary(max_size=700))
    def test_garbage(self, data: bytes) -> None:
        """
        Random bytes never make the parser raise.
        """
        dhcpv4.parseRequest(data)
        dhcpv4.parseReply(data)

    @given(st.binary(max_size=300))
    def test_garbageAfterHeader(self, tail: bytes) -> None:
        """
        A valid header followed by random option bytes never raises, and
        whatever parses has a one-byte message type.
        """
        head = dhcpv4.buildRequest(dhcpv4.DISCOVER, MAC, 1)[:240]
        request = dhcpv4.parseRequest(head + tail)
        if request is not None:
            self.assertIn(dhcpv4.OPT_MESSAGE_TYPE, request.options)


class ReplyTests(SynchronousTestCase):
    def test_echoes(self) -> None:
        """
        A reply echoes xid, flags, ciaddr and chaddr, sets yiaddr and siaddr,
        is padded to the BOOTP minimum of 300 bytes, and parses back.
        """
        request = dhcpv4.parseRequest(dhcpv4.buildRequest(dhcpv4.DISCOVER, MAC, 77, flags=0x8000))
        assert request is not None
        options = dhcpv4.encodeOptions([(53, b"\x02"), (54, bytes([192, 0, 2, 1]))])
        data = dhcpv4.buildReply(request, dhcpv4.OFFER, bytes([192, 0, 2, 10]), bytes([192, 0, 2, 1]), options)
        self.assertEqual(len(data), 300)
        reply = dhcpv4.parseReply(data)
        assert reply is not None
        self.assertEqual(reply.messageType, dhcpv4.OFFER)
        self.assertEqual(reply.xid, 77)
        self.assertEqual(reply.flags, 0x8000)
        self.assertEqual(reply.yiaddr, bytes([192, 0, 2, 10]))
        self.assertEqual(reply.chaddr[:6], MAC)
        self.assertEqual(reply.options[54], bytes([192, 0, 2, 1]))

    def test_longOption(self) -> None:
        """
        An option value over 255 bytes cannot be encoded.
        """
        self.assertRaises(ValueError, dhcpv4.encodeOptions, [(12, b"x" * 256)])
