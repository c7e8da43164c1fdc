"""
Issue 5 item 5, end to end in the embedded default: C{twistd -n synnefo}
with every role (as C{make run}: SQLite, the in-process bus, the simulated
cluster; the DHCP responder left out since it needs NFQUEUE). A server
created over HTTP becomes ACTIVE, reboots, stops, starts and is deleted,
driven only by the simulated cluster's job files → watcher → bus →
dispatcher: nothing but the API request touches the database here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from tests.integration.nodeprocess import nodeConfig, spawnNode, vncproxySection
from tests.web.test_node_servers import freePorts
from web.seed import DEMO_IMAGE_ID as DEMO_IMAGE


def config(control: int, low: int) -> str:
    return nodeConfig(
        {
            "ganeti-sim": {"job_duration": 0.1, "op_durations": ["OP_INSTANCE_CREATE=0.3"]},
            "watcher": {"rescan_interval": 5.0},
            "vncproxy": vncproxySection(control, low),
        }
    )


class EmbeddedLifecycleTests(TestCase):
    timeout = 120

    async def waitStatus(self, base: str, headers: dict[str, str], serverId: int, wanted: str) -> dict[str, Any]:
        """
        Poll the server until its status is C{wanted} and no task is pending.
        """
        last: dict[str, Any] = {}
        for _ in range(400):
            response = await treq.get(f"{base}/compute/v2.0/servers/{serverId}", headers=headers, pool=self.pool)
            body = await response.json()
            if response.code == 404 and wanted == "DELETED":
                return {}
            last = body.get("server", body)
            if last.get("status") == wanted and not last.get("SNF:task_state"):
                return last
            await deferLater(reactor, 0.05, lambda: None)
        raise AssertionError(f"server {serverId} never {wanted}: {last}")

    async def action(self, base: str, headers: dict[str, str], serverId: int, body: dict[str, Any]) -> None:
        response = await treq.post(
            f"{base}/compute/v2.0/servers/{serverId}/action", json.dumps(body).encode(), headers=headers, pool=self.pool
        )
        content = await response.content()
        self.assertEqual(response.code, 202, content)

    async def test_lifecycle(self) -> None:
        """
        Create → ACTIVE (progress 100, the quota taken), reboot → ACTIVE, stop → STOPPED, start → ACTIVE,
        delete → DELETED, each state reached only through the dispatcher.
        """
        directory = Path(self.mktemp()).resolve()
        (directory / "state").mkdir(parents=True)
        control, low = freePorts(2)
        (directory / "node.toml").write_text(config(control, low))
        (directory / "state" / "vncproxy-users").write_text("")
        node = spawnNode(reactor, ["--config", "node.toml", "--no-plugin", "dhcp"], str(directory))
        self.addCleanup(lambda: node.ended)
        self.addCleanup(node.terminate)
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        listening = await node.waitFor(lambda e: e.get("listener") == "api" and "port" in e)
        demo = await node.waitFor(lambda e: "token" in e and e.get("email") == "demo@example.org")
        await node.waitFor(lambda e: "backend_id" in e)
        await node.waitFor(lambda e: "consuming" in e.get("log_format", "") or "queues" in e)
        base = f"http://127.0.0.1:{listening['port']}"
        headers = {"X-Auth-Token": demo["token"], "Content-Type": "application/json"}
        flavors = await (await treq.get(f"{base}/compute/v2.0/flavors", headers=headers, pool=self.pool)).json()
        body = {"server": {"name": "life", "imageRef": DEMO_IMAGE, "flavorRef": flavors["flavors"][0]["id"]}}
        response = await treq.post(
            f"{base}/compute/v2.0/servers", json.dumps(body).encode(), headers=headers, pool=self.pool
        )
        created = await response.json()
        self.assertEqual(response.code, 202, created)
        serverId = created["server"]["id"]

        active = await self.waitStatus(base, headers, serverId, "ACTIVE")
        self.assertEqual(active["progress"], 100)
        await self.action(base, headers, serverId, {"reboot": {"type": "SOFT"}})
        await self.waitStatus(base, headers, serverId, "ACTIVE")
        await self.action(base, headers, serverId, {"shutdown": {}})
        await self.waitStatus(base, headers, serverId, "STOPPED")
        await self.action(base, headers, serverId, {"start": {}})
        await self.waitStatus(base, headers, serverId, "ACTIVE")
        response = await treq.delete(f"{base}/compute/v2.0/servers/{serverId}", headers=headers, pool=self.pool)
        await response.content()
        self.assertEqual(response.code, 204)
        await self.waitStatus(base, headers, serverId, "DELETED")
        since = created["server"]["created"]
        response = await treq.get(
            f"{base}/compute/v2.0/servers/detail", params={"changes-since": since}, headers=headers, pool=self.pool
        )
        detail = await response.json()
        self.assertEqual(response.code, 200, detail)
        [gone] = [s for s in detail["servers"] if s["id"] == serverId]
        self.assertEqual(gone["status"], "DELETED")
