"""
Benchmark of the VNC proxy's relay, with its baselines measured in the same run.

    .venv/bin/python bench/vncproxy.py [--mb 256] [--repeat 3] [--conns 50] [--rtt 500]

Targets (all on loopback, a fake RFB 3.8 server sending 1024x768x32 Raw frames):
  - direct: the fake server itself;
  - proxy raw: this proxy (twistd synnefo --plugin vncproxy), type vnc, viewer VNC auth;
  - proxy ws: the same over a WebSocket (type vnc-ws), as noVNC connects;
  - websockify: /usr/bin/websockify (Debian) in front of the fake server (no auth).

Figures per target: setup latency (a control request to OK, and connect to
ServerInit parsed, both p50 over --conns sequential connections), small-message
RTT (incremental FramebufferUpdateRequest to a 1x1 update), throughput MB/s of
full frames (median of --repeat runs of --mb MiB) and the relay's CPU seconds
per GiB relayed (from /proc, the relay process only). The last lines give the
ratios against websockify. The fake server and the client run in their own
processes; nothing here is a timed test.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import socketserver
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vncproxy.des import challengeResponse  # noqa: E402
from vncproxy.shacrypt import makeHash  # noqa: E402

WIDTH, HEIGHT = 1024, 768

# ---------------------------------------------------------------- streams


class Stream:
    """
    Buffered blocking reads over a socket.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray(1 << 20)
        self.view = memoryview(self.buf)
        self.start = self.end = 0

    def _fill(self) -> None:
        if self.start == self.end:
            self.start = self.end = 0
        elif self.end == len(self.buf):
            self.buf[: self.end - self.start] = self.buf[self.start : self.end]
            self.end -= self.start
            self.start = 0
        n = self.sock.recv_into(self.view[self.end :])
        if n == 0:
            raise ConnectionError("peer closed")
        self.end += n

    def read(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            if self.start == self.end:
                self._fill()
            take = min(n - len(out), self.end - self.start)
            out += self.view[self.start : self.start + take]
            self.start += take
        return bytes(out)

    def skip(self, n: int) -> None:
        while n:
            if self.start == self.end:
                self._fill()
            take = min(n, self.end - self.start)
            self.start += take
            n -= take

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)


class WSStream(Stream):
    """
    A WebSocket client (RFC 6455): masked binary frames out, payload bytes in.
    """

    def __init__(self, sock: socket.socket, port: int) -> None:
        super().__init__(sock)
        self.remaining = 0
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET /websockify HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\n\r\n"
            ).encode()
        )
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += Stream.read(self, 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"upgrade refused: {head[:80]!r}")

    def _frame(self) -> None:
        while True:
            b0, b1 = Stream.read(self, 2)
            length = b1 & 0x7F
            if length == 126:
                (length,) = struct.unpack(">H", Stream.read(self, 2))
            elif length == 127:
                (length,) = struct.unpack(">Q", Stream.read(self, 8))
            op = b0 & 0x0F
            if op in (0, 2):
                self.remaining = length
                return
            payload = Stream.read(self, length)
            if op == 8:
                raise ConnectionError(f"close {payload!r}")

    def read(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            if not self.remaining:
                self._frame()
                continue
            take = min(n - len(out), self.remaining)
            out += Stream.read(self, take)
            self.remaining -= take
        return bytes(out)

    def skip(self, n: int) -> None:
        while n:
            if not self.remaining:
                self._frame()
                continue
            take = min(n, self.remaining)
            Stream.skip(self, take)
            self.remaining -= take
            n -= take

    def send(self, data: bytes) -> None:
        mask = os.urandom(4)
        n = len(data)
        header = struct.pack(">BB", 0x82, 0x80 | n) if n < 126 else struct.pack(">BBH", 0x82, 0x80 | 126, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(header + mask + masked)


# ---------------------------------------------------------------- fake server


def serve(port: int) -> None:
    frame = bytearray(WIDTH * HEIGHT * 4)
    for i in range(0, len(frame), 4):
        frame[i] = i & 0xFF
    full = struct.pack(">BxH", 0, 1) + struct.pack(">HHHHi", 0, 0, WIDTH, HEIGHT, 0) + bytes(frame)
    tiny = struct.pack(">BxH", 0, 1) + struct.pack(">HHHHi", 0, 0, 1, 1, 0) + bytes(4)
    pixelFormat = struct.pack(">BBBBHHHBBBxxx", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            s = self.request
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            st = Stream(s)
            try:
                s.sendall(b"RFB 003.008\n")
                st.read(12)
                s.sendall(b"\x01\x01")
                st.read(1)
                s.sendall(struct.pack(">I", 0))
                st.read(1)
                s.sendall(struct.pack(">HH", WIDTH, HEIGHT) + pixelFormat + struct.pack(">I", 5) + b"bench")
                fullView = memoryview(full)
                while True:
                    t = st.read(1)[0]
                    if t == 0:
                        st.skip(19)
                    elif t == 2:
                        st.skip(4 * struct.unpack(">xH", st.read(3))[0])
                    elif t == 3:
                        s.sendall(tiny if st.read(9)[0] else fullView)
                    else:
                        return
            except (ConnectionError, OSError):
                pass

    class Server(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True
        request_queue_size = 128

    Server(("127.0.0.1", port), Handler).serve_forever()


# ---------------------------------------------------------------- client


class Target:
    def __init__(self, name: str, port: int = 0, ws: bool = False, control: int = 0, pid: int | None = None) -> None:
        self.name, self.port, self.ws, self.control, self.pid = name, port, ws, control, pid
        self.controlMs: list[float] = []

    def open(self, serverPort: int, record: list[float] | None = None) -> tuple[Stream, float]:
        port, password = self.port, None
        if self.control:
            password = "bench123"
            t0 = time.perf_counter()
            with socket.create_connection(("127.0.0.1", self.control), timeout=30) as c:
                req = {
                    "source_port": 0,
                    "destination_address": "127.0.0.1",
                    "destination_port": serverPort,
                    "password": password,
                    "auth_user": "bench",
                    "auth_password": "benchpw",
                    "type": "vnc-ws" if self.ws else "vnc",
                }
                c.sendall(json.dumps(req).encode() + b"\n")
                data = b""
                while not data.endswith(b"\n"):
                    chunk = c.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            reply = json.loads(data)
            if reply["status"] != "OK":
                raise ConnectionError(reply)
            if record is not None:
                record.append((time.perf_counter() - t0) * 1e3)
            port = reply["source_port"]
        t0 = time.perf_counter()
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        st: Stream = WSStream(sock, port) if self.ws else Stream(sock)
        st.read(12)
        st.send(b"RFB 003.008\n")
        types = st.read(st.read(1)[0])
        if 2 in types:
            assert password is not None
            st.send(b"\x02")
            st.send(challengeResponse(password, st.read(16)))
        else:
            st.send(b"\x01")
        if struct.unpack(">I", st.read(4))[0] != 0:
            raise ConnectionError("security failed")
        st.send(b"\x01")
        head = st.read(24)
        st.read(struct.unpack(">I", head[20:24])[0])
        connectMs = (time.perf_counter() - t0) * 1e3
        st.send(struct.pack(">BxxxBBBBHHHBBBxxx", 0, 32, 24, 0, 1, 255, 255, 255, 16, 8, 0))
        st.send(struct.pack(">BxHi", 2, 1, 0))
        return st, connectMs


def readUpdate(st: Stream) -> int:
    assert st.read(1)[0] == 0
    (rects,) = struct.unpack(">xH", st.read(3))
    total = 0
    for _ in range(rects):
        _x, _y, w, h, _enc = struct.unpack(">HHHHi", st.read(12))
        st.skip(w * h * 4)
        total += 16 + w * h * 4
    return total


def _stat(pid: int) -> tuple[int, list[int]]:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[1]), [int(x) for x in fields[11:15]]


def cpuSeconds(pid: int) -> float:
    """
    CPU seconds of C{pid}, its reaped children and its live descendants
    (websockify forks a process per connection).
    """
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                children.setdefault(_stat(int(entry))[0], []).append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    ticks = sum(_stat(pid)[1])
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        try:
            ticks += sum(_stat(child)[1][:2])
        except OSError:
            pass
        todo += children.get(child, [])
    return ticks / os.sysconf("SC_CLK_TCK")


def measure(target: Target, serverPort: int, args: argparse.Namespace) -> dict[str, Any]:
    st, _ = target.open(serverPort)
    st.send(struct.pack(">BBHHHH", 3, 0, 0, 0, WIDTH, HEIGHT))
    readUpdate(st)
    st.sock.close()
    control: list[float] = []
    connect: list[float] = []
    for _ in range(args.conns):
        st, ms = target.open(serverPort, control)
        connect.append(ms)
        st.sock.close()
    st, _ = target.open(serverPort)
    rtt = []
    for _ in range(args.rtt):
        t0 = time.perf_counter()
        st.send(struct.pack(">BBHHHH", 3, 1, 0, 0, WIDTH, HEIGHT))
        readUpdate(st)
        rtt.append((time.perf_counter() - t0) * 1e6)
    runs = []
    total = 0
    cpu0 = cpuSeconds(target.pid) if target.pid else 0.0
    for _ in range(args.repeat):
        got = 0
        t0 = time.perf_counter()
        while got < args.mb << 20:
            st.send(struct.pack(">BBHHHH", 3, 0, 0, 0, WIDTH, HEIGHT))
            got += readUpdate(st)
        runs.append(got / (time.perf_counter() - t0) / 1e6)
        total += got
    st.sock.close()
    time.sleep(0.5)  # let a forking relay reap its child
    cpu = cpuSeconds(target.pid) - cpu0 if target.pid else None
    return {
        "target": target.name,
        "control_ms_p50": round(statistics.median(control), 3) if control else None,
        "connect_ms_p50": round(statistics.median(connect), 3),
        "setup_ms_p50": round(statistics.median([a + b for a, b in zip(control, connect)]), 3)
        if control
        else round(statistics.median(connect), 3),
        "rtt_us_p50": round(statistics.median(rtt), 1),
        "MBps": round(statistics.median(runs), 1),
        "MBps_runs": [round(r, 1) for r in runs],
        "cpu_s_per_GiB": round(cpu / (total / (1 << 30)), 3) if cpu is not None else None,
    }


# ---------------------------------------------------------------- main


def freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def waitPort(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--mb", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--rtt", type=int, default=500)
    ap.add_argument("--targets", default="direct,raw,ws,websockify", help="comma-separated subset to measure")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds over all targets (medians reported)")
    ap.add_argument("--json", action="store_true", help="also print one JSON line per target and round")
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
        return

    work = Path(tempfile.mkdtemp(prefix="snf-vncbench-"))
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(*cmd: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(list(cmd), stdout=subprocess.DEVNULL, stderr=open(work / f"{len(procs)}.log", "wb"))
        procs.append(proc)
        return proc

    try:
        serverPort = freePort()
        spawn(sys.executable, __file__, "--serve", str(serverPort))
        (work / "users").write_text(f"bench:{makeHash('benchpw')}\n")
        control, admin = freePort(), freePort()
        (work / "node.toml").write_text(
            f'[node]\nroles = []\nstate_dir = "{work}/var"\nadmin_listen = "tcp:{admin}:interface=127.0.0.1"\n'
            f'[vncproxy]\ncontrol_listen = "tcp:{control}:interface=127.0.0.1"\nport_range = [41000, 41999]\n'
            f'users_file = "{work}/users"\n'
        )
        twistd = str(Path(sys.executable).parent / "twistd")
        proxy = spawn(
            twistd,
            "-n",
            "--pidfile=",
            "synnefo",
            "--config",
            str(work / "node.toml"),
            "--role",
            "none",
            "--plugin",
            "vncproxy",
        )
        targets = [Target("direct", serverPort)]
        targets += [
            Target("proxy raw", control=control, pid=proxy.pid),
            Target("proxy ws", ws=True, control=control, pid=proxy.pid),
        ]
        websockify = shutil.which("websockify")
        wsPort = 0
        if websockify:
            wsPort = freePort()
            wsk = spawn(websockify, f"127.0.0.1:{wsPort}", f"127.0.0.1:{serverPort}")
            targets.append(Target("websockify", wsPort, ws=True, pid=wsk.pid))
        for port in (serverPort, control) + ((wsPort,) if websockify else ()):
            waitPort(port)
        wanted = set(args.targets.split(","))
        targets = [t for t in targets if t.name.replace("proxy ", "") in wanted]
        rounds: dict[str, list[dict[str, Any]]] = {t.name: [] for t in targets}
        for n in range(args.rounds):
            for target in targets:
                r = measure(target, serverPort, args)
                rounds[target.name].append(r)
                if args.json:
                    print(json.dumps(dict(r, round=n + 1)), flush=True)
        results = {}
        for target in targets:
            rs = rounds[target.name]

            def med(key: str, rs: list[dict[str, Any]] = rs) -> Any:
                values = [r[key] for r in rs if r[key] is not None]
                return round(statistics.median(values), 3) if values else None

            r = {
                k: med(k)
                for k in ("control_ms_p50", "connect_ms_p50", "setup_ms_p50", "rtt_us_p50", "MBps", "cpu_s_per_GiB")
            }
            r["MBps_rounds"] = [x["MBps"] for x in rs]
            results[target.name] = r
            print(
                f"{target.name:<11} setup p50 {r['setup_ms_p50']:7.3f} ms (control->OK {r['control_ms_p50']} ms, "
                f"connect->ServerInit {r['connect_ms_p50']:.3f} ms)  rtt p50 {r['rtt_us_p50']:7.1f} us  "
                f"{r['MBps']:8.1f} MB/s {r['MBps_rounds']}  relay cpu {r['cpu_s_per_GiB']} s/GiB",
                flush=True,
            )
        if "websockify" in results:
            base = results["websockify"]
            for name in ("proxy raw", "proxy ws"):
                if name not in results:
                    continue
                r = results[name]
                print(
                    f"ratio {name} / websockify: MB/s x{r['MBps'] / base['MBps']:.2f}, "
                    f"CPU s/GiB x{r['cpu_s_per_GiB'] / base['cpu_s_per_GiB']:.2f}, "
                    f"connect->ServerInit x{r['connect_ms_p50'] / base['connect_ms_p50']:.2f}"
                )
        elif not websockify:
            print("websockify not installed (tests/harness/vnc.sh installs it): no baseline ratio")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
