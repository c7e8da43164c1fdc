"""
Tests for the socket-free simulated cluster
(L{synnefo_twisted.ganeti.sim.memory}): deterministic on a Clock, and the
RAPI contract suite through StubTreq.
"""

from __future__ import annotations

from twisted.internet import reactor  # tests only: the contract suite runs on the real reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from synnefo_twisted.ganeti import errors
from synnefo_twisted.ganeti.sim.memory import InMemoryCluster
from synnefo_twisted.ganeti.sim.model import SimCluster
from synnefo_twisted.interfaces import IGanetiClient
from tests.ganeti.rapi_contract import ClusterEnv, RapiContractMixin


class InMemoryClockTests(SynchronousTestCase):
    def test_deterministic(self) -> None:
        """
        On a Clock, a job completes exactly when its duration has passed, and the client sees the new state; no timer is left.
        """
        clock = Clock()
        sim = InMemoryCluster.create(clock, durations={"OP_INSTANCE_CREATE": 2.0})
        self.assertTrue(verifyObject(IGanetiClient, sim.client))
        jobId = self.successResultOf(sim.client.createInstance("snf-1", "diskless", [], [], os="noop"))
        done = sim.client.waitForJob(jobId)
        clock.advance(0)
        clock.pump([0.1] * 19)
        self.assertNoResult(done)
        clock.pump([0.1] * 2)
        self.assertEqual(self.successResultOf(done)["status"], "success")
        record = self.successResultOf(sim.client.getInstance("snf-1"))
        self.assertEqual(record["status"], "running")
        console = self.successResultOf(sim.client.getInstanceConsole("snf-1"))
        self.assertEqual(console["port"], 5901)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_readOnly(self) -> None:
        """
        The read-only client reads but may not submit jobs.
        """
        sim = InMemoryCluster.create(Clock())
        self.assertIn("name", self.successResultOf(sim.readOnlyClient.getInfo()))
        self.failureResultOf(sim.readOnlyClient.startupInstance("snf-1"), errors.RapiForbidden)


class InMemoryContractTests(RapiContractMixin, TestCase):
    """
    The RAPI contract through StubTreq (queue on the real reactor, consoles listening for real).
    """

    def setUp(self) -> None:
        sim = InMemoryCluster.create(
            reactor,
            cluster=SimCluster(nicLink="gnt-br0"),
            consoleReactor=reactor,
            defaultDuration=0.002,
            pollInterval=0.005,
        )
        self.addCleanup(sim.queue.stop)
        self.client = sim.client
        self.readOnly = sim.readOnlyClient
        self.badPassword = sim.clientFor("synnefo", "wrong")
        self.env = ClusterEnv(pnode=sim.cluster.node, nicLink="gnt-br0")
        self.consoles = sim.rapi.consoles

        def closeConsoles() -> object:
            return self.consoles.closeAll()  # type: ignore[union-attr]

        self.addCleanup(closeConsoles)
