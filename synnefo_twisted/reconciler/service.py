# -*- test-case-name: tests.reconciler.test_service -*-
"""
The periodic, staggered reconciliation pass of the C{reconciler} plugin.

A pass plans the work when it starts: every usable backend's live servers,
in id order, cut into batches of C{batchSize} (the id ranges cover the
gaps too, so orphans anywhere are found), plus one networks step per
backend when enabled. The steps are spread evenly over the period, one
timer (an L{IDelayedCall}) at a time: all servers are visited once per
period and never all at once. Ganeti is read once per backend and pass
(two bulk RAPI calls, at its first batch); each batch reads its servers
afresh and leaves alone those changed after that snapshot, so a batch late
in the period never overrides newer news with the old snapshot. The next pass
starts one period after this one started (or when this one ends, if it
overran). Stopping cancels the timer and waits for the running step.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from synnefo_twisted.db.reconcile import ReconcileRepository
from synnefo_twisted.ganeti import naming
from synnefo_twisted.logic.reconcile import Thresholds
from synnefo_twisted.metrics import Counter, MetricsRegistry
from synnefo_twisted.reconciler.shell import (
    DEFAULT_THRESHOLDS,
    NO_FIXES,
    Apply,
    BatchResult,
    FixOptions,
    GanetiSnapshot,
    reconcileNetworks,
    reconcileServers,
    takeSnapshot,
)

log = Logger()


@attrs.frozen
class Step:
    """
    One unit of a pass: servers of C{backend} with ids in C{[low, high]},
    or (C{networks}) the backend's networks.
    """

    backend: Any
    low: int | None = None
    high: int | None = None
    networks: bool = False


def planBatches(ids: list[int], batchSize: int) -> list[tuple[int | None, int | None]]:
    """
    Id ranges covering every id (and the gaps between, before and after),
    each holding at most C{batchSize} of C{ids}.
    """
    if not ids:
        return [(None, None)]
    out: list[tuple[int | None, int | None]] = []
    low: int | None = None
    for start in range(0, len(ids), batchSize):
        chunk = ids[start : start + batchSize]
        last = start + batchSize >= len(ids)
        high = None if last else chunk[-1]
        out.append((low, high))
        low = None if high is None else high + 1
    return out


class ReconcilerService(Service):
    """
    @param clock: an C{IReactorTime}.
    @param database: the L{IDatabase}.
    @param backends: the L{IBackendRegistry}.
    @param period: seconds in which every server is visited once.
    @param batchSize: servers per step.
    @param initialDelay: seconds before the first pass.
    @ivar passes: passes completed.
    @ivar lastPass: the step results of the last completed pass.
    """

    name = "reconciler"

    def __init__(
        self,
        clock: Any,
        database: Any,
        backends: Any,
        *,
        period: float = 1800.0,
        batchSize: int = 500,
        initialDelay: float = 60.0,
        fix: FixOptions = NO_FIXES,
        fixNetworks: bool = False,
        networks: bool = True,
        thresholds: Thresholds = DEFAULT_THRESHOLDS,
        prefix: str = naming.DEFAULT_PREFIX,
        apply: Apply | None = None,
        now: Callable[[], datetime] | None = None,
        metrics: MetricsRegistry | None = None,
    ) -> None:
        self._clock = clock
        self._db = database
        self._backends = backends
        self.period = period
        self.batchSize = batchSize
        self.initialDelay = initialDelay
        self.fix = fix
        self.fixNetworks = fixNetworks
        self.networks = networks
        self.thresholds = thresholds
        self.prefix = prefix
        self._apply = apply
        self._now = now or (lambda: datetime.fromtimestamp(clock.seconds(), UTC))
        self._timer: IDelayedCall | None = None
        self._running: Deferred[None] | None = None
        self._plan: list[Step] = []
        self._passStart = 0.0
        self._current: list[BatchResult] = []
        self._snapshots: dict[int, GanetiSnapshot] = {}
        self.passes = 0
        self.lastPass: list[BatchResult] = []
        self.stepTimes: list[float] = []
        self._findings: Counter | None = None
        self._passes: Counter | None = None
        if metrics is not None:
            self._findings = metrics.counter(
                "synnefo_reconciler_findings_total", "drift found by the reconciler", ("kind", "fix")
            )
            self._passes = metrics.counter("synnefo_reconciler_passes_total", "reconciliation passes completed")

    # -- lifecycle --------------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._schedule(self.initialDelay, self._startPass)

    def stopService(self) -> Deferred[None]:
        super().stopService()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        return self.whenIdle()

    @property
    def busy(self) -> bool:
        """
        A step (or the planning of a pass) is running.
        """
        return self._running is not None

    def whenIdle(self) -> Deferred[None]:
        """
        Fires when no step is running (at once when none is).
        """
        running = self._running
        if running is None:
            return succeed(None)
        done: Deferred[None] = Deferred()

        def fire(result: object) -> object:
            done.callback(None)
            return result

        running.addBoth(fire)
        return done

    def _schedule(self, delay: float, fn: Callable[[], None]) -> None:
        if not self.running:
            return
        self._timer = self._clock.callLater(max(0.0, delay), fn)

    # -- passes -----------------------------------------------------------------------------

    def _startPass(self) -> None:
        self._timer = None
        self._passStart = self._clock.seconds()
        self._current = []
        self._snapshots = {}
        self._track(Deferred.fromCoroutine(self._planPass()), self._planned)

    def _track(self, d: Deferred[Any], then: Callable[[Any], None]) -> None:
        self._running = d

        def ok(result: Any) -> None:
            self._running = None
            then(result)

        def failed(failure: Any) -> None:
            self._running = None
            log.failure("reconciliation step failed", failure)
            then(None)

        d.addCallbacks(ok, failed)

    async def _planPass(self) -> list[Step]:
        repo = ReconcileRepository(self._db)
        plan: list[Step] = []
        for backend in await self._backends.backends():
            if backend.offline:
                continue
            for low, high in planBatches(await repo.serverIds(backend.id), self.batchSize):
                plan.append(Step(backend, low, high))
            if self.networks:
                plan.append(Step(backend, networks=True))
        return plan

    def _planned(self, plan: list[Step] | None) -> None:
        self._plan = plan or []
        log.info("reconciliation pass: {steps} steps over {period} s", steps=len(self._plan), period=self.period)
        self._runStep(0)

    def _spacing(self) -> float:
        return self.period / max(1, len(self._plan))

    def _runStep(self, index: int) -> None:
        self._timer = None
        if index >= len(self._plan):
            self._endPass()
            return
        self.stepTimes.append(self._clock.seconds())
        step = self._plan[index]
        self._track(Deferred.fromCoroutine(self._doStep(step)), lambda _: self._stepDone(index))

    async def _doStep(self, step: Step) -> None:
        client = self._backends.clientFor(step.backend)
        if step.networks:
            result = await reconcileNetworks(
                self._db, step.backend, client, self._now, fix=self.fixNetworks, prefix=self.prefix, apply=self._apply
            )
        else:
            snapshot = self._snapshots.get(step.backend.id)
            if snapshot is None:
                snapshot = await takeSnapshot(client, self._now, self.prefix)
                self._snapshots[step.backend.id] = snapshot
            result = await reconcileServers(
                self._db,
                step.backend,
                client,
                self._now,
                fix=self.fix,
                thresholds=self.thresholds,
                prefix=self.prefix,
                low=step.low,
                high=step.high,
                apply=self._apply,
                snapshot=snapshot,
            )
        self._current.append(result)
        if self._findings is not None:
            for finding in result.findings:
                self._findings.inc(kind=finding.drift.kind, fix=finding.fix.split(":")[0] or "none")

    def _stepDone(self, index: int) -> None:
        due = self._passStart + (index + 1) * self._spacing()
        if index + 1 >= len(self._plan):
            self._endPass()
            return
        self._schedule(due - self._clock.seconds(), lambda: self._runStep(index + 1))

    def _endPass(self) -> None:
        self.passes += 1
        if self._passes is not None:
            self._passes.inc()
        self.lastPass = self._current
        found = sum(len(r.findings) for r in self._current)
        log.info("reconciliation pass {n} done: {found} findings", n=self.passes, found=found)
        self._schedule(self._passStart + self.period - self._clock.seconds(), self._startPass)
