"""
Tests for L{vncproxy.rfb}: the handshakes with the VNC server and with the viewer.
"""

import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from vncproxy.des import challengeResponse
from vncproxy.rfb import AUTH_FAILED_REASON, BackendHandshake, ViewerHandshake, clientMinorFor, parseVersion

CHALLENGE = bytes(range(16))


def u32(n: int) -> bytes:
    return struct.pack(">I", n)


class VersionTests(SynchronousTestCase):
    def test_parse(self) -> None:
        """
        A ProtocolVersion message parses to (major, minor); anything else to None.
        """
        self.assertEqual(parseVersion(b"RFB 003.008\n"), (3, 8))
        self.assertIsNone(parseVersion(b"RFB 3.8\n    "))
        self.assertIsNone(parseVersion(b"GET / HTTP/1"))

    def test_clientMinor(self) -> None:
        """
        A client answers 3.8 to 3.8 and later (and 4.x), 3.7 to 3.7, and 3.3 otherwise.
        """
        self.assertEqual([clientMinorFor(3, m) for m in (3, 5, 7, 8, 889)], [3, 3, 7, 8, 8])
        self.assertEqual(clientMinorFor(4, 1), 8)


class BackendHandshakeTests(SynchronousTestCase):
    def test_none38(self) -> None:
        """
        RFB 3.8 with security None: answer the version, choose 1, read SecurityResult 0.
        """
        hs = BackendHandshake()
        self.assertEqual(hs.receive(b"RFB 003.008\n"), b"RFB 003.008\n")
        self.assertEqual(hs.receive(b"\x02\x02\x01"), b"\x01")
        self.assertFalse(hs.done)
        hs.receive(u32(0) + b"extra")
        self.assertTrue(hs.done)
        self.assertEqual(hs.leftover, b"extra")
        self.assertEqual((hs.minor, hs.securityType), (8, 1))

    def test_none37(self) -> None:
        """
        RFB 3.7 with None has no SecurityResult: done right after the choice.
        """
        hs = BackendHandshake()
        self.assertEqual(hs.receive(b"RFB 003.007\n\x01\x01"), b"RFB 003.007\n\x01")
        self.assertTrue(hs.done)

    def test_none33(self) -> None:
        """
        RFB 3.3: the server decides the type (u32 1), no choice and no result.
        """
        hs = BackendHandshake()
        self.assertEqual(hs.receive(b"RFB 003.003\n"), b"RFB 003.003\n")
        hs.receive(u32(1))
        self.assertTrue(hs.done)

    def test_byteByByte(self) -> None:
        """
        The handshake works whatever the split of the bytes.
        """
        hs = BackendHandshake()
        out = b"".join(hs.receive(bytes([b])) for b in b"RFB 003.008\n\x01\x01" + u32(0))
        self.assertEqual(out, b"RFB 003.008\n\x01")
        self.assertTrue(hs.done)

    def test_vncAuth(self) -> None:
        """
        With destination_password, VNC authentication is answered with the DES response.
        """
        hs = BackendHandshake("secret88")
        hs.receive(b"RFB 003.008\n")
        self.assertEqual(hs.receive(b"\x01\x02"), b"\x02")
        self.assertEqual(hs.receive(CHALLENGE), challengeResponse("secret88", CHALLENGE))
        hs.receive(u32(0))
        self.assertTrue(hs.done)
        self.assertEqual(hs.securityType, 2)

    def test_vncAuth33(self) -> None:
        """
        An RFB 3.3 server demanding VNC authentication is answered too.
        """
        hs = BackendHandshake("pw")
        hs.receive(b"RFB 003.003\n")
        self.assertEqual(hs.receive(u32(2) + CHALLENGE), challengeResponse("pw", CHALLENGE))
        hs.receive(u32(0))
        self.assertTrue(hs.done)

    def test_demandsAuthentication(self) -> None:
        """
        Without a password, a server that only offers VNC auth is refused with the original's message.
        """
        hs = BackendHandshake()
        hs.receive(b"RFB 003.008\n\x01\x02")
        self.assertIn("Error, server demands authentication", hs.failure or "")

    def test_wrongPassword38(self) -> None:
        """
        A failed SecurityResult from a 3.8 server carries its reason.
        """
        hs = BackendHandshake("bad")
        hs.receive(b"RFB 003.008\n\x01\x02" + CHALLENGE + u32(1) + u32(12) + b"bad password")
        self.assertEqual(hs.failure, "VNC server authentication failed: bad password")

    def test_refused(self) -> None:
        """
        A server that offers no types gives its reason string.
        """
        hs = BackendHandshake()
        hs.receive(b"RFB 003.008\n\x00" + u32(8) + b"too many")
        self.assertEqual(hs.failure, "VNC server refused the connection: too many")

    def test_unsupportedTypes(self) -> None:
        """
        A server offering only types we do not speak (e.g. 18 TLS, 19 VeNCrypt) is refused.
        """
        hs = BackendHandshake("pw")
        hs.receive(b"RFB 003.008\n\x02\x12\x13")
        self.assertIn("no supported security type", hs.failure or "")

    def test_notRFB(self) -> None:
        """
        A server that does not speak RFB is refused.
        """
        hs = BackendHandshake()
        hs.receive(b"SSH-2.0-Open")
        self.assertIn("not an RFB server", hs.failure or "")

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=200), st.booleans())
    def test_garbageNeverCrashes(self, data: bytes, withPassword: bool) -> None:
        """
        Arbitrary server bytes end in done, failure or waiting, never an exception.
        """
        hs = BackendHandshake("pw" if withPassword else None)
        hs.receive(data)
        self.assertFalse(hs.done and hs.failure is not None)


class ViewerHandshakeTests(SynchronousTestCase):
    def make(self, password: str = "secret88") -> ViewerHandshake:
        return ViewerHandshake(password, lambda n: CHALLENGE[:n])

    def test_success38(self) -> None:
        """
        RFB 3.8: only type 2 is offered; the right response gets SecurityResult 0.
        """
        hs = self.make()
        self.assertEqual(hs.start(), b"RFB 003.008\n")
        self.assertEqual(hs.receive(b"RFB 003.008\n"), b"\x01\x02")
        self.assertEqual(hs.receive(b"\x02"), CHALLENGE)
        self.assertEqual(hs.receive(challengeResponse("secret88", CHALLENGE) + b"\x01"), u32(0))
        self.assertTrue(hs.done)
        self.assertEqual(hs.leftover, b"\x01")

    def test_success33(self) -> None:
        """
        An RFB 3.3 viewer is told type 2 (u32) and sent the challenge at once.
        """
        hs = self.make()
        self.assertEqual(hs.receive(b"RFB 003.003\n"), u32(2) + CHALLENGE)
        self.assertEqual(hs.receive(challengeResponse("secret88", CHALLENGE)), u32(0))
        self.assertTrue(hs.done)

    def test_noneRefused(self) -> None:
        """
        A viewer choosing None (1) is refused with SecurityResult 1 and the 3.8 reason (CVE-2022-36436).
        """
        hs = self.make()
        hs.receive(b"RFB 003.008\n")
        out = hs.receive(b"\x01")
        self.assertEqual(out[:4], u32(1))
        (length,) = struct.unpack(">I", out[4:8])
        self.assertIn(b"only VNC authentication", out[8 : 8 + length])
        self.assertIsNotNone(hs.failure)
        self.assertFalse(hs.done)

    def test_wrongPassword38(self) -> None:
        """
        A wrong response gets SecurityResult 1 with the reason string in RFB 3.8.
        """
        hs = self.make()
        hs.receive(b"RFB 003.008\n\x02")
        out = hs.receive(challengeResponse("wrong", CHALLENGE))
        self.assertEqual(out, u32(1) + u32(len(AUTH_FAILED_REASON)) + AUTH_FAILED_REASON.encode())
        self.assertEqual(hs.failure, "viewer gave a wrong password")

    def test_wrongPassword37(self) -> None:
        """
        RFB 3.7 has no reason string after a failed SecurityResult.
        """
        hs = self.make()
        hs.receive(b"RFB 003.007\n\x02")
        self.assertEqual(hs.receive(bytes(16)), u32(1))
        self.assertIsNotNone(hs.failure)

    def test_oneAttempt(self) -> None:
        """
        After a failure, further bytes (a second try) are ignored.
        """
        hs = self.make()
        hs.receive(b"RFB 003.008\n\x02" + bytes(16))
        self.assertEqual(hs.receive(challengeResponse("secret88", CHALLENGE)), b"")
        self.assertFalse(hs.done)

    def test_eightCharacters(self) -> None:
        """
        Only the first 8 characters of the one-time password matter.
        """
        hs = self.make("abcdefgh12")
        hs.receive(b"RFB 003.008\n\x02")
        hs.receive(challengeResponse("abcdefgh", CHALLENGE))
        self.assertTrue(hs.done)

    def test_laterMinorIsThreeEight(self) -> None:
        """
        A 3.889 (Apple) viewer is handled as 3.8, and an odd minor (3.5) as 3.3.
        """
        hs = self.make()
        self.assertEqual(hs.receive(b"RFB 003.889\n"), b"\x01\x02")
        hs = self.make()
        self.assertEqual(hs.receive(b"RFB 003.005\n"), u32(2) + CHALLENGE)

    def test_garbageVersion(self) -> None:
        """
        A viewer that does not send an RFB version fails with nothing sent back.
        """
        hs = self.make()
        self.assertEqual(hs.receive(b"GET / HTTP/1.1\r\n"), b"")
        self.assertIn("invalid protocol version", hs.failure or "")

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=200))
    def test_garbageNeverAuthenticates(self, data: bytes) -> None:
        """
        Random viewer bytes never raise and never authenticate.
        """
        hs = self.make()
        hs.receive(data)
        self.assertFalse(hs.done)
