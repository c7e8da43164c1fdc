# -*- test-case-name: tests.web.test_seed -*-
"""
Demo data for the embedded default: a volume type, three flavors, a public
image, and (when there are no users yet) a demo user with a base project,
quotas and a fresh token. Idempotent: what exists is left alone.
"""

from __future__ import annotations

from typing import Any

import attrs

from synnefo_twisted.db.repositories import (
    FlavorRepository,
    ImageRepository,
    ProjectRepository,
    QuotaRepository,
    UserRepository,
)

DEMO_EMAIL = "demo@example.org"
DEMO_IMAGE_ID = "00000000-0000-4000-8000-00000000d3b1"
DEMO_FLAVORS = ((1, 1024, 20), (2, 2048, 40), (4, 4096, 80))
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
    user (else None), and counts of new flavors and images.
    """

    token: str | None
    flavors: int
    images: int


async def seedDemo(database: Any) -> Seeded:
    """
    Create the demo data that is missing.
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
    return Seeded(token, newFlavors, newImages)
