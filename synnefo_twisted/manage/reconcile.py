# -*- test-case-name: tests.manage.test_reconcile -*-
"""
C{reconcile-servers}, C{reconcile-networks} and C{reconcile-pools}
(spec §3): report what differs between the database and Ganeti (or the
pools and what uses them) and, with C{--fix-*}, fix it. Server and network
fixes go through the dispatcher's state machine as simulated events.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from synnefo_twisted.db.reconcile import ReconcileRepository
from synnefo_twisted.ganeti.errors import GanetiError
from synnefo_twisted.logic import pools as poollogic
from synnefo_twisted.logic.reconcile import Thresholds
from synnefo_twisted.manage.base import BadInput, ManageContext, command
from synnefo_twisted.manage.output import formatTable
from synnefo_twisted.reconciler.service import planBatches
from synnefo_twisted.reconciler.shell import (
    BatchResult,
    Finding,
    FixOptions,
    GanetiSnapshot,
    reconcileNetworks,
    reconcileServers,
    takeSnapshot,
)

SERVER_COLUMNS = ("kind", "backend", "server", "db", "ganeti", "fix")
NETWORK_COLUMNS = ("kind", "backend", "network", "detail", "fix")
POOL_COLUMNS = ("pool", "leaked", "unmarked", "fixed")


class ProgressBar:
    """
    A one-line progress bar, drawn only when C{stream} is a terminal.
    """

    width = 40

    def __init__(self, stream: IO[str], total: int, label: str) -> None:
        isatty = getattr(stream, "isatty", None)
        self.enabled = bool(isatty and isatty())
        self._stream = stream
        self.total = max(1, total)
        self.label = label
        self.done = 0

    def advance(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        filled = int(self.width * min(self.done, self.total) / self.total)
        bar = "#" * filled + "." * (self.width - filled)
        self._stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total}")
        self._stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self._stream.write("\r" + " " * (len(self.label) + self.width + 24) + "\r")
            self._stream.flush()


def _now() -> datetime:
    return datetime.now(UTC)


async def _backends(ctx: ManageContext, database: Any, backendId: int | None) -> tuple[Any, list[Any]]:
    registry = ctx.backends(database)
    backends = [b for b in await registry.backends() if not b.offline]
    if backendId is not None:
        backends = [b for b in backends if b.id == backendId]
        if not backends:
            raise BadInput(f"no online backend with id {backendId}")
    return registry, backends


def _serverArguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend-id", type=int, help="only this backend (default: every online backend)")
    p.add_argument("--fix-all", action="store_true", help="fix everything found")
    p.add_argument("--fix-stale", action="store_true", help="servers Ganeti does not have: mark them deleted")
    p.add_argument("--fix-orphans", action="store_true", help="instances the database does not have: delete them")
    p.add_argument("--fix-unsynced", action="store_true", help="operstate and build errors: apply what Ganeti says")
    p.add_argument("--fix-build-errors", action="store_true", help="builds whose job failed or vanished: ERROR")
    p.add_argument("--fix-unsynced-flavors", action="store_true", help="flavor: take Ganeti's vcpus/memory")
    p.add_argument("--fix-unsynced-nics", action="store_true", help="NICs: take Ganeti's")
    p.add_argument("--fix-unsynced-tags", action="store_true", help="tags: take Ganeti's")
    p.add_argument("--fix-pending-tasks", action="store_true", help="tasks whose job is over: clear them")
    p.add_argument(
        "--grace",
        type=float,
        default=60.0,
        help="seconds during which a recently changed server is left alone (default 60)",
    )
    p.add_argument("--batch-size", type=int, default=1000, help="servers read per step (default 1000)")


def fixOptions(args: argparse.Namespace) -> FixOptions:
    if args.fix_all:
        return FixOptions.all()
    return FixOptions(
        stale=args.fix_stale,
        orphans=args.fix_orphans,
        buildErrors=args.fix_build_errors or args.fix_unsynced,
        operstate=args.fix_unsynced,
        flavors=args.fix_unsynced_flavors,
        nics=args.fix_unsynced_nics,
        tags=args.fix_unsynced_tags,
        pendingTasks=args.fix_pending_tasks,
    )


def _report(ctx: ManageContext, columns: tuple[str, ...], findings: list[Finding], summary: str) -> None:
    rows = [[f.row()[c] for c in columns] for f in findings]
    ctx.out.write(formatTable(columns, rows, ctx.outputFormat))
    ctx.err.write(summary + "\n")


@command("reconcile-servers", "compare servers with Ganeti; --fix-* to repair drift", _serverArguments)
async def reconcileServersCommand(ctx: ManageContext, args: argparse.Namespace) -> int:
    if args.grace < 0 or args.batch_size < 1:
        raise BadInput("--grace must be >= 0 and --batch-size >= 1")
    database = await ctx.database()
    registry, backends = await _backends(ctx, database, args.backend_id)
    prefix = ctx.config.section("ganeti")["prefix"]
    repo = ReconcileRepository(database)
    plan = [(b, low, high) for b in backends for low, high in planBatches(await repo.serverIds(b.id), args.batch_size)]
    progress = ProgressBar(ctx.out, len(plan), "reconcile-servers")
    fix = fixOptions(args)
    thresholds = Thresholds(grace=timedelta(seconds=args.grace))
    results: list[BatchResult] = []
    started = time.monotonic()
    snapshots: dict[int, GanetiSnapshot] = {}
    failed: dict[int, str] = {}
    try:
        for backend, low, high in plan:
            client = registry.clientFor(backend)
            if backend.id in failed:
                progress.advance()
                continue
            if backend.id not in snapshots:
                try:
                    snapshots[backend.id] = await takeSnapshot(client, _now, prefix)
                except GanetiError as e:
                    failed[backend.id] = str(e)
                    progress.advance()
                    continue
            results.append(
                await reconcileServers(
                    database,
                    backend,
                    client,
                    _now,
                    fix=fix,
                    thresholds=thresholds,
                    prefix=prefix,
                    low=low,
                    high=high,
                    snapshot=snapshots[backend.id],
                )
            )
            progress.advance()
    finally:
        progress.finish()
    findings = [f for r in results for f in r.findings]
    servers = sum(r.servers for r in results)
    fixed = sum(1 for f in findings if f.fix == "fixed")
    _report(
        ctx,
        SERVER_COLUMNS,
        findings,
        f"{servers} servers on {len(backends) - len(failed)} backends: {len(findings)} findings, {fixed} fixed "
        f"({time.monotonic() - started:.2f} s)",
    )
    return _unreachable(ctx, "reconcile-servers", failed)


def _unreachable(ctx: ManageContext, name: str, failed: dict[int, str]) -> int:
    """
    Name the backends whose Ganeti could not be read; exit status 1 if any.
    """
    for backendId, error in sorted(failed.items()):
        ctx.err.write(f"snf-manage {name}: backend {backendId} not reconciled: {' '.join(error.split())}\n")
    return 1 if failed else 0


def _networkArguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend-id", type=int, help="only this backend (default: every online backend)")
    p.add_argument("--fix-all", "--fix", dest="fix", action="store_true", help="fix everything found")


@command("reconcile-networks", "compare networks with Ganeti; --fix-all to repair drift", _networkArguments)
async def reconcileNetworksCommand(ctx: ManageContext, args: argparse.Namespace) -> int:
    database = await ctx.database()
    registry, backends = await _backends(ctx, database, args.backend_id)
    prefix = ctx.config.section("ganeti")["prefix"]
    progress = ProgressBar(ctx.out, len(backends), "reconcile-networks")
    results = []
    failed: dict[int, str] = {}
    try:
        for backend in backends:
            try:
                results.append(
                    await reconcileNetworks(
                        database, backend, registry.clientFor(backend), _now, fix=args.fix, prefix=prefix
                    )
                )
            except GanetiError as e:
                failed[backend.id] = str(e)
            progress.advance()
    finally:
        progress.finish()
    findings = [f for r in results for f in r.findings]
    _report(ctx, NETWORK_COLUMNS, findings, f"{len(backends) - len(failed)} backends: {len(findings)} findings")
    return _unreachable(ctx, "reconcile-networks", failed)


def _poolArguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fix", "--fix-all", dest="fix", action="store_true", help="rebuild the bitmaps that differ")


@command("reconcile-pools", "compare IP, MAC-prefix and bridge pools with what uses them; --fix", _poolArguments)
async def reconcilePoolsCommand(ctx: ManageContext, args: argparse.Namespace) -> int:
    database = await ctx.database()
    progress = ProgressBar(ctx.out, 1, "reconcile-pools")
    try:
        found = await poollogic.reconcilePools(database, fix=args.fix)
        progress.advance()
    finally:
        progress.finish()
    rows = [[d.pool, list(d.leaked), list(d.unmarked), d.fixed] for d in found]
    ctx.out.write(formatTable(POOL_COLUMNS, rows, ctx.outputFormat))
    ctx.err.write(f"{len(found)} pools differ{', fixed' if args.fix and found else ''}\n")
    return 0
