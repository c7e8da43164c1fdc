# -*- test-case-name: tests.test_node -*-
"""
What a plugin's C{makeService} receives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from synnefo_twisted.config import Settings
from synnefo_twisted.metrics import MetricsRegistry


@attrs.frozen
class NodeContext:
    """
    The node as one plugin sees it: the reactor, the plugin's own section of
    the configuration, and the shared resources it declared it requires
    (the others are None).

    @ivar reactor: the reactor (time, TCP, UDP, SSL, process, threads, FD).
    @ivar settings: the plugin's own configuration section (empty when it
        owns none).
    @ivar database: an L{IDatabase}, when required.
    @ivar bus: an L{IMessageBus}, when required.
    @ivar backends: an L{IBackendRegistry}, when C{ganeti} is required.
    @ivar metrics: the node's metrics registry.
    @ivar stateDir: the node's state directory (created).
    @ivar roles: the node's roles.
    @ivar plugins: the names of the plugins this node runs.
    """

    reactor: Any
    settings: Settings
    metrics: MetricsRegistry
    stateDir: Path
    roles: frozenset[str] = frozenset()
    plugins: frozenset[str] = frozenset()
    database: Any = None
    bus: Any = None
    backends: Any = None
