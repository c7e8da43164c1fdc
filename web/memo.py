# -*- test-case-name: tests.web.test_memo -*-
"""
Encoded answers reused while the rows they were computed from are unchanged.

A listing such as C{GET /servers/detail} is a pure function of the rows it
reads (and of the request's route and parameters): when a new read finds
the same rows (an equal fingerprint, see
L{synnefo_twisted.db.servers.ServerDetailRows}), the JSON computed last time
is the answer again, and building the models, the views and the JSON is
skipped. Nothing is ever served stale: the rows are read on every request;
only the work after the read is saved.
"""

from __future__ import annotations

import gzip
from collections import OrderedDict
from collections.abc import Hashable


class RenderedMemo:
    """
    A bounded least-recently-used map from a hashable key (route,
    parameters, row fingerprint) to an encoded answer.

    @param maxBytes: the encoded answers kept add up to at most this many
        bytes (a key holds the rows, of about the same size); an answer
        larger than a quarter of it is not kept.
    @param maxEntries: at most this many answers are kept.
    """

    def __init__(self, maxBytes: int = 16 << 20, maxEntries: int = 256) -> None:
        self._maxBytes = maxBytes
        self._maxEntries = maxEntries
        self._entries: OrderedDict[Hashable, bytes] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        """
        The bytes of the answers kept.
        """
        return self._bytes

    def get(self, key: Hashable) -> bytes | None:
        body = self._entries.get(key)
        if body is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return body

    def put(self, key: Hashable, body: bytes) -> None:
        if len(body) > self._maxBytes // 4:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= len(old)
        self._entries[key] = body
        self._bytes += len(body)
        while self._entries and (self._bytes > self._maxBytes or len(self._entries) > self._maxEntries):
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= len(evicted)


class CompressedBodies:
    """
    The gzip form of reused answers, computed once per answer: a bounded
    least-recently-used map from an encoded answer to its compressed form.
    An answer reused from L{RenderedMemo} is the same C{bytes} object every
    time, so finding it costs a hash computed once and an identity check.

    @param maxBytes: the answers and compressed forms kept add up to at
        most this many bytes.
    @param maxEntries: at most this many are kept.
    @param level: the zlib compression level.
    """

    def __init__(self, maxBytes: int = 32 << 20, maxEntries: int = 256, level: int = 6) -> None:
        self._maxBytes = maxBytes
        self._maxEntries = maxEntries
        self._level = level
        self._entries: OrderedDict[bytes, bytes] = OrderedDict()
        self._bytes = 0
        self.compressions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def gzip(self, body: bytes) -> bytes:
        """
        C{body} gzip-compressed (the same bytes for the same body: no timestamp in the header).
        """
        compressed = self._entries.get(body)
        if compressed is not None:
            self._entries.move_to_end(body)
            return compressed
        compressed = gzip.compress(body, compresslevel=self._level, mtime=0)
        self.compressions += 1
        size = len(body) + len(compressed)
        if size <= self._maxBytes // 4:
            self._entries[body] = compressed
            self._bytes += size
            while self._bytes > self._maxBytes or len(self._entries) > self._maxEntries:
                old, oldCompressed = self._entries.popitem(last=False)
                self._bytes -= len(old) + len(oldCompressed)
        return compressed
