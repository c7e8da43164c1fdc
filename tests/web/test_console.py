"""
Tests for L{web.console.SecretFileBroker}: the broker contract against the
real control protocol and proxy (in memory), with the control password read
from a file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from tests.vncproxy.helpers import ProxyHarness, PumpEndpoint
from tests.vncproxy.test_broker import BrokerContractMixin
from vncproxy.broker import ConsoleUnavailable
from vncproxy.control import ControlProtocol
from web.console import SecretFileBroker


class SecretFileBrokerTests(BrokerContractMixin, SynchronousTestCase):
    def makeBroker(self, secret: str | None = "secret\n") -> SecretFileBroker:
        self.h = ProxyHarness(self)
        self.controlEndpoint = PumpEndpoint(
            lambda: ControlProtocol(self.h.proxy.handleRequest, self.h.reactor), self.h.reactor
        )
        self.secretFile = Path(self.mktemp())
        if secret is not None:
            self.secretFile.write_text(secret)
        return SecretFileBroker(self.h.reactor, self.controlEndpoint, "synnefo", self.secretFile)

    def settle(self, d: Deferred[Any]) -> None:
        for _ in range(20):
            self.h.pumpAll(self.controlEndpoint.pumps + self.h.endpoint.pumps)

    def test_rotated(self) -> None:
        """
        The secret is read for each request: a wrong one is refused by the proxy, the right one written later works.
        """
        broker = self.makeBroker("wrong\n")
        d = broker.requestForwarding("node1", 5901, "onetime12", "vnc")
        self.settle(d)
        self.assertIn("wrong password", self.failureResultOf(d, ConsoleUnavailable).getErrorMessage())
        self.secretFile.write_text("secret\n")
        d = broker.requestForwarding("node1", 5901, "onetime12", "vnc")
        self.settle(d)
        self.assertEqual(self.successResultOf(d)["password"], "onetime12")

    def test_missingOrEmpty(self) -> None:
        """
        A missing or empty secret file fails the request with ConsoleUnavailable naming the file; nothing is sent.
        """
        for secret in (None, "", "\n"):
            broker = self.makeBroker(secret)
            d = broker.requestForwarding("node1", 5901, "onetime12", "vnc")
            failure = self.failureResultOf(d, ConsoleUnavailable)
            self.assertIn(str(self.secretFile), failure.getErrorMessage())
            self.assertEqual(self.controlEndpoint.clients, [])

    def test_noTimerLeft(self) -> None:
        """
        A failed secret read leaves no delayed call behind.
        """
        reactor = MemoryReactorClock()
        broker = SecretFileBroker(
            reactor,
            PumpEndpoint(lambda: ControlProtocol(lambda r: Deferred(), reactor), reactor),
            "u",
            Path(self.mktemp()),
        )
        self.failureResultOf(broker.requestForwarding("n", 1, "p", "vnc"), ConsoleUnavailable)
        self.assertEqual(reactor.getDelayedCalls(), [])
