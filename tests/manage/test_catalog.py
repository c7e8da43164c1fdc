"""
Tests for the flavor and image commands of snf-manage (L{synnefo_twisted.manage.catalog}).
"""

from __future__ import annotations

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
    async def test_registerAndList(self) -> None:
        """
        image-register stores name, owner, location (a path becomes a file URL) and properties; image-list shows it.
        """
        data = await self.manageJSON(
            "image-register", "Debian", "/srv/images/debian.diskdump", "--public", "-p", "OSFAMILY=linux"
        )
        self.assertEqual(data["location"], "file:///srv/images/debian.diskdump")
        image = await ImageRepository(self.database).get(data["id"])
        assert image is not None
        self.assertEqual((image.name, image.is_public, image.properties), ("Debian", True, {"OSFAMILY": "linux"}))
        rows = await self.manageJSON("image-list")
        self.assertEqual([(r["id"], r["owner"]) for r in rows], [(data["id"], "system")])

    async def test_registerErrors(self) -> None:
        """
        A relative location, a malformed property or a duplicate id are errors.
        """
        code, _out, err = await self.manage("image-register", "x", "relative/path")
        self.assertEqual(code, 1)
        code, _out, err = await self.manage("image-register", "x", "http://h/x", "-p", "novalue")
        self.assertEqual(code, 2)
        await self.manageJSON("image-register", "x", "http://h/x", "--id", "img-1")
        code, _out, err = await self.manage("image-register", "x", "http://h/x", "--id", "img-1")
        self.assertEqual(code, 1)
        self.assertIn("exists", err)
