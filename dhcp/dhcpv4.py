# -*- test-case-name: tests.dhcp.test_dhcpv4 -*-
"""
DHCPv4 over BOOTP (RFC 2131, RFC 2132): parse requests, build replies.

L{parseRequest} returns C{None} for anything that is not a well-formed
BOOTREQUEST carrying DHCP options; it never raises.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import attrs

MAGIC = b"\x63\x82\x53\x63"
BOOTREQUEST = 1
BOOTREPLY = 2

DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)
MESSAGE_NAMES = {
    DISCOVER: "DHCPDISCOVER",
    OFFER: "DHCPOFFER",
    REQUEST: "DHCPREQUEST",
    DECLINE: "DHCPDECLINE",
    ACK: "DHCPACK",
    NAK: "DHCPNAK",
    RELEASE: "DHCPRELEASE",
    INFORM: "DHCPINFORM",
}

OPT_PAD = 0
OPT_SUBNET_MASK = 1
OPT_ROUTER = 3
OPT_DNS = 6
OPT_HOSTNAME = 12
OPT_DOMAIN = 15
OPT_MTU = 26
OPT_BROADCAST = 28
OPT_REQUESTED_IP = 50
OPT_LEASE_TIME = 51
OPT_OVERLOAD = 52
OPT_MESSAGE_TYPE = 53
OPT_SERVER_ID = 54
OPT_RENEWAL_TIME = 58
OPT_REBINDING_TIME = 59
OPT_END = 255

FLAG_BROADCAST = 0x8000

_HEADER = struct.Struct("!BBBBIHH4s4s4s4s16s")
HEADER_LEN = 236  # fixed BOOTP part, sname and file included
REPLY_HEAD_LEN = 44  # the variable part of a reply: op .. chaddr (L{replyHead})
_ZERO4 = b"\0\0\0\0"


@attrs.define(slots=True)  # not frozen: one per packet, and frozen init costs 3x
class Request:
    """
    A parsed DHCP request (BOOTREQUEST with a message type).

    @ivar chaddr: the full 16-byte chaddr field (echoed in the reply).
    @ivar mac: its first C{hlen} (at most 6) bytes.
    @ivar options: option code to raw value (the first occurrence).
    """

    messageType: int
    xid: int
    flags: int
    ciaddr: bytes
    giaddr: bytes
    chaddr: bytes
    mac: bytes
    options: dict[int, bytes]

    @property
    def requestedIP(self) -> bytes | None:
        value = self.options.get(OPT_REQUESTED_IP)
        return value if value is not None and len(value) == 4 else None


def parseOptions(data: bytes) -> dict[int, bytes] | None:
    """
    Parse a DHCP options field (after the magic cookie); C{None} when an
    option runs past the end. Options after END are ignored; repeated
    options keep their first value (RFC 3396 concatenation is not needed
    for anything a client sends us).
    """
    options: dict[int, bytes] = {}
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        if code == OPT_PAD:
            i += 1
            continue
        if code == OPT_END:
            return options
        if i + 1 >= n:
            return None
        length = data[i + 1]
        end = i + 2 + length
        if end > n:
            return None
        options.setdefault(code, data[i + 2 : end])
        i = end
    return options


def parseRequest(data: bytes, start: int = 0, end: int | None = None) -> Request | None:
    """
    Parse a BOOTP/DHCP request: the UDP payload, or C{data[start:end]}.
    """
    if end is None:
        end = len(data)
    if end - start < HEADER_LEN + 4 or data[start + HEADER_LEN : start + HEADER_LEN + 4] != MAGIC:
        return None
    op, htype, hlen, _, xid, _, flags, ciaddr, _, _, giaddr, chaddr = _HEADER.unpack_from(data, start)
    if op != BOOTREQUEST or htype != 1 or hlen != 6:
        return None
    options = parseOptions(data[start + HEADER_LEN + 4 : end])
    if options is None:
        return None
    mtype = options.get(OPT_MESSAGE_TYPE)
    if mtype is None or len(mtype) != 1:
        return None
    return Request(mtype[0], xid, flags, ciaddr, giaddr, chaddr, chaddr[:6], options)


def encodeOptions(options: Iterable[tuple[int, bytes]]) -> bytes:
    """
    Encode (code, value) pairs, followed by END.

    @raise ValueError: for a value longer than 255 bytes.
    """
    out = bytearray()
    for code, value in options:
        if len(value) > 255:
            raise ValueError(f"DHCP option {code} is {len(value)} bytes long")
        out += bytes((code, len(value)))
        out += value
    out.append(OPT_END)
    return bytes(out)


def replyTail(options: bytes) -> bytes:
    """
    What follows the variable 44-byte head of every reply: sname and file
    (zero), the magic cookie and the encoded options, padded to the BOOTP
    minimum of 300 bytes.
    """
    body = b"\0" * 192 + MAGIC + options
    return body + b"\0" * max(0, 300 - 44 - len(body))


def replyHead(request: Request, messageType: int, yiaddr: bytes, siaddr: bytes) -> bytes:
    """
    The first 44 bytes of a reply (everything up to and including chaddr).
    """
    return _HEADER.pack(
        BOOTREPLY,
        1,
        6,
        0,
        request.xid,
        0,
        request.flags,
        request.ciaddr if messageType != NAK else _ZERO4,
        yiaddr,
        siaddr,
        request.giaddr,
        request.chaddr,
    )


def buildReply(
    request: Request,
    messageType: int,
    yiaddr: bytes,
    siaddr: bytes,
    options: bytes,
) -> bytes:
    """
    A BOOTREPLY answering C{request}: xid, flags, ciaddr, giaddr and chaddr
    echoed; C{options} already encoded (see L{encodeOptions}) and starting
    with the message type.
    """
    header = _HEADER.pack(
        BOOTREPLY,
        1,
        6,
        0,
        request.xid,
        0,
        request.flags,
        request.ciaddr if messageType != NAK else _ZERO4,
        yiaddr,
        siaddr,
        request.giaddr,
        request.chaddr,
    )
    body = header + b"\0" * 192 + MAGIC + options
    if len(body) < 300:  # the BOOTP minimum: some clients drop shorter replies
        body += b"\0" * (300 - len(body))
    return body


def buildRequest(
    messageType: int,
    mac: bytes,
    xid: int,
    options: Iterable[tuple[int, bytes]] = (),
    ciaddr: bytes = _ZERO4,
    flags: int = 0,
) -> bytes:
    """
    A BOOTREQUEST (what a client sends). Used by tests and the benchmark.
    """
    header = _HEADER.pack(BOOTREQUEST, 1, 6, 0, xid, 0, flags, ciaddr, _ZERO4, _ZERO4, _ZERO4, mac + b"\0" * 10)
    opts = encodeOptions([(OPT_MESSAGE_TYPE, bytes((messageType,))), *options])
    return header + b"\0" * 192 + MAGIC + opts


@attrs.frozen
class Reply:
    """
    A parsed BOOTREPLY (for tests and the benchmark client).
    """

    messageType: int
    xid: int
    flags: int
    yiaddr: bytes
    siaddr: bytes
    chaddr: bytes
    options: dict[int, bytes]


def parseReply(data: bytes) -> Reply | None:
    """
    Parse a BOOTREPLY; C{None} when it is not one.
    """
    if len(data) < HEADER_LEN + 4 or data[HEADER_LEN : HEADER_LEN + 4] != MAGIC:
        return None
    op, _, _, _, xid, _, flags, _, yiaddr, siaddr, _, chaddr = _HEADER.unpack_from(data)
    if op != BOOTREPLY:
        return None
    options = parseOptions(data[HEADER_LEN + 4 :])
    if options is None or len(options.get(OPT_MESSAGE_TYPE, b"")) != 1:
        return None
    return Reply(options[OPT_MESSAGE_TYPE][0], xid, flags, yiaddr, siaddr, chaddr, options)
