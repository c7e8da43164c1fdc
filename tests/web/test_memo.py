"""
Tests for L{web.memo}: answers kept per key, least recently used evicted, bounded in bytes and entries.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from web.memo import RenderedMemo


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
