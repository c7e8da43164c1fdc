"""
Tests for L{vncproxy.control}: request decoding and validation, and the
control protocol over a StringTransport with a Clock.
"""

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from vncproxy.control import (
    _INCOMPLETE,
    MAX_REQUEST,
    ControlProtocol,
    ControlRequest,
    RequestError,
    decodeRequest,
    okReply,
    validateRequest,
)

GOOD = {
    "source_port": 0,
    "destination_address": "node1.example.org",
    "destination_port": 11000,
    "password": "onetime123",
    "auth_user": "synnefo",
    "auth_password": "secret",
    "type": "vnc",
}


class DecodeTests(SynchronousTestCase):
    def test_complete(self) -> None:
        """
        A whole object decodes, with or without a trailing newline.
        """
        raw = json.dumps(GOOD).encode()
        self.assertEqual(decodeRequest(raw), GOOD)
        self.assertEqual(decodeRequest(raw + b"\r\n"), GOOD)

    def test_partial(self) -> None:
        """
        Every proper prefix of a request is incomplete, not an error.
        """
        raw = json.dumps(GOOD).encode()
        for i in range(len(raw)):
            self.assertIs(decodeRequest(raw[:i]), _INCOMPLETE, raw[:i])

    def test_partialUTF8(self) -> None:
        """
        A prefix cut inside a multi-byte character is incomplete.
        """
        raw = json.dumps({"a": "é"}, ensure_ascii=False).encode()
        self.assertIs(decodeRequest(raw[: raw.index(b"\xc3") + 1]), _INCOMPLETE)

    def test_garbage(self) -> None:
        """
        Bytes that cannot start a JSON object are malformed at once.
        """
        for raw in (b"hello", b"[1, 2]", b'{"a": 1} trailing', b'{"a": 1,, }', b"\xff\xfe"):
            self.assertRaises(RequestError, decodeRequest, raw)

    def test_truncatedWhenFinal(self) -> None:
        """
        An incomplete object is malformed once no more bytes will come.
        """
        e = self.assertRaises(RequestError, decodeRequest, b'{"source_port": 0', final=True)
        self.assertIn("Malformed request", str(e))
        self.assertRaises(RequestError, decodeRequest, b"", final=True)


class ValidateTests(SynchronousTestCase):
    def test_good(self) -> None:
        """
        A full request becomes a ControlRequest; type defaults to vnc.
        """
        body = dict(GOOD)
        del body["type"]
        request = validateRequest(body)
        self.assertEqual(request.type, "vnc")
        self.assertEqual(request.destination_port, 11000)
        self.assertNotIn("onetime", repr(request))

    def test_missingKey(self) -> None:
        """
        Each required key, when missing, is named in the reason.
        """
        for key in ("source_port", "destination_address", "destination_port", "password", "auth_user", "auth_password"):
            body = {k: v for k, v in GOOD.items() if k != key}
            e = self.assertRaises(RequestError, validateRequest, body)
            self.assertEqual(str(e), f"Malformed request: missing key {key!r}")

    def test_badType(self) -> None:
        """
        An unknown console type gives the original's "<type> not supported".
        """
        e = self.assertRaises(RequestError, validateRequest, dict(GOOD, type="spice"))
        self.assertEqual(str(e), "spice not supported")

    def test_badValues(self) -> None:
        """
        Wrong types and ranges are refused with a reason.
        """
        for change in (
            {"source_port": -1},
            {"source_port": True},
            {"destination_port": 0},
            {"destination_port": "5900"},
            {"destination_address": ""},
            {"password": ""},
            {"password": 12345},
            {"password": "пароль"},
            {"destination_password": 5},
        ):
            self.assertRaises(RequestError, validateRequest, dict(GOOD, **change))
        self.assertRaises(RequestError, validateRequest, [GOOD])


class Recorder:
    def __init__(self, reply: "dict[str, Any] | Deferred[dict[str, Any]] | None" = None) -> None:
        self.requests: list[ControlRequest] = []
        self.reply = reply

    def __call__(self, request: ControlRequest) -> "Deferred[dict[str, Any]]":
        self.requests.append(request)
        if isinstance(self.reply, Deferred):
            return self.reply
        return succeed(self.reply or okReply(25000, "127.0.0.1"))


class ProtocolTests(SynchronousTestCase):
    def connect(self, handler: Recorder) -> tuple[ControlProtocol, StringTransport, Clock]:
        clock = Clock()
        proto = ControlProtocol(handler, clock, timeout=10)
        transport = StringTransport()
        proto.makeConnection(transport)
        return proto, transport, clock

    def reply(self, transport: StringTransport) -> Any:
        raw = transport.value()
        self.assertTrue(raw.endswith(b"\n"))
        return json.loads(raw)

    def test_partialReads(self) -> None:
        """
        A request split over many reads is served once complete; the connection closes after the reply.
        """
        handler = Recorder()
        proto, transport, clock = self.connect(handler)
        raw = json.dumps(GOOD).encode()
        for i in range(0, len(raw), 7):
            proto.dataReceived(raw[i : i + 7])
        self.assertEqual(len(handler.requests), 1)
        self.assertEqual(self.reply(transport), {"source_port": 25000, "status": "OK", "proxy_address": "127.0.0.1"})
        self.assertTrue(transport.disconnecting)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_malformed(self) -> None:
        """
        A malformed request gets FAILED with a reason, and the handler is not called.
        """
        handler = Recorder()
        proto, transport, clock = self.connect(handler)
        proto.dataReceived(b"not json\n")
        reply = self.reply(transport)
        self.assertEqual(reply["status"], "FAILED")
        self.assertEqual(reply["source_port"], 0)
        self.assertIsNone(reply["proxy_address"])
        self.assertIn("Malformed request", reply["reason"])
        self.assertEqual(handler.requests, [])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_tooLarge(self) -> None:
        """
        A request larger than the limit is refused without waiting for its end.
        """
        proto, transport, clock = self.connect(Recorder())
        proto.dataReceived(b'{"x": "' + b"a" * MAX_REQUEST)
        self.assertIn("larger than", self.reply(transport)["reason"])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_timeout(self) -> None:
        """
        A request that never completes is answered FAILED after the read timeout.
        """
        proto, transport, clock = self.connect(Recorder())
        proto.dataReceived(b'{"source_port": 0')
        clock.advance(9)
        self.assertEqual(transport.value(), b"")
        clock.advance(1)
        self.assertIn("no complete request within 10 s", self.reply(transport)["reason"])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_halfClose(self) -> None:
        """
        A truncated request followed by the client's half-close is answered at once.
        """
        proto, transport, clock = self.connect(Recorder())
        self.assertTrue(verifyObject(IHalfCloseableProtocol, proto))
        proto.dataReceived(b'{"source_port": 0')
        proto.readConnectionLost()
        self.assertEqual(self.reply(transport)["status"], "FAILED")
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_asyncHandler(self) -> None:
        """
        The reply is written when the handler's Deferred fires; data after the request is ignored.
        """
        pending: Deferred[dict[str, Any]] = Deferred()
        handler = Recorder(pending)
        proto, transport, clock = self.connect(handler)
        proto.dataReceived(json.dumps(GOOD).encode() + b"\n")
        proto.dataReceived(b"more junk")
        self.assertEqual(transport.value(), b"")
        self.assertEqual(clock.getDelayedCalls(), [])
        pending.callback(okReply(25001, "proxy"))
        self.assertEqual(self.reply(transport)["source_port"], 25001)

    def test_handlerError(self) -> None:
        """
        A handler that fails gives FAILED with a reason and a logged failure.
        """

        def broken(request: ControlRequest) -> "Deferred[dict[str, Any]]":
            raise RuntimeError("boom")

        clock = Clock()
        proto = ControlProtocol(broken, clock)
        transport = StringTransport()
        proto.makeConnection(transport)
        proto.dataReceived(json.dumps(GOOD).encode())
        self.assertEqual(self.reply(transport)["reason"], "internal error: boom")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_clientGoneBeforeReply(self) -> None:
        """
        A client that disconnects before the reply is ready gets nothing written and no error.
        """
        pending: Deferred[dict[str, Any]] = Deferred()
        proto, transport, clock = self.connect(Recorder(pending))
        proto.dataReceived(json.dumps(GOOD).encode())
        proto.connectionLost()
        pending.callback(okReply(1, "x"))
        self.assertEqual(transport.value(), b"")
        self.assertEqual(clock.getDelayedCalls(), [])

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.binary(min_size=1, max_size=64), max_size=8))
    def test_garbageAlwaysAnswered(self, chunks: list[bytes]) -> None:
        """
        Whatever arrives, the protocol never raises, and after the timeout there is exactly one reply.
        """
        proto, transport, clock = self.connect(Recorder())
        for chunk in chunks:
            proto.dataReceived(chunk)
        clock.advance(10)
        lines = transport.value().splitlines()
        self.assertEqual(len(lines), 1)
        self.assertIn(json.loads(lines[0])["status"], ("OK", "FAILED"))
        self.assertEqual(clock.getDelayedCalls(), [])
