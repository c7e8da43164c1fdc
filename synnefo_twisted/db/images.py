# -*- test-case-name: tests.db.test_images -*-
"""
The image registry's own SQL beside L{ImageRepository}: image members
(who an image is shared with), updates of an image's fields and properties
in one transaction, and deletion (marked, with its time).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from twisted.internet.defer import Deferred

from synnefo_twisted.db.models import Image, ImageMember, columns
from synnefo_twisted.db.repositories import ImageRepository, _Repository

UPDATABLE = (
    "name",
    "status",
    "is_public",
    "size",
    "checksum",
    "location",
    "disk_format",
    "container_format",
    "min_disk",
    "min_ram",
    "protected",
    "owner",
)


class ImageRegistryRepository(_Repository):
    """
    Members, updates and deletion of registered images (reads of the
    images themselves are L{ImageRepository}'s).
    """

    _memberCols = columns(ImageMember)

    # -- members -------------------------------------------------------------------

    def members(self, imageId: str) -> Deferred[list[ImageMember]]:
        return self._many(
            ImageMember,
            f"SELECT {self._memberCols} FROM image_members WHERE image_id = %s ORDER BY member",
            (imageId,),
        )

    def member(self, imageId: str, member: str) -> Deferred[ImageMember | None]:
        return self._one(
            ImageMember,
            f"SELECT {self._memberCols} FROM image_members WHERE image_id = %s AND member = %s",
            (imageId, member),
        )

    def addMember(self, imageId: str, member: str, canShare: bool | None = None) -> Deferred[ImageMember]:
        """
        Share an image with C{member}. An existing membership keeps its
        C{can_share} when C{canShare} is None; a new one gets False then.
        """
        if canShare is None:
            conflict = "DO NOTHING"
        else:
            conflict = "DO UPDATE SET can_share = excluded.can_share"

        async def add(tx: Any) -> ImageMember:
            await tx.execute(
                "INSERT INTO image_members (image_id, member, can_share) VALUES (%s, %s, %s) "
                f"ON CONFLICT (image_id, member) {conflict}",
                (imageId, member, bool(canShare)),
            )
            rows = await tx.execute(
                f"SELECT {self._memberCols} FROM image_members WHERE image_id = %s AND member = %s",
                (imageId, member),
            )
            return ImageMember(*rows[0])

        return self._atomic(add)

    def removeMember(self, imageId: str, member: str) -> Deferred[bool]:
        """
        Stop sharing; Deferred True when there was such a member.
        """
        d = self._query(
            "DELETE FROM image_members WHERE image_id = %s AND member = %s RETURNING member", (imageId, member)
        )
        return d.addCallback(bool)

    def replaceMembers(
        self, imageId: str, memberships: Sequence[tuple[str, bool | None]]
    ) -> Deferred[list[ImageMember]]:
        """
        Make C{memberships} (member, can_share or None to keep/default) all
        and only the members of an image, in one transaction.
        """

        async def replace(tx: Any) -> list[ImageMember]:
            wanted = {member for member, _ in memberships}
            rows = await tx.execute(
                f"SELECT {self._memberCols} FROM image_members WHERE image_id = %s FOR UPDATE", (imageId,)
            )
            for existing in (ImageMember(*row) for row in rows):
                if existing.member not in wanted:
                    await tx.execute(
                        "DELETE FROM image_members WHERE image_id = %s AND member = %s", (imageId, existing.member)
                    )
            for member, canShare in memberships:
                conflict = "DO NOTHING" if canShare is None else "DO UPDATE SET can_share = excluded.can_share"
                await tx.execute(
                    "INSERT INTO image_members (image_id, member, can_share) VALUES (%s, %s, %s) "
                    f"ON CONFLICT (image_id, member) {conflict}",
                    (imageId, member, bool(canShare)),
                )
            rows = await tx.execute(
                f"SELECT {self._memberCols} FROM image_members WHERE image_id = %s ORDER BY member", (imageId,)
            )
            return [ImageMember(*row) for row in rows]

        return self._atomic(replace)

    def sharedWith(self, member: str, owner: str | None = None) -> Deferred[list[ImageMember]]:
        """
        The memberships of C{member} in live images (only images of
        C{owner} when given).
        """
        cols = ", ".join(f"m.{c.strip()}" for c in self._memberCols.split(","))
        sql = (
            f"SELECT {cols} FROM image_members m JOIN images i ON i.id = m.image_id "
            "WHERE m.member = %s AND i.deleted = FALSE"
        )
        params: tuple[Any, ...] = (member,)
        if owner is not None:
            sql += " AND i.owner = %s"
            params = (member, owner)
        return self._many(ImageMember, sql + " ORDER BY m.image_id", params)

    # -- updates ---------------------------------------------------------------------

    def update(
        self,
        imageId: str,
        fields: Mapping[str, object],
        properties: Mapping[str, str] | None = None,
        *,
        purgeProperties: bool = False,
        removeProperties: Sequence[str] = (),
    ) -> Deferred[Image | None]:
        """
        Change some of L{UPDATABLE} and the properties of an image in one
        transaction; a property whose key matches an existing one but for
        case replaces it (HTTP header names carry no case). With
        C{purgeProperties} the properties become exactly C{properties}.

        @return: Deferred with the new image, None when there is no such image.
        """
        unknown = sorted(set(fields) - set(UPDATABLE))
        if unknown:
            raise ValueError(f"cannot update images.{', '.join(unknown)}")
        newProperties = dict(properties or {})

        async def update(tx: Any) -> Image | None:
            rows = await tx.execute("SELECT id FROM images WHERE id = %s FOR UPDATE", (imageId,))
            if not rows:
                return None
            current = {
                key: value
                for key, value in await tx.execute(
                    "SELECT prop_key, prop_value FROM image_properties WHERE image_id = %s", (imageId,)
                )
            }
            byFolded = {key.casefold(): key for key in current}
            drop = set(current) if purgeProperties else set()
            drop.update(byFolded[k.casefold()] for k in removeProperties if k.casefold() in byFolded)
            upserts: dict[str, str] = {}
            for key, value in newProperties.items():
                existing = byFolded.get(key.casefold())
                stored = key if existing is None or purgeProperties else existing
                drop.discard(stored)
                if existing is not None and existing != stored:
                    drop.add(existing)
                upserts[stored] = value
            for key in sorted(drop):
                await tx.execute("DELETE FROM image_properties WHERE image_id = %s AND prop_key = %s", (imageId, key))
            for key, value in sorted(upserts.items()):
                await tx.execute(
                    "INSERT INTO image_properties (image_id, prop_key, prop_value) VALUES (%s, %s, %s) "
                    "ON CONFLICT (image_id, prop_key) DO UPDATE SET prop_value = excluded.prop_value",
                    (imageId, key, value),
                )
            assignments = [f"{name} = %s" for name in fields]
            assignments.append(f"updated = {self._now()}")
            await tx.execute(f"UPDATE images SET {', '.join(assignments)} WHERE id = %s", (*fields.values(), imageId))
            return await ImageRepository(tx).get(imageId)

        return self._atomic(update)

    def delete(self, imageId: str) -> Deferred[bool]:
        """
        Mark an image deleted (with its deletion time); its members go.
        Deferred True when a live image was deleted.
        """

        async def delete(tx: Any) -> bool:
            now = self._now()
            rows = await tx.execute(
                f"UPDATE images SET deleted = TRUE, deleted_at = {now}, updated = {now} "
                "WHERE id = %s AND deleted = FALSE RETURNING id",
                (imageId,),
            )
            if not rows:
                return False
            await tx.execute("DELETE FROM image_members WHERE image_id = %s", (imageId,))
            return True

        return self._atomic(delete)
