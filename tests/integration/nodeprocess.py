"""
Run a real C{twistd -n synnefo} process for end-to-end tests, reading its
JSON log lines.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from twisted.internet import protocol
from twisted.internet.defer import Deferred

TWISTD = str(Path(sys.executable).with_name("twistd"))


class NodeProcess(protocol.ProcessProtocol):
    """
    A node under test: collects its JSON log events; C{waitFor(predicate)}
    fires with the first event matching; C{ended} fires with the exit status.
    """

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.raw: list[bytes] = []
        self._buffer = b""
        self._waiters: list[tuple[Any, Deferred[dict[str, Any]]]] = []
        self.ended: Deferred[int | None] = Deferred()
        self.exitSignal: int | None = None

    def outReceived(self, data: bytes) -> None:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            self.raw.append(line)
            try:
                event = json.loads(line)
            except ValueError:
                continue
            self.events.append(event)
            for waiter in list(self._waiters):
                if waiter[0](event):
                    self._waiters.remove(waiter)
                    waiter[1].callback(event)

    def errReceived(self, data: bytes) -> None:
        self.raw.append(data)

    def waitFor(self, predicate: Any) -> Deferred[dict[str, Any]]:
        for event in self.events:
            if predicate(event):
                d: Deferred[dict[str, Any]] = Deferred()
                d.callback(event)
                return d
        d = Deferred()
        self._waiters.append((predicate, d))
        return d

    def processEnded(self, reason: Any) -> None:
        self.exitSignal = getattr(reason.value, "signal", None)
        for _, waiter in self._waiters:
            waiter.errback(RuntimeError("node exited: " + b"\n".join(self.raw[-20:]).decode("utf-8", "replace")))
        self._waiters = []
        self.ended.callback(reason.value.exitCode)

    def terminate(self) -> None:
        if self.transport is not None and self.transport.pid is not None:
            self.transport.signalProcess(signal.SIGTERM)

    def output(self) -> str:
        return b"\n".join(self.raw).decode("utf-8", "replace")


def spawnNode(reactor: Any, args: list[str], cwd: str, env: dict[str, str] | None = None) -> NodeProcess:
    """
    Start C{twistd -n --pidfile= synnefo --log-format json ARGS} in C{cwd}.
    """
    node = NodeProcess()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SNF_") or k.startswith("SNF_TEST_")}
    environment.update(env or {})
    reactor.spawnProcess(
        node,
        TWISTD,
        [TWISTD, "-n", "--pidfile=", "synnefo", "--log-format", "json", *args],
        env=environment,
        path=cwd,
    )
    return node


def adminPort(event: dict[str, Any]) -> bool:
    return event.get("listener") == "admin" and "port" in event
