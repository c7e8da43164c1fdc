# -*- test-case-name: tests.dhcp.test_plugin -*-
"""
The C{dhcp} plugin (role C{ganeti-node}): the NFQUEUE DHCPv4 / RA / NS /
DHCPv6 responder. See L{dhcp} and C{dhcp/README.md}.
"""

from __future__ import annotations

import ipaddress

import attrs
from twisted.application.service import IService
from twisted.plugin import IPlugin
from zope.interface import implementer

from synnefo_twisted.config import Setting, checkNonNegative, checkPositive
from synnefo_twisted.context import NodeContext
from synnefo_twisted.interfaces import ISynnefoPlugin


def _queue(value: int) -> str | None:
    return None if -1 <= value <= 65535 else "must be a queue number 0..65535, or -1 to disable"


def _addresses(value: list[str]) -> str | None:
    for text in value:
        try:
            ipaddress.ip_address(text)
        except ValueError:
            return f"{text!r} is not an IP address"
    return None


def _ipv4OrEmpty(value: str) -> str | None:
    if not value:
        return None
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return f"{value!r} is not an IPv4 address"
    return None


def _domain(value: str) -> str | None:
    if not value:
        return None
    from dhcp.ndp import encodeDomains

    try:
        encodeDomains([value])
    except ValueError:
        return f"{value!r} is not a DNS domain"
    return None


SETTINGS: tuple[Setting, ...] = (
    Setting("bindings_dir", "str", "/var/lib/nfdhcpd", "binding files, one per tap (written by snf-dhcp-ifup)"),
    Setting("dhcp_queue", "int", 42, "NFQUEUE for DHCPv4 (udp dport 67); -1 disables", check=_queue),
    Setting("rs_queue", "int", 43, "NFQUEUE for router solicitations; -1 disables", check=_queue),
    Setting("ns_queue", "int", 44, "NFQUEUE for neighbour solicitations; -1 disables", check=_queue),
    Setting("dhcpv6_queue", "int", 45, "NFQUEUE for DHCPv6 (udp dport 547); -1 disables", check=_queue),
    Setting(
        "nameservers",
        "list[str]",
        [],
        "DNS servers: IPv4 ones in DHCP option 6, IPv6 ones in RA RDNSS and DHCPv6",
        check=_addresses,
    ),
    Setting(
        "domain", "str", "", "DNS domain / search list; empty: the part of HOSTNAME after the first dot", check=_domain
    ),
    Setting("lease_lifetime", "int", 604800, "DHCP lease time, seconds", check=checkPositive),
    Setting("lease_renewal", "int", 600, "DHCP renewal time T1, seconds", check=checkPositive),
    Setting(
        "server_ip", "str", "", "DHCP server identifier and source; empty: the binding's GATEWAY", check=_ipv4OrEmpty
    ),
    Setting("ra_period", "int", 300, "seconds between unsolicited RAs (0 disables them)", check=checkNonNegative),
    Setting(
        "ipv6_mode",
        "str",
        "slaac",
        "slaac, or slaac+dhcpv6 (RA O flag + DHCPv6 info)",
        choices=("slaac", "slaac+dhcpv6"),
    ),
    Setting(
        "batch", "int", 64, "packets read per queue per reactor turn (fairness between queues)", check=checkPositive
    ),
    Setting(
        "queue_maxlen", "int", 4096, "kernel queue length; beyond it packets pass (fail-open)", check=checkPositive
    ),
    Setting("log_packets", "bool", True, "one log line per reply (and a debug line per passed packet)"),
    Setting(
        "rescan_period",
        "int",
        60,
        "seconds between full rescans of bindings_dir (0: inotify only)",
        check=checkNonNegative,
    ),
)


@implementer(IPlugin, ISynnefoPlugin)
@attrs.frozen
class DHCPPlugin:
    name: str = "dhcp"
    roles: frozenset[str] = frozenset({"ganeti-node"})
    description: str = "NFQUEUE DHCPv4 / RA / NS proxy / DHCPv6 responder for the VMs of this Ganeti node"
    requires: frozenset[str] = frozenset()
    startOrder: int = 70
    section: str | None = "dhcp"
    settings: tuple[Setting, ...] = SETTINGS

    def makeService(self, node: object) -> IService:
        from dhcp.service import makeDHCPService

        assert isinstance(node, NodeContext)
        svc = makeDHCPService(node.reactor, node.settings, node.metrics)
        svc.setName(self.name)
        return svc


dhcp = DHCPPlugin()
