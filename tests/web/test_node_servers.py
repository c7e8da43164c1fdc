"""
The servers API end to end in a real node: C{twistd -n synnefo} running the
C{api} and C{ganeti-sim} plugins (SQLite, a simulated cluster on loopback
writing real job files); the demo user creates a server over HTTP and the
cluster's queue directory holds the CreateInstance job of spec §2.2.
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

from tests.integration.nodeprocess import spawnNode

CONFIG = """
[node]
roles = []
admin_listen = "tcp:0:interface=127.0.0.1"
state_dir = "./state"

[database]
url = "sqlite:///./state/synnefo.db"

[ganeti]
simulated = true

[ganeti-sim]
rapi_listen = "tcp:0:interface=127.0.0.1"
persist = false

[api]
listen = "tcp:0:interface=127.0.0.1"
base_url = "http://api.test"
"""


class NodeServersTests(TestCase):
    timeout = 90

    def setUp(self) -> None:
        self.dir = Path(self.mktemp()).resolve()
        self.dir.mkdir()
        (self.dir / "node.toml").write_text(CONFIG)
        self.pool = HTTPConnectionPool(reactor, persistent=False)

    async def createJob(self, instance: str) -> dict[str, Any]:
        """
        The job file of the instance's OP_INSTANCE_CREATE, once the queue has it.
        """
        queue = self.dir / "state" / "ganeti-sim" / "queue"
        for _ in range(200):
            for path in sorted(queue.glob("job-*")):
                try:
                    job = json.loads(path.read_text())
                except ValueError:
                    continue
                op = job["ops"][0]["input"]
                if op.get("OP_ID") == "OP_INSTANCE_CREATE" and op.get("instance_name") == instance:
                    result: dict[str, Any] = job
                    return result
            await deferLater(reactor, 0.05, lambda: None)
        raise AssertionError(f"no create job for {instance} in {queue}")

    async def test_createOverHTTP(self) -> None:
        """
        POST /servers on a real node answers 202 with adminPass; the simulated cluster's queue has the
        CreateInstance job with spec §2.2's parameters and no secret; its config_url serves the parameters once.
        """
        node = spawnNode(
            reactor,
            ["--config", "node.toml", "--role", "none", "--plugin", "api", "--plugin", "ganeti-sim"],
            str(self.dir),
        )
        self.addCleanup(lambda: node.ended)
        self.addCleanup(node.terminate)
        listening = await node.waitFor(lambda e: e.get("listener") == "api" and "port" in e)
        demo = await node.waitFor(lambda e: "token" in e and e.get("email") == "demo@example.org")
        await node.waitFor(lambda e: "backend_id" in e)
        base = f"http://127.0.0.1:{listening['port']}"
        headers = {"X-Auth-Token": demo["token"], "Content-Type": "application/json"}
        flavors = await (await treq.get(f"{base}/compute/v2.0/flavors", headers=headers, pool=self.pool)).json()
        images = await (await treq.get(f"{base}/compute/v2.0/images", headers=headers, pool=self.pool)).json()
        body = {
            "server": {
                "name": "e2e",
                "imageRef": images["images"][0]["id"],
                "flavorRef": flavors["flavors"][0]["id"],
                "metadata": {"role": "test"},
                "networks": [],
            }
        }
        response = await treq.post(
            f"{base}/compute/v2.0/servers", json.dumps(body).encode(), headers=headers, pool=self.pool
        )
        created = await response.json()
        self.assertEqual(response.code, 202, created)
        server = created["server"]
        self.assertEqual(server["status"], "BUILD")
        password = server["adminPass"]

        job = await self.createJob(f"snf-{server['id']}")
        op = job["ops"][0]["input"]
        self.assertEqual((op["mode"], op["disk_template"]), ("create", "drbd"))
        self.assertEqual(op["beparams"]["auto_balance"], True)
        self.assertEqual((op["ip_check"], op["name_check"], op["opportunistic_locking"]), (False, False, True))
        self.assertEqual(op["os_type"], "snf-image+default")
        self.assertEqual(op["disks"][0]["name"], f"snf-vol-{server['volumes'][0]}")
        configURL = op["osparams"]["config_url"]
        self.assertTrue(configURL.startswith("http://api.test/vmapi/v1.0/server-params/"), configURL)
        self.assertNotIn(password, json.dumps(job))

        path = configURL[len("http://api.test") :]
        response = await treq.get(f"{base}{path}", pool=self.pool)
        params = await response.json()
        self.assertEqual((response.code, params["img_passwd"]), (200, password))
        response = await treq.get(f"{base}{path}", pool=self.pool)
        self.assertEqual(response.code, 404)
        await response.content()

        response = await treq.get(f"{base}/compute/v2.0/servers/{server['id']}", headers=headers, pool=self.pool)
        shown = (await response.json())["server"]
        self.assertEqual((shown["name"], shown["metadata"]), ("e2e", {"role": "test"}))
