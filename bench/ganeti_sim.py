"""
Simulated Ganeti cluster throughput with 10,000 instances, beside a
baseline of the same workload on a 100-instance cluster measured in the
same run (the ratio shows what the cluster's size costs).

  engine  the job queue alone on a virtual clock (ops take no time): jobs/s
          completed, every state change written as a real job file
          (temporary file + rename), 20 jobs running at once as Ganeti's
          default max_running_jobs;
  rapi    end to end through the RAPI over loopback HTTP on the real
          reactor: CLIENTS concurrent clients each submit a shutdown or
          startup of one of their instances and poll the job until it is
          final (ops take OP_SECONDS); completed jobs/s and submit latency;
  bulk    one GET /2/instances?bulk=1 (every instance's record).

Run from the repository root:

    .venv/bin/python -m bench.ganeti_sim [--instances 10000] [--baseline 100] [--duration 5] [--clients 32]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

from twisted.internet.task import Clock  # noqa: E402
from twisted.python.filepath import FilePath  # noqa: E402

from synnefo_twisted.ganeti.sim.model import SimCluster  # noqa: E402
from synnefo_twisted.ganeti.sim.queue import JobQueue  # noqa: E402

USERS = {"bench": ("bench", "write")}


def populate(size: int) -> SimCluster:
    cluster = SimCluster()
    cluster.apply(
        {"OP_ID": "OP_NETWORK_ADD", "network_name": "snf-net-1", "network": "10.128.0.0/16", "gateway": "10.128.0.1"}, 0
    )
    cluster.apply(
        {
            "OP_ID": "OP_NETWORK_CONNECT",
            "network_name": "snf-net-1",
            "group_name": "default",
            "network_mode": "bridged",
            "network_link": "br0",
        },
        0,
    )
    for i in range(1, size + 1):
        cluster.apply(
            {
                "OP_ID": "OP_INSTANCE_CREATE",
                "instance_name": f"snf-{i}",
                "disk_template": "file",
                "disks": [{"size": 1024, "name": f"snf-vol-{i}"}],
                "nics": [{"name": f"snf-nic-{i}", "network": "snf-net-1", "ip": "pool"}],
                "beparams": {"vcpus": 1, "memory": 512},
                "tags": [f"synnefo:network:snf-nic-{i}:protected"],
            },
            0,
        )
    return cluster


def engine(size: int, jobs: int) -> dict[str, float]:
    cluster = populate(size)
    clock = Clock()
    with tempfile.TemporaryDirectory() as tmp:
        queue = JobQueue(clock, cluster, FilePath(tmp), defaultDuration=0.0, maxRunning=20)
        rng = random.Random(1)
        started = time.perf_counter()
        ids = []
        for j in range(jobs):
            name = f"snf-{rng.randint(1, size)}"
            up = cluster.instances[name].adminUp
            ids.append(
                queue.submit(
                    [{"OP_ID": "OP_INSTANCE_SHUTDOWN" if up else "OP_INSTANCE_STARTUP", "instance_name": name}]
                )
            )
            if j % 50 == 0:
                clock.advance(0)
        while not all(queue.jobs[i].finalized() for i in ids):
            clock.advance(0)
        elapsed = time.perf_counter() - started
    failed = sum(queue.jobs[i].status() != "success" for i in ids)
    return {"jobs_per_s": jobs / elapsed, "failed": failed}


def rapi(size: int, duration: float, clients: int, opSeconds: float) -> dict[str, float]:
    from twisted.internet import reactor

    from synnefo_twisted.ganeti.rapi import RapiClient
    from synnefo_twisted.ganeti.sim.service import SimulatedClusterService

    result: dict[str, float] = {}

    async def run() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            service = SimulatedClusterService(
                reactor,
                FilePath(tmp),
                "tcp:0:interface=127.0.0.1",
                USERS,
                cluster=populate(size),
                defaultDuration=opSeconds,
            )
            await service.startService()
            try:
                client = RapiClient.forURL(reactor, service.rapiUrl, "bench", "bench", timeout=30, pollInterval=0.02)
                t0 = time.perf_counter()
                records = await client.getInstances()
                result["bulk_s"] = time.perf_counter() - t0
                assert len(records) == size
                done = 0
                latencies: list[float] = []
                deadline = time.perf_counter() + duration

                async def worker(k: int) -> None:
                    nonlocal done
                    names = [f"snf-{i}" for i in range(k + 1, size + 1, clients)][:50]
                    n = 0
                    while time.perf_counter() < deadline:
                        name = names[n % len(names)]
                        n += 1
                        up = service.cluster.instances[name].adminUp
                        t = time.perf_counter()
                        job = await (client.shutdownInstance(name, timeout=0) if up else client.startupInstance(name))
                        latencies.append(time.perf_counter() - t)
                        await client.waitForJob(job, timeout=60)
                        done += 1

                from twisted.internet.defer import Deferred, gatherResults

                t0 = time.perf_counter()
                await gatherResults([Deferred.fromCoroutine(worker(k)) for k in range(clients)])
                elapsed = time.perf_counter() - t0
                latencies.sort()
                result["jobs_per_s"] = done / elapsed
                result["submit_p50_ms"] = 1000 * statistics.median(latencies)
                result["submit_p99_ms"] = 1000 * latencies[int(0.99 * (len(latencies) - 1))]
            finally:
                await service.stopService()

    from twisted.internet.defer import Deferred

    def main(_reactor: Any) -> Deferred[None]:
        return Deferred.fromCoroutine(run())

    from twisted.internet.task import react

    try:
        react(main)
    except SystemExit as e:
        if e.code:
            raise
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=10000)
    parser.add_argument("--baseline", type=int, default=100)
    parser.add_argument("--engine-jobs", type=int, default=5000)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--op-seconds", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="engine,rapi")
    options = parser.parse_args()
    parts = options.only.split(",")
    print(f"simulated cluster: {options.instances} instances vs baseline {options.baseline} (same run)")
    if "engine" in parts:
        t0 = time.perf_counter()
        populate(options.instances)
        print(f"  populate {options.instances} instances: {time.perf_counter() - t0:.2f} s")
        # Job-file I/O dominates and the disk is shared: alternate rounds and
        # take medians.
        bases, ourses = [], []
        for _ in range(options.rounds):
            bases.append(engine(options.baseline, options.engine_jobs))
            ourses.append(engine(options.instances, options.engine_jobs))
        base = {"jobs_per_s": statistics.median(b["jobs_per_s"] for b in bases)}
        ours = {
            "jobs_per_s": statistics.median(o["jobs_per_s"] for o in ourses),
            "failed": sum(o["failed"] for o in ourses),
        }
        print(
            f"  engine  {options.engine_jobs} jobs x {options.rounds} rounds, 4 job-file writes each (median): "
            f"{ours['jobs_per_s']:8.0f} jobs/s  (baseline {base['jobs_per_s']:8.0f} jobs/s, ratio {ours['jobs_per_s'] / base['jobs_per_s']:.2f}); "
            f"failed {int(ours['failed'])}"
        )
    if "rapi" in parts:
        # Two separate reactors cannot run in one process: the baseline and
        # the figure run in child processes.
        import json
        import subprocess

        def child(size: int) -> dict[str, float]:
            code = (
                "import json,sys; from bench.ganeti_sim import rapi; "
                f"print(json.dumps(rapi({size}, {options.duration}, {options.clients}, {options.op_seconds})))"
            )
            out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True)
            return json.loads(out.stdout.strip().splitlines()[-1])

        base = child(options.baseline)
        ours = child(options.instances)
        print(
            f"  rapi    {options.clients} clients, ops {options.op_seconds * 1000:.0f} ms: "
            f"{ours['jobs_per_s']:6.1f} jobs/s  (baseline {base['jobs_per_s']:6.1f}, ratio {ours['jobs_per_s'] / base['jobs_per_s']:.2f}); "
            f"submit p50 {ours['submit_p50_ms']:.1f} ms p99 {ours['submit_p99_ms']:.1f} ms "
            f"(baseline {base['submit_p50_ms']:.1f}/{base['submit_p99_ms']:.1f} ms)"
        )
        print(
            f"  bulk    GET /2/instances?bulk=1: {ours['bulk_s'] * 1000:.0f} ms for {options.instances} "
            f"(baseline {base['bulk_s'] * 1000:.1f} ms for {options.baseline})"
        )


if __name__ == "__main__":
    main()
