"""
The C{ganeti-sim} plugin: a simulated Ganeti cluster on loopback (RAPI,
job queue writing real job files, RFB consoles). The embedded default
registers it as backend 1.

Section C{[ganeti-sim]}:
  - C{rapi_listen}: the RAPI endpoint (plain HTTP; loopback);
  - C{data_dir}: where the queue (C{queue/job-N}) and ssconf files go
    (default C{<state_dir>/ganeti-sim});
  - C{cluster_name}, C{node_name}: the names it reports;
  - C{rapi_user}, C{rapi_password}: the write user;
  - C{read_user}, C{read_password}: an optional read-only user;
  - C{job_duration}: seconds an op runs; C{op_durations}: per op,
    C{["OP_INSTANCE_CREATE=2.0", ...]};
  - C{error_rates}: per-op failure probability, C{["OP_INSTANCE_CREATE=0.1"]};
  - C{max_running_jobs}: jobs running at once;
  - C{nic_link}, C{mac_prefix}: NIC defaults; C{console_host}: where RFB
    consoles listen; C{seed}: for the failure injection;
  - C{persist}: keep instances and networks across restarts;
    C{archive_after}: seconds before finished jobs move to C{queue/archive/}.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
from twisted.application.service import IService, Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.plugin import IPlugin
from twisted.python.filepath import FilePath
from zope.interface import implementer

from synnefo_twisted.backends import registerSimulatedBackend
from synnefo_twisted.config import Setting, checkEndpoint
from synnefo_twisted.context import NodeContext
from synnefo_twisted.health import Health
from synnefo_twisted.interfaces import IHealthReporter, ISynnefoPlugin

log = Logger()


def _pairs(value: list[str]) -> str | None:
    for item in value:
        op, sep, number = item.partition("=")
        if not sep or not op.startswith("OP_"):
            return f"{item!r} is not OP_NAME=number"
        try:
            float(number)
        except ValueError:
            return f"{item!r}: {number!r} is not a number"
    return None


def parsePairs(value: list[str]) -> dict[str, float]:
    """
    C{["OP_X=1.5"]} → C{{"OP_X": 1.5}}.
    """
    return {op: float(number) for op, _, number in (item.partition("=") for item in value)}


SETTINGS: tuple[Setting, ...] = (
    Setting("rapi_listen", "str", "tcp:5081:interface=127.0.0.1", "RAPI endpoint", check=checkEndpoint),
    Setting("data_dir", "str", "", "queue and ssconf directory (default: <state_dir>/ganeti-sim)"),
    Setting("cluster_name", "str", "sim.ganeti.local", "cluster name"),
    Setting("node_name", "str", "node1.sim.ganeti.local", "the node's name"),
    Setting("rapi_user", "str", "synnefo", "RAPI write user"),
    Setting("rapi_password", "str", "synnefo-sim", "RAPI write password", secret=True),
    Setting("read_user", "str", "", "RAPI read-only user (none when empty)"),
    Setting("read_password", "str", "", "RAPI read-only password", secret=True),
    Setting("job_duration", "float", 0.5, "seconds an op runs"),
    Setting("op_durations", "list[str]", ["OP_INSTANCE_CREATE=2.0"], "per-op seconds, OP_NAME=seconds", check=_pairs),
    Setting("error_rates", "list[str]", [], "per-op failure probability, OP_NAME=p", check=_pairs),
    Setting("max_running_jobs", "int", 20, "jobs running at once"),
    Setting("nic_link", "str", "br0", "default NIC link"),
    Setting("mac_prefix", "str", "aa:00:01", "MAC prefix"),
    Setting("console_host", "str", "127.0.0.1", "address of the RFB consoles"),
    Setting("seed", "int", 0, "random seed for failure injection"),
    Setting("persist", "bool", True, "keep the cluster state across restarts (<data_dir>/sim-state.json)"),
    Setting("archive_after", "float", 21600.0, "seconds after which finished jobs are archived (as Ganeti's watcher)"),
)


def simDataDir(node: NodeContext) -> Path:
    """
    The simulated cluster's data directory for a node with default settings.
    """
    return Path(node.stateDir) / "ganeti-sim"


@implementer(IPlugin, ISynnefoPlugin)
@attrs.frozen
class GanetiSimPlugin:
    name: str = "ganeti-sim"
    roles: frozenset[str] = frozenset()
    description: str = "simulated Ganeti cluster on loopback (RAPI, job files, RFB consoles)"
    requires: frozenset[str] = frozenset({"database"})
    startOrder: int = 10
    section: str | None = "ganeti-sim"
    settings: tuple[Setting, ...] = SETTINGS

    def makeService(self, node: object) -> IService:
        assert isinstance(node, NodeContext)
        from synnefo_twisted.ganeti.sim.model import SimCluster
        from synnefo_twisted.ganeti.sim.service import SimulatedClusterService

        s = node.settings
        users = {s["rapi_user"]: (s["rapi_password"], "write")}
        if s["read_user"]:
            users[s["read_user"]] = (s["read_password"], "read")
        data = FilePath(s["data_dir"]) if s["data_dir"] else FilePath(str(simDataDir(node)))
        cluster = SimCluster(
            name=s["cluster_name"],
            node=s["node_name"],
            nicLink=s["nic_link"],
            macPrefix=s["mac_prefix"],
        )
        simulated = SimulatedClusterService(
            node.reactor,
            data,
            s["rapi_listen"],
            users,
            cluster=cluster,
            durations=parsePairs(s["op_durations"]),
            defaultDuration=float(s["job_duration"]),
            errorRates=parsePairs(s["error_rates"]),
            maxRunning=s["max_running_jobs"],
            consoleHost=s["console_host"],
            seed=s["seed"],
            persist=s["persist"],
            archiveAfter=float(s["archive_after"]),
        )
        return _RegisteredSimulator(simulated, node.database, s["cluster_name"], s["rapi_user"], s["rapi_password"])


@implementer(IHealthReporter)
class _RegisteredSimulator(Service):
    """
    Runs the simulated cluster and, once its RAPI listens, registers it in
    the C{backends} table (backend 1 on a fresh embedded node).
    """

    def __init__(self, simulated: Any, database: Any, clustername: str, user: str, password: str) -> None:
        self.simulated = simulated
        self._database = database
        self._registration = (clustername, user, password)

    @property
    def healthName(self) -> str:
        return "ganeti-sim"

    def health(self) -> Health:
        return self.simulated.health()

    async def _start(self) -> None:
        await self.simulated.startService()
        clustername, user, password = self._registration
        backend = await registerSimulatedBackend(self._database, clustername, self.simulated.rapiUrl, user, password)
        log.info("simulated cluster {cluster} is backend {backend_id}", cluster=clustername, backend_id=backend.id)

    def startService(self) -> Deferred[None]:
        Service.startService(self)
        return Deferred.fromCoroutine(self._start())

    def stopService(self) -> Deferred[Any]:
        Service.stopService(self)
        return self.simulated.stopService()


ganeti_sim = GanetiSimPlugin()
