"""
Floating-IP allocation through the network API on PostgreSQL: a /24
floating-IP pool (253 free addresses) drained by POST
C{/network/v2.0/floatingips} over loopback HTTP, CONCURRENCY requests at a
time, beside the same drain one request at a time (the baseline) in the
same run. Each allocation is one transaction that locks the quota holding
and the pool row, so parallel allocations serialize there; the run also
checks that exactly the free addresses were handed out, each once, and
the surplus requests got 409.

Run from the repository root (a schema of its own in the PostgreSQL
database, dropped at the end):

    .venv/bin/python -m bench.network [--url URL] [--concurrency 10] [--requests 260]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

DEFAULT_URL = os.environ.get("SNF_BENCH_PG_URL", "postgresql://synnefo_test@127.0.0.1:5432/synnefo_bench")


async def drain(reactor: Any, url: str, concurrency: int, requests: int) -> dict[str, Any]:
    """
    One run on a fresh schema: the figures of draining the pool.
    """
    import psycopg2
    import treq
    from twisted.internet.defer import Deferred, gatherResults
    from twisted.web.server import Site

    from synnefo_twisted.db import openDatabase
    from synnefo_twisted.db.migrations import migrate
    from synnefo_twisted.db.repositories import ProjectRepository, QuotaRepository, UserRepository
    from synnefo_twisted.logic import networks as netlogic
    from web.app import APIApplication

    schema = "snf_bench_" + uuid.uuid4().hex[:8]
    admin = psycopg2.connect(url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in url else "?"
    db = openDatabase(f"{url}{separator}options=-csearch_path%3D{schema}", reactor, poolSize=max(concurrency, 2))
    await db.startService()
    try:
        await migrate(db)
        defaults = netlogic.NetworkDefaults()
        subnet = netlogic.parseSubnet({"subnet": {"cidr": "10.99.0.0/24"}}, defaults, networkId=0)
        request = netlogic.NetworkRequest("CUSTOM", "public", None, False)
        await netlogic.createNetwork(db, request, None, defaults, subnets=[subnet], public=True, floatingIPPool=True)
        user, token = await UserRepository(db).create("bench@example.org")
        project = await ProjectRepository(db).create("bench", ownerUUID=user.uuid, isBase=True)
        await ProjectRepository(db).addMember(project.id, user.id)
        await QuotaRepository(db).setLimit(project.id, "cyclades.floating_ip", 10 * requests)
        app = APIApplication(db, reactor, "http://127.0.0.1")
        port = reactor.listenTCP(0, Site(app.resource()), interface="127.0.0.1")
        api = f"http://127.0.0.1:{port.getHost().port}/network/v2.0/floatingips"
        headers: dict[bytes | str, bytes | str] = {"X-Auth-Token": token, "Content-Type": "application/json"}
        body = json.dumps({"floatingip": {}}).encode()
        codes: list[int] = []

        async def one() -> None:
            response = await treq.post(api, data=body, headers=headers)
            await response.content()
            codes.append(response.code)

        start = time.monotonic()
        for first in range(0, requests, concurrency):
            batch = min(concurrency, requests - first)
            await gatherResults([Deferred.fromCoroutine(one()) for _ in range(batch)])
        elapsed = time.monotonic() - start
        listed = await (await treq.get(api, headers=headers)).json()
        await port.stopListening()
    finally:
        await db.stopService()
        with admin.cursor() as cur:
            cur.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()
    addresses = [ip["floating_ip_address"] for ip in listed["floatingips"]]
    return {
        "concurrency": concurrency,
        "seconds": elapsed,
        "rate": requests / elapsed,
        "ok": codes.count(200),
        "conflict": codes.count(409),
        "other": len(codes) - codes.count(200) - codes.count(409),
        "distinct": len(set(addresses)) == len(addresses),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--url", default=DEFAULT_URL, help=f"PostgreSQL URL (default {DEFAULT_URL}; env SNF_BENCH_PG_URL)"
    )
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--requests", type=int, default=260)
    args = parser.parse_args(argv)

    from twisted.internet.defer import Deferred
    from twisted.internet.task import react

    results: list[dict[str, Any]] = []

    async def run(reactor: Any) -> None:
        for concurrency in (1, args.concurrency):
            results.append(await drain(reactor, args.url, concurrency, args.requests))

    try:
        react(lambda reactor: Deferred.fromCoroutine(run(reactor)))
    except SystemExit as e:
        if e.code:
            return int(e.code)
    for r in results:
        label = "baseline (one at a time)" if r["concurrency"] == 1 else f"{r['concurrency']} at a time"
        print(
            f"{label:26} {args.requests} allocations in {r['seconds']:.2f} s = {r['rate']:.0f}/s; "
            f"200: {r['ok']}, 409: {r['conflict']}, other: {r['other']}, addresses distinct: {r['distinct']}"
        )
    good = all(r["ok"] == min(253, args.requests) and r["other"] == 0 and r["distinct"] for r in results)
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
