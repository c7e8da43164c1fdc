# -*- test-case-name: tests.logic.test_images -*-
"""
The image registry's decisions, as plain functions over models (the I/O
shell is L{synnefo_twisted.logic.imageops}):

 - what a registration or an update asks for, checked field by field
   (Glance v1 metadata, as C{X-Image-Meta-*} headers or a JSON object);
 - where an image is: an C{http(s)://} or C{pithos://} URL, or a local file
   (C{file://} URL or absolute path), and whether a file may be used;
 - who sees and who may change an image or its members;
 - list filters, sorting and the Glance v1 views of an image.

The registry keeps metadata only; it never stores image data.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import attrs

from synnefo_twisted.db.models import Image, ImageMember

# snf-image deploys these formats (Synnefo's Plankton accepts the same).
DISK_FORMATS = ("diskdump", "extdump", "ntfsdump")
CONTAINER_FORMATS = ("aki", "ari", "ami", "bare", "ovf")
LOCATION_SCHEMES = ("http", "https", "pithos", "file")

# registry status -> Glance v1 status
GLANCE_STATUS = {"AVAILABLE": "active", "UNAVAILABLE": "saving", "ERROR": "killed"}
GLANCE_STATUSES = ("queued", "saving", "active", "killed", "deleted", "pending_delete")
REGISTRY_STATUSES = tuple(GLANCE_STATUS)

# Glance v1 metadata an API client may give when registering / updating.
REGISTER_FIELDS = (
    "name",
    "id",
    "location",
    "disk_format",
    "container_format",
    "size",
    "checksum",
    "is_public",
    "min_disk",
    "min_ram",
    "protected",
    "owner",
)
UPDATE_FIELDS = ("name", "disk_format", "container_format", "is_public", "min_disk", "min_ram", "protected", "owner")
READ_ONLY_FIELDS = ("status", "created_at", "updated_at", "deleted_at", "deleted", "virtual_size", "is_snapshot")
UNSUPPORTED_FIELDS = ("store", "copy_from")
KNOWN_FIELDS = frozenset(REGISTER_FIELDS + READ_ONLY_FIELDS + UNSUPPORTED_FIELDS)

SORT_KEYS = ("id", "name", "status", "size", "disk_format", "container_format", "created_at", "updated_at")
SORT_DIRS = ("asc", "desc")

MAX_NAME = 255
MAX_LOCATION = 2048
MAX_PROPERTY_KEY = 255
MAX_PROPERTY_VALUE = 65535
_ID = re.compile(r"^[\w-]{1,255}$", re.ASCII)
_MEMBER = re.compile(r"^[\w@.-]{1,255}$", re.ASCII)
_MD5 = re.compile(r"^[0-9a-fA-F]{32}$")


# -- errors --------------------------------------------------------------------------


class ImageRequestError(Exception):
    """
    A refused image request; the web layer maps the subclass to a fault.

    @ivar field: the metadata field at fault, when one is.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidImageRequest(ImageRequestError):
    """
    Malformed or unacceptable metadata (400).
    """


class ImageForbidden(ImageRequestError):
    """
    The caller sees the image but may not do this (403).
    """


class ImageNotFound(ImageRequestError):
    """
    No such image, or not one the caller may see (404).
    """


class ImageConflict(ImageRequestError):
    """
    The request collides with an existing image (409).
    """


def _invalid(field: str, why: str) -> InvalidImageRequest:
    return InvalidImageRequest(f"Invalid '{field}' field: {why}", field)


# -- value parsing (header strings or JSON values) -------------------------------------


def _text(value: object, field: str, maxLength: int = MAX_NAME, allowEmpty: bool = False) -> str:
    if not isinstance(value, str):
        raise _invalid(field, "not a string")
    if not value.strip() and not allowEmpty:
        raise _invalid(field, "empty")
    if len(value) > maxLength:
        raise _invalid(field, f"longer than {maxLength} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise _invalid(field, "control characters are not allowed")
    return value


def _bool(value: object, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _invalid(field, f"{value!r} is not true or false")


def _int(value: object, field: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    else:
        raise _invalid(field, f"{value!r} is not a non-negative integer")
    if number < 0 or number >= 2**63:
        raise _invalid(field, f"{value!r} is out of range")
    return number


def _choice(value: object, field: str, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise _invalid(field, f"{value!r} is not one of {', '.join(choices)}")
    return value


def _checksum(value: object) -> str:
    if not isinstance(value, str) or not _MD5.match(value.strip()):
        raise _invalid("checksum", "not an MD5 digest (32 hexadecimal digits)")
    return value.strip().lower()


def memberId(value: object, field: str = "member_id") -> str:
    """
    A member (user uuid) as given in a URL or a body.
    """
    if not isinstance(value, str) or not _MEMBER.match(value):
        raise _invalid(field, "a member id is 1-255 letters, digits, '_', '-', '.' or '@'")
    return value


def imageId(value: object) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise _invalid("id", "an image id is 1-255 letters, digits, '_' or '-'")
    return value


def parseProperties(properties: object) -> dict[str, str]:
    """
    Custom properties (free-form metadata): string keys and values.
    """
    if not isinstance(properties, Mapping):
        raise _invalid("properties", "not an object")
    result: dict[str, str] = {}
    for key, value in properties.items():
        if not isinstance(key, str) or not key.strip() or len(key) > MAX_PROPERTY_KEY:
            raise _invalid("properties", f"bad property name {key!r}")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise _invalid(f"properties.{key}", "a property value is a string")
        text = str(value)
        if len(text) > MAX_PROPERTY_VALUE:
            raise _invalid(f"properties.{key}", f"longer than {MAX_PROPERTY_VALUE} characters")
        result[key] = text
    return result


# -- locations ---------------------------------------------------------------------------


@attrs.frozen
class Location:
    """
    Where an image is: C{url} as stored; C{path} the local file for
    C{file} locations (else None).
    """

    url: str
    scheme: str
    path: str | None = None


def parseLocation(raw: object) -> Location:
    """
    An image location: C{http(s)://host/...}, C{pithos://account/container/object},
    C{file:///absolute/path} or an absolute path (made a C{file://} URL).
    """
    field = "location"
    text = _text(raw, field, maxLength=MAX_LOCATION).strip()
    if text.startswith("/"):
        text = "file://" + quote(text)
    if any(c.isspace() for c in text):
        raise _invalid(field, "white space is not allowed in a URL (percent-encode it)")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in LOCATION_SCHEMES:
        raise _invalid(field, f"the scheme must be one of {', '.join(LOCATION_SCHEMES)} (or give an absolute path)")
    if scheme in ("http", "https"):
        if not parts.hostname:
            raise _invalid(field, "a URL needs a host")
        return Location(text, scheme)
    if scheme == "pithos":
        segments = [s for s in parts.path.split("/") if s]
        if not parts.netloc or len(segments) < 2:
            raise _invalid(field, "a Pithos location is pithos://<account>/<container>/<object>")
        return Location(text, scheme)
    if parts.netloc not in ("", "localhost"):
        raise _invalid(field, "a file location is on this host (file:///path)")
    if parts.query or parts.fragment:
        raise _invalid(field, "a file location has no query or fragment")
    path = unquote(parts.path)
    if not path.startswith("/") or "\x00" in path:
        raise _invalid(field, "a file location needs an absolute path")
    normalized = posixpath.normpath(path)
    if normalized != path.rstrip("/") or path.endswith("/"):
        raise _invalid(field, "a file path must be normalized (no '.', '..' or '//' parts, no trailing '/')")
    return Location("file://" + quote(normalized), scheme, normalized)


def withinRoots(realPath: str, roots: Iterable[str]) -> bool:
    """
    Whether a resolved path lies below one of C{roots} (resolved directories).
    """
    for root in roots:
        base = root.rstrip("/") or "/"
        if realPath == base or realPath.startswith(base.rstrip("/") + "/"):
            return True
    return False


@attrs.frozen
class FileFacts:
    """
    What the registry learns from an image file: its size and MD5.
    """

    size: int
    checksum: str


# -- registration and updates ---------------------------------------------------------------


@attrs.frozen
class Caller:
    """
    Who asks: a user uuid, with or without the admin role.
    """

    uuid: str
    isAdmin: bool = False


@attrs.frozen
class RegisterRequest:
    name: str
    location: Location
    diskFormat: str = "diskdump"
    containerFormat: str = "bare"
    isPublic: bool = False
    minDisk: int = 0
    minRam: int = 0
    protected: bool = False
    size: int | None = None
    checksum: str | None = None
    owner: str | None = None
    imageId: str | None = None
    properties: Mapping[str, str] = attrs.field(factory=dict)


def _checkFieldNames(meta: Mapping[str, object], allowed: Sequence[str], unchangeable: Sequence[str] = ()) -> None:
    for name in sorted(meta):
        if name in allowed:
            continue
        if name in READ_ONLY_FIELDS:
            raise InvalidImageRequest(f"'{name}' is read-only", name)
        if name in UNSUPPORTED_FIELDS:
            raise InvalidImageRequest(
                f"'{name}' is not supported: the registry keeps no image data (give 'location')", name
            )
        if name in unchangeable:
            raise InvalidImageRequest(f"'{name}' cannot be changed after registration", name)
        raise InvalidImageRequest(f"Unknown image field '{name}'", name)


def parseRegistration(meta: Mapping[str, object], properties: Mapping[str, object]) -> RegisterRequest:
    """
    A registration from Glance v1 metadata (field name -> header string
    or JSON value) and custom properties.

    @raise InvalidImageRequest: naming the first bad field.
    """
    _checkFieldNames(meta, REGISTER_FIELDS)
    if "name" not in meta:
        raise InvalidImageRequest("Missing image field 'name'", "name")
    if "location" not in meta:
        raise InvalidImageRequest(
            "Missing image field 'location': the registry keeps no image data; "
            "give the image's location (an http(s)/pithos URL or a file path)",
            "location",
        )
    return RegisterRequest(
        name=_text(meta["name"], "name"),
        location=parseLocation(meta["location"]),
        diskFormat=_choice(meta.get("disk_format", "diskdump"), "disk_format", DISK_FORMATS),
        containerFormat=_choice(meta.get("container_format", "bare"), "container_format", CONTAINER_FORMATS),
        isPublic=_bool(meta.get("is_public", False), "is_public"),
        minDisk=_int(meta.get("min_disk", 0), "min_disk"),
        minRam=_int(meta.get("min_ram", 0), "min_ram"),
        protected=_bool(meta.get("protected", False), "protected"),
        size=_int(meta["size"], "size") if "size" in meta else None,
        checksum=_checksum(meta["checksum"]) if meta.get("checksum") not in (None, "") else None,
        owner=memberId(meta["owner"], "owner") if "owner" in meta else None,
        imageId=imageId(meta["id"]) if "id" in meta else None,
        properties=parseProperties(properties),
    )


def checkRegistration(request: RegisterRequest, caller: Caller | None) -> str:
    """
    The owner of the image to register: the caller, or who an admin (or
    the operator, C{caller} None) names.

    @raise ImageForbidden: a plain user registers for someone else.
    """
    if caller is None:
        return request.owner or "system"
    if request.owner is not None and request.owner != caller.uuid and not caller.isAdmin:
        raise ImageForbidden("Only an administrator may register an image for another owner", "owner")
    return request.owner or caller.uuid


def reconcileFile(request: RegisterRequest, facts: FileFacts) -> tuple[int, str]:
    """
    The size and checksum of a file image: the file's, which what the
    request declares must match.
    """
    if request.size is not None and request.size != facts.size:
        raise InvalidImageRequest(
            f"Invalid 'size' field: {request.size} does not match the file ({facts.size} bytes)", "size"
        )
    if request.checksum is not None and request.checksum != facts.checksum:
        raise InvalidImageRequest(
            f"Invalid 'checksum' field: {request.checksum} does not match the file's MD5 {facts.checksum}", "checksum"
        )
    return facts.size, facts.checksum


@attrs.frozen
class UpdateRequest:
    """
    Field changes (model column -> value) and properties to set; with
    C{purge} the properties become exactly these.
    """

    fields: Mapping[str, object] = attrs.field(factory=dict)
    properties: Mapping[str, str] = attrs.field(factory=dict)
    purge: bool = False


_UPDATE_COLUMNS = {
    "name": "name",
    "disk_format": "disk_format",
    "container_format": "container_format",
    "is_public": "is_public",
    "min_disk": "min_disk",
    "min_ram": "min_ram",
    "protected": "protected",
    "owner": "owner",
}


def parseUpdate(meta: Mapping[str, object], properties: Mapping[str, object], purge: bool = False) -> UpdateRequest:
    """
    An update from Glance v1 metadata; location, size, checksum and id are
    fixed at registration.
    """
    _checkFieldNames(meta, UPDATE_FIELDS, unchangeable=("location", "size", "checksum", "id"))
    fields: dict[str, object] = {}
    for name, value in meta.items():
        if name == "name":
            fields["name"] = _text(value, "name")
        elif name == "disk_format":
            fields["disk_format"] = _choice(value, name, DISK_FORMATS)
        elif name == "container_format":
            fields["container_format"] = _choice(value, name, CONTAINER_FORMATS)
        elif name in ("is_public", "protected"):
            fields[name] = _bool(value, name)
        elif name in ("min_disk", "min_ram"):
            fields[name] = _int(value, name)
        elif name == "owner":
            fields["owner"] = memberId(value, "owner")
    return UpdateRequest(fields, parseProperties(properties), purge)


# -- who may do what -------------------------------------------------------------------------


def canSee(image: Image, caller: Caller, isMember: bool) -> bool:
    """
    Live images that are public, the caller's, or shared with the caller;
    an admin reaches any live image by its id (lists stay the same).
    """
    return not image.deleted and (image.is_public or image.owner == caller.uuid or isMember or caller.isAdmin)


def checkModify(image: Image, caller: Caller, change: UpdateRequest | None = None) -> None:
    """
    The owner (or an admin) changes or deletes an image; only an admin
    gives it to another owner.

    @raise ImageForbidden: otherwise.
    """
    if image.owner != caller.uuid and not caller.isAdmin:
        raise ImageForbidden(f"Only the owner may modify image {image.id}")
    if change is not None and "owner" in change.fields and change.fields["owner"] != image.owner:
        if not caller.isAdmin:
            raise ImageForbidden("Only an administrator may change the owner of an image", "owner")


def checkDelete(image: Image, caller: Caller | None) -> None:
    if caller is not None:
        checkModify(image, caller)
    if image.protected:
        raise ImageForbidden(f"Image {image.id} is protected; unprotect it first", "protected")


def checkShare(image: Image, caller: Caller, membership: ImageMember | None) -> None:
    """
    The owner, an admin, or a member allowed to share changes the members.
    """
    if image.owner == caller.uuid or caller.isAdmin:
        return
    if membership is not None and membership.can_share:
        return
    raise ImageForbidden(f"You may not share image {image.id}")


def parseMemberships(body: object) -> list[tuple[str, bool | None]]:
    """
    The body of C{PUT /images/<id>/members}:
    C{{"memberships": [{"member_id": M, "can_share": B}, ...]}}.
    """
    if not isinstance(body, Mapping) or "memberships" not in body:
        raise InvalidImageRequest("Malformed request. Missing attribute 'memberships'.", "memberships")
    items = body["memberships"]
    if not isinstance(items, list):
        raise InvalidImageRequest("Malformed request. Invalid 'memberships' field", "memberships")
    result: dict[str, bool | None] = {}
    for index, item in enumerate(items):
        where = f"memberships[{index}]"
        if not isinstance(item, Mapping):
            raise InvalidImageRequest(f"Malformed request. Invalid '{where}' field", where)
        if "member_id" not in item:
            raise InvalidImageRequest(f"Malformed request. Missing attribute '{where}.member_id'.", where)
        member = memberId(item["member_id"], f"{where}.member_id")
        canShare = item.get("can_share")
        if canShare is not None and not isinstance(canShare, bool):
            raise _invalid(f"{where}.can_share", "not true or false")
        result[member] = canShare
    return list(result.items())


def parseMemberBody(body: object) -> bool | None:
    """
    The optional body of C{PUT /images/<id>/members/<member>}:
    C{{"member": {"can_share": B}}} or C{{"can_share": B}}; None when absent.
    """
    if body is None:
        return None
    if not isinstance(body, Mapping):
        raise InvalidImageRequest("Malformed request. Invalid 'member' field", "member")
    inner = body.get("member", body)
    if not isinstance(inner, Mapping):
        raise InvalidImageRequest("Malformed request. Invalid 'member' field", "member")
    canShare = inner.get("can_share")
    if canShare is not None and not isinstance(canShare, bool):
        raise _invalid("can_share", "not true or false")
    return canShare


# -- lists ----------------------------------------------------------------------------------------


@attrs.frozen
class ListQuery:
    name: str | None = None
    containerFormat: str | None = None
    diskFormat: str | None = None
    status: str | None = None
    sizeMin: int | None = None
    sizeMax: int | None = None
    isPublic: bool | None = None
    properties: Mapping[str, str] = attrs.field(factory=dict)
    sortKey: str = "created_at"
    sortDir: str = "desc"
    changesSince: datetime | None = None


def parseListQuery(args: Mapping[str, str]) -> ListQuery:
    """
    Glance v1 list parameters: filters C{name}, C{container_format},
    C{disk_format}, C{status}, C{size_min}, C{size_max}, C{is_public},
    C{property-KEY} and C{changes-since} (images updated since then,
    deleted ones included); C{sort_key} and C{sort_dir}.
    """
    status = args.get("status")
    if status is not None:
        status = status.lower()
        if status not in GLANCE_STATUSES:
            raise _invalid("status", f"{args['status']!r} is not one of {', '.join(GLANCE_STATUSES)}")
    sortKey = args.get("sort_key", "created_at")
    if sortKey not in SORT_KEYS:
        raise _invalid("sort_key", f"{sortKey!r} is not one of {', '.join(SORT_KEYS)}")
    sortDir = args.get("sort_dir", "desc")
    if sortDir not in SORT_DIRS:
        raise _invalid("sort_dir", f"{sortDir!r} is not asc or desc")
    public = args.get("is_public")
    since = None
    if "changes-since" in args:
        try:
            since = datetime.fromisoformat(args["changes-since"].strip().replace("Z", "+00:00"))
        except ValueError:
            raise _invalid("changes-since", f"{args['changes-since']!r} is not an ISO 8601 time") from None
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
    return ListQuery(
        name=args.get("name"),
        containerFormat=args.get("container_format"),
        diskFormat=args.get("disk_format"),
        status=status,
        sizeMin=_int(args["size_min"], "size_min") if "size_min" in args else None,
        sizeMax=_int(args["size_max"], "size_max") if "size_max" in args else None,
        isPublic=None if public in (None, "none") else _bool(public, "is_public"),
        properties={k[len("property-") :]: v for k, v in args.items() if k.startswith("property-")},
        sortKey=sortKey,
        sortDir=sortDir,
        changesSince=since,
    )


def glanceStatus(image: Image) -> str:
    if image.deleted:
        return "deleted"
    return GLANCE_STATUS.get(image.status, "killed")


def _matches(image: Image, query: ListQuery) -> bool:
    if query.changesSince is None:
        if image.deleted:
            return False
    elif image.updated < query.changesSince:
        return False
    if query.name is not None and image.name != query.name:
        return False
    if query.containerFormat is not None and image.container_format != query.containerFormat:
        return False
    if query.diskFormat is not None and image.disk_format != query.diskFormat:
        return False
    if query.status is not None and glanceStatus(image) != query.status:
        return False
    if query.sizeMin is not None and image.size < query.sizeMin:
        return False
    if query.sizeMax is not None and image.size > query.sizeMax:
        return False
    if query.isPublic is not None and image.is_public != query.isPublic:
        return False
    folded = {k.casefold(): v for k, v in image.properties.items()}
    return all(folded.get(k.casefold()) == v for k, v in query.properties.items())


def _sortValue(image: Image, key: str) -> Any:
    if key == "created_at":
        return image.created
    if key == "updated_at":
        return image.updated
    if key == "status":
        return glanceStatus(image)
    return getattr(image, key)


def selectImages(images: Iterable[Image], query: ListQuery) -> list[Image]:
    """
    The images matching C{query}, sorted (ties broken by id, same direction).
    """
    chosen = [i for i in images if _matches(i, query)]
    return sorted(chosen, key=lambda i: (_sortValue(i, query.sortKey), i.id), reverse=query.sortDir == "desc")


# -- views --------------------------------------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat() + "+00:00"


def briefView(image: Image) -> dict[str, Any]:
    return {
        "id": image.id,
        "name": image.name,
        "status": glanceStatus(image),
        "disk_format": image.disk_format,
        "container_format": image.container_format,
        "size": image.size,
        "checksum": image.checksum or None,
    }


def detailView(image: Image, showLocation: bool) -> dict[str, Any]:
    """
    Glance v1 detail (plus Synnefo's C{is_snapshot}); the location is shown
    to the owner and admins only.
    """
    view = briefView(image)
    view.update(
        {
            "created_at": _iso(image.created),
            "updated_at": _iso(image.updated),
            "deleted_at": _iso(image.deleted_at),
            "deleted": image.deleted,
            "is_public": image.is_public,
            "owner": image.owner,
            "min_disk": image.min_disk,
            "min_ram": image.min_ram,
            "protected": image.protected,
            "virtual_size": None,
            "is_snapshot": image.is_snapshot,
            "properties": dict(sorted(image.properties.items())),
        }
    )
    if showLocation:
        view["location"] = image.location
    return view


def _headerValue(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    return quote(str(value), safe="/:@+=,;!$&'()*~")


def metaHeaders(image: Image, showLocation: bool) -> list[tuple[str, str]]:
    """
    The image as Glance v1 response headers: C{X-Image-Meta-<field>} and
    C{X-Image-Meta-Property-<key>} (C{_} written C{-}); values are
    percent-encoded UTF-8.
    """
    view = detailView(image, showLocation)
    properties = view.pop("properties")
    headers = [(f"X-Image-Meta-{name.replace('_', '-').title()}", _headerValue(value)) for name, value in view.items()]
    for key, value in properties.items():
        headers.append((f"X-Image-Meta-Property-{quote(key.replace('_', '-'), safe='')}", _headerValue(value)))
    return headers


def headerFieldName(suffix: str) -> str:
    """
    A metadata field from the part of a header name after C{X-Image-Meta-}:
    case folded, C{-} read as C{_} (so C{Disk-Format} and C{disk_format} agree).
    """
    return suffix.lower().replace("-", "_")


def headerPropertyName(suffix: str) -> str:
    """
    A property key from the part after C{X-Image-Meta-Property-}: header
    names carry no case, so keys read from headers are lower case with C{_}
    for C{-} (an existing key matching but for case is updated in place).
    """
    return unquote(suffix).lower().replace("-", "_")


def memberView(member: ImageMember) -> dict[str, Any]:
    return {"member_id": member.member, "can_share": member.can_share}


def sharedView(member: ImageMember) -> dict[str, Any]:
    return {"image_id": member.image_id, "can_share": member.can_share}
