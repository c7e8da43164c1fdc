# -*- test-case-name: tests.manage.test_catalog -*-
"""
Catalog commands: flavor-create/list/modify, image-register/list.
"""

from __future__ import annotations

import argparse
import itertools
from typing import Any

from synnefo_twisted.db.repositories import FlavorRepository, ImageRepository
from synnefo_twisted.manage.base import CommandError, ManageContext, command
from synnefo_twisted.manage.output import formatMapping, formatTable
from synnefo_twisted.manage.users import parseBool

FLAVOR_COLUMNS = [
    "id",
    "name",
    "cpu",
    "ram",
    "disk",
    "volume_type",
    "disk_template",
    "public",
    "allow_create",
    "deleted",
]
IMAGE_COLUMNS = ["id", "name", "owner", "status", "public", "snapshot", "size", "location", "deleted"]


def _ints(value: str) -> list[int]:
    try:
        numbers = [int(v) for v in value.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, not {value!r}") from None
    if any(n <= 0 for n in numbers):
        raise argparse.ArgumentTypeError(f"values must be positive: {value!r}")
    return numbers


def _flavorCreateArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cpu", type=_ints, help="CPUs (comma-separated list)")
    parser.add_argument("ram", type=_ints, help="RAM in MiB (comma-separated list)")
    parser.add_argument("disk", type=_ints, help="disk in GiB (comma-separated list)")
    parser.add_argument(
        "volume_type",
        help="volume type ids or disk templates (comma-separated); a template without a volume type gets one",
    )
    parser.add_argument("--public", type=parseBool, default=True, metavar="True|False", help="visible to everyone")
    parser.add_argument("-n", "--dry-run", action="store_true", help="show what would be created")


@command(
    "flavor-create", "create flavors: the cartesian product of cpu, ram, disk and volume types", _flavorCreateArguments
)
async def flavorCreate(context: ManageContext, args: argparse.Namespace) -> None:
    flavors = FlavorRepository(await context.database())
    known = await flavors.volumeTypes()
    volumeTypes: list[tuple[int | None, str]] = []
    for item in args.volume_type.split(","):
        if item.isdigit():
            match = [t for t in known if t.id == int(item)]
            if not match:
                raise CommandError(f"no volume type {item}")
            volumeTypes.append((match[0].id, match[0].disk_template))
        elif item:
            existing = [t for t in known if t.disk_template == item and not t.deleted]
            volumeTypes.append((existing[0].id if existing else None, item))
        else:
            raise CommandError("empty volume type")
    if not args.dry_run:
        resolved: list[tuple[int | None, str]] = []
        for vtId, template in volumeTypes:
            if vtId is None:
                vtId = (await flavors.addVolumeType(template, template)).id
            resolved.append((vtId, template))
        volumeTypes = resolved
    rows = []
    for cpu, ram, disk, (vtId, template) in itertools.product(args.cpu, args.ram, args.disk, volumeTypes):
        if vtId is not None and await flavors.bySpec(cpu, ram, disk, vtId) is not None:
            context.err.write(f"flavor C{cpu}R{ram}D{disk}{template} exists, skipped\n")
            continue
        if args.dry_run or vtId is None:
            rows.append(
                ["-", f"C{cpu}R{ram}D{disk}{template}", cpu, ram, disk, vtId, template, args.public, True, False]
            )
            continue
        flavor = await flavors.create(cpu, ram, disk, vtId, public=args.public)
        rows.append(
            [flavor.id, flavor.name, cpu, ram, disk, vtId, template, flavor.public, flavor.allow_create, flavor.deleted]
        )
    context.out.write(formatTable(FLAVOR_COLUMNS, rows, context.outputFormat))


def _listArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--deleted", action="store_true", help="include deleted ones")


@command("flavor-list", "list flavors", _listArguments)
async def flavorList(context: ManageContext, args: argparse.Namespace) -> None:
    flavors = FlavorRepository(await context.database())
    templates = {t.id: t.disk_template for t in await flavors.volumeTypes()}
    rows = [
        [f.id, f.name, f.cpu, f.ram, f.disk, f.volume_type_id, templates.get(f.volume_type_id, ""), f.public]
        + [f.allow_create, f.deleted]
        for f in await flavors.list(includeDeleted=args.deleted)
    ]
    context.out.write(formatTable(FLAVOR_COLUMNS, rows, context.outputFormat))


def _flavorModifyArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", type=int, help="flavor id")
    parser.add_argument("--name", help="new name")
    parser.add_argument("--deleted", type=parseBool, metavar="True|False", help="delete (or undelete) the flavor")
    parser.add_argument("--allow-create", type=parseBool, metavar="True|False", help="allow new servers with it")
    parser.add_argument("--public", type=parseBool, metavar="True|False", help="visible to everyone")


@command("flavor-modify", "change a flavor's name, deleted, allow-create or public flags", _flavorModifyArguments)
async def flavorModify(context: ManageContext, args: argparse.Namespace) -> None:
    fields: dict[str, Any] = {
        key: value
        for key, value in (
            ("name", args.name),
            ("deleted", args.deleted),
            ("allow_create", args.allow_create),
            ("public", args.public),
        )
        if value is not None
    }
    if not fields:
        raise CommandError("nothing to change (give --name, --deleted, --allow-create or --public)")
    flavor = await FlavorRepository(await context.database()).modify(args.id, **fields)
    if flavor is None:
        raise CommandError(f"no flavor {args.id}")
    context.out.write(formatMapping({k: getattr(flavor, k) for k in ("id", "name", *fields)}, context.outputFormat))


def _property(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {value!r}")
    return key, val


def _imageRegisterArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="image name")
    parser.add_argument("location", help="where snf-image finds it: a URL or a file path")
    parser.add_argument("--owner", default="system", help="owner uuid (default: system)")
    parser.add_argument("--public", action="store_true", help="visible to everyone")
    parser.add_argument("--id", help="image id (default: a new UUID)")
    parser.add_argument("--size", type=int, default=0, help="size in bytes")
    parser.add_argument("--checksum", default="", help="checksum of the image file")
    parser.add_argument("--disk-format", default="diskdump", help="diskdump, raw, ... (default diskdump)")
    parser.add_argument(
        "--property", "-p", type=_property, action="append", default=[], metavar="KEY=VALUE", help="metadata (repeat)"
    )


@command("image-register", "register an image in the registry", _imageRegisterArguments)
async def imageRegister(context: ManageContext, args: argparse.Namespace) -> None:
    location = args.location
    if "://" not in location:
        if not location.startswith("/"):
            raise CommandError(f"location {location!r} must be a URL or an absolute path")
        location = "file://" + location
    images = ImageRepository(await context.database())
    if args.id and await images.get(args.id) is not None:
        raise CommandError(f"image {args.id} exists")
    image = await images.register(
        args.name,
        args.owner,
        location,
        imageId=args.id,
        size=args.size,
        checksum=args.checksum,
        diskFormat=args.disk_format,
        isPublic=args.public,
        properties=dict(args.property),
    )
    data = {"id": image.id, "name": image.name, "owner": image.owner, "public": image.is_public, "location": location}
    data.update({f"property {k}": v for k, v in sorted(image.properties.items())})
    context.out.write(formatMapping(data, context.outputFormat))


@command("image-list", "list registered images", _listArguments)
async def imageList(context: ManageContext, args: argparse.Namespace) -> None:
    images = await ImageRepository(await context.database()).list(includeDeleted=args.deleted)
    rows = [
        [i.id, i.name, i.owner, i.status, i.is_public, i.is_snapshot, i.size, i.location, i.deleted] for i in images
    ]
    context.out.write(formatTable(IMAGE_COLUMNS, rows, context.outputFormat))
