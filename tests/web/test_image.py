"""
Tests for L{web.image}: the Image API (Glance v1 / Plankton) over the
image registry, with real image files in the trial temporary directory.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from twisted.internet import reactor

from synnefo_twisted.db.repositories import ImageRepository
from tests.web.support import BASE, APITestCase
from web.app import APIApplication

P = "/image/v1.0"


class ImageAPITestCase(APITestCase):
    """
    An API whose users may register files below C{self.root}; a third
    user C{self.other}.
    """

    async def _setUp(self) -> None:
        await super()._setUp()
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(self.root)
        self.app = APIApplication(self.database, reactor, BASE, imageFileRoots=[self.root])
        from treq.testing import StubTreq

        self.stub = StubTreq(self.app.resource())
        self.other, self.otherToken = await self.users.create("other@example.org", "Other")
        self.repo = ImageRepository(self.database)

    def imageFile(self, name: str, data: bytes) -> str:
        path = os.path.join(self.root, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    async def registerURL(self, name: str = "img", token: str | None = None, **headers: str) -> dict[str, Any]:
        allHeaders = {"X-Image-Meta-Name": name, "X-Image-Meta-Location": "https://images.example.org/" + name}
        allHeaders.update(headers)
        reply = await self.call("POST", f"{P}/images", token or self.token, headers=allHeaders)
        self.assertEqual(reply.code, 201, reply.body)
        image: dict[str, Any] = reply.json()["image"]
        return image

    async def count(self) -> int:
        return len(await self.repo.list(includeDeleted=True))


class VersionTests(ImageAPITestCase):
    async def test_versions(self) -> None:
        """
        GET /image lists v1.0 (current) and v1 without a token; each version document links to itself.
        """
        reply = await self.call("GET", "/image")
        self.assertEqual(reply.code, 200)
        versions = reply.json()["versions"]
        self.assertEqual([v["id"] for v in versions], ["v1.0", "v1.1"])
        self.assertEqual(versions[0]["links"][0]["href"], f"{BASE}/image/v1.0/")
        reply = await self.call("GET", "/image/v1")
        self.assertEqual(reply.json()["version"]["links"][0]["href"], f"{BASE}/image/v1/")


class RegisterTests(ImageAPITestCase):
    async def test_registerURL(self) -> None:
        """
        POST with X-Image-Meta-* headers registers a URL image: 201, JSON image, Location and meta headers.
        """
        reply = await self.call(
            "POST",
            f"{P}/images",
            self.token,
            headers={
                "X-Image-Meta-Name": "Debian%20%CE%B1",
                "X-Image-Meta-Location": "pithos://user/images/debian.diskdump",
                "X-Image-Meta-Disk-Format": "diskdump",
                "X-Image-Meta-Container_format": "bare",
                "X-Image-Meta-Is-Public": "True",
                "X-Image-Meta-Size": "1024",
                "X-Image-Meta-Min-Ram": "512",
                "X-Image-Meta-Property-OSFAMILY": "linux",
                "X-Image-Meta-Property-Root-Partition": "1",
            },
        )
        self.assertEqual(reply.code, 201, reply.body)
        image = reply.json()["image"]
        self.assertEqual(image["name"], "Debian \u03b1")
        self.assertEqual((image["status"], image["is_public"], image["size"]), ("active", True, 1024))
        self.assertEqual((image["min_ram"], image["min_disk"], image["protected"]), (512, 0, False))
        self.assertEqual(image["owner"], self.user.uuid)
        self.assertEqual(image["location"], "pithos://user/images/debian.diskdump")
        self.assertEqual(image["properties"], {"osfamily": "linux", "root_partition": "1"})
        self.assertEqual(reply.header("Location"), f"{BASE}{P}/images/{image['id']}")
        self.assertEqual(reply.header("X-Image-Meta-Name"), "Debian%20%CE%B1")
        self.assertEqual(reply.header("X-Image-Meta-Property-Root-Partition"), "1")
        stored = await self.repo.get(image["id"])
        assert stored is not None
        self.assertEqual((stored.owner, stored.size, stored.min_ram), (self.user.uuid, 1024, 512))

    async def test_registerFile(self) -> None:
        """
        A file location (file:// URL or absolute path) below a root gets its size and MD5 from the file.
        """
        data = b"\x00disk image bytes" * 1000
        path = self.imageFile("disk.img", data)
        for location in (path, "file://" + path):
            image = await self.registerURL("file", **{"X-Image-Meta-Location": location})
            self.assertEqual(image["size"], len(data))
            self.assertEqual(image["checksum"], hashlib.md5(data).hexdigest())
            self.assertEqual(image["location"], "file://" + path)

    async def test_registerFileDeclaredFacts(self) -> None:
        """
        Declared size/checksum must match the file: a mismatch is 400 naming the field, nothing written.
        """
        data = b"abc" * 10
        path = self.imageFile("d.img", data)
        reply = await self.call(
            "POST",
            f"{P}/images",
            self.token,
            headers={"X-Image-Meta-Name": "x", "X-Image-Meta-Location": path, "X-Image-Meta-Size": "31"},
        )
        self.assertIn("'size'", self.assertFault(reply, "badRequest", 400)["message"])
        reply = await self.call(
            "POST",
            f"{P}/images",
            self.token,
            headers={"X-Image-Meta-Name": "x", "X-Image-Meta-Location": path, "X-Image-Meta-Checksum": "0" * 32},
        )
        self.assertIn("'checksum'", self.assertFault(reply, "badRequest", 400)["message"])
        self.assertEqual(await self.count(), 0)
        image = await self.registerURL(
            "ok",
            **{
                "X-Image-Meta-Location": path,
                "X-Image-Meta-Size": "30",
                "X-Image-Meta-Checksum": hashlib.md5(data).hexdigest().upper(),
            },
        )
        self.assertEqual(image["size"], 30)

    async def test_registerFileRefused(self) -> None:
        """
        Missing files, directories, unreadable files and files outside the roots (also through a symlink) are 400 'location'.
        """
        outside = os.path.abspath(self.mktemp())
        os.makedirs(outside)
        secret = os.path.join(outside, "secret")
        with open(secret, "wb") as f:
            f.write(b"s")
        os.symlink(secret, os.path.join(self.root, "link.img"))
        unreadable = self.imageFile("locked.img", b"x")
        os.chmod(unreadable, 0)
        self.addCleanup(os.chmod, unreadable, 0o600)
        cases = [
            os.path.join(self.root, "missing.img"),
            self.root,
            secret,
            os.path.join(self.root, "link.img"),
            os.path.join(self.root, "..", "x"),
            "relative/path",
            "ftp://host/x",
            "https:///nohost",
            "pithos://account/only-container",
        ]
        if os.geteuid() != 0:
            cases.append(unreadable)
        for location in cases:
            reply = await self.call(
                "POST",
                f"{P}/images",
                self.token,
                headers={"X-Image-Meta-Name": "x", "X-Image-Meta-Location": location},
            )
            inner = self.assertFault(reply, "badRequest", 400)
            self.assertIn("'location'", inner["message"], location)
        self.assertEqual(await self.count(), 0)

    async def test_malformed(self) -> None:
        """
        Each malformed header is 400 naming the field, and nothing is written.
        """
        base = {"X-Image-Meta-Name": "x", "X-Image-Meta-Location": "http://h/x"}
        cases = [
            ({"X-Image-Meta-Name": None}, "name"),
            ({"X-Image-Meta-Location": None}, "location"),
            ({"X-Image-Meta-Name": "   "}, "name"),
            ({"X-Image-Meta-Disk-Format": "qcow2"}, "disk_format"),
            ({"X-Image-Meta-Container-Format": "box"}, "container_format"),
            ({"X-Image-Meta-Is-Public": "maybe"}, "is_public"),
            ({"X-Image-Meta-Protected": "yes"}, "protected"),
            ({"X-Image-Meta-Size": "-1"}, "size"),
            ({"X-Image-Meta-Min-Disk": "ten"}, "min_disk"),
            ({"X-Image-Meta-Checksum": "abc"}, "checksum"),
            ({"X-Image-Meta-Id": "bad id!"}, "id"),
            ({"X-Image-Meta-Status": "active"}, "status"),
            ({"X-Image-Meta-Store": "file"}, "store"),
            ({"X-Image-Meta-Colour": "red"}, "colour"),
            ({"X-Image-Meta-Name": "%FF%FE"}, "name"),
        ]
        for change, field in cases:
            headers = dict(base)
            for key, value in change.items():
                if value is None:
                    del headers[key]
                else:
                    headers[key] = value
            reply = await self.call("POST", f"{P}/images", self.token, headers=headers)
            inner = self.assertFault(reply, "badRequest", 400)
            self.assertIn(f"'{field}'", inner["message"], (change, inner))
        self.assertEqual(await self.count(), 0)

    async def test_uploadRefused(self) -> None:
        """
        A request carrying image data is 501 notImplemented: the registry keeps no bytes.
        """
        reply = await self.call(
            "POST",
            f"{P}/images",
            self.token,
            headers={"X-Image-Meta-Name": "x", "Content-Type": "application/octet-stream"},
            raw=b"\x00" * 100,
        )
        self.assertIn("location", self.assertFault(reply, "notImplemented", 501)["message"].lower())
        self.assertEqual(await self.count(), 0)

    async def test_registerJSON(self) -> None:
        """
        A JSON body {"image": {...}} (what openstacksdk sends; unknown keys are properties) registers too;
        bad JSON is 400.
        """
        reply = await self.call(
            "POST",
            f"{P}/images",
            self.token,
            body={
                "image": {
                    "name": "j",
                    "location": "http://h/j",
                    "min_disk": 3,
                    "properties": {"OS": "debian"},
                    "USERS": "root",
                }
            },
        )
        self.assertEqual(reply.code, 201, reply.body)
        image = reply.json()["image"]
        self.assertEqual((image["min_disk"], image["properties"]), (3, {"OS": "debian", "USERS": "root"}))
        for body in (b"{", b"[]", b'{"image": {"name": "j", "location": "http://h/j", "properties": []}}'):
            reply = await self.call(
                "POST", f"{P}/images", self.token, headers={"Content-Type": "application/json"}, raw=body
            )
            self.assertFault(reply, "badRequest", 400)
        self.assertEqual(await self.count(), 1)

    async def test_ownerAndId(self) -> None:
        """
        A user may choose the id (a taken one is 409) but not register for another owner (403); an admin may.
        """
        image = await self.registerURL("a", **{"X-Image-Meta-Id": "my-image-1"})
        self.assertEqual(image["id"], "my-image-1")
        reply = await self.call(
            "POST",
            f"{P}/images",
            self.token,
            headers={"X-Image-Meta-Name": "b", "X-Image-Meta-Location": "http://h/b", "X-Image-Meta-Id": "my-image-1"},
        )
        self.assertFault(reply, "conflict", 409)
        reply = await self.call(
            "POST",
            f"{P}/images",
            self.token,
            headers={"X-Image-Meta-Name": "b", "X-Image-Meta-Location": "http://h/b", "X-Image-Meta-Owner": "system"},
        )
        self.assertFault(reply, "forbidden", 403)
        image = await self.registerURL("sys", self.adminToken, **{"X-Image-Meta-Owner": "system"})
        self.assertEqual(image["owner"], "system")
        self.assertEqual(await self.count(), 2)

    async def test_adminFileRootsApply(self) -> None:
        """
        The file roots hold for every API caller, admins included (only snf-manage is unrestricted).
        """
        outside = os.path.abspath(self.mktemp())
        os.makedirs(outside)
        path = os.path.join(outside, "x.img")
        with open(path, "wb") as f:
            f.write(b"x")
        reply = await self.call(
            "POST", f"{P}/images", self.adminToken, headers={"X-Image-Meta-Name": "x", "X-Image-Meta-Location": path}
        )
        self.assertFault(reply, "badRequest", 400)

    async def test_noToken(self) -> None:
        """
        Every image route but version discovery needs a token.
        """
        reply = await self.call("GET", f"{P}/images")
        self.assertFault(reply, "unauthorized", 401)
        reply = await self.call("POST", f"{P}/images", headers={"X-Image-Meta-Name": "x"})
        self.assertFault(reply, "unauthorized", 401)
        self.assertEqual(await self.count(), 0)


class ReadTests(ImageAPITestCase):
    async def _setUp(self) -> None:
        await super()._setUp()
        self.public = await self.registerURL(
            "public", self.otherToken, **{"X-Image-Meta-Is-Public": "true", "X-Image-Meta-Size": "300"}
        )
        self.mine = await self.registerURL("mine", **{"X-Image-Meta-Size": "100", "X-Image-Meta-Property-OS": "x"})
        self.private = await self.registerURL("private", self.otherToken, **{"X-Image-Meta-Size": "200"})
        self.shared = await self.registerURL("shared", self.otherToken, **{"X-Image-Meta-Disk-Format": "extdump"})
        reply = await self.call("PUT", f"{P}/images/{self.shared['id']}/members/{self.user.uuid}", self.otherToken)
        self.assertEqual(reply.code, 204)

    async def test_list(self) -> None:
        """
        The brief list holds public, own and shared images (not others' private ones), newest first.
        """
        reply = await self.call("GET", f"{P}/images", self.token)
        images = reply.json()["images"]
        self.assertEqual([i["name"] for i in images], ["shared", "mine", "public"], "default sort is created_at desc")
        self.assertEqual(
            set(images[0]), {"id", "name", "status", "disk_format", "container_format", "size", "checksum"}
        )

    async def test_detail(self) -> None:
        """
        Details carry owner, properties and dates; the location only for the owner.
        """
        reply = await self.call("GET", f"{P}/images/detail", self.token)
        images = {i["name"]: i for i in reply.json()["images"]}
        self.assertEqual(images["mine"]["properties"], {"os": "x"})
        self.assertEqual(images["mine"]["location"], "https://images.example.org/mine")
        self.assertNotIn("location", images["public"])
        self.assertEqual(images["public"]["owner"], self.other.uuid)
        self.assertTrue(images["public"]["created_at"].endswith("+00:00"))
        self.assertEqual((images["public"]["deleted"], images["public"]["deleted_at"]), (False, None))

    async def test_filtersAndSort(self) -> None:
        """
        name, disk_format, status, size_min/size_max and property- filter; sort_key/sort_dir order.
        """

        async def names(query: str) -> list[str]:
            reply = await self.call("GET", f"{P}/images/detail?{query}", self.token)
            self.assertEqual(reply.code, 200, reply.body)
            return [i["name"] for i in reply.json()["images"]]

        self.assertEqual(await names("name=mine"), ["mine"])
        self.assertEqual(await names("disk_format=extdump"), ["shared"])
        self.assertEqual(await names("container_format=bare&sort_key=name&sort_dir=asc"), ["mine", "public", "shared"])
        self.assertEqual(await names("status=active&sort_key=size&sort_dir=asc"), ["shared", "mine", "public"])
        self.assertEqual(await names("status=saving"), [])
        self.assertEqual(await names("size_min=100&size_max=250"), ["mine"])
        self.assertEqual(await names("property-OS=x"), ["mine"])
        self.assertEqual(await names("is_public=true"), ["public"])

    async def test_changesSince(self) -> None:
        """
        changes-since lists images updated since then, deleted ones included (status deleted); a bad time is 400.
        """
        await self.call("DELETE", f"{P}/images/{self.mine['id']}", self.token)
        mine = await self.repo.get(self.mine["id"])
        assert mine is not None
        since = mine.updated.isoformat()
        reply = await self.call("GET", f"{P}/images/detail?changes-since={since.replace('+', '%2B')}", self.token)
        self.assertEqual(reply.code, 200, reply.body)
        images = {i["name"]: i for i in reply.json()["images"]}
        self.assertEqual(list(images), ["mine"])
        self.assertEqual((images["mine"]["status"], images["mine"]["deleted"]), ("deleted", True))
        self.assertIsNotNone(images["mine"]["deleted_at"])
        reply = await self.call("GET", f"{P}/images?changes-since=2000-01-01T00:00:00Z", self.token)
        self.assertEqual({i["name"] for i in reply.json()["images"]}, {"mine", "public", "shared"})
        reply = await self.call("GET", f"{P}/images", self.token)
        self.assertEqual({i["name"] for i in reply.json()["images"]}, {"public", "shared"})
        reply = await self.call("GET", f"{P}/images?changes-since=yesterday", self.token)
        self.assertIn("changes-since", self.assertFault(reply, "badRequest", 400)["message"])

    async def test_badListParameters(self) -> None:
        """
        Bad sort keys, directions, sizes, statuses, limits and markers are 400 naming the parameter.
        """
        for query, word in (
            ("sort_key=owner", "sort_key"),
            ("sort_dir=up", "sort_dir"),
            ("size_min=big", "size_min"),
            ("size_max=-3", "size_max"),
            ("status=gone", "status"),
            ("limit=x", "limit"),
            ("marker=nope", "marker"),
        ):
            reply = await self.call("GET", f"{P}/images?{query}", self.token)
            self.assertIn(word, self.assertFault(reply, "badRequest", 400)["message"], query)

    async def test_pagination(self) -> None:
        """
        limit and marker (an image id) page through the sorted list.
        """
        reply = await self.call("GET", f"{P}/images?sort_key=name&sort_dir=asc&limit=2", self.token)
        first = [i["name"] for i in reply.json()["images"]]
        self.assertEqual(first, ["mine", "public"])
        marker = reply.json()["images"][-1]["id"]
        reply = await self.call("GET", f"{P}/images?sort_key=name&sort_dir=asc&limit=2&marker={marker}", self.token)
        self.assertEqual([i["name"] for i in reply.json()["images"]], ["shared"])

    async def test_head(self) -> None:
        """
        HEAD returns the metadata as X-Image-Meta-* headers (properties as -Property-) with no body.
        """
        reply = await self.call("HEAD", f"{P}/images/{self.mine['id']}", self.token)
        self.assertEqual(reply.code, 200)
        self.assertEqual(reply.body, b"")
        self.assertEqual(reply.header("X-Image-Meta-Id"), self.mine["id"])
        self.assertEqual(reply.header("X-Image-Meta-Name"), "mine")
        self.assertEqual(reply.header("X-Image-Meta-Status"), "active")
        self.assertEqual(reply.header("X-Image-Meta-Size"), "100")
        self.assertEqual(reply.header("X-Image-Meta-Is-Public"), "False")
        self.assertEqual(reply.header("X-Image-Meta-Owner"), self.user.uuid)
        self.assertEqual(reply.header("X-Image-Meta-Property-Os"), "x")

    async def test_get(self) -> None:
        """
        GET returns the metadata as headers and as JSON (there are no image bytes to return).
        """
        reply = await self.call("GET", f"{P}/images/{self.shared['id']}", self.token)
        self.assertEqual(reply.code, 200)
        self.assertEqual(reply.json()["image"]["name"], "shared")
        self.assertEqual(reply.header("X-Image-Meta-Disk-Format"), "extdump")
        reply = await self.call("GET", f"/image/v1/images/{self.public['id']}", self.token)
        self.assertEqual(reply.json()["image"]["id"], self.public["id"])

    async def test_othersPrivateIsNotFound(self) -> None:
        """
        Another user's private image is 404 on every route, exactly like a missing one.
        """
        for method in ("GET", "HEAD", "PUT", "DELETE"):
            for ident in (self.private["id"], "no-such-image"):
                reply = await self.call(method, f"{P}/images/{ident}", self.token)
                self.assertEqual(reply.code, 404, (method, ident))
                if method != "HEAD":
                    self.assertFault(reply, "itemNotFound", 404)
        for path in ("members", f"members/{self.user.uuid}"):
            reply = await self.call(
                "PUT", f"{P}/images/{self.private['id']}/{path}", self.token, body={"memberships": []}
            )
            self.assertFault(reply, "itemNotFound", 404)
        reply = await self.call("GET", f"{P}/images/{self.private['id']}/members", self.token)
        self.assertFault(reply, "itemNotFound", 404)

    async def test_wrongMethod(self) -> None:
        """
        A method a resource does not serve is 405 notAllowed with Allow.
        """
        cases = [
            ("DELETE", f"{P}/images", "GET,HEAD,POST"),
            ("POST", f"{P}/images/{self.mine['id']}", "DELETE,GET,HEAD,PUT"),
            ("POST", f"{P}/images/{self.mine['id']}/members", "GET,HEAD,PUT"),
            ("GET", f"{P}/images/{self.mine['id']}/members/x", "DELETE,PUT"),
            ("PUT", f"{P}/shared-images/x", "GET,HEAD"),
        ]
        for method, path, allow in cases:
            reply = await self.call(method, path, self.token)
            self.assertFault(reply, "notAllowed", 405)
            self.assertEqual(reply.header("Allow"), allow, path)


class UpdateDeleteTests(ImageAPITestCase):
    async def _setUp(self) -> None:
        await super()._setUp()
        self.mine = await self.registerURL("mine", **{"X-Image-Meta-Property-OSFAMILY": "linux"})
        await self.repo.setProperties(self.mine["id"], {"USERS": "root"})
        self.theirs = await self.registerURL("theirs", self.otherToken, **{"X-Image-Meta-Is-Public": "true"})

    async def test_update(self) -> None:
        """
        PUT changes fields and merges properties (a header key matching an existing one but for case updates it).
        """
        reply = await self.call(
            "PUT",
            f"{P}/images/{self.mine['id']}",
            self.token,
            headers={
                "X-Image-Meta-Name": "renamed",
                "X-Image-Meta-Min-Disk": "10",
                "X-Image-Meta-Is-Public": "true",
                "X-Image-Meta-Property-Users": "user",
                "X-Image-Meta-Property-Gui": "no",
            },
        )
        self.assertEqual(reply.code, 200, reply.body)
        image = reply.json()["image"]
        self.assertEqual((image["name"], image["min_disk"], image["is_public"]), ("renamed", 10, True))
        self.assertEqual(image["properties"], {"USERS": "user", "gui": "no", "osfamily": "linux"})
        self.assertEqual(reply.header("X-Image-Meta-Name"), "renamed")
        compute = (await self.call("GET", f"/compute/v2.0/images/{self.mine['id']}", self.token)).json()["image"]
        self.assertEqual((compute["name"], compute["minDisk"], compute["public"]), ("renamed", 10, True))
        self.assertEqual(compute["metadata"], image["properties"])

    async def test_updatePurge(self) -> None:
        """
        With X-Glance-Registry-Purge-Props: true the properties become exactly the given ones.
        """
        reply = await self.call(
            "PUT",
            f"{P}/images/{self.mine['id']}",
            self.token,
            headers={"X-Glance-Registry-Purge-Props": "true", "X-Image-Meta-Property-Only": "1"},
        )
        self.assertEqual(reply.json()["image"]["properties"], {"only": "1"})

    async def test_updateJSON(self) -> None:
        """
        PUT with a JSON body {"image": {...}} updates as openstacksdk does.
        """
        reply = await self.call("PUT", f"{P}/images/{self.mine['id']}", self.token, body={"image": {"min_ram": 256}})
        self.assertEqual(reply.json()["image"]["min_ram"], 256)

    async def test_updateMalformed(self) -> None:
        """
        Fixed or unknown fields and bad values are 400 naming the field; nothing changes.
        """
        before = await self.repo.get(self.mine["id"])
        for header, value, field in (
            ("X-Image-Meta-Location", "http://h/other", "location"),
            ("X-Image-Meta-Size", "5", "size"),
            ("X-Image-Meta-Id", "new-id", "id"),
            ("X-Image-Meta-Status", "killed", "status"),
            ("X-Image-Meta-Disk-Format", "vmdk", "disk_format"),
            ("X-Image-Meta-Min-Ram", "-5", "min_ram"),
            ("X-Image-Meta-Name", "", "name"),
            ("X-Image-Meta-Flavour", "x", "flavour"),
        ):
            reply = await self.call(
                "PUT",
                f"{P}/images/{self.mine['id']}",
                self.token,
                headers={header: value, "X-Image-Meta-Property-New": "v"},
            )
            self.assertIn(f"'{field}'", self.assertFault(reply, "badRequest", 400)["message"])
        reply = await self.call(
            "PUT", f"{P}/images/{self.mine['id']}", self.token, headers={"X-Glance-Registry-Purge-Props": "maybe"}
        )
        self.assertFault(reply, "badRequest", 400)
        self.assertEqual(await self.repo.get(self.mine["id"]), before)

    async def test_nonOwnerUpdate(self) -> None:
        """
        A user who sees (but does not own) an image gets 403 updating or deleting it; an admin may.
        """
        reply = await self.call(
            "PUT", f"{P}/images/{self.theirs['id']}", self.token, headers={"X-Image-Meta-Name": "mine now"}
        )
        self.assertFault(reply, "forbidden", 403)
        reply = await self.call("DELETE", f"{P}/images/{self.theirs['id']}", self.token)
        self.assertFault(reply, "forbidden", 403)
        stored = await self.repo.get(self.theirs["id"])
        assert stored is not None
        self.assertEqual((stored.name, stored.deleted), ("theirs", False))
        reply = await self.call(
            "PUT", f"{P}/images/{self.theirs['id']}", self.adminToken, headers={"X-Image-Meta-Name": "fixed"}
        )
        self.assertEqual(reply.json()["image"]["name"], "fixed")

    async def test_ownerChange(self) -> None:
        """
        Only an admin (who reaches any image by id) gives an image to another owner.
        """
        reply = await self.call(
            "PUT", f"{P}/images/{self.mine['id']}", self.token, headers={"X-Image-Meta-Owner": self.other.uuid}
        )
        self.assertFault(reply, "forbidden", 403)
        reply = await self.call(
            "PUT", f"{P}/images/{self.mine['id']}", self.adminToken, headers={"X-Image-Meta-Owner": self.other.uuid}
        )
        self.assertEqual(reply.json()["image"]["owner"], self.other.uuid)

    async def test_delete(self) -> None:
        """
        The owner deletes (204); the image is then gone from the image and compute APIs, marked with its time.
        """
        reply = await self.call("DELETE", f"{P}/images/{self.mine['id']}", self.token)
        self.assertEqual((reply.code, reply.body), (204, b""))
        for path in (f"{P}/images/{self.mine['id']}", f"/compute/v2.0/images/{self.mine['id']}"):
            self.assertFault(await self.call("GET", path, self.token), "itemNotFound", 404)
        stored = await self.repo.get(self.mine["id"])
        assert stored is not None
        self.assertTrue(stored.deleted)
        self.assertIsNotNone(stored.deleted_at)

    async def test_protected(self) -> None:
        """
        A protected image cannot be deleted (403, through either API) until it is unprotected.
        """
        reply = await self.call(
            "PUT", f"{P}/images/{self.mine['id']}", self.token, headers={"X-Image-Meta-Protected": "True"}
        )
        self.assertTrue(reply.json()["image"]["protected"])
        for path in (f"{P}/images/{self.mine['id']}", f"/compute/v2.0/images/{self.mine['id']}"):
            self.assertFault(await self.call("DELETE", path, self.token), "forbidden", 403)
        await self.call("PUT", f"{P}/images/{self.mine['id']}", self.token, headers={"X-Image-Meta-Protected": "False"})
        reply = await self.call("DELETE", f"{P}/images/{self.mine['id']}", self.token)
        self.assertEqual(reply.code, 204)


class MemberTests(ImageAPITestCase):
    async def _setUp(self) -> None:
        await super()._setUp()
        self.image = await self.registerURL("private")
        self.path = f"{P}/images/{self.image['id']}/members"

    async def members(self, token: str | None = None) -> list[dict[str, Any]]:
        reply = await self.call("GET", self.path, token or self.token)
        self.assertEqual(reply.code, 200, reply.body)
        members: list[dict[str, Any]] = reply.json()["members"]
        return members

    async def test_addAndSee(self) -> None:
        """
        Adding a member (204) lets them see the image in both APIs; removing them hides it again.
        """
        self.assertFault(await self.call("GET", f"{P}/images/{self.image['id']}", self.otherToken), "itemNotFound", 404)
        reply = await self.call("PUT", f"{self.path}/{self.other.uuid}", self.token)
        self.assertEqual((reply.code, reply.body), (204, b""))
        self.assertEqual(await self.members(), [{"member_id": self.other.uuid, "can_share": False}])
        reply = await self.call("GET", f"{P}/images/{self.image['id']}", self.otherToken)
        self.assertEqual(reply.code, 200)
        reply = await self.call("GET", "/compute/v2.0/images", self.otherToken)
        self.assertIn(self.image["id"], [i["id"] for i in reply.json()["images"]])
        reply = await self.call("GET", f"/compute/v2.0/images/{self.image['id']}", self.otherToken)
        self.assertEqual(reply.code, 200)
        reply = await self.call("DELETE", f"{self.path}/{self.other.uuid}", self.token)
        self.assertEqual(reply.code, 204)
        self.assertFault(await self.call("GET", f"{P}/images/{self.image['id']}", self.otherToken), "itemNotFound", 404)
        reply = await self.call("DELETE", f"{self.path}/{self.other.uuid}", self.token)
        self.assertFault(reply, "itemNotFound", 404)

    async def test_canShare(self) -> None:
        """
        A body sets can_share; without one an existing membership is unchanged; a member who may share adds others.
        """
        await self.call("PUT", f"{self.path}/{self.other.uuid}", self.token, body={"member": {"can_share": True}})
        await self.call("PUT", f"{self.path}/{self.other.uuid}", self.token)
        self.assertEqual(await self.members(), [{"member_id": self.other.uuid, "can_share": True}])
        reply = await self.call("PUT", f"{self.path}/third-user", self.otherToken, body={"can_share": False})
        self.assertEqual(reply.code, 204)
        self.assertEqual({m["member_id"] for m in await self.members()}, {self.other.uuid, "third-user"})

    async def test_memberWithoutShareRight(self) -> None:
        """
        A member without can_share sees the members but may not change them (403).
        """
        await self.call("PUT", f"{self.path}/{self.other.uuid}", self.token)
        self.assertEqual(len(await self.members(self.otherToken)), 1)
        reply = await self.call("PUT", f"{self.path}/someone", self.otherToken)
        self.assertFault(reply, "forbidden", 403)
        reply = await self.call("PUT", self.path, self.otherToken, body={"memberships": []})
        self.assertFault(reply, "forbidden", 403)
        self.assertEqual(len(await self.members()), 1)

    async def test_replace(self) -> None:
        """
        PUT members replaces the list: missing ones go, named ones keep can_share unless given.
        """
        await self.call("PUT", f"{self.path}/a", self.token, body={"member": {"can_share": True}})
        await self.call("PUT", f"{self.path}/b", self.token)
        reply = await self.call(
            "PUT",
            self.path,
            self.token,
            body={"memberships": [{"member_id": "a"}, {"member_id": "c", "can_share": True}]},
        )
        self.assertEqual(reply.code, 204, reply.body)
        self.assertEqual(
            await self.members(),
            [{"member_id": "a", "can_share": True}, {"member_id": "c", "can_share": True}],
        )

    async def test_malformed(self) -> None:
        """
        Malformed member bodies are 400 naming the field; nothing changes.
        """
        await self.call("PUT", f"{self.path}/a", self.token)
        for body, field in (
            ({}, "memberships"),
            ({"memberships": {}}, "memberships"),
            ({"memberships": ["a"]}, "memberships[0]"),
            ({"memberships": [{"can_share": True}]}, "memberships[0]"),
            ({"memberships": [{"member_id": "b"}, {"member_id": "bad id"}]}, "memberships[1].member_id"),
            ({"memberships": [{"member_id": "b", "can_share": "yes"}]}, "memberships[0].can_share"),
        ):
            reply = await self.call("PUT", self.path, self.token, body=body)
            self.assertIn(f"'{field}", self.assertFault(reply, "badRequest", 400)["message"], body)
        for body, field in (({"member": {"can_share": 1}}, "can_share"), ({"member": []}, "member")):
            reply = await self.call("PUT", f"{self.path}/b", self.token, body=body)
            self.assertIn(f"'{field}'", self.assertFault(reply, "badRequest", 400)["message"])
        reply = await self.call("PUT", self.path, self.token, headers={"Content-Type": "text/plain"}, raw=b"x")
        self.assertFault(reply, "badRequest", 400)
        self.assertEqual(await self.members(), [{"member_id": "a", "can_share": False}])

    async def test_sharedImages(self) -> None:
        """
        GET /shared-images/<member> lists what is shared with the member: everything for the member
        themselves, only the caller's own images for anyone else.
        """
        await self.call("PUT", f"{self.path}/{self.other.uuid}", self.token)
        admins = await self.registerURL("admins", self.adminToken)
        await self.call("PUT", f"{P}/images/{admins['id']}/members/{self.other.uuid}", self.adminToken)
        reply = await self.call("GET", f"{P}/shared-images/{self.other.uuid}", self.otherToken)
        self.assertEqual({s["image_id"] for s in reply.json()["shared_images"]}, {self.image["id"], admins["id"]})
        reply = await self.call("GET", f"{P}/shared-images/{self.other.uuid}", self.token)
        self.assertEqual(reply.json(), {"shared_images": [{"image_id": self.image["id"], "can_share": False}]})
        reply = await self.call("GET", f"{P}/shared-images/nobody", self.token)
        self.assertEqual(reply.json(), {"shared_images": []})
