# -*- test-case-name: tests.logic.test_pools -*-
"""
Allocation pools: IPv4 addresses of a subnet's allocation pools, MAC
prefixes for MAC_FILTERED networks and bridges for PHYSICAL_VLAN networks.

The pure part is L{Bitmap} (one bit per value: free or taken, plus a
reserved map for values that are never handed out, such as the gateway or
an invalid MAC prefix) and the value mappings (L{ipPoolLayouts},
L{macPrefixValue}, L{bridgeValue}, L{reconcileBitmap}).

The thin shell (L{allocateIP}, L{releaseIP}, L{allocateResource},
L{releaseResource}) runs inside one database transaction: it locks the
pool rows (C{SELECT ... FOR UPDATE} on PostgreSQL; SQLite serialises every
transaction), flips bits and writes them back, and the unique index on
C{ips(network_id, address)} backs it up, so two concurrent allocations
never return the same value.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
from twisted.internet.defer import Deferred

from synnefo_twisted.db import models
from synnefo_twisted.db.pools import IPPoolRepository, ResourcePoolRepository

# -- errors ---------------------------------------------------------------------------


class PoolError(Exception):
    """
    Base class of pool errors; C{field} names the request field concerned
    (or the pool) and C{message} says what happened.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class PoolExhaustedError(PoolError):
    """
    No free value is left in the pool.
    """


class ValueNotInPoolError(PoolError):
    """
    The requested value is outside every pool.
    """


class ValueInUseError(PoolError):
    """
    The requested value is already allocated or reserved.
    """


# -- the bitmap -----------------------------------------------------------------------


def _bytesFor(size: int) -> int:
    return (size + 7) // 8


def _mask(index: int) -> tuple[int, int]:
    return index >> 3, 1 << (index & 7)


@attrs.define
class Bitmap:
    """
    A working copy of one pool's two bitmaps (bit I is value I, least
    significant bit first): C{available} has the bit set when the value is
    free, C{reserved} when it is never handed out. A reserved value is never
    available.
    """

    size: int
    available: bytearray
    reserved: bytearray

    @classmethod
    def new(cls, size: int, reserved: Iterable[int] = ()) -> Bitmap:
        """
        A pool of C{size} values, all free except C{reserved}.
        """
        if size <= 0:
            raise ValueError(f"pool size must be positive, not {size}")
        available = bytearray(b"\xff" * _bytesFor(size))
        tail = size & 7
        if tail:
            available[-1] = (1 << tail) - 1
        bitmap = cls(size, available, bytearray(_bytesFor(size)))
        for index in reserved:
            bitmap.reserve(index)
        return bitmap

    @classmethod
    def load(cls, size: int, available: bytes, reserved: bytes) -> Bitmap:
        """
        The bitmap stored in a pool row.
        """
        if len(available) != _bytesFor(size) or len(reserved) != _bytesFor(size):
            raise ValueError(f"bitmaps of {len(available)}/{len(reserved)} bytes do not fit a pool of {size}")
        return cls(size, bytearray(available), bytearray(reserved))

    def dump(self) -> tuple[bytes, bytes]:
        """
        C{(available, reserved)} as stored.
        """
        return bytes(self.available), bytes(self.reserved)

    def _check(self, index: int) -> None:
        if not 0 <= index < self.size:
            raise IndexError(f"index {index} outside a pool of {self.size}")

    def isFree(self, index: int) -> bool:
        self._check(index)
        byte, bit = _mask(index)
        return bool(self.available[byte] & bit)

    def isReserved(self, index: int) -> bool:
        self._check(index)
        byte, bit = _mask(index)
        return bool(self.reserved[byte] & bit)

    def freeCount(self) -> int:
        return sum(b.bit_count() for b in self.available)

    def first(self) -> int | None:
        """
        The lowest free index, or None when the pool is full.
        """
        for byteIndex, byte in enumerate(self.available):
            if byte:
                return byteIndex * 8 + ((byte & -byte).bit_length() - 1)
        return None

    def take(self, index: int) -> None:
        """
        Mark C{index} allocated.

        @raise ValueError: it is reserved or already allocated.
        """
        if self.isReserved(index):
            raise ValueError(f"index {index} is reserved")
        if not self.isFree(index):
            raise ValueError(f"index {index} is already allocated")
        byte, bit = _mask(index)
        self.available[byte] &= ~bit & 0xFF

    def put(self, index: int) -> bool:
        """
        Mark C{index} free again; False (nothing changed) when it was free
        already or is reserved.
        """
        if self.isReserved(index) or self.isFree(index):
            return False
        byte, bit = _mask(index)
        self.available[byte] |= bit
        return True

    def reserve(self, index: int) -> None:
        """
        Reserve C{index}: never handed out, whether or not it was free.
        """
        self._check(index)
        byte, bit = _mask(index)
        self.reserved[byte] |= bit
        self.available[byte] &= ~bit & 0xFF

    def unreserve(self, index: int) -> None:
        """
        Drop the reservation of C{index}; it becomes free.
        """
        self._check(index)
        byte, bit = _mask(index)
        if self.reserved[byte] & bit:
            self.reserved[byte] &= ~bit & 0xFF
            self.available[byte] |= bit


def reconcileBitmap(bitmap: Bitmap, used: Iterable[int]) -> tuple[Bitmap, list[int], list[int]]:
    """
    Compare a stored bitmap with the values in use (reconcile-pools).

    @return: C{(fixed, leaked, unmarked)}: the bitmap rebuilt from
        C{used} and the reservations; the indexes marked allocated but not
        used (leaked); the indexes used but marked free.
    """
    usedSet = {i for i in used if 0 <= i < bitmap.size}
    reserved = [i for i in range(bitmap.size) if bitmap.isReserved(i)]
    fixed = Bitmap.new(bitmap.size, reserved)
    for index in sorted(usedSet):
        if not fixed.isReserved(index):
            fixed.take(index)
    leaked = [i for i in range(bitmap.size) if not bitmap.isFree(i) and not bitmap.isReserved(i) and i not in usedSet]
    unmarked = sorted(i for i in usedSet if bitmap.isFree(i))
    return fixed, leaked, unmarked


# -- IPv4 pools -------------------------------------------------------------------------


@attrs.frozen
class IPRange:
    """
    An inclusive range of addresses (a subnet's C{allocation_pools} entry).
    """

    start: ipaddress.IPv4Address
    end: ipaddress.IPv4Address

    @property
    def size(self) -> int:
        return int(self.end) - int(self.start) + 1

    def __contains__(self, address: object) -> bool:
        return isinstance(address, ipaddress.IPv4Address) and self.start <= address <= self.end


@attrs.frozen
class PoolLayout:
    """
    One row of C{ip_pools}: C{base} is the first address, C{offset} its
    distance from the network address, C{reserved} the indexes never handed
    out (network, broadcast and gateway addresses inside the range).
    """

    base: str
    size: int
    offset: int
    reserved: tuple[int, ...]

    def bitmap(self) -> Bitmap:
        return Bitmap.new(self.size, self.reserved)


def defaultAllocationPool(cidr: ipaddress.IPv4Network) -> IPRange:
    """
    Every host address of C{cidr} (network + 1 to broadcast - 1).
    """
    return IPRange(cidr.network_address + 1, cidr.broadcast_address - 1)


def ipPoolLayouts(
    cidr: ipaddress.IPv4Network, ranges: Sequence[IPRange], gateway: ipaddress.IPv4Address | None
) -> list[PoolLayout]:
    """
    The C{ip_pools} rows for a subnet's (validated) allocation pools.
    """
    layouts = []
    specials = {cidr.network_address, cidr.broadcast_address}
    if gateway is not None:
        specials.add(gateway)
    for r in ranges:
        reserved = tuple(sorted(int(a) - int(r.start) for a in specials if a in r))
        layouts.append(PoolLayout(str(r.start), r.size, int(r.start) - int(cidr.network_address), reserved))
    return layouts


def addressOf(pool: models.IPPool, index: int) -> str:
    return str(ipaddress.IPv4Address(pool.base) + index)


def indexOf(pool: models.IPPool, address: str) -> int | None:
    """
    The index of C{address} in C{pool}, or None when outside it.
    """
    try:
        value = ipaddress.IPv4Address(address)
    except ValueError:
        return None
    index = int(value) - int(ipaddress.IPv4Address(pool.base))
    return index if 0 <= index < pool.size else None


# -- MAC prefixes and bridges --------------------------------------------------------------

MAC_PREFIX = "mac_prefix"
BRIDGE = "bridge"


def macPrefixValue(base: str, index: int) -> str | None:
    """
    The MAC prefix C{index} steps after C{base} (C{aa:00:0} style: as many
    hex digits as the base, colons every two), or None when it overflows
    the base's width or is not a unicast prefix.
    """
    digits = base.replace(":", "")
    width = len(digits)
    value = int(digits, 16) + index
    if value >= 16**width:
        return None
    text = format(value, f"0{width}x")
    if int(text[:2], 16) & 1:
        return None
    return ":".join(text[i : i + 2] for i in range(0, width, 2))


def macPrefixIndex(base: str, prefix: str) -> int | None:
    digits, given = base.replace(":", ""), prefix.replace(":", "")
    if len(digits) != len(given):
        return None
    try:
        return int(given, 16) - int(digits, 16)
    except ValueError:
        return None


def bridgeValue(base: str, index: int) -> str:
    return f"{base}{index}"


def bridgeIndex(base: str, bridge: str) -> int | None:
    if not bridge.startswith(base) or not bridge[len(base) :].isdigit():
        return None
    return int(bridge[len(base) :])


def resourceValue(pool: models.ResourcePool, index: int) -> str | None:
    if pool.kind == MAC_PREFIX:
        return macPrefixValue(pool.base, index)
    return bridgeValue(pool.base, index)


def resourceIndex(pool: models.ResourcePool, value: str) -> int | None:
    index = macPrefixIndex(pool.base, value) if pool.kind == MAC_PREFIX else bridgeIndex(pool.base, value)
    return index if index is not None and 0 <= index < pool.size else None


def resourcePoolBitmap(kind: str, base: str, size: int) -> Bitmap:
    """
    A fresh MAC-prefix or bridge pool: for MAC prefixes the first one (the
    default prefix of public networks) and every invalid one are reserved.
    """
    if kind == MAC_PREFIX:
        reserved = [0] + [i for i in range(1, size) if macPrefixValue(base, i) is None]
        return Bitmap.new(size, reserved)
    if kind == BRIDGE:
        return Bitmap.new(size)
    raise ValueError(f"unknown resource pool kind {kind!r}")


# -- the transactional shell ------------------------------------------------------------------


async def allocateIP(tx: Any, networkId: int, address: str | None = None) -> tuple[int, str]:
    """
    Take an IPv4 address of network C{networkId} inside the current
    transaction: C{address} if given, else the lowest free one of the
    first pool with room.

    @return: C{(subnet id, address)}.
    @raise PoolExhaustedError: no free address (or the network has no
        IPv4 pool).
    @raise ValueNotInPoolError: C{address} is outside every pool.
    @raise ValueInUseError: C{address} is taken or reserved.
    """
    repo = IPPoolRepository(tx)
    pools = await repo.lockByNetwork(networkId)
    for pool in pools:
        bitmap = Bitmap.load(pool.size, pool.available, pool.reserved)
        if address is not None:
            index = indexOf(pool, address)
            if index is None:
                continue
            if bitmap.isReserved(index) or not bitmap.isFree(index):
                raise ValueInUseError("ip_address", f"address {address} is already in use")
        else:
            found = bitmap.first()
            if found is None:
                continue
            index = found
        bitmap.take(index)
        await repo.store(pool.id, *bitmap.dump())
        return pool.subnet_id, addressOf(pool, index)
    if address is not None:
        raise ValueNotInPoolError("ip_address", f"address {address} is not in any pool of network {networkId}")
    raise PoolExhaustedError("network_id", f"no free IPv4 address left in network {networkId}")


async def releaseIP(tx: Any, networkId: int, address: str) -> bool:
    """
    Return C{address} to its pool; False when it is in no pool (or free
    already, or reserved).
    """
    repo = IPPoolRepository(tx)
    for pool in await repo.lockByNetwork(networkId):
        index = indexOf(pool, address)
        if index is None:
            continue
        bitmap = Bitmap.load(pool.size, pool.available, pool.reserved)
        if not bitmap.put(index):
            return False
        await repo.store(pool.id, *bitmap.dump())
        return True
    return False


async def allocateResource(tx: Any, kind: str, value: str | None = None) -> str:
    """
    Take a MAC prefix or bridge: C{value} if given, else the lowest free.

    @raise PoolExhaustedError: the pool is full, or was never created.
    """
    repo = ResourcePoolRepository(tx)
    pool = await repo.lock(kind)
    if pool is None:
        raise PoolExhaustedError(kind, f"no {kind} pool is configured")
    bitmap = Bitmap.load(pool.size, pool.available, pool.reserved)
    if value is not None:
        index = resourceIndex(pool, value)
        if index is None:
            raise ValueNotInPoolError(kind, f"{value} is not in the {kind} pool")
        if bitmap.isReserved(index) or not bitmap.isFree(index):
            raise ValueInUseError(kind, f"{value} is already in use")
    else:
        found = bitmap.first()
        if found is None:
            raise PoolExhaustedError(kind, f"the {kind} pool is exhausted")
        index = found
    taken = resourceValue(pool, index)
    if taken is None:  # only reachable with a hand-edited bitmap
        raise ValueInUseError(kind, f"index {index} of the {kind} pool is not a valid value")
    bitmap.take(index)
    await repo.store(pool.id, *bitmap.dump())
    return taken


async def releaseResource(tx: Any, kind: str, value: str) -> bool:
    """
    Return a MAC prefix or bridge to its pool; False when not in the pool
    (or free already).
    """
    repo = ResourcePoolRepository(tx)
    pool = await repo.lock(kind)
    if pool is None:
        return False
    index = resourceIndex(pool, value)
    if index is None:
        return False
    bitmap = Bitmap.load(pool.size, pool.available, pool.reserved)
    if not bitmap.put(index):
        return False
    await repo.store(pool.id, *bitmap.dump())
    return True


# -- reconcile-pools ---------------------------------------------------------------------------------


@attrs.frozen
class PoolDiscrepancy:
    """
    One pool whose bitmap disagrees with what is in use: C{leaked} values
    are marked allocated but nothing uses them, C{unmarked} ones are used
    but marked free; C{fixed} says whether the bitmap was rebuilt.
    """

    pool: str
    leaked: tuple[str, ...]
    unmarked: tuple[str, ...]
    fixed: bool


async def _reconcile(tx: Any, fix: bool) -> list[PoolDiscrepancy]:
    found: list[PoolDiscrepancy] = []
    ipPools = IPPoolRepository(tx)
    for pool in await ipPools.lockAll():
        used = [i for i in (indexOf(pool, a) for a in await ipPools.liveAddresses(pool.subnet_id)) if i is not None]
        bitmap = Bitmap.load(pool.size, pool.available, pool.reserved)
        fixedBitmap, leaked, unmarked = reconcileBitmap(bitmap, used)
        if leaked or unmarked:
            if fix:
                await ipPools.store(pool.id, *fixedBitmap.dump())
            found.append(
                PoolDiscrepancy(
                    f"ip_pool {pool.id} (subnet {pool.subnet_id}, {pool.base} + {pool.size})",
                    tuple(addressOf(pool, i) for i in leaked),
                    tuple(addressOf(pool, i) for i in unmarked),
                    fix,
                )
            )
    resources = ResourcePoolRepository(tx)
    for kind, column, flavor in ((MAC_PREFIX, "mac_prefix", "MAC_FILTERED"), (BRIDGE, "link", "PHYSICAL_VLAN")):
        resource = await resources.lock(kind)
        if resource is None:
            continue
        rows = await tx.execute(
            f"SELECT {column} FROM networks WHERE deleted = FALSE AND flavor = %s AND {column} IS NOT NULL", (flavor,)
        )
        used = [i for i in (resourceIndex(resource, row[0]) for row in rows) if i is not None]
        bitmap = Bitmap.load(resource.size, resource.available, resource.reserved)
        fixedBitmap, leaked, unmarked = reconcileBitmap(bitmap, used)
        if leaked or unmarked:
            if fix:
                await resources.store(resource.id, *fixedBitmap.dump())
            found.append(
                PoolDiscrepancy(
                    kind,
                    tuple(str(resourceValue(resource, i)) for i in leaked),
                    tuple(str(resourceValue(resource, i)) for i in unmarked),
                    fix,
                )
            )
    return found


def reconcilePools(db: Any, fix: bool = False) -> Deferred[list[PoolDiscrepancy]]:
    """
    C{reconcile-pools} (spec §3): compare every IPv4 pool with the live
    addresses of its subnet, the MAC-prefix pool with the MAC_FILTERED
    networks and the bridge pool with the PHYSICAL_VLAN networks; with
    C{fix}, rebuild the bitmaps that differ. One transaction, pools locked.
    """
    d: Deferred[list[PoolDiscrepancy]] = db.runInteraction(_reconcile, fix)
    return d
