"""
The C{dispatcher} plugin (role C{logic}): applies Ganeti's events from the
bus to the database (spec §2.5; L{synnefo_twisted.dispatcher.service}).

Section C{[dispatcher]}:
  - C{prefetch}: unacknowledged messages per queue;
  - C{concurrency}: messages applied at once (different servers; one
    server's messages always in order);
  - C{max_retries}: retries of a message whose processing failed, before
    it is dead-lettered;
  - C{retry_backoff}, C{retry_backoff_max}: seconds before the first retry
    (doubling) and the longest wait;
  - C{mirrored}: declare the queues with C{x-ha-policy: all} as the original;
  - C{status_check}: answer C{snf-manage dispatcher-status};
  - C{status_timeout}: seconds a status check waits for the RAPI and the
    watcher's heartbeat.

The queue prefix is C{[ganeti] prefix}.
"""

from __future__ import annotations

import attrs
from twisted.application.service import IService
from twisted.internet.defer import Deferred
from twisted.plugin import IPlugin
from zope.interface import implementer

from synnefo_twisted.config import Setting, checkNonNegative, checkPositive
from synnefo_twisted.context import NodeContext
from synnefo_twisted.interfaces import ISynnefoPlugin

SETTINGS: tuple[Setting, ...] = (
    Setting("prefetch", "int", 64, "unacknowledged messages per queue", check=checkPositive),
    Setting(
        "concurrency",
        "int",
        16,
        "messages applied at once (one per server; each holds a connection: keep [database] pool_size at least this)",
        check=checkPositive,
    ),
    Setting("max_retries", "int", 3, "retries of a failing message before dead-lettering", check=checkNonNegative),
    Setting("retry_backoff", "float", 0.5, "seconds before the first retry (doubling)", check=checkPositive),
    Setting("retry_backoff_max", "float", 30.0, "longest wait between retries", check=checkPositive),
    Setting("mirrored", "bool", False, "declare queues with x-ha-policy: all"),
    Setting("status_check", "bool", True, "answer snf-manage dispatcher-status"),
    Setting("status_timeout", "float", 5.0, "seconds a status check waits per backend", check=checkPositive),
)


@implementer(IPlugin, ISynnefoPlugin)
@attrs.frozen
class DispatcherPlugin:
    name: str = "dispatcher"
    roles: frozenset[str] = frozenset({"logic"})
    description: str = "applies Ganeti's op-status, network, progress and cluster events to the database"
    requires: frozenset[str] = frozenset({"database", "bus", "ganeti"})
    startOrder: int = 30
    section: str | None = "dispatcher"
    settings: tuple[Setting, ...] = SETTINGS

    def makeService(self, node: object) -> IService:
        assert isinstance(node, NodeContext)
        from synnefo_twisted.dispatcher.service import DispatcherService, DispatcherSettings, refreshBackendResources
        from synnefo_twisted.dispatcher.status import StatusResponder

        s = node.settings
        prefix = node.backends.prefix
        settings = DispatcherSettings(
            prefix=prefix,
            prefetch=s["prefetch"],
            concurrency=s["concurrency"],
            maxRetries=s["max_retries"],
            retryBackoff=float(s["retry_backoff"]),
            retryBackoffMax=float(s["retry_backoff_max"]),
            mirrored=s["mirrored"],
            statusCheck=s["status_check"],
        )
        registry = node.backends
        database = node.database

        def refresh(cluster: str) -> Deferred[None]:
            return Deferred.fromCoroutine(refreshBackendResources(database, registry, cluster))

        responder = None
        if s["status_check"]:
            responder = StatusResponder(node.reactor, node.bus, registry, prefix, float(s["status_timeout"]))
        return DispatcherService(
            node.reactor,
            database,
            node.bus,
            settings,
            metrics=node.metrics,
            refreshBackend=refresh,
            statusResponder=responder,
        )


dispatcher = DispatcherPlugin()
