"""
Database layer benchmark: single-row transactions per second through
L{IDatabase.runInteraction} (one INSERT, or one UPDATE, per transaction,
a fixed number in flight) against raw txpostgres (its own ConnectionPool
of the same size running the same statements in C{runInteraction}),
measured in the same run, plus the embedded SQLite driver's rate.

It creates its tables in the database given (default: the C{synnefo_bench}
database of the test harness) and drops them at the end.

    .venv/bin/python bench/db.py --help
    .venv/bin/python bench/db.py -n 5000 --in-flight 16 --pool 4
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from twisted.internet import defer, task
from txpostgres import txpostgres

from synnefo_twisted.db import openDatabase

DEFAULT_URL = os.environ.get("SNF_BENCH_PG_URL", "postgresql://synnefo_test@127.0.0.1:5432/synnefo_bench")

INSERT = "INSERT INTO {table} (k, v) VALUES (%s, %s)"
UPDATE = "UPDATE {table} SET v = v + 1 WHERE k = %s"


async def runLoad(count: int, inFlight: int, one: Callable[[int], Awaitable[Any]]) -> float:
    """
    Run C{one(i)} for i in [0, count) with C{inFlight} workers; the rate per
    second.
    """
    nextIndex = iter(range(count))

    async def worker() -> None:
        for i in nextIndex:
            await one(i)

    started = time.perf_counter()
    await defer.gatherResults([defer.Deferred.fromCoroutine(worker()) for _ in range(inFlight)])
    return count / (time.perf_counter() - started)


async def ours(db: Any, table: str, statement: str, count: int, inFlight: int, offset: int) -> float:
    sql = statement.format(table=table)

    if statement is INSERT:

        def params(i: int) -> tuple[Any, ...]:
            return (offset + i, i)
    else:

        def params(i: int) -> tuple[Any, ...]:
            return (i % 1000,)

    def one(i: int) -> Any:
        return db.runInteraction(lambda tx: tx.execute(sql, params(i)))

    return await runLoad(count, inFlight, one)


async def raw(pool: Any, table: str, statement: str, count: int, inFlight: int, offset: int) -> float:
    sql = statement.format(table=table)

    if statement is INSERT:

        def params(i: int) -> tuple[Any, ...]:
            return (offset + i, i)
    else:

        def params(i: int) -> tuple[Any, ...]:
            return (i % 1000,)

    def one(i: int) -> Any:
        return pool.runInteraction(lambda cursor: cursor.execute(sql, params(i)))

    return await runLoad(count, inFlight, one)


async def prepare(db: Any, table: str) -> None:
    await db.runOperation(f"DROP TABLE IF EXISTS {table}")
    await db.runOperation(f"CREATE TABLE {table} (k BIGINT PRIMARY KEY, v BIGINT NOT NULL)")
    await db.runInteraction(_seed, table)


async def _seed(tx: Any, table: str) -> None:
    for k in range(1000):
        await tx.execute(f"INSERT INTO {table} (k, v) VALUES (%s, 0)", (-1 - k,))
    # updates address keys 0..999: make them exist
    for k in range(1000):
        await tx.execute(f"UPDATE {table} SET k = %s WHERE k = %s", (k, -1 - k))


async def main(reactor: Any, options: argparse.Namespace) -> None:
    table = f"bench_db_{os.getpid()}"
    n, inFlight, poolSize = options.n, options.in_flight, options.pool
    results: list[tuple[str, str, float]] = []

    db = openDatabase(options.url, reactor, poolSize=poolSize)
    await db.startService()
    pool = txpostgres.ConnectionPool(None, options.url, min=poolSize)
    await pool.start()
    try:
        await prepare(db, table)
        offset = 1_000_000
        for statement, label in ((INSERT, "insert"), (UPDATE, "update")):
            oursRates, rawRates = [], []
            for _ in range(options.rounds):
                # alternate so that neither side always runs on a warmer server
                rawRates.append(await raw(pool, table, statement, n, inFlight, offset))
                offset += n
                oursRates.append(await ours(db, table, statement, n, inFlight, offset))
                offset += n
            results.append((label, "raw txpostgres pool", max(rawRates)))
            results.append((label, "IDatabase (PostgreSQL)", max(oursRates)))
    finally:
        await db.runOperation(f"DROP TABLE IF EXISTS {table}")
        pool.close()
        await db.stopService()

    with tempfile.TemporaryDirectory() as tmp:
        lite = openDatabase(f"sqlite:///{tmp}/bench.db", reactor)
        await lite.startService()
        try:
            await prepare(lite, "bench_rows")
            for statement, label in ((INSERT, "insert"), (UPDATE, "update")):
                rate = await ours(lite, "bench_rows", statement, options.sqlite_n, inFlight, 1_000_000)
                results.append((label, "IDatabase (SQLite)", rate))
        finally:
            await lite.stopService()

    print(
        f"single-row transactions/s: n={n} per round (SQLite {options.sqlite_n}), "
        f"{inFlight} in flight, pool {poolSize}, best of {options.rounds} rounds"
    )
    print(f"{'statement':<10} {'implementation':<26} {'tx/s':>10} {'vs raw':>8}")
    baseline = {label: rate for label, impl, rate in results if impl == "raw txpostgres pool"}
    for label, impl, rate in results:
        ratio = rate / baseline[label] if impl != "IDatabase (SQLite)" else float("nan")
        shown = f"{ratio:8.2f}" if ratio == ratio else f"{'-':>8}"
        print(f"{label:<10} {impl:<26} {rate:10.0f} {shown}")
    ratios = [rate / baseline[label] for label, impl, rate in results if impl == "IDatabase (PostgreSQL)"]
    print(f"IDatabase/raw ratio: min {min(ratios):.2f} (goal >= 0.80)")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Single-row transactions per second through IDatabase.runInteraction (one INSERT or UPDATE per "
            "transaction) against raw txpostgres with the same pool size and statements, measured in the same "
            "run; plus the SQLite driver's rate. Creates and drops its own table."
        )
    )
    parser.add_argument(
        "--url", default=DEFAULT_URL, help=f"PostgreSQL URL (default {DEFAULT_URL}; env SNF_BENCH_PG_URL)"
    )
    parser.add_argument("-n", type=int, default=5000, help="transactions per measurement (default 5000)")
    parser.add_argument("--sqlite-n", type=int, default=3000, help="transactions per SQLite measurement (default 3000)")
    parser.add_argument("--in-flight", type=int, default=16, help="transactions in flight (default 16)")
    parser.add_argument("--pool", type=int, default=4, help="connections in each pool (default 4)")
    parser.add_argument(
        "--rounds", type=int, default=2, help="rounds per implementation; the best is shown (default 2)"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    opts = parse(sys.argv[1:])
    task.react(lambda reactor: defer.Deferred.fromCoroutine(main(reactor, opts)))
