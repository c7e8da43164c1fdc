# -*- test-case-name: tests.ganeti.test_watcher -*-
"""
The job-queue watcher (snf-ganeti-eventd's replacement): inotify on the
Ganeti queue directory, each op of interest becomes the eventd message of
spec §2.3, published persistent with confirms, in order.

Beyond the original:
  - on start it rescans the queue directory and publishes what changed
    while it was down; a state file remembers the last status handled per
    op, so a restart neither loses nor floods (at-least-once: a crash
    between a confirm and the next state save may repeat a message, which
    the dispatcher's event_time guard makes harmless);
  - while the bus is down it keeps what it owes, in order, and delivers it
    after reconnection;
  - a periodic rescan catches anything inotify missed (queue overflow).
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Callable
from typing import Any

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath
from zope.interface import implementer

from synnefo_twisted.bus.topology import Exchange, Topology
from synnefo_twisted.ganeti import events, jobfile, naming
from synnefo_twisted.ganeti.details import DetailsSource, NoDetails
from synnefo_twisted.ganeti.events import EventMessage, InstanceDetails, NotPublished
from synnefo_twisted.ganeti.jobfile import JobFileError, QueuedJob
from synnefo_twisted.ganeti.published import PublishedState
from synnefo_twisted.health import Health
from synnefo_twisted.interfaces import IHealthReporter, IMessageBus
from synnefo_twisted.metrics import MetricsRegistry

log = Logger()

WATCHER_TOPOLOGY = Topology(exchanges=(Exchange(naming.EXCHANGE, "topic", True),))


@attrs.define
class _Owed:
    seq: int
    message: EventMessage
    opCount: int
    body: bytes


class Ssconf:
    """
    Ganeti's one-value files in the data directory (C{ssconf_cluster_name},
    C{ssconf_master_node}), re-read when they change.
    """

    def __init__(self, dataDir: FilePath[str]) -> None:
        self.dataDir = dataDir
        self._cache: dict[str, tuple[tuple[int, int], str]] = {}

    def get(self, key: str) -> str | None:
        path = self.dataDir.child(f"ssconf_{key}").path
        try:
            st = os.stat(path)
            stamp = (st.st_mtime_ns, st.st_size)
            cached = self._cache.get(key)
            if cached is not None and cached[0] == stamp:
                return cached[1]
            with open(path) as f:
                value = f.read().strip()
        except OSError:
            return None
        self._cache[key] = (stamp, value)
        return value


@implementer(IHealthReporter)
class JobQueueWatcher(Service):
    """
    Watches one Ganeti job queue directory and publishes op-status events.

    @param nodeName: this node's name; messages are published only while
        C{ssconf_master_node} names it. None disables the check.
    @param clusterName: overrides C{ssconf_cluster_name}.
    @param window: publishes awaiting confirmation at once.
    @param useInotify: watch with inotify (real reactors on Linux); without
        it only rescans find changes.
    """

    healthName = "watcher"

    def __init__(
        self,
        reactor: Any,
        bus: IMessageBus,
        queueDir: FilePath[str],
        state: PublishedState,
        dataDir: FilePath[str] | None = None,
        details: DetailsSource | None = None,
        nodeName: str | None = None,
        clusterName: str | None = None,
        metrics: MetricsRegistry | None = None,
        window: int = 64,
        rescanInterval: float = 60.0,
        saveInterval: float = 1.0,
        retryDelay: float = 1.0,
        maxRetryDelay: float = 30.0,
        stopGrace: float = 5.0,
        useInotify: bool = True,
    ) -> None:
        self._reactor = reactor
        self.bus = bus
        self.queueDir = queueDir
        self.dataDir = dataDir or queueDir.parent()
        self.state = state
        self.detailsSource: DetailsSource = details or NoDetails()
        self.nodeName = nodeName
        self.clusterNameOverride = clusterName
        self.ssconf = Ssconf(self.dataDir)
        self.window = window
        self.rescanInterval = rescanInterval
        self.saveInterval = saveInterval
        self.retryDelay = retryDelay
        self.maxRetryDelay = maxRetryDelay
        self.stopGrace = stopGrace
        self.useInotify = useInotify
        self.confirmedListeners: list[Callable[[EventMessage], None]] = []
        metrics = metrics or MetricsRegistry()
        self._published = metrics.counter("snf_watcher_published_total", "Messages confirmed by the bus", ["type"])
        self._skipped = metrics.counter("snf_watcher_skipped_total", "Job files or ops skipped", ["reason"])
        self._owedGauge = metrics.gauge("snf_watcher_owed", "Messages waiting to be published or confirmed")
        self._dirty: dict[int, None] = {}
        self._seen: dict[int, tuple[int, int]] = {}
        self._pending: dict[tuple[int, int], str] = {}
        self._owed: deque[_Owed] = deque()
        self._retry: list[_Owed] = []
        self._inflight = 0
        self._seq = 0
        self._draining = False
        self._declared = False
        self._paused = False
        self._resumeCall: IDelayedCall | None = None
        self._declareCall: IDelayedCall | None = None
        self._failures = 0
        self._lastError = ""
        self._notifier: Any = None
        self._rescanLoop: LoopingCall | None = None
        self._saveLoop: LoopingCall | None = None
        self._idle: list[Deferred[None]] = []

    # ------------------------------------------------------------ service

    def startService(self) -> Deferred[None]:
        if not self.queueDir.isdir():
            raise FileNotFoundError(
                f"watcher: the Ganeti job queue directory {self.queueDir.path} does not exist "
                "(set [watcher] queue_dir; on a Ganeti master it is /var/lib/ganeti/queue)"
            )
        super().startService()
        self.state.load()
        self._declare()
        if self.useInotify:
            from twisted.internet import inotify

            self._notifier = inotify.INotify(self._reactor)
            self._notifier.startReading()
            self._notifier.watch(
                self.queueDir,
                mask=inotify.IN_MOVED_TO | inotify.IN_CLOSE_WRITE,
                callbacks=[self._inotifyEvent],
            )
        self.rescan(prune=True)
        self._rescanLoop = LoopingCall(self.rescan, prune=True)
        self._rescanLoop.clock = self._reactor
        self._rescanLoop.start(self.rescanInterval, now=False)
        self._saveLoop = LoopingCall(self.state.save)
        self._saveLoop.clock = self._reactor
        self._saveLoop.start(self.saveInterval, now=False)
        log.info(
            "watcher: watching {queue} ({count} jobs remembered)", queue=self.queueDir.path, count=len(self.state.jobs)
        )
        return succeed(None)

    def stopService(self) -> Deferred[None]:
        super().stopService()
        if self._notifier is not None:
            self._notifier.loseConnection()
            self._notifier = None
        for loop in (self._rescanLoop, self._saveLoop):
            if loop is not None and loop.running:
                loop.stop()
        for call in (self._resumeCall, self._declareCall):
            if call is not None and call.active():
                call.cancel()
        self._resumeCall = self._declareCall = None

        async def finish() -> None:
            await self.whenIdle(self.stopGrace)
            self.state.save()

        return Deferred.fromCoroutine(finish())

    def health(self) -> Health:
        owed = len(self._owed) + len(self._retry) + self._inflight
        if not self.running:
            return Health.down("not running")
        if self._paused:
            return Health.down(f"bus unavailable ({self._lastError}); {owed} messages owed")
        return Health.up(f"{owed} messages owed")

    def whenIdle(self, timeout: float | None = None) -> Deferred[None]:
        """
        Fires once nothing is being read, owed or awaiting confirmation (or
        after C{timeout} seconds).
        """
        d: Deferred[None] = Deferred()
        if self._isIdle():
            d.callback(None)
            return d
        self._idle.append(d)
        if timeout is not None:

            def expire() -> None:
                if d in self._idle:
                    self._idle.remove(d)
                    d.callback(None)

            call = self._reactor.callLater(timeout, expire)
            d.addBoth(lambda r: (call.active() and call.cancel(), r)[1])
        return d

    def _isIdle(self) -> bool:
        return not (self._dirty or self._draining or self._owed or self._retry or self._inflight)

    def _checkIdle(self) -> None:
        self._owedGauge.set(len(self._owed) + len(self._retry) + self._inflight)
        if self._isIdle():
            waiting, self._idle = self._idle, []
            for d in waiting:
                d.callback(None)

    # -------------------------------------------------------------- input

    def _inotifyEvent(self, ignored: object, path: FilePath[Any], mask: int) -> None:
        name = path.basename()
        # Twisted's inotify reports bytes paths.
        self.fileChanged(name.decode("utf-8", "replace") if isinstance(name, bytes) else name)

    def fileChanged(self, name: str) -> None:
        """
        A file in the queue directory was written or renamed into place.
        """
        jobId = jobfile.jobIdFromFileName(name)
        if jobId is None:
            return
        self._dirty[jobId] = None
        self._startDrain()

    def rescan(self, prune: bool = False) -> None:
        """
        Look at every job file (oldest first); unchanged ones are skipped.
        """
        try:
            names = os.listdir(self.queueDir.path)
        except OSError as e:
            log.error("watcher: cannot list {queue}: {error}", queue=self.queueDir.path, error=e.strerror)
            return
        ids = sorted(j for j in (jobfile.jobIdFromFileName(n) for n in names) if j is not None)
        if prune:
            gone = self.state.prune(ids)
            present = set(ids)
            for jobId in [j for j in self._seen if j not in present]:
                del self._seen[jobId]
            if gone:
                log.info("watcher: forgot {count} archived jobs", count=gone)
        for jobId in ids:
            self._dirty[jobId] = None
        self._startDrain()

    def _startDrain(self) -> None:
        if self._draining or not self.running:
            return
        self._draining = True
        d = Deferred.fromCoroutine(self._drain())
        d.addErrback(lambda f: log.failure("watcher: processing failed", f))

    async def _drain(self) -> None:
        try:
            while self._dirty and self.running:
                jobId = next(iter(self._dirty))
                del self._dirty[jobId]
                try:
                    await self._processJob(jobId)
                except Exception:
                    log.failure("watcher: job {job_id} could not be processed", job_id=jobId)
        finally:
            self._draining = False
            self._checkIdle()

    def _read(self, jobId: int) -> QueuedJob | None:
        name = jobfile.jobFileName(jobId)
        path = os.path.join(self.queueDir.path, name)
        try:
            st = os.stat(path)
            stamp = (st.st_mtime_ns, st.st_size)
            if self._seen.get(jobId) == stamp:
                return None
            with open(path, "rb") as f:
                content = f.read()
        except FileNotFoundError:
            self._skipped.inc(reason="vanished")
            log.info("watcher: {name} vanished before it was read; skipped", name=name)
            return None
        except OSError as e:
            self._skipped.inc(reason="unreadable")
            log.warn("watcher: cannot read {name}: {error}; skipped", name=name, error=e.strerror)
            return None
        try:
            job = jobfile.parseJobFile(content)
        except JobFileError as e:
            self._skipped.inc(reason="malformed")
            log.warn("watcher: {name} skipped: {reason}", name=name, reason=str(e))
            return None
        self._seen[jobId] = stamp
        if job.id != jobId:
            self._skipped.inc(reason="malformed")
            log.warn("watcher: {name} holds job {other}; skipped", name=name, other=job.id)
            return None
        return job

    def _cluster(self) -> str | None:
        return self.clusterNameOverride or self.ssconf.get("cluster_name")

    def _isMaster(self) -> bool:
        return self.nodeName is None or self.ssconf.get("master_node") == self.nodeName

    async def _processJob(self, jobId: int) -> None:
        job = self._read(jobId)
        if job is None:
            return
        cluster = self._cluster()
        master = self._isMaster()
        for index, op in enumerate(job.ops):
            key = (job.id, index)
            previous = self._pending.get(key) or self.state.get(job.id, index)
            if not events.shouldPublish(op, previous):
                continue
            if not master:
                self.state.set(job.id, index, op.status, len(job.ops))
                self._skipped.inc(reason="not-master")
                continue
            if not cluster:
                log.error(
                    "watcher: no cluster name (no ssconf_cluster_name in {dir}); job {job_id} not reported",
                    dir=self.dataDir.path,
                    job_id=job.id,
                )
                self._skipped.inc(reason="no-cluster-name")
                return
            details: InstanceDetails | None = None
            wanted = events.wantsDetails(op)
            if wanted is not None:
                details = await self.detailsSource.details(wanted)
            try:
                message = events.messageForOp(job, index, cluster, _constant(details))
            except NotPublished as e:
                self._skipped.inc(reason="not-publishable")
                log.info("watcher: {reason}; skipped", reason=str(e))
                message = None
            if message is None:
                self.state.set(job.id, index, op.status, len(job.ops))
                continue
            self._seq += 1
            self._pending[key] = op.status
            body = json.dumps(message.body).encode("utf-8")
            self._owed.append(_Owed(self._seq, message, len(job.ops), body))
        self._pump()

    # ------------------------------------------------------------- output

    def _declare(self) -> None:
        self._declareCall = None

        def declared(_: object) -> None:
            self._declared = True
            self._pump()

        def failed(f: Failure) -> None:
            log.warn(
                "watcher: cannot declare exchange {exchange}: {error}",
                exchange=naming.EXCHANGE,
                error=f.getErrorMessage(),
            )
            if self.running:
                self._declareCall = self._reactor.callLater(self.retryDelay, self._declare)

        d = self.bus.declare(WATCHER_TOPOLOGY)
        assert isinstance(d, Deferred)
        d.addCallbacks(declared, failed)

    def _pump(self) -> None:
        if not self._declared or self._paused:
            self._checkIdle()
            return
        while self._owed and self._inflight < self.window:
            owed = self._owed.popleft()
            self._inflight += 1
            msg = owed.message
            d = self.bus.publish(naming.EXCHANGE, msg.routingKey, owed.body, None, True)
            assert isinstance(d, Deferred)
            d.addCallbacks(self._confirmed, self._publishFailed, callbackArgs=(owed,), errbackArgs=(owed,))
        self._checkIdle()

    def _confirmed(self, _: object, owed: _Owed) -> None:
        self._inflight -= 1
        msg = owed.message
        self.state.set(msg.jobId, msg.opIndex, msg.status, owed.opCount)
        key = (msg.jobId, msg.opIndex)
        if self._pending.get(key) == msg.status:
            del self._pending[key]
        self._published.inc(type=str(msg.body.get("type")))
        self._failures = 0
        for listener in self.confirmedListeners:
            listener(msg)
        self._maybeResume()
        self._pump()

    def _publishFailed(self, f: Failure, owed: _Owed) -> None:
        self._inflight -= 1
        self._retry.append(owed)
        self._lastError = f.getErrorMessage()
        if not self._paused:
            self._paused = True
            self._failures += 1
            delay = min(self.retryDelay * (2 ** (self._failures - 1)), self.maxRetryDelay)
            log.warn(
                "watcher: publish failed ({error}); {count} messages owed, retrying in {delay}s",
                error=self._lastError,
                count=len(self._owed) + len(self._retry) + self._inflight,
                delay=delay,
            )
            if self.running:
                self._resumeCall = self._reactor.callLater(delay, self._resumeDue)
        self._maybeResume()
        self._checkIdle()

    def _resumeDue(self) -> None:
        self._resumeCall = None
        self._maybeResume()

    def _maybeResume(self) -> None:
        if not self._paused or self._resumeCall is not None or self._inflight:
            return
        if not self.running:
            return
        self._retry.sort(key=lambda o: o.seq)
        self._owed.extendleft(reversed(self._retry))
        self._retry = []
        self._paused = False
        self._pump()


def _constant(details: InstanceDetails | None) -> Callable[[str], InstanceDetails | None]:
    def lookup(name: str) -> InstanceDetails | None:
        return details

    return lookup
