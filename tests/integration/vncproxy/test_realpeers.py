"""
The VNC proxy against real peers (see L{tests.integration.vncproxy.lab}):
screenshots through the proxy equal direct ones, refusals, the one-viewer
and timeout rules, 200 concurrent forwardings, garbage, and noVNC in
headless Chromium over vnc-ws and vnc-wss.
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import time
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.integration.vncproxy.lab import NODE_DIR, SERVER_PASSWORD, Lab, rfbHandshake, sharedLab


def sameImage(a: Path, b: Path) -> float:
    """
    The fraction of pixels that differ between two images of the same size.
    """
    from PIL import Image, ImageChops

    ia, ib = Image.open(a).convert("RGB"), Image.open(b).convert("RGB")
    if ia.size != ib.size:
        return 1.0
    diff = ImageChops.difference(ia, ib).convert("L")
    changed = sum(diff.histogram()[1:])
    return changed / (ia.size[0] * ia.size[1])


class RealPeerTests(SynchronousTestCase):
    lab: Lab

    def setUp(self) -> None:
        self.lab = sharedLab()

    def tmp(self, name: str) -> Path:
        path = Path(self.mktemp()).resolve()
        path.mkdir(parents=True)
        return path / name

    def forward(self, **fields: Any) -> int:
        reply = self.lab.control(**fields)
        self.assertEqual(reply["status"], "OK", reply)
        self.assertEqual(reply["proxy_address"], "127.0.0.1")
        port = int(reply["source_port"])
        self.assertTrue(self.lab.portRange[0] <= port <= self.lab.portRange[1])
        return port

    def assertCaptureEqual(self, direct: Path, proxied: Path, tolerance: float = 0.0) -> None:
        differing = sameImage(direct, proxied)
        self.assertLessEqual(differing, tolerance, f"{differing:.2%} of the pixels differ")

    def test_x11vncScreenshot(self) -> None:
        """
        vncdotool's capture of x11vnc (no auth) through the proxy equals a direct capture.
        """
        direct, proxied = self.tmp("direct.png"), self.tmp("proxied.png")
        result = self.lab.vncdo(self.lab.x11vncPort, None, direct)
        self.assertEqual(result.returncode, 0, result.stderr)
        port = self.forward(destination_port=self.lab.x11vncPort, password="onetime99")
        result = self.lab.vncdo(port, "onetime99", proxied)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertCaptureEqual(direct, proxied)

    def test_xvncVncAuthScreenshot(self) -> None:
        """
        Through the proxy, a VncAuth Xvnc (destination_password) gives the same capture as directly.
        """
        direct, proxied = self.tmp("direct.png"), self.tmp("proxied.png")
        result = self.lab.vncdo(self.lab.xvncPort, SERVER_PASSWORD, direct)
        self.assertEqual(result.returncode, 0, result.stderr)
        refused = self.lab.control(destination_port=self.lab.xvncPort)
        self.assertEqual(refused["status"], "FAILED")
        self.assertIn("server demands authentication", refused["reason"])
        port = self.forward(
            destination_port=self.lab.xvncPort, destination_password=SERVER_PASSWORD, password="xvncview"
        )
        result = self.lab.vncdo(port, "xvncview", proxied)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertCaptureEqual(direct, proxied)

    def test_qemuScreenshot(self) -> None:
        """
        qemu's VNC through the proxy gives the capture a direct connection gives (the text cursor may blink).
        """
        direct, proxied = self.tmp("direct.png"), self.tmp("proxied.png")
        result = self.lab.vncdo(self.lab.qemuPort, None, direct)
        self.assertEqual(result.returncode, 0, result.stderr)
        port = self.forward(destination_port=self.lab.qemuPort, password="qemuview")
        result = self.lab.vncdo(port, "qemuview", proxied)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertCaptureEqual(direct, proxied, tolerance=0.01)

    def test_wrongPassword(self) -> None:
        """
        A wrong one-time password is refused with the RFB 3.8 reason, and the port is closed after.
        """
        port = self.forward(password="rightpw1")
        e = self.assertRaises(PermissionError, rfbHandshake, port, "wrongpw1")
        self.assertEqual(str(e), "Authentication failed")
        time.sleep(0.2)
        self.assertRaises(ConnectionRefusedError, socket.create_connection, ("127.0.0.1", port), 2)

    def test_wrongPasswordVncdotool(self) -> None:
        """
        vncdotool with a wrong password fails and captures nothing.
        """
        port = self.forward(password="rightpw2")
        out = self.tmp("never.png")
        result = self.lab.vncdo(port, "wrongpw2", out, timeout=30)
        self.assertNotEqual(result.returncode, 0)
        self.assertFalse(out.exists())

    def test_noneRefused(self) -> None:
        """
        A viewer that asks for security None is refused (CVE-2022-36436 class).
        """
        port = self.forward()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            self.assertEqual(s.recv(12), b"RFB 003.008\n")
            s.sendall(b"RFB 003.008\n")
            self.assertEqual(s.recv(2), b"\x01\x02")
            s.sendall(b"\x01")
            data = s.recv(1024)
            self.assertEqual(data[:4], struct.pack(">I", 1))
            self.assertIn(b"only VNC authentication", data)

    def test_secondViewerRefused(self) -> None:
        """
        While one viewer is connected, a second connection to the port is refused.
        """
        port = self.forward()
        first, serverInit = rfbHandshake(port, "onetime99")
        try:
            (width, height) = struct.unpack(">HH", serverInit[:4])
            self.assertEqual((width, height), (800, 600))
            self.assertRaises(ConnectionRefusedError, socket.create_connection, ("127.0.0.1", port), 2)
        finally:
            first.close()

    def quiet(self) -> dict[str, float]:
        """
        Wait until no forwarding is left from earlier tests; return the metrics.
        """
        deadline = time.monotonic() + self.lab.connectTimeout + 5
        while True:
            m = self.lab.metrics()
            if m["snf_vncproxy_forwardings"] == 0 or time.monotonic() > deadline:
                return m
            time.sleep(0.1)

    def test_viewerNeverComes(self) -> None:
        """
        A forwarding nobody connects to is closed after connect_timeout and its port freed.
        """
        before = self.quiet()["snf_vncproxy_ports_free"]
        port = self.forward()
        self.assertEqual(self.lab.metrics()["snf_vncproxy_ports_free"], before - 1)
        time.sleep(self.lab.connectTimeout + 0.5)
        self.assertRaises(ConnectionRefusedError, socket.create_connection, ("127.0.0.1", port), 2)
        self.assertEqual(self.lab.metrics()["snf_vncproxy_ports_free"], before)

    def test_twoHundredForwardings(self) -> None:
        """
        200 forwardings to x11vnc held open at once all reach ServerInit, and every port comes back after.
        """
        before = self.quiet()
        sockets = []
        ports = set()
        try:
            for i in range(200):
                port = self.forward(password=f"pw{i:06d}")
                ports.add(port)
                s, serverInit = rfbHandshake(port, f"pw{i:06d}", timeout=30)
                self.assertEqual(struct.unpack(">HH", serverInit[:4]), (800, 600))
                sockets.append(s)
            self.assertEqual(len(ports), 200)
            m = self.lab.metrics()
            self.assertEqual(m["snf_vncproxy_forwardings"], 200)
            self.assertEqual(m["snf_vncproxy_ports_free"], before["snf_vncproxy_ports_free"] - 200)
        finally:
            for s in sockets:
                s.close()
        m = self.quiet()
        self.assertEqual(m["snf_vncproxy_forwardings"], 0)
        self.assertEqual(m["snf_vncproxy_ports_free"], before["snf_vncproxy_ports_free"])
        # plain vnc relays run on splice(2) after the handshake
        spliced = 'snf_vncproxy_relays_total{mode="splice"}'
        self.assertGreaterEqual(m.get(spliced, 0) - before.get(spliced, 0), 200)

    def test_garbage(self) -> None:
        """
        Malformed control requests get FAILED with a reason, garbage RFB bytes close the viewer,
        and the proxy keeps serving.
        """
        for raw in (b"hello\n", b"[]\n", b'{"source_port": 0}\n', b"\xff\xfe\xfd\n", b"{" * 10 + b"\n" + b"}"):
            reply = self.lab.control(raw=raw)
            self.assertEqual(reply["status"], "FAILED", raw)
            self.assertTrue(reply["reason"], raw)
        self.assertIn("not supported", self.lab.control(type="rdp")["reason"])
        self.assertIn("wrong password", self.lab.control(auth_password="nope")["reason"])
        port = self.forward()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.recv(12)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(range(256)) * 4)
            s.settimeout(10)
            self.assertEqual(s.recv(1024), b"")
        self.assertEqual(self.lab.proxy.poll(), None)
        port = self.forward()
        s, _ = rfbHandshake(port, "onetime99")
        s.close()

    def novnc(self, scheme: str, consoleType: str) -> dict[str, object]:
        httpPort = self.lab.novncServer(scheme)
        shot = self.tmp(f"{consoleType}.png")
        port = self.forward(type=consoleType, password="novnc123")
        url = f"{scheme}://127.0.0.1:{httpPort}/vnc_lite.html?host=127.0.0.1&port={port}&password=novnc123&path=websockify"
        result = subprocess.run(
            ["node", str(NODE_DIR / "novnc_shot.js"), url, str(shot)], capture_output=True, timeout=90, cwd=NODE_DIR
        )
        self.assertEqual(result.returncode, 0, result.stderr.decode(errors="replace")[-2000:])
        report: dict[str, object] = json.loads(result.stdout.decode().strip().splitlines()[-1])
        self.assertIn("Connected", str(report["status"]))
        self.assertEqual(report["canvas"], [800, 600])
        self.assertTrue(shot.exists())
        return report

    def test_noVNCWebSocket(self) -> None:
        """
        noVNC (Debian 1.3) in headless Chromium connects over vnc-ws, authenticates and draws the screen.
        """
        self.novnc("http", "vnc-ws")

    def test_noVNCSecureWebSocket(self) -> None:
        """
        noVNC over vnc-wss (TLS from cert_file/key_file) connects and draws the screen.
        """
        self.novnc("https", "vnc-wss")
