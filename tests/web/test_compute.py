"""
Tests for L{web.compute}: versions, flavors, images, extensions, key pairs, limits.
"""

from __future__ import annotations

from typing import Any

from synnefo_twisted.db.repositories import (
    FlavorRepository,
    ImageRepository,
    ProjectRepository,
    QuotaRepository,
)
from tests.web.support import BASE, APITestCase
from web.compute import absoluteLimits, keyFingerprint

# An Ed25519 public key and its MD5 fingerprint (as ssh-keygen -l -E md5 prints it).
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJ4ZoIFmM3UtR6yXW4h1i0WzZ5mWxuJrw5CzAyE0Fj4 test@example"


class VersionTests(APITestCase):
    async def test_versions(self) -> None:
        """
        /compute lists v2.0 and v2.1 as CURRENT without a token.
        """
        reply = await self.call("GET", "/compute")
        self.assertEqual(
            [(v["id"], v["status"]) for v in reply.json()["versions"]], [("v2.0", "CURRENT"), ("v2.1", "CURRENT")]
        )

    async def test_version(self) -> None:
        """
        /compute/v2.0/ answers the version document with media types and describedby links.
        """
        for path in ("/compute/v2.0", "/compute/v2.0/", "/compute/v2.1"):
            reply = await self.call("GET", path)
            self.assertEqual(reply.code, 200, path)
            version = reply.json()["version"]
            self.assertEqual(len(version["media-types"]), 2)
            self.assertEqual([link["rel"] for link in version["links"]], ["self", "describedby", "describedby"])


class FlavorTests(APITestCase):
    async def _setUp(self) -> None:
        await super()._setUp()
        repo = FlavorRepository(self.database)
        vt = await repo.addVolumeType("drbd", "drbd")
        self.f1 = await repo.create(1, 1024, 20, vt.id)
        self.f2 = await repo.create(2, 2048, 40, vt.id)
        self.hidden = await repo.create(4, 4096, 80, vt.id, public=False)
        self.gone = await repo.create(8, 8192, 80, vt.id)
        await repo.modify(self.gone.id, deleted=True)

    async def test_list(self) -> None:
        """
        The list has id, name and self/bookmark links of public, live flavors.
        """
        reply = await self.call("GET", "/compute/v2.0/flavors", self.token)
        self.assertEqual(
            reply.json()["flavors"][0],
            {
                "id": self.f1.id,
                "name": "C1R1024D20drbd",
                "links": [
                    {"rel": "self", "href": f"{BASE}/compute/v2.0/flavors/{self.f1.id}"},
                    {"rel": "bookmark", "href": f"{BASE}/compute/flavors/{self.f1.id}"},
                ],
            },
        )
        self.assertEqual([f["id"] for f in reply.json()["flavors"]], [self.f1.id, self.f2.id])

    async def test_detail(self) -> None:
        """
        The detail list carries ram (MiB), disk (GiB), vcpus and the SNF fields.
        """
        reply = await self.call("GET", "/compute/v2.1/flavors/detail", self.token)
        flavor = reply.json()["flavors"][1]
        self.assertEqual((flavor["ram"], flavor["disk"], flavor["vcpus"]), (2048, 40, 2))
        self.assertEqual(flavor["SNF:disk_template"], "drbd")
        self.assertIs(flavor["os-flavor-access:is_public"], True)
        self.assertIs(flavor["SNF:allow_create"], True)
        self.assertEqual(flavor["links"][0]["href"], f"{BASE}/compute/v2.1/flavors/{self.f2.id}")

    async def test_adminSeesPrivate(self) -> None:
        """
        Admins also see non-public flavors; SNF:is_public=false selects only those.
        """
        reply = await self.call("GET", "/compute/v2.0/flavors?SNF:is_public=false", self.adminToken)
        self.assertEqual([f["id"] for f in reply.json()["flavors"]], [self.hidden.id])
        reply = await self.call("GET", "/compute/v2.0/flavors?SNF:is_public=false", self.token)
        self.assertEqual(reply.json()["flavors"], [])
        reply = await self.call("GET", "/compute/v2.0/flavors?SNF:is_public=maybe", self.token)
        self.assertFault(reply, "badRequest", 400)

    async def test_pagination(self) -> None:
        """
        limit cuts the list and adds a next link; marker continues after the given id.
        """
        reply = await self.call("GET", "/compute/v2.0/flavors?limit=1", self.token)
        self.assertEqual([f["id"] for f in reply.json()["flavors"]], [self.f1.id])
        self.assertEqual(reply.json()["flavors_links"][0]["rel"], "next")
        reply = await self.call("GET", f"/compute/v2.0/flavors?marker={self.f1.id}", self.token)
        self.assertEqual([f["id"] for f in reply.json()["flavors"]], [self.f2.id])
        self.assertNotIn("flavors_links", reply.json())
        for query in ("limit=x", "limit=-1", "marker=999"):
            reply = await self.call("GET", f"/compute/v2.0/flavors?{query}", self.token)
            self.assertFault(reply, "badRequest", 400)

    async def test_listingFollowsChanges(self) -> None:
        """
        A listing answered before reflects every change made since (the reused answer is never stale): a renamed,
        a deleted and a new flavor.
        """
        repo = FlavorRepository(self.database)
        before = (await self.call("GET", "/compute/v2.0/flavors/detail", self.token)).json()["flavors"]
        self.assertEqual([f["id"] for f in before], [self.f1.id, self.f2.id])
        again = await self.call("GET", "/compute/v2.0/flavors/detail", self.token)
        self.assertEqual(again.json()["flavors"], before)
        await repo.modify(self.f1.id, name="renamed")
        await repo.modify(self.f2.id, deleted=True)
        added = await repo.create(16, 512, 10, self.f1.volume_type_id)
        after = (await self.call("GET", "/compute/v2.0/flavors/detail", self.token)).json()["flavors"]
        self.assertEqual([(f["id"], f["name"]) for f in after], [(self.f1.id, "renamed"), (added.id, added.name)])
        admin = (await self.call("GET", "/compute/v2.0/flavors/detail", self.adminToken)).json()["flavors"]
        self.assertEqual([f["id"] for f in admin], [self.f1.id, self.hidden.id, added.id])

    async def test_listingFollowsEachWrite(self) -> None:
        """
        Each write, made right after a listing that was answered twice (the
        second time reused without reading the flavors), is in the next
        listing: a rename, a flavor made private, C{allow_create} turned
        off, a new flavor and a volume type's disk template changed.
        """
        repo = FlavorRepository(self.database)
        path = "/compute/v2.0/flavors/detail"

        async def listed() -> dict[int, dict[str, Any]]:
            reply = await self.call("GET", path, self.token)
            again = await self.call("GET", path, self.token)
            self.assertEqual(again.body, reply.body)
            return {f["id"]: f for f in reply.json()["flavors"]}

        await listed()
        await repo.modify(self.f1.id, name="renamed")
        self.assertEqual((await listed())[self.f1.id]["name"], "renamed")
        await repo.modify(self.f2.id, public=False)
        self.assertNotIn(self.f2.id, await listed())
        await repo.modify(self.f1.id, allow_create=False)
        self.assertIs((await listed())[self.f1.id]["SNF:allow_create"], False)
        added = await repo.create(16, 512, 10, self.f1.volume_type_id)
        self.assertIn(added.id, await listed())
        await self.database.runOperation(
            "UPDATE volume_types SET disk_template = %s WHERE id = %s", ("plain", self.f1.volume_type_id)
        )
        self.assertEqual((await listed())[self.f1.id]["SNF:disk_template"], "plain")

    async def test_show(self) -> None:
        """
        A flavor is shown even when deleted; a hidden or unknown one is 404.
        """
        reply = await self.call("GET", f"/compute/v2.0/flavors/{self.gone.id}", self.token)
        self.assertEqual(reply.json()["flavor"]["name"], "C8R8192D80drbd")
        for ident in (self.hidden.id, 9999):
            reply = await self.call("GET", f"/compute/v2.0/flavors/{ident}", self.token)
            self.assertFault(reply, "itemNotFound", 404)

    async def test_hugeId(self) -> None:
        """
        An id beyond what the database holds (64 bits) is a 404 like any unknown id, not a database error.
        """
        for path in (f"/compute/v2.0/flavors/{1 << 63}", f"/compute/v2.0/flavors/{10**30}/os-extra_specs"):
            reply = await self.call("GET", path, self.token)
            self.assertFault(reply, "itemNotFound", 404)
        reply = await self.call("GET", f"/compute/v2.0/flavors/{(1 << 63) - 1}", self.token)
        self.assertFault(reply, "itemNotFound", 404)

    async def test_extraSpecs(self) -> None:
        """
        os-extra_specs is an empty mapping.
        """
        reply = await self.call("GET", f"/compute/v2.0/flavors/{self.f1.id}/os-extra_specs", self.token)
        self.assertEqual(reply.json(), {"extra_specs": {}})


class ImageTests(APITestCase):
    async def _setUp(self) -> None:
        await super()._setUp()
        repo = ImageRepository(self.database)
        self.public = await repo.register(
            "Debian", "system", "file:///images/debian", isPublic=True, properties={"OSFAMILY": "linux"}
        )
        self.mine = await repo.register("mine", self.user.uuid, "file:///images/mine")
        self.theirs = await repo.register("theirs", self.admin.uuid, "file:///images/theirs")
        await repo.modify(self.mine.id, status="UNAVAILABLE")

    async def test_list(self) -> None:
        """
        A user lists public images and their own, not other users' private ones.
        """
        reply = await self.call("GET", "/compute/v2.0/images", self.token)
        self.assertEqual({i["id"] for i in reply.json()["images"]}, {self.public.id, self.mine.id})

    async def test_detail(self) -> None:
        """
        Details map the registry status (AVAILABLE -> ACTIVE 100, UNAVAILABLE -> SAVING 0) and metadata.
        """
        reply = await self.call("GET", "/compute/v2.0/images/detail", self.token)
        images = {i["id"]: i for i in reply.json()["images"]}
        public, mine = images[self.public.id], images[self.mine.id]
        self.assertEqual((public["status"], public["progress"]), ("ACTIVE", 100))
        self.assertEqual((mine["status"], mine["progress"]), ("SAVING", 0))
        self.assertEqual(public["metadata"], {"OSFAMILY": "linux"})
        self.assertEqual((public["user_id"], public["tenant_id"]), ("system", "system"))
        self.assertTrue(public["created"].endswith("+00:00"))

    async def test_show(self) -> None:
        """
        An image is shown to whoever may see it; another user's private image is 404.
        """
        reply = await self.call("GET", f"/compute/v2.0/images/{self.public.id}", self.token)
        self.assertEqual(reply.json()["image"]["name"], "Debian")
        reply = await self.call("GET", f"/compute/v2.0/images/{self.theirs.id}", self.token)
        self.assertFault(reply, "itemNotFound", 404)
        reply = await self.call("GET", f"/compute/v2.0/images/{self.public.id}/metadata", self.token)
        self.assertEqual(reply.json(), {"metadata": {"OSFAMILY": "linux"}})

    async def test_delete(self) -> None:
        """
        The owner deletes an image (204, then 404); others may not delete a public one (403).
        """
        reply = await self.call("DELETE", f"/compute/v2.0/images/{self.public.id}", self.token)
        self.assertFault(reply, "forbidden", 403)
        reply = await self.call("DELETE", f"/compute/v2.0/images/{self.mine.id}", self.token)
        self.assertEqual((reply.code, reply.body), (204, b""))
        reply = await self.call("GET", f"/compute/v2.0/images/{self.mine.id}", self.token)
        self.assertFault(reply, "itemNotFound", 404)

    async def test_createNotImplemented(self) -> None:
        """
        POST /images is 501 notImplemented.
        """
        reply = await self.call("POST", "/compute/v2.0/images", self.token, body={"image": {}})
        self.assertFault(reply, "notImplemented", 501)


class ExtensionTests(APITestCase):
    async def test_extensions(self) -> None:
        """
        There are no extensions; asking for one is a bare 404.
        """
        reply = await self.call("GET", "/compute/v2.0/extensions", self.token)
        self.assertEqual(reply.json(), {"extensions": []})
        reply = await self.call("GET", "/compute/v2.0/extensions/os-foo", self.token)
        self.assertEqual((reply.code, reply.body), (404, b""))


class KeyPairTests(APITestCase):
    PATH = "/compute/v2.0/os-keypairs"

    def test_fingerprint(self) -> None:
        """
        The fingerprint is the colon-separated MD5 of the key blob.
        """
        self.assertEqual(keyFingerprint(PUBLIC_KEY), "d1:8b:a7:4b:9b:5a:d9:ba:f2:b1:08:d9:1f:c5:2b:a5")

    async def test_import(self) -> None:
        """
        Importing a public key answers 201 with its fingerprint; the list and show return it.
        """
        body = {"keypair": {"name": "laptop", "public_key": PUBLIC_KEY}}
        reply = await self.call("POST", self.PATH, self.token, body=body)
        self.assertEqual(reply.code, 201)
        self.assertEqual(reply.json()["keypair"]["fingerprint"], keyFingerprint(PUBLIC_KEY))
        self.assertNotIn("private_key", reply.json()["keypair"])
        listed = (await self.call("GET", self.PATH, self.token)).json()
        self.assertEqual([k["keypair"]["name"] for k in listed["keypairs"]], ["laptop"])
        shown = (await self.call("GET", f"{self.PATH}/laptop", self.token)).json()["keypair"]
        self.assertEqual((shown["public_key"], shown["deleted"]), (PUBLIC_KEY, False))
        self.assertIn("created_at", shown)

    async def test_generate(self) -> None:
        """
        Without a public key the server makes a pair and returns the private key once.
        """
        reply = await self.call("POST", self.PATH, self.token, body={"keypair": {"name": "gen"}})
        keypair = reply.json()["keypair"]
        self.assertEqual(reply.code, 201)
        self.assertIn("PRIVATE KEY", keypair["private_key"])
        self.assertEqual(keypair["fingerprint"], keyFingerprint(keypair["public_key"]))

    async def test_conflictAndIsolation(self) -> None:
        """
        The same name twice is 409; another user neither sees nor deletes the pair.
        """
        body = {"keypair": {"name": "k", "public_key": PUBLIC_KEY}}
        await self.call("POST", self.PATH, self.token, body=body)
        self.assertFault(await self.call("POST", self.PATH, self.token, body=body), "conflict", 409)
        self.assertEqual((await self.call("GET", self.PATH, self.adminToken)).json(), {"keypairs": []})
        self.assertFault(await self.call("DELETE", f"{self.PATH}/k", self.adminToken), "itemNotFound", 404)
        reply = await self.call("DELETE", f"{self.PATH}/k", self.token)
        self.assertEqual(reply.code, 204)
        self.assertFault(await self.call("GET", f"{self.PATH}/k", self.token), "itemNotFound", 404)

    async def test_invalid(self) -> None:
        """
        A bad name, a missing keypair object or a bad key are 400 faults, and nothing is stored.
        """
        for body in (
            {},
            {"keypair": {"name": ""}},
            {"keypair": {"name": 7}},
            {"keypair": {"name": "x", "public_key": "ssh-rsa !!!"}},
            {"keypair": {"name": "x", "public_key": "garbage"}},
        ):
            self.assertFault(await self.call("POST", self.PATH, self.token, body=body), "badRequest", 400)
        self.assertEqual((await self.call("GET", self.PATH, self.token)).json(), {"keypairs": []})


class LimitTests(APITestCase):
    async def test_limits(self) -> None:
        """
        /limits reports the base project's quota limits and usage (RAM held in bytes, reported in MiB); missing
        resources are unlimited (-1).
        """
        projects = ProjectRepository(self.database)
        project = await projects.create("base", ownerUUID=self.user.uuid, isBase=True, uuid=self.user.uuid)
        await projects.addMember(project.id, self.user.id)
        quotas = QuotaRepository(self.database)
        await quotas.setLimit(project.id, "cyclades.vm", 5)
        await quotas.setLimit(project.id, "cyclades.total_ram", 8192 << 20)
        commission = await quotas.issue(project.id, self.user.id, {"cyclades.vm": 2})
        await quotas.accept(commission.id)
        reply = await self.call("GET", "/compute/v2.0/limits", self.token)
        absolute = reply.json()["limits"]["absolute"]
        self.assertEqual(reply.json()["limits"]["rate"], [])
        self.assertEqual((absolute["maxTotalInstances"], absolute["totalInstancesUsed"]), (5, 2))
        self.assertEqual(absolute["maxTotalRAMSize"], 8192)
        self.assertEqual(absolute["maxTotalCores"], -1)

    async def test_noProject(self) -> None:
        """
        A user without projects has every limit unlimited.
        """
        absolute = (await self.call("GET", "/compute/v2.0/limits", self.token)).json()["limits"]["absolute"]
        self.assertEqual(absolute["maxTotalInstances"], -1)

    def test_memberShareWins(self) -> None:
        """
        A member's own holding is reported instead of the project's total, in either order.
        """
        from synnefo_twisted.db.models import Quota

        total = Quota(1, 1, None, "cyclades.vm", 10, 3, 0)
        share = Quota(2, 1, 7, "cyclades.vm", 2, 1, 0)
        for holdings in ([total, share], [share, total]):
            self.assertEqual(absoluteLimits(holdings, 7)["maxTotalInstances"], 2)
