"""
The real peers for the VNC proxy's integration tests, started as
subprocesses (all on loopback) and stopped by their own PIDs:

  - Xvfb showing a random pattern, served by x11vnc without authentication;
  - TigerVNC Xvnc with VncAuth (password C{secret88}) showing the same pattern;
  - qemu-system-x86_64 C{-vnc} (no authentication);
  - the proxy itself: C{twistd -n synnefo --role none --plugin vncproxy} with
    TLS (self-signed) for vnc-wss and the control socket.

Everything comes from C{tests/harness/vnc.sh}; a missing program is a
failure that says to run it.
"""

from __future__ import annotations

import atexit
import json
import os
import random
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from vncproxy.des import challengeResponse
from vncproxy.shacrypt import makeHash

ROOT = Path(__file__).resolve().parents[3]
VENV_BIN = Path(sys.executable).parent
NODE_DIR = Path(os.environ.get("SNF_TEST_VNC_NODE_DIR", "/var/tmp/synnefo-vnc-node"))
SERVER_PASSWORD = "secret88"
CONTROL_USER = "synnefo"
CONTROL_PASSWORD = "control-secret"
PROGRAMS = ("Xvfb", "x11vnc", "Xvnc", "vncpasswd", "qemu-system-x86_64", "display", "openssl", "chromium", "node")


class LabError(Exception):
    pass


def _dieWithParent() -> None:
    # PR_SET_PDEATHSIG: the peer gets SIGTERM if the test process dies first.
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


_shared: Lab | None = None


def sharedLab() -> Lab:
    """
    The lab for this test process: started on first use, stopped at exit.
    """
    global _shared
    if _shared is None:
        # A viewer has connect_timeout to reach its one-time port: headless
        # Chromium loading noVNC on a loaded 2-core machine took longer than 6 s.
        lab = Lab(connectTimeout=15.0)
        lab.start()
        atexit.register(lab.stop)
        _shared = lab
    return _shared


def requirePrograms() -> None:
    missing = [p for p in PROGRAMS if shutil.which(p) is None]
    if not (VENV_BIN / "vncdo").exists():
        missing.append("vncdo (PyPI vncdotool)")
    if not (NODE_DIR / "node_modules" / "playwright-core").exists():
        missing.append(f"playwright-core in {NODE_DIR}")
    if not Path("/usr/share/novnc/vnc_lite.html").exists():
        missing.append("noVNC (/usr/share/novnc)")
    if missing:
        raise LabError(f"missing {', '.join(missing)}: run tests/harness/vnc.sh")


def freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def freeDisplay() -> int:
    for _ in range(100):
        n = random.randint(150, 899)
        if not os.path.exists(f"/tmp/.X{n}-lock") and not os.path.exists(f"/tmp/.X11-unix/X{n}"):
            return n
    raise LabError("no free X display number")


def waitPort(port: int, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise LabError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise LabError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class Lab:
    def __init__(self, connectTimeout: float = 6.0) -> None:
        requirePrograms()
        self.dir = Path(tempfile.mkdtemp(prefix="snf-vnclab-"))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.connectTimeout = connectTimeout
        self.novncPorts: dict[str, int] = {}

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.dir / f"{name}.log", "wb")
        proc = subprocess.Popen(
            list(args), stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.dir, preexec_fn=_dieWithParent
        )
        log.close()
        self.procs.append(proc)
        return proc

    def _pattern(self) -> Path:
        from PIL import Image

        rng = random.Random(6)
        img = Image.new("RGB", (800, 600))
        px = img.load()
        assert px is not None
        for y in range(0, 600, 8):
            for x in range(0, 800, 8):
                colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
                for dy in range(8):
                    for dx in range(8):
                        px[x + dx, y + dy] = colour
        path = self.dir / "pattern.png"
        img.save(path)
        return path

    def _setRoot(self, display: int, pattern: Path) -> None:
        env = dict(os.environ, DISPLAY=f":{display}")
        # ImageMagick's display sets the root window and exits (with status 1).
        subprocess.run(["display", "-window", "root", str(pattern)], env=env, capture_output=True, timeout=30)

    def _start(self) -> None:
        pattern = self._pattern()
        # Xvfb + x11vnc, no authentication
        self.xvfbDisplay = freeDisplay()
        xvfb = self.spawn(
            "xvfb",
            "Xvfb",
            f":{self.xvfbDisplay}",
            "-screen",
            "0",
            "800x600x24",
            "-nolisten",
            "tcp",
            "-auth",
            "/dev/null",
        )
        for _ in range(100):
            if os.path.exists(f"/tmp/.X11-unix/X{self.xvfbDisplay}"):
                break
            if xvfb.poll() is not None:
                raise LabError("Xvfb exited")
            time.sleep(0.1)
        self._setRoot(self.xvfbDisplay, pattern)
        self.x11vncPort = freePort()
        x11vnc = self.spawn(
            "x11vnc", "x11vnc", "-display", f":{self.xvfbDisplay}", "-rfbport", str(self.x11vncPort),
            "-localhost", "-nopw", "-forever", "-shared", "-noxdamage", "-nocursor",
        )  # fmt: skip
        # Xvnc with VncAuth
        passFile = self.dir / "xvnc.pass"
        passFile.write_bytes(
            subprocess.run(
                ["vncpasswd", "-f"], input=f"{SERVER_PASSWORD}\n".encode(), capture_output=True, check=True
            ).stdout
        )
        self.xvncDisplay = freeDisplay()
        self.xvncPort = freePort()
        xvnc = self.spawn(
            "xvnc", "Xvnc", f":{self.xvncDisplay}", "-geometry", "800x600", "-depth", "24", "-rfbport", str(self.xvncPort),
            "-localhost", "-interface", "127.0.0.1", "-SecurityTypes", "VncAuth", "-PasswordFile", str(passFile),
            "-BlacklistThreshold", "1000", "-nolisten", "tcp", "-auth", "/dev/null", "-desktop", "snf-xvnc",
        )  # fmt: skip
        # qemu -vnc, no authentication
        self.qemuPort = freePort()
        while self.qemuPort < 5900:
            self.qemuPort = freePort()
        qemu = self.spawn(
            "qemu", "qemu-system-x86_64", "-nodefaults", "-vga", "std", "-machine", "pc,accel=tcg", "-m", "64",
            "-display", "none", "-vnc", f"127.0.0.1:{self.qemuPort - 5900}", "-name", "snf-qemu",
        )  # fmt: skip
        # the proxy
        self.cert, self.key = self.dir / "cert.pem", self.dir / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(self.key), "-out", str(self.cert)],
            check=True, capture_output=True,
        )  # fmt: skip
        users = self.dir / "users"
        users.write_text(f"{CONTROL_USER}:{makeHash(CONTROL_PASSWORD)}\n")
        self.controlPort = freePort()
        self.adminPort = freePort()
        low = random.randrange(32000, 40000, 500)
        self.portRange = (low, low + 399)
        (self.dir / "node.toml").write_text(
            f"""
[node]
roles = []
state_dir = "{self.dir}/var"
admin_listen = "tcp:{self.adminPort}:interface=127.0.0.1"

[vncproxy]
control_listen = "tcp:{self.controlPort}:interface=127.0.0.1"
proxy_listen_address = "127.0.0.1"
port_range = [{self.portRange[0]}, {self.portRange[1]}]
users_file = "{users}"
connect_timeout = {self.connectTimeout}
cert_file = "{self.cert}"
key_file = "{self.key}"
"""
        )
        self.proxy = self.spawn(
            "proxy", str(VENV_BIN / "twistd"), "-n", "--pidfile=", "synnefo", "--config", str(self.dir / "node.toml"),
            "--role", "none", "--plugin", "vncproxy",
        )  # fmt: skip
        for port, proc in (
            (self.x11vncPort, x11vnc),
            (self.xvncPort, xvnc),
            (self.qemuPort, qemu),
            (self.controlPort, self.proxy),
        ):
            waitPort(port, proc=proc)
        waitPort(self.adminPort, proc=self.proxy)
        self._setRoot(self.xvncDisplay, pattern)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = []

    def novncServer(self, scheme: str) -> int:
        """
        Serve noVNC's pages (http or https with the lab certificate); returns the port.
        """
        if scheme in self.novncPorts:
            return self.novncPorts[scheme]
        port = freePort()
        code = (
            "import functools, http.server, ssl, sys\n"
            "port, scheme, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]\n"
            "handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory='/usr/share/novnc')\n"
            "server = http.server.ThreadingHTTPServer(('127.0.0.1', port), handler)\n"
            "if scheme == 'https':\n"
            "    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(cert, key)\n"
            "    server.socket = ctx.wrap_socket(server.socket, server_side=True)\n"
            "server.serve_forever()\n"
        )
        proc = self.spawn(
            f"novnc-{scheme}", sys.executable, "-c", code, str(port), scheme, str(self.cert), str(self.key)
        )
        waitPort(port, proc=proc)
        self.novncPorts[scheme] = port
        return port

    def log(self, name: str) -> str:
        return (self.dir / f"{name}.log").read_text(errors="replace")

    # -- clients ---------------------------------------------------------------

    def control(self, raw: bytes | None = None, **fields: Any) -> dict[str, Any]:
        """
        One control request over TLS; returns the decoded reply.
        """
        body: dict[str, Any] = {
            "source_port": 0,
            "destination_address": "127.0.0.1",
            "destination_port": self.x11vncPort,
            "password": "onetime99",
            "auth_user": CONTROL_USER,
            "auth_password": CONTROL_PASSWORD,
            "type": "vnc",
        }
        body.update(fields)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with (
            socket.create_connection(("127.0.0.1", self.controlPort), timeout=30) as plain,
            ctx.wrap_socket(plain) as s,
        ):
            s.sendall(raw if raw is not None else json.dumps(body).encode())
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        result: dict[str, Any] = json.loads(data)
        return result

    def metrics(self) -> dict[str, float]:
        import urllib.request

        text = urllib.request.urlopen(f"http://127.0.0.1:{self.adminPort}/metrics", timeout=10).read().decode()
        out = {}
        for line in text.splitlines():
            if line.startswith("snf_vncproxy") and " " in line:
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def vncdo(
        self, port: int, password: str | None, out: Path, timeout: float = 40
    ) -> subprocess.CompletedProcess[bytes]:
        args = [str(VENV_BIN / "vncdo"), "-s", f"127.0.0.1::{port}"]
        if password is not None:
            args += ["-p", password]
        args += ["capture", str(out)]
        return subprocess.run(args, capture_output=True, timeout=timeout)


def rfbHandshake(port: int, password: str, timeout: float = 10.0) -> tuple[socket.socket, bytes]:
    """
    A minimal blocking RFB 3.8 viewer: VNC auth with C{password}, ClientInit;
    returns the socket and the ServerInit.
    """
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)

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
    count = read(1)[0]
    types = read(count)
    if types != b"\x02":
        raise ConnectionError(f"offered {types!r}")
    s.sendall(b"\x02")
    s.sendall(challengeResponse(password, read(16)))
    (result,) = struct.unpack(">I", read(4))
    if result != 0:
        (length,) = struct.unpack(">I", read(4))
        raise PermissionError(read(length).decode())
    s.sendall(b"\x01")
    head = read(24)
    (nameLength,) = struct.unpack(">I", head[20:24])
    return s, head + read(nameLength)
