"""
Message bus throughput: publish-with-confirm and consume-with-ack through
L{IMessageBus} on RabbitMQ, against raw txAMQP doing the same work (same
confirms, same prefetch, same message size, individual acks) in the same
run, plus the in-process bus.

    .venv/bin/python bench/bus.py [--messages N] [--size BYTES] [--prefetch P]
        [--window W] [--rounds R] [--heartbeat S] [--url amqp://guest:guest@127.0.0.1:5672/synnefo-test]

Prints one table; the ratio column is bus rate / raw txAMQP rate (goal >= 0.8).
Everything it declares is deleted at the end.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from txamqp.client import TwistedDelegate
from txamqp.content import Content
from txamqp.factory import AMQFactory
from txamqp.protocol import AMQClient

from synnefo_twisted.bus import DEFAULT_SPEC, Binding, Exchange, Queue, Topology, openBus, parseAMQPURL
from synnefo_twisted.bus.memory import MemoryBus

# -- raw txAMQP: the baseline -------------------------------------------------


class RawDelegate(TwistedDelegate):
    """
    The smallest addition raw txAMQP needs for publisher confirms.
    """

    def basic_ack(self, ch: Any, msg: Any) -> None:
        self.client.confirm(msg.delivery_tag, msg.multiple)

    def basic_nack(self, ch: Any, msg: Any) -> None:
        self.client.confirm(msg.delivery_tag, msg.multiple)


class RawClient(AMQClient):
    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.pending: dict[int, Deferred[None]] = {}
        self.tag = 0

    def publish(self, ch: Any, exchange: str, key: str, body: bytes) -> Deferred[None]:
        self.tag += 1
        d: Deferred[None] = Deferred()
        self.pending[self.tag] = d
        ch.basic_publish(exchange=exchange, routing_key=key, content=Content(body, properties={"delivery-mode": 2}))
        return d

    def confirm(self, tag: int, multiple: bool) -> None:
        tags = [t for t in self.pending if t <= tag] if multiple else [tag]
        for t in tags:
            d = self.pending.pop(t, None)
            if d is not None:
                d.callback(None)


class RawFactory(AMQFactory):
    protocol = RawClient
    noisy = False

    def buildProtocol(self, addr: Any) -> RawClient:
        return RawClient(
            RawDelegate(), vhost=self._vhost, spec=self._spec, heartbeat=self._heartbeat, clock=self._clock
        )


@inlineCallbacks
def rawConnect(reactor: Any, url: str, heartbeat: int) -> Any:
    from twisted.internet.endpoints import TCP4ClientEndpoint

    a = parseAMQPURL(url)
    factory = RawFactory(spec=DEFAULT_SPEC, clock=reactor)
    factory.set_vhost(a.vhost)
    factory.set_heartbeat(heartbeat)
    client = yield TCP4ClientEndpoint(reactor, a.host, a.port).connect(factory)
    yield client.authenticate(a.username, a.password)
    pub = yield client.channel(1)
    yield pub.channel_open()
    yield pub.confirm_select()
    return client, pub


@inlineCallbacks
def windowed(total: int, window: int, send: Callable[[int], Deferred[Any]]) -> Any:
    """
    Call send(i) for i < total with at most C{window} unconfirmed.
    """
    state = {"inFlight": 0}
    waiter: list[Deferred[None]] = []
    sent: list[Deferred[Any]] = []

    def release(result: object) -> object:
        state["inFlight"] -= 1
        if waiter:
            waiter.pop().callback(None)
        return result

    for i in range(total):
        if state["inFlight"] >= window:
            w: Deferred[None] = Deferred()
            waiter.append(w)
            yield w
        state["inFlight"] += 1
        d = send(i)
        d.addBoth(release)
        sent.append(d)
    yield DeferredList(sent)


@inlineCallbacks
def rawPublish(client: Any, pub: Any, exchange: str, n: int, body: bytes, window: int) -> Any:
    t0 = time.perf_counter()
    yield windowed(n, window, lambda i: client.publish(pub, exchange, "bench.k", body))
    return n / (time.perf_counter() - t0)


@inlineCallbacks
def rawConsume(client: Any, queue: str, n: int, prefetch: int) -> Any:
    ch = yield client.channel(client.nextChannel)
    client.nextChannel += 1
    yield ch.channel_open()
    yield ch.basic_qos(prefetch_count=prefetch)
    tag = f"raw-{uuid.uuid4().hex[:8]}"
    t0 = time.perf_counter()
    yield ch.basic_consume(queue=queue, consumer_tag=tag, no_ack=False)
    q = yield client.queue(tag)
    for _ in range(n):
        msg = yield q.get()
        ch.basic_ack(delivery_tag=msg.delivery_tag)
    rate = n / (time.perf_counter() - t0)
    yield ch.basic_cancel(consumer_tag=tag)
    yield ch.channel_close(reply_code=200, reply_text="bye", class_id=0, method_id=0)
    return rate


# -- through IMessageBus ------------------------------------------------------


@inlineCallbacks
def busPublish(bus: Any, exchange: str, n: int, body: bytes, window: int) -> Any:
    t0 = time.perf_counter()
    yield windowed(n, window, lambda i: bus.publish(exchange, "bench.k", body))
    return n / (time.perf_counter() - t0)


@inlineCallbacks
def busConsume(bus: Any, queue: str, n: int, prefetch: int) -> Any:
    done: Deferred[None] = Deferred()
    count = [0]

    def handler(message: Any) -> None:
        message.ack()
        count[0] += 1
        if count[0] == n:
            done.callback(None)

    t0 = time.perf_counter()
    consumer = yield bus.consume(queue, handler, prefetch)
    yield done
    rate = n / (time.perf_counter() - t0)
    yield consumer.stop()
    return rate


@inlineCallbacks
def main(reactor: Any, options: argparse.Namespace) -> Any:
    n, size, prefetch, window = options.messages, options.size, options.prefetch, options.window
    body = (b"{" + b"x" * max(0, size - 2) + b"}")[:size]
    tag = uuid.uuid4().hex[:8]
    exchange, queue = f"bench-{tag}-x", f"bench-{tag}-q"
    topology = Topology([Exchange(exchange)], [Queue(queue, durable=True)], [Binding(queue, exchange, "#")])

    bus = openBus(options.url, reactor, spec=DEFAULT_SPEC, heartbeat=options.heartbeat)
    yield bus.startService()
    client, pub = yield rawConnect(reactor, options.url, options.heartbeat)
    client.nextChannel = 2
    results: dict[str, list[float]] = {k: [] for k in ("raw-pub", "bus-pub", "raw-con", "bus-con")}
    try:
        yield bus.declare(topology)
        # warm-up
        yield rawPublish(client, pub, exchange, min(n, 2000), body, window)
        yield busConsume(bus, queue, min(n, 2000), prefetch)
        for r in range(options.rounds):
            # Alternate which client goes first, so drift in the broker's
            # state or the machine's load does not favour one side.
            for side in ("raw", "bus") if r % 2 == 0 else ("bus", "raw"):
                if side == "raw":
                    results["raw-pub"].append((yield rawPublish(client, pub, exchange, n, body, window)))
                    results["raw-con"].append((yield rawConsume(client, queue, n, prefetch)))
                else:
                    results["bus-pub"].append((yield busPublish(bus, exchange, n, body, window)))
                    results["bus-con"].append((yield busConsume(bus, queue, n, prefetch)))
    finally:
        yield bus.deleteQueue(queue)
        yield bus.deleteExchange(exchange)
        yield bus.stopService()
        ch0 = yield client.channel(0)
        yield ch0.connection_close(reply_code=200, reply_text="bye", class_id=0, method_id=0)
        client.transport.loseConnection()

    memory = MemoryBus(reactor)
    yield memory.startService()
    yield memory.declare(topology)
    memPub = []
    memCon = []
    for _ in range(options.rounds):
        memPub.append((yield busPublish(memory, exchange, n, body, window)))
        memCon.append((yield busConsume(memory, queue, n, prefetch)))
    yield memory.stopService()

    med = {k: statistics.median(v) for k, v in results.items()}
    print(
        f"\nmessage bus throughput: {n} messages of {size} bytes, prefetch {prefetch}, "
        f"{window} publishes in flight, persistent, heartbeat {options.heartbeat} s, median of {options.rounds} rounds"
    )
    print(f"{'operation':<34}{'raw txAMQP':>14}{'IMessageBus':>14}{'ratio':>8}{'in-process':>14}")
    for label, raw, via, mem in (
        ("publish + broker confirm (msg/s)", med["raw-pub"], med["bus-pub"], statistics.median(memPub)),
        ("consume + ack (msg/s)", med["raw-con"], med["bus-con"], statistics.median(memCon)),
    ):
        print(f"{label:<34}{raw:>14,.0f}{via:>14,.0f}{via / raw:>8.2f}{mem:>14,.0f}")
    print("ratio = IMessageBus / raw txAMQP on the same broker in the same run (goal >= 0.8)")


def parseArgs() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--messages", type=int, default=10000)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--prefetch", type=int, default=100)
    p.add_argument("--window", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--heartbeat", type=int, default=30, help="AMQP heartbeat seconds for both clients (0 disables)")
    p.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/synnefo-test")
    return p.parse_args()


if __name__ == "__main__":
    opts = parseArgs()
    task.react(lambda reactor: main(reactor, opts))
