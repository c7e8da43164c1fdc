"""
Tests for the flavor and image commands of snf-manage (L{synnefo_twisted.manage.catalog}).
"""

from __future__ import annotations

import hashlib
import os

from synnefo_twisted.db.repositories import FlavorRepository, ImageRepository
from tests.manage.support import ManageTestCase


class FlavorCommandTests(ManageTestCase):
    async def test_createProduct(self) -> None:
        """
        flavor-create makes the cartesian product, creating a volume type for a template name.
        """
        rows = await self.manageJSON("flavor-create", "1,2", "1024", "20,40", "drbd")
        self.assertEqual(len(rows), 4)
        self.assertEqual(rows[0]["name"], "C1R1024D20drbd")
        flavors = await FlavorRepository(self.database).list()
        self.assertEqual(len(flavors), 4)
        self.assertEqual(len(await FlavorRepository(self.database).volumeTypes()), 1)

    async def test_createSkipsExisting(self) -> None:
        """
        Existing flavors are skipped with a note; a dry run creates nothing.
        """
        await self.manageJSON("flavor-create", "1", "1024", "20", "drbd")
        code, _out, err = await self.manage("flavor-create", "1", "1024", "20", "1")
        self.assertEqual(code, 0)
        self.assertIn("exists, skipped", err)
        rows = await self.manageJSON("flavor-create", "-n", "2", "512", "10", "1")
        self.assertEqual(rows[0]["id"], "-")
        self.assertEqual(len(await FlavorRepository(self.database).list()), 1)

    async def test_createErrors(self) -> None:
        """
        A bad number is a usage error (exit 2); an unknown volume type id is an error.
        """
        code, _out, err = await self.manage("flavor-create", "x", "1024", "20", "drbd")
        self.assertEqual(code, 2)
        code, _out, err = await self.manage("flavor-create", "1", "1024", "20", "42")
        self.assertEqual(code, 1)
        self.assertIn("no volume type 42", err)

    async def test_listAndModify(self) -> None:
        """
        flavor-modify deletes a flavor; flavor-list hides it unless --deleted.
        """
        rows = await self.manageJSON("flavor-create", "1,2", "1024", "20", "drbd")
        await self.manageJSON("flavor-modify", str(rows[0]["id"]), "--deleted", "True", "--public", "false")
        listed = await self.manageJSON("flavor-list")
        self.assertEqual([r["id"] for r in listed], [rows[1]["id"]])
        listed = await self.manageJSON("flavor-list", "--deleted")
        self.assertEqual([(r["deleted"], r["public"]) for r in listed], [(True, False), (False, True)])
        code, _out, err = await self.manage("flavor-modify", "999", "--deleted", "true")
        self.assertEqual(code, 1)
        self.assertIn("no flavor 999", err)


class ImageCommandTests(ManageTestCase):
    def imageFile(self, data: bytes) -> str:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        path = os.path.join(directory, "debian.diskdump")
        with open(path, "wb") as f:
            f.write(data)
        return path

    async def test_registerAndList(self) -> None:
        """
        image-register stores name, owner, location (a path becomes a file URL, its size and MD5 read from
        the file) and properties; image-list shows it.
        """
        data = b"image" * 999
        path = self.imageFile(data)
        out = await self.manageJSON("image-register", "Debian", path, "--public", "-p", "OSFAMILY=linux")
        self.assertEqual(out["location"], "file://" + path)
        self.assertEqual((out["size"], out["checksum"]), (len(data), hashlib.md5(data).hexdigest()))
        image = await ImageRepository(self.database).get(out["id"])
        assert image is not None
        self.assertEqual((image.name, image.is_public, image.properties), ("Debian", True, {"OSFAMILY": "linux"}))
        rows = await self.manageJSON("image-list")
        self.assertEqual([(r["id"], r["owner"]) for r in rows], [(out["id"], "system")])

    async def test_registerErrors(self) -> None:
        """
        A relative location, a missing file, a bad format, a size that does not match the file, a malformed
        property or a duplicate id are errors that register nothing.
        """
        path = self.imageFile(b"xyz")
        for argv in (
            ("x", "relative/path"),
            ("x", path + ".missing"),
            ("x", "http://h/x", "--disk-format", "qcow2"),
            ("x", path, "--size", "4"),
            ("x", path, "--checksum", "0" * 32),
        ):
            code, _out, err = await self.manage("image-register", *argv)
            self.assertEqual(code, 1, argv)
            self.assertIn("error", err)
        self.assertEqual(await ImageRepository(self.database).list(includeDeleted=True), [])
        code, _out, err = await self.manage("image-register", "x", "http://h/x", "-p", "novalue")
        self.assertEqual(code, 2)
        await self.manageJSON("image-register", "x", "http://h/x", "--id", "img-1")
        code, _out, err = await self.manage("image-register", "x", "http://h/x", "--id", "img-1")
        self.assertEqual(code, 1)
        self.assertIn("exists", err)

    async def test_showModifyRemove(self) -> None:
        """
        image-show shows fields, properties and members; image-modify changes them; image-remove deletes
        (refused while protected).
        """
        await self.manageJSON("image-register", "x", "http://h/x", "--id", "img-1", "-p", "OS=debian", "-p", "GUI=no")
        out = await self.manageJSON(
            "image-modify",
            "img-1",
            "--name",
            "renamed",
            "--public",
            "True",
            "--status",
            "UNAVAILABLE",
            "--min-ram",
            "512",
            "-p",
            "os=ubuntu",
            "--remove-property",
            "gui",
            "--add-member",
            "friend",
            "--protected",
            "true",
        )
        self.assertEqual(
            (out["name"], out["public"], out["status"], out["min_ram"]), ("renamed", True, "UNAVAILABLE", 512)
        )
        self.assertEqual((out["property OS"], out["members"]), ("ubuntu", "friend"))
        self.assertNotIn("property GUI", out)
        shown = await self.manageJSON("image-show", "img-1")
        self.assertEqual(shown, out)
        code, _out, err = await self.manage("image-remove", "img-1")
        self.assertEqual(code, 1)
        self.assertIn("protected", err)
        await self.manageJSON("image-modify", "img-1", "--protected", "false", "--remove-member", "friend")
        removed = await self.manageJSON("image-remove", "img-1")
        self.assertEqual(removed, {"id": "img-1", "deleted": True})
        shown = await self.manageJSON("image-show", "img-1")
        self.assertEqual((shown["deleted"], shown["members"]), (True, ""))
        self.assertEqual(await self.manageJSON("image-list"), [])

    async def test_modifyErrors(self) -> None:
        """
        Unknown images, bad values and nothing to change are errors that change nothing.
        """
        await self.manageJSON("image-register", "x", "http://h/x", "--id", "img-1")
        before = await ImageRepository(self.database).get("img-1")
        for argv in (
            ("nope", "--name", "y"),
            ("img-1",),
            ("img-1", "--status", "BROKEN", "--name", "y"),
            ("img-1", "--disk-format", "vmdk", "--name", "y"),
            ("img-1", "--add-member", "bad member", "--name", "y"),
        ):
            code, _out, err = await self.manage("image-modify", *argv)
            self.assertEqual(code, 1, argv)
            self.assertIn("error", err)
        self.assertEqual(await ImageRepository(self.database).get("img-1"), before)
        code, _out, err = await self.manage("image-remove", "nope")
        self.assertEqual(code, 1)
        code, _out, err = await self.manage("image-show", "nope")
        self.assertIn("no image nope", err)

    async def test_outputFormats(self) -> None:
        """
        image-show renders as pretty, json and csv.
        """
        await self.manageJSON("image-register", "x", "http://h/x", "--id", "img-1")
        for fmt, marker in (("pretty", "KEY"), ("csv", "key,value"), ("json", '"id": "img-1"')):
            code, out, _err = await self.manage("--output-format", fmt, "image-show", "img-1")
            self.assertEqual(code, 0)
            self.assertIn(marker, out)
