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
from synnefo_twisted.db.repositories import FlavorRepository, ImageRepository, UserRepository
from synnefo_twisted.interfaces import IConsoleBroker, IHealthReporter, ISynnefoPlugin
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
        second = await seedDemo(database)
        self.assertEqual((second.token, second.flavors, second.images), (None, 0, 0))
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
