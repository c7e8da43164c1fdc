"""
Issue 4's proof with real clients, end to end on a real node: C{twistd -n
synnefo} with every role (as C{make run}: SQLite, the in-process bus, the
simulated cluster on loopback writing real job files, the watcher, the
dispatcher and the VNC proxy; the DHCP responder left out since it needs
NFQUEUE). openstacksdk, authenticating through C{/identity/v2.0/tokens} with
the demo user's token, lists flavors, images and networks, creates a server
and waits for it to become ACTIVE, reboots, stops and starts it, attaches and
detaches a floating IP, gets a VNC console through which a viewer reaches the
instance, and deletes the server. python-novaclient does the same lifecycle
steps through its own calls. Every state is reached only through the
simulated cluster's jobs → watcher → bus → dispatcher.

The clients block, so they run in a thread while the reactor waits.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import openstack  # type: ignore[import-untyped,import-not-found,unused-ignore]
from keystoneauth1 import session as ksession  # type: ignore[import-untyped,import-not-found,unused-ignore]
from keystoneauth1.identity import v2  # type: ignore[import-untyped,import-not-found,unused-ignore]
from novaclient import client as novaclient  # type: ignore[import-untyped,import-not-found,unused-ignore]
from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.integration.nodeprocess import NodeProcess, addConsoleUser, nodeConfig, spawnNode, vncproxySection
from tests.web.test_node_servers import freePorts, viewerHandshake


def config(control: int, low: int, api: int, directory: Path) -> str:
    return nodeConfig(
        {
            "ganeti-sim": {"job_duration": 0.1, "op_durations": ["OP_INSTANCE_CREATE=0.3"]},
            "api": {
                "listen": f"tcp:{api}:interface=127.0.0.1",
                "base_url": f"http://127.0.0.1:{api}",
                "console_control": f"tls:host=127.0.0.1:port={control}:trustRoots={directory}/ca",
            },
            "watcher": {"rescan_interval": 5.0},
            "vncproxy": vncproxySection(
                control, low, cert_file=f"{directory}/cert.pem", key_file=f"{directory}/key.pem"
            ),
        }
    )


def settle(get: Any, serverId: str, wanted: str, timeout: float = 60.0) -> dict[str, Any]:
    """
    Poll the server (raw JSON through the client's own session) until its
    status is C{wanted} and no task is pending; for C{DELETED}, a 404 counts
    as deleted too (the API shows a deleted server for a while, then forgets it).
    """
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = get(f"/servers/{serverId}", raise_exc=False)
        if response.status_code == 404 and wanted == "DELETED":
            return {"status": "DELETED"}
        last = response.json().get("server", {})
        if last.get("status") == wanted and not last.get("SNF:task_state"):
            return last
        time.sleep(0.05)
    raise AssertionError(f"server {serverId} never {wanted}: {last}")


class RealClientNodeTests(TestCase):
    timeout = 180

    async def startNode(self) -> tuple[str, str, NodeProcess]:
        """
        A full node as C{make run} starts it (with the console control user); (base URL, demo token, process).
        """
        directory = Path(self.mktemp()).resolve()
        (directory / "state").mkdir(parents=True)
        # The service catalog names the API by its base URL: the clients follow it, so it must be the real port.
        control, low, api = freePorts(3)
        # noVNC consoles are WebSocket over TLS (vnc-wss): the proxy needs a certificate, as in production.
        made = await deferToThread(
            subprocess.run,
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(directory / "key.pem"),
             "-out", str(directory / "cert.pem")],
            capture_output=True,
        )  # fmt: skip
        self.assertEqual(made.returncode, 0, made.stderr)
        # With a certificate the proxy's control socket is TLS too: the API verifies it against that certificate.
        (directory / "ca").mkdir()
        (directory / "ca" / "proxy.pem").write_bytes((directory / "cert.pem").read_bytes())
        (directory / "node.toml").write_text(config(control, low, api, directory))
        added = await addConsoleUser(directory, control)
        self.assertEqual(added.returncode, 0, added.stderr)
        node = spawnNode(reactor, ["--config", "node.toml", "--no-plugin", "dhcp"], str(directory))
        self.addCleanup(lambda: node.ended)
        self.addCleanup(node.terminate)
        self.addCleanup(lambda: (directory / "node.log").write_bytes(b"\n".join(node.raw)))
        listening = await node.waitFor(lambda e: e.get("listener") == "api" and "port" in e)
        demo = await node.waitFor(lambda e: "token" in e and e.get("email") == "demo@example.org")
        await node.waitFor(lambda e: "backend_id" in e)
        await node.waitFor(lambda e: "consuming" in e.get("log_format", "") or "queues" in e)
        return f"http://127.0.0.1:{listening['port']}", demo["token"], node

    async def test_openstacksdkLifecycle(self) -> None:
        """
        openstacksdk: list, create → ACTIVE, reboot, stop, start, floating IP on and off, console, delete.
        """
        base, token, _ = await self.startNode()

        def client() -> dict[str, Any]:
            auth = v2.Password(auth_url=f"{base}/identity/v2.0", username="demo@example.org", password=token)
            sess = ksession.Session(auth=auth)
            conn = openstack.connection.Connection(session=sess, region_name="default")
            seen: dict[str, Any] = {}
            try:
                flavors = sorted(conn.compute.flavors(), key=lambda f: f.ram)
                images = list(conn.compute.images())
                seen["networks"] = sorted(n.name for n in conn.network.networks())
                seen["images"] = [i.name for i in images]
                server = conn.compute.create_server(
                    name="sdk", image_id=images[0].id, flavor_id=flavors[0].id, networks=[]
                )
                seen["adminPass"] = server.admin_password
                get = conn.compute.get
                active = conn.compute.wait_for_server(server, status="ACTIVE", interval=0.1, wait=60)
                seen["active"] = active.status
                seen["progress"] = settle(get, server.id, "ACTIVE")["progress"]
                conn.compute.reboot_server(server, "HARD")
                seen["rebooted"] = settle(get, server.id, "ACTIVE")["status"]
                conn.compute.stop_server(server)
                seen["stopped"] = settle(get, server.id, "STOPPED")["status"]
                conn.compute.start_server(server)
                seen["started"] = settle(get, server.id, "ACTIVE")["status"]

                fip = conn.network.create_ip()
                conn.compute.add_floating_ip_to_server(server, fip.floating_ip_address)
                deadline = time.monotonic() + 60
                addresses: list[str] = []
                while fip.floating_ip_address not in addresses and time.monotonic() < deadline:
                    shown = settle(get, server.id, "ACTIVE")
                    addresses = [a["addr"] for entries in shown["addresses"].values() for a in entries]
                    time.sleep(0.05)
                seen["floating"] = (fip.floating_ip_address, addresses)
                conn.compute.remove_floating_ip_from_server(server, fip.floating_ip_address)
                seen["fipPortAfter"] = conn.network.get_ip(fip.id).port_id
                conn.network.delete_ip(fip)

                console = conn.compute.get_server_console_url(server, "novnc")
                seen["console"] = console
                vnc = get(f"/servers/{server.id}/action", raise_exc=False)
                seen["consoleGetStatus"] = vnc.status_code
                raw = conn.compute.post(f"/servers/{server.id}/action", json={"console": {"type": "vnc"}}).json()
                seen["vnc"] = raw["console"]

                conn.compute.delete_server(server)
                conn.compute.wait_for_delete(server, interval=0.1, wait=60)
                seen["deleted"] = settle(get, server.id, "DELETED")
                seen["id"] = server.id
            finally:
                sess.session.close()
            return seen

        seen = await deferToThread(client)
        self.assertEqual(seen["images"], ["Debian Bookworm (demo)"])
        self.assertIn("public", seen["networks"])
        self.assertGreaterEqual(len(seen["adminPass"]), 10)
        self.assertEqual(
            (seen["active"], seen["progress"], seen["rebooted"], seen["stopped"], seen["started"]),
            ("ACTIVE", 100, "ACTIVE", "STOPPED", "ACTIVE"),
        )
        address, addresses = seen["floating"]
        self.assertIn(address, addresses)
        self.assertIsNone(seen["fipPortAfter"])
        self.assertIn("url", seen["console"])
        self.assertEqual(seen["consoleGetStatus"], 405)
        vnc = seen["vnc"]
        serverInit = await deferToThread(viewerHandshake, vnc["host"], vnc["port"], vnc["password"])
        self.assertIn(f"snf-{seen['id']}".encode(), serverInit[24:])
        self.assertEqual(seen["deleted"]["status"], "DELETED")

    async def test_novaclientLifecycle(self) -> None:
        """
        python-novaclient: create → ACTIVE, reboot, stop, start, VNC console, delete.
        """
        base, token, _ = await self.startNode()

        def client() -> dict[str, Any]:
            auth = v2.Password(auth_url=f"{base}/identity/v2.0", username="demo@example.org", password=token)
            sess = ksession.Session(auth=auth)
            nova = novaclient.Client("2", session=sess, region_name="default")
            seen: dict[str, Any] = {}

            def get(url: str, raise_exc: bool = False) -> Any:
                return sess.get(f"{base}/compute/v2.0{url}", raise_exc=raise_exc)

            try:
                flavor = sorted(nova.flavors.list(), key=lambda f: f.ram)[0]
                imageId = get("/images").json()["images"][0]["id"]
                server = nova.servers.create("nova", imageId, flavor, nics=[])
                seen["built"] = settle(get, server.id, "ACTIVE")["status"]
                nova.servers.reboot(server, reboot_type="SOFT")
                seen["rebooted"] = settle(get, server.id, "ACTIVE")["status"]
                nova.servers.stop(server)
                seen["stopped"] = settle(get, server.id, "STOPPED")["status"]
                nova.servers.start(server)
                seen["started"] = settle(get, server.id, "ACTIVE")["status"]
                seen["console"] = nova.servers.get_vnc_console(server, "novnc")["console"]
                nova.servers.delete(server)
                seen["deleted"] = settle(get, server.id, "DELETED")
                seen["listed"] = [s.id for s in nova.servers.list()]
            finally:
                sess.session.close()
            return seen

        seen = await deferToThread(client)
        self.assertEqual(
            (seen["built"], seen["rebooted"], seen["stopped"], seen["started"]),
            ("ACTIVE", "ACTIVE", "STOPPED", "ACTIVE"),
        )
        self.assertEqual(seen["console"]["type"], "novnc")
        self.assertTrue(seen["console"]["url"])
        self.assertEqual((seen["deleted"]["status"], seen["listed"]), ("DELETED", []))
