"""
Tests for the C{vncproxy} plugin (plugins/vncproxy.py).
"""

from pathlib import Path

from twisted.internet.testing import MemoryReactorClock
from twisted.plugin import IPlugin, getPlugins
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

import plugins
from plugins.vncproxy import vncproxy
from synnefo_twisted.config import ConfigError, loadConfig
from synnefo_twisted.context import NodeContext
from synnefo_twisted.interfaces import IHealthReporter, ISynnefoPlugin
from synnefo_twisted.metrics import MetricsRegistry
from vncproxy.service import VNCProxyService


class PluginTests(SynchronousTestCase):
    def test_interface(self) -> None:
        """
        The plugin object provides IPlugin and ISynnefoPlugin and is found by getPlugins.
        """
        self.assertTrue(verifyObject(ISynnefoPlugin, vncproxy))
        self.assertTrue(verifyObject(IPlugin, vncproxy))
        self.assertIn("vncproxy", [p.name for p in getPlugins(ISynnefoPlugin, plugins)])
        self.assertEqual(
            (vncproxy.roles, vncproxy.startOrder, vncproxy.section), (frozenset({"apiserver"}), 50, "vncproxy")
        )

    def config(self, text: str) -> NodeContext:
        path = self.mktemp()
        Path(path).write_text(text)
        cfg = loadConfig(path, {"vncproxy": vncproxy.settings}, environ={})
        return NodeContext(
            reactor=MemoryReactorClock(),
            settings=cfg.section("vncproxy"),
            metrics=MetricsRegistry(),
            stateDir=Path("state"),
        )

    def test_defaults(self) -> None:
        """
        The section has the ARCHITECTURE §8 keys and defaults.
        """
        node = self.config("")
        s = node.settings
        self.assertEqual(s["control_listen"], "tcp:24999:interface=127.0.0.1")
        self.assertEqual(s["proxy_listen_address"], "127.0.0.1")
        self.assertEqual(s["port_range"], [25000, 30000])
        self.assertEqual(s["users_file"], "/var/lib/vncauthproxy/users")
        self.assertEqual(s["connect_timeout"], 30)
        self.assertEqual((s["cert_file"], s["key_file"]), ("", ""))

    def test_makeService(self) -> None:
        """
        makeService builds the proxy service from the section, listening when started.
        """
        node = self.config(
            '[vncproxy]\ncontrol_listen = "tcp:24998:interface=127.0.0.1"\nport_range = [26000, 26010]\nconnect_timeout = 5\n'
        )
        service = vncproxy.makeService(node)
        assert isinstance(service, VNCProxyService)
        self.assertTrue(verifyObject(IHealthReporter, service))
        self.assertEqual((service.proxy.ports.low, service.proxy.ports.high), (26000, 26010))
        self.assertEqual(service.proxy.config.connectTimeout, 5.0)
        self.successResultOf(service.startService())
        self.assertEqual(node.reactor.tcpServers[0][0], 24998)
        self.successResultOf(service.stopService())

    def test_relativeUsersFile(self) -> None:
        """
        A relative users_file is taken under the node's state directory.
        """
        node = self.config('[vncproxy]\nusers_file = "vncproxy-users"\n')
        service = vncproxy.makeService(node)
        assert isinstance(service, VNCProxyService)
        self.assertEqual(service.proxy.users.path, str(Path("state") / "vncproxy-users"))
        node = self.config('[vncproxy]\nusers_file = "/etc/synnefo/vnc-users"\n')
        service = vncproxy.makeService(node)
        assert isinstance(service, VNCProxyService)
        self.assertEqual(service.proxy.users.path, "/etc/synnefo/vnc-users")

    def test_badValues(self) -> None:
        """
        A bad port range or endpoint is a configuration error naming the key.
        """
        e = self.assertRaises(ConfigError, self.config, "[vncproxy]\nport_range = [30000, 25000]\n")
        self.assertIn("vncproxy.port_range", str(e))
        self.assertRaises(ConfigError, self.config, '[vncproxy]\ncontrol_listen = "24999"\n')

    def test_certWithoutKey(self) -> None:
        """
        cert_file without key_file is refused at start-up.
        """
        node = self.config('[vncproxy]\ncert_file = "/tmp/cert.pem"\n')
        self.assertRaises(ValueError, vncproxy.makeService, node)
