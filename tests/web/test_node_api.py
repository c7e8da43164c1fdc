"""
The api plugin in a real node: C{twistd -n synnefo --role none --plugin api}
on a temporary SQLite database, a user made with snf-manage, flavors listed
over real HTTP.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from tests.integration.nodeprocess import nodeConfig, spawnNode

CONFIG = nodeConfig({"node": {"roles": []}, "ganeti": {"simulated": False}, "ganeti-sim": None})

# snf-manage with the user and catalog commands registered (until the
# console script's main module imports them itself).
MANAGE = (
    "import sys, synnefo_twisted.manage.users, synnefo_twisted.manage.catalog;"
    "from synnefo_twisted.manage.main import main; main()"
)


def authHeaders(token: object) -> dict[bytes | str, bytes | str]:
    return {"X-Auth-Token": str(token)}


class NodeAPITests(TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.dir = Path(self.mktemp()).resolve()
        self.dir.mkdir()
        (self.dir / "node.toml").write_text(CONFIG)
        self.pool = HTTPConnectionPool(reactor, persistent=False)

    async def manage(self, *argv: str) -> Any:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SNF_")}
        out, err, code = await getProcessOutputAndValue(
            sys.executable,
            ["-c", MANAGE, "--config", "node.toml", "--output-format", "json", *argv],
            env=env,
            path=str(self.dir),
        )
        self.assertEqual(code, 0, err)
        return json.loads(out)

    async def test_flavorsOverHTTP(self) -> None:
        """
        The node seeds demo data and logs the demo token; a user added with snf-manage lists the flavors over HTTP;
        the seeded public network and its subnet are listed by the network API.
        """
        node = spawnNode(reactor, ["--config", "node.toml", "--role", "none", "--plugin", "api"], str(self.dir))
        self.addCleanup(lambda: node.ended)
        self.addCleanup(node.terminate)
        listening = await node.waitFor(lambda e: e.get("listener") == "api" and "port" in e)
        demo = await node.waitFor(lambda e: "token" in e and e.get("email") == "demo@example.org")
        base = f"http://127.0.0.1:{listening['port']}"
        user = await self.manage("user-add", "ops@example.org")

        for token in (user["token"], demo["token"]):
            response = await treq.get(f"{base}/compute/v2.1/flavors/detail", headers=authHeaders(token), pool=self.pool)
            self.assertEqual(response.code, 200)
            flavors = (await response.json())["flavors"]
            self.assertEqual([f["name"] for f in flavors], ["C1R1024D20drbd", "C2R2048D40drbd", "C4R4096D80drbd"])
            self.assertEqual(flavors[0]["links"][0]["href"], f"http://api.test/compute/v2.1/flavors/{flavors[0]['id']}")

        response = await treq.get(f"{base}/network/v2.0/networks", headers=authHeaders(demo["token"]), pool=self.pool)
        self.assertEqual(response.code, 200)
        [public] = (await response.json())["networks"]
        self.assertEqual((public["public"], public["SNF:floating_ip_pool"], public["status"]), (True, True, "ACTIVE"))
        response = await treq.get(f"{base}/network/v2.0/subnets", headers=authHeaders(demo["token"]), pool=self.pool)
        self.assertEqual([s["cidr"] for s in (await response.json())["subnets"]], ["203.0.113.0/24"])

        response = await treq.get(f"{base}/compute/v2.1/flavors", pool=self.pool)
        self.assertEqual(response.code, 401)
        created = await self.manage("flavor-create", "8", "8192", "100", "drbd")
        response = await treq.get(
            f"{base}/compute/v2.1/flavors/{created[0]['id']}",
            headers=authHeaders(user["token"]),
            pool=self.pool,
        )
        self.assertEqual((await response.json())["flavor"]["vcpus"], 8)
