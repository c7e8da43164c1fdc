# -*- test-case-name: tests.dhcp.test_dhcpv6 -*-
"""
Stateless DHCPv6 (RFC 8415 §6.1): Information-Request in, Reply out, with
DNS recursive name servers and the domain search list (RFC 3646).

L{parseMessage} returns C{None} for malformed input; it never raises.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import attrs

from dhcp.ndp import encodeDomains

SOLICIT = 1
REQUEST = 3
REPLY = 7
INFORMATION_REQUEST = 11

OPT_CLIENTID = 1
OPT_SERVERID = 2
OPT_IA_NA = 3
OPT_DNS_SERVERS = 23
OPT_DOMAIN_LIST = 24

DUID_LLT = 1
HWTYPE_ETHERNET = 1

CLIENT_PORT = 546
SERVER_PORT = 547


@attrs.frozen
class Message:
    """
    A DHCPv6 client/server message: type, 24-bit transaction id, options
    (code to value, first occurrence).
    """

    messageType: int
    transactionId: int
    options: dict[int, bytes]


def parseMessage(data: bytes) -> Message | None:
    """
    Parse a DHCPv6 message (the UDP payload); relay messages and anything
    malformed give C{None}.
    """
    if len(data) < 4 or data[0] in (12, 13):
        return None
    options: dict[int, bytes] = {}
    i, n = 4, len(data)
    while i < n:
        if i + 4 > n:
            return None
        code, length = struct.unpack_from("!HH", data, i)
        end = i + 4 + length
        if end > n:
            return None
        options.setdefault(code, data[i + 4 : end])
        i = end
    return Message(data[0], int.from_bytes(data[1:4], "big"), options)


def encodeOption(code: int, value: bytes) -> bytes:
    return struct.pack("!HH", code, len(value)) + value


def duidLLT(mac: bytes, time: int = 0) -> bytes:
    """
    A DUID-LLT for an Ethernet address (RFC 8415 §11.2); the time is fixed
    so that the server identifier does not change across restarts.
    """
    return struct.pack("!HHI", DUID_LLT, HWTYPE_ETHERNET, time) + mac


def buildReply(
    request: Message,
    serverId: bytes,
    dnsServers: Sequence[bytes] = (),
    domains: Sequence[str] = (),
) -> bytes:
    """
    A Reply to C{request}: same transaction id, the client identifier
    echoed, our server identifier, DNS servers and search list.
    """
    out = bytes((REPLY,)) + request.transactionId.to_bytes(3, "big")
    client = request.options.get(OPT_CLIENTID)
    if client is not None:
        out += encodeOption(OPT_CLIENTID, client)
    out += encodeOption(OPT_SERVERID, serverId)
    if dnsServers:
        out += encodeOption(OPT_DNS_SERVERS, b"".join(dnsServers))
    if domains:
        out += encodeOption(OPT_DOMAIN_LIST, encodeDomains(domains))
    return out


def buildMessage(messageType: int, transactionId: int, options: Sequence[tuple[int, bytes]] = ()) -> bytes:
    """
    A client message (for tests and fuzzing).
    """
    return bytes((messageType,)) + transactionId.to_bytes(3, "big") + b"".join(encodeOption(c, v) for c, v in options)
