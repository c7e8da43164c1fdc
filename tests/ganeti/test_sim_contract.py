"""
The RAPI contract suite against the simulated cluster, over real loopback
HTTP (the same suite passes against the real Ganeti 3.0 cluster in
C{tests.integration.ganeti.test_rapi_real}).
"""

from __future__ import annotations

from twisted.internet import reactor  # tests only: the contract runs on the real reactor
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from synnefo_twisted.ganeti.rapi import RapiClient
from synnefo_twisted.ganeti.sim.model import SimCluster
from synnefo_twisted.ganeti.sim.service import SimulatedClusterService
from tests.ganeti.rapi_contract import ClusterEnv, RapiContractMixin

USERS = {"gnt-admin": ("gnt-secret", "write"), "gnt-reader": ("gnt-reader-secret", "read")}


async def startSim(testCase: TestCase, **kwargs: object) -> SimulatedClusterService:
    service = SimulatedClusterService(
        reactor,
        FilePath(testCase.mktemp()),
        "tcp:0:interface=127.0.0.1",
        USERS,
        cluster=SimCluster(nicLink="gnt-br0"),
        defaultDuration=0.005,
        **kwargs,  # type: ignore[arg-type]
    )
    await service.startService()
    testCase.addCleanup(service.stopService)
    return service


class SimulatedRapiContractTests(RapiContractMixin, TestCase):
    """
    The contract suite against the simulator.
    """

    async def setUp(self) -> None:  # type: ignore[override]
        self.sim = await startSim(self)
        url = self.sim.rapiUrl

        def client(user: str, password: str) -> RapiClient:
            return RapiClient.forURL(reactor, url, user, password, timeout=10, pollInterval=0.01)

        self.client = client("gnt-admin", "gnt-secret")
        self.readOnly = client("gnt-reader", "gnt-reader-secret")
        self.badPassword = client("gnt-admin", "wrong")
        self.env = ClusterEnv(pnode=self.sim.cluster.node, nicLink="gnt-br0")
