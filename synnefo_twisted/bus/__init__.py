# -*- test-case-name: tests.bus.test_open -*-
"""
The message bus: exchange/queue topology, the in-process bus and the
RabbitMQ bus, chosen by URL with L{openBus}.

    bus = openBus(settings["url"], reactor, spec=settings["spec"],
                  heartbeat=settings["heartbeat"], metrics=registry)
    yield bus.startService()                  # fires once connected
    yield bus.declare(synnefoTopology("snf-"))  # re-declared after reconnects
    yield bus.publish("ganeti", "ganeti.snf.event.op", body)  # fires on confirm

    def handle(message):                      # an IIncomingMessage
        ...                                   # ack() after the transaction commits,
        message.ack()                         # deadLetter(reason) for bad input

    consumer = yield bus.consume("snf-events-op", handle, prefetch=5)

Both implementations (L{memory.MemoryBus}, L{amqp.AMQPBus}) pass the same
contract suite (C{tests/bus/contract.py}) and also offer the management
calls C{messageCount}, C{purgeQueue}, C{deleteQueue} and C{deleteExchange}.
A publish that fails with L{PublishFailed} may have been routed anyway:
publish again, and let consumers tolerate duplicates.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote, urlsplit

import attrs
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.ssl import optionsForClientTLS

from synnefo_twisted.bus.errors import AlreadySettled, BusError, BusStopped, DeclareFailed, PublishFailed
from synnefo_twisted.bus.topology import Binding, Exchange, Queue, Topology, synnefoTopology
from synnefo_twisted.metrics import MetricsRegistry

DEFAULT_SPEC = "/usr/share/amqp/specs/0-9-1-rabbit/amqp0-9-1.stripped.extended.xml"

__all__ = [
    "DEFAULT_SPEC",
    "AMQPAddress",
    "AlreadySettled",
    "Binding",
    "BusError",
    "BusStopped",
    "DeclareFailed",
    "Exchange",
    "PublishFailed",
    "Queue",
    "Topology",
    "openBus",
    "parseAMQPURL",
    "synnefoTopology",
]


@attrs.frozen
class AMQPAddress:
    """
    A parsed C{amqp://} or C{amqps://} URL.
    """

    tls: bool
    host: str
    port: int
    username: str
    password: str = attrs.field(repr=False)
    vhost: str

    def describe(self) -> str:
        """
        The address without the password, for logs and /healthz.
        """
        scheme = "amqps" if self.tls else "amqp"
        return f"{scheme}://{quote(self.username, safe='')}@{self.host}:{self.port}/{quote(self.vhost, safe='')}"


def parseAMQPURL(url: str) -> AMQPAddress:
    """
    Parse C{amqp://user:password@host:port/vhost} (RabbitMQ's URI spec: the
    user, password and vhost are percent-decoded, so vhost C{/} is C{%2F};
    with no path the vhost is C{/}; default user C{guest}, port 5672, or
    5671 for C{amqps}).

    @raise ValueError: when the URL is not of that form.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise ValueError(f"invalid bus URL {url!r}: {e}") from None
    if parts.scheme not in ("amqp", "amqps"):
        raise ValueError(f"invalid bus URL {url!r}: the scheme must be amqp:// or amqps://")
    if not parts.hostname:
        raise ValueError(f"invalid bus URL {url!r}: no host")
    if parts.query or parts.fragment:
        raise ValueError(f"invalid bus URL {url!r}: query strings and fragments are not supported")
    path = parts.path
    if path in ("", "/"):
        vhost = "/"
    else:
        raw = path[1:]
        if "/" in raw:
            raise ValueError(f"invalid bus URL {url!r}: write a vhost containing '/' as %2F")
        vhost = unquote(raw)
    tls = parts.scheme == "amqps"
    return AMQPAddress(
        tls=tls,
        host=parts.hostname,
        port=port if port is not None else (5671 if tls else 5672),
        username=unquote(parts.username) if parts.username is not None else "guest",
        password=unquote(parts.password) if parts.password is not None else "guest",
        vhost=vhost,
    )


def openBus(
    url: str,
    reactor: Any,
    *,
    spec: str = DEFAULT_SPEC,
    heartbeat: int = 30,
    metrics: MetricsRegistry | None = None,
    connectTimeout: float = 10.0,
) -> Any:
    """
    The L{IMessageBus} (also an C{IService} and C{IHealthReporter}) for
    C{url}: C{memory://} for the in-process bus, C{amqp://...} or
    C{amqps://...} for RabbitMQ.

    @raise ValueError: for any other URL.
    """
    if url.startswith("memory:"):
        if url.rstrip("/") != "memory:":
            raise ValueError(f"invalid bus URL {url!r}: the in-process bus is just memory://")
        from synnefo_twisted.bus.memory import MemoryBus

        return MemoryBus(reactor, metrics)
    address = parseAMQPURL(url)
    from synnefo_twisted.bus.amqp import AMQPBus

    endpoint: Any = HostnameEndpoint(reactor, address.host, address.port, timeout=connectTimeout)
    if address.tls:
        endpoint = wrapClientTLS(optionsForClientTLS(address.host), endpoint)
    return AMQPBus(
        reactor,
        endpoint,
        username=address.username,
        password=address.password,
        vhost=address.vhost,
        spec=spec,
        heartbeat=heartbeat,
        metrics=metrics,
        description=address.describe(),
    )
