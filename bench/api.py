"""
API request rate and latency: C{GET /compute/v2.0/flavors/detail} and
C{GET /compute/v2.0/flavors} (token checked against the database on every
request, flavors read from it), beside a bare Klein JSON endpoint served
the same way (same process, same kind of Site, no database) in the same run.

The server runs in a child process (SQLite file database, demo data seeded);
this process drives it with CONNECTIONS keep-alive HTTP/1.1 connections,
one thread each, for DURATION seconds per target.

Run from the repository root:

    .venv/bin/python -m bench.api [--duration 5] [--connections 10] [--flavors 50]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)


def serve(directory: str, flavors: int) -> None:
    """
    The server process: print one JSON line with the ports and a token, then serve.
    """
    from klein import Klein
    from twisted.internet.defer import Deferred
    from twisted.internet.endpoints import TCP4ServerEndpoint
    from twisted.internet.task import react
    from twisted.web.server import Site

    from synnefo_twisted.db import openDatabase
    from synnefo_twisted.db.migrations import migrate
    from synnefo_twisted.db.repositories import FlavorRepository
    from web.app import APIApplication
    from web.seed import seedDemo

    class QuietSite(Site):
        def log(self, request: Any) -> None:
            pass

    async def main(reactor: Any) -> None:
        database = openDatabase(f"sqlite:///{directory}/bench.db", reactor)
        await database.startService()
        await migrate(database)
        seeded = await seedDemo(database)
        repo = FlavorRepository(database)
        volumeType = (await repo.volumeTypes())[0]
        for i in range(max(0, flavors - 3)):
            await repo.create(16 + i, 512, 10, volumeType.id)
        app = APIApplication(database, reactor, "http://127.0.0.1")
        bare = Klein()

        @bare.route("/bare")
        def bareEndpoint(request: Any) -> bytes:
            request.setHeader(b"Content-Type", b"application/json; charset=UTF-8")
            return json.dumps({"hello": "world"}).encode("utf-8")

        apiPort = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(QuietSite(app.resource()))
        barePort = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(QuietSite(bare.resource()))
        line = {"api": apiPort.getHost().port, "bare": barePort.getHost().port, "token": seeded.token}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        await Deferred()  # serve until killed

    react(lambda reactor: Deferred.fromCoroutine(main(reactor)))


def load(port: int, path: str, token: str | None, connections: int, duration: float) -> dict[str, float]:
    """
    Requests/s and latency percentiles (ms) of GET path over keep-alive connections.
    """
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0]
    start = threading.Event()
    headers = {"X-Auth-Token": token} if token else {}

    def worker(mine: list[float]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        start.wait()
        deadline = time.perf_counter() + duration
        while True:
            began = time.perf_counter()
            if began >= deadline:
                break
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                errors[0] += 1
            mine.append(time.perf_counter() - began)
        conn.close()

    threads = [threading.Thread(target=worker, args=(latencies[i],)) for i in range(connections)]
    for t in threads:
        t.start()
    began = time.perf_counter()
    start.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    every = sorted(x for mine in latencies for x in mine)
    if errors[0]:
        raise SystemExit(f"{errors[0]} requests to {path} failed")
    return {
        "rps": len(every) / elapsed,
        "p50": statistics.median(every) * 1000,
        "p99": every[int(len(every) * 0.99) - 1] * 1000,
        "n": len(every),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--flavors", type=int, default=50, help="flavors in the database")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve:
        serve(options.serve, options.flavors)
        return
    with tempfile.TemporaryDirectory() as directory:
        server = subprocess.Popen(
            [sys.executable, "-m", "bench.api", "--serve", directory, "--flavors", str(options.flavors)],
            cwd=str(ROOT),
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            info = json.loads(server.stdout.readline())
            load(info["bare"], "/bare", None, options.connections, 0.5)  # warm up
            print(f"{options.connections} connections, {options.duration:.0f} s per target, {options.flavors} flavors")
            base = load(info["bare"], "/bare", None, options.connections, options.duration)
            print(
                f"  bare Klein JSON endpoint   {base['rps']:7.0f} req/s  p50 {base['p50']:6.2f} ms  p99 {base['p99']:6.2f} ms"
            )
            for path in ("/compute/v2.0/flavors/detail", "/compute/v2.0/flavors"):
                ours = load(info["api"], path, info["token"], options.connections, options.duration)
                print(
                    f"  GET {path:<28} {ours['rps']:7.0f} req/s  p50 {ours['p50']:6.2f} ms  p99 {ours['p99']:6.2f} ms"
                    f"  (ratio to bare {ours['rps'] / base['rps']:.2f})"
                )
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
