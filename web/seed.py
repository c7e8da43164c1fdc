# -*- test-case-name: tests.web.test_seed -*-
"""
Demo data for the embedded default: a volume type, three flavors, a public
image, a public network (a floating-IP pool with an IPv4 subnet), and
(when there are no users yet) a demo user with a base project, quotas and
a fresh token. Idempotent: what exists is left alone.
"""

from __future__ import annotations

from typing import Any

import attrs

from synnefo_twisted.db.repositories import (
    FlavorRepository,
    ImageRepository,
    NetworkRepository,
    ProjectRepository,
    QuotaRepository,
    UserRepository,
)
from synnefo_twisted.logic import networks as netlogic

DEMO_EMAIL = "demo@example.org"
DEMO_IMAGE_ID = "00000000-0000-4000-8000-00000000d3b1"
DEMO_FLAVORS = ((1, 1024, 20), (2, 2048, 40), (4, 4096, 80))
DEMO_NETWORK_NAME = "public"
#: the public subnet of the demo network (TEST-NET-3, documentation addresses)
DEMO_PUBLIC_CIDR = "203.0.113.0/24"
# RAM and disk in bytes, as the server logic provisions them (Synnefo's units).
DEMO_QUOTAS = {
    "cyclades.vm": 10,
    "cyclades.total_cpu": 20,
    "cyclades.cpu": 20,
    "cyclades.total_ram": 20 << 30,
    "cyclades.ram": 20 << 30,
    "cyclades.disk": 400 << 30,
    "cyclades.network.private": 5,
    "cyclades.floating_ip": 5,
}


@attrs.frozen
class Seeded:
    """
    What L{seedDemo} created: the demo user's token when it created the
    user (else None), counts of new flavors and images, and the id of the
    public network it created (else None).
    """

    token: str | None
    flavors: int
    images: int
    network: int | None = None


async def seedPublicNetwork(
    database: Any, cidr: str = DEMO_PUBLIC_CIDR, defaults: netlogic.NetworkDefaults | None = None
) -> int | None:
    """
    Create a public CUSTOM network, a floating-IP pool, with a DHCP IPv4
    subnet C{cidr} (gateway the first address) when there is no live public
    network; the new network's id, else None.
    """
    existing = [n for n in await NetworkRepository(database).list() if n.public]
    if existing:
        return None
    defaults = defaults or netlogic.NetworkDefaults()
    request = netlogic.parseNetwork({"network": {"type": "CUSTOM", "name": DEMO_NETWORK_NAME}}, defaults, admin=True)
    subnet = netlogic.parseSubnet({"subnet": {"cidr": cidr, "name": "public-v4"}}, defaults, networkId=0)
    created = await netlogic.createNetwork(
        database, request, None, defaults, subnets=[subnet], public=True, floatingIPPool=True
    )
    updated = await netlogic.updateNetworkState(database, created.network.id)
    assert updated is not None
    return updated.id


async def seedDemo(
    database: Any, publicCidr: str = DEMO_PUBLIC_CIDR, networkDefaults: netlogic.NetworkDefaults | None = None
) -> Seeded:
    """
    Create the demo data that is missing.

    @param publicCidr: the subnet of the public network (empty: no public
        network is seeded).
    """
    flavors = FlavorRepository(database)
    volumeTypes = [t for t in await flavors.volumeTypes() if t.disk_template == "drbd" and not t.deleted]
    volumeType = volumeTypes[0] if volumeTypes else await flavors.addVolumeType("drbd", "drbd")
    newFlavors = 0
    for cpu, ram, disk in DEMO_FLAVORS:
        if await flavors.bySpec(cpu, ram, disk, volumeType.id) is None:
            await flavors.create(cpu, ram, disk, volumeType.id)
            newFlavors += 1
    images = ImageRepository(database)
    newImages = 0
    if await images.get(DEMO_IMAGE_ID) is None:
        await images.register(
            "Debian Bookworm (demo)",
            "system",
            "file:///var/lib/snf-image/debian-bookworm.diskdump",
            imageId=DEMO_IMAGE_ID,
            size=2 * 1024**3,
            isPublic=True,
            properties={
                "OS": "debian",
                "OSFAMILY": "linux",
                "ROOT_PARTITION": "1",
                "USERS": "root",
                "DESCRIPTION": "Debian 12 (demo image of the embedded node)",
            },
        )
        newImages = 1
    token = None
    users = UserRepository(database)
    if not await users.list():
        user, token = await users.create(DEMO_EMAIL, "Demo User")
        projects = ProjectRepository(database)
        project = await projects.create("demo base project", ownerUUID=user.uuid, isBase=True, uuid=user.uuid)
        await projects.addMember(project.id, user.id)
        quotas = QuotaRepository(database)
        for resource, limit in sorted(DEMO_QUOTAS.items()):
            await quotas.setLimit(project.id, resource, limit)
    network = await seedPublicNetwork(database, publicCidr, networkDefaults) if publicCidr else None
    return Seeded(token, newFlavors, newImages, network)
