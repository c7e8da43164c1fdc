"""
Tests for the C{dhcp} plugin object and its configuration section.
"""

from __future__ import annotations

from pathlib import Path

from twisted.internet.testing import MemoryReactorClock
from twisted.plugin import IPlugin
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from dhcp.service import DHCPService
from plugins.dhcp import dhcp
from synnefo_twisted.config import ConfigError, loadConfig
from synnefo_twisted.context import NodeContext
from synnefo_twisted.interfaces import ISynnefoPlugin
from synnefo_twisted.metrics import MetricsRegistry


class PluginTests(SynchronousTestCase):
    def test_interfaces(self) -> None:
        """
        The plugin provides IPlugin and ISynnefoPlugin, for role
        ganeti-node, starting at 70 with section [dhcp].
        """
        self.assertTrue(verifyObject(IPlugin, dhcp))
        self.assertTrue(verifyObject(ISynnefoPlugin, dhcp))
        self.assertEqual(
            (dhcp.name, dhcp.roles, dhcp.startOrder, dhcp.section), ("dhcp", frozenset({"ganeti-node"}), 70, "dhcp")
        )

    def test_defaults(self) -> None:
        """
        Without a config file the section has the documented defaults
        (queues 42..45, /var/lib/nfdhcpd, slaac).
        """
        section = loadConfig(None, {"dhcp": dhcp.settings}, environ={}).section("dhcp")
        self.assertEqual(
            [section[k] for k in ("bindings_dir", "dhcp_queue", "rs_queue", "ns_queue", "dhcpv6_queue", "ipv6_mode")],
            ["/var/lib/nfdhcpd", 42, 43, 44, 45, "slaac"],
        )

    def test_validation(self) -> None:
        """
        Bad name servers, queue numbers, modes and server addresses are
        configuration errors naming the key.
        """
        for line, key in (
            ('nameservers = ["8.8.8.x"]', "dhcp.nameservers"),
            ("dhcp_queue = 70000", "dhcp.dhcp_queue"),
            ('ipv6_mode = "dhcpv6"', "dhcp.ipv6_mode"),
            ('server_ip = "2001:db8::1"', "dhcp.server_ip"),
            ('domain = "a..b"', "dhcp.domain"),
        ):
            path = Path(self.mktemp())
            path.write_text(f"[dhcp]\n{line}\n")
            error = self.assertRaises(ConfigError, loadConfig, path, {"dhcp": dhcp.settings}, {})
            self.assertIn(key, str(error))

    def test_makeService(self) -> None:
        """
        makeService builds a named, not yet started DHCPService from the
        node's section, without touching the kernel.
        """
        section = loadConfig(None, {"dhcp": dhcp.settings}, environ={}).section("dhcp")
        node = NodeContext(
            reactor=MemoryReactorClock(), settings=section, metrics=MetricsRegistry(), stateDir=Path(".")
        )
        svc = dhcp.makeService(node)
        self.assertIsInstance(svc, DHCPService)
        self.assertEqual(svc.name, "dhcp")
        self.assertFalse(svc.running)
