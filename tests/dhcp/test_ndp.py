"""
Tests for L{dhcp.ndp}: router and neighbour discovery messages.
"""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from dhcp import ndp
from dhcp.packet import PROTO_ICMPV6, buildIPv6Frame, linkLocal, parseIPv6

MAC = bytes.fromhex("020000000101")
SRC = linkLocal(MAC)
TARGET = bytes.fromhex("20010db8000100000000000000000001")


def ip6(body: bytes, src: bytes = SRC, hop: int = 255):
    packet = parseIPv6(buildIPv6Frame(MAC, b"\x33" * 6, src, ndp.ALL_NODES, PROTO_ICMPV6, body, hop)[14:])
    assert packet is not None
    return packet


class SolicitationTests(SynchronousTestCase):
    def test_routerSolicitation(self) -> None:
        """
        A router solicitation with a source link-layer option parses to its
        source address and MAC.
        """
        rs = ndp.parseRouterSolicitation(ip6(ndp.buildRouterSolicitation(MAC)))
        self.assertEqual(rs, ndp.RouterSolicitation(SRC, MAC))

    def test_neighborSolicitation(self) -> None:
        """
        A neighbour solicitation parses to source, target and MAC.
        """
        ns = ndp.parseNeighborSolicitation(ip6(ndp.buildNeighborSolicitation(TARGET, MAC)))
        assert ns is not None
        self.assertEqual((ns.src, ns.target, ns.sourceLinkAddress), (SRC, TARGET, MAC))

    def test_invalid(self) -> None:
        """
        RFC 4861 validity checks: hop limit other than 255, bad checksum,
        zero-length option, wrong type, a link-layer option with the
        unspecified source, and a multicast target are all refused.
        """
        self.assertIsNone(ndp.parseRouterSolicitation(ip6(ndp.buildRouterSolicitation(MAC), hop=64)))
        good = ip6(ndp.buildRouterSolicitation(MAC))
        corrupted = parseIPv6(
            buildIPv6Frame(MAC, b"\x33" * 6, SRC, ndp.ALL_NODES, PROTO_ICMPV6, ndp.buildRouterSolicitation(MAC))[14:53]
            + b"\x00"
            + buildIPv6Frame(MAC, b"\x33" * 6, SRC, ndp.ALL_NODES, PROTO_ICMPV6, ndp.buildRouterSolicitation(MAC))[54:]
        )
        assert corrupted is not None
        self.assertIsNotNone(ndp.parseRouterSolicitation(good))
        self.assertIsNone(ndp.parseRouterSolicitation(corrupted))
        self.assertIsNone(
            ndp.parseRouterSolicitation(ip6(struct.pack("!BBHI", 133, 0, 0, 0) + b"\x01\x00" + b"\0" * 6))
        )
        self.assertIsNone(ndp.parseNeighborSolicitation(ip6(ndp.buildRouterSolicitation(MAC))))
        self.assertIsNone(ndp.parseRouterSolicitation(ip6(ndp.buildRouterSolicitation(MAC), src=ndp.UNSPECIFIED)))
        self.assertIsNone(ndp.parseNeighborSolicitation(ip6(ndp.buildNeighborSolicitation(ndp.ALL_NODES, MAC))))

    def test_dadHasNoLinkLayerOption(self) -> None:
        """
        A duplicate-address check (unspecified source, no option) parses.
        """
        ns = ndp.parseNeighborSolicitation(ip6(ndp.buildNeighborSolicitation(TARGET, None), src=ndp.UNSPECIFIED))
        self.assertEqual(ns, ndp.NeighborSolicitation(ndp.UNSPECIFIED, ndp.ALL_NODES, TARGET, None))

    @given(st.binary(max_size=200), st.integers(0, 255))
    def test_garbage(self, body: bytes, hop: int) -> None:
        """
        Random ICMPv6 bodies (with a correct checksum) never make the
        parsers raise.
        """
        packet = ip6(body, hop=hop)
        ndp.parseRouterSolicitation(packet)
        ndp.parseNeighborSolicitation(packet)
        ndp.parseRouterAdvertisement(packet)


class AdvertisementTests(SynchronousTestCase):
    def test_routerAdvertisement(self) -> None:
        """
        An RA carries its flags, lifetime, source link-layer address, MTU,
        prefix (with the R flag when it holds the router's address), RDNSS
        and DNSSL, each option a multiple of 8 bytes.
        """
        body = ndp.buildRouterAdvertisement(
            MAC,
            [ndp.Prefix(TARGET, 64, routerAddress=True)],
            routerLifetime=14400,
            mtu=1400,
            dnsServers=[TARGET],
            dnsLifetime=900,
            searchDomains=["test.example"],
            other=True,
        )
        ra = ndp.parseRouterAdvertisement(ip6(body))
        assert ra is not None
        self.assertEqual((ra.curHopLimit, ra.flags, ra.routerLifetime), (64, 0x40, 14400))
        options = dict(ra.options)
        self.assertEqual(options[ndp.OPT_SOURCE_LLADDR], MAC)
        self.assertEqual(struct.unpack("!HI", options[ndp.OPT_MTU]), (0, 1400))
        prefix = options[ndp.OPT_PREFIX_INFO]
        self.assertEqual(prefix[0], 64)
        self.assertEqual(prefix[1], 0x80 | 0x40 | 0x20)
        self.assertEqual(prefix[14:30], TARGET)
        self.assertEqual(options[ndp.OPT_RDNSS], struct.pack("!HI", 0, 900) + TARGET)
        self.assertEqual(options[ndp.OPT_DNSSL][6:20], b"\x04test\x07example\x00")
        self.assertEqual(len(body[16:]) % 8, 0)

    def test_neighborAdvertisement(self) -> None:
        """
        An NA carries R and S (not O), the target and the target link-layer
        address option.
        """
        body = ndp.buildNeighborAdvertisement(TARGET, MAC)
        self.assertEqual(body[0], 136)
        self.assertEqual(body[4], 0xC0)
        self.assertEqual(body[8:24], TARGET)
        self.assertEqual(body[24:32], b"\x02\x01" + MAC)

    def test_badDomain(self) -> None:
        """
        An empty label or one over 63 bytes cannot be encoded.
        """
        self.assertRaises(ValueError, ndp.encodeDomains, ["a..b"])
        self.assertRaises(ValueError, ndp.encodeDomains, ["x" * 64 + ".example"])
