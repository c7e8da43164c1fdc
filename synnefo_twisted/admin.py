# -*- test-case-name: tests.test_admin -*-
"""
The node's admin listener: C{/healthz} (JSON; 503 while a dependency is
down or a plugin is not running) and C{/metrics} (Prometheus text format).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from klein import Klein
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.web.iweb import IRequest
from twisted.web.server import Site

from synnefo_twisted import __version__
from synnefo_twisted.interfaces import IHealthReporter
from synnefo_twisted.metrics import MetricsRegistry

PROMETHEUS_CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


class AdminApp:
    """
    The admin HTTP application.

    @param dependencies: callable returning the shared resources'
        L{IHealthReporter}s (database, bus, ...).
    @param plugins: callable returning the plugins' reporters.
    """

    app = Klein()

    def __init__(
        self,
        dependencies: Callable[[], Sequence[IHealthReporter]],
        plugins: Callable[[], Sequence[IHealthReporter]],
        metrics: MetricsRegistry,
        roles: Iterable[str],
    ) -> None:
        self._dependencies = dependencies
        self._plugins = plugins
        self._metrics = metrics
        self._roles = sorted(roles)
        metrics.gauge(
            "synnefo_dependency_up",
            "1 when the shared resource is usable",
            ["dependency"],
            collect=lambda: [({"dependency": r.healthName}, float(r.health().ok)) for r in self._dependencies()],
        )
        metrics.gauge(
            "synnefo_plugin_up",
            "1 when the plugin's service is running and healthy",
            ["plugin"],
            collect=lambda: [({"plugin": r.healthName}, float(r.health().ok)) for r in self._plugins()],
        )
        metrics.gauge("synnefo_build_info", "synnefo-twisted version", ["version"]).set(1, version=__version__)

    def report(self) -> tuple[bool, dict[str, Any]]:
        """
        The health document and whether everything is fine.
        """
        deps = {r.healthName: r.health().asDict() for r in self._dependencies()}
        plugins = {r.healthName: r.health().asDict() for r in self._plugins()}
        ok = all(d["ok"] for d in deps.values()) and all(p["ok"] for p in plugins.values())
        return ok, {
            "status": "ok" if ok else "unavailable",
            "version": __version__,
            "roles": self._roles,
            "dependencies": deps,
            "plugins": plugins,
        }

    @app.route("/healthz", methods=["GET", "HEAD"])
    def healthz(self, request: IRequest) -> bytes:
        ok, document = self.report()
        request.setResponseCode(200 if ok else 503)
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"no-store")
        return json.dumps(document, indent=2).encode() + b"\n"

    @app.route("/metrics", methods=["GET"])
    def metrics(self, request: IRequest) -> bytes:
        request.setHeader(b"Content-Type", PROMETHEUS_CONTENT_TYPE)
        return self._metrics.render().encode()


class AdminSite(Site):
    """
    A quiet site: health probes every few seconds must not flood the log.
    """

    noisy = False

    def log(self, request: Any) -> None:
        pass


class ListenerService(Service):
    """
    Listen on an endpoint while running; C{startService} fails when the
    endpoint cannot listen (port taken), C{stopService} waits until the
    port is closed.
    """

    log = Logger()

    def __init__(self, name: str, endpoint: IStreamServerEndpoint, factory: Site) -> None:
        self.name = name
        self._endpoint = endpoint
        self._factory = factory
        self.port: IListeningPort | None = None

    def startService(self) -> Deferred[None]:
        Service.startService(self)
        d = self._endpoint.listen(self._factory)

        def listening(port: IListeningPort) -> None:
            self.port = port
            host = port.getHost()
            self.log.info(
                "{listener} listening on {address}",
                listener=self.name,
                address=str(host),
                port=getattr(host, "port", None),
            )

        return d.addCallback(listening)

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        port, self.port = self.port, None
        if port is None:
            return succeed(None)
        d = port.stopListening()
        return d if isinstance(d, Deferred) else succeed(None)
