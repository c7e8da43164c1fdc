"""
Tests for L{dhcp.rules}: the NFQUEUE rule set.
"""

from __future__ import annotations

import io
from contextlib import redirect_stdout

from twisted.trial.unittest import SynchronousTestCase

from dhcp import rules


class RulesTests(SynchronousTestCase):
    def test_ipv4(self) -> None:
        """
        DHCPv4 goes to the dhcp queue for routed (-i) and bridged
        (physdev) taps, with --queue-bypass.
        """
        self.assertEqual(
            rules.ruleLines(4),
            [
                "-A PREROUTING -i tap+ -p udp -m udp --dport 67 -j NFQUEUE --queue-num 42 --queue-bypass",
                "-A PREROUTING -m physdev --physdev-in tap+ -p udp -m udp --dport 67 -j NFQUEUE --queue-num 42 --queue-bypass",
            ],
        )

    def test_ipv6(self) -> None:
        """
        RS, NS and DHCPv6 go to their queues; a disabled queue has no rule;
        one mode can be chosen.
        """
        lines = rules.ruleLines(6, rsQueue=143, nsQueue=-1, dhcpv6Queue=145, modes=("routed",))
        self.assertEqual(
            lines,
            [
                "-A PREROUTING -i tap+ -p ipv6-icmp -m icmp6 --icmpv6-type 133 -j NFQUEUE --queue-num 143 --queue-bypass",
                "-A PREROUTING -i tap+ -p udp -m udp --dport 547 -j NFQUEUE --queue-num 145 --queue-bypass",
            ],
        )
        self.assertRaises(ValueError, rules.ruleLines, 5)

    def test_main(self) -> None:
        """
        The command prints iptables-restore input for the given queues.
        """
        out = io.StringIO()
        with redirect_stdout(out):
            self.assertEqual(rules.main(["4", "--queues", "1,2,3,4", "--tap-pattern", "vif+"]), 0)
        text = out.getvalue()
        self.assertTrue(text.startswith("*mangle\n") and text.endswith("COMMIT\n"))
        self.assertIn("-i vif+ -p udp -m udp --dport 67 -j NFQUEUE --queue-num 1 --queue-bypass", text)
