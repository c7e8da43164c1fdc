"""
Tests for L{synnefo_twisted.reconciler.service} and the C{reconciler}
plugin: the staggered pass on a L{Clock}, over a database and the
simulated cluster.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from twisted.application.service import IService
from twisted.internet.defer import Deferred
from twisted.plugin import IPlugin
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from plugins.reconciler import reconciler as plugin
from synnefo_twisted.config import Settings
from synnefo_twisted.context import NodeContext
from synnefo_twisted.interfaces import ISynnefoPlugin
from synnefo_twisted.logic.reconcile import Thresholds
from synnefo_twisted.metrics import MetricsRegistry
from synnefo_twisted.reconciler.service import ReconcilerService, planBatches
from tests.reconciler.support import ClusterMixin


class PlanTests(SynchronousTestCase):
    def test_batches(self) -> None:
        """
        Batches hold at most C{batchSize} ids and their ranges cover
        everything, gaps and both ends included.
        """
        self.assertEqual(planBatches([], 3), [(None, None)])
        self.assertEqual(planBatches([1, 2, 5], 3), [(None, None)])
        self.assertEqual(planBatches([1, 2, 5, 9, 12], 2), [(None, 2), (3, 9), (10, None)])


class PluginTests(SynchronousTestCase):
    def test_interfaces(self) -> None:
        """
        The plugin provides ISynnefoPlugin and IPlugin, role logic.
        """
        self.assertTrue(verifyObject(ISynnefoPlugin, plugin))
        self.assertTrue(verifyObject(IPlugin, plugin))
        self.assertEqual((plugin.name, plugin.roles), ("reconciler", frozenset({"logic"})))

    def test_makeService(self) -> None:
        """
        The service is built from C{[reconciler]}: period, batch size,
        delay, grace and fixes (orphans only when asked).
        """
        values = {s.name: s.default for s in plugin.settings}
        values.update(period=600.0, batch_size=50, grace=5.0)
        context = NodeContext(
            reactor=object(),
            settings=Settings("reconciler", values, plugin.settings),
            metrics=MetricsRegistry(),
            stateDir=__import__("pathlib").Path(self.mktemp()),
            database=object(),
            backends=object(),
        )
        service = plugin.makeService(context)
        self.assertTrue(verifyObject(IService, service))
        assert isinstance(service, ReconcilerService)
        self.assertEqual((service.period, service.batchSize, service.initialDelay), (600.0, 50, 60.0))
        self.assertEqual(service.thresholds.grace, timedelta(seconds=5))
        self.assertTrue(service.fix.stale)
        self.assertFalse(service.fix.orphans)


class ServiceTests(ClusterMixin, TestCase):
    def service(self, **kw: Any) -> ReconcilerService:
        options: dict[str, Any] = dict(
            period=100.0, batchSize=3, initialDelay=10.0, thresholds=Thresholds(grace=timedelta(0))
        )
        options.update(kw)
        return ReconcilerService(self.clock, self.db, self.registry, **options)

    async def settle(self, service: ReconcilerService) -> None:
        while service.busy:
            await service.whenIdle()

    async def advance(self, service: ReconcilerService, seconds: float) -> None:
        """
        Advance the clock one second at a time, letting each step finish.
        """
        for _ in range(int(seconds)):
            self.clock.advance(1)
            await self.settle(service)

    async def test_staggered(self) -> None:
        """
        Ten servers in batches of three plus the networks step make five
        steps, spread evenly over the period; the next pass starts one
        period after the first; every server is seen once per pass.
        """
        ids = await self.plainServers(10)
        service = self.service()
        self.assertTrue(verifyObject(IService, service))
        start = self.clock.seconds()
        service.startService()
        await self.advance(service, 10)
        self.assertEqual(service.stepTimes, [start + 10])
        await self.advance(service, 100)
        self.assertEqual([t - start for t in service.stepTimes], [10, 30, 50, 70, 90, 110])
        self.assertEqual(service.passes, 1)
        stale = sorted(f.drift.serverId for r in service.lastPass for f in r.findings)
        self.assertEqual(stale, ids)
        await service.stopService()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    async def test_stopCancels(self) -> None:
        """
        Stopping before the first pass cancels its timer; nothing runs.
        """
        await self.plainServers(2)
        service = self.service()
        service.startService()
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        await service.stopService()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(1000)
        self.assertEqual(service.stepTimes, [])

    async def test_stopMidPass(self) -> None:
        """
        Stopping between steps cancels the next one; the pass never ends.
        """
        await self.plainServers(7)
        service = self.service()
        service.startService()
        await self.advance(service, 10)
        await service.stopService()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        await self.advance(service, 200)
        self.assertEqual(len(service.stepTimes), 1)
        self.assertEqual(service.passes, 0)

    async def test_failingStep(self) -> None:
        """
        A step whose backend cannot be read is logged and the pass goes on.
        """
        await self.plainServers(4)
        service = self.service(batchSize=2, networks=False)

        class Broken:
            def getInstances(self, bulk: bool = True) -> Deferred[Any]:
                from synnefo_twisted.ganeti.errors import RapiConnectionError

                raise RapiConnectionError("down")

        self.client = Broken()
        service.startService()
        await self.advance(service, 105)
        self.assertEqual(service.passes, 1)
        self.assertEqual(len(self.flushLoggedErrors()), 2)
        await service.stopService()
