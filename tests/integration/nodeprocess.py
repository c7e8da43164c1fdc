"""
Run a real C{twistd -n synnefo} process for end-to-end tests, reading its
JSON log lines.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from twisted.internet import protocol
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread

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


# a node in a test directory: the embedded database under ./state, the
# simulated cluster (nothing kept), every listener on a free port
_BASE_CONFIG: dict[str, dict[str, Any]] = {
    "node": {"roles": ["all"], "admin_listen": "tcp:0:interface=127.0.0.1", "state_dir": "./state"},
    "database": {"url": "sqlite:///./state/synnefo.db"},
    "ganeti": {"simulated": True},
    "ganeti-sim": {"rapi_listen": "tcp:0:interface=127.0.0.1", "persist": False},
    "api": {"listen": "tcp:0:interface=127.0.0.1", "base_url": "http://api.test"},
}


def _tomlValue(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_tomlValue(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def nodeConfig(sections: Mapping[str, Mapping[str, object] | None] | None = None) -> str:
    """
    The C{node.toml} of a node under test: L{_BASE_CONFIG} with the keys of
    C{sections} added or replaced (a section given as None is left out).
    """
    merged: dict[str, dict[str, object]] = {name: dict(keys) for name, keys in _BASE_CONFIG.items()}
    for name, keys in (sections or {}).items():
        if keys is None:
            merged.pop(name, None)
        else:
            merged.setdefault(name, {}).update(keys)
    return "".join(
        f"[{name}]\n" + "".join(f"{key} = {_tomlValue(value)}\n" for key, value in keys.items()) + "\n"
        for name, keys in merged.items()
    )


def vncproxySection(control: int, low: int, **more: object) -> dict[str, object]:
    """
    A C{[vncproxy]} whose control socket listens on C{control} and which
    forwards from 21 ports starting at C{low}, its users in
    C{state/vncproxy-users}.
    """
    return {
        "control_listen": f"tcp:{control}:interface=127.0.0.1",
        "port_range": [low, low + 20],
        "users_file": "vncproxy-users",
        **more,
    }


def addConsoleUser(directory: Path, control: int) -> Deferred[subprocess.CompletedProcess[str]]:
    """
    As C{make run} does: a console secret in C{state/vncproxy-console.secret}
    (the API's) and the user C{console} with that password in
    C{state/vncproxy-users} (the proxy's), added by C{snf-vncproxy-users}.
    The Deferred fires with that command's outcome.
    """
    secret = f"console-secret-{control}"
    (directory / "state" / "vncproxy-console.secret").write_text(secret + "\n")
    users = str(Path(sys.executable).with_name("snf-vncproxy-users"))
    return deferToThread(
        subprocess.run,
        [users, "-f", "state/vncproxy-users", "add", "console", "--password-stdin"],
        cwd=str(directory),
        input=secret + "\n",
        capture_output=True,
        text=True,
    )
