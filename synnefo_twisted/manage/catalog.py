# -*- test-case-name: tests.manage.test_catalog -*-
"""
Catalog commands: flavor-create/list/modify, image-register/list/show/modify/remove
(the image commands go through the image registry, L{synnefo_twisted.logic.imageops},
so they validate as the image API does).
"""

from __future__ import annotations

import argparse
import itertools
from typing import Any

from synnefo_twisted.db.images import ImageRegistryRepository
from synnefo_twisted.db.models import Image, ImageMember
from synnefo_twisted.db.repositories import FlavorRepository, ImageRepository
from synnefo_twisted.logic import images
from synnefo_twisted.logic.imageops import ImageRegistry
from synnefo_twisted.logic.images import ImageForbidden, ImageRequestError
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


def _nonNegative(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, not {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, not {value!r}")
    return number


def _registry(context: ManageContext, database: Any) -> ImageRegistry:
    # the operator is not limited to the API's image file roots
    return ImageRegistry(database, context.reactor, None)


def _imageData(image: Image, members: list[ImageMember] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": image.id,
        "name": image.name,
        "owner": image.owner,
        "status": image.status,
        "public": image.is_public,
        "snapshot": image.is_snapshot,
        "protected": image.protected,
        "location": image.location,
        "size": image.size,
        "checksum": image.checksum,
        "disk_format": image.disk_format,
        "container_format": image.container_format,
        "min_disk": image.min_disk,
        "min_ram": image.min_ram,
        "deleted": image.deleted,
        "created": image.created.isoformat(),
        "updated": image.updated.isoformat(),
    }
    if image.deleted_at is not None:
        data["deleted_at"] = image.deleted_at.isoformat()
    data.update({f"property {k}": v for k, v in sorted(image.properties.items())})
    if members is not None:
        data["members"] = ",".join(f"{m.member}{' (can share)' if m.can_share else ''}" for m in members)
    return data


def _imageRegisterArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="image name")
    parser.add_argument(
        "location",
        help="where snf-image finds it: an http(s):// or pithos:// URL, or a file (file:// URL or absolute path), "
        "whose size and MD5 are then read from it",
    )
    parser.add_argument("--owner", default="system", help="owner uuid (default: system)")
    parser.add_argument("--public", action="store_true", help="visible to everyone")
    parser.add_argument("--protected", action="store_true", help="refuse deletion until unprotected")
    parser.add_argument("--id", help="image id (default: a new UUID)")
    parser.add_argument("--size", type=_nonNegative, help="size in bytes (checked against a file)")
    parser.add_argument("--checksum", help="MD5 of the image (checked against a file)")
    parser.add_argument("--disk-format", default="diskdump", help="diskdump, extdump or ntfsdump (default diskdump)")
    parser.add_argument("--container-format", default="bare", help="aki, ari, ami, bare or ovf (default bare)")
    parser.add_argument("--min-disk", type=_nonNegative, default=0, help="disk (GiB) a server needs")
    parser.add_argument("--min-ram", type=_nonNegative, default=0, help="RAM (MiB) a server needs")
    parser.add_argument(
        "--property", "-p", type=_property, action="append", default=[], metavar="KEY=VALUE", help="metadata (repeat)"
    )


@command("image-register", "register an image in the registry (the image API's validation)", _imageRegisterArguments)
async def imageRegister(context: ManageContext, args: argparse.Namespace) -> None:
    meta: dict[str, object] = {
        "name": args.name,
        "location": args.location,
        "owner": args.owner,
        "is_public": args.public,
        "protected": args.protected,
        "disk_format": args.disk_format,
        "container_format": args.container_format,
        "min_disk": args.min_disk,
        "min_ram": args.min_ram,
    }
    for key, value in (("id", args.id), ("size", args.size), ("checksum", args.checksum)):
        if value is not None:
            meta[key] = value
    registry = _registry(context, await context.database())
    try:
        request = images.parseRegistration(meta, dict(args.property))
        image = await registry.register(request, None)
    except ImageRequestError as e:
        raise CommandError(e.message) from None
    context.out.write(formatMapping(_imageData(image), context.outputFormat))


@command("image-list", "list registered images", _listArguments)
async def imageList(context: ManageContext, args: argparse.Namespace) -> None:
    found = await ImageRepository(await context.database()).list(includeDeleted=args.deleted)
    rows = [[i.id, i.name, i.owner, i.status, i.is_public, i.is_snapshot, i.size, i.location, i.deleted] for i in found]
    context.out.write(formatTable(IMAGE_COLUMNS, rows, context.outputFormat))


def _imageIdArgument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="image id")


async def _getImage(context: ManageContext, imageId: str) -> Image:
    image = await ImageRepository(await context.database()).get(imageId)
    if image is None:
        raise CommandError(f"no image {imageId}")
    return image


@command("image-show", "show an image: fields, properties and members", _imageIdArgument)
async def imageShow(context: ManageContext, args: argparse.Namespace) -> None:
    image = await _getImage(context, args.id)
    members = await ImageRegistryRepository(await context.database()).members(image.id)
    context.out.write(formatMapping(_imageData(image, members), context.outputFormat))


def _imageModifyArguments(parser: argparse.ArgumentParser) -> None:
    _imageIdArgument(parser)
    parser.add_argument("--name", help="new name")
    parser.add_argument("--owner", help="new owner uuid")
    parser.add_argument("--public", type=parseBool, metavar="True|False", help="visible to everyone")
    parser.add_argument("--protected", type=parseBool, metavar="True|False", help="refuse deletion")
    parser.add_argument("--disk-format", help="diskdump, extdump or ntfsdump")
    parser.add_argument("--container-format", help="aki, ari, ami, bare or ovf")
    parser.add_argument("--min-disk", type=_nonNegative, help="disk (GiB) a server needs")
    parser.add_argument("--min-ram", type=_nonNegative, help="RAM (MiB) a server needs")
    parser.add_argument("--status", help="AVAILABLE, UNAVAILABLE or ERROR")
    parser.add_argument(
        "--property", "-p", type=_property, action="append", default=[], metavar="KEY=VALUE", help="set metadata"
    )
    parser.add_argument("--remove-property", action="append", default=[], metavar="KEY", help="drop metadata")
    parser.add_argument("--add-member", action="append", default=[], metavar="UUID", help="share with a user")
    parser.add_argument("--remove-member", action="append", default=[], metavar="UUID", help="stop sharing")


@command("image-modify", "change an image's fields, status, properties or members", _imageModifyArguments)
async def imageModify(context: ManageContext, args: argparse.Namespace) -> None:
    meta = {
        key: value
        for key, value in (
            ("name", args.name),
            ("owner", args.owner),
            ("is_public", args.public),
            ("protected", args.protected),
            ("disk_format", args.disk_format),
            ("container_format", args.container_format),
            ("min_disk", args.min_disk),
            ("min_ram", args.min_ram),
        )
        if value is not None
    }
    if not (meta or args.status or args.property or args.remove_property or args.add_member or args.remove_member):
        raise CommandError(
            "nothing to change (give --name, --owner, --public, --protected, --disk-format, --container-format, "
            "--min-disk, --min-ram, --status, --property, --remove-property, --add-member or --remove-member)"
        )
    database = await context.database()
    registry = _registry(context, database)
    members = ImageRegistryRepository(database)
    try:
        change = images.parseUpdate(meta, dict(args.property))
        added = [images.memberId(m, "--add-member") for m in args.add_member]
        removed = [images.memberId(m, "--remove-member") for m in args.remove_member]
        if args.status is not None and args.status not in images.REGISTRY_STATUSES:
            raise images.InvalidImageRequest(
                f"Invalid 'status' field: {args.status!r} is not one of {', '.join(images.REGISTRY_STATUSES)}",
                "status",
            )
        image = await registry.get(args.id, None)
        image = await registry.update(image.id, change, None)
        if args.status is not None:
            image = await registry.setStatus(image.id, args.status)
        if args.remove_property:
            image = await registry.removeProperties(image.id, args.remove_property)
        for member in added:
            await members.addMember(image.id, member)
        for member in removed:
            await members.removeMember(image.id, member)
    except ImageRequestError as e:
        raise CommandError(e.message) from None
    context.out.write(formatMapping(_imageData(image, await members.members(image.id)), context.outputFormat))


@command("image-remove", "delete an image (refused while it is protected)", _imageIdArgument)
async def imageRemove(context: ManageContext, args: argparse.Namespace) -> None:
    registry = _registry(context, await context.database())
    try:
        await registry.delete(args.id, None)
    except ImageForbidden as e:
        raise CommandError(f"{e.message} (image-modify {args.id} --protected False)") from None
    except ImageRequestError as e:
        raise CommandError(e.message) from None
    context.out.write(formatMapping({"id": args.id, "deleted": True}, context.outputFormat))
