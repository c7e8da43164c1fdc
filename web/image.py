# -*- test-case-name: tests.web.test_image -*-
"""
The Image API (Synnefo's Plankton: Glance v1 over the image registry),
under C{/image/v1.0} and C{/image/v1} (spec §1.6):

 - C{GET /image}: version discovery (no token);
 - C{GET|POST /images}, C{GET /images/detail}: list (filters, sorting,
   C{limit}/C{marker}) and register;
 - C{HEAD|GET|PUT|DELETE /images/<id>}: metadata as C{X-Image-Meta-*}
   headers (and as JSON for GET/PUT), update, delete (204);
 - C{GET|PUT /images/<id>/members}, C{PUT|DELETE /images/<id>/members/<member>},
   C{GET /shared-images/<member>}: sharing.

Metadata comes as Glance v1 headers (C{X-Image-Meta-Name}, ...,
C{X-Image-Meta-Property-<key>}; name and property values percent-encoded
UTF-8) or, as openstacksdk sends it, a JSON body C{{"image": {...}}}. The
registry keeps metadata only: a request carrying image data is refused
(501) and registration needs C{location}.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

from twisted.web.iweb import IRequest

from synnefo_twisted.db.models import Image, User
from synnefo_twisted.logic import images as logic
from synnefo_twisted.logic.imageops import ImageRegistry
from synnefo_twisted.logic.images import (
    Caller,
    ImageConflict,
    ImageForbidden,
    ImageNotFound,
    ImageRequestError,
    InvalidImageRequest,
)
from web.faults import BadRequest, Conflict, Fault, Forbidden, ItemNotFound, NotImplementedFault
from web.http import Reply, paginate, queryArg
from web.routing import Router

VERSIONS = ("v1.0", "v1")
_UPDATED = "2012-01-01T00:00:00Z"
_META = "x-image-meta-"
_PROPERTY = "x-image-meta-property-"
_PURGE = b"x-glance-registry-purge-props"


def fault(error: ImageRequestError) -> Fault:
    """
    The API fault of a refused registry request.
    """
    if isinstance(error, ImageNotFound):
        return ItemNotFound(error.message)
    if isinstance(error, ImageForbidden):
        return Forbidden(error.message)
    if isinstance(error, ImageConflict):
        return Conflict(error.message)
    return BadRequest(error.message)


def _decode(raw: bytes, field: str, unquoted: bool) -> str:
    try:
        text = raw.decode("utf-8")
        return unquote(text, errors="strict") if unquoted else text
    except UnicodeDecodeError:
        raise BadRequest(f"Invalid '{field}' field: not UTF-8 (percent-encoded)") from None


def headerMetadata(request: IRequest) -> tuple[dict[str, object], dict[str, object]]:
    """
    The C{X-Image-Meta-*} fields and C{X-Image-Meta-Property-*} properties
    of a request.
    """
    meta: dict[str, object] = {}
    properties: dict[str, object] = {}
    for rawName, values in request.requestHeaders.getAllRawHeaders():
        name = rawName.decode("latin-1").lower()
        if not name.startswith(_META):
            continue
        value = values[-1]
        if name.startswith(_PROPERTY):
            key = logic.headerPropertyName(name[len(_PROPERTY) :])
            if not key:
                raise BadRequest("Invalid 'properties' field: empty property name")
            properties[key] = _decode(value, f"properties.{key}", unquoted=True)
        else:
            field = logic.headerFieldName(name[len(_META) :])
            meta[field] = _decode(value, field, unquoted=field == "name").strip()
    return meta, properties


def requestMetadata(request: IRequest) -> tuple[dict[str, object], dict[str, object]]:
    """
    Metadata from the headers and, when the body is JSON, from
    C{{"image": {...}}} (body fields win; keys that are not Glance fields
    are custom properties, as openstacksdk sends them). Any other body is
    image data, which the registry does not take.
    """
    meta, properties = headerMetadata(request)
    content = getattr(request, "content", None)
    raw: bytes = content.read() if content is not None else b""
    if not raw:
        return meta, properties
    contentType = (request.getHeader(b"content-type") or b"").decode("latin-1").lower()
    if not contentType.startswith("application/json"):
        raise NotImplementedFault(
            "Uploading image data is not supported: the registry keeps metadata only; "
            "register the image with its location (X-Image-Meta-Location)"
        )
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("Could not decode request body as JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("image"), dict):
        raise BadRequest("Malformed request. Missing attribute 'image'.")
    image = dict(body["image"])
    extra = image.pop("properties", None)
    if extra is not None:
        if not isinstance(extra, dict):
            raise BadRequest("Malformed request. Invalid 'properties' field")
        properties.update(extra)
    for key, value in image.items():
        if key in logic.KNOWN_FIELDS:
            if value is not None:
                meta[key] = value
        else:
            # openstacksdk sends custom properties in the image's root
            properties[key] = value
    return meta, properties


def _jsonBody(request: IRequest) -> Any:
    """
    An optional JSON body (None when empty).
    """
    content = getattr(request, "content", None)
    raw: bytes = content.read() if content is not None else b""
    if not raw.strip():
        return None
    contentType = (request.getHeader(b"content-type") or b"").decode("latin-1")
    if not contentType.lower().startswith("application/json"):
        raise BadRequest(f"Unsupported Content-type: '{contentType}'")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("Could not decode request body as JSON") from None


def _caller(user: User) -> Caller:
    return Caller(user.uuid, user.isAdmin)


def _queryArgs(request: IRequest) -> dict[str, str]:
    args: dict[bytes, list[bytes]] = getattr(request, "args", None) or {}
    result = {}
    for rawKey in args:
        key = rawKey.decode("utf-8", "replace")
        value = queryArg(request, key)
        if value is not None:
            result[key] = value
    return result


class ImageAPI:
    """
    The Image API routes over an L{ImageRegistry}.
    """

    def __init__(self, registry: ImageRegistry, baseURL: str) -> None:
        self._registry = registry
        self._base = baseURL.rstrip("/")

    def register(self, router: Router) -> None:
        tag = "image"
        router.add("GET", "/image", self.versions, "image API versions", auth="none", tag=tag)
        for v in VERSIONS:
            p = f"/image/{v}"

            def version(request: IRequest, v: str = v) -> dict[str, Any]:
                return {"version": self._versionDoc(v)}

            def bind(method: Any, v: str = v) -> Any:
                def bound(request: IRequest, user: User, **kwargs: Any) -> Any:
                    return method(request, user, v, **kwargs)

                return bound

            image = f"{p}/images/<image_id>"
            router.add("GET", p, version, f"image {v} version document", auth="none", tag=tag)
            router.add("GET", f"{p}/images", bind(self.listImages), "list images (brief)", tag=tag)
            router.add("POST", f"{p}/images", bind(self.registerImage), "register an image", tag=tag)
            router.add("GET", f"{p}/images/detail", bind(self.listDetail), "list images with details", tag=tag)
            router.add("HEAD", image, bind(self.headImage), "image metadata as X-Image-Meta-* headers", tag=tag)
            router.add("GET", image, bind(self.getImage), "image metadata (headers and JSON)", tag=tag)
            router.add("PUT", image, bind(self.updateImage), "update image metadata and properties", tag=tag)
            router.add("DELETE", image, bind(self.deleteImage), "delete an image", tag=tag)
            router.add("GET", f"{image}/members", bind(self.listMembers), "list image members", tag=tag)
            router.add("PUT", f"{image}/members", bind(self.replaceMembers), "replace image members", tag=tag)
            router.add("PUT", f"{image}/members/<member>", bind(self.addMember), "add an image member", tag=tag)
            router.add(
                "DELETE", f"{image}/members/<member>", bind(self.removeMember), "remove an image member", tag=tag
            )
            router.add(
                "GET", f"{p}/shared-images/<member>", bind(self.sharedImages), "images shared with a member", tag=tag
            )

    # -- versions ------------------------------------------------------------------------

    def _versionDoc(self, v: str) -> dict[str, Any]:
        return {
            "id": "v1.0" if v == "v1.0" else "v1.1",
            "status": "CURRENT" if v == "v1.0" else "SUPPORTED",
            "updated": _UPDATED,
            "links": [{"rel": "self", "href": f"{self._base}/image/{v}/"}],
        }

    def versions(self, request: IRequest) -> dict[str, Any]:
        return {"versions": [self._versionDoc(v) for v in VERSIONS]}

    # -- helpers -----------------------------------------------------------------------------

    @staticmethod
    def _showLocation(image: Image, user: User) -> bool:
        return image.owner == user.uuid or user.isAdmin

    def _metaReply(
        self, code: int, image: Image, user: User, body: bool, extra: Sequence[tuple[str, str]] = ()
    ) -> Reply:
        show = self._showLocation(image, user)
        headers = tuple(logic.metaHeaders(image, show)) + tuple(extra)
        document = {"image": logic.detailView(image, show)} if body else None
        return Reply(code, document, headers)

    async def _get(self, user: User, imageId: str) -> Image:
        try:
            return await self._registry.get(imageId, _caller(user))
        except ImageRequestError as e:
            raise fault(e) from None

    # -- images -------------------------------------------------------------------------------

    async def _list(self, request: IRequest, user: User, detail: bool) -> dict[str, Any]:
        try:
            query = logic.parseListQuery(_queryArgs(request))
        except ImageRequestError as e:
            raise fault(e) from None
        candidates = await self._registry.visible(_caller(user), includeDeleted=query.changesSince is not None)
        images = logic.selectImages(candidates, query)
        page, _more = paginate(request, images, lambda i: i.id)
        if detail:
            return {"images": [logic.detailView(i, self._showLocation(i, user)) for i in page]}
        return {"images": [logic.briefView(i) for i in page]}

    def listImages(self, request: IRequest, user: User, v: str) -> Any:
        return self._list(request, user, detail=False)

    def listDetail(self, request: IRequest, user: User, v: str) -> Any:
        return self._list(request, user, detail=True)

    async def registerImage(self, request: IRequest, user: User, v: str) -> Reply:
        meta, properties = requestMetadata(request)
        try:
            registration = logic.parseRegistration(meta, properties)
            image = await self._registry.register(registration, _caller(user))
        except ImageRequestError as e:
            raise fault(e) from None
        where = ("Location", f"{self._base}/image/{v}/images/{image.id}")
        return self._metaReply(201, image, user, body=True, extra=(where,))

    async def headImage(self, request: IRequest, user: User, v: str, image_id: str) -> Reply:
        return self._metaReply(200, await self._get(user, image_id), user, body=False)

    async def getImage(self, request: IRequest, user: User, v: str, image_id: str) -> Reply:
        return self._metaReply(200, await self._get(user, image_id), user, body=True)

    async def updateImage(self, request: IRequest, user: User, v: str, image_id: str) -> Reply:
        meta, properties = requestMetadata(request)
        purgeHeader = (request.getHeader(_PURGE) or b"false").decode("latin-1").strip().lower()
        if purgeHeader not in ("true", "false"):
            raise BadRequest("Invalid 'X-Glance-Registry-Purge-Props' header: true or false")
        try:
            change = logic.parseUpdate(meta, properties, purge=purgeHeader == "true")
            image = await self._registry.update(image_id, change, _caller(user))
        except ImageRequestError as e:
            raise fault(e) from None
        return self._metaReply(200, image, user, body=True)

    async def deleteImage(self, request: IRequest, user: User, v: str, image_id: str) -> Reply:
        try:
            await self._registry.delete(image_id, _caller(user))
        except ImageRequestError as e:
            raise fault(e) from None
        return Reply(204)

    # -- members ---------------------------------------------------------------------------------

    async def listMembers(self, request: IRequest, user: User, v: str, image_id: str) -> dict[str, Any]:
        try:
            members = await self._registry.members(image_id, _caller(user))
        except ImageRequestError as e:
            raise fault(e) from None
        return {"members": [logic.memberView(m) for m in members]}

    async def replaceMembers(self, request: IRequest, user: User, v: str, image_id: str) -> Reply:
        body = _jsonBody(request)
        try:
            memberships = logic.parseMemberships(body)
            await self._registry.replaceMembers(image_id, memberships, _caller(user))
        except ImageRequestError as e:
            raise fault(e) from None
        return Reply(204)

    async def addMember(self, request: IRequest, user: User, v: str, image_id: str, member: str) -> Reply:
        body = _jsonBody(request)
        try:
            memberId = logic.memberId(member)
            canShare = logic.parseMemberBody(body)
            await self._registry.addMember(image_id, memberId, canShare, _caller(user))
        except ImageRequestError as e:
            raise fault(e) from None
        return Reply(204)

    async def removeMember(self, request: IRequest, user: User, v: str, image_id: str, member: str) -> Reply:
        try:
            await self._registry.removeMember(image_id, member, _caller(user))
        except ImageRequestError as e:
            raise fault(e) from None
        return Reply(204)

    async def sharedImages(self, request: IRequest, user: User, v: str, member: str) -> dict[str, Any]:
        try:
            memberId = logic.memberId(member)
        except InvalidImageRequest as e:
            raise fault(e) from None
        shared = await self._registry.sharedWith(memberId, _caller(user))
        return {"shared_images": [logic.sharedView(m) for m in shared]}
