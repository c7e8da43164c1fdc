# -*- test-case-name: tests.ganeti.test_scripts -*-
"""
What the Ganeti-side scripts (C{snf-ganeti-hook}, C{snf-progress-monitor})
share: reading the node configuration for the bus URL and the name prefix,
and publishing a few messages with bounded patience (Ganeti and snf-image
must never be blocked by an unreachable broker).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater

from synnefo_twisted.bus.topology import Exchange, Topology
from synnefo_twisted.ganeti import naming

#: Environment variable naming the configuration file (hooks run with a
#: cleaned environment: install a wrapper that sets it, or use the default
#: /etc/synnefo/synnefo.toml).
CONFIG_ENV = "SNF_CONFIG"

EXCHANGE_TOPOLOGY = Topology(exchanges=(Exchange(naming.EXCHANGE, "topic", True),))


@attrs.frozen
class ScriptConfig:
    busUrl: str
    prefix: str


def loadScriptConfig(environ: Mapping[str, str]) -> ScriptConfig:
    """
    The bus URL and Ganeti name prefix from the node configuration
    (C{$SNF_CONFIG}, else C{/etc/synnefo/synnefo.toml}, else defaults),
    with every plugin's schema so that a full node configuration validates.

    @raise synnefo_twisted.config.ConfigError: for an invalid file.
    """
    from twisted.plugin import getPlugins

    import plugins
    from synnefo_twisted.config import loadConfig
    from synnefo_twisted.interfaces import ISynnefoPlugin

    sections = {p.section: p.settings for p in getPlugins(ISynnefoPlugin, plugins) if p.section}
    path = environ.get(CONFIG_ENV) or None
    config = loadConfig(path, sections, environ=environ)
    ganeti = config.section("ganeti")
    return ScriptConfig(config.section("bus")["url"], ganeti["prefix"] if "prefix" in ganeti else naming.DEFAULT_PREFIX)


class Unpublished(Exception):
    """
    Messages could not be delivered within the allowed time or attempts.
    """


async def publishAll(
    reactor: Any,
    busUrl: str,
    messages: Sequence[tuple[str, Mapping[str, Any]]],
    attempts: int = 3,
    timeout: float = 3.0,
    backoff: float = 0.5,
) -> None:
    """
    Connect, declare the C{ganeti} exchange, publish (persistent, confirmed)
    and disconnect; up to C{attempts} tries of C{timeout} seconds each.

    @raise Unpublished: with the reason, when they all fail.
    """
    from synnefo_twisted.bus import openBus

    if busUrl.startswith("memory:"):
        raise Unpublished("the bus is the in-process memory:// bus of a node; a separate script cannot reach it")
    lastError = ""
    for attempt in range(attempts):
        bus = openBus(busUrl, reactor, connectTimeout=timeout)
        try:
            started: Deferred[Any] = Deferred.fromCoroutine(_startAndPublish(bus, messages))
            started.addTimeout(timeout, reactor)
            await started
            return
        except Exception as e:
            lastError = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        finally:
            stopping = bus.stopService()
            if isinstance(stopping, Deferred):
                stopping.addTimeout(timeout, reactor)
                try:
                    await stopping
                except Exception:
                    pass
        if attempt + 1 < attempts:
            await deferLater(reactor, backoff * (2**attempt), lambda: None)
    raise Unpublished(f"bus unreachable after {attempts} attempts ({lastError})")


async def _startAndPublish(bus: Any, messages: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    await bus.startService()
    await bus.declare(EXCHANGE_TOPOLOGY)
    for routingKey, body in messages:
        await bus.publish(naming.EXCHANGE, routingKey, json.dumps(body).encode("utf-8"), None, True)


def nowEventTime(seconds: float) -> list[int]:
    """
    C{[sec, usec]} for a wall-clock time.
    """
    sec = int(seconds)
    return [sec, min(int((seconds - sec) * 1_000_000), 999_999)]


def environ() -> dict[str, str]:
    return dict(os.environ)
