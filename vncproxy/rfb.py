# -*- test-case-name: tests.vncproxy.test_rfb -*-
"""
Sans-I/O RFB handshakes (RFC 6143 sections 7.1 and 7.2).

L{BackendHandshake}: the proxy as an RFB client of the VM's VNC server.
Versions 3.3, 3.7 and 3.8; security None, or VNC authentication when a
password for the server is known.

L{ViewerHandshake}: the proxy as an RFB server to the viewer. It offers
B{only} VNC authentication (type 2): a viewer that picks anything else is
refused (the CVE-2022-36436 class of bug is the acceptance of None). The
password is one-time: one response is checked and the outcome is final.

Both are driven by C{receive(data) -> bytes to send}; when C{done} is set
the handshake succeeded and C{leftover} holds the bytes that followed it;
when C{failure} is set the caller sends the returned bytes and closes.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable

from vncproxy.des import CHALLENGE_LENGTH, challengeResponse, checkResponse

SECURITY_NONE = 1
SECURITY_VNC = 2

AUTH_FAILED_REASON = "Authentication failed"
TYPE_REFUSED_REASON = "Security type not offered: only VNC authentication is accepted"

_VERSION = re.compile(rb"^RFB (\d{3})\.(\d{3})\n$")
VERSION_LENGTH = 12
# A handshake message is at most a few hundred bytes (a reason string can be
# longer, but we cap it); anything larger before the end is garbage.
_MAX_REASON = 4096
_MAX_PENDING = 64 * 1024


def parseVersion(data: bytes) -> tuple[int, int] | None:
    """
    C{(major, minor)} of a 12-byte ProtocolVersion message, or None.
    """
    m = _VERSION.match(data)
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2))


def clientMinorFor(major: int, minor: int) -> int:
    """
    The RFB 3.x minor version a client answers to a server announcing
    C{major.minor}: 8 for 3.8 and later (and 4.x), 7 for 3.7, else 3.
    """
    if major > 3 or (major == 3 and minor >= 8):
        return 8
    if major == 3 and minor == 7:
        return 7
    return 3


def versionMessage(minor: int) -> bytes:
    return b"RFB 003.%03d\n" % minor


class _Buffer:
    def __init__(self) -> None:
        self.data = bytearray()

    def take(self, n: int) -> bytes | None:
        if len(self.data) < n:
            return None
        out = bytes(self.data[:n])
        del self.data[:n]
        return out

    def peekU32(self) -> int | None:
        if len(self.data) < 4:
            return None
        return int(struct.unpack_from(">I", self.data)[0])


class HandshakeFailed(Exception):
    pass


class BackendHandshake:
    """
    The proxy's handshake with the VNC server, up to the end of the
    security phase (ClientInit is the viewer's to send).

    @ivar minor: the RFB 3.x minor version agreed (after the first message).
    @ivar securityType: the type used (1 or 2).
    """

    def __init__(self, password: str | None = None) -> None:
        self.password = password or None
        self._buf = _Buffer()
        self._state = "version"
        self.minor = 0
        self.securityType = 0
        self.done = False
        self.failure: str | None = None
        self.leftover = b""

    def receive(self, data: bytes) -> bytes:
        if self.done or self.failure is not None:
            return b""
        self._buf.data += data
        out = bytearray()
        try:
            while not self.done:
                step = getattr(self, "_" + self._state)()
                if step is None:
                    break
                out += step
            if len(self._buf.data) > _MAX_PENDING and not self.done:
                raise HandshakeFailed("VNC server sent too much data during the handshake")
        except HandshakeFailed as e:
            self.failure = str(e)
            return bytes(out)
        if self.done:
            self.leftover = bytes(self._buf.data)
            self._buf.data.clear()
        return bytes(out)

    def _version(self) -> bytes | None:
        raw = self._buf.take(VERSION_LENGTH)
        if raw is None:
            return None
        version = parseVersion(raw)
        if version is None:
            raise HandshakeFailed(f"not an RFB server (it sent {raw[:12]!r})")
        self.minor = clientMinorFor(*version)
        self._state = "types33" if self.minor == 3 else "types"
        return versionMessage(self.minor)

    def _reasonThen(self, prefix: str) -> bytes | None:
        length = self._buf.peekU32()
        if length is None:
            return None
        length = min(length, _MAX_REASON)
        if len(self._buf.data) < 4 + length:
            return None
        self._buf.take(4)
        reason = (self._buf.take(length) or b"").decode("utf-8", "replace")
        raise HandshakeFailed(f"{prefix}: {reason}" if reason else prefix)

    def _reasonRefused(self) -> bytes | None:
        return self._reasonThen("VNC server refused the connection")

    def _reasonAuth(self) -> bytes | None:
        return self._reasonThen("VNC server authentication failed")

    def _types33(self) -> bytes | None:
        raw = self._buf.take(4)
        if raw is None:
            return None
        (sectype,) = struct.unpack(">I", raw)
        if sectype == 0:
            self._state = "reasonRefused"
            return b""
        return self._choose(sectype)

    def _types(self) -> bytes | None:
        if not self._buf.data:
            return None
        count = self._buf.data[0]
        if count == 0:
            self._buf.take(1)
            self._state = "reasonRefused"
            return b""
        raw = self._buf.take(1 + count)
        if raw is None:
            return None
        offered = set(raw[1:])
        if SECURITY_NONE in offered:
            choice = SECURITY_NONE
        elif SECURITY_VNC in offered:
            choice = SECURITY_VNC
        else:
            raise HandshakeFailed(
                f"VNC server offers no supported security type (offered {sorted(offered)}; supported: 1 None, 2 VNC)"
            )
        return bytes([choice]) + self._choose(choice)

    def _choose(self, sectype: int) -> bytes:
        if sectype == SECURITY_NONE:
            self.securityType = SECURITY_NONE
            if self.minor == 8:
                self._state = "result"
            else:
                self.done = True
            return b""
        if sectype == SECURITY_VNC:
            if self.password is None:
                raise HandshakeFailed(
                    "Error, server demands authentication (give destination_password for a VNC-auth server)"
                )
            self.securityType = SECURITY_VNC
            self._state = "challenge"
            return b""
        raise HandshakeFailed(f"VNC server demands unsupported security type {sectype}")

    def _challenge(self) -> bytes | None:
        challenge = self._buf.take(CHALLENGE_LENGTH)
        if challenge is None:
            return None
        assert self.password is not None
        self._state = "result"
        return challengeResponse(self.password, challenge)

    def _result(self) -> bytes | None:
        raw = self._buf.take(4)
        if raw is None:
            return None
        (result,) = struct.unpack(">I", raw)
        if result == 0:
            self.done = True
            return b""
        if self.minor == 8:
            self._state = "reasonAuth"
            return b""
        raise HandshakeFailed("VNC server authentication failed")


class ViewerHandshake:
    """
    The proxy's handshake with a viewer: version, VNC authentication with
    the one-time password, SecurityResult.

    Call L{start} first for the server's ProtocolVersion.

    @ivar minor: the viewer's RFB 3.x minor version (3, 7 or 8).
    """

    def __init__(self, password: str, randomBytes: Callable[[int], bytes]) -> None:
        self._password = password
        self._random = randomBytes
        self._buf = _Buffer()
        self._state = "version"
        self._challenge = b""
        self.minor = 0
        self.done = False
        self.failure: str | None = None
        self.leftover = b""

    def start(self) -> bytes:
        return versionMessage(8)

    def receive(self, data: bytes) -> bytes:
        if self.done or self.failure is not None:
            return b""
        self._buf.data += data
        out = bytearray()
        while not self.done and self.failure is None:
            step = getattr(self, "_" + self._state)()
            if step is None:
                break
            out += step
        if self.done:
            self.leftover = bytes(self._buf.data)
            self._buf.data.clear()
        elif self.failure is None and len(self._buf.data) > _MAX_PENDING:
            self.failure = "viewer sent too much data during the handshake"
        return bytes(out)

    def _fail(self, reason: str, message: bytes = b"") -> bytes:
        self.failure = reason
        return message

    def _securityFailure(self, reason: str) -> bytes:
        # SecurityResult "failed"; RFB 3.8 adds the reason string.
        out = struct.pack(">I", 1)
        if self.minor == 8:
            text = reason.encode("utf-8")
            out += struct.pack(">I", len(text)) + text
        return out

    def _version(self) -> bytes | None:
        raw = self._buf.take(VERSION_LENGTH)
        if raw is None:
            return None
        version = parseVersion(raw)
        if version is None or version[0] != 3:
            return self._fail(f"viewer sent an invalid protocol version {raw!r}")
        # RFC 6143 7.1.1: treat anything but 3.7 and 3.8 as 3.3 (3.889 and
        # other later 3.x clients speak 3.8).
        _major, minor = version
        self.minor = 8 if minor >= 8 else (7 if minor == 7 else 3)
        if self.minor == 3:
            return struct.pack(">I", SECURITY_VNC) + self._sendChallenge()
        self._state = "choice"
        return bytes([1, SECURITY_VNC])

    def _choice(self) -> bytes | None:
        raw = self._buf.take(1)
        if raw is None:
            return None
        if raw[0] != SECURITY_VNC:
            return self._fail(
                f"viewer chose security type {raw[0]}; only 2 (VNC authentication) is offered",
                self._securityFailure(TYPE_REFUSED_REASON),
            )
        return self._sendChallenge()

    def _sendChallenge(self) -> bytes:
        self._challenge = self._random(CHALLENGE_LENGTH)
        self._state = "response"
        return self._challenge

    def _response(self) -> bytes | None:
        raw = self._buf.take(CHALLENGE_LENGTH)
        if raw is None:
            return None
        if not checkResponse(self._password, self._challenge, raw):
            return self._fail("viewer gave a wrong password", self._securityFailure(AUTH_FAILED_REASON))
        self.done = True
        return struct.pack(">I", 0)
