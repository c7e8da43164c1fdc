# -*- test-case-name: tests.dhcp.test_responder -*-
"""
What to answer: pure functions from (configuration, binding, the INDEV's
MAC and MTU, a queued packet) to an L{Answer}: the verdict, and the reply
frame when there is one.

Rules (spec §5.4): a packet we answer is dropped; a packet that is not
ours to answer (no IP in the binding, another MAC, a duplicate-address
check, a target that is not the router, a malformed packet) is accepted so
that the kernel handles it as if we were not there. RELEASE and DECLINE
are for the DHCP server, which is us: they are logged and dropped.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Mapping
from typing import Any

import attrs

from dhcp import dhcpv4, dhcpv6, ndp
from dhcp.binding import Binding
from dhcp.nfqueue import NF_ACCEPT, NF_DROP, QueuedPacket
from dhcp.packet import (
    PROTO_ICMPV6,
    PROTO_UDP,
    UDPv4Template,
    buildIPv6Frame,
    buildUDP,
    buildUDPv4FrameFromParts,
    linkLocal,
    multicastMac,
    parseIPv6,
    parseUDP,
    partialSum,
    slaacAddress,
    udp4Bounds,
)

IPV6_MODES = ("slaac", "slaac+dhcpv6")
ROUTER_LIFETIME = 14400
_BROADCAST_IP = b"\xff\xff\xff\xff"
_ZERO4 = b"\0\0\0\0"


@attrs.frozen
class ResponderConfig:
    """
    The C{[dhcp]} settings that shape replies.

    @ivar nameservers: IPv4 servers (DHCP option 6).
    @ivar nameservers6: IPv6 servers (RDNSS, DHCPv6 option 23).
    @ivar serverIP: the DHCP server identifier and source address; None
        means the binding's gateway (else the first address of its subnet).
    """

    nameservers: tuple[ipaddress.IPv4Address, ...] = ()
    nameservers6: tuple[ipaddress.IPv6Address, ...] = ()
    domain: str = ""
    leaseLifetime: int = 604800
    leaseRenewal: int = 600
    serverIP: ipaddress.IPv4Address | None = None
    raPeriod: int = 300
    ipv6Mode: str = "slaac"

    @classmethod
    def fromSettings(cls, settings: Mapping[str, Any]) -> ResponderConfig:
        """
        Build from a C{[dhcp]} section mapping; C{nameservers} may mix
        IPv4 and IPv6 addresses.

        @raise ValueError: for a malformed address.
        """
        get = settings.__getitem__
        v4: list[ipaddress.IPv4Address] = []
        v6: list[ipaddress.IPv6Address] = []
        for text in get("nameservers"):
            address = ipaddress.ip_address(text)
            (v4 if isinstance(address, ipaddress.IPv4Address) else v6).append(address)  # type: ignore[arg-type]
        server = get("server_ip")
        return cls(
            nameservers=tuple(v4),
            nameservers6=tuple(v6),
            domain=get("domain"),
            leaseLifetime=get("lease_lifetime"),
            leaseRenewal=get("lease_renewal"),
            serverIP=ipaddress.IPv4Address(server) if server else None,
            raPeriod=get("ra_period"),
            ipv6Mode=get("ipv6_mode"),
        )


@attrs.frozen
class Link:
    """
    The device replies appear to come from (the binding's INDEV).
    """

    mac: bytes
    mtu: int = 1500


@attrs.define(slots=True)  # not frozen: one per packet, and frozen init costs 3x
class Answer:
    """
    The outcome for one packet.

    @ivar kind: what happened, for logs and metrics (C{DHCPOFFER}, C{RA},
        C{pass}, C{ignored}, ...).
    @ivar reason: why a packet passes (empty when answered).
    """

    verdict: int
    frame: bytes | None = None
    kind: str = "pass"
    reason: str = ""
    detail: str = ""


def passThrough(reason: str) -> Answer:
    return Answer(NF_ACCEPT, None, "pass", reason)


def domainOf(config: ResponderConfig, binding: Binding) -> str:
    """
    The configured domain, else what follows the first dot of the hostname.
    """
    if config.domain:
        return config.domain
    _, dot, rest = binding.hostname.partition(".")
    return rest if dot else ""


def searchDomains(config: ResponderConfig, binding: Binding) -> list[str]:
    """
    The DNS search list for RA DNSSL and DHCPv6: the domain, when it can be
    encoded as DNS labels (a malformed HOSTNAME must not break the RA).
    """
    domain = domainOf(config, binding)
    if not domain:
        return []
    try:
        ndp.encodeDomains([domain])
    except ValueError:
        return []
    return [domain]


def serverAddress(config: ResponderConfig, binding: Binding) -> bytes:
    if config.serverIP is not None:
        return config.serverIP.packed
    if binding.gateway is not None:
        return binding.gateway.packed
    assert binding.subnet is not None
    return binding.subnet[1].packed if binding.subnet.num_addresses > 2 else binding.subnet.network_address.packed


def _macMismatch(binding: Binding, *macs: bytes | None) -> bool:
    if binding.macSpoof:
        return False
    return any(m is not None and m[:6] != binding.mac for m in macs)


# ------------------------------------------------------------------ DHCPv4


def _dhcpOptions(
    config: ResponderConfig, binding: Binding, messageType: int, server: bytes, informOnly: bool = False
) -> bytes:
    """
    The encoded options of a reply: for an INFORM only the hostname, the
    domain and the name servers (and the type and server id).
    """
    opts: list[tuple[int, bytes]] = [
        (dhcpv4.OPT_MESSAGE_TYPE, bytes((messageType,))),
        (dhcpv4.OPT_SERVER_ID, server),
    ]
    if messageType == dhcpv4.NAK:
        return dhcpv4.encodeOptions(opts)
    subnet = binding.subnet
    assert subnet is not None
    if not informOnly:
        opts += [
            (dhcpv4.OPT_LEASE_TIME, struct.pack("!I", config.leaseLifetime)),
            (dhcpv4.OPT_RENEWAL_TIME, struct.pack("!I", config.leaseRenewal)),
            (dhcpv4.OPT_SUBNET_MASK, subnet.netmask.packed),
            (dhcpv4.OPT_BROADCAST, subnet.broadcast_address.packed),
        ]
        if binding.gateway is not None and not binding.private:
            opts.append((dhcpv4.OPT_ROUTER, binding.gateway.packed))
        if binding.mtu is not None:
            opts.append((dhcpv4.OPT_MTU, struct.pack("!H", binding.mtu)))
    if config.nameservers:
        opts.append((dhcpv4.OPT_DNS, b"".join(a.packed for a in config.nameservers)))
    opts.append((dhcpv4.OPT_HOSTNAME, binding.hostname.encode("utf-8")[:255]))
    domain = domainOf(config, binding)
    if domain:
        opts.append((dhcpv4.OPT_DOMAIN, domain.encode("utf-8")[:255]))
    return dhcpv4.encodeOptions(opts)


@attrs.frozen
class _Plan:
    """
    Everything a DHCPv4 reply needs that depends only on the configuration
    and the binding, encoded once: per reply type, the constant tail of the
    BOOTP message and its checksum contribution.
    """

    ip: bytes
    server: bytes
    # per reply type: (template unicast to the binding's IP, template broadcast)
    offer: tuple[UDPv4Template, UDPv4Template]
    ack: tuple[UDPv4Template, UDPv4Template]
    nak: UDPv4Template
    inform: tuple[bytes, int]


def _templates(server: bytes, ip: bytes, options: bytes) -> tuple[UDPv4Template, UDPv4Template]:
    tail = dhcpv4.replyTail(options)
    return (
        UDPv4Template(server, ip, 67, 68, dhcpv4.REPLY_HEAD_LEN, tail),
        UDPv4Template(server, _BROADCAST_IP, 67, 68, dhcpv4.REPLY_HEAD_LEN, tail),
    )


def _tail(options: bytes) -> tuple[bytes, int]:
    tail = dhcpv4.replyTail(options)
    return tail, partialSum(tail + b"\0" * (len(tail) % 2))


# (id(config), id(binding)) -> (config, binding, plan). Keyed by identity
# (hashing a Binding costs more than answering); the stored objects keep the
# ids alive and are compared by identity, so a hit is always for the same
# objects. Bounded: cleared when it grows past any sane number of taps.
_PLANS: dict[tuple[int, int], tuple[ResponderConfig, Binding, _Plan]] = {}


def _plan(config: ResponderConfig, binding: Binding) -> _Plan:
    key = (id(config), id(binding))
    hit = _PLANS.get(key)
    if hit is not None and hit[0] is config and hit[1] is binding:
        return hit[2]
    assert binding.ip is not None
    server = serverAddress(config, binding)
    ip = binding.ip.packed
    plan = _Plan(
        ip=ip,
        server=server,
        offer=_templates(server, ip, _dhcpOptions(config, binding, dhcpv4.OFFER, server)),
        ack=_templates(server, ip, _dhcpOptions(config, binding, dhcpv4.ACK, server)),
        nak=_templates(server, ip, _dhcpOptions(config, binding, dhcpv4.NAK, server))[1],
        inform=_tail(_dhcpOptions(config, binding, dhcpv4.ACK, server, informOnly=True)),
    )
    if len(_PLANS) > 4096:
        _PLANS.clear()
    _PLANS[key] = (config, binding, plan)
    return plan


def answerDHCPv4(config: ResponderConfig, binding: Binding, link: Link, packet: QueuedPacket) -> Answer:
    """
    DISCOVER → OFFER, REQUEST → ACK (or NAK for another address), INFORM →
    ACK (hostname, domain, DNS only), RELEASE/DECLINE logged and dropped.
    """
    if binding.ip is None:
        return passThrough("binding has no IP")
    data = packet.payload
    bounds = udp4Bounds(data)
    if bounds is None or bounds[2] != 67:
        return passThrough("not a DHCP datagram")
    request = dhcpv4.parseRequest(data, bounds[0], bounds[1])
    if request is None:
        return passThrough("malformed DHCP request")
    mac = request.mac
    if not binding.macSpoof and (
        mac != binding.mac or (packet.hwaddr is not None and packet.hwaddr[:6] != binding.mac)
    ):
        return passThrough(f"MAC {mac.hex(':')} is not the binding's")
    plan = _plan(config, binding)
    mtype = request.messageType
    ip = plan.ip
    if mtype == dhcpv4.DISCOVER or mtype == dhcpv4.REQUEST:
        wanted = request.requestedIP or (request.ciaddr if request.ciaddr != _ZERO4 else None)
        if mtype == dhcpv4.REQUEST and wanted is not None and wanted != ip:
            head = dhcpv4.replyHead(request, dhcpv4.NAK, _ZERO4, plan.server)
            return Answer(NF_DROP, plan.nak.frame(link.mac, mac, head), "DHCPNAK", "", "DHCPREQUEST")
        rtype = dhcpv4.OFFER if mtype == dhcpv4.DISCOVER else dhcpv4.ACK
        unicast, broadcast = plan.offer if rtype == dhcpv4.OFFER else plan.ack
        head = dhcpv4.replyHead(request, rtype, ip, plan.server)
        template = broadcast if request.flags & dhcpv4.FLAG_BROADCAST else unicast
        return Answer(NF_DROP, template.frame(link.mac, mac, head), _REPLY_NAMES[rtype], "", _REQUEST_NAMES[mtype])
    if mtype == dhcpv4.INFORM:
        head = dhcpv4.replyHead(request, dhcpv4.ACK, _ZERO4, plan.server)
        dst = request.ciaddr if request.ciaddr != _ZERO4 else _BROADCAST_IP
        frame = buildUDPv4FrameFromParts(link.mac, mac, plan.server, dst, 67, 68, head, *plan.inform)
        return Answer(NF_DROP, frame, "DHCPACK", "", "DHCPINFORM")
    if mtype in (dhcpv4.RELEASE, dhcpv4.DECLINE):
        name = dhcpv4.MESSAGE_NAMES[mtype]
        return Answer(NF_DROP, None, name, "", f"{name} from {mac.hex(':')} for {binding.ip}")
    return passThrough(f"DHCP message type {mtype} is not answered")


_REPLY_NAMES = {t: dhcpv4.MESSAGE_NAMES[t] for t in (dhcpv4.OFFER, dhcpv4.ACK, dhcpv4.NAK)}
_REQUEST_NAMES = {t: dhcpv4.MESSAGE_NAMES[t] for t in (dhcpv4.DISCOVER, dhcpv4.REQUEST)}


# ------------------------------------------------------------------ IPv6


def _routerAdvertisement(config: ResponderConfig, binding: Binding, link: Link) -> bytes:
    subnet6 = binding.subnet6
    assert subnet6 is not None
    if binding.gateway6 is not None:
        prefix = ndp.Prefix(binding.gateway6.packed, subnet6.prefixlen, routerAddress=True)
    else:
        prefix = ndp.Prefix(subnet6.network_address.packed, subnet6.prefixlen)
    return ndp.buildRouterAdvertisement(
        link.mac,
        [prefix],
        routerLifetime=ROUTER_LIFETIME,
        mtu=binding.mtu or link.mtu,
        dnsServers=[a.packed for a in config.nameservers6],
        dnsLifetime=3 * config.raPeriod if config.raPeriod > 0 else 1800,
        searchDomains=searchDomains(config, binding),
        other=config.ipv6Mode == "slaac+dhcpv6",
    )


def periodicRA(config: ResponderConfig, binding: Binding, link: Link) -> bytes | None:
    """
    The unsolicited RA frame for a binding (to all nodes), or None when the
    binding has no IPv6 subnet.
    """
    if binding.subnet6 is None:
        return None
    return buildIPv6Frame(
        link.mac,
        multicastMac(ndp.ALL_NODES),
        linkLocal(link.mac),
        ndp.ALL_NODES,
        PROTO_ICMPV6,
        _routerAdvertisement(config, binding, link),
    )


def answerRS(config: ResponderConfig, binding: Binding, link: Link, packet: QueuedPacket) -> Answer:
    """
    A router solicitation → a router advertisement to the soliciting host.
    """
    if binding.subnet6 is None:
        return passThrough("binding has no SUBNET6")
    ip6 = parseIPv6(packet.payload)
    rs = ndp.parseRouterSolicitation(ip6) if ip6 is not None else None
    if rs is None:
        return passThrough("not a valid router solicitation")
    if _macMismatch(binding, rs.sourceLinkAddress, packet.hwaddr):
        return passThrough("router solicitation from another MAC")
    unicast = rs.src != ndp.UNSPECIFIED
    dst = rs.src if unicast else ndp.ALL_NODES
    dstMac = rs.sourceLinkAddress or (packet.hwaddr[:6] if packet.hwaddr else binding.mac)
    frame = buildIPv6Frame(
        link.mac, dstMac, linkLocal(link.mac), dst, PROTO_ICMPV6, _routerAdvertisement(config, binding, link)
    )
    return Answer(NF_DROP, frame, "RA", detail=f"prefix {binding.subnet6}")


def _proxiedTarget(binding: Binding, link: Link, target: bytes) -> bool:
    if binding.gateway6 is not None and target == binding.gateway6.packed:
        return True
    if target == linkLocal(link.mac):
        return True
    if binding.routed and binding.subnet6 is not None:
        address = ipaddress.IPv6Address(target)
        if address in binding.subnet6:
            own = binding.eui64 or (
                slaacAddress(binding.mac, binding.subnet6) if binding.subnet6.prefixlen == 64 else None
            )
            return address != own
    return False


def answerNS(config: ResponderConfig, binding: Binding, link: Link, packet: QueuedPacket) -> Answer:
    """
    A neighbour solicitation for the router (GATEWAY6, the router's
    link-local, and in routed mode any other address of SUBNET6) → a
    neighbour advertisement with the INDEV MAC. Duplicate-address checks
    (unspecified source) and other targets pass.
    """
    ip6 = parseIPv6(packet.payload)
    ns = ndp.parseNeighborSolicitation(ip6) if ip6 is not None else None
    if ns is None:
        return passThrough("not a valid neighbour solicitation")
    if ns.src == ndp.UNSPECIFIED:
        return passThrough("duplicate address detection")
    if not _proxiedTarget(binding, link, ns.target):
        return passThrough(f"target {ipaddress.IPv6Address(ns.target)} is not proxied")
    clientMac = ns.sourceLinkAddress or (packet.hwaddr[:6] if packet.hwaddr else None)
    if clientMac is None:
        return passThrough("no source link-layer address")
    if _macMismatch(binding, ns.sourceLinkAddress, packet.hwaddr):
        return passThrough("neighbour solicitation from another MAC")
    na = ndp.buildNeighborAdvertisement(ns.target, link.mac, router=True, solicited=True, override=False)
    frame = buildIPv6Frame(link.mac, clientMac, ns.target, ns.src, PROTO_ICMPV6, na)
    return Answer(NF_DROP, frame, "NA", detail=f"target {ipaddress.IPv6Address(ns.target)}")


def answerDHCPv6(config: ResponderConfig, binding: Binding, link: Link, packet: QueuedPacket) -> Answer:
    """
    An Information-Request → a Reply with DNS servers and search list
    (mode slaac+dhcpv6 only; everything else passes: stateful DHCPv6 is
    not served).
    """
    if config.ipv6Mode != "slaac+dhcpv6":
        return passThrough("DHCPv6 is off (ipv6_mode)")
    ip6 = parseIPv6(packet.payload)
    if ip6 is None or ip6.nextHeader != PROTO_UDP:
        return passThrough("not a UDP/IPv6 packet")
    udp = parseUDP(ip6.payload)
    if udp is None or udp[1] != dhcpv6.SERVER_PORT:
        return passThrough("not a DHCPv6 datagram")
    message = dhcpv6.parseMessage(udp[2])
    if message is None:
        return passThrough("malformed DHCPv6 message")
    if message.messageType != dhcpv6.INFORMATION_REQUEST:
        return passThrough(f"DHCPv6 message type {message.messageType} is not answered")
    if _macMismatch(binding, packet.hwaddr):
        return passThrough("DHCPv6 request from another MAC")
    if ip6.src == ndp.UNSPECIFIED:
        return passThrough("unspecified source")
    reply = dhcpv6.buildReply(
        message,
        dhcpv6.duidLLT(link.mac),
        [a.packed for a in config.nameservers6],
        searchDomains(config, binding),
    )
    dstMac = packet.hwaddr[:6] if packet.hwaddr else binding.mac
    frame = buildIPv6Frame(
        link.mac,
        dstMac,
        linkLocal(link.mac),
        ip6.src,
        PROTO_UDP,
        buildUDP(dhcpv6.SERVER_PORT, dhcpv6.CLIENT_PORT, reply),
        hopLimit=64,
    )
    return Answer(NF_DROP, frame, "DHCPv6-Reply", detail=f"transaction {message.transactionId:#x}")


HANDLERS = {
    "dhcp": answerDHCPv4,
    "rs": answerRS,
    "ns": answerNS,
    "dhcpv6": answerDHCPv6,
}
