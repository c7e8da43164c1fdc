"""
The watcher on the simulator's job files publishing to the real RabbitMQ.
"""

from __future__ import annotations

from twisted.internet import reactor  # tests only: real broker

from synnefo_twisted.bus import openBus
from tests.ganeti.test_watcher_sim import SimulatedClusterWatcherTests
from tests.integration.realservices import AMQP_URL


class SimulatedClusterWatcherAMQPTests(SimulatedClusterWatcherTests):
    def makeBus(self) -> object:
        return openBus(AMQP_URL, reactor)
