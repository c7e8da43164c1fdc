"""
A database with what the dispatcher's messages touch: a user in a project
with quotas, two flavors, an image, a backend, a private network with an
IPv4 pool, and servers built as the API builds them (BUILD, a pending
create commission, a root volume, a port with an address, a tag). Shared
by the dispatcher's tests on SQLite and PostgreSQL and by the property
test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from synnefo_twisted.db.migrations import migrate
from synnefo_twisted.db.repositories import (
    BackendRepository,
    FlavorRepository,
    ImageRepository,
    ProjectRepository,
    QuotaRepository,
    ServerRepository,
    UserRepository,
)
from synnefo_twisted.db.volumes import VolumeRepository
from synnefo_twisted.logic import networks
from synnefo_twisted.logic.dispatch import toEventTime
from synnefo_twisted.logic.networks import NetworkDefaults, createNetwork, createPort, ensureResourcePools
from synnefo_twisted.logic.servers import createProvisions

DEFAULTS = NetworkDefaults(enabledFlavors=frozenset({"MAC_FILTERED", "PHYSICAL_VLAN", "CUSTOM"}))
LIMITS = {
    "cyclades.vm": 100,
    "cyclades.total_cpu": 400,
    "cyclades.cpu": 400,
    "cyclades.total_ram": 1 << 40,
    "cyclades.ram": 1 << 40,
    "cyclades.disk": 1 << 50,
}
#: Event times are counted from here: after every row the tests create
#: (a NIC missing from a message is deleted only if its port is older).
EPOCH = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
CLUSTER = "sim.ganeti.local"


def at(seconds: float) -> list[int]:
    """
    An C{event_time} C{seconds} after L{EPOCH}.
    """
    return toEventTime(EPOCH + timedelta(seconds=seconds))


def opMessage(serverId: int, operation: str, status: str, jobId: int, seconds: float, **extra: Any) -> dict[str, Any]:
    """
    A C{ganeti-op-status} body as the watcher publishes it.
    """
    body: dict[str, Any] = {
        "type": "ganeti-op-status",
        "instance": f"snf-{serverId}",
        "operation": operation,
        "status": status,
        "jobId": jobId,
        "event_time": at(seconds),
        "cluster": CLUSTER,
        "logmsg": None,
        "result": None,
        "job_fields": {},
        "tags": None,
    }
    body.update(extra)
    return body


@attrs.frozen
class BuiltServer:
    id: int
    commissionId: int
    portId: int
    volumeId: int
    address: str


@attrs.define
class DispatchFixture:
    db: Any
    userid: str
    userId: int
    projectId: int
    projectUUID: str
    backendId: int
    flavorId: int
    biggerId: int
    imageId: str
    volumeTypeId: int
    networkId: int

    async def server(
        self, *, task: str = "BUILD", jobId: int | None = None, tags: Sequence[str] = ("web",)
    ) -> BuiltServer:
        """
        A server as the API leaves it after submitting its create job.
        """
        flavor = await FlavorRepository(self.db).get(self.flavorId)
        assert flavor is not None
        servers = ServerRepository(self.db)
        server = await servers.create(
            "vm", self.userid, self.flavorId, self.imageId, project=self.projectUUID, backendId=self.backendId
        )
        commission = await QuotaRepository(self.db).issue(
            self.projectId, self.userId, createProvisions(flavor), name=f"server create {server.id}"
        )
        await servers.update(
            server.id,
            serial_id=commission.id,
            action="CREATE",
            task=task,
            task_job_id=jobId,
            backendjobid=jobId,
            backendopcode="OP_INSTANCE_CREATE",
        )
        for tag in tags:
            await servers.addTag(server.id, tag)
        volume = await VolumeRepository(self.db).create(
            self.userid, self.volumeTypeId, 10, project=self.projectUUID, serverId=server.id, idx=0
        )
        port = await createPort(self.db, self.networkId, self.userid, serverId=server.id, project=self.projectUUID)
        return BuiltServer(server.id, commission.id, port.port.id, volume.id, port.ips[0].address)

    async def holding(self, resource: str) -> tuple[int, int]:
        for quota in await QuotaRepository(self.db).holdings(self.projectId):
            if quota.resource == resource and quota.user_id is None:
                return quota.usage, quota.pending
        raise AssertionError(resource)

    async def snapshot(self, serverIds: Sequence[int]) -> Mapping[str, Any]:
        """
        Everything the dispatcher may write about the servers, without
        row ids and wall-clock columns, to compare two databases.
        """
        marks = ", ".join(["%s"] * len(serverIds))
        ids = tuple(serverIds)
        out: dict[str, Any] = {}
        out["servers"] = await self.db.runQuery(
            "SELECT id, flavor_id, operstate, action, backendjobid, backendopcode, backendjobstatus, backendlogmsg, "
            "backendtime, task, task_job_id, buildpercentage, deleted, rescue, rescue_image, serial_id "
            f"FROM servers WHERE id IN ({marks}) ORDER BY id",
            ids,
        )
        out["ports"] = await self.db.runQuery(
            f"SELECT id, server_id, state, mac, idx, firewall_profile FROM ports WHERE server_id IN ({marks}) "
            "ORDER BY id",
            ids,
        )
        out["ips"] = await self.db.runQuery("SELECT address, port_id, deleted FROM ips ORDER BY id")
        out["volumes"] = await self.db.runQuery(
            f"SELECT id, status, deleted, size, idx FROM volumes WHERE server_id IN ({marks}) ORDER BY id", ids
        )
        out["tags"] = await self.db.runQuery(
            f"SELECT server_id, tag, status FROM server_tags WHERE server_id IN ({marks}) ORDER BY server_id, tag", ids
        )
        out["diagnostics"] = await self.db.runQuery(
            f"SELECT server_id, source, level, message, details FROM diagnostics WHERE server_id IN ({marks}) "
            "ORDER BY server_id, source_date, source, message",
            ids,
        )
        out["commissions"] = await self.db.runQuery("SELECT id, state FROM commissions ORDER BY id")
        out["quotas"] = await self.db.runQuery(
            "SELECT resource, usage, pending FROM quotas WHERE user_id IS NULL ORDER BY resource"
        )
        out["pools"] = await self.db.runQuery("SELECT id, available, reserved FROM ip_pools ORDER BY id")
        return {k: [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows]
                for k, rows in out.items()}  # fmt: skip


async def makeFixture(db: Any) -> DispatchFixture:
    """
    Fill a started database (migrated here) with the fixture's rows.
    """
    await migrate(db)
    await ensureResourcePools(db, macPrefixSize=64, bridgeSize=8)
    user, _token = await UserRepository(db).create("user@example.org", "User")
    projects = ProjectRepository(db)
    project = await projects.create("base", ownerUUID=user.uuid, isBase=True)
    await projects.addMember(project.id, user.id)
    quotas = QuotaRepository(db)
    for resource, limit in LIMITS.items():
        await quotas.setLimit(project.id, resource, limit)
    flavors = FlavorRepository(db)
    volumeType = await flavors.addVolumeType("drbd", "drbd")
    flavor = await flavors.create(2, 1024, 10, volumeType.id)
    bigger = await flavors.create(4, 2048, 10, volumeType.id)
    image = await ImageRepository(db).register("debian", user.uuid, "file:///images/debian", isPublic=True)
    backend = await BackendRepository(db).add(CLUSTER, "http://simulated-cluster", simulated=True)
    request = networks.parseNetwork({"network": {"type": "MAC_FILTERED", "name": "net"}}, DEFAULTS)
    subnet = networks.parseSubnet({"subnet": {"cidr": "10.0.0.0/24"}}, DEFAULTS, networkId=1)
    network = await createNetwork(db, request, user.uuid, DEFAULTS, subnets=[subnet])
    return DispatchFixture(
        db=db,
        userid=user.uuid,
        userId=user.id,
        projectId=project.id,
        projectUUID=project.uuid,
        backendId=backend.id,
        flavorId=flavor.id,
        biggerId=bigger.id,
        imageId=image.id,
        volumeTypeId=volumeType.id,
        networkId=network.network.id,
    )
