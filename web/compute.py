# -*- test-case-name: tests.web.test_compute -*-
"""
The compute API, first part (spec §1.1, §1.5-1.7), under C{/compute/v2.0}
and C{/compute/v2.1} (the same API, without microversions): version
documents, flavors, images, extensions, key pairs and limits.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.web.iweb import IRequest

from synnefo_twisted.db._sql import IntegrityError
from synnefo_twisted.db.models import Flavor, Image, KeyPair, Quota, User
from synnefo_twisted.db.repositories import (
    FlavorRepository,
    ImageRepository,
    KeyPairRepository,
    ProjectRepository,
    QuotaRepository,
)
from synnefo_twisted.logic.imageops import ImageRegistry
from synnefo_twisted.logic.images import Caller, ImageRequestError
from web.faults import BadRequest, Conflict, Forbidden, ItemNotFound, NotImplementedFault
from web.http import Reply, attribute, dumps, isoformat, paginate, queryArg, readJSON
from web.image import fault as image_fault
from web.memo import RenderedMemo
from web.routing import Router

VERSIONS = ("v2.0", "v2.1")

_VERSION_UPDATED = "2011-01-21T11:33:21-06:00"

_IMAGE_STATUS = {"AVAILABLE": "ACTIVE", "UNAVAILABLE": "SAVING", "ERROR": "ERROR"}

_KEYPAIR_NAME = re.compile(r"^[\w .@-]{1,255}$")

# Quota resource -> (limit key, usage key) of the Nova-style /limits document.
LIMIT_KEYS: tuple[tuple[str, str, str], ...] = (
    ("cyclades.vm", "maxTotalInstances", "totalInstancesUsed"),
    ("cyclades.total_cpu", "maxTotalCores", "totalCoresUsed"),
    ("cyclades.total_ram", "maxTotalRAMSize", "totalRAMUsed"),
    ("cyclades.floating_ip", "maxTotalFloatingIps", "totalFloatingIpsUsed"),
    ("cyclades.disk", "SNF:maxTotalDisk", "SNF:totalDiskUsed"),
    ("cyclades.network.private", "SNF:maxTotalPrivateNetworks", "SNF:totalPrivateNetworksUsed"),
)


def keyFingerprint(publicKey: str) -> str:
    """
    The MD5 fingerprint (colon-separated hex) of an OpenSSH public key line.

    @raise BadRequest: the key is not an OpenSSH public key.
    """
    fields = publicKey.strip().split()
    if len(fields) < 2:
        raise BadRequest("Keypair data is invalid: not an OpenSSH public key")
    keyType, data = fields[0], fields[1]
    try:
        blob = base64.b64decode(data.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise BadRequest("Keypair data is invalid: bad base64") from None
    declared = keyType.encode("ascii", "replace")
    if len(blob) < 4 or blob[4 : 4 + int.from_bytes(blob[:4], "big")] != declared:
        raise BadRequest("Keypair data is invalid: key type does not match its data")
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def generateKeyPair() -> tuple[str, str]:
    """
    A new Ed25519 key pair: (OpenSSH public key line, PEM private key).
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode("ascii")
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return public.decode("ascii") + " Generated-by-Synnefo", private


def _parseBool(raw: str, name: str) -> bool:
    lowered = raw.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise BadRequest(f"Invalid '{name}' parameter: {raw!r} is not true or false")


class ComputeAPI:
    """
    The compute routes of this slice.

    @param allowKeyGeneration: POST os-keypairs without a public key makes one
        (else 403).
    @param changeStamp: the database's change stamp
        (L{synnefo_twisted.db.changes.changeStamp}); while it is unchanged a
        flavor listing is answered again without reading the flavors (None:
        they are read on every request).
    """

    def __init__(
        self,
        flavors: FlavorRepository,
        images: ImageRepository,
        keypairs: KeyPairRepository,
        projects: ProjectRepository,
        quotas: QuotaRepository,
        baseURL: str,
        allowKeyGeneration: bool = True,
        imageRegistry: ImageRegistry | None = None,
        changeStamp: Callable[[], Deferred[Hashable | None]] | None = None,
    ) -> None:
        self._flavors = flavors
        self._changeStamp = changeStamp
        self._images = images
        self._keypairs = keypairs
        self._projects = projects
        self._quotas = quotas
        self._base = baseURL.rstrip("/")
        self._allowKeyGeneration = allowKeyGeneration
        self._imageRegistry = imageRegistry
        self._memo = RenderedMemo()

    def register(self, router: Router) -> None:
        tag = "compute"
        router.add("GET", "/compute", self.versions, "compute API versions", auth="none", tag=tag)
        for v in VERSIONS:

            def version(request: IRequest, v: str = v) -> dict[str, Any]:
                return self.version(request, v)

            def bind(method: Any, v: str = v) -> Any:
                def bound(request: IRequest, user: User, **kwargs: Any) -> Any:
                    return method(request, user, v, **kwargs)

                return bound

            p = f"/compute/{v}"
            router.add("GET", p, version, f"compute {v} version document", auth="none", tag=tag)
            router.add("GET", f"{p}/flavors", bind(self.listFlavors), "list flavors", tag=tag)
            router.add("GET", f"{p}/flavors/detail", bind(self.listFlavorsDetail), "list flavors with details", tag=tag)
            router.add("GET", f"{p}/flavors/<int:flavor_id>", bind(self.showFlavor), "show a flavor", tag=tag)
            router.add(
                "GET",
                f"{p}/flavors/<int:flavor_id>/os-extra_specs",
                bind(self.extraSpecs),
                "flavor extra specs",
                tag=tag,
            )
            router.add("GET", f"{p}/images", bind(self.listImages), "list images", tag=tag)
            router.add("POST", f"{p}/images", bind(self.createImage), "create an image (not implemented)", tag=tag)
            router.add("GET", f"{p}/images/detail", bind(self.listImagesDetail), "list images with details", tag=tag)
            router.add("GET", f"{p}/images/<image_id>", bind(self.showImage), "show an image", tag=tag)
            router.add("DELETE", f"{p}/images/<image_id>", bind(self.deleteImage), "delete an image", tag=tag)
            router.add("GET", f"{p}/images/<image_id>/metadata", bind(self.imageMetadata), "image metadata", tag=tag)
            router.add("GET", f"{p}/extensions", bind(self.extensions), "list extensions", tag=tag)
            router.add("GET", f"{p}/extensions/<alias>", bind(self.extension), "show an extension", tag=tag)
            router.add("GET", f"{p}/os-keypairs", bind(self.listKeypairs), "list key pairs", tag=tag)
            router.add("POST", f"{p}/os-keypairs", bind(self.createKeypair), "create or import a key pair", tag=tag)
            router.add("GET", f"{p}/os-keypairs/<name>", bind(self.showKeypair), "show a key pair", tag=tag)
            router.add("DELETE", f"{p}/os-keypairs/<name>", bind(self.deleteKeypair), "delete a key pair", tag=tag)
            router.add("GET", f"{p}/limits", bind(self.limits), "quota limits and usage", tag=tag)

    # -- versions ---------------------------------------------------------------------

    def _versionDoc(self, v: str) -> dict[str, Any]:
        return {
            "id": v,
            "status": "CURRENT",
            "updated": _VERSION_UPDATED,
            "links": [{"rel": "self", "href": f"{self._base}/compute/{v}/"}],
        }

    def versions(self, request: IRequest) -> dict[str, Any]:
        return {"versions": [self._versionDoc(v) for v in VERSIONS]}

    def version(self, request: IRequest, v: str) -> dict[str, Any]:
        doc = self._versionDoc(v)
        doc["media-types"] = [
            {"base": "application/xml", "type": "application/vnd.openstack.compute.v2+xml"},
            {"base": "application/json", "type": "application/vnd.openstack.compute.v2+json"},
        ]
        doc["links"] = doc["links"] + [
            {"rel": "describedby", "type": "application/pdf", "href": "https://docs.openstack.org/api-ref/compute/"},
            {
                "rel": "describedby",
                "type": "application/vnd.sun.wadl+xml",
                "href": "https://docs.openstack.org/api-ref/compute/",
            },
        ]
        return {"version": doc}

    def _links(self, v: str, collection: str, ident: object) -> list[dict[str, str]]:
        return [
            {"rel": "self", "href": f"{self._base}/compute/{v}/{collection}/{ident}"},
            {"rel": "bookmark", "href": f"{self._base}/compute/{collection}/{ident}"},
        ]

    def _nextLinks(self, request: IRequest, v: str, collection: str, items: Sequence[Any], more: bool) -> list[Any]:
        if not more or not items:
            return []
        limit = queryArg(request, "limit")
        return [
            {
                "rel": "next",
                "href": f"{self._base}/compute/{v}/{collection}?limit={limit}&marker={items[-1].id}",
            }
        ]

    # -- flavors ---------------------------------------------------------------------------

    async def _flavorList(self, request: IRequest, user: User, v: str, detail: bool) -> Reply:
        params = tuple(queryArg(request, name) for name in ("SNF:is_public", "marker", "limit"))
        # the stamp is taken before the rows are read: while it is unchanged, so are they
        stampKey = None
        if self._changeStamp is not None:
            stamp = await self._changeStamp()
            if stamp is not None:
                stampKey = ("flavors@", v, detail, user.isAdmin, params, stamp)
                body = self._memo.get(stampKey)
                if body is not None:
                    return Reply(200, body, shared=True)
        rows = await self._flavors.listWithTemplates()
        key = ("flavors", v, detail, user.isAdmin, params, rows.fingerprint)
        body = self._memo.get(key)
        if body is None:
            body = dumps(self._flavorDocument(request, user, v, detail, rows.flavors()))
            self._memo.put(key, body)
        if stampKey is not None:
            self._memo.put(stampKey, body)
        return Reply(200, body, shared=True)

    def _flavorDocument(
        self, request: IRequest, user: User, v: str, detail: bool, found: list[tuple[Flavor, str]]
    ) -> dict[str, Any]:
        visible = [(f, template) for f, template in found if f.public or user.isAdmin]
        public = queryArg(request, "SNF:is_public")
        if public is not None:
            wanted = _parseBool(public, "SNF:is_public")
            visible = [(f, template) for f, template in visible if f.public == wanted]
        page, more = paginate(request, visible, lambda pair: pair[0].id)
        templates = {f.volume_type_id: template for f, template in page} if detail else {}
        flavors = [f for f, _ in page]
        items = [self._flavor(v, f, templates, detail) for f in flavors]
        document: dict[str, Any] = {"flavors": items}
        links = self._nextLinks(request, v, "flavors/detail" if detail else "flavors", flavors, more)
        if links:
            document["flavors_links"] = links
        return document

    def _flavor(self, v: str, flavor: Flavor, templates: dict[int, str], detail: bool) -> dict[str, Any]:
        item: dict[str, Any] = {"id": flavor.id, "name": flavor.name, "links": self._links(v, "flavors", flavor.id)}
        if detail:
            item.update(
                {
                    "ram": flavor.ram,
                    "disk": flavor.disk,
                    "vcpus": flavor.cpu,
                    "os-flavor-access:is_public": flavor.public,
                    "SNF:disk_template": templates.get(flavor.volume_type_id, ""),
                    "SNF:volume_type": flavor.volume_type_id,
                    "SNF:allow_create": flavor.allow_create,
                    "SNF:flavor-access": [],
                    "OS-FLV-DISABLED:disabled": flavor.deleted,
                    "OS-FLV-EXT-DATA:ephemeral": 0,
                    "swap": "",
                    "rxtx_factor": 1.0,
                }
            )
        return item

    def listFlavors(self, request: IRequest, user: User, v: str) -> Any:
        return self._flavorList(request, user, v, detail=False)

    def listFlavorsDetail(self, request: IRequest, user: User, v: str) -> Any:
        return self._flavorList(request, user, v, detail=True)

    async def _getFlavor(self, user: User, flavorId: int) -> Flavor:
        flavor = await self._flavors.get(flavorId)
        if flavor is None or not (flavor.public or user.isAdmin):
            raise ItemNotFound(f"Flavor {flavorId} not found")
        return flavor

    async def showFlavor(self, request: IRequest, user: User, v: str, flavor_id: int) -> dict[str, Any]:
        flavor = await self._getFlavor(user, flavor_id)
        templates = {t.id: t.disk_template for t in await self._flavors.volumeTypes()}
        return {"flavor": self._flavor(v, flavor, templates, detail=True)}

    async def extraSpecs(self, request: IRequest, user: User, v: str, flavor_id: int) -> dict[str, Any]:
        await self._getFlavor(user, flavor_id)
        return {"extra_specs": {}}

    # -- images -------------------------------------------------------------------------------

    def _image(self, v: str, image: Image, detail: bool) -> dict[str, Any]:
        item: dict[str, Any] = {"id": image.id, "name": image.name, "links": self._links(v, "images", image.id)}
        if detail:
            status = _IMAGE_STATUS.get(image.status, "UNKNOWN")
            item.update(
                {
                    "updated": isoformat(image.updated),
                    "created": isoformat(image.created),
                    "status": status,
                    "progress": 100 if status == "ACTIVE" else 0,
                    "user_id": image.owner,
                    "tenant_id": image.owner,
                    "public": image.is_public,
                    "metadata": dict(image.properties),
                    "is_snapshot": image.is_snapshot,
                    "minDisk": image.min_disk,
                    "minRam": image.min_ram,
                }
            )
        return item

    async def _imageList(self, request: IRequest, user: User, v: str, detail: bool) -> dict[str, Any]:
        images, more = paginate(request, await self._images.list(owner=user.uuid), lambda i: i.id)
        document: dict[str, Any] = {"images": [self._image(v, i, detail) for i in images]}
        links = self._nextLinks(request, v, "images/detail" if detail else "images", images, more)
        if links:
            document["images_links"] = links
        return document

    def listImages(self, request: IRequest, user: User, v: str) -> Any:
        return self._imageList(request, user, v, detail=False)

    def listImagesDetail(self, request: IRequest, user: User, v: str) -> Any:
        return self._imageList(request, user, v, detail=True)

    def createImage(self, request: IRequest, user: User, v: str) -> Any:
        raise NotImplementedFault("Creating images is not supported; register them with the image API")

    async def _getImage(self, user: User, imageId: str) -> Image:
        if self._imageRegistry is not None:
            # the registry's visibility: public, own and shared images
            try:
                return await self._imageRegistry.get(imageId, Caller(user.uuid, user.isAdmin))
            except ImageRequestError as e:
                raise image_fault(e) from None
        image = await self._images.get(imageId)
        if image is None or image.deleted or not (image.is_public or image.owner == user.uuid):
            raise ItemNotFound(f"Image {imageId} not found")
        return image

    async def showImage(self, request: IRequest, user: User, v: str, image_id: str) -> dict[str, Any]:
        return {"image": self._image(v, await self._getImage(user, image_id), detail=True)}

    async def deleteImage(self, request: IRequest, user: User, v: str, image_id: str) -> Reply:
        image = await self._getImage(user, image_id)
        if image.owner != user.uuid and not user.isAdmin:
            raise Forbidden("Only the owner may delete an image")
        if self._imageRegistry is not None:
            # protection, deletion time and members as in the image API
            try:
                await self._imageRegistry.delete(image_id, Caller(user.uuid, user.isAdmin))
            except ImageRequestError as e:
                raise image_fault(e) from None
            return Reply(204)
        await self._images.modify(image_id, deleted=True)
        return Reply(204)

    async def imageMetadata(self, request: IRequest, user: User, v: str, image_id: str) -> dict[str, Any]:
        return {"metadata": dict((await self._getImage(user, image_id)).properties)}

    # -- extensions ------------------------------------------------------------------------------

    def extensions(self, request: IRequest, user: User, v: str) -> dict[str, Any]:
        return {"extensions": []}

    def extension(self, request: IRequest, user: User, v: str, alias: str) -> Reply:
        return Reply(404)

    # -- key pairs ----------------------------------------------------------------------------------

    @staticmethod
    def _keypair(keypair: KeyPair, detail: bool = False) -> dict[str, Any]:
        item: dict[str, Any] = {
            "name": keypair.name,
            "fingerprint": keypair.fingerprint,
            "public_key": keypair.public_key,
        }
        if detail:
            item.update(
                {
                    "id": keypair.id,
                    "user_id": keypair.userid,
                    "deleted": keypair.deleted,
                    "created_at": isoformat(keypair.created),
                    "updated_at": isoformat(keypair.updated),
                    "deleted_at": isoformat(keypair.deleted_at),
                }
            )
        return item

    async def listKeypairs(self, request: IRequest, user: User, v: str) -> dict[str, Any]:
        keypairs = await self._keypairs.list(user.uuid)
        return {"keypairs": [{"keypair": self._keypair(k)} for k in keypairs]}

    async def createKeypair(self, request: IRequest, user: User, v: str) -> Reply:
        body = attribute(readJSON(request), "keypair", dict)
        name = attribute(body, "name", str)
        if not _KEYPAIR_NAME.match(name) or name != name.strip():
            raise BadRequest("Malformed request. Invalid 'name' field")
        publicKey = attribute(body, "public_key", str, required=False)
        privateKey = None
        if publicKey is None:
            if not self._allowKeyGeneration:
                raise Forbidden("Key pair generation is disabled")
            publicKey, privateKey = generateKeyPair()
        fingerprint = keyFingerprint(publicKey)
        if await self._keypairs.get(user.uuid, name) is not None:
            raise Conflict(f"Key pair '{name}' already exists")
        try:
            keypair = await self._keypairs.create(user.uuid, name, publicKey.strip(), fingerprint)
        except IntegrityError:
            raise Conflict(f"Key pair '{name}' already exists") from None
        item = self._keypair(keypair)
        item["user_id"] = user.uuid
        if privateKey is not None:
            item["private_key"] = privateKey
        return Reply(201, {"keypair": item})

    async def showKeypair(self, request: IRequest, user: User, v: str, name: str) -> dict[str, Any]:
        keypair = await self._keypairs.get(user.uuid, name)
        if keypair is None:
            raise ItemNotFound(f"Key pair '{name}' not found")
        return {"keypair": self._keypair(keypair, detail=True)}

    async def deleteKeypair(self, request: IRequest, user: User, v: str, name: str) -> Reply:
        if not await self._keypairs.delete(user.uuid, name):
            raise ItemNotFound(f"Key pair '{name}' not found")
        return Reply(204)

    # -- limits ----------------------------------------------------------------------------------------

    async def limits(self, request: IRequest, user: User, v: str) -> dict[str, Any]:
        holdings: list[Quota] = []
        projects = await self._projects.projectsOf(user.id)
        base = [p for p in projects if p.uuid == user.uuid or (p.is_base and p.owner_uuid == user.uuid)]
        chosen = (base or projects)[:1]
        if chosen:
            holdings = await self._quotas.holdings(chosen[0].id)
        return {"limits": {"rate": [], "absolute": absoluteLimits(holdings, user.id)}}


def absoluteLimits(holdings: Sequence[Quota], userId: int) -> dict[str, int]:
    """
    Nova's C{absolute} limits from quota holdings: the member's share when
    there is one, else the project's total; -1 (unlimited) when there is none.
    """
    byResource: dict[str, Quota] = {}
    for holding in holdings:
        if holding.user_id == userId or (holding.user_id is None and holding.resource not in byResource):
            byResource[holding.resource] = holding
    absolute: dict[str, int] = {
        "maxTotalKeypairs": -1,
        "maxServerMeta": -1,
        "maxImageMeta": -1,
        "maxPersonality": 0,
        "maxPersonalitySize": 0,
        "maxSecurityGroups": -1,
        "maxSecurityGroupRules": -1,
        "maxServerGroups": -1,
        "maxServerGroupMembers": -1,
        "totalSecurityGroupsUsed": 0,
        "totalServerGroupsUsed": 0,
    }
    for resource, limitKey, usedKey in LIMIT_KEYS:
        found = byResource.get(resource)
        # Quotas hold RAM in bytes; Nova reports it in MiB.
        shift = 20 if resource == "cyclades.total_ram" else 0
        absolute[limitKey] = -1 if found is None else found.quota_limit >> shift
        absolute[usedKey] = 0 if found is None else found.usage >> shift
    return absolute
