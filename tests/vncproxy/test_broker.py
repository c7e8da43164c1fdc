"""
Tests for L{vncproxy.broker.ConsoleBroker} and L{vncproxy.testing.FakeConsoleBroker}:
one contract suite for both, plus the real client's retries and timeouts.
"""

import json
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from synnefo_twisted.interfaces import IConsoleBroker
from tests.vncproxy.helpers import ProxyHarness, PumpEndpoint
from vncproxy.broker import ConsoleBroker, ConsoleUnavailable, controlClientEndpoint, makeBroker
from vncproxy.control import ControlProtocol
from vncproxy.testing import FakeConsoleBroker


class BrokerContractMixin:
    """
    What every IConsoleBroker does; subclasses provide C{makeBroker()} and C{settle(d)}.
    """

    def makeBroker(self) -> Any:
        raise NotImplementedError

    def settle(self, d: "Deferred[Any]") -> None:
        pass

    def test_interface(self: Any) -> None:
        """
        The broker provides IConsoleBroker.
        """
        self.assertTrue(verifyObject(IConsoleBroker, self.makeBroker()))

    def test_forwarding(self: Any) -> None:
        """
        A forwarding comes back as host, port, the same password and type.
        """
        broker = self.makeBroker()
        d = broker.requestForwarding("node1", 5901, "onetime12", "vnc-ws")
        self.settle(d)
        result = self.successResultOf(d)
        self.assertEqual(sorted(result), ["host", "password", "port", "type"])
        self.assertEqual((result["password"], result["type"]), ("onetime12", "vnc-ws"))
        self.assertIsInstance(result["port"], int)
        self.assertTrue(result["host"])

    def test_unsupportedType(self: Any) -> None:
        """
        An unsupported console type fails with ConsoleUnavailable naming it.
        """
        d = self.makeBroker().requestForwarding("node1", 5901, "onetime12", "spice")
        self.settle(d)
        failure = self.failureResultOf(d, ConsoleUnavailable)
        self.assertIn("spice not supported", failure.getErrorMessage())


class FakeBrokerTests(BrokerContractMixin, SynchronousTestCase):
    def makeBroker(self) -> FakeConsoleBroker:
        return FakeConsoleBroker()

    def test_failWith(self) -> None:
        """
        The fake can be told to fail, and records the requests.
        """
        broker = FakeConsoleBroker()
        broker.failWith = "proxy down"
        d = broker.requestForwarding("n", 1, "p", "vnc")
        self.assertIn("proxy down", self.failureResultOf(d, ConsoleUnavailable).getErrorMessage())
        self.assertEqual(broker.requests, [("n", 1, "p", "vnc")])


class RealBrokerTests(BrokerContractMixin, SynchronousTestCase):
    """
    The control-socket client against the real control protocol and proxy, in memory.
    """

    def makeBroker(self, user: str = "synnefo", password: str = "secret") -> ConsoleBroker:
        self.h = ProxyHarness(self)
        self.controlEndpoint = PumpEndpoint(
            lambda: ControlProtocol(self.h.proxy.handleRequest, self.h.reactor), self.h.reactor
        )
        return ConsoleBroker(self.h.reactor, self.controlEndpoint, user, password)

    def settle(self, d: "Deferred[Any]") -> None:
        for _ in range(20):
            self.h.pumpAll(self.controlEndpoint.pumps + self.h.endpoint.pumps)

    def test_proxyRefuses(self) -> None:
        """
        A FAILED reply becomes ConsoleUnavailable carrying the proxy's reason; no timer is left.
        """
        broker = self.makeBroker(password="wrong")
        d = broker.requestForwarding("node1", 5901, "onetime12", "vnc")
        self.settle(d)
        failure = self.failureResultOf(d, ConsoleUnavailable)
        self.assertIn("wrong password", failure.getErrorMessage())
        self.assertEqual(self.h.reactor.getDelayedCalls(), [])

    def test_requestOnTheWire(self) -> None:
        """
        The request carries the original's fields with source_port 0.
        """
        broker = self.makeBroker()
        broker.requestForwarding("node1", 5901, "onetime12", "vnc")
        sent = json.loads(self.controlEndpoint.clients[0].request)
        self.assertEqual(
            sent,
            {
                "source_port": 0,
                "destination_address": "node1",
                "destination_port": 5901,
                "password": "onetime12",
                "auth_user": "synnefo",
                "auth_password": "secret",
                "type": "vnc",
            },
        )

    def test_retries(self) -> None:
        """
        Connecting is retried retryWait apart; after the last refusal the request fails.
        """
        reactor = MemoryReactorClock()
        endpoint = PumpEndpoint(lambda: ControlProtocol(lambda r: Deferred(), reactor), reactor, refuse=99)
        broker = ConsoleBroker(reactor, endpoint, "u", "p", retries=5, retryWait=0.2)
        d = broker.requestForwarding("n", 1, "p", "vnc")
        for _ in range(4):
            self.assertNoResult(d)
            reactor.advance(0.2)
        self.assertEqual(endpoint.attempts, 5)
        self.assertIn("cannot reach the VNC proxy", self.failureResultOf(d, ConsoleUnavailable).getErrorMessage())
        self.assertEqual(reactor.getDelayedCalls(), [])

    def test_timeout(self) -> None:
        """
        A proxy that never answers fails the request after the timeout.
        """
        reactor = MemoryReactorClock()
        endpoint = PumpEndpoint(lambda: ControlProtocol(lambda r: Deferred(), reactor, timeout=999), reactor)
        broker = ConsoleBroker(reactor, endpoint, "u", "p", timeout=10)
        d = broker.requestForwarding("n", 1, "p", "vnc")
        endpoint.pumps[0].flush()
        reactor.advance(10)
        self.assertIn("did not answer within 10 s", self.failureResultOf(d, ConsoleUnavailable).getErrorMessage())


class EndpointTests(SynchronousTestCase):
    def test_fromControlListen(self) -> None:
        """
        The client endpoint is derived from the server endpoint description.
        """
        reactor = MemoryReactorClock()
        endpoint = controlClientEndpoint(reactor, "tcp:24999:interface=127.0.0.1")
        self.assertEqual((endpoint._host, endpoint._port), ("127.0.0.1", 24999))  # type: ignore[attr-defined]
        endpoint = controlClientEndpoint(reactor, "tcp:24999")
        self.assertEqual(endpoint._host, "127.0.0.1")  # type: ignore[attr-defined]
        self.assertRaises(ValueError, controlClientEndpoint, reactor, "unix:/tmp/x")

    def test_makeBroker(self) -> None:
        """
        makeBroker builds a verified broker from a client endpoint description.
        """
        broker = makeBroker(MemoryReactorClock(), "tcp:host=127.0.0.1:port=24999", "u", "p")
        self.assertTrue(verifyObject(IConsoleBroker, broker))
        self.assertEqual((broker.authUser, broker.authPassword), ("u", "p"))
