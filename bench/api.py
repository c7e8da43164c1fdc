"""
API request rate and latency against the simulated cluster, each beside a
bare Klein JSON endpoint served the same way (same process, same kind of
Site, no database) in the same run:

  - C{GET /compute/v2.0/flavors/detail} (FLAVORS flavors);
  - C{GET /compute/v2.0/servers/detail} of a user with 100 servers and of
    one with 1,000 (each server with a port, an IPv4 address, a volume and
    two metadata items);
  - C{POST /compute/v2.0/servers} (a server created per request: quota
    commission, rows, a CreateInstance job on the simulated cluster);
  - the bare endpoint, measured just before each round of each target:
    every ratio is to the bare figure of the same round, and the median of
    the rounds is reported with their range (a shared machine drifts
    between the start and the end of a run).

Every request is token-authenticated as a client does it (C{X-Auth-Token})
and, as python-requests sends by default (so keystoneauth, openstacksdk and
novaclient), accepts C{gzip, deflate}; C{/servers/detail} of 100 servers is
measured once more without it (the answer then goes out uncompressed).
The API runs in a child process (one reactor, one core, as one API node
worker) on SQLite (a file, the embedded default) or PostgreSQL (a fresh
schema in the database of C{SNF_BENCH_PG_URL}, dropped at the end). The
load comes from another process: C{wrk} when it is installed (Debian
package C{wrk}), else a Python client of CONNECTIONS processes; each keeps
one HTTP/1.1 connection alive and sends its next request when the last
answer is read.

Run from the repository root:

    .venv/bin/python -m bench.api [--db sqlite|postgresql|both] [--duration 2] [--rounds 3] [--connections 10]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

DEFAULT_PG_URL = os.environ.get("SNF_BENCH_PG_URL", "postgresql://synnefo_test@127.0.0.1:5432/synnefo_bench")
SERVER_COUNTS = (100, 1000)
BIG_QUOTA = 1 << 60

# The figures of the original Synnefo 0.20 API on this kind of machine with
# one worker (issue 4): GET /servers/detail of 100 servers, GET /flavors/detail.
SYNNEFO_020 = {"servers100": 5.9, "flavors": 57.0}


def withSearchPath(url: str, schema: str) -> str:
    from urllib.parse import quote

    return url + ("&" if "?" in url else "?") + "options=" + quote(f"-csearch_path={schema}")


# -- the server process ----------------------------------------------------------------------------------


async def seed(database: Any, flavors: int) -> dict[str, Any]:
    """
    A flavor set, a public image, a public network with a subnet, and one
    user (with huge quotas) per entry of L{SERVER_COUNTS} owning that many
    servers, plus a user for C{POST /servers}; their tokens.
    """
    from synnefo_twisted.db.repositories import (
        BackendRepository,
        FlavorRepository,
        ImageRepository,
        NetworkRepository,
        PortRepository,
        ProjectRepository,
        QuotaRepository,
        ServerRepository,
        SubnetRepository,
        UserRepository,
    )
    from synnefo_twisted.db.volumes import VolumeRepository
    from web.seed import DEMO_IMAGE_ID, DEMO_QUOTAS, seedDemo

    await seedDemo(database)
    flavorRepo = FlavorRepository(database)
    volumeType = (await flavorRepo.volumeTypes())[0]
    for i in range(max(0, flavors - 3)):
        await flavorRepo.create(16 + i, 512, 10, volumeType.id)
    flavor = (await flavorRepo.list())[0]
    image = await ImageRepository(database).get(DEMO_IMAGE_ID)
    assert image is not None
    backend = await BackendRepository(database).add("sim.bench.local", "http://simulated-cluster", simulated=True)
    network = await NetworkRepository(database).create("public", "IP_LESS_ROUTED", public=True, link="br0")
    subnet = await SubnetRepository(database).create(network.id, "10.0.0.0/16", 4, gateway="10.0.0.1")
    users, projects, quotas = UserRepository(database), ProjectRepository(database), QuotaRepository(database)
    servers, ports, volumes = ServerRepository(database), PortRepository(database), VolumeRepository(database)
    tokens: dict[str, str] = {}
    address = 2
    for label, count in [*((f"servers{n}", n) for n in SERVER_COUNTS), ("create", 0)]:
        user, token = await users.create(f"{label}@bench.example.org", label)
        project = await projects.create(f"{label} base", ownerUUID=user.uuid, isBase=True, uuid=user.uuid)
        await projects.addMember(project.id, user.id)
        for resource in DEMO_QUOTAS:
            await quotas.setLimit(project.id, resource, BIG_QUOTA)
        tokens[label] = token
        for i in range(count):
            server = await servers.create(
                f"{label}-{i}", user.uuid, flavor.id, image.id, project=user.uuid, backendId=backend.id
            )
            await servers.update(server.id, operstate="STARTED", task=None)
            await servers.setMetadata(server.id, {"OS": "debian", "role": f"web{i % 7}"})
            port = await ports.create(
                network.id,
                userid=user.uuid,
                project=user.uuid,
                serverId=server.id,
                mac=f"aa:00:00:{address >> 16 & 255:02x}:{address >> 8 & 255:02x}:{address & 255:02x}",
                state="ACTIVE",
            )
            ip = f"10.0.{address >> 8 & 255}.{address & 255}"
            await ports.addIP(subnet.id, network.id, ip, 4, portId=port.id, userid=user.uuid)
            await volumes.create(
                user.uuid, volumeType.id, flavor.disk, project=user.uuid, serverId=server.id, idx=0, status="IN_USE"
            )
            address += 1
    return {"tokens": tokens, "flavor": flavor.id, "image": image.id}


def _default(section: str, key: str) -> Any:
    """
    The default of a node setting (what an operator gets without a configuration file).
    """
    from plugins.api import SETTINGS as API_SETTINGS
    from synnefo_twisted.config import CORE_SECTIONS

    settings = API_SETTINGS if section == "api" else CORE_SECTIONS[section]
    return next(s.default for s in settings if s.name == key)


def serve(databaseURL: str, flavors: int) -> None:
    """
    The server process: print one JSON line with the ports, tokens and
    request parameters, then serve until SIGTERM (the database is stopped
    before the reactor, so no thread outlives it).
    """
    from klein import Klein
    from twisted.internet.defer import Deferred
    from twisted.internet.endpoints import TCP4ServerEndpoint
    from twisted.internet.task import react
    from twisted.web.server import Site

    from synnefo_twisted.backends import BackendRegistry
    from synnefo_twisted.db import openDatabase
    from synnefo_twisted.db.migrations import migrate
    from synnefo_twisted.logic import serverops
    from synnefo_twisted.malloc import tuneMalloc
    from synnefo_twisted.testing import InMemoryCluster
    from web.app import APIApplication

    class QuietSite(Site):
        def log(self, request: Any) -> None:
            pass

    # as twistd synnefo sets the process up, with the defaults
    tuneMalloc(int(_default("node", "malloc_retain")))

    async def main(reactor: Any) -> None:
        database = openDatabase(databaseURL, reactor)
        await database.startService()
        reactor.addSystemEventTrigger("before", "shutdown", database.stopService)
        await migrate(database)
        seeded = await seed(database, flavors)
        sim = InMemoryCluster.create(reactor, defaultDuration=0.5)
        reactor.addSystemEventTrigger("before", "shutdown", sim.queue.stop)
        registry = BackendRegistry(database, "snf-", reactor, clientFactory=lambda r, b: sim.client)
        base = "http://127.0.0.1"
        app = APIApplication(
            database,
            reactor,
            base,
            backends=registry,
            serverOptions=serverops.ServerOptions(vmapiURL=f"{base}/vmapi/v1.0/server-params", clock=reactor),
            listingStaleness=float(_default("api", "listing_staleness")),
        )
        bare = Klein()

        @bare.route("/bare")
        def bareEndpoint(request: Any) -> bytes:
            request.setHeader(b"Content-Type", b"application/json; charset=UTF-8")
            body = json.dumps({"hello": "world"}).encode("utf-8")
            request.setHeader(b"Content-Length", b"%d" % len(body))  # as the API sends its answers
            return body

        apiPort = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(QuietSite(app.resource()))
        barePort = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(QuietSite(bare.resource()))
        line = {"api": apiPort.getHost().port, "bare": barePort.getHost().port, **seeded}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        await Deferred()  # serve until the reactor stops (SIGTERM)

    react(lambda reactor: Deferred.fromCoroutine(main(reactor)))


# what python-requests (so keystoneauth, openstacksdk, novaclient) sends unless told otherwise
CLIENT_ACCEPT_ENCODING = "gzip, deflate"


@dataclass(frozen=True)
class Target:
    """
    What is loaded: a request, sent again and again.

    @ivar original: the key of Synnefo 0.20's figure for the same request, if any.
    @ivar encoding: the C{Accept-Encoding} sent (empty: none).
    """

    name: str
    port: int
    method: str
    path: str
    token: str | None = None
    body: bytes | None = None
    original: str | None = None
    encoding: str = CLIENT_ACCEPT_ENCODING

    def headers(self) -> dict[str, str]:
        """
        The headers of each request (http.client adds C{Accept-Encoding: identity} when there is none).
        """
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["X-Auth-Token"] = self.token
        if self.encoding:
            headers["Accept-Encoding"] = self.encoding
        return headers


# -- the load generators ------------------------------------------------------------------------------------

_WRK_SCRIPT = """
wrk.method = os.getenv("BENCH_METHOD")
local body = os.getenv("BENCH_BODY")
if body ~= "" then wrk.body = body end
-- no response() hook: wrk would copy every body into Lua for it, which
-- costs the load generator (on the same machine) more the larger the answer;
-- summary.errors.status counts every answer of 400 and above, and each target
-- is checked once for its expected status before it is loaded
done = function(summary, latency, requests)
  io.write(string.format(
    'BENCH {"n": %d, "seconds": %f, "p50": %f, "p99": %f, "errors": %d, "socket_errors": %d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout))
end
"""


def wrkLoad(target: Target, connections: int, duration: float) -> dict[str, float]:
    """
    Run wrk (one thread: the other core serves) and read its summary.
    """
    url = f"http://127.0.0.1:{target.port}{target.path}"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_SCRIPT)
    try:
        env = dict(os.environ, BENCH_METHOD=target.method, BENCH_BODY=(target.body or b"").decode())
        headers = [arg for name, value in target.headers().items() for arg in ("-H", f"{name}: {value}")]
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "10s"]
            + headers
            + ["-s", script.name, url],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=duration + 60,
        ).stdout
    finally:
        os.unlink(script.name)
    summary = json.loads(next(line for line in out.splitlines() if line.startswith("BENCH "))[6:])
    if summary["errors"] or summary["socket_errors"]:
        raise SystemExit(f"{target.method} {url}: {summary}")
    return {"rps": summary["n"] / summary["seconds"], "p50": summary["p50"], "p99": summary["p99"], "n": summary["n"]}


def _client(port: int, method: str, path: str, headers: dict[str, str], body: bytes | None, until: float) -> Any:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port)
    latencies: list[float] = []
    bad = 0
    while time.time() < until:
        began = time.perf_counter()
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status >= 300:
            bad += 1
        latencies.append(time.perf_counter() - began)
    conn.close()
    return latencies, bad


def pythonLoad(target: Target, connections: int, duration: float) -> dict[str, float]:
    """
    CONNECTIONS client processes, one keep-alive connection each.
    """
    start = time.time() + 0.5
    arguments = (target.port, target.method, target.path, target.headers(), target.body, start + duration)
    with multiprocessing.get_context("spawn").Pool(connections) as pool:
        waiting = [pool.apply_async(_client, arguments) for _ in range(connections)]
        results = [w.get(timeout=duration + 60) for w in waiting]
    every = sorted(x for latencies, _ in results for x in latencies)
    if sum(bad for _, bad in results):
        raise SystemExit(f"{sum(bad for _, bad in results)} requests {target.method} {target.path} failed")
    return {
        "rps": len(every) / duration,
        "p50": statistics.median(every) * 1000,
        "p99": every[max(0, int(len(every) * 0.99) - 1)] * 1000,
        "n": len(every),
    }


def checkStatus(target: Target) -> None:
    """
    One request as the load sends them: it must be answered 200 or 202
    with a body, or the run stops.
    """
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", target.port, timeout=30)
    try:
        connection.request(target.method, target.path, body=target.body, headers=target.headers())
        response = connection.getresponse()
        answer = response.read()
    finally:
        connection.close()
    if response.status not in (200, 202) or not answer:
        raise SystemExit(f"{target.method} {target.path}: answered {response.status} {answer[:200]!r}")


def load(target: Target, connections: int, duration: float) -> dict[str, float]:
    checkStatus(target)
    if shutil.which("wrk"):
        return wrkLoad(target, connections, duration)
    return pythonLoad(target, connections, duration)


# -- the run ------------------------------------------------------------------------------------------------


def measure(databaseURL: str, label: str, options: argparse.Namespace) -> list[dict[str, Any]]:
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.api", "--serve", databaseURL, "--flavors", str(options.flavors)],
        cwd=str(ROOT),
        stdout=subprocess.PIPE,
        text=True,
    )
    rows: list[dict[str, Any]] = []
    try:
        assert server.stdout is not None
        info = json.loads(server.stdout.readline())
        tokens = info["tokens"]
        create = json.dumps(
            {"server": {"name": "bench", "imageRef": info["image"], "flavorRef": info["flavor"], "networks": []}}
        ).encode()
        api, bare = info["api"], info["bare"]
        targets = [
            Target("bare Klein JSON endpoint", bare, "GET", "/bare"),
            Target(
                "GET /flavors/detail", api, "GET", "/compute/v2.0/flavors/detail", tokens["create"], original="flavors"
            ),
        ]
        for n in SERVER_COUNTS:
            targets.append(
                Target(
                    f"GET /servers/detail ({n})",
                    api,
                    "GET",
                    "/compute/v2.0/servers/detail",
                    tokens[f"servers{n}"],
                    original=f"servers{n}",
                )
            )
        targets.append(
            Target(
                "GET /servers/detail (100), no gzip",
                api,
                "GET",
                "/compute/v2.0/servers/detail",
                tokens["servers100"],
                original="servers100",
                encoding="",
            )
        )
        targets.append(Target("POST /servers", api, "POST", "/compute/v2.0/servers", tokens["create"], create))
        for target in targets[:4]:  # warm up
            load(target, options.connections, 1)
        bareRounds: list[dict[str, float]] = []
        for target in targets[1:]:
            # rounds of the bare endpoint then the target: each ratio is to
            # the bare figure measured just before, so that drift on a shared
            # machine between the start and the end of the run cancels out
            rounds = []
            for _ in range(options.rounds):
                bareResult = load(targets[0], options.connections, options.duration)
                bareRounds.append(bareResult)
                result = load(target, options.connections, options.duration)
                rounds.append((result, result["rps"] / bareResult["rps"]))
            rows.append(_row(label, target, rounds))
        rows.insert(0, _row(label, targets[0], [(r, 1.0) for r in bareRounds]))
        for row in rows:
            print(
                f"  {label:<10} {row['target']:<34} {row['rps']:7.0f} req/s  p50 {row['p50']:6.2f} ms"
                f"  p99 {row['p99']:6.2f} ms  ratio to bare {row['ratio']:.2f}"
                f" ({row['ratio_min']:.2f}-{row['ratio_max']:.2f})"
                + (f"  x{row['vs_synnefo']:.0f} Synnefo 0.20" if "vs_synnefo" in row else ""),
                flush=True,
            )
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
            raise SystemExit("the API process did not stop on SIGTERM") from None
    return rows


def _row(label: str, target: Target, rounds: list[tuple[dict[str, float], float]]) -> dict[str, Any]:
    """
    A target's figures over its rounds: the medians of its rate, latencies
    and ratio to the bare endpoint, and the range of the ratio.
    """
    ratios = [ratio for _, ratio in rounds]
    row: dict[str, Any] = {
        "db": label,
        "target": target.name,
        "rounds": len(rounds),
        "n": sum(r["n"] for r, _ in rounds),
        **{key: statistics.median(r[key] for r, _ in rounds) for key in ("rps", "p50", "p99")},
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
    }
    if target.original is not None and target.original in SYNNEFO_020:
        row["vs_synnefo"] = row["rps"] / SYNNEFO_020[target.original]
    return row


def run(options: argparse.Namespace) -> list[dict[str, Any]]:
    generator = "wrk" if shutil.which("wrk") else "a Python client"
    print(
        f"{options.connections} connections ({generator}), {options.rounds} rounds of {options.duration:g} s per target"
        " (each after one of the bare endpoint),"
        f" {options.flavors} flavors, servers with 1 port, 1 IPv4, 1 volume, 2 metadata items"
    )
    rows: list[dict[str, Any]] = []
    if options.db in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as directory:
            rows += measure(f"sqlite:///{directory}/bench.db", "sqlite", options)
    if options.db in ("postgresql", "both"):
        import psycopg2

        schema = "snf_bench_api_" + uuid.uuid4().hex[:8]
        conn = psycopg2.connect(options.pg_url)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE SCHEMA {schema}")
            rows += measure(withSearchPath(options.pg_url, schema), "postgresql", options)
        finally:
            with conn.cursor() as cur:
                cur.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.close()
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--duration", type=float, default=2.0, help="seconds per round of a target (and of the bare endpoint before it)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds per target")
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--flavors", type=int, default=50, help="flavors in the database")
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL database (a schema is made and dropped)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.serve:
        serve(options.serve, options.flavors)
        return
    rows = run(options)
    if options.json:
        Path(options.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
