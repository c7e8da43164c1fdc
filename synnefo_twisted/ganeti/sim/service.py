# -*- test-case-name: tests.ganeti.test_sim_contract -*-
"""
The simulated cluster as a service: the RAPI listener, the job queue writing
job files under C{<data_dir>/queue}, Ganeti's C{ssconf_cluster_name} and
C{ssconf_master_node} files, and an RFB console per running instance
(opened when its console is first asked for, closed when it stops).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.filepath import FilePath
from twisted.web.server import Site
from zope.interface import implementer

from synnefo_twisted.ganeti import jobfile
from synnefo_twisted.ganeti.details import SIM_RAPI_FILE
from synnefo_twisted.ganeti.sim.model import SimCluster
from synnefo_twisted.ganeti.sim.queue import JobQueue
from synnefo_twisted.ganeti.sim.rapi import SimRapi
from synnefo_twisted.ganeti.sim.rfb import RFBServerFactory
from synnefo_twisted.health import Health
from synnefo_twisted.interfaces import IHealthReporter

log = Logger()


def lastJobId(queueDir: FilePath[str]) -> int:
    """
    The highest job id with a file in the queue directory or its archive,
    so that a restarted simulator never reuses a job id.
    """
    highest = 0
    if not queueDir.exists():
        return 0
    for _dirpath, _dirnames, filenames in os.walk(queueDir.path):
        for name in filenames:
            jobId = jobfile.jobIdFromFileName(name)
            if jobId is not None and jobId > highest:
                highest = jobId
    return highest


class Consoles:
    """
    One RFB listener per running instance, on loopback.
    """

    def __init__(self, reactor: Any, cluster: SimCluster, host: str = "127.0.0.1") -> None:
        self._reactor = reactor
        self._cluster = cluster
        self.host = host
        self.ports: dict[str, IListeningPort] = {}

    def portFor(self, name: str) -> int | None:
        """
        The console port of a running instance, listening from now on; None
        when the instance is not running.
        """
        inst = self._cluster.instances.get(name)
        if inst is None or not inst.operUp:
            return None
        port = self.ports.get(name)
        if port is None:
            port = self._reactor.listenTCP(0, RFBServerFactory(name), interface=self.host)
            self.ports[name] = port
            inst.consolePort = port.getHost().port
        return inst.consolePort

    def sync(self, name: str) -> Deferred[Any]:
        """
        Close the console of an instance that is gone or stopped.
        """
        inst = self._cluster.instances.get(name)
        if inst is not None and inst.operUp:
            return succeed(None)
        if inst is not None:
            inst.consolePort = None
        port = self.ports.pop(name, None)
        if port is None:
            return succeed(None)
        return Deferred.fromCoroutine(_stop(port))

    def closeAll(self) -> Deferred[Any]:
        ports, self.ports = list(self.ports.values()), {}
        return DeferredList([Deferred.fromCoroutine(_stop(p)) for p in ports], consumeErrors=True)


async def _stop(port: IListeningPort) -> None:
    result = port.stopListening()
    if isinstance(result, Deferred):
        await result


STATE_FILE = "sim-state.json"


class _QuietSite(Site):
    """
    No access log line per request (the simulator serves hundreds a second).
    """

    def log(self, request: Any) -> None:
        pass


@implementer(IHealthReporter)
class SimulatedClusterService(Service):
    """
    Runs a L{SimCluster}: C{startService} fires once the RAPI listens.

    @ivar rapiPort: the RAPI's listening port, once started.
    @param persist: keep the cluster state in C{<data_dir>/sim-state.json}
        (saved every C{snapshotInterval} seconds when changed, and at stop;
        restored at construction), so a restarted node finds its instances.
    """

    healthName = "ganeti-sim"

    def __init__(
        self,
        reactor: Any,
        dataDir: FilePath[str],
        rapiEndpoint: str,
        users: Mapping[str, tuple[str, str]],
        cluster: SimCluster | None = None,
        durations: Mapping[str, float] | None = None,
        defaultDuration: float = 0.1,
        errorRates: Mapping[str, float] | None = None,
        maxRunning: int = 20,
        consoleHost: str = "127.0.0.1",
        seed: int | None = None,
        persist: bool = True,
        snapshotInterval: float = 10.0,
        archiveAfter: float = 6 * 3600.0,
    ) -> None:
        self._reactor = reactor
        self.persist = persist
        self.snapshotInterval = snapshotInterval
        self.archiveAfter = archiveAfter
        self._changes = 0
        self._saved = 0
        self._loops: list[LoopingCall] = []
        self.dataDir = dataDir
        self.queueDir = dataDir.child("queue")
        self.rapiEndpoint = rapiEndpoint
        self.cluster = cluster or SimCluster()
        self.stateFile = dataDir.child(STATE_FILE)
        if persist and self.stateFile.exists():
            try:
                self.cluster.restore(json.loads(self.stateFile.getContent()))
                log.info(
                    "simulated cluster: restored {instances} instances and {networks} networks from {path}",
                    instances=len(self.cluster.instances),
                    networks=len(self.cluster.networks),
                    path=self.stateFile.path,
                )
            except (OSError, ValueError, KeyError, TypeError) as e:
                log.error(
                    "simulated cluster: cannot restore {path} ({error}); starting empty",
                    path=self.stateFile.path,
                    error=str(e),
                )
                self._changes = 1  # replace the bad file at the next save
        self.consoles = Consoles(reactor, self.cluster, consoleHost)
        self.queueDir.makedirs(ignoreExistingDirectory=True)
        self.queueDir.child("archive").makedirs(ignoreExistingDirectory=True)
        self.queue = JobQueue(
            reactor,
            self.cluster,
            self.queueDir,
            durations=durations,
            defaultDuration=defaultDuration,
            errorRates=errorRates,
            rng=random.Random(seed),
            maxRunning=maxRunning,
            onApplied=self._applied,
            firstJobId=lastJobId(self.queueDir) + 1,
        )
        self.rapi = SimRapi(self.cluster, self.queue, users, consoleHost, consoles=self.consoles)
        self.rapiPort: IListeningPort | None = None

    @property
    def rapiUrl(self) -> str:
        """
        C{http://host:port} of the running RAPI.
        """
        assert self.rapiPort is not None
        address = self.rapiPort.getHost()
        return f"http://{address.host}:{address.port}"  # type: ignore[attr-defined]

    def saveState(self) -> None:
        """
        Write the cluster state (temporary file, then rename) if it changed.
        """
        if not self.persist or self._saved == self._changes:
            return
        changes = self._changes
        temporary = self.stateFile.siblingExtension(".tmp")
        temporary.setContent(json.dumps(self.cluster.snapshot()).encode("utf-8"))
        os.rename(temporary.path, self.stateFile.path)
        self._saved = changes

    def archiveJobs(self) -> None:
        """
        Archive jobs finished more than C{archiveAfter} seconds ago.
        """
        moved = self.queue.archive(self._reactor.seconds() - self.archiveAfter)
        if moved:
            log.info("simulated cluster: archived {count} jobs", count=moved)

    def health(self) -> Health:
        if self.rapiPort is None:
            return Health.down("RAPI not listening")
        return Health.up(
            f"{len(self.cluster.instances)} instances, {sum(not j.finalized() for j in self.queue.jobs.values())} jobs running or queued"
        )

    def _applied(self, opInput: Mapping[str, Any]) -> None:
        self._changes += 1
        name = opInput.get("instance_name")
        if isinstance(name, str):
            self.consoles.sync(name)

    def _writeSsconf(self) -> None:
        for key, value in (("cluster_name", self.cluster.name), ("master_node", self.cluster.node)):
            target = self.dataDir.child(f"ssconf_{key}")
            temporary = target.siblingExtension(".tmp")
            temporary.setContent(value.encode() + b"\n")
            temporary.moveTo(target)

    def _writeRapiPointer(self) -> None:
        """
        Tell a watcher reading this data directory how to reach the RAPI for
        instance details (loopback address and a write user; mode 0600).
        """
        writers = [(u, p) for u, (p, access) in self.rapi.users.items() if access == "write"]
        if not writers:
            return
        user, password = writers[0]
        target = self.dataDir.child(SIM_RAPI_FILE)
        temporary = target.siblingExtension(".tmp")
        fd = os.open(temporary.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"url": self.rapiUrl, "user": user, "password": password}, f)
        os.rename(temporary.path, target.path)

    def startService(self) -> Deferred[None]:
        super().startService()
        self._writeSsconf()
        self.queue.stopped = False
        site = _QuietSite(self.rapi.app.resource())
        site.displayTracebacks = False
        site.noisy = False

        def listening(port: IListeningPort) -> None:
            self.rapiPort = port
            self._writeRapiPointer()
            log.info(
                "simulated Ganeti cluster {cluster}: RAPI on {url}, job queue {queue}",
                cluster=self.cluster.name,
                url=self.rapiUrl,
                queue=self.queueDir.path,
            )

        for call, interval in ((self.saveState, self.snapshotInterval), (self.archiveJobs, 60.0)):
            loop = LoopingCall(call)
            loop.clock = self._reactor
            loop.start(interval, now=False).addErrback(
                lambda f: log.failure("simulated cluster: periodic task failed", f)
            )
            self._loops.append(loop)
        d: Deferred[None] = serverFromString(self._reactor, self.rapiEndpoint).listen(site).addCallback(listening)
        return d

    def stopService(self) -> Deferred[Any]:
        super().stopService()
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops = []
        ended = self.queue.abandon()
        if ended:
            log.info("simulated cluster: {count} unfinished jobs ended in error at shutdown", count=ended)
        self.queue.stop()
        try:
            self.saveState()
        except OSError as e:
            log.error("simulated cluster: cannot save {path}: {error}", path=self.stateFile.path, error=e.strerror)
        waits: list[Deferred[Any]] = [self.consoles.closeAll()]
        if self.rapiPort is not None:
            port, self.rapiPort = self.rapiPort, None
            waits.append(Deferred.fromCoroutine(_stop(port)))
        return DeferredList(waits, consumeErrors=True)
