"""
Tests for C{snf-manage reconcile-servers}, C{reconcile-networks} and
C{reconcile-pools} on the memory database and the simulated cluster: the
report (table or JSON), the progress bar on a terminal only, and the fixes
that need no state machine (orphans, pending tasks, orphan networks).
"""

from __future__ import annotations

import io
import json
from typing import Any

from twisted.internet import reactor

from synnefo_twisted.config import loadConfig
from synnefo_twisted.db.repositories import ServerRepository
from synnefo_twisted.manage.main import run
from synnefo_twisted.manage.reconcile import ProgressBar
from tests.manage.support import KeptOpenContext, WorldTestCase


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class ReconcileServersTests(WorldTestCase):
    async def test_inSync(self) -> None:
        """
        A server that agrees with Ganeti: an empty report, exit status 0.
        """
        await self.createServer()
        self.assertEqual(await self.manageJSON("reconcile-servers", "--grace", "0"), [])
        code, out, err = await self.manage("reconcile-servers", "--grace", "0")
        self.assertEqual(code, 0)
        self.assertIn("KIND", out)
        self.assertIn("1 servers on 1 backends: 0 findings", err)

    async def test_reportOnly(self) -> None:
        """
        A server stopped behind the system's back is reported, not fixed,
        without a --fix flag; the grace period hides it while recent.
        """
        server = await self.createServer()
        await self.sim.client.waitForJob(await self.sim.client.shutdownInstance(f"snf-{server.id}"))
        self.assertEqual(await self.manageJSON("reconcile-servers"), [])
        report = await self.manageJSON("reconcile-servers", "--grace", "0")
        self.assertEqual(
            report,
            [
                {
                    "kind": "unsynced-operstate",
                    "backend": self.backend.id,
                    "server": server.id,
                    "db": "STARTED",
                    "ganeti": "STOPPED",
                    "fix": "",
                }
            ],
        )
        current = await ServerRepository(self.database).get(server.id)
        assert current is not None
        self.assertEqual(current.operstate, "STARTED")

    async def test_fixUnsynced(self) -> None:
        """
        --fix-unsynced applies what Ganeti says through the state machine:
        the server stopped behind the system's back becomes STOPPED, and
        the next pass finds nothing.
        """
        server = await self.createServer()
        await self.sim.client.waitForJob(await self.sim.client.shutdownInstance(f"snf-{server.id}"))
        report = await self.manageJSON("reconcile-servers", "--grace", "0", "--fix-unsynced")
        self.assertEqual([(r["kind"], r["fix"]) for r in report], [("unsynced-operstate", "fixed")])
        current = await ServerRepository(self.database).get(server.id)
        assert current is not None
        self.assertEqual(current.operstate, "STOPPED")
        self.assertEqual(await self.manageJSON("reconcile-servers", "--grace", "0"), [])

    async def test_orphan(self) -> None:
        """
        An instance whose server is deleted is an orphan; --fix-orphans
        removes it from Ganeti, and the next pass finds nothing.
        """
        server = await self.createServer()
        await ServerRepository(self.database).update(server.id, deleted=True, operstate="DESTROYED")
        report = await self.manageJSON("reconcile-servers", "--grace", "0")
        self.assertEqual([(r["kind"], r["server"], r["db"]) for r in report], [("orphan", server.id, "deleted")])
        report = await self.manageJSON("reconcile-servers", "--grace", "0", "--fix-orphans")
        self.assertEqual(report[0]["fix"], "fixed")
        for _ in range(100):
            if f"snf-{server.id}" not in self.sim.cluster.instances:
                break
            await self.sim.client.waitForJob(max(self.sim.queue.jobs))
        self.assertNotIn(f"snf-{server.id}", self.sim.cluster.instances)
        self.assertEqual(await self.manageJSON("reconcile-servers", "--grace", "0"), [])

    async def test_pendingTask(self) -> None:
        """
        A task whose job is over is reported; --fix-pending-tasks clears it.
        """
        server = await self.createServer()
        jobId = await self.sim.client.getInstanceInfo(f"snf-{server.id}")
        await self.sim.client.waitForJob(jobId)
        await ServerRepository(self.database).update(server.id, task="START", task_job_id=jobId)
        report = await self.manageJSON("reconcile-servers", "--grace", "0", "--fix-pending-tasks")
        self.assertEqual([(r["kind"], r["fix"]) for r in report], [("pending-task", "fixed")])
        current = await ServerRepository(self.database).get(server.id)
        assert current is not None
        self.assertEqual((current.task, current.task_job_id), (None, None))
        self.assertEqual(await self.manageJSON("reconcile-servers", "--grace", "0"), [])

    async def test_unreachableBackend(self) -> None:
        """
        A backend whose RAPI cannot be reached is named on stderr and the
        exit status is 1; the other backends are still reconciled.
        """
        from synnefo_twisted.db.repositories import BackendRepository

        server = await self.createServer()
        await self.sim.client.waitForJob(await self.sim.client.shutdownInstance(f"snf-{server.id}"))
        down = await BackendRepository(self.database).add("down.example.org", "http://127.0.0.1:1", verifyTLS=False)
        for argv in (("reconcile-servers", "--grace", "0"), ("reconcile-networks",)):
            code, _out, err = await self.manage(*argv)
            self.assertEqual(code, 1, err)
            self.assertIn(f"backend {down.id} not reconciled", err)
        code, out, err = await self.manage("--output-format", "json", "reconcile-servers", "--grace", "0")
        self.assertEqual([r["kind"] for r in json.loads(out)], ["unsynced-operstate"])

    async def test_backendId(self) -> None:
        """
        An unknown --backend-id is an input error (exit status 2).
        """
        code, _, err = await self.manage("reconcile-servers", "--backend-id", "99")
        self.assertEqual(code, 2)
        self.assertIn("no online backend with id 99", err)

    async def test_progressBar(self) -> None:
        """
        The progress bar is drawn when standard output is a terminal, and
        only then.
        """
        await self.createServer()
        terminal = _Terminal()
        context = KeptOpenContext(
            reactor=reactor,
            config=loadConfig(None, {}, environ={}),
            out=terminal,
            err=io.StringIO(),
            database=self.database,
            registry=self.registry,
        )
        self.assertEqual(await run(reactor, ["reconcile-servers", "--grace", "0"], context), 0)
        self.assertIn("\rreconcile-servers [" + "#" * ProgressBar.width + "] 1/1", terminal.getvalue())
        _code, out, _ = await self.manage("reconcile-servers", "--grace", "0")
        self.assertNotIn("\r", out)


class ReconcileNetworksTests(WorldTestCase):
    async def test_orphanNetwork(self) -> None:
        """
        A C{snf-net-} network with no network row is an orphan;
        --fix-all disconnects and removes it from Ganeti.
        """
        client: Any = self.sim.client
        await client.waitForJob(await client.createNetwork("snf-net-99", "10.9.0.0/24"))
        await client.waitForJob(await client.connectNetwork("snf-net-99", "default", "bridged", "br9"))
        report = await self.manageJSON("reconcile-networks")
        self.assertEqual([(r["kind"], r["network"], r["fix"]) for r in report], [("orphan", 99, "")])
        report = await self.manageJSON("reconcile-networks", "--fix-all")
        self.assertEqual(report[0]["fix"], "fixed")
        for _ in range(100):
            if "snf-net-99" not in self.sim.cluster.networks:
                break
            await client.waitForJob(max(self.sim.queue.jobs))
        self.assertNotIn("snf-net-99", self.sim.cluster.networks)
        self.assertEqual(await self.manageJSON("reconcile-networks"), [])


class ReconcilePoolsTests(WorldTestCase):
    async def test_pools(self) -> None:
        """
        With nothing allocated, every pool agrees: an empty report.
        """
        self.assertEqual(await self.manageJSON("reconcile-pools"), [])
        code, _out, err = await self.manage("reconcile-pools", "--fix")
        self.assertEqual(code, 0)
        self.assertIn("0 pools differ", err)
