"""
The reconciler plugin in the embedded default (C{twistd -n synnefo}, every
role, SQLite, the simulated cluster) with the watcher left out, so that
every job message is lost: only the reconciler's periodic pass can tell
the database what Ganeti did. A server created over HTTP becomes ACTIVE;
stopped directly in Ganeti it becomes STOPPED; removed directly in Ganeti
it is DELETED — each through the reconciler's simulated events.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from synnefo_twisted.ganeti.details import SIM_RAPI_FILE, readSimRapiFile
from synnefo_twisted.ganeti.rapi import RapiClient
from tests.integration.nodeprocess import nodeConfig, spawnNode, vncproxySection
from tests.web.test_node_servers import freePorts
from web.seed import DEMO_IMAGE_ID as DEMO_IMAGE


def config(control: int, low: int) -> str:
    return nodeConfig(
        {
            "ganeti-sim": {"job_duration": 0.1},
            "reconciler": {"initial_delay": 0.5, "period": 1.0, "grace": 0.2, "fix_orphans": True},
            "vncproxy": vncproxySection(control, low),
        }
    )


class EmbeddedReconcilerTests(TestCase):
    timeout = 120

    async def waitStatus(self, serverId: int, wanted: str) -> dict[str, Any]:
        last: dict[str, Any] = {}
        for _ in range(400):
            response = await treq.get(
                f"{self.base}/compute/v2.0/servers/{serverId}", headers=self.headers, pool=self.pool
            )
            body = await response.json()
            if response.code == 404 and wanted == "DELETED":
                return {}
            last = body.get("server", body)
            if last.get("status") == wanted:
                return last
            await deferLater(reactor, 0.05, lambda: None)
        raise AssertionError(f"server {serverId} never {wanted}: {last}")

    async def test_onlyReconciliation(self) -> None:
        """
        With no watcher, the reconciler alone brings the database to what
        Ganeti has: ACTIVE after the build, STOPPED, then DELETED.
        """
        directory = Path(self.mktemp()).resolve()
        (directory / "state").mkdir(parents=True)
        control, low = freePorts(2)
        (directory / "node.toml").write_text(config(control, low))
        (directory / "state" / "vncproxy-users").write_text("")
        node = spawnNode(
            reactor, ["--config", "node.toml", "--no-plugin", "dhcp", "--no-plugin", "watcher"], str(directory)
        )
        self.addCleanup(lambda: node.ended)
        self.addCleanup(node.terminate)
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        listening = await node.waitFor(lambda e: e.get("listener") == "api" and "port" in e)
        demo = await node.waitFor(lambda e: "token" in e and e.get("email") == "demo@example.org")
        await node.waitFor(lambda e: "backend_id" in e)
        self.base = f"http://127.0.0.1:{listening['port']}"
        self.headers = {"X-Auth-Token": demo["token"], "Content-Type": "application/json"}
        [rapiFile] = list((directory / "state").rglob(SIM_RAPI_FILE))
        sim = readSimRapiFile(FilePath(str(rapiFile.parent)))
        assert sim is not None
        client = RapiClient.forURL(reactor, sim["url"], sim["user"], sim["password"])

        flavors = await (
            await treq.get(f"{self.base}/compute/v2.0/flavors", headers=self.headers, pool=self.pool)
        ).json()
        body = {"server": {"name": "drift", "imageRef": DEMO_IMAGE, "flavorRef": flavors["flavors"][0]["id"]}}
        response = await treq.post(
            f"{self.base}/compute/v2.0/servers", json.dumps(body).encode(), headers=self.headers, pool=self.pool
        )
        created = await response.json()
        self.assertEqual(response.code, 202, created)
        serverId = created["server"]["id"]
        await self.waitStatus(serverId, "ACTIVE")

        await client.waitForJob(await client.shutdownInstance(f"snf-{serverId}"), timeout=30)
        await self.waitStatus(serverId, "STOPPED")

        await client.waitForJob(await client.deleteInstance(f"snf-{serverId}"), timeout=30)
        await self.waitStatus(serverId, "DELETED")
