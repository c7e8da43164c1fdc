"""
Tests for the C{api} plugin (L{plugins.api}), L{web.service} and L{web.seed}.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from twisted.internet import reactor
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import ILogObserver, Logger
from twisted.plugin import IPlugin, getPlugins
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

import plugins
from plugins.api import api
from synnefo_twisted.backends import BackendRegistry
from synnefo_twisted.config import ConfigError, loadConfig
from synnefo_twisted.context import NodeContext
from synnefo_twisted.db.manage import AdminQueries
from synnefo_twisted.db.pools import ResourcePoolRepository
from synnefo_twisted.db.repositories import FlavorRepository, ImageRepository, NetworkRepository, UserRepository
from synnefo_twisted.interfaces import IConsoleBroker, IHealthReporter, ISynnefoPlugin
from synnefo_twisted.logic import pools as poollogic
from synnefo_twisted.logic.networks import allocateServerPortIP
from synnefo_twisted.metrics import MetricsRegistry
from synnefo_twisted.testing import memoryDatabase
from web.console import SecretFileBroker
from web.seed import DEMO_EMAIL, DEMO_IMAGE_ID, seedDemo
from web.service import APIService


class PluginTests(TestCase):
    def node(self, text: str, database: Any = None, backends: Any = None) -> NodeContext:
        path = self.mktemp()
        Path(path).write_text(text)
        cfg = loadConfig(path, {"api": api.settings}, environ={})
        return NodeContext(
            reactor=MemoryReactorClock(),
            settings=cfg.section("api"),
            metrics=MetricsRegistry(),
            stateDir=Path("state"),
            database=database,
            backends=backends,
        )

    def test_interfaces(self) -> None:
        """
        The plugin provides ISynnefoPlugin and IPlugin and is discovered, with ARCHITECTURE's name, roles and order.
        """
        self.assertTrue(verifyObject(ISynnefoPlugin, api))
        self.assertTrue(verifyObject(IPlugin, api))
        self.assertIn("api", [p.name for p in getPlugins(ISynnefoPlugin, plugins)])
        self.assertEqual((api.roles, api.startOrder, api.section), (frozenset({"apiserver"}), 60, "api"))
        self.assertEqual(api.requires, frozenset({"database", "ganeti"}))

    def test_defaults(self) -> None:
        """
        The section has the ARCHITECTURE §8 keys and defaults; a base_url that is not http(s) is refused.
        """
        s = self.node("").settings
        self.assertEqual(s["listen"], "tcp:8080:interface=127.0.0.1")
        self.assertEqual(s["base_url"], "http://127.0.0.1:8080")
        self.assertRaises(ConfigError, self.node, '[api]\nbase_url = "ftp://x"\n')

    def test_imageFileRoots(self) -> None:
        """
        image_file_roots defaults to snf-image's directory, must hold absolute paths, and reaches the image registry.
        """
        self.assertEqual(self.node("").settings["image_file_roots"], ["/var/lib/snf-image"])
        self.assertRaises(ConfigError, self.node, '[api]\nimage_file_roots = ["images"]\n')
        node = self.node('[api]\nimage_file_roots = ["/srv/images", "/data"]\n')
        service = api.makeService(node)
        assert isinstance(service, APIService)
        self.assertEqual(service.application.imageRegistry.fileRoots, ("/srv/images", "/data"))

    def test_networkSettings(self) -> None:
        """
        The network settings have Synnefo's defaults, are checked, and reach the network API.
        """
        s = self.node("").settings
        self.assertEqual(
            (s["network_types"], s["default_bridge"], s["mac_filtered_bridge"], s["max_cidr_block"]),
            (["MAC_FILTERED"], "br0", "prv0", 22),
        )
        for bad in (
            'network_types = ["BRIDGED"]',
            'default_mac_prefix = "ab:00:0"',
            'mac_prefix_pool_base = "aa:00"',
            'public_network_cidr = "10.0.0.0/8"',
            'public_network_cidr = "10.0.0.1/24"',
            "max_cidr_block = 30",
        ):
            self.assertRaises(ConfigError, self.node, f"[api]\n{bad}\n")
        service = api.makeService(self.node('[api]\nnetwork_types = ["MAC_FILTERED", "CUSTOM"]\nmax_cidr_block = 16\n'))
        assert isinstance(service, APIService)
        defaults = service.application.network._defaults
        self.assertEqual((defaults.enabledFlavors, defaults.maxCidrBlock), (frozenset({"MAC_FILTERED", "CUSTOM"}), 16))

    async def test_startEnsuresPools(self) -> None:
        """
        Starting creates the MAC-prefix and bridge pools from the settings (existing ones are kept) and seeds a
        public network on public_network_cidr.
        """
        database = await memoryDatabase(reactor)
        self.addCleanup(database.stopService)
        node = self.node(
            '[api]\nmac_prefix_pool_size = 16\nbridge_pool_base = "vlan"\nbridge_pool_size = 4\n'
            'public_network_cidr = "198.51.100.0/24"\n',
            database,
        )
        service = api.makeService(node)
        assert isinstance(service, APIService)
        await service.startService()
        await service.stopService()
        pools = {p.kind: (p.base, p.size) for p in await AdminQueries(database).resourcePools()}
        self.assertEqual(pools, {poollogic.MAC_PREFIX: ("aa:00:0", 16), poollogic.BRIDGE: ("vlan", 4)})
        [network] = await NetworkRepository(database).list()
        self.assertEqual((network.public, network.floating_ip_pool, network.state), (True, True, "ACTIVE"))
        [subnet] = await AdminQueries(database).subnets()
        self.assertEqual((subnet.cidr, subnet.gateway, subnet.dhcp), ("198.51.100.0/24", "198.51.100.1", True))
        # a second start keeps pools and network
        service = api.makeService(self.node("[api]\nmac_prefix_pool_size = 64\n", database))
        assert isinstance(service, APIService)
        await service.startService()
        await service.stopService()
        macPool = await ResourcePoolRepository(database).get(poollogic.MAC_PREFIX)
        assert macPool is not None
        self.assertEqual(macPool.size, 16)
        self.assertEqual(len(await NetworkRepository(database).list()), 1)

    async def test_startSeedsAndListens(self) -> None:
        """
        Starting seeds the demo data, logs the demo token and listens on the endpoint; stopping stops listening.
        """
        database = await memoryDatabase(reactor)
        self.addCleanup(database.stopService)
        node = self.node('[api]\nlisten = "tcp:8123:interface=127.0.0.1"\n', database)
        service = api.makeService(node)
        assert isinstance(service, APIService)
        events: list[dict[str, Any]] = []
        service.log = Logger(observer=cast(ILogObserver, events.append))
        self.assertTrue(verifyObject(IHealthReporter, service))
        self.assertFalse(service.health().ok)
        await service.startService()
        self.assertTrue(service.health().ok)
        self.assertEqual(node.reactor.tcpServers[0][0], 8123)
        tokens = [e["token"] for e in events if "token" in e]
        self.assertEqual(len(tokens), 1)
        user = await UserRepository(database).byToken(tokens[0], service.application.authenticator.now())
        assert user is not None
        self.assertEqual(user.email, DEMO_EMAIL)
        await service.stopService()
        self.assertFalse(service.health().ok)

    async def test_serversMounted(self) -> None:
        """
        With the node's backend registry the servers API is mounted, its console broker reads the control secret
        from a file under the state directory, and config_url points at the VMAPI under base_url.
        """
        database = await memoryDatabase(reactor)
        self.addCleanup(database.stopService)
        node = self.node(
            '[api]\nbase_url = "https://api.example.org"\nconsole_user = "vnc"\n',
            database,
            BackendRegistry(database, "snf-", MemoryReactorClock()),
        )
        service = api.makeService(node)
        assert isinstance(service, APIService)
        routes = {(r.method, r.path) for r in service.application.router.routes}
        self.assertIn(("POST", "/compute/v2.0/servers"), routes)
        self.assertIn(("GET", "/vmapi/v1.0/server-params/<config_key>"), routes)
        servers = next(
            r for r in service.application.router.routes if r.path == "/compute/v2.0/servers" and r.method == "POST"
        )
        self.assertEqual(servers.tag, "servers")
        broker = service.application.servers.broker
        assert isinstance(broker, SecretFileBroker)
        self.assertTrue(verifyObject(IConsoleBroker, broker))
        self.assertEqual((broker.user, broker.secretFile), ("vnc", Path("state") / "vncproxy-console.secret"))
        options = service.application.servers.options
        self.assertEqual(options.vmapiURL, "https://api.example.org/vmapi/v1.0/server-params")
        # new servers' ports take addresses from the network pools and wait for their networks
        self.assertIs(options.ipAllocator, allocateServerPortIP)
        self.assertIsNotNone(options.activateNetwork)

    async def test_serverNetworkSettings(self) -> None:
        """
        default_server_networks and forced_server_networks default to [] (as Synnefo's), refuse a bad item naming
        it, and reach the server options parsed.
        """
        s = self.node("").settings
        self.assertEqual((s["default_server_networks"], s["forced_server_networks"]), ([], []))
        for key in ("default_server_networks", "forced_server_networks"):
            for bad in ('"public"', '"5|"', '"SNF:ANY_PUBLIC_IPV5"', '"snf:any_public"'):
                with self.assertRaises(ConfigError) as raised:
                    self.node(f'[api]\n{key} = ["1", {bad}]\n')
                self.assertIn(key, str(raised.exception))
                self.assertIn(bad.strip('"'), str(raised.exception))
            self.assertRaises(ConfigError, self.node, f'[api]\n{key} = "SNF:ANY_PUBLIC"\n')
        database = await memoryDatabase(reactor)
        self.addCleanup(database.stopService)
        node = self.node(
            '[api]\ndefault_server_networks = ["5|SNF:ANY_PUBLIC_IPV4", "SNF:ANY_PUBLIC_IPV6"]\n'
            'forced_server_networks = ["7"]\n',
            database,
            BackendRegistry(database, "snf-", MemoryReactorClock()),
        )
        service = api.makeService(node)
        assert isinstance(service, APIService) and service.application.servers is not None
        options = service.application.servers.options
        self.assertEqual(
            [c.members for c in options.defaultNetworks], [(5, "SNF:ANY_PUBLIC_IPV4"), ("SNF:ANY_PUBLIC_IPV6",)]
        )
        self.assertEqual([c.members for c in options.forcedNetworks], [(7,)])

    async def test_serversNeedBackends(self) -> None:
        """
        Without a backend registry only the VMAPI is mounted.
        """
        database = await memoryDatabase(reactor)
        self.addCleanup(database.stopService)
        service = api.makeService(self.node("", database))
        assert isinstance(service, APIService)
        paths = {r.path for r in service.application.router.routes}
        self.assertNotIn("/compute/v2.0/servers", paths)
        self.assertIn("/vmapi/v1.0/server-params/<config_key>", paths)
        self.assertIsNone(service.application.servers)


class SeedTests(TestCase):
    async def test_idempotent(self) -> None:
        """
        Seeding twice creates the flavors, image and demo user once; a second run adds nothing.
        """
        database = await memoryDatabase(reactor)
        self.addCleanup(database.stopService)
        first = await seedDemo(database)
        self.assertIsNotNone(first.token)
        self.assertEqual((first.flavors, first.images), (3, 1))
        self.assertIsNotNone(first.network)
        second = await seedDemo(database)
        self.assertEqual((second.token, second.flavors, second.images, second.network), (None, 0, 0, None))
        [network] = await NetworkRepository(database).list()
        self.assertEqual(
            (network.id, network.name, network.flavor, network.public), (first.network, "public", "CUSTOM", True)
        )
        self.assertEqual(len(await FlavorRepository(database).list()), 3)
        self.assertIsNotNone(await ImageRepository(database).get(DEMO_IMAGE_ID))
        self.assertEqual([u.email for u in await UserRepository(database).list()], [DEMO_EMAIL])

    async def test_noDemoUserWhenUsersExist(self) -> None:
        """
        With a user already there, no demo user is created.
        """
        database = await memoryDatabase(reactor)
        self.addCleanup(database.stopService)
        await UserRepository(database).create("someone@example.org")
        self.assertIsNone((await seedDemo(database)).token)
        self.assertEqual(len(await UserRepository(database).list()), 1)
