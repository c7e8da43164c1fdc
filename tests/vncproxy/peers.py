"""
Test peers written independently of the code under test: a fake VNC server
and a test viewer, as Twisted protocols, both speaking RFB with plain
C{struct} (only the DES primitive, tested against vectors, is shared).
"""

from __future__ import annotations

import struct
from typing import Any

from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from vncproxy.des import challengeResponse

PIXEL_FORMAT = struct.pack(">BBBBHHHBBBxxx", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)


def serverInit(width: int = 64, height: int = 48, name: bytes = b"fake") -> bytes:
    return struct.pack(">HH", width, height) + PIXEL_FORMAT + struct.pack(">I", len(name)) + name


class FakeVNCServer(Protocol):
    """
    An RFB server: version C{version}, security None or (with C{password})
    VNC auth; ServerInit after ClientInit; records what the client sends after it.
    """

    transport: Any

    def __init__(
        self, version: bytes = b"RFB 003.008\n", password: str | None = None, challenge: bytes = b"C" * 16
    ) -> None:
        self.version = version
        self.password = password
        self.challenge = challenge
        self.buf = b""
        self.state = "version"
        self.received = b""
        self.lost: Failure | None = None
        self.connectionCount = 0

    def connectionMade(self) -> None:
        self.transport.write(self.version)

    def _take(self, n: int) -> bytes | None:
        if len(self.buf) < n:
            return None
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def dataReceived(self, data: bytes) -> None:
        if self.state == "init":
            self.received += data
            return
        self.buf += data
        while True:
            if self.state == "version":
                v = self._take(12)
                if v is None:
                    return
                self.minor = int(v[8:11])
                if self.minor == 3:
                    self.transport.write(struct.pack(">I", 2 if self.password else 1))
                    self.state = "response" if self.password else "clientinit"
                    if self.password:
                        self.transport.write(self.challenge)
                else:
                    self.transport.write(bytes([1, 2 if self.password else 1]))
                    self.state = "choice"
            elif self.state == "choice":
                c = self._take(1)
                if c is None:
                    return
                if self.password:
                    self.transport.write(self.challenge)
                    self.state = "response"
                else:
                    if self.minor == 8:
                        self.transport.write(struct.pack(">I", 0))
                    self.state = "clientinit"
            elif self.state == "response":
                r = self._take(16)
                if r is None:
                    return
                assert self.password is not None
                if r != challengeResponse(self.password, self.challenge):
                    msg = b"bad password"
                    self.transport.write(struct.pack(">II", 1, len(msg)) + msg)
                    self.transport.loseConnection()
                    self.state = "failed"
                    return
                self.transport.write(struct.pack(">I", 0))
                self.state = "clientinit"
            elif self.state == "clientinit":
                if self._take(1) is None:
                    return
                self.transport.write(serverInit())
                self.state = "init"
                self.received += self.buf
                self.buf = b""
                return
            else:
                return

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:  # noqa: B008
        self.lost = reason


class TestViewer(Protocol):
    """
    An RFB viewer: answers the version with C{version}, picks C{choose}
    (default 2), answers the challenge with C{password}, sends ClientInit
    and parses ServerInit.

    @ivar result: C{None} while running; C{"ok"} after ServerInit;
        C{"failed: <reason>"} after SecurityResult 1.
    """

    transport: Any

    def __init__(self, password: str, version: bytes = b"RFB 003.008\n", choose: int = 2) -> None:
        self.password = password
        self.version = version
        self.choose = choose
        self.buf = b""
        self.state = "version"
        self.result: str | None = None
        self.serverInit = b""
        self.received = b""
        self.lost: Failure | None = None

    def _take(self, n: int) -> bytes | None:
        if len(self.buf) < n:
            return None
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def dataReceived(self, data: bytes) -> None:
        if self.state == "relay":
            self.received += data
            return
        self.buf += data
        while True:
            if self.state == "version":
                if self._take(12) is None:
                    return
                self.transport.write(self.version)
                self.state = "type33" if self.version == b"RFB 003.003\n" else "types"
            elif self.state == "type33":
                raw = self._take(4)
                if raw is None:
                    return
                self.offered = [struct.unpack(">I", raw)[0]]
                self.state = "challenge"
            elif self.state == "types":
                if not self.buf:
                    return
                n = self.buf[0]
                raw = self._take(1 + n)
                if raw is None:
                    return
                self.offered = list(raw[1:])
                self.transport.write(bytes([self.choose]))
                self.state = "challenge" if self.choose == 2 else "result"
            elif self.state == "challenge":
                c = self._take(16)
                if c is None:
                    return
                self.transport.write(challengeResponse(self.password, c))
                self.state = "result"
            elif self.state == "result":
                raw = self._take(4)
                if raw is None:
                    return
                if struct.unpack(">I", raw)[0] != 0:
                    self.state = "reason" if self.version == b"RFB 003.008\n" else "done"
                    if self.state == "done":
                        self.result = "failed: "
                    continue
                self.transport.write(b"\x01")
                self.state = "serverinit"
            elif self.state == "reason":
                if len(self.buf) < 4:
                    return
                (length,) = struct.unpack(">I", self.buf[:4])
                raw = self._take(4 + length)
                if raw is None:
                    return
                self.result = "failed: " + raw[4:].decode()
                self.state = "done"
            elif self.state == "serverinit":
                if len(self.buf) < 24:
                    return
                (length,) = struct.unpack(">I", self.buf[20:24])
                raw = self._take(24 + length)
                if raw is None:
                    return
                self.serverInit = raw
                self.result = "ok"
                self.state = "relay"
                self.received += self.buf
                self.buf = b""
                return
            else:
                return

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:  # noqa: B008
        self.lost = reason
