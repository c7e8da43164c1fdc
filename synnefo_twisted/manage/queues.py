# -*- test-case-name: tests.dispatcher.test_queue_commands -*-
"""
Queue commands (issue 5 items 2 and 3): C{queue-inspect}, C{queue-retry},
C{queue-purge} and C{dispatcher-status}. They talk to RabbitMQ (C{[bus]
url}); the dispatcher's queues are C{<p>-events-{op,network,progress,
cluster}} and their C{-dl} twins (C{<p>} from C{[ganeti] prefix}).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from twisted.internet.defer import Deferred

from synnefo_twisted.bus.topology import eventQueues
from synnefo_twisted.manage.base import BadInput, CommandError, ManageContext, command
from synnefo_twisted.manage.output import formatTable

FAMILIES = ("op", "network", "progress", "cluster")


def _prefix(context: ManageContext) -> str:
    prefix: str = context.config.section("ganeti")["prefix"]
    return prefix


def dispatcherQueues(prefix: str) -> list[str]:
    """
    The dispatcher's queues, each followed by its dead-letter twin.
    """
    names = eventQueues(prefix)
    out: list[str] = []
    for family in FAMILIES:
        queue = getattr(names, family)
        out += [queue, f"{queue}-dl"]
    return out


async def _bus(context: ManageContext) -> Any:
    from synnefo_twisted.dispatcher.service import dispatcherTopology

    bus = await context.bus()
    await bus.declare(dispatcherTopology(_prefix(context)))
    return bus


def _checkQueue(context: ManageContext, queue: str | None, deadOnly: bool = False) -> list[str]:
    known = dispatcherQueues(_prefix(context))
    if deadOnly:
        known = [q for q in known if q.endswith("-dl")]
    if queue is None:
        return known
    if queue not in known:
        raise BadInput(f"unknown queue {queue!r} (one of: {', '.join(known)})")
    return [queue]


# -- queue-inspect ------------------------------------------------------------------------------


def _inspectArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--queue", help="show the messages waiting in this queue (default: counts of every queue)")
    parser.add_argument("--limit", type=int, default=20, help="messages shown at most (default 20)")


async def peek(bus: Any, queue: str, limit: int, clock: Any) -> list[Any]:
    """
    Up to C{limit} messages of C{queue}, looked at and left in the queue
    (they are given back unacknowledged).
    """
    total = await bus.messageCount(queue)
    wanted = min(total, limit)
    seen: list[Any] = []
    if wanted <= 0:
        return seen
    enough: Deferred[None] = Deferred()

    def look(message: Any) -> None:
        seen.append(message)
        if len(seen) >= wanted and not enough.called:
            enough.callback(None)

    consumer = await bus.consume(queue, look, wanted)

    def giveUp() -> None:
        if not enough.called:
            enough.callback(None)

    timer = clock.callLater(5.0, giveUp)
    try:
        await enough
    finally:
        if timer.active():
            timer.cancel()
        await consumer.stop()
    return seen


def _text(body: bytes, width: int = 120) -> str:
    text = body.decode("utf-8", "replace").replace("\n", " ")
    return text if len(text) <= width else text[: width - 3] + "..."


@command("queue-inspect", "show the dispatcher's queues and the messages waiting in one", _inspectArguments)
async def queueInspect(context: ManageContext, args: argparse.Namespace) -> None:
    if args.limit <= 0:
        raise BadInput("--limit must be positive")
    bus = await _bus(context)
    if args.queue is None:
        counts = [(q, await bus.messageCount(q)) for q in dispatcherQueues(_prefix(context))]
        context.out.write(formatTable(["queue", "messages"], counts, context.outputFormat))
        return
    [queue] = _checkQueue(context, args.queue)
    messages = await peek(bus, queue, args.limit, context.reactor)
    rows: list[tuple[object, ...]] = []
    for m in messages:
        headers = dict(m.headers)
        origin = headers.get("x-snf-origin-routing-key") or ""
        deaths = headers.get("x-death")
        if not origin and isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
            keys = deaths[0].get("routing-keys") or [""]
            origin = keys[0]
        reason = headers.get("x-snf-reason") or (deaths[0].get("reason") if isinstance(deaths, list) and deaths else "")
        body = m.body.decode("utf-8", "replace") if context.outputFormat == "json" else _text(m.body)
        rows.append((m.routingKey, origin, reason or "", bool(headers.get("from-dead-letter")), body))
    context.out.write(formatTable(["routing_key", "origin", "reason", "retried", "body"], rows, context.outputFormat))


# -- queue-retry --------------------------------------------------------------------------------


def _retryArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--queue", help="only this dead-letter queue (default: every -dl queue)")
    parser.add_argument(
        "--keep-zombies",
        action="store_true",
        help="leave messages that died twice in the queue instead of dropping them",
    )


@command("queue-retry", "re-publish dead-lettered messages once to where they came from", _retryArguments)
async def queueRetry(context: ManageContext, args: argparse.Namespace) -> None:
    from synnefo_twisted.bus.deadletters import retryDeadLetters

    queues = _checkQueue(context, args.queue, deadOnly=True)
    bus = await _bus(context)
    rows = []
    for queue in queues:
        report = await retryDeadLetters(bus, queue, keepZombies=args.keep_zombies)
        rows.append((queue, report.retried, report.zombiesDropped, report.zombiesKept, report.noOrigin, report.failed))
    context.out.write(
        formatTable(
            ["queue", "retried", "zombies_dropped", "zombies_kept", "no_origin", "failed"], rows, context.outputFormat
        )
    )
    if any(row[5] for row in rows):
        raise CommandError("some messages could not be re-published (they stay in their dead-letter queue)")


# -- queue-purge --------------------------------------------------------------------------------


def _purgeArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("queue", help="the queue to empty (a dispatcher queue or its -dl twin)")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")


@command("queue-purge", "drop every message waiting in a dispatcher queue (asks first)", _purgeArguments)
async def queuePurge(context: ManageContext, args: argparse.Namespace) -> None:
    [queue] = _checkQueue(context, args.queue)
    bus = await _bus(context)
    count = await bus.messageCount(queue)
    if count == 0:
        context.err.write(f"{queue} is empty\n")
        return
    if not args.yes:
        context.err.write(f"Drop the {count} messages waiting in {queue}? They cannot be recovered. [y/N] ")
        context.err.flush()
        answer = context.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            raise CommandError("not confirmed: nothing purged")
    purged = await bus.purgeQueue(queue)
    context.err.write(f"purged {purged} messages from {queue}\n")


# -- dispatcher-status --------------------------------------------------------------------------


def _statusArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for a dispatcher (default 15)")


@command(
    "dispatcher-status",
    "round trip through a dispatcher, Ganeti and the watcher: per backend, whether RAPI and the watcher answer",
    _statusArguments,
)
async def dispatcherStatus(context: ManageContext, args: argparse.Namespace) -> int:
    from synnefo_twisted.dispatcher.status import NoAnswer, statusCheck

    if args.timeout <= 0:
        raise BadInput("--timeout must be positive")
    bus = await _bus(context)
    try:
        status = await statusCheck(context.reactor, bus, _prefix(context), args.timeout)
    except NoAnswer as e:
        raise CommandError(f"{e}: is a dispatcher (role logic) running?") from None
    if context.outputFormat == "json":
        context.out.write(json.dumps({"dispatcher": "ok", "backends": status}, indent=2) + "\n")
    else:
        rows = [(cluster, s.get("RAPI", "fail"), s.get("eventd", "fail")) for cluster, s in sorted(status.items())]
        context.out.write(formatTable(["backend", "rapi", "watcher"], rows, context.outputFormat))
    healthy = all(s.get("RAPI") == "ok" and s.get("eventd") == "ok" for s in status.values())
    return 0 if healthy else 1
