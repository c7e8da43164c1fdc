# -*- test-case-name: tests.logic.test_imageops -*-
"""
The image registry: registration, reads, updates, deletion and sharing of
images, over the database (L{ImageRepository}, L{ImageRegistryRepository})
with the decisions of L{synnefo_twisted.logic.images}. The Image API, the
compute API and snf-manage all go through it, so they agree on what is
valid and who sees what.

A local file image is checked when registered: it must exist, be a regular
readable file and (for API users) lie below one of the configured roots;
its size and MD5 are read from it in a thread of the reactor's pool. URL
locations are recorded as given (the registry never fetches or stores
image data).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from synnefo_twisted.db._sql import IntegrityError
from synnefo_twisted.db.images import ImageRegistryRepository
from synnefo_twisted.db.models import Image, ImageMember
from synnefo_twisted.db.repositories import ImageRepository
from synnefo_twisted.logic import images as logic
from synnefo_twisted.logic.images import (
    Caller,
    FileFacts,
    ImageConflict,
    ImageNotFound,
    InvalidImageRequest,
    RegisterRequest,
    UpdateRequest,
)

log = Logger()

_CHUNK = 1024 * 1024


def inspectFile(path: str, roots: Sequence[str] | None) -> FileFacts:
    """
    Size and MD5 of the image file at C{path} (blocking: run it in a thread).

    @param roots: directories the resolved path must lie below (None: anywhere).
    @raise InvalidImageRequest: naming C{location}, when the file is
        missing, not a regular file, unreadable or outside the roots.
    """
    real = os.path.realpath(path)
    if roots is not None and not logic.withinRoots(real, [os.path.realpath(r) for r in roots]):
        allowed = ", ".join(roots) or "none are configured"
        raise InvalidImageRequest(
            f"Invalid 'location' field: {path} is not below an image directory ({allowed})", "location"
        )
    try:
        info = os.stat(real)
    except FileNotFoundError:
        raise InvalidImageRequest(f"Invalid 'location' field: {path} does not exist", "location") from None
    except OSError as e:
        raise InvalidImageRequest(f"Invalid 'location' field: {path}: {e.strerror}", "location") from None
    if not stat.S_ISREG(info.st_mode):
        raise InvalidImageRequest(f"Invalid 'location' field: {path} is not a regular file", "location")
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    try:
        with open(real, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except OSError as e:
        raise InvalidImageRequest(
            f"Invalid 'location' field: {path} cannot be read: {e.strerror}", "location"
        ) from None
    return FileFacts(size, digest.hexdigest())


class ImageRegistry:
    """
    @param database: an L{synnefo_twisted.interfaces.IDatabase}.
    @param reactor: provides C{getThreadPool} (file checks run there).
    @param fileRoots: directories below which API callers may register
        file images; None lets the operator (C{caller} None) and everyone
        use any readable file. Operators (C{caller} None) are never limited.
    """

    def __init__(self, database: Any, reactor: Any, fileRoots: Sequence[str] | None = None) -> None:
        self._images = ImageRepository(database)
        self._registry = ImageRegistryRepository(database)
        self._reactor = reactor
        self._roots = None if fileRoots is None else tuple(fileRoots)

    @property
    def fileRoots(self) -> tuple[str, ...] | None:
        """
        Where API callers may register file images (None: anywhere).
        """
        return self._roots

    # -- reads -----------------------------------------------------------------------

    async def visible(self, caller: Caller, includeDeleted: bool = False) -> list[Image]:
        """
        The live images C{caller} sees: public, own and shared ones (with
        C{includeDeleted}, also the deleted ones that were public or own).
        """
        return await self._images.list(owner=caller.uuid, includeDeleted=includeDeleted)

    async def get(self, imageId: str, caller: Caller | None) -> Image:
        """
        An image C{caller} may see (any live one for the operator).

        @raise ImageNotFound: otherwise.
        """
        image = await self._images.get(imageId)
        if image is None or image.deleted:
            raise ImageNotFound(f"Image {imageId} not found")
        if caller is None:
            return image
        isMember = await self._registry.member(imageId, caller.uuid) is not None
        if not logic.canSee(image, caller, isMember):
            raise ImageNotFound(f"Image {imageId} not found")
        return image

    def all(self, includeDeleted: bool = False) -> Deferred[list[Image]]:
        """
        Every image (the operator's view).
        """
        return self._images.list(includeDeleted=includeDeleted)

    # -- registration ----------------------------------------------------------------------

    async def register(self, request: RegisterRequest, caller: Caller | None) -> Image:
        """
        Register an image for C{caller} (C{None}: the operator).
        """
        owner = logic.checkRegistration(request, caller)
        size = request.size or 0
        checksum = request.checksum or ""
        if request.location.path is not None:
            roots = None if caller is None else self._roots
            facts = await deferToThreadPool(
                self._reactor, self._reactor.getThreadPool(), inspectFile, request.location.path, roots
            )
            size, checksum = logic.reconcileFile(request, facts)
        if request.imageId is not None and await self._images.get(request.imageId) is not None:
            raise ImageConflict(f"An image with id {request.imageId} exists", "id")
        try:
            image = await self._images.register(
                request.name,
                owner,
                request.location.url,
                imageId=request.imageId,
                size=size,
                checksum=checksum,
                diskFormat=request.diskFormat,
                containerFormat=request.containerFormat,
                isPublic=request.isPublic,
                properties=request.properties,
                minDisk=request.minDisk,
                minRam=request.minRam,
                protected=request.protected,
            )
        except IntegrityError:
            raise ImageConflict(f"An image with id {request.imageId} exists", "id") from None
        log.info(
            "image {image} ({name}) registered by {owner} at {location}",
            image=image.id,
            name=image.name,
            owner=owner,
            location=image.location,
        )
        return image

    # -- changes ------------------------------------------------------------------------------

    async def update(self, imageId: str, change: UpdateRequest, caller: Caller | None) -> Image:
        image = await self.get(imageId, caller)
        if caller is not None:
            logic.checkModify(image, caller, change)
        updated = await self._registry.update(imageId, change.fields, change.properties, purgeProperties=change.purge)
        if updated is None:
            raise ImageNotFound(f"Image {imageId} not found")
        return updated

    async def setStatus(self, imageId: str, status: str) -> Image:
        """
        The operator marks an image AVAILABLE, UNAVAILABLE or ERROR.
        """
        if status not in logic.REGISTRY_STATUSES:
            raise InvalidImageRequest(
                f"Invalid 'status' field: {status!r} is not one of {', '.join(logic.REGISTRY_STATUSES)}", "status"
            )
        await self.get(imageId, None)
        updated = await self._registry.update(imageId, {"status": status})
        if updated is None:
            raise ImageNotFound(f"Image {imageId} not found")
        return updated

    async def removeProperties(self, imageId: str, keys: Sequence[str]) -> Image:
        """
        The operator drops properties (keys matched regardless of case).
        """
        await self.get(imageId, None)
        updated = await self._registry.update(imageId, {}, removeProperties=keys)
        if updated is None:
            raise ImageNotFound(f"Image {imageId} not found")
        return updated

    async def delete(self, imageId: str, caller: Caller | None) -> None:
        image = await self.get(imageId, caller)
        logic.checkDelete(image, caller)
        if not await self._registry.delete(imageId):
            raise ImageNotFound(f"Image {imageId} not found")
        log.info("image {image} deleted", image=imageId)

    # -- members ----------------------------------------------------------------------------------

    async def members(self, imageId: str, caller: Caller) -> list[ImageMember]:
        await self.get(imageId, caller)
        return await self._registry.members(imageId)

    async def _shareable(self, imageId: str, caller: Caller) -> Image:
        image = await self.get(imageId, caller)
        logic.checkShare(image, caller, await self._registry.member(imageId, caller.uuid))
        return image

    async def addMember(self, imageId: str, member: str, canShare: bool | None, caller: Caller) -> ImageMember:
        await self._shareable(imageId, caller)
        return await self._registry.addMember(imageId, member, canShare)

    async def removeMember(self, imageId: str, member: str, caller: Caller) -> None:
        await self._shareable(imageId, caller)
        if not await self._registry.removeMember(imageId, member):
            raise ImageNotFound(f"{member} is not a member of image {imageId}")

    async def replaceMembers(
        self, imageId: str, memberships: Sequence[tuple[str, bool | None]], caller: Caller
    ) -> list[ImageMember]:
        await self._shareable(imageId, caller)
        return await self._registry.replaceMembers(imageId, memberships)

    async def sharedWith(self, member: str, caller: Caller) -> list[ImageMember]:
        """
        Images shared with C{member}: all of them when the caller is that
        member (or an admin), else only the caller's own.
        """
        owner = None if caller.uuid == member or caller.isAdmin else caller.uuid
        return await self._registry.sharedWith(member, owner)
