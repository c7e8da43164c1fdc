# -*- test-case-name: tests.dhcp.test_ndp -*-
"""
ICMPv6 neighbour discovery (RFC 4861): router solicitations and
advertisements, neighbour solicitations and advertisements, with the
options we use (link-layer addresses, prefix information, MTU, RDNSS and
DNSSL from RFC 8106).

Parsers take an L{IPv6Packet} and return C{None} for anything that is not
a valid message of their kind (RFC 4861 §6.1.1 and §7.1.1 validity checks:
hop limit 255, code 0, checksum, option lengths); they never raise.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import attrs

from dhcp.packet import PROTO_ICMPV6, IPv6Packet, upperChecksumOK

ROUTER_SOLICITATION = 133
ROUTER_ADVERTISEMENT = 134
NEIGHBOR_SOLICITATION = 135
NEIGHBOR_ADVERTISEMENT = 136

OPT_SOURCE_LLADDR = 1
OPT_TARGET_LLADDR = 2
OPT_PREFIX_INFO = 3
OPT_MTU = 5
OPT_RDNSS = 25
OPT_DNSSL = 31

ALL_NODES = bytes.fromhex("ff020000000000000000000000000001")
UNSPECIFIED = b"\0" * 16


def parseOptions(data: bytes) -> list[tuple[int, bytes]] | None:
    """
    The (type, body) NDP options in C{data}; C{None} if one has length 0
    or runs past the end.
    """
    out: list[tuple[int, bytes]] = []
    i, n = 0, len(data)
    while i < n:
        if i + 2 > n:
            return None
        length = data[i + 1] * 8
        if length == 0 or i + length > n:
            return None
        out.append((data[i], data[i + 2 : i + length]))
        i += length
    return out


def _icmp(packet: IPv6Packet, icmpType: int, minLength: int) -> bytes | None:
    if packet.nextHeader != PROTO_ICMPV6 or packet.hopLimit != 255:
        return None
    body = packet.payload
    if len(body) < minLength or body[0] != icmpType or body[1] != 0:
        return None
    if not upperChecksumOK(packet):
        return None
    return body


def _lladdr(options: list[tuple[int, bytes]], kind: int) -> bytes | None:
    for t, body in options:
        if t == kind and len(body) >= 6:
            return body[:6]
    return None


@attrs.frozen
class RouterSolicitation:
    src: bytes
    sourceLinkAddress: bytes | None


def parseRouterSolicitation(packet: IPv6Packet) -> RouterSolicitation | None:
    """
    A router solicitation, or C{None}.
    """
    body = _icmp(packet, ROUTER_SOLICITATION, 8)
    if body is None:
        return None
    options = parseOptions(body[8:])
    if options is None:
        return None
    sll = _lladdr(options, OPT_SOURCE_LLADDR)
    if packet.src == UNSPECIFIED and sll is not None:
        return None
    return RouterSolicitation(packet.src, sll)


@attrs.frozen
class NeighborSolicitation:
    src: bytes
    dst: bytes
    target: bytes
    sourceLinkAddress: bytes | None


def parseNeighborSolicitation(packet: IPv6Packet) -> NeighborSolicitation | None:
    """
    A neighbour solicitation, or C{None}.
    """
    body = _icmp(packet, NEIGHBOR_SOLICITATION, 24)
    if body is None:
        return None
    target = body[8:24]
    if target[0] == 0xFF:
        return None
    options = parseOptions(body[24:])
    if options is None:
        return None
    sll = _lladdr(options, OPT_SOURCE_LLADDR)
    if packet.src == UNSPECIFIED and sll is not None:
        return None
    return NeighborSolicitation(packet.src, packet.dst, target, sll)


def _option(kind: int, body: bytes) -> bytes:
    pad = (-(len(body) + 2)) % 8
    return bytes((kind, (len(body) + 2 + pad) // 8)) + body + b"\0" * pad


def encodeDomains(domains: Sequence[str]) -> bytes:
    """
    Domain names in DNS wire format (RFC 1035 §3.1), uncompressed, as used
    by the DNSSL option and the DHCPv6 domain list.

    @raise ValueError: for an empty label or one over 63 bytes.
    """
    out = bytearray()
    for domain in domains:
        for label in domain.strip(".").split("."):
            raw = label.encode("idna") if not label.isascii() else label.encode("ascii")
            if not 0 < len(raw) < 64:
                raise ValueError(f"bad DNS label in {domain!r}")
            out.append(len(raw))
            out += raw
        out.append(0)
    return bytes(out)


@attrs.frozen
class Prefix:
    """
    A prefix information option: C{address} is the prefix (or the router's
    address when C{routerAddress} is set: RFC 6275 R flag).
    """

    address: bytes
    length: int
    validLifetime: int = 86400
    preferredLifetime: int = 14400
    onLink: bool = True
    autonomous: bool = True
    routerAddress: bool = False


def buildRouterAdvertisement(
    sourceLinkAddress: bytes,
    prefixes: Sequence[Prefix],
    routerLifetime: int,
    mtu: int | None = None,
    dnsServers: Sequence[bytes] = (),
    dnsLifetime: int = 0,
    searchDomains: Sequence[str] = (),
    managed: bool = False,
    other: bool = False,
    curHopLimit: int = 64,
) -> bytes:
    """
    The ICMPv6 body of a router advertisement (checksum left zero).
    """
    flags = (0x80 if managed else 0) | (0x40 if other else 0)
    out = struct.pack("!BBHBBHII", ROUTER_ADVERTISEMENT, 0, 0, curHopLimit, flags, routerLifetime, 0, 0)
    out += _option(OPT_SOURCE_LLADDR, sourceLinkAddress)
    if mtu is not None:
        out += _option(OPT_MTU, struct.pack("!HI", 0, mtu))
    for p in prefixes:
        pflags = (0x80 if p.onLink else 0) | (0x40 if p.autonomous else 0) | (0x20 if p.routerAddress else 0)
        out += _option(
            OPT_PREFIX_INFO,
            struct.pack("!BBIII", p.length, pflags, p.validLifetime, p.preferredLifetime, 0) + p.address,
        )
    if dnsServers:
        out += _option(OPT_RDNSS, struct.pack("!HI", 0, dnsLifetime) + b"".join(dnsServers))
    if searchDomains:
        names = encodeDomains(searchDomains)
        names += b"\0" * ((-(len(names) + 8)) % 8)
        out += _option(OPT_DNSSL, struct.pack("!HI", 0, dnsLifetime) + names)
    return out


def buildNeighborAdvertisement(
    target: bytes, targetLinkAddress: bytes, router: bool = True, solicited: bool = True, override: bool = False
) -> bytes:
    """
    The ICMPv6 body of a neighbour advertisement (checksum left zero).
    """
    flags = (0x80 if router else 0) | (0x40 if solicited else 0) | (0x20 if override else 0)
    return (
        struct.pack("!BBHB3x", NEIGHBOR_ADVERTISEMENT, 0, 0, flags)
        + target
        + _option(OPT_TARGET_LLADDR, targetLinkAddress)
    )


def buildRouterSolicitation(sourceLinkAddress: bytes | None) -> bytes:
    """
    The ICMPv6 body of a router solicitation (for tests).
    """
    out = struct.pack("!BBHI", ROUTER_SOLICITATION, 0, 0, 0)
    if sourceLinkAddress is not None:
        out += _option(OPT_SOURCE_LLADDR, sourceLinkAddress)
    return out


def buildNeighborSolicitation(target: bytes, sourceLinkAddress: bytes | None) -> bytes:
    """
    The ICMPv6 body of a neighbour solicitation (for tests).
    """
    out = struct.pack("!BBHI", NEIGHBOR_SOLICITATION, 0, 0, 0) + target
    if sourceLinkAddress is not None:
        out += _option(OPT_SOURCE_LLADDR, sourceLinkAddress)
    return out


@attrs.frozen
class RouterAdvertisement:
    """
    A parsed router advertisement (for tests).
    """

    curHopLimit: int
    flags: int
    routerLifetime: int
    options: list[tuple[int, bytes]]


def parseRouterAdvertisement(packet: IPv6Packet) -> RouterAdvertisement | None:
    body = _icmp(packet, ROUTER_ADVERTISEMENT, 16)
    if body is None:
        return None
    options = parseOptions(body[16:])
    if options is None:
        return None
    hop, flags, lifetime = struct.unpack_from("!BBH", body, 4)
    return RouterAdvertisement(hop, flags, lifetime, options)
