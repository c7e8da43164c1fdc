"""
Tests for L{synnefo_twisted.logic.imageops}: the image registry over a
real (SQLite) database, with real image files in the trial temporary
directory; and L{synnefo_twisted.db.images}.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList
from twisted.trial.unittest import SynchronousTestCase, TestCase

from synnefo_twisted.db.images import ImageRegistryRepository
from synnefo_twisted.db.repositories import ImageRepository
from synnefo_twisted.logic import images as logic
from synnefo_twisted.logic.imageops import ImageRegistry, inspectFile
from synnefo_twisted.logic.images import Caller, ImageConflict, ImageForbidden, ImageNotFound, InvalidImageRequest
from synnefo_twisted.testing import memoryDatabase


def writeFile(directory: str, name: str, data: bytes) -> str:
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


class InspectFileTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(self.root)

    def test_sizeAndChecksum(self) -> None:
        """
        A file several read chunks long gets its exact size and MD5.
        """
        data = os.urandom(3 * 1024 * 1024 + 17)
        path = writeFile(self.root, "big.img", data)
        facts = inspectFile(path, [self.root])
        self.assertEqual(facts, logic.FileFacts(len(data), hashlib.md5(data).hexdigest()))
        self.assertEqual(inspectFile(path, None), facts)

    def test_refused(self) -> None:
        """
        Missing files, directories, FIFOs and paths resolving outside the roots are refused naming 'location'.
        """
        outside = os.path.abspath(self.mktemp())
        os.makedirs(outside)
        target = writeFile(outside, "t", b"x")
        os.symlink(target, os.path.join(self.root, "escape"))
        os.mkfifo(os.path.join(self.root, "fifo"))
        for path, roots in (
            (os.path.join(self.root, "missing"), None),
            (self.root, None),
            (os.path.join(self.root, "fifo"), None),
            (os.path.join(self.root, "escape"), [self.root]),
            (target, [self.root]),
            (target, []),
        ):
            with self.assertRaises(InvalidImageRequest) as caught:
                inspectFile(path, roots)
            self.assertEqual(caught.exception.field, "location", path)


class RegistryTests(TestCase):
    timeout = 30

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        return Deferred.fromCoroutine(self._setUp())

    def openDatabase(self) -> Deferred[Any]:
        """
        A started, migrated database (overridden for PostgreSQL).
        """
        return memoryDatabase(reactor)

    async def _setUp(self) -> None:
        self.database = await self.openDatabase()
        self.addCleanup(self.database.stopService)
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(self.root)
        self.registry = ImageRegistry(self.database, reactor, [self.root])
        self.alice = Caller("alice")
        self.bob = Caller("bob")

    def request(self, **meta: Any) -> logic.RegisterRequest:
        meta.setdefault("name", "img")
        meta.setdefault("location", "http://h/img")
        properties = meta.pop("properties", {})
        return logic.parseRegistration(meta, properties)

    async def test_registerFile(self) -> None:
        """
        A file image is stored with the file's size and MD5 and a file URL.
        """
        data = b"\x01" * 4096
        path = writeFile(self.root, "a.img", data)
        image = await self.registry.register(self.request(location=path), self.alice)
        self.assertEqual((image.owner, image.size, image.checksum), ("alice", 4096, hashlib.md5(data).hexdigest()))
        self.assertEqual(image.location, "file://" + path)

    async def test_operatorNotLimitedByRoots(self) -> None:
        """
        The operator (no caller) may register any readable file; API callers only below the roots.
        """
        outside = os.path.abspath(self.mktemp())
        os.makedirs(outside)
        path = writeFile(outside, "o.img", b"o")
        with self.assertRaises(InvalidImageRequest):
            await self.registry.register(self.request(location=path), self.alice)
        image = await self.registry.register(self.request(location=path), None)
        self.assertEqual((image.owner, image.size), ("system", 1))

    async def test_duplicateId(self) -> None:
        """
        A taken id is a conflict.
        """
        await self.registry.register(self.request(id="x-1"), self.alice)
        with self.assertRaises(ImageConflict):
            await self.registry.register(self.request(id="x-1"), self.bob)

    async def test_racingRegistrations(self) -> None:
        """
        Registrations racing for one id: exactly one wins, the others are conflicts (not errors).
        """
        results = await DeferredList(
            [
                Deferred.fromCoroutine(self.registry.register(self.request(id="race"), Caller(f"u{i}")))
                for i in range(4)
            ],
            consumeErrors=True,
        )
        won = [r for ok, r in results if ok]
        lost = [r for ok, r in results if not ok]
        self.assertEqual(len(won), 1)
        self.assertEqual([f.check(ImageConflict) for f in lost], [ImageConflict] * 3)

    async def test_visibilityAndMembers(self) -> None:
        """
        Private images are hidden from others until shared; members come and go; deletion drops them.
        """
        image = await self.registry.register(self.request(), self.alice)
        with self.assertRaises(ImageNotFound):
            await self.registry.get(image.id, self.bob)
        self.assertEqual(await self.registry.visible(self.bob), [])
        await self.registry.addMember(image.id, "bob", None, self.alice)
        self.assertEqual((await self.registry.get(image.id, self.bob)).id, image.id)
        self.assertEqual([i.id for i in await self.registry.visible(self.bob)], [image.id])
        with self.assertRaises(ImageForbidden):
            await self.registry.addMember(image.id, "carol", None, self.bob)
        with self.assertRaises(ImageForbidden):
            await self.registry.delete(image.id, self.bob)
        await self.registry.delete(image.id, self.alice)
        with self.assertRaises(ImageNotFound):
            await self.registry.get(image.id, self.alice)
        self.assertEqual(await ImageRegistryRepository(self.database).members(image.id), [])

    async def test_update(self) -> None:
        """
        Updates change fields and merge properties case-insensitively; purge replaces them.
        """
        image = await self.registry.register(self.request(properties={"OSFAMILY": "linux", "GUI": "no"}), self.alice)
        change = logic.parseUpdate({"name": "new", "min_ram": "128"}, {"osfamily": "windows"})
        updated = await self.registry.update(image.id, change, self.alice)
        self.assertEqual((updated.name, updated.min_ram), ("new", 128))
        self.assertEqual(updated.properties, {"OSFAMILY": "windows", "GUI": "no"})
        purged = await self.registry.update(image.id, logic.parseUpdate({}, {"x": "1"}, purge=True), self.alice)
        self.assertEqual(purged.properties, {"x": "1"})
        self.assertGreaterEqual(purged.updated, image.updated)

    async def test_sharedWith(self) -> None:
        """
        A member sees all images shared with them; someone else only their own shared with that member.
        """
        a = await self.registry.register(self.request(name="a"), self.alice)
        b = await self.registry.register(self.request(name="b"), self.bob)
        await self.registry.addMember(a.id, "carol", True, self.alice)
        await self.registry.addMember(b.id, "carol", None, self.bob)
        carol = Caller("carol")
        self.assertEqual({m.image_id for m in await self.registry.sharedWith("carol", carol)}, {a.id, b.id})
        self.assertEqual([m.image_id for m in await self.registry.sharedWith("carol", self.alice)], [a.id])
        replaced = await self.registry.replaceMembers(a.id, [("dave", None)], carol)
        self.assertEqual([(m.member, m.can_share) for m in replaced], [("dave", False)])


class RepositoryTests(TestCase):
    timeout = 30

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        return Deferred.fromCoroutine(self._setUp())

    def openDatabase(self) -> Deferred[Any]:
        return memoryDatabase(reactor)

    async def _setUp(self) -> None:
        self.database = await self.openDatabase()
        self.addCleanup(self.database.stopService)
        self.images = ImageRepository(self.database)
        self.registry = ImageRegistryRepository(self.database)

    async def test_listIncludesShared(self) -> None:
        """
        ImageRepository.list(owner) includes images shared with the owner (what compute lists).
        """
        shared = await self.images.register("s", "alice", "http://h/s")
        await self.images.register("p", "alice", "http://h/p")
        await self.registry.addMember(shared.id, "bob")
        self.assertEqual([i.id for i in await self.images.list(owner="bob")], [shared.id])

    async def test_memberUpserts(self) -> None:
        """
        addMember without can_share keeps an existing membership's flag; with one sets it.
        """
        image = await self.images.register("s", "alice", "http://h/s")
        self.assertFalse((await self.registry.addMember(image.id, "bob")).can_share)
        self.assertTrue((await self.registry.addMember(image.id, "bob", True)).can_share)
        self.assertTrue((await self.registry.addMember(image.id, "bob")).can_share)
        self.assertTrue(await self.registry.removeMember(image.id, "bob"))
        self.assertFalse(await self.registry.removeMember(image.id, "bob"))

    async def test_updateUnknown(self) -> None:
        """
        Updating a missing image gives None; unknown columns are refused.
        """
        self.assertIsNone(await self.registry.update("nope", {"name": "x"}))
        self.assertRaises(ValueError, self.registry.update, "nope", {"deleted": True})
