"""
The job-queue watcher on RabbitMQ: latency from a job file's rename into
the queue directory to the broker's confirm of its message (p50, p99), and
sustained job-file updates/s; each beside a baseline measured in the same
run on the same broker connection: publishing the same message bodies
directly (no file, inotify, parsing or state).

  latency     one job file every INTERVAL ms (temporary file + rename, as
              Ganeti writes them), SAMPLES times; baseline: one direct
              publish every INTERVAL ms;
  throughput  BURST job files written back to back; updates/s from the
              first rename to the last confirm; baseline: BURST direct
              publishes with the watcher's window (64) in flight.

Run from the repository root with RabbitMQ up (tests/harness/services.sh):

    .venv/bin/python -m bench.watcher [--amqp-url URL] [--samples 500] [--interval 10] [--burst 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

from twisted.internet.defer import Deferred  # noqa: E402
from twisted.internet.task import deferLater, react  # noqa: E402
from twisted.python.filepath import FilePath  # noqa: E402

from synnefo_twisted.bus import openBus  # noqa: E402
from synnefo_twisted.bus.topology import Exchange, Topology  # noqa: E402
from synnefo_twisted.ganeti import jobfile  # noqa: E402
from synnefo_twisted.ganeti.published import PublishedState  # noqa: E402
from synnefo_twisted.ganeti.watcher import JobQueueWatcher  # noqa: E402

TEMPLATE = (ROOT / "tests" / "ganeti" / "samples" / "job-4-shutdown.queuefile.json").read_bytes()


def jobBytes(jobId: int) -> bytes:
    return TEMPLATE.replace(b'"id": 4,', f'"id": {jobId},'.encode()).replace(
        b"demo1.ganeti.lab", f"snf-{jobId}".encode()
    )


def writeJob(queue: str, jobId: int) -> float:
    temporary = os.path.join(queue, f".job-{jobId}.tmp")
    with open(temporary, "wb") as f:
        f.write(jobBytes(jobId))
    os.rename(temporary, os.path.join(queue, f"job-{jobId}"))
    return time.perf_counter()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * (len(ordered) - 1)))]


async def bench(reactor: Any, options: argparse.Namespace) -> None:
    bus = openBus(options.amqp_url, reactor)
    await bus.startService()
    await bus.declare(Topology(exchanges=(Exchange("ganeti", "topic", True),)))
    body = json.dumps(
        {"type": "ganeti-op-status", "instance": "snf-1", "operation": "OP_INSTANCE_SHUTDOWN", "status": "success"}
    ).encode()
    with tempfile.TemporaryDirectory() as tmp:
        data = FilePath(tmp)
        queue = data.child("queue")
        queue.makedirs()
        data.child("ssconf_cluster_name").setContent(b"bench.cluster\n")
        data.child("ssconf_master_node").setContent(b"node1\n")
        watcher = JobQueueWatcher(
            reactor, bus, queue, PublishedState(data.child("state.json")), nodeName="node1", rescanInterval=3600
        )
        confirmed: dict[int, float] = {}
        watcher.confirmedListeners.append(lambda msg: confirmed.__setitem__(msg.jobId, time.perf_counter()))
        await watcher.startService()

        async def waitConfirmed(ids: list[int], timeout: float = 120) -> None:
            deadline = time.perf_counter() + timeout
            while not all(i in confirmed for i in ids):
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"{sum(i not in confirmed for i in ids)} messages never confirmed")
                await deferLater(reactor, 0.001, lambda: None)

        # --- latency
        interval = options.interval / 1000
        baseline: list[float] = []
        for _ in range(options.samples):
            t = time.perf_counter()
            await bus.publish("ganeti", "ganeti.snf.event.op", body, None, True)
            baseline.append(time.perf_counter() - t)
            await deferLater(reactor, interval, lambda: None)
        renamed: dict[int, float] = {}
        for jobId in range(1, options.samples + 1):
            renamed[jobId] = writeJob(queue.path, jobId)
            await deferLater(reactor, interval, lambda: None)
        await waitConfirmed(list(renamed))
        ours = [confirmed[j] - renamed[j] for j in renamed]
        print(
            f"watcher on RabbitMQ ({options.amqp_url.split('@')[-1]}), job file = a real Ganeti 3.0 job ({len(TEMPLATE)} bytes)"
        )
        print(
            f"  latency rename->confirm  p50 {1000 * pct(ours, 0.5):6.2f} ms  p99 {1000 * pct(ours, 0.99):6.2f} ms"
            f"   (baseline publish->confirm p50 {1000 * pct(baseline, 0.5):6.2f} ms  p99 {1000 * pct(baseline, 0.99):6.2f} ms;"
            f" ratio p50 {pct(ours, 0.5) / pct(baseline, 0.5):.2f}, p99 {pct(ours, 0.99) / pct(baseline, 0.99):.2f})"
        )

        # --- throughput
        t0 = time.perf_counter()
        pending = []
        for _ in range(options.burst):
            pending.append(bus.publish("ganeti", "ganeti.snf.event.op", body, None, True))
            if len(pending) >= 64:
                await pending.pop(0)
        for d in pending:
            await d
        baseRate = options.burst / (time.perf_counter() - t0)
        first = options.samples + 1
        ids = list(range(first, first + options.burst))
        # The writer is another process, as Ganeti is; its own rate is printed too.
        import subprocess

        from twisted.internet.threads import deferToThread

        code = (
            "import sys, time; from bench.watcher import writeJob; "
            f"t = time.perf_counter(); [writeJob({queue.path!r}, j) for j in range({first}, {first + options.burst})]; "
            "print(time.perf_counter() - t)"
        )
        t0 = time.perf_counter()
        writer = deferToThread(
            subprocess.run, [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
        )
        await waitConfirmed(ids)
        rate = options.burst / (time.perf_counter() - t0)
        writerRate = options.burst / float((await writer).stdout.strip())
        print(
            f"  throughput {options.burst} job-file updates: {rate:7.0f} updates/s"
            f"   (baseline direct publishes: {baseRate:7.0f} msg/s; ratio {rate / baseRate:.2f}; the writer process alone: {writerRate:7.0f} files/s)"
        )
        await watcher.stopService()

        # --- the watcher's own capacity: catch up on files written while it was down
        for name in os.listdir(queue.path):
            if jobfile.jobIdFromFileName(name) is not None:
                os.remove(os.path.join(queue.path, name))
        first = first + options.burst
        ids = list(range(first, first + options.burst))
        for jobId in ids:
            writeJob(queue.path, jobId)
        watcher = JobQueueWatcher(
            reactor, bus, queue, PublishedState(data.child("state2.json")), nodeName="node1", rescanInterval=3600
        )
        watcher.confirmedListeners.append(lambda msg: confirmed.__setitem__(msg.jobId, time.perf_counter()))
        t0 = time.perf_counter()
        await watcher.startService()
        await waitConfirmed(ids)
        catchUp = options.burst / (time.perf_counter() - t0)
        print(
            f"  catch-up  {options.burst} job files found by the start-up rescan: {catchUp:7.0f} updates/s"
            f"   (ratio to direct publishes {catchUp / baseRate:.2f})"
        )
        await watcher.stopService()
        for name in os.listdir(queue.path):
            if jobfile.jobIdFromFileName(name) is not None:
                os.remove(os.path.join(queue.path, name))
    await bus.stopService()


def main() -> None:
    from tests.integration.realservices import AMQP_URL

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--amqp-url", default=AMQP_URL)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--interval", type=float, default=10.0, help="milliseconds between job files")
    parser.add_argument("--burst", type=int, default=5000)
    options = parser.parse_args()
    react(lambda reactor: Deferred.fromCoroutine(bench(reactor, options)))


if __name__ == "__main__":
    main()
