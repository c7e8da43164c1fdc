"""
Helpers for watcher tests: a queue directory with ssconf files, a bus
subscriber collecting everything published to C{ganeti}, and a bus that can
be taken down.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.python.filepath import FilePath
from zope.interface import implementer

from synnefo_twisted.bus.errors import PublishFailed
from synnefo_twisted.bus.memory import MemoryBus
from synnefo_twisted.bus.topology import Binding, Exchange, Queue, Topology
from synnefo_twisted.health import Health
from synnefo_twisted.interfaces import IMessageBus

TAP = Topology(
    exchanges=(Exchange("ganeti", "topic", True), Exchange("tap-dl", "topic", True)),
    queues=(Queue("tap"),),
    bindings=(Binding("tap", "ganeti", "#"),),
)


def makeDataDir(
    path: FilePath[str], cluster: str = "cluster.ganeti.lab", master: str = "node1.ganeti.lab"
) -> FilePath[str]:
    path.child("queue").makedirs(ignoreExistingDirectory=True)
    path.child("ssconf_cluster_name").setContent(cluster.encode() + b"\n")
    path.child("ssconf_master_node").setContent(master.encode() + b"\n")
    return path.child("queue")


class Tap:
    """
    Collects (routing key, decoded body) of every message on exchange ganeti.
    """

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, message: Any) -> None:
        self.messages.append((message.routingKey, json.loads(message.body)))
        message.ack()

    def summary(self) -> list[tuple[str, str, int, str]]:
        return [
            (b.get("instance") or b.get("network") or "", b["operation"], b["jobId"], b["status"])
            for _, b in self.messages
        ]


async def tapBus(bus: MemoryBus) -> Tap:
    tap = Tap()
    await bus.declare(TAP)
    await bus.consume("tap", tap)
    return tap


@implementer(IMessageBus)
class FlakyBus:
    """
    An IMessageBus that delegates to another one, except that while C{down}
    every publish and declare fails with PublishFailed (what a bus reports
    when the broker connection drops before the confirm).
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.down = False
        self.attempts = 0

    def declare(self, topology: object) -> Deferred[None]:
        if self.down:
            return fail(PublishFailed("broker unreachable"))
        result: Deferred[None] = self.inner.declare(topology)
        return result

    def publish(
        self, exchange: str, routingKey: str, body: bytes, headers: object = None, persistent: bool = True
    ) -> Deferred[None]:
        self.attempts += 1
        if self.down:
            return fail(PublishFailed("connection lost before confirm"))
        result: Deferred[None] = self.inner.publish(exchange, routingKey, body, headers, persistent)
        return result

    def consume(self, queue: str, handler: object, prefetch: int = 100) -> Deferred[Any]:
        result: Deferred[Any] = self.inner.consume(queue, handler, prefetch)
        return result

    def health(self) -> Health:
        result: Health = self.inner.health()
        return result
