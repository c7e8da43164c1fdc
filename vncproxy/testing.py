# -*- test-case-name: tests.vncproxy.test_broker -*-
"""
A verified fake of L{IConsoleBroker} for tests of code that asks for
consoles (the API's console action). It passes the same contract tests as
L{vncproxy.broker.ConsoleBroker} (see C{tests/vncproxy/test_broker.py}).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from synnefo_twisted.interfaces import IConsoleBroker
from vncproxy.broker import ConsoleUnavailable
from vncproxy.control import CONSOLE_TYPES


@implementer(IConsoleBroker)
class FakeConsoleBroker:
    """
    Answers every request at once with the next port from C{firstPort}.

    @ivar requests: C{(destinationAddress, destinationPort, password, consoleType)} tuples.
    @ivar failWith: when set, every request fails with L{ConsoleUnavailable} and this reason.
    """

    def __init__(self, host: str = "127.0.0.1", firstPort: int = 25000) -> None:
        self.host = host
        self.nextPort = firstPort
        self.requests: list[tuple[str, int, str, str]] = []
        self.failWith: str | None = None

    def requestForwarding(
        self, destinationAddress: str, destinationPort: int, password: str, consoleType: str
    ) -> Deferred[dict[str, Any]]:
        self.requests.append((destinationAddress, destinationPort, password, consoleType))
        if self.failWith is not None:
            return fail(ConsoleUnavailable(f"vncauthproxy returned error status: {self.failWith}"))
        if consoleType not in CONSOLE_TYPES:
            return fail(ConsoleUnavailable(f"vncauthproxy returned error status: {consoleType} not supported"))
        port = self.nextPort
        self.nextPort += 1
        return succeed({"host": self.host, "port": port, "password": password, "type": consoleType})
