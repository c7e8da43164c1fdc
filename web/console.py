# -*- test-case-name: tests.web.test_console -*-
"""
The API's way to the VNC proxy: an L{IConsoleBroker} whose control
password is read from a file when a console is asked for (so the secret
is not in the configuration, and a rotated secret is used at once).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, fail
from zope.interface import implementer

from synnefo_twisted.interfaces import IConsoleBroker
from vncproxy.broker import ConsoleBroker, ConsoleUnavailable


@implementer(IConsoleBroker)
class SecretFileBroker:
    """
    A L{ConsoleBroker} for C{endpoint} as C{user}, with the password in
    C{secretFile} (its first line).

    @param endpoint: the control socket's client endpoint.
    """

    def __init__(self, clock: Any, endpoint: Any, user: str, secretFile: Path) -> None:
        self.clock = clock
        self.endpoint = endpoint
        self.user = user
        self.secretFile = secretFile

    def secret(self) -> str:
        """
        The control password.

        @raise ConsoleUnavailable: the file is missing, unreadable or empty.
        """
        try:
            text = self.secretFile.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConsoleUnavailable(f"cannot read the VNC proxy secret {self.secretFile}: {e}") from None
        lines = text.splitlines()
        secret = lines[0].strip() if lines else ""
        if not secret:
            raise ConsoleUnavailable(f"the VNC proxy secret file {self.secretFile} is empty")
        return secret

    def requestForwarding(
        self, destinationAddress: str, destinationPort: int, password: str, consoleType: str
    ) -> Deferred[dict[str, Any]]:
        try:
            secret = self.secret()
        except ConsoleUnavailable as e:
            return fail(e)
        broker = ConsoleBroker(self.clock, self.endpoint, self.user, secret)
        return broker.requestForwarding(destinationAddress, destinationPort, password, consoleType)
