"""
The servers API end to end in a real node: C{twistd -n synnefo} running the
C{api} and C{ganeti-sim} plugins (SQLite, a simulated cluster on loopback
writing real job files); the demo user creates a server over HTTP and the
cluster's queue directory holds the CreateInstance job of spec §2.2.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import struct
from pathlib import Path
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from tests.integration.nodeprocess import addConsoleUser, nodeConfig, spawnNode, vncproxySection
from vncproxy.des import challengeResponse
from web.seed import DEMO_IMAGE_ID as DEMO_IMAGE

CONFIG = nodeConfig({"node": {"roles": []}})


async def createJob(directory: Path, instance: str, final: bool = False) -> dict[str, Any]:
    """
    The job file of the instance's OP_INSTANCE_CREATE once the queue has it (and, with C{final}, once the
    job succeeded).
    """
    queue = directory / "state" / "ganeti-sim" / "queue"
    for _ in range(200):
        for path in sorted(queue.glob("job-*")):
            try:
                job = json.loads(path.read_text())
            except ValueError:
                continue
            op = job["ops"][0]["input"]
            done = job["ops"][0].get("status") == "success"
            if op.get("OP_ID") == "OP_INSTANCE_CREATE" and op.get("instance_name") == instance and (done or not final):
                result: dict[str, Any] = job
                return result
        await deferLater(reactor, 0.05, lambda: None)
    raise AssertionError(f"no create job for {instance} in {queue}")


class NodeServersTests(TestCase):
    timeout = 90

    def setUp(self) -> None:
        self.dir = Path(self.mktemp()).resolve()
        self.dir.mkdir()
        (self.dir / "node.toml").write_text(CONFIG)
        self.pool = HTTPConnectionPool(reactor, persistent=False)

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

        job = await createJob(self.dir, f"snf-{server['id']}")
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


def freePorts(count: int) -> list[int]:
    """
    Loopback TCP ports free right now.
    """
    sockets = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def viewerHandshake(host: str, port: int, password: str) -> bytes:
    """
    A blocking RFB 3.8 viewer: VNC authentication with the one-time password, ClientInit; the ServerInit.
    """
    with socket.create_connection((host, port), timeout=10) as s:

        def read(n: int) -> bytes:
            buf = b""
            while len(buf) < n:
                chunk = s.recv(n - len(buf))
                if not chunk:
                    raise ConnectionError(f"closed after {buf!r}")
                buf += chunk
            return buf

        if read(12) != b"RFB 003.008\n":
            raise ConnectionError("not RFB 3.8")
        s.sendall(b"RFB 003.008\n")
        types = read(read(1)[0])
        if types != b"\x02":
            raise ConnectionError(f"offered {types!r}")
        s.sendall(b"\x02")
        s.sendall(challengeResponse(password, read(16)))
        if struct.unpack(">I", read(4))[0] != 0:
            raise PermissionError("VNC authentication failed")
        s.sendall(b"\x01")
        head = read(24)
        return head + read(struct.unpack(">I", head[20:24])[0])


class NodeConsoleTests(TestCase):
    timeout = 90

    async def test_consoleThroughRealProxy(self) -> None:
        """
        On a node running the api, vncproxy and ganeti-sim plugins, with the control user made by
        snf-vncproxy-users as make run does, the console action of a running server answers a one-time forwarding
        through which a viewer authenticates and reaches the instance's RFB console.
        """
        directory = Path(self.mktemp()).resolve()
        (directory / "state").mkdir(parents=True)
        control, low = freePorts(2)
        config = nodeConfig(
            {
                "node": {"roles": []},
                "ganeti-sim": {"op_durations": ["OP_INSTANCE_CREATE=0.2"]},
                "api": {"console_control": f"tcp:host=127.0.0.1:port={control}"},
                "vncproxy": vncproxySection(control, low),
            }
        )
        (directory / "node.toml").write_text(config)
        added = await addConsoleUser(directory, control)
        self.assertEqual(added.returncode, 0, added.stderr)

        node = spawnNode(
            reactor,
            [
                "--config",
                "node.toml",
                "--role",
                "none",
                "--plugin",
                "api",
                "--plugin",
                "ganeti-sim",
                "--plugin",
                "vncproxy",
            ],
            str(directory),
        )
        self.addCleanup(lambda: node.ended)
        self.addCleanup(node.terminate)
        listening = await node.waitFor(lambda e: e.get("listener") == "api" and "port" in e)
        demo = await node.waitFor(lambda e: "token" in e and e.get("email") == "demo@example.org")
        await node.waitFor(lambda e: "backend_id" in e)
        pool = HTTPConnectionPool(reactor, persistent=False)
        base = f"http://127.0.0.1:{listening['port']}"
        headers = {"X-Auth-Token": demo["token"], "Content-Type": "application/json"}
        flavors = await (await treq.get(f"{base}/compute/v2.0/flavors", headers=headers, pool=pool)).json()
        body = {"server": {"name": "console", "imageRef": DEMO_IMAGE, "flavorRef": flavors["flavors"][0]["id"]}}
        response = await treq.post(
            f"{base}/compute/v2.0/servers", json.dumps(body).encode(), headers=headers, pool=pool
        )
        server = (await response.json())["server"]
        self.assertEqual(response.code, 202, server)

        # The dispatcher (not part of this node) would mark the server STARTED when the create job succeeds.
        await createJob(directory, f"snf-{server['id']}", final=True)
        with sqlite3.connect(directory / "state" / "synnefo.db") as db:
            db.execute("UPDATE servers SET operstate = 'STARTED', task = NULL WHERE id = ?", (server["id"],))

        action = f"{base}/compute/v2.0/servers/{server['id']}/action"
        response = await treq.post(
            action, json.dumps({"console": {"type": "vnc"}}).encode(), headers=headers, pool=pool
        )
        answer = await response.json()
        self.assertEqual(response.code, 200, answer)
        console = answer["console"]
        self.assertEqual((console["type"], console["host"]), ("vnc", "127.0.0.1"))
        self.assertTrue(low <= console["port"] <= low + 20)
        serverInit = await deferToThread(viewerHandshake, console["host"], console["port"], console["password"])
        self.assertIn(f"snf-{server['id']}".encode(), serverInit[24:])
