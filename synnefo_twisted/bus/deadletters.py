# -*- test-case-name: tests.bus.test_deadletters -*-
"""
Dead-lettered messages: where they came from, and sending them back
(C{snf-manage queue-retry}, spec/synnefo-behaviour.md section 2.5).

A message is retried to its original exchange and routing key, taken from
the broker's C{x-death[0]} record (rejected messages) or from our
C{x-snf-origin-*} headers (L{IIncomingMessage.deadLetter} copies), with the
header C{from-dead-letter: true}. A message that already carries that
header died twice (a "zombie"): it is dropped, or with C{keepZombies} left
in the dead-letter queue. A message with no origin is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from twisted.internet.defer import Deferred, inlineCallbacks

from synnefo_twisted.bus._common import ORIGIN_EXCHANGE_HEADER, ORIGIN_ROUTING_KEY_HEADER, log

FROM_DEAD_LETTER_HEADER = "from-dead-letter"


@attrs.frozen
class RetryTarget:
    exchange: str
    routingKey: str


def retryTarget(headers: Mapping[str, Any]) -> RetryTarget | None:
    """
    Where a dead-lettered message was first published, or None when its
    headers do not say.
    """
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], Mapping):
        death = deaths[0]
        keys = death.get("routing-keys")
        exchange = death.get("exchange")
        if isinstance(exchange, str) and isinstance(keys, list) and keys and isinstance(keys[0], str):
            return RetryTarget(exchange, keys[0])
    exchange = headers.get(ORIGIN_EXCHANGE_HEADER)
    key = headers.get(ORIGIN_ROUTING_KEY_HEADER)
    if isinstance(exchange, str) and isinstance(key, str):
        return RetryTarget(exchange, key)
    return None


def isZombie(headers: Mapping[str, Any]) -> bool:
    """
    Whether the message was already retried once.
    """
    return FROM_DEAD_LETTER_HEADER in headers


@attrs.define
class RetryReport:
    """
    What L{retryDeadLetters} did.
    """

    retried: int = 0
    zombiesDropped: int = 0
    zombiesKept: int = 0
    noOrigin: int = 0
    failed: int = 0


@inlineCallbacks
def retryDeadLetters(bus: Any, queue: str, keepZombies: bool = False) -> Any:
    """
    Send the messages waiting in the dead-letter queue C{queue} back to
    where they came from (each confirmed before it is removed).

    @param bus: an L{IMessageBus} that also has C{messageCount}.
    @return: Deferred L{RetryReport}.
    """
    report = RetryReport()
    total = yield bus.messageCount(queue)
    if total == 0:
        return report
    seen = [0]
    finished: Deferred[None] = Deferred()

    def count() -> None:
        seen[0] += 1
        if seen[0] == total and not finished.called:
            finished.callback(None)

    @inlineCallbacks
    def handle(message: Any) -> Any:
        if seen[0] >= total:
            return  # arrived after the snapshot: left for the next run
        headers = dict(message.headers)
        target = retryTarget(headers)
        try:
            if isZombie(headers):
                if keepZombies:
                    report.zombiesKept += 1  # left unsettled: back to the queue when we stop
                else:
                    report.zombiesDropped += 1
                    log.info("dropping a message from {queue} that died twice", queue=queue)
                    message.ack()
            elif target is None:
                report.noOrigin += 1
                log.warn("dropping a message from {queue} with no origin headers", queue=queue)
                message.ack()
            else:
                headers[FROM_DEAD_LETTER_HEADER] = True
                try:
                    yield bus.publish(target.exchange, target.routingKey, message.body, headers)
                except Exception:
                    # Left unsettled: back in the dead-letter queue when we stop.
                    report.failed += 1
                    log.failure(
                        "could not retry a message from {queue} to {exchange}/{routingKey}",
                        queue=queue,
                        exchange=target.exchange,
                        routingKey=target.routingKey,
                    )
                else:
                    report.retried += 1
                    message.ack()
        finally:
            count()

    consumer = yield bus.consume(queue, handle, 0)
    try:
        yield finished
    finally:
        yield consumer.stop()
    return report
