"""
Tests for L{dhcp.responder}: what is answered, with what, and what passes.
"""

from __future__ import annotations

import ipaddress
import struct

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from dhcp import dhcpv4, dhcpv6, ndp, responder
from dhcp.nfqueue import NF_ACCEPT, NF_DROP, QueuedPacket
from dhcp.packet import checksum, linkLocal, parseIPv6, parseUDP, parseUDPv4, slaacAddress
from dhcp.responder import ResponderConfig
from tests.dhcp.helpers import (
    CONFIG,
    HOST_MAC,
    LINK,
    OTHER_MAC,
    RS_ALL_ROUTERS,
    VM_MAC,
    binding,
    dhcpPacket,
    dhcpv6Packet,
    icmp6Packet,
    solicitedNode,
)

IP = bytes([192, 0, 2, 10])
GATEWAY = bytes([192, 0, 2, 1])


def dhcpReply(answer: responder.Answer) -> tuple[dhcpv4.Reply, bytes, bytes]:
    """
    The reply in a frame, after checking the IPv4 header and UDP checksums.
    """
    assert answer.frame is not None
    ip = answer.frame[14:]
    assert checksum(ip[:20]) == 0, "IPv4 header checksum"
    udp = parseUDPv4(ip)
    assert udp is not None and (udp.sport, udp.dport) == (67, 68)
    segment = ip[20:]
    assert checksum(udp.src + udp.dst + struct.pack("!BBH", 0, 17, len(segment)) + segment) == 0, "UDP checksum"
    reply = dhcpv4.parseReply(udp.payload)
    assert reply is not None
    return reply, udp.src, udp.dst


class DHCPv4Tests(SynchronousTestCase):
    def test_discover(self) -> None:
        """
        DISCOVER → OFFER of the binding's IP, from the INDEV MAC to the
        client MAC, unicast to the offered address, with lease, renewal,
        mask, broadcast, router, DNS, hostname and domain; the request is
        dropped.
        """
        answer = responder.answerDHCPv4(CONFIG, binding(), LINK, dhcpPacket(dhcpv4.DISCOVER))
        self.assertEqual((answer.verdict, answer.kind), (NF_DROP, "DHCPOFFER"))
        assert answer.frame is not None
        self.assertEqual(answer.frame[0:6], VM_MAC)
        self.assertEqual(answer.frame[6:12], HOST_MAC)
        reply, src, dst = dhcpReply(answer)
        self.assertEqual((src, dst), (GATEWAY, IP))
        self.assertEqual(reply.messageType, dhcpv4.OFFER)
        self.assertEqual(reply.xid, 0x1234)
        self.assertEqual(reply.yiaddr, IP)
        o = reply.options
        self.assertEqual(o[dhcpv4.OPT_SERVER_ID], GATEWAY)
        self.assertEqual(o[dhcpv4.OPT_LEASE_TIME], struct.pack("!I", 3600))
        self.assertEqual(o[dhcpv4.OPT_RENEWAL_TIME], struct.pack("!I", 600))
        self.assertEqual(o[dhcpv4.OPT_SUBNET_MASK], bytes([255, 255, 255, 0]))
        self.assertEqual(o[dhcpv4.OPT_BROADCAST], bytes([192, 0, 2, 255]))
        self.assertEqual(o[dhcpv4.OPT_ROUTER], GATEWAY)
        self.assertEqual(o[dhcpv4.OPT_DNS], bytes([192, 0, 2, 53]))
        self.assertEqual(o[dhcpv4.OPT_HOSTNAME], b"vm1.test.example")
        self.assertEqual(o[dhcpv4.OPT_DOMAIN], b"test.example")
        self.assertNotIn(dhcpv4.OPT_MTU, o)

    def test_broadcastFlag(self) -> None:
        """
        A client asking for broadcast replies gets one to 255.255.255.255.
        """
        _, _, dst = dhcpReply(
            responder.answerDHCPv4(CONFIG, binding(), LINK, dhcpPacket(dhcpv4.DISCOVER, flags=0x8000))
        )
        self.assertEqual(dst, b"\xff" * 4)

    def test_requestAck(self) -> None:
        """
        REQUEST for the binding's IP (option 50, or ciaddr when renewing)
        → ACK.
        """
        for packet in (
            dhcpPacket(dhcpv4.REQUEST, options=[(50, IP)]),
            dhcpPacket(dhcpv4.REQUEST, ciaddr=IP),
            dhcpPacket(dhcpv4.REQUEST),
        ):
            answer = responder.answerDHCPv4(CONFIG, binding(), LINK, packet)
            reply, _, _ = dhcpReply(answer)
            self.assertEqual((answer.verdict, reply.messageType, reply.yiaddr), (NF_DROP, dhcpv4.ACK, IP))

    def test_requestNak(self) -> None:
        """
        REQUEST for another address → NAK, broadcast, without yiaddr or
        lease options.
        """
        for packet in (
            dhcpPacket(dhcpv4.REQUEST, options=[(50, bytes([192, 0, 2, 99]))]),
            dhcpPacket(dhcpv4.REQUEST, ciaddr=bytes([192, 0, 2, 99])),
        ):
            answer = responder.answerDHCPv4(CONFIG, binding(), LINK, packet)
            reply, _, dst = dhcpReply(answer)
            self.assertEqual(
                (answer.kind, reply.messageType, reply.yiaddr, dst), ("DHCPNAK", dhcpv4.NAK, b"\0" * 4, b"\xff" * 4)
            )
            self.assertNotIn(dhcpv4.OPT_LEASE_TIME, reply.options)

    def test_inform(self) -> None:
        """
        INFORM → ACK to ciaddr with hostname, domain and DNS only (no lease,
        no yiaddr).
        """
        answer = responder.answerDHCPv4(CONFIG, binding(), LINK, dhcpPacket(dhcpv4.INFORM, ciaddr=IP))
        reply, _, dst = dhcpReply(answer)
        self.assertEqual((reply.messageType, reply.yiaddr, dst), (dhcpv4.ACK, b"\0" * 4, IP))
        self.assertEqual(set(reply.options), {53, 54, 6, 12, 15})

    def test_releaseDecline(self) -> None:
        """
        RELEASE and DECLINE are for the server: dropped, no reply, named
        for the log.
        """
        for mtype, name in ((dhcpv4.RELEASE, "DHCPRELEASE"), (dhcpv4.DECLINE, "DHCPDECLINE")):
            answer = responder.answerDHCPv4(CONFIG, binding(), LINK, dhcpPacket(mtype))
            self.assertEqual((answer.verdict, answer.frame, answer.kind), (NF_DROP, None, name))

    def test_private(self) -> None:
        """
        PRIVATE omits the router option; MTU adds option 26; a configured
        domain wins over the hostname's.
        """
        config = ResponderConfig(domain="example.org")
        reply, _, _ = dhcpReply(
            responder.answerDHCPv4(config, binding(PRIVATE="1", MTU="1400"), LINK, dhcpPacket(dhcpv4.DISCOVER))
        )
        self.assertNotIn(dhcpv4.OPT_ROUTER, reply.options)
        self.assertNotIn(dhcpv4.OPT_DNS, reply.options)
        self.assertEqual(reply.options[dhcpv4.OPT_MTU], struct.pack("!H", 1400))
        self.assertEqual(reply.options[dhcpv4.OPT_DOMAIN], b"example.org")

    def test_serverIP(self) -> None:
        """
        A configured server_ip is the server identifier and source; without
        it and without a gateway, the subnet's first address is.
        """
        config = ResponderConfig(serverIP=ipaddress.IPv4Address("198.51.100.7"))
        reply, src, _ = dhcpReply(responder.answerDHCPv4(config, binding(), LINK, dhcpPacket(dhcpv4.DISCOVER)))
        self.assertEqual((src, reply.options[54]), (bytes([198, 51, 100, 7]),) * 2)
        reply, src, _ = dhcpReply(
            responder.answerDHCPv4(CONFIG, binding(GATEWAY=""), LINK, dhcpPacket(dhcpv4.DISCOVER))
        )
        self.assertEqual(src, GATEWAY)
        self.assertNotIn(dhcpv4.OPT_ROUTER, reply.options)

    def test_passes(self) -> None:
        """
        No IP in the binding, another MAC (chaddr or Ethernet source), an
        unknown message type, or garbage: accepted, never answered.
        """
        cases = [
            (binding(IP=""), dhcpPacket(dhcpv4.DISCOVER)),
            (binding(), dhcpPacket(dhcpv4.DISCOVER, mac=OTHER_MAC)),
            (binding(), dhcpPacket(dhcpv4.DISCOVER, hwaddr=OTHER_MAC)),
            (binding(), dhcpPacket(42)),
            (binding(), QueuedPacket(1, 0x800, 3, 0, VM_MAC, b"\x45garbage" * 10)),
        ]
        for b, packet in cases:
            answer = responder.answerDHCPv4(CONFIG, b, LINK, packet)
            self.assertEqual((answer.verdict, answer.frame), (NF_ACCEPT, None), answer.reason)
            self.assertTrue(answer.reason)

    def test_macSpoof(self) -> None:
        """
        With MACSPOOF, another MAC is answered anyway, to that MAC.
        """
        answer = responder.answerDHCPv4(CONFIG, binding(MACSPOOF="1"), LINK, dhcpPacket(dhcpv4.DISCOVER, mac=OTHER_MAC))
        assert answer.frame is not None
        self.assertEqual(answer.frame[:6], OTHER_MAC)

    @given(st.binary(max_size=600))
    def test_garbageNeverAnswered(self, data: bytes) -> None:
        """
        Random network-layer bytes on any queue never raise and never get a
        reply (a well-formed request is not random).
        """
        packet = QueuedPacket(1, 0x800, 3, 0, VM_MAC, data)
        for handler in responder.HANDLERS.values():
            answer = handler(CONFIG, binding(), LINK, packet)
            self.assertIsNone(answer.frame)

    @given(st.binary(max_size=300))
    def test_garbageOptions(self, tail: bytes) -> None:
        """
        A valid IPv4/UDP/BOOTP header with random options never raises; a
        reply, if any, is a well-formed BOOTREPLY.
        """
        good = dhcpPacket(dhcpv4.DISCOVER)
        udpStart = 20 + 8
        head = good.payload[: udpStart + 240]
        data = dhcpv4.buildRequest(dhcpv4.DISCOVER, VM_MAC, 1)[:240] + tail
        from dhcp.packet import buildUDPv4Frame

        payload = buildUDPv4Frame(VM_MAC, b"\xff" * 6, b"\0" * 4, b"\xff" * 4, 68, 67, data)[14:]
        self.assertEqual(len(head), udpStart + 240)
        answer = responder.answerDHCPv4(CONFIG, binding(), LINK, QueuedPacket(1, 0x800, 3, 0, VM_MAC, payload))
        if answer.frame is not None:
            dhcpReply(answer)


class RouterAdvertisementTests(SynchronousTestCase):
    def parseRA(self, frame: bytes | None):
        assert frame is not None
        packet = parseIPv6(frame[14:])
        assert packet is not None
        ra = ndp.parseRouterAdvertisement(packet)
        assert ra is not None
        return packet, ra

    def test_solicited(self) -> None:
        """
        RS → RA from the INDEV link-local to the soliciting host: hop limit
        255, O flag in slaac+dhcpv6 mode, router lifetime 14400, MTU,
        prefix carrying GATEWAY6 with R set, RDNSS (3 x ra_period) and DNSSL.
        """
        rs = icmp6Packet(ndp.buildRouterSolicitation(VM_MAC), linkLocal(VM_MAC), RS_ALL_ROUTERS)
        answer = responder.answerRS(CONFIG, binding(), LINK, rs)
        self.assertEqual((answer.verdict, answer.kind), (NF_DROP, "RA"))
        assert answer.frame is not None
        self.assertEqual(answer.frame[:12], VM_MAC + HOST_MAC)
        packet, ra = self.parseRA(answer.frame)
        self.assertEqual((packet.src, packet.dst, packet.hopLimit), (linkLocal(HOST_MAC), linkLocal(VM_MAC), 255))
        self.assertEqual((ra.flags, ra.routerLifetime), (0x40, 14400))
        options = dict(ra.options)
        self.assertEqual(options[ndp.OPT_SOURCE_LLADDR], HOST_MAC)
        self.assertEqual(struct.unpack("!HI", options[ndp.OPT_MTU])[1], 1500)
        prefix = options[ndp.OPT_PREFIX_INFO]
        self.assertEqual((prefix[0], prefix[1]), (64, 0xE0))
        self.assertEqual(prefix[14:30], ipaddress.IPv6Address("2001:db8:1::1").packed)
        self.assertEqual(
            options[ndp.OPT_RDNSS], struct.pack("!HI", 0, 900) + ipaddress.IPv6Address("2001:db8::53").packed
        )
        self.assertIn(b"\x04test\x07example\x00", options[ndp.OPT_DNSSL])

    def test_slaacOnlyNoGateway(self) -> None:
        """
        In slaac mode the O flag is clear; without GATEWAY6 the prefix is
        the subnet's, R clear; the binding MTU wins over the link's.
        """
        rs = icmp6Packet(ndp.buildRouterSolicitation(None), ndp.UNSPECIFIED, RS_ALL_ROUTERS)
        answer = responder.answerRS(ResponderConfig(), binding(GATEWAY6="", MTU="1400"), LINK, rs)
        packet, ra = self.parseRA(answer.frame)
        self.assertEqual(packet.dst, ndp.ALL_NODES)
        self.assertEqual(ra.flags, 0)
        options = dict(ra.options)
        self.assertEqual(options[ndp.OPT_PREFIX_INFO][1], 0xC0)
        self.assertEqual(options[ndp.OPT_PREFIX_INFO][14:30], ipaddress.IPv6Address("2001:db8:1::").packed)
        self.assertEqual(struct.unpack("!HI", options[ndp.OPT_MTU])[1], 1400)
        self.assertNotIn(ndp.OPT_RDNSS, options)

    def test_badHostnameDomain(self) -> None:
        """
        A HOSTNAME whose domain cannot be encoded as DNS labels leaves the
        DNSSL out instead of breaking the RA (and the DHCPv6 search list).
        """
        b = binding(HOSTNAME="vm1.a..b")
        rs = icmp6Packet(ndp.buildRouterSolicitation(VM_MAC), linkLocal(VM_MAC), RS_ALL_ROUTERS)
        _, ra = self.parseRA(responder.answerRS(CONFIG, b, LINK, rs).frame)
        self.assertNotIn(ndp.OPT_DNSSL, dict(ra.options))
        answer = responder.answerDHCPv6(CONFIG, b, LINK, dhcpv6Packet(dhcpv6.INFORMATION_REQUEST, []))
        self.assertEqual(answer.verdict, NF_DROP)

    def test_passes(self) -> None:
        """
        No SUBNET6, another MAC, or an invalid RS (hop limit 64): accepted.
        """
        rs = icmp6Packet(ndp.buildRouterSolicitation(VM_MAC), linkLocal(VM_MAC), RS_ALL_ROUTERS)
        other = icmp6Packet(ndp.buildRouterSolicitation(OTHER_MAC), linkLocal(OTHER_MAC), RS_ALL_ROUTERS, mac=OTHER_MAC)
        low = icmp6Packet(ndp.buildRouterSolicitation(VM_MAC), linkLocal(VM_MAC), RS_ALL_ROUTERS, hopLimit=64)
        for b, packet in ((binding(SUBNET6=""), rs), (binding(), other), (binding(), low)):
            self.assertEqual(responder.answerRS(CONFIG, b, LINK, packet).verdict, NF_ACCEPT)

    def test_periodic(self) -> None:
        """
        The periodic RA goes to all nodes (33:33:00:00:00:01, ff02::1);
        bindings without SUBNET6 get none.
        """
        frame = responder.periodicRA(CONFIG, binding(), LINK)
        assert frame is not None
        self.assertEqual(frame[:6], b"\x33\x33\0\0\0\x01")
        packet, _ = self.parseRA(frame)
        self.assertEqual(packet.dst, ndp.ALL_NODES)
        self.assertIsNone(responder.periodicRA(CONFIG, binding(SUBNET6=""), LINK))


class NeighborTests(SynchronousTestCase):
    def ns(self, target: str, src: bytes | None = None, sll: bytes | None = VM_MAC, mac: bytes = VM_MAC):
        t = ipaddress.IPv6Address(target).packed
        return icmp6Packet(
            ndp.buildNeighborSolicitation(t, sll),
            src if src is not None else linkLocal(VM_MAC),
            solicitedNode(t),
            mac=mac,
        )

    def test_gateway(self) -> None:
        """
        NS for GATEWAY6 → NA from GATEWAY6 to the soliciting address with
        R and S set, O clear, and the INDEV MAC as target link-layer address.
        """
        answer = responder.answerNS(CONFIG, binding(), LINK, self.ns("2001:db8:1::1"))
        self.assertEqual((answer.verdict, answer.kind), (NF_DROP, "NA"))
        assert answer.frame is not None
        self.assertEqual(answer.frame[:12], VM_MAC + HOST_MAC)
        packet = parseIPv6(answer.frame[14:])
        assert packet is not None
        self.assertEqual(
            (packet.src, packet.dst, packet.hopLimit),
            (ipaddress.IPv6Address("2001:db8:1::1").packed, linkLocal(VM_MAC), 255),
        )
        self.assertEqual(packet.payload[0], 136)
        self.assertEqual(packet.payload[4], 0xC0)
        self.assertEqual(packet.payload[24:32], b"\x02\x01" + HOST_MAC)

    def test_routedSubnet(self) -> None:
        """
        In routed mode other addresses of SUBNET6 and the router's
        link-local are proxied too, but not the VM's own address.
        """
        own = str(slaacAddress(VM_MAC, ipaddress.IPv6Network("2001:db8:1::/64")))
        self.assertEqual(responder.answerNS(CONFIG, binding(), LINK, self.ns("2001:db8:1::77")).verdict, NF_DROP)
        self.assertEqual(
            responder.answerNS(
                CONFIG, binding(), LINK, self.ns(str(ipaddress.IPv6Address(linkLocal(HOST_MAC))))
            ).verdict,
            NF_DROP,
        )
        self.assertEqual(responder.answerNS(CONFIG, binding(), LINK, self.ns(own)).verdict, NF_ACCEPT)
        bridged = binding(INDEV="br0")
        self.assertEqual(responder.answerNS(CONFIG, bridged, LINK, self.ns("2001:db8:1::77")).verdict, NF_ACCEPT)
        self.assertEqual(responder.answerNS(CONFIG, bridged, LINK, self.ns("2001:db8:1::1")).verdict, NF_DROP)

    def test_passes(self) -> None:
        """
        Duplicate-address checks, targets outside the subnet, another MAC
        and solicitations without any link-layer address pass.
        """
        dad = icmp6Packet(
            ndp.buildNeighborSolicitation(ipaddress.IPv6Address("2001:db8:1::1").packed, None),
            ndp.UNSPECIFIED,
            solicitedNode(b"\0" * 16),
        )
        cases = [
            dad,
            self.ns("2001:db8:99::1"),
            self.ns("2001:db8:1::1", sll=OTHER_MAC, mac=OTHER_MAC),
        ]
        for packet in cases:
            self.assertEqual(responder.answerNS(CONFIG, binding(), LINK, packet).verdict, NF_ACCEPT)
        noLL = self.ns("2001:db8:1::1", sll=None)
        noLL = QueuedPacket(noLL.packetId, noLL.hwProtocol, 3, 0, None, noLL.payload)
        self.assertEqual(responder.answerNS(CONFIG, binding(), LINK, noLL).verdict, NF_ACCEPT)


class DHCPv6Tests(SynchronousTestCase):
    def test_informationRequest(self) -> None:
        """
        Information-Request → Reply from the INDEV link-local to the
        client, port 547 → 546, same transaction, client id echoed, our
        DUID-LLT, DNS servers and search list.
        """
        client = b"\x00\x03\x00\x01" + VM_MAC
        answer = responder.answerDHCPv6(
            CONFIG, binding(), LINK, dhcpv6Packet(dhcpv6.INFORMATION_REQUEST, [(1, client)])
        )
        self.assertEqual((answer.verdict, answer.kind), (NF_DROP, "DHCPv6-Reply"))
        assert answer.frame is not None
        packet = parseIPv6(answer.frame[14:])
        assert packet is not None
        self.assertEqual((packet.src, packet.dst), (linkLocal(HOST_MAC), linkLocal(VM_MAC)))
        udp = parseUDP(packet.payload)
        assert udp is not None
        self.assertEqual(udp[:2], (547, 546))
        reply = dhcpv6.parseMessage(udp[2])
        assert reply is not None
        self.assertEqual((reply.messageType, reply.transactionId), (dhcpv6.REPLY, 0xABCDEF))
        self.assertEqual(reply.options[1], client)
        self.assertEqual(reply.options[2], dhcpv6.duidLLT(HOST_MAC))
        self.assertEqual(reply.options[23], ipaddress.IPv6Address("2001:db8::53").packed)
        self.assertEqual(reply.options[24], b"\x04test\x07example\x00")

    def test_passes(self) -> None:
        """
        Solicit (stateful), slaac-only mode, and malformed messages pass.
        """
        self.assertEqual(
            responder.answerDHCPv6(CONFIG, binding(), LINK, dhcpv6Packet(dhcpv6.SOLICIT, [])).verdict, NF_ACCEPT
        )
        self.assertEqual(
            responder.answerDHCPv6(
                ResponderConfig(), binding(), LINK, dhcpv6Packet(dhcpv6.INFORMATION_REQUEST, [])
            ).verdict,
            NF_ACCEPT,
        )


class ConfigTests(SynchronousTestCase):
    def test_fromSettings(self) -> None:
        """
        Name servers are split by family; an empty server_ip means none.
        """
        config = ResponderConfig.fromSettings(
            {
                "nameservers": ["192.0.2.53", "2001:db8::53"],
                "server_ip": "",
                "domain": "d",
                "lease_lifetime": 1,
                "lease_renewal": 2,
                "ra_period": 3,
                "ipv6_mode": "slaac",
            }
        )
        self.assertEqual(config.nameservers, (ipaddress.IPv4Address("192.0.2.53"),))
        self.assertEqual(config.nameservers6, (ipaddress.IPv6Address("2001:db8::53"),))
        self.assertIsNone(config.serverIP)
