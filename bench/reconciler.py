"""
Reconciliation time for 10,000 servers on the simulated cluster, on SQLite
and on PostgreSQL, beside a baseline measured in the same run.

Each database gets N servers (flavor, one port with an IPv4 address each)
and the simulated cluster the matching N instances (same NIC names, MACs
and addresses), served over loopback HTTP by the simulator's RAPI. Then
drift is injected behind the system's back: 1% of the instances are
stopped, 0.5% removed (stale servers), 0.2% are extra instances (orphans),
0.2% of the servers carry a task whose job is over.

  baseline    GET /2/instances?bulk=1 + GET /2/jobs?bulk=1 through the RAPI
              client, and one SELECT of the backend's servers: the least any
              reconciliation has to read (best of three);
  report      reconcile every server: one Ganeti snapshot (the two bulk
              calls), the servers read in batches of --batch-size (as
              snf-manage reconcile-servers does), no fixes;
  fix-all     the same with every fix (through the dispatcher's state
              machine; orphans deleted from Ganeti);
  after       a report pass after the fixes (and the orphans' delete jobs):
              the findings left (goal: 0).

Run from the repository root:

    .venv/bin/python -m bench.reconciler [--servers 10000] [--batch-size 1000] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

from twisted.internet import defer, task  # noqa: E402
from twisted.web.server import Site  # noqa: E402

from synnefo_twisted.db import openDatabase  # noqa: E402
from synnefo_twisted.db.migrations import migrate  # noqa: E402
from synnefo_twisted.db.repositories import (  # noqa: E402
    BackendRepository,
    FlavorRepository,
    ImageRepository,
    NetworkRepository,
    PortRepository,
    ProjectRepository,
    ServerRepository,
    SubnetRepository,
    UserRepository,
)
from synnefo_twisted.ganeti.rapi import RapiClient  # noqa: E402
from synnefo_twisted.ganeti.sim.model import SimCluster  # noqa: E402
from synnefo_twisted.ganeti.sim.queue import JobQueue  # noqa: E402
from synnefo_twisted.ganeti.sim.rapi import SimRapi  # noqa: E402
from synnefo_twisted.logic.reconcile import Thresholds  # noqa: E402
from synnefo_twisted.reconciler.service import planBatches  # noqa: E402
from synnefo_twisted.reconciler.shell import FixOptions, reconcileServers, takeSnapshot  # noqa: E402

DEFAULT_PG = os.environ.get(
    "SNF_BENCH_PG_URL", os.environ.get("SNF_TEST_PG_URL", "postgresql://synnefo_test@127.0.0.1:5432/synnefo_test")
)
USERS = {"bench": ("bench", "write")}
LONG_AGO = datetime(2026, 1, 1, tzinfo=UTC)


def withSearchPath(url: str, schema: str) -> str:
    option = "options=" + quote(f"-csearch_path={schema}")
    return url + ("&" if "?" in url else "?") + option


def mac(i: int) -> str:
    return f"aa:01:{(i >> 16) & 0xFF:02x}:{(i >> 8) & 0xFF:02x}:{i & 0xFF:02x}:01"


def address(i: int) -> str:
    return f"10.{128 + (i >> 16)}.{(i >> 8) & 0xFF}.{i & 0xFF}"


async def seed(db: Any, n: int) -> dict[str, Any]:
    """
    The catalog, one network with its subnet, and C{n} STARTED servers
    with one port and address each, in one transaction.
    """
    user, _ = await UserRepository(db).create("bench@example.org", "Bench")
    project = await ProjectRepository(db).create("bench", ownerUUID=user.uuid, isBase=True)
    flavors = FlavorRepository(db)
    volumeType = await flavors.addVolumeType("file", "file")
    flavor = await flavors.create(1, 512, 1, volumeType.id)
    await flavors.create(2, 1024, 1, volumeType.id)
    image = await ImageRepository(db).register("img", user.uuid, "file:///img", isPublic=True)
    backend = await BackendRepository(db).add("sim.ganeti.local", "http://127.0.0.1:1", simulated=True)
    network = await NetworkRepository(db).create("bench", "CUSTOM", link="br0", public=True)
    subnet = await SubnetRepository(db).create(network.id, "10.128.0.0/16", 4)

    async def servers(tx: Any) -> list[tuple[int, int, str, str]]:
        out = []
        srepo, prepo = ServerRepository(tx), PortRepository(tx)
        for i in range(n):
            s = await srepo.create(f"vm{i}", user.uuid, flavor.id, image.id, project=project.uuid, backendId=backend.id)
            await srepo.update(s.id, operstate="STARTED", action=None, backendtime=LONG_AGO, buildpercentage=100)
            p = await prepo.create(network.id, userid=user.uuid, serverId=s.id, mac=mac(i), state="ACTIVE")
            await prepo.addIP(subnet.id, network.id, address(i + 10), 4, portId=p.id, userid=user.uuid)
            out.append((s.id, p.id, mac(i), address(i + 10)))
        return out

    rows = await db.runInteraction(servers)
    return {"backend": backend, "network": network, "flavor": flavor, "rows": rows}


def cluster(world: dict[str, Any], now: float) -> SimCluster:
    c = SimCluster()
    net = f"snf-net-{world['network'].id}"
    c.apply({"OP_ID": "OP_NETWORK_ADD", "network_name": net, "network": "10.128.0.0/16"}, now)
    c.apply(
        {
            "OP_ID": "OP_NETWORK_CONNECT",
            "network_name": net,
            "group_name": "default",
            "network_mode": "bridged",
            "network_link": "br0",
        },
        now,
    )
    flavor = world["flavor"]
    for serverId, portId, m, ip in world["rows"]:
        c.apply(
            {
                "OP_ID": "OP_INSTANCE_CREATE",
                "instance_name": f"snf-{serverId}",
                "disk_template": "file",
                "disks": [{"size": flavor.disk << 10, "name": f"snf-vol-{serverId}"}],
                "nics": [{"name": f"snf-nic-{portId}", "network": net, "ip": ip, "mac": m}],
                "beparams": {"vcpus": flavor.cpu, "memory": flavor.ram},
            },
            now,
        )
    return c


async def drift(db: Any, c: SimCluster, world: dict[str, Any], now: float) -> dict[str, int]:
    """
    Drift behind the system's back; returns how much of each kind.
    """
    rows = world["rows"]
    n = len(rows)
    stopped = rows[0 : n // 100]
    stale = rows[n // 100 : n // 100 + n // 200]
    tasks = rows[n // 50 : n // 50 + n // 500]
    for serverId, _p, _m, _ip in stopped:
        c.instances[f"snf-{serverId}"].operUp = False
        c.instances[f"snf-{serverId}"].adminUp = False
    for serverId, _p, _m, _ip in stale:
        c.apply({"OP_ID": "OP_INSTANCE_REMOVE", "instance_name": f"snf-{serverId}"}, now)
    orphans = n // 500
    top = max(r[0] for r in rows)
    for k in range(orphans):
        c.apply(
            {
                "OP_ID": "OP_INSTANCE_CREATE",
                "instance_name": f"snf-{top + 1000 + k}",
                "disk_template": "file",
                "disks": [{"size": 1024}],
                "nics": [],
            },
            now,
        )
    servers = ServerRepository(db)
    for serverId, _p, _m, _ip in tasks:
        await servers.update(serverId, task="REBOOT", task_job_id=999999)
    return {"stopped": len(stopped), "stale": len(stale), "orphans": orphans, "pending": len(tasks)}


async def reconcileAll(db: Any, backend: Any, client: Any, fix: FixOptions, batchSize: int) -> tuple[float, int, int]:
    from synnefo_twisted.db.reconcile import ReconcileRepository

    started = time.perf_counter()
    findings = fixed = 0
    ids = await ReconcileRepository(db).serverIds(backend.id)
    snapshot = await takeSnapshot(client, lambda: datetime.now(UTC))
    for low, high in planBatches(ids, batchSize):
        result = await reconcileServers(
            db,
            backend,
            client,
            lambda: datetime.now(UTC),
            fix=fix,
            thresholds=Thresholds(grace=timedelta(0)),  # the seed is seconds old
            low=low,
            high=high,
            snapshot=snapshot,
        )
        findings += len(result.findings)
        fixed += sum(1 for f in result.findings if f.fix == "fixed")
    return time.perf_counter() - started, findings, fixed


async def one(reactor: Any, label: str, url: str, options: argparse.Namespace) -> list[str]:
    db = openDatabase(url, reactor, poolSize=4)
    await db.startService()
    lines = []
    port = None
    try:
        await migrate(db)
        t0 = time.perf_counter()
        world = await seed(db, options.servers)
        seeded = time.perf_counter() - t0
        now = time.time()
        c = cluster(world, now - 3600)
        injected = await drift(db, c, world, now - 3600)
        queue = JobQueue(reactor, c, None, defaultDuration=0.01)
        rapi = SimRapi(c, queue, USERS)
        port = reactor.listenTCP(0, Site(rapi.app.resource()), interface="127.0.0.1")
        client = RapiClient.forURL(reactor, f"http://127.0.0.1:{port.getHost().port}", "bench", "bench")
        backend = world["backend"]

        rapiTimes, selectTimes = [], []
        for _ in range(3):  # best of three: the machine is shared
            t0 = time.perf_counter()
            await client.getInstances(bulk=True)
            await client.getJobs(bulk=True)
            rapiTimes.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            await ServerRepository(db).listByBackend(backend.id)
            selectTimes.append(time.perf_counter() - t0)
        tRapi, tSelect = min(rapiTimes), min(selectTimes)
        baseline = tRapi + tSelect

        tReport, found, _ = await reconcileAll(db, backend, client, FixOptions(), options.batch_size)
        tFix, _foundFix, fixed = await reconcileAll(db, backend, client, FixOptions.all(), options.batch_size)
        for _ in range(300):
            if not any(not j.finalized() for j in queue.jobs.values()):
                break
            await task.deferLater(reactor, 0.05, lambda: None)
        _t, left, _ = await reconcileAll(db, backend, client, FixOptions(), options.batch_size)
        queue.stop()
        lines.append(
            f"{label:<10} {options.servers:>7} {baseline:9.2f} {tReport:9.2f} {tFix:9.2f} "
            f"{found:>6} {fixed:>6} {left:>5}   (seed {seeded:.1f} s; baseline RAPI {tRapi:.2f} + SELECT {tSelect:.2f})"
        )
        lines.append(f"{'':<10} injected: {injected}")
    finally:
        if port is not None:
            await port.stopListening()
        await db.stopService()
    return lines


async def main(reactor: Any, options: argparse.Namespace) -> None:
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        lines += await one(reactor, "SQLite", f"sqlite:///{tmp}/bench.db", options)
    if options.pg_url:
        schema = f"bench_reconciler_{os.getpid()}"
        admin = openDatabase(options.pg_url, reactor, poolSize=1)
        await admin.startService()
        try:
            await admin.runOperation(f"CREATE SCHEMA {schema}")
            lines += await one(reactor, "PostgreSQL", withSearchPath(options.pg_url, schema), options)
        finally:
            await admin.runOperation(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            await admin.stopService()
    print(f"reconcile-servers over {options.servers} servers, batches of {options.batch_size} (seconds; goal < 30)")
    print(
        f"{'database':<10} {'servers':>7} {'baseline':>9} {'report':>9} {'fix-all':>9} {'found':>6} {'fixed':>6} {'left':>5}"
    )
    for line in lines:
        print(line)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=10000, help="servers and instances (default 10000)")
    parser.add_argument("--batch-size", type=int, default=1000, help="servers per reconciliation step (default 1000)")
    parser.add_argument("--pg-url", default=DEFAULT_PG, help="PostgreSQL URL ('' to skip; env SNF_BENCH_PG_URL)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    opts = parse(sys.argv[1:])
    task.react(lambda reactor: defer.Deferred.fromCoroutine(main(reactor, opts)))
