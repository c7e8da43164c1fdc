# -*- test-case-name: tests.manage.test_pools -*-
"""
Pool commands: pool-create, pool-list, pool-show, pool-modify.

Three kinds of pools hand out values: the IPv4 allocation pools of each
subnet (made with the subnet, named by their id), the MAC-prefix pool
(C{mac-prefix}, for MAC_FILTERED networks) and the bridge pool
(C{bridge}, for PHYSICAL_VLAN networks). Reservations and sizes change
under the pool's row lock, with the bitmaps of L{synnefo_twisted.logic.pools}.
"""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Sequence
from typing import Any

from synnefo_twisted.db import models
from synnefo_twisted.db.manage import AdminQueries
from synnefo_twisted.db.pools import IPPoolRepository, ResourcePoolRepository
from synnefo_twisted.db.repositories import SubnetRepository
from synnefo_twisted.logic import pools as poollogic
from synnefo_twisted.logic.pools import Bitmap
from synnefo_twisted.manage.base import BadInput, CommandError, ManageContext, command
from synnefo_twisted.manage.output import formatMapping, formatTable

POOL_COLUMNS = ["pool", "type", "base", "size", "free", "reserved", "in_use", "subnet"]

KINDS = {"mac-prefix": poollogic.MAC_PREFIX, "mac_prefix": poollogic.MAC_PREFIX, "bridge": poollogic.BRIDGE}
SHOWN_KIND = {poollogic.MAC_PREFIX: "mac-prefix", poollogic.BRIDGE: "bridge"}


def poolCounts(size: int, available: bytes, reserved: bytes) -> dict[str, int]:
    """
    How many values of a pool are free, reserved and in use.
    """
    bitmap = Bitmap.load(size, available, reserved)
    free = bitmap.freeCount()
    held = sum(b.bit_count() for b in bitmap.reserved)
    return {"free": free, "reserved": held, "in_use": size - free - held}


def _values(list_: str) -> list[str]:
    return [v.strip() for v in list_.split(",") if v.strip()]


def _poolIdent(value: str) -> str | int:
    if value.isdigit() and int(value) > 0:
        return int(value)
    if value in KINDS:
        return KINDS[value]
    raise argparse.ArgumentTypeError(f"expected mac-prefix, bridge or an IP pool id, not {value!r}")


# -- reservations (one transaction each) ---------------------------------------------------------------


def _specialIPs(subnet: models.Subnet | None) -> set[str]:
    """
    Addresses of a subnet that must stay reserved: network, broadcast and
    gateway.
    """
    if subnet is None:
        return set()
    cidr = ipaddress.ip_network(subnet.cidr)
    special = {str(cidr.network_address), str(cidr.broadcast_address)}
    if subnet.gateway:
        special.add(subnet.gateway)
    return special


def _flip(bitmap: Bitmap, index: int, value: str, reserve: bool, protected: bool) -> None:
    if reserve:
        if bitmap.isReserved(index):
            return
        if not bitmap.isFree(index):
            raise CommandError(f"{value} is in use; it cannot be reserved")
        bitmap.reserve(index)
    else:
        if not bitmap.isReserved(index):
            raise CommandError(f"{value} is not reserved")
        if protected:
            raise CommandError(f"{value} must stay reserved (network, broadcast, gateway or default address)")
        bitmap.unreserve(index)


async def _ipReservations(tx: Any, pools: Sequence[models.IPPool], add: Sequence[str], remove: Sequence[str]) -> None:
    repo = IPPoolRepository(tx)
    subnets = SubnetRepository(tx)
    bitmaps = {p.id: Bitmap.load(p.size, p.available, p.reserved) for p in pools}
    specials = {p.id: _specialIPs(await subnets.get(p.subnet_id)) for p in pools}
    for values, reserve in ((add, True), (remove, False)):
        for value in values:
            try:
                address = str(ipaddress.IPv4Address(value))
            except ValueError:
                raise BadInput(f"{value!r} is not an IPv4 address") from None
            for pool in pools:
                index = poollogic.indexOf(pool, address)
                if index is not None:
                    _flip(bitmaps[pool.id], index, address, reserve, address in specials[pool.id])
                    break
            else:
                raise CommandError(f"{address} is in none of the pools")
    for pool in pools:
        await repo.store(pool.id, *bitmaps[pool.id].dump())


async def _resourceReservations(tx: Any, kind: str, add: Sequence[str], remove: Sequence[str]) -> models.ResourcePool:
    repo = ResourcePoolRepository(tx)
    pool = await repo.lock(kind)
    if pool is None:
        raise CommandError(f"there is no {SHOWN_KIND[kind]} pool (pool-create --type {SHOWN_KIND[kind]})")
    bitmap = Bitmap.load(pool.size, pool.available, pool.reserved)
    for values, reserve in ((add, True), (remove, False)):
        for value in values:
            index = poollogic.resourceIndex(pool, value)
            if index is None:
                raise BadInput(f"{value!r} is not in the {SHOWN_KIND[kind]} pool")
            protected = poollogic.resourceValue(pool, index) is None or (kind == poollogic.MAC_PREFIX and index == 0)
            _flip(bitmap, index, value, reserve, protected)
    await repo.store(pool.id, *bitmap.dump())
    return pool


def changeReservations(database: Any, kind: str, target: int | None, add: Sequence[str], remove: Sequence[str]) -> Any:
    """
    Reserve C{add} and release C{remove} in one transaction: in the IPv4
    pools of network C{target} (C{kind} C{"ip"}), in the IP pool with id
    C{target} (C{"ip-pool"}), or in the MAC-prefix or bridge pool.
    Reserving a value in use, releasing one not reserved or one that must
    stay reserved fails and changes nothing.
    """

    async def change(tx: Any) -> None:
        if kind == "ip":
            assert target is not None
            pools = await IPPoolRepository(tx).lockByNetwork(target)
            if not pools:
                raise CommandError(f"network {target} has no IPv4 allocation pools")
            await _ipReservations(tx, pools, add, remove)
        elif kind == "ip-pool":
            rows = await tx.execute(
                f"SELECT {models.columns(models.IPPool)} FROM ip_pools WHERE id = %s FOR UPDATE", (target,)
            )
            if not rows:
                raise CommandError(f"no IP pool {target}")
            await _ipReservations(tx, [models.IPPool(*rows[0])], add, remove)
        else:
            await _resourceReservations(tx, kind, add, remove)

    return database.runInteraction(change)


def resize(database: Any, kind: str, size: int) -> Any:
    """
    Grow or shrink the MAC-prefix or bridge pool; values past the new end
    must be free (or reserved) to shrink.
    """

    async def change(tx: Any) -> models.ResourcePool:
        pool = await ResourcePoolRepository(tx).lock(kind)
        if pool is None:
            raise CommandError(f"there is no {SHOWN_KIND[kind]} pool")
        old = Bitmap.load(pool.size, pool.available, pool.reserved)
        for index in range(size, pool.size):
            if not old.isFree(index) and not old.isReserved(index):
                value = poollogic.resourceValue(pool, index)
                raise CommandError(f"cannot shrink to {size}: {value} is in use")
        fresh = poollogic.resourcePoolBitmap(kind, pool.base, size)
        for index in range(min(size, pool.size)):
            if old.isReserved(index):
                fresh.reserve(index)
            elif fresh.isReserved(index):
                continue
            elif not old.isFree(index):
                fresh.take(index)
        resized = await AdminQueries(tx).resizeResourcePool(pool.id, size, *fresh.dump())
        assert resized is not None
        return resized

    return database.runInteraction(change)


# -- commands -----------------------------------------------------------------------------------------


def _createArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--type", required=True, choices=("mac-prefix", "bridge"), help="which pool")
    parser.add_argument("--base", required=True, help="first value: a MAC prefix like aa:00:0, or a bridge name prefix")
    parser.add_argument("--size", type=int, required=True, help="how many values")


@command("pool-create", "create the MAC-prefix or bridge pool (IP pools come with subnets)", _createArguments)
async def poolCreate(context: ManageContext, args: argparse.Namespace) -> None:
    kind = KINDS[args.type]
    if not 0 < args.size <= 1 << 20:
        raise BadInput(f"--size must be between 1 and {1 << 20}")
    if kind == poollogic.MAC_PREFIX:
        digits = args.base.replace(":", "")
        if not digits or any(c not in "0123456789abcdefABCDEF" for c in digits) or len(digits) > 10:
            raise BadInput(f"{args.base!r} is not a MAC prefix like aa:00:0")
        if poollogic.macPrefixValue(args.base.lower(), 0) is None:
            raise BadInput(f"{args.base!r} is not a unicast MAC prefix")
        base = args.base.lower()
    else:
        base = args.base
        if not base or not base.replace("-", "").replace("_", "").isalnum() or len(base) > 10:
            raise BadInput(f"{base!r} is not a bridge name prefix (letters, digits, - and _; at most 10)")
    database = await context.database()
    repo = ResourcePoolRepository(database)
    if await repo.get(kind) is not None:
        raise CommandError(f"the {args.type} pool exists already (pool-modify changes it)")
    pool = await repo.ensure(kind, base, args.size, *poollogic.resourcePoolBitmap(kind, base, args.size).dump())
    context.out.write(formatMapping(dict(zip(POOL_COLUMNS, _resourceRow(pool))), context.outputFormat))


def _resourceRow(pool: models.ResourcePool) -> list[Any]:
    counts = poolCounts(pool.size, pool.available, pool.reserved)
    return [SHOWN_KIND[pool.kind], SHOWN_KIND[pool.kind], pool.base, pool.size,
            counts["free"], counts["reserved"], counts["in_use"], None]  # fmt: skip


def _ipRow(pool: models.IPPool) -> list[Any]:
    counts = poolCounts(pool.size, pool.available, pool.reserved)
    return [pool.id, "ip", pool.base, pool.size, counts["free"], counts["reserved"], counts["in_use"], pool.subnet_id]


@command("pool-list", "list the MAC-prefix, bridge and IPv4 pools with their use")
async def poolList(context: ManageContext, args: argparse.Namespace) -> None:
    database = await context.database()
    queries = AdminQueries(database)
    rows = [_resourceRow(p) for p in await queries.resourcePools()]
    rows += [_ipRow(p) for p in await queries.ipPools()]
    context.out.write(formatTable(POOL_COLUMNS, rows, context.outputFormat))


def _showArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pool", type=_poolIdent, help="mac-prefix, bridge or an IP pool id")
    parser.add_argument("--in-use", action="store_true", help="also list every value in use")


@command("pool-show", "show a pool: use, reserved values (and values in use)", _showArguments)
async def poolShow(context: ManageContext, args: argparse.Namespace) -> None:
    database = await context.database()
    data: dict[str, Any]
    if isinstance(args.pool, int):
        ipPool = await AdminQueries(database).ipPool(args.pool)
        if ipPool is None:
            raise CommandError(f"no IP pool {args.pool}")
        data = dict(zip(POOL_COLUMNS, _ipRow(ipPool)))
        data["last"] = poollogic.addressOf(ipPool, ipPool.size - 1)
        bitmap = Bitmap.load(ipPool.size, ipPool.available, ipPool.reserved)
        value = lambda i: poollogic.addressOf(ipPool, i)  # noqa: E731
    else:
        pool = await ResourcePoolRepository(database).get(args.pool)
        if pool is None:
            raise CommandError(f"there is no {SHOWN_KIND[args.pool]} pool")
        data = dict(zip(POOL_COLUMNS, _resourceRow(pool)))
        data.pop("subnet")
        bitmap = Bitmap.load(pool.size, pool.available, pool.reserved)
        value = lambda i: poollogic.resourceValue(pool, i) or f"#{i}"  # noqa: E731
    reserved = [i for i in range(bitmap.size) if bitmap.isReserved(i)]
    data["reserved_values"] = [value(i) for i in reserved[:64]] + (["..."] if len(reserved) > 64 else [])
    if args.in_use:
        data["values_in_use"] = [
            value(i) for i in range(bitmap.size) if not bitmap.isFree(i) and not bitmap.isReserved(i)
        ]
    context.out.write(formatMapping(data, context.outputFormat))


def _modifyArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pool", type=_poolIdent, help="mac-prefix, bridge or an IP pool id")
    parser.add_argument("--add-reserved", type=_values, default=[], metavar="V,V", help="never hand these out")
    parser.add_argument("--remove-reserved", type=_values, default=[], metavar="V,V", help="hand these out again")
    parser.add_argument("--size", type=int, help="new size (MAC-prefix and bridge pools)")


@command("pool-modify", "reserve or release values of a pool; resize the MAC-prefix or bridge pool", _modifyArguments)
async def poolModify(context: ManageContext, args: argparse.Namespace) -> None:
    if args.size is None and not args.add_reserved and not args.remove_reserved:
        raise CommandError("nothing to change (give --add-reserved, --remove-reserved or --size)")
    if args.size is not None:
        if args.add_reserved or args.remove_reserved:
            raise BadInput("give --size alone: reservations and resizing are separate changes")
        if isinstance(args.pool, int):
            raise BadInput("an IP pool's size is its subnet's allocation range; it cannot be changed")
        if not 0 < args.size <= 1 << 20:
            raise BadInput(f"--size must be between 1 and {1 << 20}")
    database = await context.database()
    if args.add_reserved or args.remove_reserved:
        if isinstance(args.pool, int):
            await changeReservations(database, "ip-pool", args.pool, args.add_reserved, args.remove_reserved)
        else:
            await changeReservations(database, args.pool, None, args.add_reserved, args.remove_reserved)
    if args.size is not None:
        await resize(database, args.pool, args.size)
    if isinstance(args.pool, int):
        ipPool = await AdminQueries(database).ipPool(args.pool)
        assert ipPool is not None
        row = _ipRow(ipPool)
    else:
        pool = await ResourcePoolRepository(database).get(args.pool)
        assert pool is not None
        row = _resourceRow(pool)
    context.out.write(formatMapping(dict(zip(POOL_COLUMNS, row)), context.outputFormat))
