# -*- test-case-name: tests.bus.test_topology -*-
"""
Exchanges, queues and bindings as values, and the topology Synnefo uses.

The names follow the original Synnefo (C{snf-cyclades-app}
C{synnefo/logic/queues.py}, see spec/synnefo-behaviour.md sections 2.3 and
2.5): the queue and routing-key prefix is the Ganeti name prefix up to its
first dash, so the configured C{snf-} gives queues C{snf-events-op} and
routing keys C{ganeti.snf.event.op}.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

import attrs

EXCHANGE_TYPES = ("topic", "direct", "fanout")

GANETI_EXCHANGE = "ganeti"
DEAD_LETTER_EXCHANGE = "ganeti-dl"
HEARTBEAT_ROUTING_KEY = "eventd.heartbeat"
CLUSTER_ROUTING_KEY = "ganeti.event.cluster"


def _freezeArguments(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


def _checkExchangeType(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in EXCHANGE_TYPES:
        raise ValueError(f"exchange type must be one of {', '.join(EXCHANGE_TYPES)}, not {value!r}")


@attrs.frozen
class Exchange:
    """
    An AMQP exchange.

    @ivar type: C{topic}, C{direct} or C{fanout}.
    """

    name: str
    type: str = attrs.field(default="topic", validator=_checkExchangeType)
    durable: bool = True


@attrs.frozen
class Queue:
    """
    An AMQP queue.

    @ivar deadLetterExchange: where rejected and dead-lettered messages go
        (the C{x-dead-letter-exchange} argument), or None.
    @ivar arguments: further C{x-} arguments (C{x-expires}, ...).
    """

    name: str
    durable: bool = True
    deadLetterExchange: str | None = None
    arguments: Mapping[str, Any] = attrs.field(factory=dict, converter=_freezeArguments, eq=False, hash=False)
    autoDelete: bool = False

    _argumentsKey: tuple[tuple[str, Any], ...] = attrs.field(init=False, repr=False)

    @_argumentsKey.default
    def _computeArgumentsKey(self) -> tuple[tuple[str, Any], ...]:
        return tuple(sorted((k, repr(v)) for k, v in self.arguments.items()))

    def declareArguments(self) -> dict[str, Any]:
        """
        The C{arguments} table sent with C{queue.declare}.
        """
        args = dict(self.arguments)
        if self.deadLetterExchange is not None:
            args["x-dead-letter-exchange"] = self.deadLetterExchange
        return args


@attrs.frozen
class Binding:
    """
    Messages published to C{exchange} with a routing key matching
    C{routingKey} are routed to C{queue}.
    """

    queue: str
    exchange: str
    routingKey: str


def _tupled(value: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(value)


@attrs.frozen
class Topology:
    """
    A set of declarations. C{a + b} (or L{merge}) keeps the first occurrence
    of each element and refuses two different definitions of one name.
    """

    exchanges: tuple[Exchange, ...] = attrs.field(default=(), converter=_tupled)
    queues: tuple[Queue, ...] = attrs.field(default=(), converter=_tupled)
    bindings: tuple[Binding, ...] = attrs.field(default=(), converter=_tupled)

    def merge(self, other: Topology) -> Topology:
        """
        The union of both topologies.

        @raise ValueError: when an exchange or queue is defined differently.
        """
        exchanges = {e.name: e for e in self.exchanges}
        queues = {q.name: q for q in self.queues}
        bindings = dict.fromkeys(self.bindings)
        for e in other.exchanges:
            if exchanges.setdefault(e.name, e) != e:
                raise ValueError(f"exchange {e.name!r} defined twice differently: {exchanges[e.name]} and {e}")
        for q in other.queues:
            if queues.setdefault(q.name, q) != q:
                raise ValueError(f"queue {q.name!r} defined twice differently: {queues[q.name]} and {q}")
        for b in other.bindings:
            bindings.setdefault(b)
        return Topology(tuple(exchanges.values()), tuple(queues.values()), tuple(bindings))

    def __add__(self, other: Topology) -> Topology:
        return self.merge(other)

    def queue(self, name: str) -> Queue | None:
        """
        The queue called C{name}, if this topology declares it.
        """
        for q in self.queues:
            if q.name == name:
                return q
        return None

    def withoutQueue(self, name: str) -> Topology:
        """
        This topology without the queue C{name} and its bindings.
        """
        return Topology(
            self.exchanges,
            tuple(q for q in self.queues if q.name != name),
            tuple(b for b in self.bindings if b.queue != name),
        )

    def withoutExchange(self, name: str) -> Topology:
        """
        This topology without the exchange C{name} and its bindings.
        """
        return Topology(
            tuple(e for e in self.exchanges if e.name != name),
            self.queues,
            tuple(b for b in self.bindings if b.exchange != name),
        )


def queuePrefix(prefix: str) -> str:
    """
    The queue and routing-key prefix for a Ganeti name prefix: C{snf-} and
    C{snf} both give C{snf} (Synnefo uses the part before the first dash).

    @raise ValueError: for an empty prefix or one that is not a single AMQP
        routing-key word.
    """
    word = prefix.split("-", 1)[0]
    if not word or "." in word or "*" in word or "#" in word:
        raise ValueError(f"invalid bus prefix {prefix!r}")
    return word


@attrs.frozen
class EventQueues:
    """
    The names the dispatcher and the watcher use for one prefix.
    """

    op: str
    network: str
    progress: str
    cluster: str
    opKey: str
    networkKey: str
    progressKey: str
    clusterKey: str


def eventQueues(prefix: str = "snf-") -> EventQueues:
    """
    Queue names and routing keys for the Ganeti name prefix C{prefix}.
    """
    p = queuePrefix(prefix)
    return EventQueues(
        op=f"{p}-events-op",
        network=f"{p}-events-network",
        progress=f"{p}-events-progress",
        cluster=f"{p}-events-cluster",
        opKey=f"ganeti.{p}.event.op",
        networkKey=f"ganeti.{p}.event.network",
        progressKey=f"ganeti.{p}.event.progress",
        clusterKey=CLUSTER_ROUTING_KEY,
    )


def synnefoTopology(prefix: str = "snf-", mirrored: bool = False) -> Topology:
    """
    The Ganeti event topology: the durable topic exchanges C{ganeti} and
    C{ganeti-dl}; the durable queues C{<p>-events-{op,network,progress,cluster}}
    bound to C{ganeti} with dead-letter exchange C{ganeti-dl}; and their
    twins C{<p>-events-*-dl} bound to C{ganeti-dl} with the same keys.

    @param mirrored: add C{x-ha-policy: all} as the original did (RabbitMQ
        3.0+ ignores it; mirroring is a broker policy now).
    """
    names = eventQueues(prefix)
    pairs = [
        (names.op, names.opKey),
        (names.network, names.networkKey),
        (names.progress, names.progressKey),
        (names.cluster, names.clusterKey),
    ]
    extra: dict[str, Any] = {"x-ha-policy": "all"} if mirrored else {}
    queues: list[Queue] = []
    bindings: list[Binding] = []
    for queue, key in pairs:
        queues.append(Queue(queue, durable=True, deadLetterExchange=DEAD_LETTER_EXCHANGE, arguments=extra))
        bindings.append(Binding(queue, GANETI_EXCHANGE, key))
    for queue, key in pairs:
        queues.append(Queue(f"{queue}-dl", durable=True, arguments=extra))
        bindings.append(Binding(f"{queue}-dl", DEAD_LETTER_EXCHANGE, key))
    return Topology(
        exchanges=(Exchange(GANETI_EXCHANGE, "topic", True), Exchange(DEAD_LETTER_EXCHANGE, "topic", True)),
        queues=tuple(queues),
        bindings=tuple(bindings),
    )


def topicMatches(pattern: str, routingKey: str) -> bool:
    """
    Whether C{routingKey} matches the topic binding key C{pattern} (AMQP
    0-9-1 topic rules: dot-separated words, C{*} is exactly one word, C{#}
    is zero or more words).
    """
    return _match(tuple(pattern.split(".")), tuple(routingKey.split(".")))


def _match(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    # Iterative with memo-free backtracking only at '#'.
    pi = 0
    wi = 0
    starP = -1
    starW = 0
    while wi < len(words):
        if pi < len(pattern) and pattern[pi] == "#":
            starP = pi
            starW = wi
            pi += 1
        elif pi < len(pattern) and (pattern[pi] == "*" or pattern[pi] == words[wi]):
            pi += 1
            wi += 1
        elif starP != -1:
            pi = starP + 1
            starW += 1
            wi = starW
        else:
            return False
    while pi < len(pattern) and pattern[pi] == "#":
        pi += 1
    return pi == len(pattern)
