"""
Tests for L{dhcp.dhcpv6}: Information-Request and Reply.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from dhcp import dhcpv6

CLIENT = b"\x00\x03\x00\x01\x02\x00\x00\x00\x01\x01"
DNS = bytes.fromhex("20010db8000000000000000000000053")


class DHCPv6Tests(SynchronousTestCase):
    def test_roundTrip(self) -> None:
        """
        A Reply echoes the transaction id and client id, and carries our
        server id (DUID-LLT, fixed time), DNS servers and search list.
        """
        request = dhcpv6.parseMessage(
            dhcpv6.buildMessage(dhcpv6.INFORMATION_REQUEST, 0x123456, [(dhcpv6.OPT_CLIENTID, CLIENT)])
        )
        assert request is not None
        self.assertEqual((request.messageType, request.transactionId), (dhcpv6.INFORMATION_REQUEST, 0x123456))
        server = dhcpv6.duidLLT(bytes.fromhex("02fe00000101"))
        self.assertEqual(server, bytes.fromhex("0001000100000000") + bytes.fromhex("02fe00000101"))
        reply = dhcpv6.parseMessage(dhcpv6.buildReply(request, server, [DNS], ["test.example"]))
        assert reply is not None
        self.assertEqual((reply.messageType, reply.transactionId), (dhcpv6.REPLY, 0x123456))
        self.assertEqual(reply.options[dhcpv6.OPT_CLIENTID], CLIENT)
        self.assertEqual(reply.options[dhcpv6.OPT_SERVERID], server)
        self.assertEqual(reply.options[dhcpv6.OPT_DNS_SERVERS], DNS)
        self.assertEqual(reply.options[dhcpv6.OPT_DOMAIN_LIST], b"\x04test\x07example\x00")

    def test_rejects(self) -> None:
        """
        Short messages, relay messages and overrunning options are refused.
        """
        for data in (b"", b"\x0b\0\0", b"\x0c\0\0\0", b"\x0b\0\0\0\x00\x01\x00\x05ab", b"\x0b\0\0\0\x00"):
            self.assertIsNone(dhcpv6.parseMessage(data))

    @given(st.binary(max_size=400))
    def test_garbage(self, data: bytes) -> None:
        """
        Random bytes never make the parser raise.
        """
        dhcpv6.parseMessage(data)
