"""
C{snf-manage queue-inspect}, C{queue-retry}, C{queue-purge} and
C{dispatcher-status} in-process, with a running dispatcher, the watcher on
the simulated cluster's job files and a bus (the in-process one here;
RabbitMQ in L{tests.integration.dispatcher.test_queue_commands_real}).
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

import attrs
from twisted.internet import reactor as _globalReactor  # noqa: N812  (inotify, sockets, threads)
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import deferLater
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from synnefo_twisted.backends import BackendRegistry
from synnefo_twisted.bus.memory import MemoryBus
from synnefo_twisted.bus.topology import eventQueues
from synnefo_twisted.config import loadConfig
from synnefo_twisted.db.repositories import BackendRepository
from synnefo_twisted.dispatcher.service import DispatcherService, DispatcherSettings, refreshBackendResources
from synnefo_twisted.dispatcher.status import StatusResponder
from synnefo_twisted.ganeti.details import AutoDetails
from synnefo_twisted.ganeti.published import PublishedState
from synnefo_twisted.ganeti.watcher import JobQueueWatcher
from synnefo_twisted.manage.base import ManageContext
from synnefo_twisted.manage.main import run
from synnefo_twisted.pluginloader import discoverPlugins, pluginSections
from synnefo_twisted.testing import memoryDatabase
from tests.ganeti.test_sim_contract import startSim

if TYPE_CHECKING:
    _Base = TestCase
else:
    _Base = object


@attrs.define
class _Context(ManageContext):
    """
    A context using the test's bus and keeping it open.
    """

    def close(self) -> Deferred[None]:
        return succeed(None)


class QueueCommandsMixin(_Base):
    timeout = 60
    reactor: Any = _globalReactor
    busURL = "memory://"

    def makeBus(self) -> Any:
        return MemoryBus(self.reactor)

    def prefix(self) -> str:
        return "snf-"

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        return Deferred.fromCoroutine(self._setUp())

    async def _setUp(self) -> None:
        self.sim = await startSim(self)
        self.db = await memoryDatabase(self.reactor)
        self.addCleanup(self.db.stopService)
        await BackendRepository(self.db).add(
            self.sim.cluster.name, self.sim.rapiUrl, username="gnt-admin", password="gnt-secret", simulated=True
        )
        self.bus = self.makeBus()
        await self.bus.startService()
        self.addCleanup(self.bus.stopService)
        self.pfx = self.prefix()
        self.names = eventQueues(self.pfx)
        self.registry = BackendRegistry(self.db, self.pfx, self.reactor)
        watcher = JobQueueWatcher(
            self.reactor,
            self.bus,
            self.sim.queueDir,
            PublishedState(FilePath(self.mktemp())),
            dataDir=self.sim.dataDir,
            details=AutoDetails(self.reactor, self.sim.dataDir),
            nodeName=self.sim.cluster.node,
            rescanInterval=3600,
        )
        await watcher.startService()
        self.addCleanup(watcher.stopService)
        self.dispatcher = DispatcherService(
            self.reactor,
            self.db,
            self.bus,
            DispatcherSettings(prefix=self.pfx),
            refreshBackend=lambda cluster: Deferred.fromCoroutine(
                refreshBackendResources(self.db, self.registry, cluster)
            ),
            statusResponder=StatusResponder(self.reactor, self.bus, self.registry, self.pfx, timeout=5.0),
        )
        await self.dispatcher.startService()
        self.addCleanup(self._stopDispatcher)
        self.addCleanup(self._deleteQueues)

    async def _stopDispatcher(self) -> None:
        if self.dispatcher.running:
            await self.dispatcher.stopService()

    async def _deleteQueues(self) -> None:
        for family in ("op", "network", "progress", "cluster"):
            queue = getattr(self.names, family)
            await self.bus.deleteQueue(queue)
            await self.bus.deleteQueue(f"{queue}-dl")

    async def manage(self, *argv: str, stdin: str = "") -> tuple[int, str, str]:
        config = loadConfig(None, pluginSections(discoverPlugins()), environ={})
        config = config.replace("ganeti", "prefix", self.pfx)
        out, err = io.StringIO(), io.StringIO()
        context = _Context(self.reactor, config, out=out, err=err, stdin=io.StringIO(stdin), bus=self.bus)
        code = await run(self.reactor, list(argv), context)
        return code, out.getvalue(), err.getvalue()

    async def deadLettered(self, count: int, waiting: int = 2) -> None:
        """
        Wait until the dispatcher dead-lettered C{count} messages and
        C{waiting} of them are in the op -dl queue (confirmed and routed).
        """
        for _ in range(1000):
            if self.dispatcher.counts["deadLettered"] >= count:
                if await self.bus.messageCount(f"{self.names.op}-dl") >= waiting:
                    return
            await deferLater(self.reactor, 0.01, lambda: None)
        raise AssertionError(f"only {self.dispatcher.counts}")

    async def publishBad(self) -> None:
        await self.bus.publish("ganeti", self.names.opKey, b"not json at all")
        body = {"type": "ganeti-op-status", "instance": f"{self.pfx}1", "operation": "OP_INSTANCE_STARTUP"}
        await self.bus.publish("ganeti", self.names.opKey, json.dumps(body).encode())
        await self.deadLettered(2)

    async def test_inspect(self) -> None:
        """
        queue-inspect counts every dispatcher queue; with --queue it shows the waiting messages and why they died,
        leaving them in the queue.
        """
        await self.publishBad()
        code, out, _ = await self.manage("--output-format", "json", "queue-inspect")
        self.assertEqual(code, 0)
        counts = {row["queue"]: row["messages"] for row in json.loads(out)}
        self.assertEqual(counts[f"{self.names.op}-dl"], 2)
        self.assertEqual(counts[self.names.op], 0)
        code, out, _ = await self.manage("--output-format", "json", "queue-inspect", "--queue", f"{self.names.op}-dl")
        rows = json.loads(out)
        self.assertEqual([r["origin"] for r in rows], [self.names.opKey] * 2)
        self.assertTrue(rows[0]["reason"].startswith("malformed: not JSON"))
        self.assertEqual(rows[1]["reason"], "malformed: missing key 'status'")
        self.assertEqual(await self.bus.messageCount(f"{self.names.op}-dl"), 2)
        code, _, err = await self.manage("queue-inspect", "--queue", "elsewhere")
        self.assertEqual(code, 2)
        self.assertIn("unknown queue 'elsewhere'", err)

    async def test_retry(self) -> None:
        """
        queue-retry sends dead letters back once; dying again makes them zombies, which the next retry drops.
        """
        await self.publishBad()
        code, out, _ = await self.manage("--output-format", "json", "queue-retry", "--queue", f"{self.names.op}-dl")
        self.assertEqual((code, json.loads(out)[0]["retried"]), (0, 2))
        await self.deadLettered(4, waiting=0)
        # The second deaths may reach the -dl queue a little later (the
        # broker requeues what the first retry's consumer saw late).
        dropped = retried = 0
        for _ in range(100):
            code, out, _ = await self.manage("--output-format", "json", "queue-retry")
            row = {r["queue"]: r for r in json.loads(out)}[f"{self.names.op}-dl"]
            dropped += row["zombies_dropped"]
            retried += row["retried"]
            if dropped >= 2:
                break
            await deferLater(self.reactor, 0.05, lambda: None)
        self.assertEqual((dropped, retried), (2, 0))
        self.assertEqual(await self.bus.messageCount(f"{self.names.op}-dl"), 0)

    async def test_purge(self) -> None:
        """
        queue-purge asks first: anything but yes keeps the messages; yes (or --yes) drops them.
        """
        await self.publishBad()
        queue = f"{self.names.op}-dl"
        code, _, err = await self.manage("queue-purge", queue, stdin="n\n")
        self.assertEqual(code, 1)
        self.assertIn("Drop the 2 messages waiting in", err)
        self.assertIn("not confirmed", err)
        self.assertEqual(await self.bus.messageCount(queue), 2)
        code, _, err = await self.manage("queue-purge", queue, stdin="yes\n")
        self.assertEqual(code, 0)
        self.assertIn("purged 2 messages", err)
        await self.publishBad()
        code, _, err = await self.manage("queue-purge", queue, "--yes")
        self.assertEqual((code, await self.bus.messageCount(queue)), (0, 0))

    async def test_status(self) -> None:
        """
        dispatcher-status goes through the dispatcher, the cluster (a dry-run heartbeat job) and the watcher and
        reports RAPI and watcher ok; with no dispatcher it says none answered.
        """
        code, out, err = await self.manage("--output-format", "json", "dispatcher-status")
        self.assertEqual(code, 0, err)
        self.assertEqual(
            json.loads(out), {"dispatcher": "ok", "backends": {self.sim.cluster.name: {"RAPI": "ok", "eventd": "ok"}}}
        )
        await self.dispatcher.stopService()
        code, _, err = await self.manage("dispatcher-status", "--timeout", "0.5")
        self.assertEqual(code, 1)
        self.assertIn("no dispatcher answered within 0.5 s", err)

    async def test_clusterRefresh(self) -> None:
        """
        A successful OP_CLUSTER_SET_PARAMS message makes the dispatcher read the cluster's nodes and store its
        resources (spec §2.5 update_cluster).
        """
        [before] = await BackendRepository(self.db).list()
        self.assertIsNone(before.resources_updated)
        body = {"type": "ganeti-cluster-status", "operation": "OP_CLUSTER_SET_PARAMS", "status": "success",
                "cluster": self.sim.cluster.name, "jobId": 1, "event_time": [1700000000, 0]}  # fmt: skip
        await self.bus.publish("ganeti", self.names.clusterKey, json.dumps(body).encode())
        for _ in range(300):
            [after] = await BackendRepository(self.db).list()
            if after.resources_updated is not None:
                break
            await deferLater(self.reactor, 0.02, lambda: None)
        self.assertIsNotNone(after.resources_updated)
        self.assertGreater(after.mtotal, 0)


class MemoryQueueCommandsTests(QueueCommandsMixin, TestCase):
    """
    On the in-process bus.
    """
