# -*- test-case-name: tests.bus.test_wire -*-
"""
AMQP 0-9-1 wire fixes for txAMQP 0.8.2, applied only to our own protocol
subclass (L{synnefo_twisted.bus.amqp}); txAMQP's classes are not patched.

txAMQP decodes every body frame to C{str} when it happens to be valid
UTF-8 (and then counts characters against the header's byte size, which
desynchronises the frame stream on non-ASCII bodies); it encodes and
decodes field tables with only four value types (RabbitMQ's C{x-death}
header uses arrays, timestamps and 64-bit integers, which make txAMQP drop
the connection); and it writes the length of a non-ASCII short string in
characters. Here frames are packed and unpacked with L{WireCodec}: bodies
stay bytes and tables use every field type of the RabbitMQ 0-9-1 errata
(C{t b B s u I i l f d D S A T F V x}).
"""

from __future__ import annotations

import datetime
import decimal
import struct
from collections.abc import Mapping, Sequence
from io import BytesIO
from typing import Any

from txamqp.codec import Codec
from txamqp.connection import Body, Frame, Header, Method
from txamqp.content import Content
from txamqp.spec import pythonize

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_FRAME_END = b"\xce"  # AMQP 0-9-1 frame-end octet


class WireCodec(Codec):
    """
    txAMQP's codec with byte-exact strings and complete field tables.
    """

    def unpackAll(self, fmt: str) -> tuple[Any, ...]:
        """
        Like C{unpack}, but always a tuple.
        """
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))

    def enc_str(self, fmt: str, s: str | bytes) -> None:
        data = s if isinstance(s, bytes) else s.encode("utf-8")
        self.pack(fmt, len(data))
        self.write(data)

    def encode_table(self, tbl: Mapping[str, Any]) -> None:
        buf = BytesIO()
        inner = WireCodec(buf)
        for key, value in tbl.items():
            inner.encode_shortstr(key)
            inner.encodeFieldValue(value)
        data = buf.getvalue()
        self.pack("!L", len(data))
        self.write(data)

    def encodeFieldValue(self, value: Any) -> None:
        if isinstance(value, bool):
            self.write(b"t")
            self.pack("!B", 1 if value else 0)
        elif isinstance(value, int):
            if _INT32[0] <= value <= _INT32[1]:
                self.write(b"I")
                self.pack("!i", value)
            elif _INT64[0] <= value <= _INT64[1]:
                self.write(b"l")
                self.pack("!q", value)
            else:
                raise ValueError(f"integer {value} does not fit an AMQP field")
        elif isinstance(value, float):
            self.write(b"d")
            self.pack("!d", value)
        elif isinstance(value, decimal.Decimal):
            sign, digits, exponent = value.as_tuple()
            if not isinstance(exponent, int) or exponent > 0 or -exponent > 255:
                raise ValueError(f"decimal {value} does not fit an AMQP field")
            unscaled = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
            self.write(b"D")
            self.pack("!Bi", -exponent, unscaled)
        elif isinstance(value, str):
            self.write(b"S")
            self.enc_str("!L", value)
        elif isinstance(value, (bytes, bytearray)):
            self.write(b"x")
            self.pack("!L", len(value))
            self.write(bytes(value))
        elif isinstance(value, datetime.datetime):
            self.write(b"T")
            self.pack("!Q", int(value.timestamp()))
        elif isinstance(value, Mapping):
            self.write(b"F")
            self.encode_table(value)
        elif isinstance(value, Sequence):
            buf = BytesIO()
            inner = WireCodec(buf)
            for item in value:
                inner.encodeFieldValue(item)
            data = buf.getvalue()
            self.write(b"A")
            self.pack("!L", len(data))
            self.write(data)
        elif value is None:
            self.write(b"V")
        else:
            raise TypeError(f"cannot encode {type(value).__name__} in an AMQP field table")

    def decode_table(self) -> dict[str, Any]:
        (size,) = self.unpackAll("!L")
        end = self.nread + size
        result: dict[str, Any] = {}
        while self.nread < end:
            key = self.decode_shortstr()
            if isinstance(key, bytes):
                key = key.decode("utf-8", "replace")
            result[key] = self.decodeFieldValue()
        return result

    def decodeFieldValue(self) -> Any:
        kind = self.read(1)
        if kind == b"S":
            (n,) = self.unpackAll("!L")
            data = self.read(n)
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                return data
        if kind == b"I":
            return self.unpackAll("!i")[0]
        if kind == b"t":
            return self.unpackAll("!B")[0] != 0
        if kind == b"F":
            return self.decode_table()
        if kind == b"A":
            (n,) = self.unpackAll("!L")
            end = self.nread + n
            items = []
            while self.nread < end:
                items.append(self.decodeFieldValue())
            return items
        if kind == b"l":
            return self.unpackAll("!q")[0]
        if kind == b"T":
            return self.unpackAll("!Q")[0]
        if kind == b"b":
            return self.unpackAll("!b")[0]
        if kind == b"B":
            return self.unpackAll("!B")[0]
        if kind == b"s":
            return self.unpackAll("!h")[0]
        if kind == b"u":
            return self.unpackAll("!H")[0]
        if kind == b"i":
            return self.unpackAll("!I")[0]
        if kind == b"f":
            return self.unpackAll("!f")[0]
        if kind == b"d":
            return self.unpackAll("!d")[0]
        if kind == b"D":
            scale, unscaled = self.unpackAll("!Bi")
            return decimal.Decimal(unscaled).scaleb(-scale)
        if kind == b"x":
            (n,) = self.unpackAll("!L")
            return self.read(n)
        if kind == b"V":
            return None
        raise ValueError(f"unknown AMQP field type {kind!r}")


def checkPublishable(body: object, headers: object) -> None:
    """
    Raise C{TypeError} (or C{ValueError}) unless C{body} is bytes and
    C{headers} is None or a mapping that encodes as an AMQP field table.
    """
    if not isinstance(body, bytes):
        raise TypeError(f"message bodies are bytes, not {type(body).__name__}")
    if headers is None:
        return
    if not isinstance(headers, Mapping):
        raise TypeError(f"message headers are a mapping, not {type(headers).__name__}")
    WireCodec(BytesIO()).encode_table(headers)


def _decodeMethod(spec: Any, codec: WireCodec) -> Method:
    inner = WireCodec(BytesIO(codec.decode_longbytes()))
    klass = spec.classes.byid[inner.decode_short()]
    meth = klass.methods.byid[inner.decode_short()]
    args = tuple(inner.decode(f.type) for f in meth.fields)
    return Method(meth, *args)


def _encodeProperty(kind: str, value: Any) -> bytes:
    if kind == "shortstr":
        data = value if isinstance(value, bytes) else str(value).encode("utf-8")
        if len(data) > 255:
            raise ValueError(f"short string property longer than 255 bytes: {value!r}")
        return bytes([len(data)]) + data
    if kind == "octet":
        return struct.pack("!B", value)
    if kind == "timestamp":
        return struct.pack("!Q", value)
    buf = BytesIO()
    WireCodec(buf).encode(kind, value)
    return buf.getvalue()


def _headerPayload(payload: Header) -> bytes:
    fields = list(payload.klass.fields)
    properties = payload.properties
    unknown = set(properties) - {f.name for f in fields}
    if unknown:
        raise ValueError(f"unknown message properties {sorted(unknown)} (names are hyphenated: delivery-mode)")
    present = [properties.get(f.name) is not None for f in fields]
    # Property flags: 15 flags per 16-bit word, high bit first; the low bit
    # says another word follows.
    words = []
    groups = [present[i : i + 15] for i in range(0, max(len(present), 1), 15)]
    for gi, group in enumerate(groups):
        word = 0
        for bi, flag in enumerate(group):
            if flag:
                word |= 1 << (15 - bi)
        if gi < len(groups) - 1:
            word |= 1
        words.append(word)
    parts = [struct.pack("!HHQ", payload.klass.id, payload.weight, payload.size)]
    parts.append(struct.pack(f"!{len(words)}H", *words))
    for f, flag in zip(fields, present):
        if flag:
            parts.append(_encodeProperty(f.type, properties[f.name]))
    return b"".join(parts)


def _decodeHeader(spec: Any, codec: WireCodec) -> Header:
    inner = WireCodec(BytesIO(codec.decode_longbytes()))
    klass = spec.classes.byid[inner.decode_short()]
    weight = inner.decode_short()
    size = inner.decode_longlong()
    bits: list[bool] = []
    while True:
        word = inner.decode_short()
        bits.extend(bool(word >> i & 1) for i in range(15, 0, -1))
        if not word & 1:
            break
    properties: dict[str, Any] = {}
    for flag, f in zip(bits, klass.fields):
        if flag:
            properties[str(f.name)] = inner.decode(f.type)
    return Header(klass, weight, size, **properties)


def packFrame(spec: Any, frame: Frame) -> bytes:
    """
    The wire bytes of C{frame} (bodies sent as given, bytes only).
    """
    payload = frame.payload
    if isinstance(payload, Body):
        data = payload.content
        if not isinstance(data, bytes):
            raise TypeError(f"message bodies are bytes, not {type(data).__name__}")
    elif isinstance(payload, Header):
        data = _headerPayload(payload)
    elif isinstance(payload, Method):
        buf = BytesIO()
        inner = WireCodec(buf)
        inner.encode_short(payload.method.klass.id)
        inner.encode_short(payload.method.id)
        for field, arg in zip(payload.method.fields, payload.args):
            inner.encode(field.type, arg)
        inner.flush()
        data = buf.getvalue()
    else:
        out = BytesIO()
        payload.encode(WireCodec(out))  # heartbeat: its own size field
        return struct.pack("!BH", spec.constants.bypyname[payload.type].id, frame.channel) + out.getvalue() + _FRAME_END
    return struct.pack("!BHI", spec.constants.bypyname[payload.type].id, frame.channel, len(data)) + data + _FRAME_END


def unpackFrame(spec: Any, data: bytes) -> Frame:
    """
    The frame in C{data} (one complete frame); body frames stay bytes.
    """
    c = WireCodec(BytesIO(data))
    frameType = pythonize(spec.constants.byid[c.decode_octet()].name)
    channel = c.decode_short()
    payload: Any
    if frameType == Frame.BODY:
        (n,) = c.unpackAll("!L")
        payload = Body(c.read(n))
    elif frameType == Frame.METHOD:
        payload = _decodeMethod(spec, c)
    elif frameType == Frame.HEADER:
        payload = _decodeHeader(spec, c)
    else:
        payload = Frame.DECODERS[frameType].decode(spec, c)
    end = c.decode_octet()
    if end != spec.constants.bypyname["frame_end"].id:
        raise ValueError(f"AMQP frame error: expected frame-end, got {end!r}")
    return Frame(channel, payload)


# -- the consuming fast path (see BusProtocol.frame_received) ------------------------------------

_FRAME_METHOD = 1
_FRAME_BODY = 3
_FRAME_END_OCTET = 0xCE
_BASIC_DELIVER = struct.pack("!HH", 60, 60)  # class basic, method deliver
_ACK = struct.Struct("!BHIHHQB")  # frame header, class/method basic.ack, delivery-tag, multiple
_LONG = struct.Struct("!Q")


class DeliverFrame:
    """
    A basic.deliver method frame, decoded without txAMQP's spec-driven
    codec; C{data} is the whole frame, for txAMQP's path when needed.
    """

    __slots__ = ("channel", "consumer_tag", "data", "delivery_tag", "exchange", "redelivered", "routing_key")

    def __init__(self, channel: int, data: bytes) -> None:
        self.channel = channel
        self.data = data
        pos = 11
        n = data[pos]
        self.consumer_tag = data[pos + 1 : pos + 1 + n].decode("utf-8")
        pos += 1 + n
        (self.delivery_tag,) = _LONG.unpack_from(data, pos)
        pos += 8
        self.redelivered = bool(data[pos] & 1)
        pos += 1
        n = data[pos]
        self.exchange = data[pos + 1 : pos + 1 + n].decode("utf-8")
        pos += 1 + n
        n = data[pos]
        self.routing_key = data[pos + 1 : pos + 1 + n].decode("utf-8")
        if pos + 1 + n != len(data) - 1:
            raise ValueError("AMQP frame error: basic.deliver of the wrong size")


class Delivery:
    """
    A message being assembled from its basic.deliver, content header and
    body frames; once complete it reads like txAMQP's delivered message
    (C{consumer_tag}, C{delivery_tag}, C{redelivered}, C{exchange},
    C{routing_key}, C{content.body}, C{content.properties}).
    """

    __slots__ = ("_chunks", "_received", "_size", "consumer_tag", "content", "delivery_tag", "exchange",
                 "redelivered", "routing_key")  # fmt: skip

    def __init__(self, deliver: DeliverFrame) -> None:
        self.consumer_tag = deliver.consumer_tag
        self.delivery_tag = deliver.delivery_tag
        self.redelivered = deliver.redelivered
        self.exchange = deliver.exchange
        self.routing_key = deliver.routing_key
        self.content: Content | None = None
        self._size = -1
        self._received = 0
        self._chunks: list[bytes] = []

    def feed(self, payload: Any) -> bool:
        """
        Take the next frame's payload; True once the message is complete.

        @raise ValueError: a frame that does not continue a delivery.
        """
        if self._size < 0:
            if not isinstance(payload, Header):
                raise ValueError(f"expected a content header, got {type(payload).__name__}")
            if payload.weight:
                raise ValueError("content header with child contents")
            self._size = payload.size
            self.content = Content(b"", [], payload.properties)
            return self._done()
        if not isinstance(payload, Body):
            raise ValueError(f"expected a content body, got {type(payload).__name__}")
        self._chunks.append(payload.content)
        self._received += len(payload.content)
        if self._received > self._size:
            raise ValueError("content body longer than its header says")
        return self._done()

    def _done(self) -> bool:
        if self._received < self._size:
            return False
        assert self.content is not None
        self.content.body = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        return True


def unpackFrameFast(spec: Any, data: bytes) -> Frame | DeliverFrame:
    """
    L{unpackFrame}, with body frames sliced out directly and basic.deliver
    method frames decoded as L{DeliverFrame}.
    """
    kind = data[0]
    if kind == _FRAME_BODY or (kind == _FRAME_METHOD and data[7:11] == _BASIC_DELIVER):
        if data[-1] != _FRAME_END_OCTET:
            raise ValueError(f"AMQP frame error: expected frame-end, got {data[-1]!r}")
        channel = (data[1] << 8) | data[2]
        if kind == _FRAME_BODY:
            return Frame(channel, Body(data[7:-1]))
        return DeliverFrame(channel, data)
    return unpackFrame(spec, data)


def ackFrame(channel: int, deliveryTag: int, multiple: bool = False) -> bytes:
    """
    The wire bytes of a basic.ack.
    """
    return _ACK.pack(_FRAME_METHOD, channel, 13, 60, 80, deliveryTag, 1 if multiple else 0) + b"\xce"


__all__ = [
    "DeliverFrame",
    "Delivery",
    "WireCodec",
    "ackFrame",
    "checkPublishable",
    "packFrame",
    "unpackFrame",
    "unpackFrameFast",
]
