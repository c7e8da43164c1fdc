"""
The watcher across a real RabbitMQ outage: jobs that finish while the broker
is down are owed, then delivered in order once it is back.
"""

from __future__ import annotations

import time

from twisted.internet import reactor  # tests only: real services
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from synnefo_twisted.bus import openBus
from synnefo_twisted.ganeti.details import AutoDetails
from synnefo_twisted.ganeti.rapi import RapiClient
from tests.ganeti.rapi_contract import ClusterEnv, uniqueId
from tests.ganeti.test_sim_contract import startSim
from tests.ganeti.watcher_lifecycle import WatcherHarness
from tests.integration.realservices import AMQP_URL, amqpRestartCommand, runBlocking


class WatcherBrokerOutageTests(WatcherHarness, TestCase):
    timeout = 120

    async def setUp(self) -> None:  # type: ignore[override]
        self.sim = await startSim(self)
        self.bus = openBus(AMQP_URL, reactor)
        await self.bus.startService()
        self.addCleanup(self.bus.stopService)
        self.client = RapiClient.forURL(reactor, self.sim.rapiUrl, "gnt-admin", "gnt-secret", pollInterval=0.01)
        self.env = ClusterEnv(pnode=self.sim.cluster.node, nicLink="gnt-br0")
        self.queueDir = self.sim.queueDir
        self.dataDir = self.sim.dataDir
        self.nodeName = self.sim.cluster.node
        self.clusterName = self.sim.cluster.name
        self.detailsSource = AutoDetails(reactor, self.sim.dataDir)

    async def test_outage(self) -> None:
        """
        Jobs finished during a broker restart are published after it, once each, in job order.
        """
        watcher, collector = await self.startWatcher()
        n = uniqueId()
        before = await self.runJob(self.client.createNetwork(f"snf-net-{n}", "10.77.0.0/24"))
        await self.waitFor(collector, [before])
        stop, start = amqpRestartCommand().split("&&")
        await deferToThread(runBlocking, stop)
        try:
            during = []
            for i in range(1, 6):
                during.append(await self.runJob(self.client.createNetwork(f"snf-net-{n + i}", f"10.77.{i}.0/24")))
            await deferLater(reactor, 0.5, lambda: None)
            self.assertEqual([b["jobId"] for _, b, _ in collector.messages if b["jobId"] in during], [])
        finally:
            await deferToThread(runBlocking, start)
        started = time.time()
        await self.waitFor(collector, during, timeout=60)
        finals = [b["jobId"] for _, b, _ in collector.messages if b["jobId"] in during and b["status"] == "success"]
        self.assertEqual(finals, during)
        await watcher.whenIdle(10)
        self.assertTrue(watcher.health().ok, watcher.health().detail)
        self.assertLess(time.time() - started, 60)
