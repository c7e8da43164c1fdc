"""
Real peers of the Image API over loopback HTTP: openstacksdk's image v1
proxy (found through the service catalog and version discovery of
C{/image}) registers, lists, finds, updates and deletes images; treq sends
Glance v1 header requests (HEAD over a real connection carries the
metadata and no body).

The SDK blocks, so it runs in a thread while the reactor serves.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, cast

import openstack  # type: ignore[import-untyped,import-not-found,unused-ignore]
from keystoneauth1 import session as ksession  # type: ignore[import-untyped,import-not-found,unused-ignore]
from keystoneauth1.identity import v2  # type: ignore[import-untyped,import-not-found,unused-ignore]
from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.protocols.policies import WrappingFactory
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from synnefo_twisted.testing import memoryDatabase
from tests.web.test_clients import _Lazy, _QuietSite, closeAll
from web.app import APIApplication
from web.seed import seedDemo


class ImageClientTests(TestCase):
    timeout = 60

    async def serve(self) -> tuple[str, str]:
        """
        Serve the API on a loopback port with image files allowed below
        C{self.root}; (base URL, the demo user's token).
        """
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(self.root)
        database = await memoryDatabase(reactor)
        self.addCleanup(database.stopService)
        seeded = await seedDemo(database)
        assert seeded.token is not None
        holder: list[APIApplication] = []
        factory = WrappingFactory(_QuietSite(_Lazy(holder)))
        port = reactor.listenTCP(0, cast(Any, factory), interface="127.0.0.1")
        self.addCleanup(lambda: Deferred.fromCoroutine(closeAll(factory)))
        self.addCleanup(port.stopListening)
        base = f"http://127.0.0.1:{cast(IPv4Address, port.getHost()).port}"
        holder.append(APIApplication(database, reactor, base, imageFileRoots=[self.root]))
        return base, seeded.token

    async def test_openstacksdkImageV1(self) -> None:
        """
        openstacksdk (image API v1, Keystone v2 password = token) registers a file image, lists, finds,
        updates and deletes it.
        """
        base, token = await self.serve()
        data = b"\x00snf-image diskdump" * 4096
        path = os.path.join(self.root, "debian.diskdump")
        with open(path, "wb") as f:
            f.write(data)

        def client() -> dict[str, Any]:
            auth = v2.Password(auth_url=f"{base}/identity/v2.0", username="demo@example.org", password=token)
            sess = ksession.Session(auth=auth)
            conn = openstack.connection.Connection(session=sess, region_name="default", image_api_version="1")
            try:
                created = conn.image.upload_image(
                    name="Debian upload",
                    location=path,
                    disk_format="diskdump",
                    container_format="bare",
                    properties={"OSFAMILY": "linux"},
                )
                createdFacts = (created.name, created.size, created.checksum, created.status, created.owner)
                listed = sorted(i.name for i in conn.image.images())
                found = conn.image.find_image("Debian upload")
                fetched = conn.image.get_image(created.id)
                updated = conn.image.update_image(created, name="Debian renamed", min_ram=512)
                filtered = [i.name for i in conn.image.images(disk_format="diskdump", size_min=1000, size_max=100000)]
                conn.image.delete_image(created)
                after = sorted(i.name for i in conn.image.images())
            finally:
                sess.session.close()
            return {
                "created": createdFacts,
                "listed": listed,
                "found": found.id,
                "fetched": (fetched.name, fetched.properties.get("OSFAMILY")),
                "updated": (updated.name, updated.min_ram),
                "filtered": filtered,
                "after": after,
                "id": created.id,
            }

        result = await deferToThread(client)
        self.assertEqual(result["created"][:4], ("Debian upload", len(data), hashlib.md5(data).hexdigest(), "active"))
        self.assertEqual(result["listed"], ["Debian Bookworm (demo)", "Debian upload"])
        self.assertEqual(result["found"], result["id"])
        self.assertEqual(result["fetched"], ("Debian upload", "linux"))
        self.assertEqual(result["updated"], ("Debian renamed", 512))
        self.assertEqual(result["filtered"], ["Debian renamed"])
        self.assertEqual(result["after"], ["Debian Bookworm (demo)"])

    async def test_glanceHeadersOverHTTP(self) -> None:
        """
        Glance v1 header requests over a real connection: POST registers, HEAD returns X-Image-Meta-* with
        an empty body, PUT updates a property, DELETE is 204.
        """
        base, token = await self.serve()
        pool = HTTPConnectionPool(reactor, persistent=False)
        http = HTTPClient(Agent(reactor, pool=pool))
        auth = {"X-Auth-Token": token}
        response = await http.post(
            f"{base}/image/v1/images",
            headers={
                **auth,
                "X-Image-Meta-Name": "Header%20image",
                "X-Image-Meta-Location": "https://images.example.org/x.diskdump",
                "X-Image-Meta-Property-OSFAMILY": "linux",
            },
        )
        created = await response.json()
        self.assertEqual(response.code, 201)
        imageId = created["image"]["id"]
        response = await http.head(f"{base}/image/v1/images/{imageId}", headers=auth)
        self.assertEqual(response.code, 200)
        self.assertEqual(await response.content(), b"")
        self.assertEqual(response.headers.getRawHeaders("X-Image-Meta-Name"), ["Header%20image"])
        self.assertEqual(response.headers.getRawHeaders("X-Image-Meta-Property-Osfamily"), ["linux"])
        response = await http.put(
            f"{base}/image/v1/images/{imageId}", headers={**auth, "X-Image-Meta-Property-OSFAMILY": "windows"}
        )
        self.assertEqual((await response.json())["image"]["properties"], {"osfamily": "windows"})
        response = await http.delete(f"{base}/image/v1/images/{imageId}", headers=auth)
        self.assertEqual((response.code, await response.content()), (204, b""))
        await pool.closeCachedConnections()
