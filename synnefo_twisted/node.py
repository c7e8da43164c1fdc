# -*- test-case-name: tests.test_node -*-
"""
How a node is put together: the admin listener, then the shared resources
the enabled plugins require (database, bus, Ganeti backend registry), each
started before the next, then the plugins in their start order. Stopping
runs the same list backwards.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, inlineCallbacks
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger
from twisted.python.failure import Failure

from synnefo_twisted.admin import AdminApp, AdminSite, ListenerService
from synnefo_twisted.config import Config, Settings
from synnefo_twisted.context import NodeContext
from synnefo_twisted.interfaces import IHealthReporter
from synnefo_twisted.metrics import MetricsRegistry
from synnefo_twisted.service import ChildStartFailed, OrderedMultiService

log = Logger()

RESOURCES = ("database", "bus", "ganeti")


class NodeService(OrderedMultiService):
    """
    The root service of a node.

    @ivar plugins: the plugins this node runs, in start order.
    @ivar database: the L{IDatabase}, or None when no plugin needs one.
    @ivar bus: the L{IMessageBus}, or None.
    @ivar backends: the L{IBackendRegistry}, or None.
    """

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        config: Config,
        plugins: Sequence[Any],
        *,
        databaseFactory: Callable[..., Any] | None = None,
        busFactory: Callable[..., Any] | None = None,
        backendsFactory: Callable[..., Any] | None = None,
        onFatal: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__()
        self.reactor = reactor
        self.config = config
        self.plugins = list(plugins)
        self.metrics = MetricsRegistry()
        self._onFatal = onFatal
        nodeSettings = config.section("node")
        self.roles = frozenset(nodeSettings["roles"])
        self.stateDir = Path(nodeSettings["state_dir"])
        self.stateDir.mkdir(parents=True, exist_ok=True)

        required: set[str] = set()
        for plugin in self.plugins:
            required |= set(plugin.requires)
        if "ganeti" in required:
            required.add("database")
        self.required = frozenset(required)

        self._dependencies: list[IHealthReporter] = []
        admin = AdminApp(
            dependencies=lambda: list(self._dependencies),
            plugins=lambda: [c for c in self.childStates() if c.healthName in self._pluginNames],
            metrics=self.metrics,
            roles=self.roles,
        )
        self._pluginNames = {p.name for p in self.plugins}
        self.admin = admin
        self.addChild(
            "admin",
            ListenerService(
                "admin", serverFromString(reactor, nodeSettings["admin_listen"]), AdminSite(admin.app.resource())
            ),
        )

        self.database: Any = None
        self.bus: Any = None
        self.backends: Any = None
        if "database" in self.required:
            dbSettings = config.section("database")
            if databaseFactory is None:
                from synnefo_twisted.db import openDatabase

                databaseFactory = openDatabase
            self.database = databaseFactory(
                dbSettings["url"], reactor, poolSize=dbSettings["pool_size"], metrics=self.metrics
            )
            self._dependencies.append(self.database)
            self.addChild("database", _DatabaseStarter(self.database, dbSettings))
        if "bus" in self.required:
            busSettings = config.section("bus")
            if busFactory is None:
                from synnefo_twisted.bus import openBus

                busFactory = openBus
            self.bus = busFactory(
                busSettings["url"],
                reactor,
                spec=busSettings["spec"],
                heartbeat=busSettings["heartbeat"],
                metrics=self.metrics,
            )
            self._dependencies.append(self.bus)
            self.addChild("bus", self.bus)
        if "ganeti" in self.required:
            if backendsFactory is None:
                from synnefo_twisted.backends import BackendRegistry

                backendsFactory = BackendRegistry
            self.backends = backendsFactory(self.database, prefix=config.section("ganeti")["prefix"], reactor=reactor)

        for plugin in self.plugins:
            self.addChild(plugin.name, plugin.makeService(self.contextFor(plugin)))

    def contextFor(self, plugin: Any) -> NodeContext:
        """
        What C{plugin.makeService} receives: its own section and the
        resources it declared.
        """
        if plugin.section is not None:
            settings = self.config.section(plugin.section)
        else:
            settings = Settings(plugin.name, {}, ())
        wants = set(plugin.requires)
        return NodeContext(
            reactor=self.reactor,
            settings=settings,
            metrics=self.metrics,
            stateDir=self.stateDir,
            roles=self.roles,
            plugins=frozenset(self._pluginNames),
            database=self.database if "database" in wants or "ganeti" in wants else None,
            bus=self.bus if "bus" in wants else None,
            backends=self.backends if "ganeti" in wants else None,
        )

    def startService(self) -> Deferred[None]:
        self.log.info(
            "node starting: roles {roles}, plugins {plugins}, resources {resources}",
            roles=sorted(self.roles),
            plugins=[p.name for p in self.plugins],
            resources=sorted(self.required & {"database", "bus"}),
        )
        d = super().startService()
        d.addCallbacks(self._started, self._startFailed)
        return d

    def _started(self, _: None) -> None:
        self.log.info("node started: {count} plugins running", count=len(self.plugins))

    def _startFailed(self, failure: Failure) -> Failure | None:
        if failure.check(CancelledError):
            self.log.info("node stopped before it finished starting")
            return None
        if failure.check(ChildStartFailed):
            error = failure.value
            assert isinstance(error, ChildStartFailed)
            self.log.critical(
                "{child} failed to start, stopping the node: {reason}",
                child=error.child,
                reason=str(error),
                log_failure=error.failure,
            )
        else:
            self.log.failure("node start failed, stopping the node", failure)
        if self._onFatal is not None:
            self._onFatal(1)
            return None
        return failure


class _DatabaseStarter(Service):
    """
    Starts the database (waiting until it is reachable) and then applies
    pending migrations when C{[database] migrate_on_start} says so.
    """

    def __init__(self, database: Any, settings: Settings) -> None:
        self._database = database
        self._migrate = settings["migrate_on_start"]

    def privilegedStartService(self) -> None:
        Service.privilegedStartService(self)
        self._database.privilegedStartService()

    @inlineCallbacks
    def startService(self) -> Generator[Deferred[Any], Any, None]:
        Service.startService(self)
        yield self._database.startService()
        if self._migrate:
            from synnefo_twisted.db.migrations import migrate

            applied = yield migrate(self._database)
            if applied:
                log.info("database migrated: applied {migrations}", migrations=applied)

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        return self._database.stopService()  # type: ignore[no-any-return,unused-ignore]
