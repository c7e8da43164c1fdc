"""
Tests for L{web.memo}: answers kept per key, least recently used evicted,
bounded in bytes and entries; their gzip forms computed once.
"""

from __future__ import annotations

import gzip

from twisted.trial.unittest import SynchronousTestCase

from web.memo import CompressedBodies, RenderedMemo


class RenderedMemoTests(SynchronousTestCase):
    def test_getPut(self) -> None:
        """
        An answer put under a key is got back under an equal key; an unknown key gives None; hits and misses count.
        """
        memo = RenderedMemo()
        self.assertIsNone(memo.get(("a", (1, 2))))
        memo.put(("a", (1, 2)), b"one")
        self.assertEqual(memo.get(("a", (1, 2))), b"one")
        self.assertIsNone(memo.get(("a", (1, 3))))
        self.assertEqual((memo.hits, memo.misses, len(memo), memo.size), (1, 2, 1, 3))

    def test_replace(self) -> None:
        """
        Putting a key again replaces its answer and its size.
        """
        memo = RenderedMemo()
        memo.put("k", b"12345")
        memo.put("k", b"12")
        self.assertEqual((memo.get("k"), memo.size, len(memo)), (b"12", 2, 1))

    def test_entriesBound(self) -> None:
        """
        Past maxEntries the least recently used answer goes.
        """
        memo = RenderedMemo(maxEntries=2)
        memo.put("a", b"a")
        memo.put("b", b"b")
        memo.get("a")
        memo.put("c", b"c")
        self.assertEqual([memo.get(k) for k in "abc"], [b"a", None, b"c"])

    def test_bytesBound(self) -> None:
        """
        The answers kept add up to at most maxBytes; one larger than a quarter of it is not kept.
        """
        memo = RenderedMemo(maxBytes=40)
        for key in "abcde":
            memo.put(key, b"x" * 10)
        self.assertEqual(memo.size, 40)
        self.assertIsNone(memo.get("a"))
        memo.put("big", b"x" * 11)
        self.assertIsNone(memo.get("big"))
        self.assertEqual(memo.size, 40)


class CompressedBodiesTests(SynchronousTestCase):
    def test_once(self) -> None:
        """
        An answer is compressed once; its gzip form decompresses to it and is the same bytes every time.
        """
        bodies = CompressedBodies()
        body = b'{"servers": []}' * 100
        first = bodies.gzip(body)
        self.assertEqual(gzip.decompress(first), body)
        self.assertLess(len(first), len(body))
        self.assertIs(bodies.gzip(body), first)
        self.assertEqual(bodies.gzip(bytes(body)), first)
        self.assertEqual(bodies.compressions, 1)

    def test_bounded(self) -> None:
        """
        The least recently used are dropped beyond the entry or byte bound;
        answers over a quarter of the bytes are compressed but not kept.
        """
        bodies = CompressedBodies(maxBytes=4000, maxEntries=2)
        a, b, c = (bytes([n]) * 500 for n in (1, 2, 3))
        bodies.gzip(a)
        bodies.gzip(b)
        bodies.gzip(a)
        bodies.gzip(c)
        self.assertEqual(len(bodies), 2)
        bodies.gzip(a)
        self.assertEqual(bodies.compressions, 3)
        bodies.gzip(b)
        self.assertEqual(bodies.compressions, 4)
        big = b"x" * 2000
        bodies.gzip(big)
        bodies.gzip(big)
        self.assertEqual(bodies.compressions, 6)
