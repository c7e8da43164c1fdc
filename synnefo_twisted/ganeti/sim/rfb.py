# -*- test-case-name: tests.ganeti.test_sim_rfb -*-
"""
A tiny RFB (VNC) server standing in for a simulated instance's console:
protocol 3.3/3.7/3.8 with security type None, a small true-colour
framebuffer, and the instance name as the desktop name (RFC 6143).
"""

from __future__ import annotations

import struct

from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger

log = Logger()

WIDTH = 160
HEIGHT = 24
# 32 bpp, depth 24, little-endian, true colour, 255/255/255, shifts 16/8/0
PIXEL_FORMAT = struct.pack(">BBBBHHHBBB3x", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)

_FIXED_LENGTHS = {0: 20, 3: 10, 4: 8, 5: 6}

# A 3x5 pixel font for instance names (rows top to bottom, "#" = ink).
_FONT = {
    "0": ("###", "#.#", "#.#", "#.#", "###"), "1": (".#.", "##.", ".#.", ".#.", "###"),
    "2": ("##.", "..#", ".#.", "#..", "###"), "3": ("##.", "..#", ".#.", "..#", "##."),
    "4": ("#.#", "#.#", "###", "..#", "..#"), "5": ("###", "#..", "##.", "..#", "##."),
    "6": (".##", "#..", "###", "#.#", "###"), "7": ("###", "..#", ".#.", ".#.", ".#."),
    "8": ("###", "#.#", "###", "#.#", "###"), "9": ("###", "#.#", "###", "..#", "##."),
    "a": (".#.", "#.#", "###", "#.#", "#.#"), "b": ("##.", "#.#", "##.", "#.#", "##."),
    "c": (".##", "#..", "#..", "#..", ".##"), "d": ("##.", "#.#", "#.#", "#.#", "##."),
    "e": ("###", "#..", "##.", "#..", "###"), "f": ("###", "#..", "##.", "#..", "#.."),
    "g": (".##", "#..", "#.#", "#.#", ".##"), "h": ("#.#", "#.#", "###", "#.#", "#.#"),
    "i": ("###", ".#.", ".#.", ".#.", "###"), "j": ("..#", "..#", "..#", "#.#", ".#."),
    "k": ("#.#", "#.#", "##.", "#.#", "#.#"), "l": ("#..", "#..", "#..", "#..", "###"),
    "m": ("#.#", "###", "###", "#.#", "#.#"), "n": ("##.", "#.#", "#.#", "#.#", "#.#"),
    "o": (".#.", "#.#", "#.#", "#.#", ".#."), "p": ("##.", "#.#", "##.", "#..", "#.."),
    "q": (".#.", "#.#", "#.#", "##.", ".##"), "r": ("##.", "#.#", "##.", "#.#", "#.#"),
    "s": (".##", "#..", ".#.", "..#", "##."), "t": ("###", ".#.", ".#.", ".#.", ".#."),
    "u": ("#.#", "#.#", "#.#", "#.#", "###"), "v": ("#.#", "#.#", "#.#", "#.#", ".#."),
    "w": ("#.#", "#.#", "###", "###", "#.#"), "x": ("#.#", "#.#", ".#.", "#.#", "#.#"),
    "y": ("#.#", "#.#", ".#.", ".#.", ".#."), "z": ("###", "..#", ".#.", "#..", "###"),
    "-": ("...", "...", "###", "...", "..."), ".": ("...", "...", "...", "...", ".#."),
    "_": ("...", "...", "...", "...", "###"), "?": ("##.", "..#", ".#.", "...", ".#."),
}  # fmt: skip
_SCALE = 2
_INK = bytes((0xF0, 0xF0, 0xF0, 0))
_PAPER = bytes((0x40, 0x20, 0x10, 0))


def framebuffer(name: str) -> bytes:
    """
    The console image: the instance name written across the screen (3x5
    font, doubled), light on dark, so a viewer sees which VM it reached.
    """
    pixels = [[False] * WIDTH for _ in range(HEIGHT)]
    x0, y0 = 4, (HEIGHT - 5 * _SCALE) // 2
    for k, char in enumerate(name.lower()[: (WIDTH - 8) // (4 * _SCALE)]):
        glyph = _FONT.get(char, _FONT["?"])
        for row, bits in enumerate(glyph):
            for col, bit in enumerate(bits):
                if bit != "#":
                    continue
                for dy in range(_SCALE):
                    for dx in range(_SCALE):
                        pixels[y0 + row * _SCALE + dy][x0 + (k * 4 + col) * _SCALE + dx] = True
    return b"".join(_INK if ink else _PAPER for line in pixels for ink in line)


def renderText(data: bytes) -> list[str]:
    """
    The framebuffer as text rows (C{#} ink, C{.} paper), for tests and eyes.
    """
    rows = []
    for y in range(HEIGHT):
        line = data[y * WIDTH * 4 : (y + 1) * WIDTH * 4]
        rows.append("".join("#" if line[i : i + 4] == _INK else "." for i in range(0, len(line), 4)))
    return rows


class RFBServerProtocol(Protocol):
    """
    Serves one viewer.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._buffer = b""
        self._state = "version"
        self._version = 8

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(b"RFB 003.008\n")

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        while self._step():
            pass

    def _fail(self, reason: str) -> None:
        log.info("sim console {name}: dropping viewer: {reason}", name=self.name, reason=reason)
        assert self.transport is not None
        self.transport.loseConnection()
        self._state = "closed"
        self._buffer = b""

    def _take(self, n: int) -> bytes | None:
        if len(self._buffer) < n:
            return None
        chunk, self._buffer = self._buffer[:n], self._buffer[n:]
        return chunk

    def _step(self) -> bool:
        assert self.transport is not None
        if self._state == "version":
            raw = self._take(12)
            if raw is None:
                return False
            if raw not in (b"RFB 003.003\n", b"RFB 003.007\n", b"RFB 003.008\n"):
                self._fail(f"unsupported version {raw!r}")
                return False
            self._version = int(raw[8:11])
            if self._version == 3:
                self.transport.write(struct.pack(">I", 1))
                self._state = "init"
            else:
                self.transport.write(b"\x01\x01")
                self._state = "security"
            return True
        if self._state == "security":
            raw = self._take(1)
            if raw is None:
                return False
            if raw != b"\x01":
                self._fail(f"viewer chose security type {raw[0]}")
                return False
            if self._version == 8:
                self.transport.write(struct.pack(">I", 0))
            self._state = "init"
            return True
        if self._state == "init":
            if self._take(1) is None:
                return False
            name = self.name.encode("utf-8")
            self.transport.write(struct.pack(">HH", WIDTH, HEIGHT) + PIXEL_FORMAT + struct.pack(">I", len(name)) + name)
            self._state = "normal"
            return True
        if self._state == "normal":
            if not self._buffer:
                return False
            kind = self._buffer[0]
            if kind in _FIXED_LENGTHS:
                raw = self._take(_FIXED_LENGTHS[kind])
                if raw is None:
                    return False
                if kind == 3:
                    self._update(raw)
                return True
            if kind == 2:
                if len(self._buffer) < 4:
                    return False
                (count,) = struct.unpack(">H", self._buffer[2:4])
                return self._take(4 + 4 * count) is not None
            if kind == 6:
                if len(self._buffer) < 8:
                    return False
                (length,) = struct.unpack(">I", self._buffer[4:8])
                return self._take(8 + length) is not None
            self._fail(f"unknown client message type {kind}")
            return False
        return False

    def _update(self, request: bytes) -> None:
        assert self.transport is not None
        header = struct.pack(">BxH", 0, 1) + struct.pack(">HHHHi", 0, 0, WIDTH, HEIGHT, 0)
        self.transport.write(header + framebuffer(self.name))


class RFBServerFactory(Factory):
    """
    Builds L{RFBServerProtocol}s for one instance.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def buildProtocol(self, addr: object) -> RFBServerProtocol:
        protocol = RFBServerProtocol(self.name)
        protocol.factory = self
        return protocol
