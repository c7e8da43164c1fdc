"""
The watcher pointed at the real Ganeti 3.0 cluster's job queue (inotify),
publishing to the real RabbitMQ: the lifecycle's messages, in order, with
details from config.data, and again with details from the RAPI.
"""

from __future__ import annotations

from twisted.internet import reactor  # tests only: real services
from twisted.python.filepath import FilePath

from synnefo_twisted.bus import openBus
from synnefo_twisted.ganeti.details import ConfigDataDetails, DetailsSource, RapiDetails
from tests.ganeti.rapi_contract import ClusterEnv
from tests.ganeti.watcher_lifecycle import WatcherHeartbeatMixin, WatcherLifecycleMixin, WatcherRestartMixin
from tests.integration.ganeti import realcluster
from tests.integration.ganeti.test_rapi_real import QuiescingTestCase, realClient
from tests.integration.realservices import AMQP_URL


class _RealCluster(QuiescingTestCase):
    timeout = 180

    async def setUp(self) -> None:  # type: ignore[override]
        QuiescingTestCase.setUp(self)
        queue = FilePath(realcluster.QUEUE_DIR)
        if not queue.isdir():
            self.fail(realcluster.MISSING)
        self.bus = openBus(AMQP_URL, reactor)
        await self.bus.startService()
        self.addCleanup(self.bus.stopService)
        self.client = realClient(realcluster.USER, realcluster.PASSWORD)
        self.env = ClusterEnv(pnode=realcluster.NODE)
        self.queueDir = queue
        self.dataDir = FilePath(realcluster.DATA_DIR)
        self.nodeName = realcluster.NODE
        self.clusterName = (await self.client.getInfo())["name"]
        self.detailsSource = self.details()

    def details(self) -> DetailsSource:
        return ConfigDataDetails(FilePath(realcluster.DATA_DIR).child("config.data"))


class RealClusterWatcherTests(WatcherLifecycleMixin, WatcherRestartMixin, WatcherHeartbeatMixin, _RealCluster):
    """
    Real queue, real broker, details from config.data.
    """


class RealClusterWatcherRapiDetailsTests(WatcherLifecycleMixin, _RealCluster):
    """
    The lifecycle again, with instance details from the RAPI (what the simulator offers).
    """

    def details(self) -> DetailsSource:
        return RapiDetails(realClient(realcluster.USER, realcluster.PASSWORD))
