"""
The AMQP frame codec used by our txAMQP protocol subclass.
"""

from __future__ import annotations

import decimal
import struct
from io import BytesIO
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase
from txamqp.connection import Body, Frame, Header, Method
from txamqp.content import Content

from synnefo_twisted.bus import DEFAULT_SPEC
from synnefo_twisted.bus._wire import (
    DeliverFrame,
    Delivery,
    WireCodec,
    ackFrame,
    packFrame,
    unpackFrame,
    unpackFrameFast,
)
from synnefo_twisted.bus.amqp import loadAMQPSpec


def roundTripTable(table: dict[str, Any]) -> Any:
    buf = BytesIO()
    WireCodec(buf).encode_table(table)
    return WireCodec(BytesIO(buf.getvalue())).decode_table()


FIELD_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=4),
    max_leaves=12,
)


class TableTests(SynchronousTestCase):
    """
    Field tables carry every value type RabbitMQ uses.
    """

    @given(st.dictionaries(st.text(max_size=30), FIELD_VALUES, max_size=6))
    def test_roundTrip(self, table: dict[str, Any]) -> None:
        """
        Any table of None, bool, 64-bit int, float, text, bytes, lists and
        tables decodes to what was encoded.
        """
        self.assertEqual(roundTripTable(table), table)

    def test_decimal(self) -> None:
        """
        Decimals keep their scale.
        """
        self.assertEqual(roundTripTable({"d": decimal.Decimal("-12.345")}), {"d": decimal.Decimal("-12.345")})

    def test_rabbitTypes(self) -> None:
        """
        The short, unsigned and timestamp types RabbitMQ may send decode.
        """
        raw = (
            b"\x01a" + b"b" + b"\xff"  # int8 -1
            b"\x01b" + b"B" + b"\xff"  # uint8 255
            b"\x01c" + b"s" + b"\xff\xfe"  # int16 -2
            b"\x01d" + b"u" + b"\xff\xfe"  # uint16
            b"\x01e" + b"i" + b"\xff\xff\xff\xff"  # uint32
            b"\x01f" + b"T" + b"\x00\x00\x00\x00\x00\x00\x00\x2a"  # timestamp
            b"\x01g" + b"f" + b"\x3f\xc0\x00\x00"  # float 1.5
        )
        data = len(raw).to_bytes(4, "big") + raw
        self.assertEqual(
            WireCodec(BytesIO(data)).decode_table(),
            {"a": -1, "b": 255, "c": -2, "d": 65534, "e": 2**32 - 1, "f": 42, "g": 1.5},
        )

    def test_unknownType(self) -> None:
        """
        An unknown field type is an error, not a desynchronised stream.
        """
        raw = b"\x01aZ"
        self.assertRaises(ValueError, WireCodec(BytesIO(len(raw).to_bytes(4, "big") + raw)).decode_table)

    def test_unencodable(self) -> None:
        """
        Values with no AMQP field type are refused when encoding.
        """
        self.assertRaises(TypeError, roundTripTable, {"o": object()})
        self.assertRaises(ValueError, roundTripTable, {"i": 2**64})

    def test_nonAsciiShortString(self) -> None:
        """
        Short strings are length-prefixed in bytes, not characters.
        """
        buf = BytesIO()
        WireCodec(buf).encode_shortstr("\u20ac")
        self.assertEqual(buf.getvalue(), b"\x03\xe2\x82\xac")


class FrameTests(SynchronousTestCase):
    """
    Frames pack and unpack with bodies kept as bytes.
    """

    def setUp(self) -> None:
        self.spec = loadAMQPSpec(DEFAULT_SPEC)

    @given(st.binary(max_size=2000) | st.text(max_size=500).map(lambda t: t.encode("utf-8")))
    def test_bodyFrame(self, body: bytes) -> None:
        """
        A body frame, including non-ASCII UTF-8 and invalid UTF-8, comes back
        as the same bytes.
        """
        frame = unpackFrame(self.spec, packFrame(self.spec, Frame(3, Body(body))))
        self.assertEqual((frame.channel, frame.payload.content), (3, body))

    def test_bodyMustBeBytes(self) -> None:
        """
        A str body is refused rather than encoded with a guessed length.
        """
        self.assertRaises(TypeError, packFrame, self.spec, Frame(1, Body("\u20ac")))

    def test_header(self) -> None:
        """
        Content headers keep their properties, including nested header tables.
        """
        basic = self.spec.classes.bypyname["basic"]
        props = {
            "delivery-mode": 2,
            "headers": {"x-death": [{"count": 2, "routing-keys": ["a.b"]}]},
            "message-id": "m\u00e9",
        }
        frame = unpackFrame(self.spec, packFrame(self.spec, Frame(1, Header(basic, 0, 123, **props))))
        self.assertEqual((frame.payload.size, frame.payload.properties), (123, props))

    def test_unknownProperty(self) -> None:
        """
        Misspelt properties (delivery_mode) are an error, not silently dropped.
        """
        basic = self.spec.classes.bypyname["basic"]
        self.assertRaises(ValueError, packFrame, self.spec, Frame(1, Header(basic, 0, 1, delivery_mode=2)))

    def test_method(self) -> None:
        """
        Method frames with bits and tables round-trip.
        """
        declare = self.spec.classes.bypyname["queue"].methods.bypyname["declare"]
        args = (
            0,
            "q\u00e9",
            False,
            True,
            False,
            False,
            False,
            {"x-dead-letter-exchange": "ganeti-dl", "x-expires": 600000},
        )
        frame = unpackFrame(self.spec, packFrame(self.spec, Frame(2, Method(declare, *args))))
        self.assertEqual((frame.payload.method, frame.payload.args), (declare, args))

    def test_frameEnd(self) -> None:
        """
        A frame without the frame-end octet is rejected.
        """
        data = packFrame(self.spec, Frame(1, Body(b"x")))
        self.assertRaises(ValueError, unpackFrame, self.spec, data[:-1] + b"\x00")

    def test_contentObject(self) -> None:
        """
        txAMQP's Content with bytes passes through unchanged (sanity check of the helpers).
        """
        self.assertEqual(Content(b"\xff").body, b"\xff")


class FastPathTests(SynchronousTestCase):
    """
    The consuming fast path decodes what the generic codec decodes.
    """

    def setUp(self) -> None:
        self.spec = loadAMQPSpec(DEFAULT_SPEC)
        self.basic = self.spec.classes.bypyname["basic"]

    def deliverFrame(self, tag: str, deliveryTag: int, redelivered: bool, exchange: str, key: str) -> bytes:
        deliver = self.basic.methods.bypyname["deliver"]
        return packFrame(self.spec, Frame(5, Method(deliver, tag, deliveryTag, redelivered, exchange, key)))

    @given(
        st.text(max_size=40),
        st.integers(min_value=0, max_value=2**64 - 1),
        st.booleans(),
        st.text(max_size=40),
        st.text(max_size=80),
    )
    def test_deliver(self, tag: str, deliveryTag: int, redelivered: bool, exchange: str, key: str) -> None:
        """
        A basic.deliver decodes to the same fields as through the generic codec.
        """
        data = self.deliverFrame(tag, deliveryTag, redelivered, exchange, key)
        frame = unpackFrameFast(self.spec, data)
        assert isinstance(frame, DeliverFrame)
        generic = unpackFrame(self.spec, data).payload.args
        self.assertEqual(
            (
                frame.channel,
                frame.consumer_tag,
                frame.delivery_tag,
                frame.redelivered,
                frame.exchange,
                frame.routing_key,
            ),
            (5, *generic),
        )
        self.assertEqual((tag, deliveryTag, redelivered, exchange, key), generic)

    def test_deliverWrongSize(self) -> None:
        """
        A basic.deliver with trailing bytes inside the frame is rejected.
        """
        data = self.deliverFrame("t", 1, False, "e", "k")
        (size,) = struct.unpack("!I", data[3:7])
        bad = data[:3] + struct.pack("!I", size + 1) + data[7:-1] + b"\x00\xce"
        self.assertRaises(ValueError, unpackFrameFast, self.spec, bad)

    @given(st.binary(max_size=2000))
    def test_body(self, body: bytes) -> None:
        """
        Body frames come back as the same bytes.
        """
        frame = unpackFrameFast(self.spec, packFrame(self.spec, Frame(3, Body(body))))
        assert isinstance(frame, Frame)
        self.assertEqual((frame.channel, frame.payload.content), (3, body))

    def test_frameEnd(self) -> None:
        """
        A body or deliver frame without the frame-end octet is rejected.
        """
        for data in (packFrame(self.spec, Frame(1, Body(b"x"))), self.deliverFrame("t", 1, False, "e", "k")):
            self.assertRaises(ValueError, unpackFrameFast, self.spec, data[:-1] + b"\x00")

    def test_otherFrames(self) -> None:
        """
        Other frames go through the generic codec.
        """
        header = Frame(1, Header(self.basic, 0, 3, **{"delivery-mode": 2}))
        frame = unpackFrameFast(self.spec, packFrame(self.spec, header))
        assert isinstance(frame, Frame)
        self.assertEqual((frame.payload.size, frame.payload.properties), (3, {"delivery-mode": 2}))

    def test_ackFrame(self) -> None:
        """
        The hand-packed basic.ack is the generic codec's.
        """
        ack = self.basic.methods.bypyname["ack"]
        for tag, multiple in ((1, False), (2**64 - 1, True)):
            self.assertEqual(ackFrame(7, tag, multiple), packFrame(self.spec, Frame(7, Method(ack, tag, multiple))))

    def delivery(self) -> Delivery:
        data = self.deliverFrame("t", 9, True, "ganeti", "k")
        frame = unpackFrameFast(self.spec, data)
        assert isinstance(frame, DeliverFrame)
        return Delivery(frame)

    def test_assemble(self) -> None:
        """
        A delivery is complete once its body frames add up to the header's size.
        """
        d = self.delivery()
        self.assertFalse(d.feed(Header(self.basic, 0, 5, headers={"h": 1})))
        self.assertFalse(d.feed(Body(b"ab")))
        self.assertTrue(d.feed(Body(b"cde")))
        assert d.content is not None
        self.assertEqual((d.content.body, d.content.properties), (b"abcde", {"headers": {"h": 1}}))
        self.assertEqual((d.consumer_tag, d.delivery_tag, d.redelivered), ("t", 9, True))

    def test_assembleEmpty(self) -> None:
        """
        A message with an empty body is complete at its header.
        """
        d = self.delivery()
        self.assertTrue(d.feed(Header(self.basic, 0, 0)))
        assert d.content is not None
        self.assertEqual(d.content.body, b"")

    def test_outOfSequence(self) -> None:
        """
        A body before the header, a header with children, or too long a body is an error.
        """
        self.assertRaises(ValueError, self.delivery().feed, Body(b"x"))
        self.assertRaises(ValueError, self.delivery().feed, Header(self.basic, 1, 0))
        d = self.delivery()
        d.feed(Header(self.basic, 0, 1))
        self.assertRaises(ValueError, d.feed, Body(b"xy"))
        d = self.delivery()
        d.feed(Header(self.basic, 0, 1))
        self.assertRaises(ValueError, d.feed, Header(self.basic, 0, 1))
