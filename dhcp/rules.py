# -*- test-case-name: tests.dhcp.test_rules -*-
"""
The netfilter rule set that feeds the responder, for routed taps (the tap
is the input device) and bridged taps (the tap is the bridge port:
C{-m physdev}, which needs C{br_netfilter} and
C{net.bridge.bridge-nf-call-iptables=1} / C{-ip6tables=1}).

C{--queue-bypass} makes packets pass while no responder is bound to a
queue (a stopped or restarting responder then blocks nothing: the VM
simply gets no answer until it retries).

Print it with C{python -m dhcp.rules [--tap-pattern tap+] [--queues
42,43,44,45] 4|6} and load it with C{iptables-restore --noflush} /
C{ip6tables-restore --noflush}.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def ruleLines(
    family: int,
    dhcpQueue: int = 42,
    rsQueue: int = 43,
    nsQueue: int = 44,
    dhcpv6Queue: int = 45,
    tapPattern: str = "tap+",
    modes: Sequence[str] = ("routed", "bridged"),
) -> list[str]:
    """
    The C{-A PREROUTING ...} rules of the C{mangle} table for one family
    (4 or 6); a negative queue number leaves its rules out.
    """
    matches = []
    if "routed" in modes:
        matches.append(f"-i {tapPattern}")
    if "bridged" in modes:
        matches.append(f"-m physdev --physdev-in {tapPattern}")
    if family == 4:
        selectors = [("-p udp -m udp --dport 67", dhcpQueue)]
    elif family == 6:
        selectors = [
            ("-p ipv6-icmp -m icmp6 --icmpv6-type 133", rsQueue),
            ("-p ipv6-icmp -m icmp6 --icmpv6-type 135", nsQueue),
            ("-p udp -m udp --dport 547", dhcpv6Queue),
        ]
    else:
        raise ValueError(f"family must be 4 or 6, not {family}")
    return [
        f"-A PREROUTING {match} {selector} -j NFQUEUE --queue-num {queue} --queue-bypass"
        for selector, queue in selectors
        if queue >= 0
        for match in matches
    ]


def restoreText(family: int, **kwargs: object) -> str:
    """
    The rules in C{iptables-restore} format (use C{--noflush}).
    """
    lines = ruleLines(family, **kwargs)  # type: ignore[arg-type]
    return "*mangle\n" + "".join(line + "\n" for line in lines) + "COMMIT\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dhcp.rules", description=__doc__.split("\n\n")[0])
    parser.add_argument("family", type=int, choices=(4, 6))
    parser.add_argument("--queues", default="42,43,44,45", help="dhcp,rs,ns,dhcpv6 queue numbers")
    parser.add_argument("--tap-pattern", default="tap+")
    parser.add_argument("--modes", default="routed,bridged")
    args = parser.parse_args(argv)
    q = [int(x) for x in args.queues.split(",")]
    if len(q) != 4:
        parser.error("--queues needs four numbers")
    sys.stdout.write(
        restoreText(
            args.family,
            dhcpQueue=q[0],
            rsQueue=q[1],
            nsQueue=q[2],
            dhcpv6Queue=q[3],
            tapPattern=args.tap_pattern,
            modes=args.modes.split(","),
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
