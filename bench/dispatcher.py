"""
Dispatcher throughput: op-status messages per second from RabbitMQ through
the dispatcher (L{synnefo_twisted.dispatcher.service.DispatcherService},
the real state machine and transactions) into PostgreSQL, beside a raw
baseline in the same run: txAMQP consuming the same messages from the same
broker and running one single-row transaction per message through the same
database driver (our txpostgres pool), acking after commit, with the same
prefetch and the same number of transactions at once.

The messages are what the watcher publishes for start/stop jobs of SERVERS
servers: per job "queued", "running" and a final "success" (about a third
final, which change the operstate); they are published first, then each
side drains its own copy of the queue, so the figure is consume + apply +
ack, not publish.

    .venv/bin/python bench/dispatcher.py [--messages 30000] [--servers 2000] [--concurrency 32]
        [--prefetch 256] [--rounds 3] [--url amqp://...] [--pg-url postgresql://...]

Prints one table; ratio = dispatcher / baseline (goal >= 0.8; goal >= 3,000 msg/s).
Everything it creates (a PostgreSQL schema, queues) is dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

from twisted.internet import task  # noqa: E402
from twisted.internet.defer import Deferred, DeferredSemaphore  # noqa: E402

from synnefo_twisted.bus import openBus  # noqa: E402
from synnefo_twisted.bus.topology import Binding, Queue, Topology, eventQueues  # noqa: E402
from synnefo_twisted.db import openDatabase  # noqa: E402
from synnefo_twisted.db.migrations import migrate  # noqa: E402
from synnefo_twisted.dispatcher.service import DispatcherService, DispatcherSettings, dispatcherTopology  # noqa: E402
from synnefo_twisted.logic.dispatch import toEventTime  # noqa: E402

OPS = ("OP_INSTANCE_SHUTDOWN", "OP_INSTANCE_STARTUP")


def messages(prefix: str, servers: list[int], total: int) -> list[bytes]:
    """
    C{total} op-status bodies: jobs round-robin over the servers, each job
    queued → running → success with increasing event times.
    """
    from datetime import UTC, datetime, timedelta

    start = datetime.now(UTC) + timedelta(days=1)
    out: list[bytes] = []
    job = 0
    while len(out) < total:
        for number, serverId in enumerate(servers):
            job += 1
            op = OPS[job // len(servers) % 2]
            for step, status in enumerate(("queued", "running", "success")):
                moment = start + timedelta(seconds=job * 3 + step, microseconds=number)
                body = {
                    "type": "ganeti-op-status",
                    "instance": f"{prefix}{serverId}",
                    "operation": op,
                    "status": status,
                    "jobId": job,
                    "event_time": toEventTime(moment),
                    "cluster": "bench.ganeti",
                    "logmsg": None,
                    "result": None,
                    "job_fields": {},
                    "tags": None,
                }
                out.append(json.dumps(body).encode())
            if len(out) >= total:
                break
    # per server the order is kept; servers interleave
    return out[:total]


async def setupDatabase(db: Any, count: int) -> list[int]:
    await migrate(db)
    await db.runOperation("INSERT INTO users (uuid, email, name) VALUES ('bench', 'bench@example.org', 'bench')", ())
    await db.runOperation("INSERT INTO volume_types (name, disk_template) VALUES ('drbd', 'drbd')", ())
    await db.runOperation(
        "INSERT INTO flavors (name, cpu, ram, disk, volume_type_id) "
        "VALUES ('b', 1, 1024, 10, (SELECT id FROM volume_types LIMIT 1))",
        (),
    )
    await db.runOperation(
        "INSERT INTO servers (name, userid, flavor_id, image_id, operstate) "
        "SELECT 'vm' || g, 'bench', (SELECT id FROM flavors LIMIT 1), 'img', 'STARTED' FROM generate_series(1, %s) g",
        (count,),
    )
    rows = await db.runQuery("SELECT id FROM servers ORDER BY id", ())
    return [int(r[0]) for r in rows]


async def publishAll(bus: Any, key: str, bodies: list[bytes], window: int = 2000) -> None:
    semaphore = DeferredSemaphore(window)
    pending = [semaphore.run(bus.publish, "ganeti", key, body) for body in bodies]
    for d in pending:
        await d


async def runDispatcher(reactor: Any, db: Any, bus: Any, prefix: str, n: int, options: argparse.Namespace) -> float:
    settings = DispatcherSettings(prefix=prefix, prefetch=options.prefetch, concurrency=options.concurrency)
    service = DispatcherService(reactor, db, bus, settings)
    t0 = time.perf_counter()
    await service.startService()
    while True:
        counts = service.counts
        done = counts["applied"] + counts["ignored"] + counts["deadLettered"]
        if done >= n:
            break
        await task.deferLater(reactor, 0.005, lambda: None)
    rate = n / (time.perf_counter() - t0)
    await service.stopService()
    if service.counts["deadLettered"] or service.counts["applied"] != n:
        raise SystemExit(f"dispatcher run went wrong: {service.counts}")
    return rate


#: The baseline's single-row write: the columns a status message sets.
SQL = (
    "UPDATE servers SET backendjobid = %s, backendjobstatus = %s, backendopcode = %s, backendlogmsg = %s, "
    "updated = now() WHERE id = %s"
)


async def runBaseline(
    reactor: Any, db: Any, url: str, queue: str, n: int, options: argparse.Namespace, explicit: bool
) -> float:
    """
    Raw txAMQP consume with the same prefetch; one single-row transaction
    per message (the job-field columns of its server), at most
    C{concurrency} at once over the same pool; ack after commit. With
    C{explicit}, BEGIN/UPDATE/COMMIT (runInteraction); else the UPDATE
    alone, which is its own transaction (runQuery, autocommit).
    """
    from bench.bus import rawConnect

    client, _pub = await rawConnect(reactor, url, 30)
    ch = await client.channel(2)
    await ch.channel_open()
    await ch.basic_qos(prefetch_count=options.prefetch)
    tag = f"raw-{uuid.uuid4().hex[:8]}"
    semaphore = DeferredSemaphore(options.concurrency)
    finished: Deferred[None] = Deferred()
    state = {"done": 0}

    def params(body: dict[str, Any]) -> tuple[Any, ...]:
        serverId = int(body["instance"].rsplit("-", 1)[1])
        return (body["jobId"], body["status"], body["operation"], body["logmsg"], serverId)

    async def one(tx: Any, body: dict[str, Any]) -> None:
        await tx.execute(SQL, params(body))

    def handle(msg: Any) -> None:
        body = json.loads(msg.content.body)
        if explicit:
            d = semaphore.run(db.runInteraction, one, body)
        else:
            d = semaphore.run(db.runQuery, SQL + " RETURNING id", params(body))

        def acked(_: object) -> None:
            ch.basic_ack(delivery_tag=msg.delivery_tag)
            state["done"] += 1
            if state["done"] == n:
                finished.callback(None)

        d.addCallback(acked)

    t0 = time.perf_counter()
    await ch.basic_consume(queue=queue, consumer_tag=tag, no_ack=False)
    q = await client.queue(tag)

    async def pump() -> None:
        for _ in range(n):
            handle(await q.get())

    pumping = Deferred.fromCoroutine(pump())
    await finished
    rate = n / (time.perf_counter() - t0)
    await pumping
    await ch.basic_cancel(consumer_tag=tag)
    await ch.channel_close(reply_code=200, reply_text="bye", class_id=0, method_id=0)
    ch0 = await client.channel(0)
    await ch0.connection_close(reply_code=200, reply_text="bye", class_id=0, method_id=0)
    client.transport.loseConnection()
    return rate


async def main(reactor: Any, options: argparse.Namespace) -> None:
    import psycopg2

    tag = uuid.uuid4().hex[:8]
    schema = f"bench_{tag}"
    conn = psycopg2.connect(options.pg_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE SCHEMA {schema}")
    option = "options=" + quote(f"-csearch_path={schema}")
    pgURL = options.pg_url + ("&" if "?" in options.pg_url else "?") + option
    db = openDatabase(pgURL, reactor, poolSize=options.concurrency)
    await db.startService()
    prefix = f"b{tag}-"
    names = eventQueues(prefix)
    baselineQueue = f"{prefix}baseline"
    bus = openBus(options.url, reactor)
    await bus.startService()
    results: dict[str, list[float]] = {"dispatcher": [], "baseline": [], "baseline-tx": []}
    try:
        servers = await setupDatabase(db, options.servers)
        await bus.declare(
            dispatcherTopology(prefix)
            + Topology(queues=[Queue(baselineQueue)], bindings=[Binding(baselineQueue, "ganeti", names.opKey)])
        )
        n = options.messages
        for r in range(options.rounds):
            bodies = messages(prefix, servers, n)
            sides = ["dispatcher", "baseline", "baseline-tx"]
            # Alternate the order, so drift in load does not favour one side.
            for side in sides if r % 2 == 0 else reversed(sides):
                # one copy per run (both queues are bound to the key; the
                # other side's copy is purged)
                await publishAll(bus, names.opKey, bodies)
                if side == "dispatcher":
                    await bus.purgeQueue(baselineQueue)
                    results[side].append(await runDispatcher(reactor, db, bus, prefix, n, options))
                else:
                    await bus.purgeQueue(names.op)
                    rate = await runBaseline(reactor, db, options.url, baselineQueue, n, options, side == "baseline-tx")
                    results[side].append(rate)
                await db.runOperation(
                    "UPDATE servers SET jobtime = NULL, statetime = NULL, backendtime = NULL, operstate = 'STARTED'", ()
                )
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:,.0f} msg/s" for k, v in results.items()),
                  file=sys.stderr)  # fmt: skip
    finally:
        for queue in (*[getattr(names, f) for f in ("op", "network", "progress", "cluster")], baselineQueue):
            await bus.deleteQueue(queue)
            if not queue.endswith("baseline"):
                await bus.deleteQueue(f"{queue}-dl")
        await bus.stopService()
        await db.stopService()
        with conn.cursor() as cur:
            cur.execute(f"DROP SCHEMA {schema} CASCADE")
        conn.close()
    disp = statistics.median(results["dispatcher"])
    base = statistics.median(results["baseline"])
    baseTx = statistics.median(results["baseline-tx"])
    print(
        f"\ndispatcher throughput: {options.messages} op-status messages over {options.servers} servers, "
        f"prefetch {options.prefetch}, {options.concurrency} transactions at once, median of {options.rounds} rounds"
    )
    print(f"{'path':<58}{'msg/s':>10}")
    print(f"{'RabbitMQ -> dispatcher -> PostgreSQL (state machine)':<58}{disp:>10,.0f}")
    print(f"{'baseline: txAMQP + 1 single-row UPDATE/msg (autocommit)':<58}{base:>10,.0f}")
    print(f"{'baseline: txAMQP + BEGIN; 1-row UPDATE; COMMIT per msg':<58}{baseTx:>10,.0f}")
    print(f"{'ratio dispatcher / baseline (autocommit)':<58}{disp / base:>10.2f}")
    print(f"{'ratio dispatcher / baseline (BEGIN/COMMIT)':<58}{disp / baseTx:>10.2f}")
    print("goals: >= 3,000 msg/s and ratio >= 0.8")


def parseArgs() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--messages", type=int, default=30000)
    p.add_argument("--servers", type=int, default=2000)
    p.add_argument("--prefetch", type=int, default=256)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/synnefo-test")
    p.add_argument("--pg-url", default="postgresql://synnefo_test@127.0.0.1:5432/synnefo_test")
    return p.parse_args()


if __name__ == "__main__":
    opts = parseArgs()
    task.react(lambda reactor: Deferred.fromCoroutine(main(reactor, opts)))
