"""
DISCOVER -> OFFER benchmark of the dhcp responder, beside two baselines
measured in the same run, on the same namespaces and load generator:

  - scapy: a per-packet scapy responder on the same NFQUEUE (the original
    nfdhcpd's approach: scapy parses every request and builds every reply);
  - dnsmasq: a conventional DHCP server on a socket (no NFQUEUE; the
    queue's --queue-bypass lets packets through while no responder is bound).

The load generator runs in a VM namespace: closed loop with W requests in
flight (1 and 32), each DISCOVER from its own MAC and xid, on a raw socket;
an OFFER matched by xid counts, one missing after 1 s is lost. Prints
OFFER/s and the latency p50/p99 for each, and our ratios to the baselines.

Run as root from the repository root:

    .venv/bin/python -m bench.dhcp [--duration 5] [--rounds 3] [--only ours,scapy,dnsmasq]

Everything stays inside namespaces made by tests/harness/netns.sh and is
removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == ROOT / "bench":  # run as a file: bench/dhcp.py would shadow dhcp/
    sys.path[0] = str(ROOT)

HARNESS = ROOT / "tests" / "harness" / "netns.sh"
PY = str(ROOT / ".venv" / "bin" / "python")
TWISTD = str(ROOT / ".venv" / "bin" / "twistd")
QUEUE = 142
ETH_P_IP = 0x0800
PACKET_OUTGOING = 4


# ---------------------------------------------------------------- load generator (in the VM namespace)


def discoverFrames(count: int) -> list[tuple[int, bytes]]:
    from dhcp import dhcpv4
    from dhcp.packet import buildUDPv4Frame

    frames = []
    for i in range(count):
        mac = b"\x02\x42" + i.to_bytes(4, "big")
        xid = 0x10000000 + i
        payload = dhcpv4.buildRequest(dhcpv4.DISCOVER, mac, xid)
        frames.append((xid, buildUDPv4Frame(mac, b"\xff" * 6, b"\0" * 4, b"\xff" * 4, 68, 67, payload)))
    return frames


def client(iface: str, window: int, duration: float, timeout: float = 1.0, macs: int = 20000) -> dict[str, float]:
    frames = discoverFrames(macs)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    s.bind((iface, ETH_P_IP))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.setsockopt(263, 23, 1)  # SOL_PACKET, PACKET_IGNORE_OUTGOING: do not read our own DISCOVERs back
    s.setblocking(False)
    outstanding: dict[int, float] = {}
    rtts: list[float] = []
    sent = lost = got = 0
    i = 0
    now = time.monotonic
    unpack = struct.unpack_from

    def drain() -> int:
        n = 0
        while True:
            try:
                data, addr = s.recvfrom(2048)
            except BlockingIOError:
                return n
            if addr[2] == PACKET_OUTGOING or len(data) < 282 or data[23] != 17:
                continue
            udp = 14 + (data[14] & 0x0F) * 4
            if unpack("!H", data, udp + 2)[0] != 68 or data[udp + 8] != 2:
                continue
            t = outstanding.pop(unpack("!I", data, udp + 12)[0], None)
            if t is not None:
                rtts.append(now() - t)
                n += 1

    start = now()
    end = start + duration
    lastExpire = start
    while True:
        t = now()
        if t >= end:
            break
        if t - lastExpire > 0.1:
            lastExpire = t
            for xid in [x for x, ts in outstanding.items() if t - ts > timeout]:
                del outstanding[xid]
                lost += 1
        while len(outstanding) < window:
            xid, frame = frames[i % macs]
            i += 1
            if xid in outstanding:
                break
            outstanding[xid] = now()
            s.send(frame)
            sent += 1
        got += drain()
        if len(outstanding) >= window:
            select.select([s], [], [], 0.01)
    elapsed = now() - start
    tailEnd = now() + timeout
    while outstanding and now() < tailEnd:
        select.select([s], [], [], 0.01)
        got += drain()
    lost += len(outstanding)
    rtts.sort()

    def pct(p: float) -> float:
        return rtts[min(len(rtts) - 1, int(p * len(rtts)))] * 1000 if rtts else float("nan")

    return {
        "window": window,
        "sent": sent,
        "offers": got,
        "lost": lost,
        "rate": got / elapsed,
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
    }


# ---------------------------------------------------------------- scapy baseline (in the host namespace)


def scapyResponder(queue: int, bindingPath: str) -> None:
    """
    Per-packet scapy parse and build on the same netlink queue reader.
    """
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    from dhcp.binding import parseBinding
    from dhcp.nfqueue import NF_ACCEPT, NF_DROP, NFQueueSocket
    from dhcp.service import interfaceLink

    binding = parseBinding(Path(bindingPath).name, Path(bindingPath).read_text())
    assert binding.ip is not None and binding.subnet is not None and binding.gateway is not None
    srcmac = interfaceLink(binding.indev).mac.hex(":")
    out = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    out.bind((binding.tap, 0))
    q = NFQueueSocket(queue)
    q.open()
    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    server, ip = str(binding.gateway), str(binding.ip)
    print("scapy responder running", flush=True)
    while not stop:
        try:
            ready, _, _ = select.select([q], [], [], 0.2)
        except InterruptedError:
            continue
        if not ready:
            continue
        for p in q.readBatch(64):
            req = IP(p.payload)
            if BOOTP not in req or DHCP not in req:
                q.verdict(p.packetId, NF_ACCEPT)
                continue
            opts = {o[0]: o[1] for o in req[DHCP].options if isinstance(o, tuple) and len(o) >= 2}
            if opts.get("message-type") != 1:
                q.verdict(p.packetId, NF_ACCEPT)
                continue
            bootp = req[BOOTP]
            cmac = bytes(bootp.chaddr)[:6].hex(":")
            reply = (
                Ether(src=srcmac, dst=cmac)
                / IP(src=server, dst=ip)
                / UDP(sport=67, dport=68)
                / BOOTP(op=2, xid=bootp.xid, flags=bootp.flags, yiaddr=ip, siaddr=server, chaddr=bootp.chaddr)
                / DHCP(
                    options=[
                        ("message-type", 2),
                        ("server_id", server),
                        ("lease_time", 604800),
                        ("renewal_time", 600),
                        ("subnet_mask", str(binding.subnet.netmask)),
                        ("broadcast_address", str(binding.subnet.broadcast_address)),
                        ("router", server),
                        ("name_server", "192.0.2.53"),
                        ("hostname", binding.hostname.encode()),
                        "end",
                    ]
                )
            )
            out.send(bytes(reply), socket.MSG_DONTWAIT)
            q.verdict(p.packetId, NF_DROP)
        q.flush()
    q.close()


# ---------------------------------------------------------------- in-process userspace path


def inProcess(count: int = 20000) -> dict[str, float]:
    """
    Per-packet cost of the userspace path alone, no kernel queue: packet
    messages are fed through a socketpair to the real service handler
    (netlink decode, binding lookup, answer, frame on a socket, verdicts),
    beside the same with scapy parsing and building (the baseline).
    """
    import ipaddress

    from twisted.internet.testing import MemoryReactorClock

    from dhcp import dhcpv4, nfqueue
    from dhcp.binding import parseBinding
    from dhcp.nfqueue import NF_DROP, NFQueueReader, NFQueueSocket
    from dhcp.responder import Link, ResponderConfig
    from dhcp.service import DHCPService, Platform, Sender
    from synnefo_twisted.metrics import MetricsRegistry

    frames = discoverFrames(count)
    messages = [
        nfqueue.encodePacketMessage(QUEUE, i, f[14:], indev=3, hwaddr=f[6:12]) for i, (_, f) in enumerate(frames)
    ]
    text = (
        "IP=203.0.113.30\nMAC=02:00:00:00:03:01\nHOSTNAME=vm3\nSUBNET=203.0.113.0/24\nGATEWAY=203.0.113.1\nMACSPOOF=1\n"
    )

    class SocketSender(Sender):
        def __init__(self, sock: socket.socket) -> None:
            self.sock = sock

        def send(self, frame: bytes) -> None:
            self.sock.send(frame)

        def close(self) -> None:
            pass

    def run(handlerFor) -> float:
        ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        tapIn, tapOut = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        for sk in (ours, kernel, tapIn, tapOut):
            sk.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            sk.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
        tapOut.setblocking(False)
        kernel.setblocking(False)
        q = NFQueueSocket(QUEUE, sock=ours)
        q.open()
        reader = handlerFor(q, tapIn)
        chunk = 256
        elapsed = 0.0
        replies = 0
        for start in range(0, count, chunk):
            for m in messages[start : start + chunk]:
                kernel.send(m)
            t = time.perf_counter()
            for _ in range(chunk // 64):
                reader.doRead()
            elapsed += time.perf_counter() - t
            for sk in (tapOut, kernel):
                while True:
                    try:
                        data = sk.recv(4096)
                    except BlockingIOError:
                        break
                    replies += sk is tapOut and len(data) > 282
        for sk in (ours, kernel, tapIn, tapOut):
            sk.close()
        if replies != count:
            raise RuntimeError(f"{replies} replies to {count} DISCOVERs")
        return elapsed / count

    def oursReader(q: NFQueueSocket, tap: socket.socket) -> NFQueueReader:
        platform = Platform(
            openQueue=lambda n: q,
            openSender=lambda name: SocketSender(tap),
            indexToName=lambda i: "tap3",
            linkOf=lambda name: Link(b"\x02\xfe\0\0\x03\x01", 1500),
            watchBindings=False,
        )
        svc = DHCPService(
            MemoryReactorClock(),
            ResponderConfig(nameservers=(ipaddress.IPv4Address("192.0.2.53"),)),
            Path("/nonexistent"),
            {"dhcp": QUEUE},
            MetricsRegistry(),
            platform,
            logPackets=False,
        )
        svc.startService()
        svc.store._set("tap3", parseBinding("tap3", text))  # no directory (the start rescan found none): bind directly
        return next(iter(svc._readers))

    def scapyReader(q: NFQueueSocket, tap: socket.socket) -> NFQueueReader:
        from scapy.layers.dhcp import BOOTP, DHCP
        from scapy.layers.inet import IP, UDP
        from scapy.layers.l2 import Ether

        def handle(p: nfqueue.QueuedPacket) -> int:
            req = IP(p.payload)
            bootp = req[BOOTP]
            reply = (
                Ether(src="02:fe:00:00:03:01", dst=bytes(bootp.chaddr)[:6].hex(":"))
                / IP(src="203.0.113.1", dst="203.0.113.30")
                / UDP(sport=67, dport=68)
                / BOOTP(op=2, xid=bootp.xid, flags=bootp.flags, yiaddr="203.0.113.30", siaddr="203.0.113.1", chaddr=bootp.chaddr)
                / DHCP(options=[("message-type", 2), ("server_id", "203.0.113.1"), ("lease_time", 604800),
                                ("subnet_mask", "255.255.255.0"), ("router", "203.0.113.1"), ("name_server", "192.0.2.53"),
                                ("hostname", b"vm3"), "end"])
            )  # fmt: skip
            tap.send(bytes(reply))
            return NF_DROP

        return NFQueueReader(q, handle)

    _ = dhcpv4
    oursCost = run(oursReader)
    scapyCost = run(scapyReader) if count else 0.0
    return {"ours_us": oursCost * 1e6, "scapy_us": scapyCost * 1e6}


# ---------------------------------------------------------------- orchestration (root namespace)


class Bench:
    def __init__(self, duration: float) -> None:
        self.duration = duration
        self.id = f"b{os.getpid() % 100000}"
        self.dir = Path(f"/tmp/snf-dhcp-bench-{self.id}")
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        subprocess.run([str(HARNESS), "up", self.id, str(self.dir), f"{QUEUE},-1,-1,-1"], check=True)
        self.host = f"snfd{self.id}-host"
        self.vm = f"snfd{self.id}-vm3"
        subprocess.run(
            ["ip", "netns", "exec", self.vm, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"], check=True
        )
        subprocess.run(["ip", "-n", self.vm, "link", "set", "eth0", "up"], check=True)

    def close(self) -> None:
        subprocess.run([str(HARNESS), "down", self.id], check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self, name: str, argv: list[str], ready: str) -> subprocess.Popen[bytes]:
        log = self.dir / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.host, *argv], stdout=out, stderr=subprocess.STDOUT, cwd=self.dir
            )
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if ready in log.read_text(errors="replace"):
                return proc
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        proc.kill()
        raise RuntimeError(f"{name} did not start:\n{log.read_text(errors='replace')}")

    def ours(self, logPackets: bool) -> subprocess.Popen[bytes]:
        config = self.dir / "synnefo.toml"
        config.write_text(
            "[node]\nroles = []\n"
            f'state_dir = "{self.dir / "var"}"\nadmin_listen = "tcp:0:interface=127.0.0.1"\n'
            f'[dhcp]\nbindings_dir = "{self.dir / "bindings"}"\n'
            f"dhcp_queue = {QUEUE}\nrs_queue = -1\nns_queue = -1\ndhcpv6_queue = -1\n"
            f'nameservers = ["192.0.2.53"]\nlog_packets = {"true" if logPackets else "false"}\n'
        )
        return self.start(
            "ours",
            [TWISTD, "-n", "--pidfile=", "synnefo", "--config", str(config), "--plugin", "dhcp"],
            "dhcp responder running",
        )

    def scapy(self) -> subprocess.Popen[bytes]:
        return self.start(
            "scapy",
            [PY, "-m", "bench.dhcp", "scapy-responder", str(self.dir / "bindings" / "tap3")],
            "scapy responder running",
        )

    def dnsmasq(self) -> subprocess.Popen[bytes]:
        return self.start(
            "dnsmasq",
            [
                "dnsmasq", "-k", "--conf-file=/dev/null", "--port=0", "--interface=tap3", "--bind-interfaces",
                "--dhcp-range=203.0.113.2,203.0.113.254,255.255.255.0,1h", "--no-ping", "--leasefile-ro",
                "--dhcp-authoritative", "--quiet-dhcp", "--log-facility=-", "--pid-file=",
                "--dhcp-option=option:dns-server,192.0.2.53", "--user=root",
            ],
            "DHCP, IP range",
        )  # fmt: skip

    def load(self, window: int, duration: float | None = None) -> dict[str, float]:
        seconds = str(duration or self.duration)
        result = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                self.vm,
                PY,
                "-m",
                "bench.dhcp",
                "client",
                "--window",
                str(window),
                "--duration",
                seconds,
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        return json.loads(result.stdout.strip().splitlines()[-1])

    def measure(self, name: str, proc: subprocess.Popen[bytes]) -> list[dict[str, float]]:
        try:
            self.load(1, 1.0)  # warm-up (imports, caches, ARP)
            return [self.load(1), self.load(32)]
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            time.sleep(0.3)


def orchestrate(duration: float, only: list[str], rounds: int) -> None:
    if "scapy" in only:
        try:
            import scapy  # noqa: F401
        except ImportError:
            raise SystemExit(
                "the scapy baseline needs scapy: .venv/bin/pip install scapy (or --only ours,dnsmasq)"
            ) from None
    if "dnsmasq" in only and shutil.which("dnsmasq") is None:
        raise SystemExit("the dnsmasq baseline needs dnsmasq: bash tests/harness/netns.sh setup (or --only ours,scapy)")
    bench = Bench(duration)
    runs = {
        "ours": lambda: bench.ours(False),
        "ours+log": lambda: bench.ours(True),
        "scapy": bench.scapy,
        "dnsmasq": bench.dnsmasq,
    }
    samples: dict[str, list[list[dict[str, float]]]] = {}
    try:
        # interleaved rounds: the machine is shared, so each responder gets
        # several turns spread over the run and the median is reported
        for _ in range(rounds):
            for name, starter in runs.items():
                if name.split("+")[0] in only:
                    samples.setdefault(name, []).append(bench.measure(name, starter()))
    finally:
        bench.close()

    def median(rows: list[dict[str, float]], key: str) -> float:
        values = sorted(r[key] for r in rows)
        return values[len(values) // 2]

    results = {
        name: [
            {k: median([rnd[w] for rnd in rounds_], k) for k in ("window", "rate", "p50_ms", "p99_ms", "lost")}
            | {"best": max(rnd[w]["rate"] for rnd in rounds_)}
            for w in range(2)
        ]
        for name, rounds_ in samples.items()
    }
    print(f"DISCOVER -> OFFER, closed loop, {duration:.0f} s per figure, median of {rounds} interleaved rounds")
    print(f"{'responder':<10} {'window':>6} {'OFFER/s':>10} {'(best)':>8} {'p50 ms':>8} {'p99 ms':>8} {'lost':>6}")
    for name, rows in results.items():
        for r in rows:
            print(
                f"{name:<10} {r['window']:>6.0f} {r['rate']:>10.0f} {r['best']:>8.0f} {r['p50_ms']:>8.3f} "
                f"{r['p99_ms']:>8.3f} {r['lost']:>6.0f}"
            )
    if "scapy" in only:
        r = inProcess()
        print(
            f"userspace path alone (no kernel queue), per exchange: ours {r['ours_us']:.1f} us, "
            f"scapy {r['scapy_us']:.1f} us: x{r['scapy_us'] / r['ours_us']:.1f}"
        )
    if "ours" in results:
        for base in ("scapy", "dnsmasq"):
            if base in results:
                for mine, theirs in zip(results["ours"], results[base]):
                    print(
                        f"ours / {base} at window {mine['window']:.0f}: throughput x{mine['rate'] / theirs['rate']:.2f}, "
                        f"p50 latency x{mine['p50_ms'] / theirs['p50_ms']:.2f}"
                    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dhcp")
    sub = parser.add_subparsers(dest="command")
    c = sub.add_parser("client")
    c.add_argument("--iface", default="eth0")
    c.add_argument("--window", type=int, default=32)
    c.add_argument("--duration", type=float, default=5.0)
    sub.add_parser("inprocess")
    s = sub.add_parser("scapy-responder")
    s.add_argument("binding")
    s.add_argument("--queue", type=int, default=QUEUE)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--only", default="ours,scapy,dnsmasq")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if args.command == "client":
        print(json.dumps(client(args.iface, args.window, args.duration)))
    elif args.command == "inprocess":
        r = inProcess()
        print(
            f"userspace path per DISCOVER->OFFER (netlink decode, lookup, answer, frame out, verdicts), in process:\n"
            f"  ours {r['ours_us']:.1f} us ({1e6 / r['ours_us']:.0f}/s per core), "
            f"scapy {r['scapy_us']:.1f} us ({1e6 / r['scapy_us']:.0f}/s per core): x{r['scapy_us'] / r['ours_us']:.1f}"
        )
    elif args.command == "scapy-responder":
        scapyResponder(args.queue, args.binding)
    else:
        if os.geteuid() != 0:
            print("the benchmark needs root (network namespaces, NFQUEUE)", file=sys.stderr)
            return 1
        orchestrate(args.duration, args.only.split(","), args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
