"""
The same watcher code reading the simulator's job files (inotify, real
reactor) with the in-process bus: the lifecycle gives the same messages as
on the real cluster (C{tests.integration.ganeti.test_watcher_real}).
"""

from __future__ import annotations

from twisted.internet import reactor  # tests only: inotify needs the real reactor
from twisted.trial.unittest import TestCase

from synnefo_twisted.bus.memory import MemoryBus
from synnefo_twisted.ganeti.details import AutoDetails
from synnefo_twisted.ganeti.rapi import RapiClient
from tests.ganeti.rapi_contract import ClusterEnv
from tests.ganeti.test_sim_contract import startSim
from tests.ganeti.watcher_lifecycle import WatcherHeartbeatMixin, WatcherLifecycleMixin, WatcherRestartMixin


class SimulatedClusterWatcherTests(WatcherLifecycleMixin, WatcherRestartMixin, WatcherHeartbeatMixin, TestCase):
    async def setUp(self) -> None:  # type: ignore[override]
        self.sim = await startSim(self)
        self.bus = self.makeBus()
        await self.bus.startService()
        self.addCleanup(self.bus.stopService)
        self.client = RapiClient.forURL(reactor, self.sim.rapiUrl, "gnt-admin", "gnt-secret", pollInterval=0.01)
        self.env = ClusterEnv(pnode=self.sim.cluster.node, nicLink="gnt-br0")
        self.queueDir = self.sim.queueDir
        self.dataDir = self.sim.dataDir
        self.nodeName = self.sim.cluster.node
        self.clusterName = self.sim.cluster.name
        self.detailsSource = AutoDetails(reactor, self.sim.dataDir)

    def makeBus(self) -> object:
        return MemoryBus(reactor)
