"""
The pure pool logic: bitmaps, IPv4 pool layouts, MAC-prefix and bridge
values, and reconciliation of a bitmap with the values in use.
"""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from synnefo_twisted.logic.pools import (
    BRIDGE,
    MAC_PREFIX,
    Bitmap,
    IPRange,
    bridgeIndex,
    bridgeValue,
    defaultAllocationPool,
    ipPoolLayouts,
    macPrefixIndex,
    macPrefixValue,
    reconcileBitmap,
    resourcePoolBitmap,
)


class BitmapTests(SynchronousTestCase):
    """
    L{Bitmap}.
    """

    def test_newIsAllFreeExceptReserved(self) -> None:
        """
        A new pool of 10 with index 3 reserved has 9 free values, and index
        3 is reserved, not free.
        """
        bitmap = Bitmap.new(10, [3])
        self.assertEqual(bitmap.freeCount(), 9)
        self.assertTrue(bitmap.isReserved(3))
        self.assertFalse(bitmap.isFree(3))
        self.assertTrue(bitmap.isFree(9))
        self.assertEqual(len(bitmap.available), 2)

    def test_firstSkipsTakenAndReserved(self) -> None:
        """
        first() returns the lowest free index, skipping reserved and taken
        ones, and None once everything is taken.
        """
        bitmap = Bitmap.new(3, [0])
        self.assertEqual(bitmap.first(), 1)
        bitmap.take(1)
        self.assertEqual(bitmap.first(), 2)
        bitmap.take(2)
        self.assertIsNone(bitmap.first())

    def test_takeTwiceFails(self) -> None:
        """
        Taking an allocated or a reserved index raises ValueError.
        """
        bitmap = Bitmap.new(8, [5])
        bitmap.take(4)
        self.assertRaises(ValueError, bitmap.take, 4)
        self.assertRaises(ValueError, bitmap.take, 5)

    def test_outOfRange(self) -> None:
        """
        Indexes outside the pool raise IndexError.
        """
        bitmap = Bitmap.new(8)
        self.assertRaises(IndexError, bitmap.isFree, 8)
        self.assertRaises(IndexError, bitmap.reserve, -1)

    def test_putReturnsWhetherChanged(self) -> None:
        """
        put() frees a taken index (True) and changes nothing for a free or
        reserved one (False).
        """
        bitmap = Bitmap.new(8, [1])
        bitmap.take(0)
        self.assertTrue(bitmap.put(0))
        self.assertFalse(bitmap.put(0))
        self.assertFalse(bitmap.put(1))
        self.assertTrue(bitmap.isReserved(1))

    def test_unreserve(self) -> None:
        """
        Dropping a reservation makes the value free.
        """
        bitmap = Bitmap.new(8, [2])
        bitmap.unreserve(2)
        self.assertTrue(bitmap.isFree(2))
        self.assertFalse(bitmap.isReserved(2))

    def test_dumpLoadRoundTrip(self) -> None:
        """
        A dumped bitmap loads back to the same state; bitmaps of the wrong
        length are refused.
        """
        bitmap = Bitmap.new(20, [0, 19])
        bitmap.take(7)
        loaded = Bitmap.load(20, *bitmap.dump())
        self.assertEqual(loaded, bitmap)
        self.assertRaises(ValueError, Bitmap.load, 20, b"\x00", b"\x00\x00\x00")
        self.assertRaises(ValueError, Bitmap.new, 0)

    @settings(max_examples=100, deadline=None)
    @given(st.integers(1, 70), st.lists(st.tuples(st.booleans(), st.integers(0, 69)), max_size=150))
    def test_neverHandsOutTwice(self, size: int, operations: list[tuple[bool, int]]) -> None:
        """
        Whatever sequence of takes and releases, the indexes handed out by
        first()+take() and not yet released are distinct, in range, and
        their count plus the free count is the pool size.
        """
        bitmap = Bitmap.new(size)
        held: set[int] = set()
        for allocate, n in operations:
            if allocate:
                index = bitmap.first()
                if index is None:
                    self.assertEqual(len(held), size)
                    continue
                self.assertNotIn(index, held)
                bitmap.take(index)
                held.add(index)
            elif held:
                index = sorted(held)[n % len(held)]
                self.assertTrue(bitmap.put(index))
                held.discard(index)
        self.assertEqual(bitmap.freeCount() + len(held), size)


class IPLayoutTests(SynchronousTestCase):
    """
    L{ipPoolLayouts}.
    """

    def test_defaultPoolReservesGateway(self) -> None:
        """
        The default pool of a /29 is .1-.6, with the gateway .1 reserved at
        index 0.
        """
        cidr = ipaddress.IPv4Network("10.0.0.0/29")
        pool = defaultAllocationPool(cidr)
        [layout] = ipPoolLayouts(cidr, [pool], ipaddress.IPv4Address("10.0.0.1"))
        self.assertEqual((layout.base, layout.size, layout.offset, layout.reserved), ("10.0.0.1", 6, 1, (0,)))
        self.assertEqual(layout.bitmap().first(), 1)

    def test_explicitPools(self) -> None:
        """
        Explicit pools become one layout each, with their offset from the
        network address and nothing reserved when the gateway is outside.
        """
        cidr = ipaddress.IPv4Network("192.168.0.0/24")
        ranges = [
            IPRange(ipaddress.IPv4Address("192.168.0.10"), ipaddress.IPv4Address("192.168.0.19")),
            IPRange(ipaddress.IPv4Address("192.168.0.100"), ipaddress.IPv4Address("192.168.0.100")),
        ]
        layouts = ipPoolLayouts(cidr, ranges, ipaddress.IPv4Address("192.168.0.1"))
        self.assertEqual(
            [(x.base, x.size, x.offset, x.reserved) for x in layouts],
            [("192.168.0.10", 10, 10, ()), ("192.168.0.100", 1, 100, ())],
        )


class ResourceValueTests(SynchronousTestCase):
    """
    MAC-prefix and bridge values.
    """

    def test_macPrefixValues(self) -> None:
        """
        Index I of the aa:00:0 pool is the prefix I steps after it, formatted
        with colons every two digits, and maps back to I.
        """
        self.assertEqual(macPrefixValue("aa:00:0", 0), "aa:00:0")
        self.assertEqual(macPrefixValue("aa:00:0", 1), "aa:00:1")
        self.assertEqual(macPrefixValue("aa:00:0", 0x123), "aa:12:3")
        self.assertEqual(macPrefixIndex("aa:00:0", "aa:12:3"), 0x123)
        self.assertIsNone(macPrefixIndex("aa:00:0", "aa:00:00"))
        self.assertIsNone(macPrefixIndex("aa:00:0", "zz:00:0"))

    def test_macPrefixInvalid(self) -> None:
        """
        Prefixes whose first octet is multicast (odd), or that overflow the
        base's width, are not values.
        """
        self.assertIsNone(macPrefixValue("aa:00:0", 0x1000))  # ab:00:0
        self.assertEqual(macPrefixValue("aa:00:0", 0x2000), "ac:00:0")
        self.assertIsNone(macPrefixValue("ff:ff:f", 1))

    def test_macPrefixPoolReservations(self) -> None:
        """
        A new MAC-prefix pool reserves the first prefix and every invalid
        one, so its first allocatable index is 1 and no multicast prefix is
        free.
        """
        bitmap = resourcePoolBitmap(MAC_PREFIX, "aa:00:0", 0x2001)
        self.assertTrue(bitmap.isReserved(0))
        self.assertEqual(bitmap.first(), 1)
        self.assertTrue(bitmap.isReserved(0x1000))
        self.assertTrue(bitmap.isFree(0x2000))
        self.assertEqual(bitmap.freeCount(), 0x1000 - 1 + 1)

    def test_bridges(self) -> None:
        """
        Bridges are the base followed by the index; other names are not in
        the pool.
        """
        self.assertEqual(bridgeValue("prv", 7), "prv7")
        self.assertEqual(bridgeIndex("prv", "prv7"), 7)
        self.assertIsNone(bridgeIndex("prv", "br7"))
        self.assertIsNone(bridgeIndex("prv", "prvx"))
        self.assertEqual(resourcePoolBitmap(BRIDGE, "prv", 4).freeCount(), 4)
        self.assertRaises(ValueError, resourcePoolBitmap, "vlan", "x", 4)


class ReconcileTests(SynchronousTestCase):
    """
    L{reconcileBitmap}.
    """

    def test_findsLeakedAndUnmarked(self) -> None:
        """
        An index taken but unused is leaked, an index used but free is
        unmarked, and the rebuilt bitmap has exactly the used indexes taken
        with reservations kept.
        """
        bitmap = Bitmap.new(8, [0])
        bitmap.take(1)
        bitmap.take(2)
        fixed, leaked, unmarked = reconcileBitmap(bitmap, [2, 5])
        self.assertEqual(leaked, [1])
        self.assertEqual(unmarked, [5])
        self.assertEqual([i for i in range(8) if not fixed.isFree(i)], [0, 2, 5])
        self.assertTrue(fixed.isReserved(0))
