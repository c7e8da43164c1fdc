"""
Wiring for in-memory proxy tests: a VNCProxy on a MemoryReactorClock whose
VNC-server connections and viewer connections are iosim pumps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.test import iosim
from zope.interface import implementer

from tests.vncproxy.peers import FakeVNCServer, TestViewer
from vncproxy.control import ControlRequest
from vncproxy.service import ProxyConfig, VNCProxy
from vncproxy.shacrypt import sha512Crypt
from vncproxy.users import UsersFile

USERS_TEXT = "synnefo:" + sha512Crypt("secret", "testsalt") + "\n"


def request(**kw: Any) -> ControlRequest:
    fields: dict[str, Any] = {
        "source_port": 0,
        "destination_address": "node1",
        "destination_port": 5901,
        "password": "onetime12",
        "auth_user": "synnefo",
        "auth_password": "secret",
        "type": "vnc",
    }
    fields.update(kw)
    return ControlRequest(**fields)


@implementer(IStreamClientEndpoint)
class PumpEndpoint:
    """
    Connects to a fresh server protocol through an iosim pump; can be told to refuse.
    """

    def __init__(self, makeServer: Callable[[], Protocol], clock: MemoryReactorClock, refuse: int = 0) -> None:
        self.makeServer = makeServer
        self.clock = clock
        self.refuse = refuse
        self.attempts = 0
        self.pumps: list[iosim.IOPump] = []
        self.servers: list[Any] = []
        self.clients: list[Any] = []

    def connect(self, factory: IProtocolFactory) -> Deferred[Any]:
        self.attempts += 1
        if self.attempts <= self.refuse:
            return fail(ConnectionRefusedError("refused"))
        server = self.makeServer()
        client = factory.buildProtocol(IPv4Address("TCP", "10.0.0.1", 5901))
        assert client is not None
        pump = iosim.connect(
            server, iosim.makeFakeServer(server), client, iosim.makeFakeClient(client), greet=False, clock=self.clock
        )
        self.pumps.append(pump)
        self.servers.append(server)
        self.clients.append(client)
        return succeed(client)


class ProxyHarness:
    def __init__(self, testCase: Any, makeServer: Callable[[], Protocol] = FakeVNCServer, **config: Any) -> None:
        self.reactor = MemoryReactorClock()
        path = testCase.mktemp()
        with open(path, "w") as f:
            f.write(USERS_TEXT)
        self.endpoint = PumpEndpoint(makeServer, self.reactor, refuse=config.pop("refuse", 0))
        self.challenges = 0
        kw: dict[str, Any] = {"portLow": 25000, "portHigh": 25999, "connectTimeout": 30.0, "serverTimeout": 60.0}
        kw.update(config)
        self.proxy = VNCProxy(
            self.reactor,
            UsersFile(path),
            ProxyConfig(**kw),
            tlsContext=config.get("tls"),
            endpointFor=lambda host, port: self.endpoint,
            randomBytes=lambda n: bytes(range(n)),
        )
        self.viewerPumps: list[iosim.IOPump] = []
        self.backendPumps: dict[int, list[iosim.IOPump]] = {}

    def ask(self, req: ControlRequest) -> dict[str, Any]:
        before = len(self.endpoint.pumps)
        d = self.proxy.handleRequest(req)
        results: list[Any] = []
        d.addBoth(results.append)
        self.pumpAll(self.endpoint.pumps[before:])
        assert results, "no reply"
        reply: dict[str, Any] = results[0]
        self.backendPumps[reply["source_port"]] = self.endpoint.pumps[before:]
        return reply

    def pumpAll(self, pumps: list[iosim.IOPump] | None = None) -> None:
        for _ in range(50):
            moved = False
            for pump in self.endpoint.pumps + self.viewerPumps if pumps is None else pumps:
                moved = pump.pump() or moved
            if not moved:
                return

    def listenerFor(self, port: int) -> Any:
        for listenPort, factory, _backlog, _interface in reversed(self.reactor.tcpServers):
            if listenPort == port:
                return factory
        raise AssertionError(f"nothing listens on {port}")

    def connectViewer(self, port: int, viewer: Protocol) -> iosim.IOPump:
        factory = self.listenerFor(port)
        server = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        pump = iosim.connect(
            server, iosim.makeFakeServer(server), viewer, iosim.makeFakeClient(viewer), greet=False, clock=self.reactor
        )
        self.viewerPumps.append(pump)
        self.pumpAll([pump, *self.backendPumps.get(port, [])])
        return pump


def viewer(password: str = "onetime12", **kw: Any) -> TestViewer:
    return TestViewer(password, **kw)
