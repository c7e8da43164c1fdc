"""
Tests for L{web.servers} and L{web.vmapi}: every servers route over HTTP
(L{StubTreq}) against SQLite, the in-memory simulated Ganeti cluster on a
clock and L{FakeConsoleBroker}.
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from synnefo_twisted.backends import BackendRegistry
from synnefo_twisted.db.models import Network, Server, User
from synnefo_twisted.db.pools import IPPoolRepository
from synnefo_twisted.db.repositories import (
    BackendRepository,
    FlavorRepository,
    ImageRepository,
    NetworkRepository,
    PortRepository,
    ProjectRepository,
    QuotaRepository,
    ServerRepository,
    SubnetRepository,
)
from synnefo_twisted.db.servers import ServerListRepository
from synnefo_twisted.db.volumes import VolumeRepository
from synnefo_twisted.logic import pools, serverops
from synnefo_twisted.logic.networks import ConflictError, NetworkRequestError, allocateServerPortIP
from synnefo_twisted.logic.servernets import parseNetworkChoices
from synnefo_twisted.logic.servers import BuildInProgress, ServerFault
from synnefo_twisted.testing import FakeConsoleBroker, InMemoryCluster
from tests.web.support import BASE, APITestCase, Reply
from tests.web.test_openapi import OpenAPIDocumentTests
from vncproxy.broker import ConsoleUnavailable
from web.app import APIApplication
from web.faults import BadRequest, Conflict, Fault
from web.routing import GZIP_MIN_SIZE
from web.servers import parseChangesSince, webFault

LIMITS = {
    "cyclades.vm": 10,
    "cyclades.total_cpu": 40,
    "cyclades.cpu": 40,
    "cyclades.total_ram": 64 << 30,
    "cyclades.ram": 64 << 30,
    "cyclades.disk": 1 << 40,
}

V = "/compute/v2.0"


class _CountingLists:
    """
    A L{ServerListRepository} that counts its detail reads.
    """

    def __init__(self, wrapped: ServerListRepository) -> None:
        self._wrapped = wrapped
        self.reads = 0

    def detailsForUser(self, userid: str, since: datetime | None = None) -> Any:
        self.reads += 1
        return self._wrapped.detailsForUser(userid, since)

    def listForUser(self, userid: str, since: datetime | None = None) -> Any:
        return self._wrapped.listForUser(userid, since)


class WebFaultTests(SynchronousTestCase):
    def test_serverFault(self) -> None:
        """
        A logic refusal becomes the web fault of the same name and code, with the field in the details.
        """
        fault = webFault(BuildInProgress("Server '1' is being built.", "action"))
        self.assertEqual(
            (fault.name, fault.code, fault.message), ("buildInProgress", 409, "Server '1' is being built.")
        )
        self.assertEqual(fault.details, "field: action")

    def test_networkError(self) -> None:
        """
        Network logic errors map by their fault name too.
        """
        fault = webFault(ConflictError("address", "in use"))
        self.assertIsInstance(fault, Conflict)
        self.assertEqual((fault.code, fault.message, fault.details), (409, "in use", "field: address"))

    def test_unknownName(self) -> None:
        """
        A fault name the web layer does not know keeps the logic's code.
        """

        class Teapot(ServerFault):
            code = 418
            faultName = "teapot"

        fault = webFault(Teapot("short and stout"))
        self.assertEqual((type(fault), fault.code), (Fault, 418))


class ChangesSinceTests(SynchronousTestCase):
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)

    def test_parse(self) -> None:
        """
        ISO 8601 values parse, naive ones as UTC.
        """
        self.assertEqual(
            parseChangesSince("2026-01-01T11:30:00", self.now, 3600), datetime(2026, 1, 1, 11, 30, tzinfo=UTC)
        )
        self.assertEqual(
            parseChangesSince("2026-01-01T13:30:00+02:00", self.now, 3600), datetime(2026, 1, 1, 11, 30, tzinfo=UTC)
        )

    def test_refused(self) -> None:
        """
        Garbage, the future and values older than the poll limit are 400s.
        """
        for raw, message in (
            ("yesterday", "Invalid changes-since parameter."),
            ("2026-01-01T12:00:01Z", "changes-since value set in the future."),
            ("2026-01-01T10:59:59Z", "Too old changes-since value."),
        ):
            error = self.assertRaises(BadRequest, parseChangesSince, raw, self.now, 3600)
            self.assertEqual(error.message, message)


class ServersTestCase(APITestCase):
    """
    The API with the servers part mounted over the simulated cluster.
    """

    extraActions: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    # APIApplication's listingStaleness
    listingStaleness = 0.0

    async def _setUp(self) -> None:
        await super()._setUp()
        self.clock = Clock()
        self.clock.advance(time.time())
        self.sim = InMemoryCluster.create(self.clock)
        self.addCleanup(self.sim.queue.stop)
        self.backend = await BackendRepository(self.database).add(
            "sim.ganeti.local", "http://simulated-cluster", simulated=True
        )
        self.registry = BackendRegistry(self.database, "snf-", self.clock, clientFactory=lambda r, b: self.sim.client)
        self.broker = FakeConsoleBroker(host="vnc.example.org")
        self.mount(serverops.ServerOptions(vmapiURL=f"{BASE}/vmapi/v1.0/server-params", clock=self.clock))
        projects = ProjectRepository(self.database)
        self.quotas = QuotaRepository(self.database)
        self.project = await projects.create("base", ownerUUID=self.user.uuid, isBase=True)
        await projects.addMember(self.project.id, self.user.id)
        for resource, limit in LIMITS.items():
            await self.quotas.setLimit(self.project.id, resource, limit)
        flavors = FlavorRepository(self.database)
        self.volumeType = await flavors.addVolumeType("drbd", "drbd")
        self.flavor = await flavors.create(2, 1024, 10, self.volumeType.id)
        self.bigger = await flavors.create(4, 2048, 10, self.volumeType.id)
        self.image = await ImageRepository(self.database).register(
            "debian", self.user.uuid, "file:///images/debian", isPublic=True, properties={"OS": "debian"}
        )
        self.servers = ServerRepository(self.database)

    def mount(self, options: serverops.ServerOptions) -> None:
        """
        (Re)build the API with these server options.
        """
        self.app = APIApplication(
            self.database,
            self.clock,
            BASE,
            backends=self.registry,
            consoleBroker=self.broker,
            serverOptions=options,
            serverSettings=dict(self.settings),
            extraServerActions=self.extraActions,
            listingStaleness=self.listingStaleness,
        )
        self.stub = StubTreq(self.app.resource())

    def body(self, **fields: Any) -> dict[str, Any]:
        server = {"name": "vm1", "imageRef": self.image.id, "flavorRef": self.flavor.id, "networks": []}
        server.update(fields)
        return {"server": server}

    async def create(self, **fields: Any) -> dict[str, Any]:
        reply = await self.call("POST", f"{V}/servers", self.token, self.body(**fields))
        self.assertEqual(reply.code, 202, reply.body)
        created: dict[str, Any] = reply.json()["server"]
        return created

    async def holding(self, resource: str) -> tuple[int, int]:
        for quota in await self.quotas.holdings(self.project.id):
            if quota.resource == resource and quota.user_id is None:
                return quota.usage, quota.pending
        raise AssertionError(resource)

    async def running(self, **fields: Any) -> Server:
        """
        A server whose create job completed, marked STARTED as the dispatcher would.
        """
        created = await self.create(**fields)
        self.clock.pump([0.1] * 5)
        self.assertIn(f"snf-{created['id']}", self.sim.cluster.instances)
        server = await self.servers.update(created["id"], operstate="STARTED", task=None, action=None)
        assert server is not None and server.serial_id is not None
        await self.quotas.accept(server.serial_id)
        return server

    async def stopped(self) -> Server:
        server = await self.running()
        self.sim.cluster.instances[f"snf-{server.id}"].adminUp = False
        self.sim.cluster.instances[f"snf-{server.id}"].operUp = False
        stopped = await self.servers.update(server.id, operstate="STOPPED")
        assert stopped is not None
        return stopped

    def lastOp(self) -> dict[str, Any]:
        job = self.sim.queue.jobs[max(self.sim.queue.jobs)]
        return dict(job.ops[0].input)

    async def serverCount(self) -> int:
        return len(await self.servers.listByUser(self.user.uuid, includeDeleted=True))

    async def action(self, serverId: int, body: Any, token: str | None = None) -> Reply:
        return await self.call("POST", f"{V}/servers/{serverId}/action", token or self.token, body)


class CreateTests(ServersTestCase):
    async def test_create(self) -> None:
        """
        POST /servers answers 202 with the BUILD detail and adminPass, submits CreateInstance as spec §2.2 says and
        records a pending quota commission.
        """
        created = await self.create(metadata={"role": "web"}, tags=["blue"])
        self.assertEqual(created["status"], "BUILD")
        self.assertEqual(created["SNF:task_state"], "BUILDING")
        self.assertEqual(created["metadata"], {"role": "web"})
        self.assertEqual(created["tags"], ["blue"])
        self.assertEqual(len(created["volumes"]), 1)
        self.assertEqual(created["links"][0]["href"], f"{BASE}{V}/servers/{created['id']}")
        password = created["adminPass"]
        self.assertGreaterEqual(len(password), 10)
        op = self.lastOp()
        self.assertEqual((op["OP_ID"], op["instance_name"]), ("OP_INSTANCE_CREATE", f"snf-{created['id']}"))
        self.assertEqual(op["beparams"], {"auto_balance": True, "vcpus": 2, "memory": 1024})
        self.assertTrue(op["osparams"]["config_url"].startswith(f"{BASE}/vmapi/v1.0/server-params/"))
        self.assertNotIn(password, repr(op))
        server = await self.servers.get(created["id"])
        assert server is not None
        self.assertEqual(
            (server.operstate, server.task, server.backendopcode), ("BUILD", "BUILD", "OP_INSTANCE_CREATE")
        )
        self.assertEqual(await self.holding("cyclades.vm"), (0, 1))
        self.assertEqual(await self.holding("cyclades.disk"), (0, 10 << 30))
        pending = await self.quotas.pending()
        self.assertEqual([c.id for c in pending], [server.serial_id])

    async def test_createWithAdminPass(self) -> None:
        """
        A strong adminPass given by the client is the one answered and kept.
        """
        created = await self.create(adminPass="Secret1Passw")
        self.assertEqual(created["adminPass"], "Secret1Passw")
        reply = await self.call("GET", f"{V}/servers/{created['id']}/password", self.token)
        self.assertEqual(reply.json(), {"password": "Secret1Passw"})

    async def test_malformed(self) -> None:
        """
        Every malformed body is a 400 naming the field, and nothing is written or submitted.
        """
        cases: list[tuple[Any, str]] = [
            ({}, "server"),
            ({"server": []}, "server"),
            (self.body(name=None), "name"),
            (self.body(name=5), "name"),
            (self.body(imageRef=None), "imageRef"),
            (self.body(imageRef=7), "imageRef"),
            (self.body(flavorRef="abc"), "flavorRef"),
            (self.body(flavorRef=None), "flavorRef"),
            (self.body(metadata=["a"]), "metadata"),
            (self.body(metadata={"k" * 51: "v"}), "metadata"),
            (self.body(tags="blue"), "tags"),
            (self.body(personality={"path": "/x"}), "personality"),
            (self.body(personality=[{"path": "/x", "contents": "not base64!"}]), "personality"),
            (self.body(user_data="not base64!"), "user_data"),
            (self.body(adminPass="weak"), "adminPass"),
            (self.body(key_name="a", **{"SNF:key_names": ["b"]}), "key_name"),
            (self.body(networks="all"), "networks"),
            (self.body(networks=[{"uuid": "1", "fixed_ip": "nope"}]), "networks"),
            (self.body(shared_to_project="yes"), "shared_to_project"),
        ]
        for body, field in cases:
            reply = await self.call("POST", f"{V}/servers", self.token, body)
            fault = self.assertFault(reply, "badRequest", 400)
            self.assertIn(field, fault["message"] + fault["details"], body)
        for headers, raw, message in (
            ({}, b"{}", "Missing Content-Type header field"),
            ({"Content-Type": "text/plain"}, b"{}", "Unsupported Content-type: 'text/plain'"),
            ({"Content-Type": "application/json"}, b"{nope", "Could not decode request body as JSON"),
        ):
            reply = await self.call("POST", f"{V}/servers", self.token, headers=headers, raw=raw)
            self.assertEqual(self.assertFault(reply, "badRequest", 400)["message"], message)
        self.assertEqual(await self.serverCount(), 0)
        self.assertEqual(self.sim.queue.jobs, {})
        self.assertEqual(await self.quotas.pending(), [])

    async def test_personalityOverLimit(self) -> None:
        """
        More than five personality files is a 413 overLimit.
        """
        files = [{"path": f"/f{i}", "contents": "eA=="} for i in range(6)]
        reply = await self.call("POST", f"{V}/servers", self.token, self.body(personality=files))
        self.assertFault(reply, "overLimit", 413)
        self.assertEqual(await self.serverCount(), 0)

    async def test_overQuota(self) -> None:
        """
        A create over the project's limits is a 413 overLimit naming the resource; nothing is written.
        """
        for resource in ("cyclades.vm", "cyclades.total_cpu", "cyclades.total_ram", "cyclades.disk"):
            await self.quotas.setLimit(self.project.id, resource, 0)
            reply = await self.call("POST", f"{V}/servers", self.token, self.body())
            fault = self.assertFault(reply, "overLimit", 413)
            self.assertIn(resource, fault["details"])
            await self.quotas.setLimit(self.project.id, resource, LIMITS[resource])
        self.assertEqual(await self.serverCount(), 0)
        self.assertEqual(self.sim.queue.jobs, {})
        self.assertEqual(await self.quotas.pending(), [])

    async def test_memberShareOverQuota(self) -> None:
        """
        The member's own share is enforced too.
        """
        await self.quotas.setLimit(self.project.id, "cyclades.vm", 1, userId=self.user.id)
        await self.create()
        reply = await self.call("POST", f"{V}/servers", self.token, self.body())
        self.assertIn("cyclades.vm", self.assertFault(reply, "overLimit", 413)["details"])
        self.assertEqual(await self.serverCount(), 1)

    async def test_unknownRefs(self) -> None:
        """
        An unknown flavor or image is a 404 naming it; a flavor closed to creation a 403.
        """
        reply = await self.call("POST", f"{V}/servers", self.token, self.body(flavorRef=999))
        self.assertIn("flavorRef", self.assertFault(reply, "itemNotFound", 404)["details"])
        reply = await self.call("POST", f"{V}/servers", self.token, self.body(imageRef="nope"))
        self.assertIn("imageRef", self.assertFault(reply, "itemNotFound", 404)["details"])
        await FlavorRepository(self.database).modify(self.flavor.id, allow_create=False)
        reply = await self.call("POST", f"{V}/servers", self.token, self.body())
        self.assertFault(reply, "forbidden", 403)
        self.assertEqual(await self.serverCount(), 0)

    async def test_noBackend(self) -> None:
        """
        With every backend drained the create is a 503.
        """
        await BackendRepository(self.database).modify(self.backend.id, drained=True)
        reply = await self.call("POST", f"{V}/servers", self.token, self.body())
        self.assertEqual(self.assertFault(reply, "serviceUnavailable", 503)["message"], "No available backends")

    async def test_unauthenticated(self) -> None:
        """
        Without a token the create is a 401 and nothing is written.
        """
        reply = await self.call("POST", f"{V}/servers", None, self.body())
        self.assertFault(reply, "unauthorized", 401)
        self.assertEqual(await self.serverCount(), 0)

    async def test_serverParams(self) -> None:
        """
        The create's config_url serves the one-time parameters without a token once; then it is a 404.
        """
        created = await self.create(adminPass="Secret1Passw", personality=[{"path": "/etc/motd", "contents": "aGk="}])
        url = self.lastOp()["osparams"]["config_url"]
        path = urlparse(url).path
        reply = await self.call("GET", path)
        self.assertEqual(reply.code, 200, reply.body)
        params = reply.json()
        self.assertEqual(params["img_passwd"], created["adminPass"])
        self.assertEqual(params["img_id"], "file:///images/debian")
        self.assertIn("/etc/motd", params["img_personality"])
        again = await self.call("GET", path)
        self.assertFault(again, "itemNotFound", 404)
        self.assertFault(await self.call("GET", "/vmapi/v1.0/server-params/not-a-key"), "itemNotFound", 404)

    async def test_serverParamsExpire(self) -> None:
        """
        Parameters and passwords not read within their lifetime are gone, and purged by the next create.
        """
        await self.create()
        path = urlparse(self.lastOp()["osparams"]["config_url"]).path
        self.clock.advance(86401)
        self.assertFault(await self.call("GET", path), "itemNotFound", 404)
        await self.create()
        self.assertEqual(len(await self.database.runQuery("SELECT config_key FROM server_params")), 1)
        self.assertEqual(len(await self.database.runQuery("SELECT server_id FROM server_passwords")), 1)


class ReadTests(ServersTestCase):
    async def test_listAndShow(self) -> None:
        """
        The list has id, name, links of the user's live servers; detail and show the full object; another user's
        server is a 404.
        """
        first = await self.create(name="a")
        second = await self.create(name="b")
        reply = await self.call("GET", f"{V}/servers", self.token)
        self.assertEqual(
            reply.json()["servers"],
            [{"id": s["id"], "name": s["name"], "links": s["links"]} for s in (first, second)],
        )
        detail = (await self.call("GET", "/compute/v2.1/servers/detail", self.token)).json()["servers"]
        self.assertEqual([s["status"] for s in detail], ["BUILD", "BUILD"])
        self.assertEqual(detail[0]["links"][0]["href"], f"{BASE}/compute/v2.1/servers/{first['id']}")
        shown = (await self.call("GET", f"{V}/servers/{first['id']}", self.token)).json()["server"]
        self.assertEqual(
            (shown["id"], shown["flavor"]["id"], shown["image"]["id"]), (first["id"], self.flavor.id, self.image.id)
        )
        self.assertNotIn("adminPass", shown)
        _, otherToken = await self.users.create("other@example.org")
        self.assertEqual((await self.call("GET", f"{V}/servers", otherToken)).json(), {"servers": []})
        self.assertFault(await self.call("GET", f"{V}/servers/{first['id']}", otherToken), "itemNotFound", 404)
        self.assertFault(await self.call("GET", f"{V}/servers/99999", self.token), "itemNotFound", 404)
        admin = await self.call("GET", f"{V}/servers/{first['id']}", self.adminToken)
        self.assertEqual(admin.code, 200)

    async def test_pagination(self) -> None:
        """
        limit and marker page through the list, with a next link while more remain.
        """
        ids = [(await self.create(name=f"s{i}"))["id"] for i in range(3)]
        page = (await self.call("GET", f"{V}/servers?limit=2", self.token)).json()
        self.assertEqual([s["id"] for s in page["servers"]], ids[:2])
        self.assertEqual(page["servers_links"][0]["href"], f"{BASE}{V}/servers?limit=2&marker={ids[1]}")
        page = (await self.call("GET", f"{V}/servers/detail?limit=2&marker={ids[1]}", self.token)).json()
        self.assertEqual([s["id"] for s in page["servers"]], ids[2:])
        self.assertNotIn("servers_links", page)
        self.assertFault(await self.call("GET", f"{V}/servers?marker=0", self.token), "badRequest", 400)
        self.assertFault(await self.call("GET", f"{V}/servers?limit=x", self.token), "badRequest", 400)

    async def test_changesSince(self) -> None:
        """
        changes-since lists servers changed since then, deleted ones included (status DELETED); 304 when none
        changed; 400 for a bad or future timestamp.
        """
        created = await self.create()
        gone = await self.create(name="gone")
        await self.servers.update(gone["id"], deleted=True, operstate="DESTROYED")
        since = (datetime.fromtimestamp(self.clock.seconds(), UTC) - timedelta(minutes=5)).isoformat()
        reply = await self.call("GET", f"{V}/servers/detail?changes-since={since.replace('+', '%2B')}", self.token)
        self.assertEqual(reply.code, 200, reply.body)
        statuses = {s["id"]: s["status"] for s in reply.json()["servers"]}
        self.assertEqual(statuses, {created["id"]: "BUILD", gone["id"]: "DELETED"})
        plain = (await self.call("GET", f"{V}/servers", self.token)).json()["servers"]
        self.assertEqual([s["id"] for s in plain], [created["id"]])
        self.clock.advance(600)
        later = datetime.fromtimestamp(self.clock.seconds() - 1, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        reply = await self.call("GET", f"{V}/servers?changes-since={later}", self.token)
        self.assertEqual((reply.code, reply.body), (304, b""))
        self.assertFault(await self.call("GET", f"{V}/servers?changes-since=nope", self.token), "badRequest", 400)
        future = datetime.fromtimestamp(self.clock.seconds() + 60, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        reply = await self.call("GET", f"{V}/servers?changes-since={future}", self.token)
        self.assertEqual(
            self.assertFault(reply, "badRequest", 400)["message"], "changes-since value set in the future."
        )

    async def test_addresses(self) -> None:
        """
        /ips lists addresses and attachments of ACTIVE ports; /ips/<net> one network's; an unknown network is a 404.
        """
        server = await self.running()
        networks = NetworkRepository(self.database)
        network = await networks.create("public", "IP_LESS_ROUTED", public=True)
        subnet = await SubnetRepository(self.database).create(network.id, "10.0.0.0/24", 4)
        ports = PortRepository(self.database)
        port = await ports.create(
            network.id, userid=self.user.uuid, serverId=server.id, state="ACTIVE", mac="aa:00:00:00:00:01"
        )
        await ports.addIP(subnet.id, network.id, "10.0.0.5", 4, portId=port.id)
        reply = (await self.call("GET", f"{V}/servers/{server.id}/ips", self.token)).json()
        entry = {"version": 4, "addr": "10.0.0.5", "OS-EXT-IPS:type": "fixed"}
        self.assertEqual(reply["addresses"], {str(network.id): [entry]})
        self.assertEqual(reply["attachments"][0]["ipv4"], "10.0.0.5")
        reply = await self.call("GET", f"{V}/servers/{server.id}/ips/{network.id}", self.token)
        self.assertEqual(reply.json(), {"network": {str(network.id): [entry]}})
        self.assertFault(await self.call("GET", f"{V}/servers/{server.id}/ips/999", self.token), "itemNotFound", 404)
        _, otherToken = await self.users.create("other@example.org")
        self.assertFault(await self.call("GET", f"{V}/servers/{server.id}/ips", otherToken), "itemNotFound", 404)

    async def test_statsDisabled(self) -> None:
        """
        Without a statistics URL /stats is a 404 featureNotEnabled.
        """
        created = await self.create()
        reply = await self.call("GET", f"{V}/servers/{created['id']}/stats", self.token)
        self.assertFault(reply, "featureNotEnabled", 404)

    async def test_diagnostics(self) -> None:
        """
        /diagnostics lists the server's diagnostics newest first.
        """
        created = await self.create()
        await self.servers.addDiagnostic(created["id"], "image-info", "DEBUG", "old")
        await self.servers.addDiagnostic(created["id"], "image-helper", "ERROR", "new", details="trace")
        reply = (await self.call("GET", f"{V}/servers/{created['id']}/diagnostics", self.token)).json()
        self.assertEqual(
            [(d["message"], d["level"], d["source"]) for d in reply],
            [("new", "ERROR", "image-helper"), ("old", "DEBUG", "image-info")],
        )
        _, otherToken = await self.users.create("other@example.org")
        reply = await self.call("GET", f"{V}/servers/{created['id']}/diagnostics", otherToken)
        self.assertFault(reply, "itemNotFound", 404)


class DetailListingTests(ServersTestCase):
    async def test_followsChanges(self) -> None:
        """
        GET /servers/detail answered before reflects every change made since (the reused answer is never stale):
        metadata, status and a new server; paginated and changes-since listings still work.
        """
        first = await self.create(name="a")
        path = f"{V}/servers/detail"
        before = (await self.call("GET", path, self.token)).json()["servers"]
        self.assertEqual((await self.call("GET", path, self.token)).json()["servers"], before)
        await self.servers.setMetadata(first["id"], {"role": "db"})
        await self.servers.update(first["id"], operstate="STARTED", task=None)
        after = (await self.call("GET", path, self.token)).json()["servers"]
        self.assertEqual((after[0]["metadata"], after[0]["status"]), ({"role": "db"}, "ACTIVE"))
        second = await self.create(name="b")
        listed = (await self.call("GET", path, self.token)).json()["servers"]
        self.assertEqual([s["id"] for s in listed], [first["id"], second["id"]])
        page = (await self.call("GET", f"{path}?limit=1", self.token)).json()
        self.assertEqual([s["id"] for s in page["servers"]], [first["id"]])
        self.assertIn(f"marker={first['id']}", page["servers_links"][0]["href"])
        self.assertIn("/servers/detail?", page["servers_links"][0]["href"])
        other = (await self.call("GET", "/compute/v2.1/servers/detail", self.token)).json()["servers"]
        self.assertEqual(other[0]["links"][0]["href"], f"{BASE}/compute/v2.1/servers/{first['id']}")

    async def test_reusedWithoutReadingRows(self) -> None:
        """
        While nothing is written, the plain listing is answered again without
        reading the servers (one stamp query); paginated listings read them
        every time.
        """
        await self.create(name="a")
        path = f"{V}/servers/detail"
        servers = self.app.servers
        assert servers is not None
        counted = _CountingLists(servers._lists)
        servers._lists = counted  # type: ignore[assignment]
        # (on PostgreSQL a commit anywhere in the cluster, another database's, changes the stamp: a few tries)
        for _ in range(20):
            before = counted.reads
            first = await self.call("GET", path, self.token)
            again = await self.call("GET", path, self.token)
            self.assertEqual(again.body, first.body)
            if counted.reads - before == 1:
                break
        else:
            self.fail("the rows were read on every request")
        before = counted.reads
        await self.call("GET", f"{path}?limit=1", self.token)
        await self.call("GET", f"{path}?limit=1", self.token)
        self.assertEqual(counted.reads, before + 2)

    async def test_invalidatedByEveryWrite(self) -> None:
        """
        Every kind of write the detail shows (API calls, the dispatcher's and
        reconciler's repository writes: status, metadata, tags, ports, IPs,
        volumes, diagnostics, a new and a deleted server) is in the next
        listing, even when the listing before it was a reused answer.
        """
        first = await self.create(name="a")
        sid = first["id"]
        path = f"{V}/servers/detail"
        ports = PortRepository(self.database)
        volumes = VolumeRepository(self.database)

        async def listed() -> list[dict[str, Any]]:
            reply = await self.call("GET", path, self.token)
            self.assertEqual(reply.code, 200, reply.body)
            # asked twice: the second answer is the reused one
            again = await self.call("GET", path, self.token)
            self.assertEqual(again.body, reply.body)
            found: list[dict[str, Any]] = reply.json()["servers"]
            return found

        async def mine() -> dict[str, Any]:
            return next(s for s in await listed() if s["id"] == sid)

        await listed()
        reply = await self.call("POST", f"{V}/servers/{sid}/metadata", self.token, {"metadata": {"role": "db"}})
        self.assertEqual(reply.code, 201, reply.body)
        self.assertEqual((await mine())["metadata"].get("role"), "db")
        await self.servers.update(sid, operstate="STARTED", task=None, action=None)
        self.assertEqual((await mine())["status"], "ACTIVE")
        reply = await self.call("PUT", f"{V}/servers/{sid}", self.token, {"server": {"name": "renamed"}})
        self.assertEqual(reply.code, 204, reply.body)
        self.assertEqual((await mine())["name"], "renamed")
        await self.servers.addTag(sid, "blue")
        self.assertIn("blue", (await mine())["tags"])
        await self.servers.setMetadata(sid, {"role": "web"})
        self.assertEqual((await mine())["metadata"].get("role"), "web")
        volume = await volumes.create(self.user.uuid, self.volumeType.id, 5, serverId=sid, idx=5)
        self.assertIn(volume.id, (await mine())["volumes"])
        await volumes.update(volume.id, deleted=True)
        self.assertNotIn(volume.id, (await mine())["volumes"])
        await self.servers.addDiagnostic(sid, "ganeti", "ERROR", "disk on fire")
        self.assertEqual([d["message"] for d in (await mine())["diagnostics"]], ["disk on fire"])
        network = await NetworkRepository(self.database).create("net", "IP_LESS_ROUTED", userid=self.user.uuid)
        subnet = await SubnetRepository(self.database).create(network.id, "10.9.0.0/24", 4)

        async def attached() -> dict[int, str]:
            return {a["id"]: a["ipv4"] for a in (await mine())["attachments"]}

        port = await ports.create(network.id, userid=self.user.uuid, serverId=sid, state="ACTIVE")
        self.assertEqual((await attached()).get(port.id), "")
        ip = await ports.addIP(subnet.id, network.id, "10.9.0.5", 4, portId=port.id, userid=self.user.uuid)
        self.assertEqual((await attached()).get(port.id), "10.9.0.5")
        await ports.releaseIP(ip.id)
        self.assertEqual((await attached()).get(port.id), "")
        await ports.update(port.id, state="DOWN")
        self.assertNotIn(port.id, await attached())
        await ports.delete(port.id)
        self.assertNotIn(port.id, await attached())
        second = await self.create(name="b")
        self.assertEqual([s["id"] for s in await listed()], [sid, second["id"]])
        await self.servers.update(second["id"], deleted=True)
        self.assertEqual([s["id"] for s in await listed()], [sid])


class CompressedListingTests(ServersTestCase):
    async def test_gzip(self) -> None:
        """
        A reused listing is sent gzip-compressed to a client that accepts it
        (compressed once while it is unchanged), as it is to one that does
        not; both vary by C{Accept-Encoding}.
        """
        for n in range(3):
            await self.create(name=f"s{n}")
        path = f"{V}/servers/detail"
        status, headers, plain = await self.rawExchange("GET", path)
        self.assertIn(b" 200 ", status)
        self.assertNotIn(b"content-encoding", headers)
        self.assertEqual(headers[b"vary"], b"X-Auth-Token, Accept-Encoding")
        self.assertEqual(len(json.loads(plain)["servers"]), 3)
        accepted = {"Accept-Encoding": "gzip, deflate"}
        compressed = self.app.router.compressed
        for _ in range(2):
            status, headers, body = await self.rawExchange("GET", path, headers=accepted)
            self.assertEqual(headers[b"content-encoding"], b"gzip")
            self.assertEqual(headers[b"vary"], b"X-Auth-Token, Accept-Encoding")
            self.assertEqual(headers[b"content-length"], b"%d" % len(body))
            self.assertEqual(gzip.decompress(body), plain)
        self.assertEqual(compressed.compressions, 1)
        _, headers, body = await self.rawExchange("GET", path, headers={"Accept-Encoding": "gzip;q=0"})
        self.assertNotIn(b"content-encoding", headers)
        self.assertEqual(body, plain)
        # not a reused answer: as it is
        _, headers, body = await self.rawExchange("GET", f"{path}?limit=2", headers=accepted)
        self.assertNotIn(b"content-encoding", headers)
        self.assertEqual(len(json.loads(body)["servers"]), 2)
        # a reused answer under GZIP_MIN_SIZE: as it is
        _, headers, body = await self.rawExchange("GET", f"{V}/flavors/detail", headers=accepted)
        self.assertLess(len(body), GZIP_MIN_SIZE)
        self.assertNotIn(b"content-encoding", headers)
        self.assertEqual(headers[b"vary"], b"X-Auth-Token, Accept-Encoding")
        self.assertIn("flavors", json.loads(body))
        # treq (as python-requests) asks for gzip itself and decodes it
        self.assertEqual((await self.call("GET", path, self.token)).body, plain)


class StaleDetailListingTests(DetailListingTests):
    """
    The same, with listings allowed to show other processes' writes an hour
    late (the test clock never gets there): every write through this
    process's database object still shows in the very next listing.
    """

    listingStaleness = 3600.0


class StatsTests(ServersTestCase):
    settings = {"statsURL": "https://stats.example.org/stats/v1.0", "fqdnTemplate": "snf-{id}.vm.example.org"}

    async def test_stats(self) -> None:
        """
        /stats gives the graph URLs of the instance and the refresh period; the FQDN comes from the template.
        """
        created = await self.create()
        self.assertEqual(created["SNF:fqdn"], f"snf-{created['id']}.vm.example.org")
        reply = (await self.call("GET", f"{V}/servers/{created['id']}/stats", self.token)).json()
        base = "https://stats.example.org/stats/v1.0"
        self.assertEqual(
            reply,
            {
                "stats": {
                    "serverRef": created["id"],
                    "refresh": 60,
                    "cpuBar": f"{base}/cpu-bar/snf-{created['id']}",
                    "cpuTimeSeries": f"{base}/cpu-ts/snf-{created['id']}",
                    "netBar": f"{base}/net-bar/snf-{created['id']}",
                    "netTimeSeries": f"{base}/net-ts/snf-{created['id']}",
                }
            },
        )


class WriteTests(ServersTestCase):
    async def test_rename(self) -> None:
        """
        PUT /servers/<id> renames (204); a malformed body is a 400 naming the field; another user's is a 404.
        """
        created = await self.create()
        path = f"{V}/servers/{created['id']}"
        reply = await self.call("PUT", path, self.token, {"server": {"name": "new"}})
        self.assertEqual(reply.code, 204, reply.body)
        self.assertEqual((await self.call("GET", path, self.token)).json()["server"]["name"], "new")
        for body, field in (
            ({}, "server"),
            ({"server": {}}, "name"),
            ({"server": {"name": 3}}, "name"),
            ({"server": {"name": "x" * 256}}, "name"),
        ):
            fault = self.assertFault(await self.call("PUT", path, self.token, body), "badRequest", 400)
            self.assertIn(field, fault["message"] + fault["details"])
        _, otherToken = await self.users.create("other@example.org")
        self.assertFault(await self.call("PUT", path, otherToken, {"server": {"name": "x"}}), "itemNotFound", 404)
        self.assertEqual((await self.servers.get(created["id"])).name, "new")  # type: ignore[union-attr]

    async def test_delete(self) -> None:
        """
        DELETE submits DeleteInstance and answers 204; the server stays visible meanwhile; another user's is a 404.
        """
        server = await self.running()
        _, otherToken = await self.users.create("other@example.org")
        self.assertFault(await self.call("DELETE", f"{V}/servers/{server.id}", otherToken), "itemNotFound", 404)
        reply = await self.call("DELETE", f"{V}/servers/{server.id}", self.token)
        self.assertEqual(reply.code, 204, reply.body)
        self.assertEqual(self.lastOp()["OP_ID"], "OP_INSTANCE_REMOVE")
        shown = (await self.call("GET", f"{V}/servers/{server.id}", self.token)).json()["server"]
        self.assertEqual(shown["SNF:task_state"], "DESTROYING")

    async def test_deleteWhileBuilding(self) -> None:
        """
        Deleting a server whose instance does not exist yet is a 409.
        """
        created = await self.create()
        reply = await self.call("DELETE", f"{V}/servers/{created['id']}", self.token)
        self.assertFault(reply, "buildInProgress", 409)

    async def test_password(self) -> None:
        """
        The admin password is readable until forgotten (then 404); another user's is a 404.
        """
        created = await self.create()
        path = f"{V}/servers/{created['id']}/password"
        _, otherToken = await self.users.create("other@example.org")
        self.assertFault(await self.call("GET", path, otherToken), "itemNotFound", 404)
        self.assertFault(await self.call("DELETE", path, otherToken), "itemNotFound", 404)
        self.assertEqual((await self.call("GET", path, self.token)).json(), {"password": created["adminPass"]})
        self.assertEqual((await self.call("DELETE", path, self.token)).code, 204)
        self.assertFault(await self.call("GET", path, self.token), "itemNotFound", 404)
        self.assertFault(await self.call("DELETE", path, self.token), "itemNotFound", 404)

    async def test_passwordExpires(self) -> None:
        """
        The password is not readable after its lifetime.
        """
        created = await self.create()
        self.clock.advance(86401)
        self.assertFault(
            await self.call("GET", f"{V}/servers/{created['id']}/password", self.token), "itemNotFound", 404
        )

    async def test_metadata(self) -> None:
        """
        Metadata: list, merge (201 with the result), show, put one key (201), delete (204), 404 when missing.
        """
        created = await self.create(metadata={"a": "1"})
        path = f"{V}/servers/{created['id']}/metadata"
        self.assertEqual((await self.call("GET", path, self.token)).json(), {"metadata": {"a": "1"}})
        reply = await self.call("POST", path, self.token, {"metadata": {"b": "2"}})
        self.assertEqual((reply.code, reply.json()), (201, {"metadata": {"a": "1", "b": "2"}}))
        self.assertEqual((await self.call("GET", f"{path}/b", self.token)).json(), {"meta": {"b": "2"}})
        reply = await self.call("PUT", f"{path}/c", self.token, {"meta": {"c": "3"}})
        self.assertEqual((reply.code, reply.json()), (201, {"meta": {"c": "3"}}))
        self.assertEqual((await self.call("DELETE", f"{path}/a", self.token)).code, 204)
        self.assertEqual((await self.call("GET", path, self.token)).json(), {"metadata": {"b": "2", "c": "3"}})
        self.assertFault(await self.call("GET", f"{path}/a", self.token), "itemNotFound", 404)
        self.assertFault(await self.call("DELETE", f"{path}/a", self.token), "itemNotFound", 404)

    async def test_metadataMalformed(self) -> None:
        """
        Malformed metadata writes are 400s naming the field, and change nothing; another user's server is a 404.
        """
        created = await self.create(metadata={"a": "1"})
        path = f"{V}/servers/{created['id']}/metadata"
        for method, url, body, field in (
            ("POST", path, {}, "metadata"),
            ("POST", path, {"metadata": ["x"]}, "metadata"),
            ("POST", path, {"metadata": {"k": 1}}, "metadata"),
            ("POST", path, {"metadata": {f"k{i}": "v" for i in range(10)}}, "metadata"),
            ("PUT", f"{path}/b", {"meta": {"c": "1"}}, "meta"),
            ("PUT", f"{path}/b", {"meta": {"b": "1", "c": "2"}}, "meta"),
            ("PUT", f"{path}/b", {}, "meta"),
            ("PUT", f"{path}/b", {"meta": {"b": "v" * 501}}, "metadata"),
        ):
            fault = self.assertFault(await self.call(method, url, self.token, body), "badRequest", 400)
            self.assertIn(field, fault["message"] + fault["details"], body)
        self.assertEqual((await self.call("GET", path, self.token)).json(), {"metadata": {"a": "1"}})
        _, otherToken = await self.users.create("other@example.org")
        self.assertFault(await self.call("GET", path, otherToken), "itemNotFound", 404)
        self.assertFault(await self.call("POST", path, otherToken, {"metadata": {"x": "y"}}), "itemNotFound", 404)
        self.assertFault(await self.call("DELETE", f"{path}/a", otherToken), "itemNotFound", 404)

    async def test_metadataSuspended(self) -> None:
        """
        A suspended server's metadata is read-only for its owner (403) and writable by an admin.
        """
        created = await self.create()
        await self.servers.update(created["id"], suspended=True)
        path = f"{V}/servers/{created['id']}/metadata"
        self.assertFault(await self.call("POST", path, self.token, {"metadata": {"a": "1"}}), "forbidden", 403)
        self.assertEqual((await self.call("POST", path, self.adminToken, {"metadata": {"a": "1"}})).code, 201)

    async def test_tags(self) -> None:
        """
        Tags: replace (PENDADD, jobs on the instance), check with tag-status, add (201 + Location, 204 when there),
        delete one and all, 404s when missing.
        """
        server = await self.running(tags=["a"])
        path = f"{V}/servers/{server.id}/tags"
        self.assertEqual((await self.call("GET", path, self.token)).json(), {"tags": ["a"], "statuses": ["PENDADD"]})
        reply = await self.call("PUT", path, self.token, {"tags": ["b", "c d"]})
        self.assertEqual((reply.code, reply.json()), (200, {"tags": ["b", "c d"], "statuses": ["PENDADD", "PENDADD"]}))
        jobs = sorted(self.sim.queue.jobs)[-2:]
        ops = [self.sim.queue.jobs[j].ops[0].input for j in jobs]
        self.assertEqual([o["OP_ID"] for o in ops], ["OP_TAGS_DEL", "OP_TAGS_SET"])
        self.assertEqual(ops[1]["tags"], ["b", "c/20d"])
        reply = await self.call("GET", f"{path}/b", self.token)
        self.assertEqual((reply.code, reply.header("tag-status")), (204, "PENDADD"))
        self.assertFault(await self.call("GET", f"{path}/zz", self.token), "itemNotFound", 404)
        reply = await self.call("PUT", f"{path}/e", self.token)
        self.assertEqual((reply.code, reply.header("Location")), (201, f"{BASE}{V}/servers/{server.id}/tags/e"))
        self.assertEqual((await self.call("PUT", f"{path}/e", self.token)).code, 204)
        self.assertEqual((await self.call("DELETE", f"{path}/b", self.token)).code, 204)
        self.assertFault(await self.call("DELETE", f"{path}/b", self.token), "itemNotFound", 404)
        self.assertEqual((await self.call("GET", path, self.token)).json()["tags"], ["c d", "e"])
        self.assertEqual((await self.call("DELETE", path, self.token)).code, 204)
        self.assertFault(await self.call("DELETE", path, self.token), "itemNotFound", 404)
        self.assertEqual((await self.call("GET", path, self.token)).json(), {"tags": [], "statuses": []})

    async def test_tagsMalformed(self) -> None:
        """
        Malformed tag writes are 400s naming the field and change nothing; another user's server is a 404.
        """
        created = await self.create(tags=["a"])
        path = f"{V}/servers/{created['id']}/tags"
        for body in ({}, {"tags": "a"}, {"tags": [1]}, {"tags": [f"t{i}" for i in range(51)]}, {"tags": ["x" * 61]}):
            fault = self.assertFault(await self.call("PUT", path, self.token, body), "badRequest", 400)
            self.assertIn("tags", fault["message"] + fault["details"])
        fault = self.assertFault(await self.call("PUT", f"{path}/{'x' * 61}", self.token), "badRequest", 400)
        self.assertIn("tag", fault["details"])
        self.assertEqual((await self.call("GET", path, self.token)).json()["tags"], ["a"])
        _, otherToken = await self.users.create("other@example.org")
        self.assertFault(await self.call("GET", path, otherToken), "itemNotFound", 404)
        self.assertFault(await self.call("PUT", f"{path}/b", otherToken), "itemNotFound", 404)
        self.assertFault(await self.call("DELETE", path, otherToken), "itemNotFound", 404)


async def floatingHandler(user: User, server: Server, args: object) -> None:
    """
    A stand-in for the network API's addFloatingIp: it refuses one address.
    """
    if not isinstance(args, dict) or "address" not in args:
        raise NetworkRequestError("address", "Malformed request. Missing attribute 'address'.")
    if args["address"] == "10.0.0.99":
        raise ConflictError("address", "Floating IP 10.0.0.99 is in use.")
    FloatingCalls.append((user.uuid, server.id, args["address"]))


FloatingCalls: list[tuple[str, int, str]] = []


class ActionTests(ServersTestCase):
    extraActions = {"addFloatingIp": floatingHandler}

    async def test_startStop(self) -> None:
        """
        os-stop of a running server submits ShutdownInstance (202); start/os-start of a stopped one StartupInstance;
        the wrong state is a 400 and a pending task a 400 too.
        """
        server = await self.running()
        reply = await self.action(server.id, {"os-start": {}})
        self.assertEqual(
            self.assertFault(reply, "badRequest", 400)["message"],
            "Cannot perform 'START' action while server is in 'STARTED' state.",
        )
        reply = await self.action(server.id, {"os-stop": None})
        self.assertEqual(reply.code, 202, reply.body)
        self.assertEqual(self.lastOp()["OP_ID"], "OP_INSTANCE_SHUTDOWN")
        reply = await self.action(server.id, {"shutdown": {}})
        self.assertIn("pending 'STOP'", self.assertFault(reply, "badRequest", 400)["message"])
        self.clock.pump([0.5] * 4)
        await self.servers.update(server.id, operstate="STOPPED", task=None, action=None)
        reply = await self.action(server.id, {"shutdown": {}})
        self.assertFault(reply, "badRequest", 400)
        reply = await self.action(server.id, {"start": {}})
        self.assertEqual(reply.code, 202, reply.body)
        self.assertEqual(self.lastOp()["OP_ID"], "OP_INSTANCE_STARTUP")

    async def test_reboot(self) -> None:
        """
        reboot SOFT/HARD submit a hard RebootInstance (shutdown_timeout 0 for HARD); another type is a 400 naming it.
        """
        server = await self.running()
        reply = await self.action(server.id, {"reboot": {"type": "BOGUS"}})
        self.assertIn("type", self.assertFault(reply, "badRequest", 400)["details"])
        reply = await self.action(server.id, {"reboot": {"type": "HARD"}})
        self.assertEqual(reply.code, 202, reply.body)
        op = self.lastOp()
        self.assertEqual((op["OP_ID"], op["reboot_type"], op["shutdown_timeout"]), ("OP_INSTANCE_REBOOT", "hard", 0))
        self.clock.pump([0.5] * 4)
        await self.servers.update(server.id, task=None, action=None)
        reply = await self.action(server.id, {"reboot": {"type": "SOFT"}})
        self.assertEqual(reply.code, 202, reply.body)
        self.assertEqual(self.lastOp()["reboot_type"], "hard")

    async def test_resize(self) -> None:
        """
        resize needs a stopped server (400 otherwise) and a flavorRef (400 naming it); it submits ModifyInstance and
        records the total CPU/RAM change as a commission.
        """
        server = await self.stopped()
        await self.servers.update(server.id, operstate="STARTED")
        reply = await self.action(server.id, {"resize": {"flavorRef": self.bigger.id}})
        self.assertFault(reply, "badRequest", 400)
        await self.servers.update(server.id, operstate="STOPPED")
        reply = await self.action(server.id, {"resize": {}})
        self.assertIn("flavorRef", self.assertFault(reply, "badRequest", 400)["details"])
        reply = await self.action(server.id, {"resize": {"flavorRef": self.flavor.id}})
        self.assertIn("already", self.assertFault(reply, "badRequest", 400)["message"])
        reply = await self.action(server.id, {"resize": {"flavorRef": 999}})
        self.assertFault(reply, "itemNotFound", 404)
        reply = await self.action(server.id, {"resize": {"flavorRef": str(self.bigger.id)}})
        self.assertEqual(reply.code, 202, reply.body)
        op = self.lastOp()
        self.assertEqual(
            (op["OP_ID"], op["beparams"]), ("OP_INSTANCE_SET_PARAMS", {"vcpus": 4, "minmem": 2048, "maxmem": 2048})
        )
        self.assertEqual(await self.holding("cyclades.total_cpu"), (2, 2))

    async def test_resizeOverQuota(self) -> None:
        """
        A resize beyond the CPU limit is a 413 overLimit and submits nothing.
        """
        server = await self.stopped()
        await self.quotas.setLimit(self.project.id, "cyclades.total_cpu", 3)
        jobs = len(self.sim.queue.jobs)
        reply = await self.action(server.id, {"resize": {"flavorRef": self.bigger.id}})
        self.assertIn("cyclades.total_cpu", self.assertFault(reply, "overLimit", 413)["details"])
        self.assertEqual(len(self.sim.queue.jobs), jobs)
        refreshed = await self.servers.get(server.id)
        assert refreshed is not None
        self.assertEqual((refreshed.task, refreshed.flavor_id), (None, self.flavor.id))

    async def test_buildInProgress(self) -> None:
        """
        Actions on a server being built are 409 buildInProgress.
        """
        created = await self.create()
        self.assertFault(await self.action(created["id"], {"os-stop": {}}), "buildInProgress", 409)

    async def test_errorState(self) -> None:
        """
        Actions on a server in ERROR are 400s.
        """
        server = await self.running()
        await self.servers.update(server.id, operstate="ERROR")
        reply = await self.action(server.id, {"reboot": {}})
        self.assertIn("'ERROR' state", self.assertFault(reply, "badRequest", 400)["message"])

    async def test_suspended(self) -> None:
        """
        A suspended server's actions are 403 for its owner (admin-only); an admin may act; suspend is always 403.
        """
        server = await self.running()
        await self.servers.update(server.id, suspended=True)
        self.assertFault(await self.action(server.id, {"os-stop": {}}), "forbidden", 403)
        self.assertEqual((await self.action(server.id, {"os-stop": {}}, self.adminToken)).code, 202)
        self.assertFault(await self.action(server.id, {"suspend": {}}), "forbidden", 403)

    async def test_otherUser(self) -> None:
        """
        Actions on another user's server are 404s and submit nothing.
        """
        server = await self.running()
        _, otherToken = await self.users.create("other@example.org")
        jobs = len(self.sim.queue.jobs)
        for body in ({"os-stop": {}}, {"console": {"type": "vnc"}}, {"addFloatingIp": {"address": "1.2.3.4"}}):
            self.assertFault(await self.action(server.id, body, otherToken), "itemNotFound", 404)
        self.assertEqual(len(self.sim.queue.jobs), jobs)

    async def test_malformed(self) -> None:
        """
        Bodies that are not one action, unknown actions and bad arguments are 400s naming the field.
        """
        server = await self.running()
        for body, field in (
            ({}, "action"),
            ([], "action"),
            ({"os-stop": {}, "os-start": {}}, "action"),
            ({"fly": {}}, "action"),
            ({"reboot": "HARD"}, "reboot"),
            ({"console": {}}, "type"),
            ({"console": {"type": "rdp"}}, "type"),
            ({"os-getVNCConsole": {"type": "spice"}}, "type"),
            ({"firewallProfile": {"profile": "OPEN", "nic": 1}}, "profile"),
            ({"firewallProfile": {"profile": "ENABLED"}}, "nic"),
            ({"reassign": {}}, "project"),
        ):
            fault = self.assertFault(await self.action(server.id, body), "badRequest", 400)
            self.assertIn(field, fault["message"] + fault["details"], body)
        reply = await self.call("POST", f"{V}/servers/{server.id}/action", self.token, raw=b"{}")
        self.assertFault(reply, "badRequest", 400)

    async def test_notImplemented(self) -> None:
        """
        changePassword, rebuild, confirmResize, revertResize (and RDP/SPICE consoles) answer 501 with a fault body.
        """
        server = await self.running()
        for key in (
            "changePassword",
            "rebuild",
            "confirmResize",
            "revertResize",
            "os-getRDPConsole",
            "os-getSPICEConsole",
        ):
            self.assertFault(await self.action(server.id, {key: {}}), "notImplemented", 501)
        self.assertFault(await self.action(server.id, {"rescue": {}}), "featureNotEnabled", 404)

    async def test_console(self) -> None:
        """
        console asks RAPI where the VNC server is and the proxy for a forwarding, and answers type, host, port and
        password; a stopped server is a 400.
        """
        server = await self.running()
        reply = await self.action(server.id, {"console": {"type": "vnc-wss"}})
        self.assertEqual(reply.code, 200, reply.body)
        console = reply.json()["console"]
        self.assertEqual((console["type"], console["host"], console["port"]), ("vnc-wss", "vnc.example.org", 25000))
        destination, port, password, kind = self.broker.requests[-1]
        rapi = await self.sim.client.getInstanceConsole(f"snf-{server.id}")
        self.assertEqual((destination, port), (rapi["host"], rapi["port"]))
        self.assertEqual((password, kind), (console["password"], "vnc-wss"))
        self.assertEqual(port, self.sim.cluster.instances[f"snf-{server.id}"].consolePort)
        reply = await self.action(server.id, {"os-getVNCConsole": {"type": "novnc"}})
        url = reply.json()["console"]
        self.assertEqual(url["type"], "novnc")
        self.assertTrue(url["url"].startswith(f"{BASE}/ui/console?host=vnc.example.org&port=25001&password="))
        reply = await self.action(server.id, {"os-getVNCConsole": {"type": "xvpvnc"}})
        self.assertTrue(reply.json()["console"]["url"].startswith("vnc.example.org:25002?password="))
        self.assertEqual(self.broker.requests[-1][3], "vnc")
        stopped = await self.stopped()
        reply = await self.action(stopped.id, {"console": {"type": "vnc"}})
        self.assertEqual(self.assertFault(reply, "badRequest", 400)["message"], "Server not in ACTIVE state.")

    async def test_consoleProxyRefuses(self) -> None:
        """
        A proxy refusal is a 503.
        """
        server = await self.running()
        self.broker.failWith = "no ports left"
        self.assertFault(await self.action(server.id, {"console": {"type": "vnc"}}), "serviceUnavailable", 503)
        self.assertEqual(len(self.flushLoggedErrors(ConsoleUnavailable)), 1)

    async def test_firewallProfile(self) -> None:
        """
        firewallProfile replaces the NIC's tag on the instance (202) and records the profile on the port.
        """
        server = await self.running()
        network = await NetworkRepository(self.database).create("public", "IP_LESS_ROUTED", public=True)
        port = await PortRepository(self.database).create(
            network.id, userid=self.user.uuid, serverId=server.id, state="ACTIVE"
        )
        reply = await self.action(server.id, {"firewallProfile": {"profile": "ENABLED", "nic": port.id}})
        self.assertEqual(reply.code, 202, reply.body)
        self.clock.pump([0.5] * 4)
        self.assertIn(
            f"synnefo:network:snf-nic-{port.id}:protected", self.sim.cluster.instances[f"snf-{server.id}"].tags
        )
        self.assertEqual((await PortRepository(self.database).get(port.id)).firewall_profile, "ENABLED")  # type: ignore[union-attr]
        reply = await self.action(server.id, {"firewallProfile": {"profile": "ENABLED", "nic": 99999}})
        self.assertFault(reply, "itemNotFound", 404)

    async def test_reassign(self) -> None:
        """
        reassign moves the server and its quota to another project of the user (200); sharing is 403 when disabled.
        """
        server = await self.running()
        projects = ProjectRepository(self.database)
        team = await projects.create("team")
        await projects.addMember(team.id, self.user.id)
        reply = await self.action(server.id, {"reassign": {"project": team.uuid, "shared_to_project": True}})
        self.assertFault(reply, "forbidden", 403)
        reply = await self.action(server.id, {"reassign": {"project": team.uuid}})
        self.assertEqual(reply.code, 200, reply.body)
        moved = await self.servers.get(server.id)
        assert moved is not None
        self.assertEqual(moved.project, team.uuid)
        self.assertEqual(await self.holding("cyclades.vm"), (0, 0))
        reply = await self.action(server.id, {"reassign": {"project": "not-mine"}})
        self.assertFault(reply, "forbidden", 403)

    async def test_extraAction(self) -> None:
        """
        Actions given as extraActions are dispatched to their handler (202); its refusals become faults; the
        network API's own removeFloatingIp answers for an address the user does not hold (404).
        """
        del FloatingCalls[:]
        server = await self.running()
        reply = await self.action(server.id, {"addFloatingIp": {"address": "10.0.0.7"}})
        self.assertEqual(reply.code, 202, reply.body)
        self.assertEqual(FloatingCalls, [(self.user.uuid, server.id, "10.0.0.7")])
        reply = await self.action(server.id, {"addFloatingIp": {"address": "10.0.0.99"}})
        self.assertEqual(self.assertFault(reply, "conflict", 409)["details"], "field: address")
        reply = await self.action(server.id, {"addFloatingIp": {}})
        self.assertIn("address", self.assertFault(reply, "badRequest", 400)["details"])
        self.assertFault(
            await self.action(server.id, {"removeFloatingIp": {"address": "10.0.0.7"}}), "itemNotFound", 404
        )
        await self.servers.update(server.id, task="STOP")
        reply = await self.action(server.id, {"addFloatingIp": {"address": "10.0.0.8"}})
        self.assertFault(reply, "badRequest", 400)
        self.assertEqual(len(FloatingCalls), 1)


class ServerNetworkSettingsTests(ServersTestCase):
    """
    default_server_networks and forced_server_networks (Synnefo's CYCLADES_DEFAULT_SERVER_NETWORKS and
    CYCLADES_FORCED_SERVER_NETWORKS) on POST /servers, with the network pools as the API node uses them.
    """

    def configure(self, default: Sequence[str] = (), forced: Sequence[str] = ()) -> None:
        self.mount(
            serverops.ServerOptions(
                vmapiURL=f"{BASE}/vmapi/v1.0/server-params",
                clock=self.clock,
                ipAllocator=allocateServerPortIP,
                defaultNetworks=parseNetworkChoices(default),
                forcedNetworks=parseNetworkChoices(forced),
            )
        )

    async def network(
        self,
        cidr: str | None = None,
        *,
        ipv6: str | None = None,
        public: bool = True,
        full: bool = False,
        drained: bool = False,
        deleted: bool = False,
    ) -> Network:
        """
        A network with an IPv4 subnet and its pool on C{cidr} (every address taken when C{full}) and/or an IPv6
        subnet.
        """
        networks = NetworkRepository(self.database)
        network = await networks.create(
            "public" if public else "mine", "IP_LESS_ROUTED", public=public, userid=None if public else self.user.uuid
        )
        if drained or deleted:
            await networks.update(network.id, drained=drained, deleted=deleted)
        subnets = SubnetRepository(self.database)
        if cidr is not None:
            net = ipaddress.IPv4Network(cidr)
            gateway = net.network_address + 1
            subnet = await subnets.create(network.id, cidr, 4, gateway=str(gateway), public=public)
            for layout in pools.ipPoolLayouts(net, [pools.defaultAllocationPool(net)], gateway):
                bitmap = layout.bitmap()
                while full and (index := bitmap.first()) is not None:
                    bitmap.take(index)
                await IPPoolRepository(self.database).create(
                    subnet.id, layout.base, layout.size, layout.offset, *bitmap.dump()
                )
        if ipv6 is not None:
            await subnets.create(network.id, ipv6, 6, public=public)
        found = await networks.get(network.id)
        assert found is not None
        return found

    async def createNoNetworks(self) -> dict[str, Any]:
        """
        POST /servers without a networks field.
        """
        body = self.body()
        del body["server"]["networks"]
        reply = await self.call("POST", f"{V}/servers", self.token, body)
        self.assertEqual(reply.code, 202, reply.body)
        created: dict[str, Any] = reply.json()["server"]
        return created

    async def nics(self, serverId: int) -> list[tuple[int, int, str | None]]:
        """
        (network, idx, IPv4) of the server's ports by idx; the addresses are fixed IPs, not floating ones.
        """
        ports = PortRepository(self.database)
        out = []
        for port in sorted(await ports.listByServer(serverId), key=lambda p: p.idx or 0):
            ips = await ports.ipsOfPort(port.id)
            self.assertFalse(any(ip.floating_ip for ip in ips))
            out.append((port.network_id, port.idx or 0, next((ip.address for ip in ips if ip.ipversion == 4), None)))
        return out

    def jobNics(self) -> list[tuple[str, str | None]]:
        """
        (network, ip) of the NICs of the CreateInstance job sent to the cluster.
        """
        op = self.lastOp()
        self.assertEqual(op["OP_ID"], "OP_INSTANCE_CREATE")
        return [(nic["network"], nic["ip"]) for nic in op["nics"]]

    async def refused(self, body: dict[str, Any], fault: str, code: int) -> dict[str, Any]:
        """
        The create is refused with C{fault} and nothing is written: no server, port or address, no job, and the
        quota neither used nor pending.
        """
        addresses = await self.database.runQuery("SELECT COUNT(*) FROM ips")
        reply = await self.call("POST", f"{V}/servers", self.token, body)
        answer = self.assertFault(reply, fault, code)
        self.assertEqual(await self.serverCount(), 0)
        self.assertEqual(await self.database.runQuery("SELECT COUNT(*) FROM ports"), [(0,)])
        self.assertEqual(await self.database.runQuery("SELECT COUNT(*) FROM ips"), addresses)
        self.assertEqual(self.sim.queue.jobs, {})
        self.assertEqual(await self.quotas.pending(), [])
        self.assertEqual(await self.holding("cyclades.vm"), (0, 0))
        self.assertEqual(await self.holding("cyclades.disk"), (0, 0))
        return answer

    def noNetworks(self) -> dict[str, Any]:
        body = self.body()
        del body["server"]["networks"]
        return body

    async def test_omittedGetsDefaultAndForced(self) -> None:
        """
        Without a networks field the server gets the forced networks first, then the default ones, each port with
        an address from its network's pool, and the CreateInstance job carries the NICs.
        """
        forced = await self.network("10.1.0.0/24")
        default = await self.network("10.2.0.0/24")
        self.configure(default=[str(default.id)], forced=[str(forced.id)])
        created = await self.createNoNetworks()
        self.assertEqual(await self.nics(created["id"]), [(forced.id, 0, "10.1.0.2"), (default.id, 1, "10.2.0.2")])
        self.assertEqual(self.jobNics(), [(f"snf-net-{forced.id}", "10.1.0.2"), (f"snf-net-{default.id}", "10.2.0.2")])

    async def test_emptyGetsOnlyForced(self) -> None:
        """
        networks: [] means no user networks: only the forced ones; without forced networks, no NIC at all.
        """
        forced = await self.network("10.1.0.0/24")
        default = await self.network("10.2.0.0/24")
        self.configure(default=[str(default.id)])
        created = await self.create(networks=[])
        self.assertEqual(await self.nics(created["id"]), [])
        self.assertEqual(self.jobNics(), [])
        self.configure(default=[str(default.id)], forced=[str(forced.id)])
        created = await self.create(networks=[])
        self.assertEqual(await self.nics(created["id"]), [(forced.id, 0, "10.1.0.2")])
        self.assertEqual(self.jobNics(), [(f"snf-net-{forced.id}", "10.1.0.2")])

    async def test_explicitPlusForced(self) -> None:
        """
        Networks named in the request replace the default ones; the forced ones are still added, first.
        """
        forced = await self.network("10.1.0.0/24")
        default = await self.network("10.2.0.0/24")
        mine = await self.network("192.168.5.0/24", public=False)
        self.configure(default=[str(default.id)], forced=[str(forced.id)])
        created = await self.create(networks=[{"uuid": str(mine.id), "fixed_ip": "192.168.5.9"}])
        self.assertEqual(await self.nics(created["id"]), [(forced.id, 0, "10.1.0.2"), (mine.id, 1, "192.168.5.9")])
        self.assertEqual(self.jobNics(), [(f"snf-net-{forced.id}", "10.1.0.2"), (f"snf-net-{mine.id}", "192.168.5.9")])

    async def test_anyPublicIPv4(self) -> None:
        """
        SNF:ANY_PUBLIC_IPV4 picks the first public network with a free IPv4 address (skipping a full one, a drained
        one, private and IPv6-only ones) and the port takes an address from its pool, shown in the server's
        addresses and attachments once the port is up.
        """
        await self.network("10.1.0.0/24", full=True)
        await self.network("10.9.0.0/24", drained=True)
        await self.network("10.8.0.0/24", public=False)
        await self.network(ipv6="2001:db8::/64")
        chosen = await self.network("10.2.0.0/24", ipv6="2001:db8:1::/64")
        self.configure(default=["SNF:ANY_PUBLIC_IPV4"])
        created = await self.createNoNetworks()
        self.assertEqual(await self.nics(created["id"]), [(chosen.id, 0, "10.2.0.2")])
        self.assertEqual(self.jobNics(), [(f"snf-net-{chosen.id}", "10.2.0.2")])
        # the next server gets the next address
        second = await self.createNoNetworks()
        self.assertEqual(await self.nics(second["id"]), [(chosen.id, 0, "10.2.0.3")])
        # up (as the dispatcher marks it), the port shows in the server
        ports = PortRepository(self.database)
        [port] = await ports.listByServer(created["id"])
        await ports.update(port.id, state="ACTIVE", mac="aa:00:00:00:00:01")
        server = (await self.call("GET", f"{V}/servers/{created['id']}", self.token)).json()["server"]
        self.assertEqual(
            server["addresses"][str(chosen.id)][0],
            {"version": 4, "addr": "10.2.0.2", "OS-EXT-IPS:type": "fixed"},
        )
        self.assertEqual([(a["network_id"], a["ipv4"]) for a in server["attachments"]], [(str(chosen.id), "10.2.0.2")])

    async def test_anyPublicIPv6(self) -> None:
        """
        SNF:ANY_PUBLIC_IPV6 picks a public IPv6-only network (no IPv4 address is taken); SNF:ANY_PUBLIC prefers a
        public IPv4 network with room and falls back to the IPv6-only one.
        """
        await self.network("10.2.0.0/24", ipv6="2001:db8:1::/64", full=True)
        v6 = await self.network(ipv6="2001:db8::/64")
        self.configure(default=["SNF:ANY_PUBLIC_IPV6"])
        created = await self.createNoNetworks()
        self.assertEqual(await self.nics(created["id"]), [(v6.id, 0, None)])
        self.assertEqual(self.jobNics(), [(f"snf-net-{v6.id}", None)])
        self.configure(forced=["SNF:ANY_PUBLIC"])
        created = await self.create(networks=[])
        self.assertEqual(await self.nics(created["id"]), [(v6.id, 0, None)])
        v4 = await self.network("10.3.0.0/24")
        created = await self.create(networks=[])
        self.assertEqual(await self.nics(created["id"]), [(v4.id, 0, "10.3.0.2")])

    async def test_groupFallback(self) -> None:
        """
        A group takes its first usable member: a missing, drained or full network is passed over for the next one.
        """
        full = await self.network("10.1.0.0/24", full=True)
        drained = await self.network("10.9.0.0/24", drained=True)
        ok = await self.network("10.2.0.0/24")
        self.configure(forced=[f"999|{drained.id}|{full.id}|{ok.id}"])
        created = await self.create(networks=[])
        self.assertEqual(await self.nics(created["id"]), [(ok.id, 0, "10.2.0.2")])
        other = await self.network("10.3.0.0/24")
        self.configure(default=[f"{full.id}|SNF:ANY_PUBLIC_IPV4", f"{other.id}|{ok.id}"])
        created = await self.createNoNetworks()
        self.assertEqual(await self.nics(created["id"]), [(ok.id, 0, "10.2.0.3"), (other.id, 1, "10.3.0.2")])
        self.assertEqual(self.jobNics(), [(f"snf-net-{ok.id}", "10.2.0.3"), (f"snf-net-{other.id}", "10.3.0.2")])

    async def test_misconfigured(self) -> None:
        """
        A default or forced network that does not exist (or is deleted) is the operator's error: 503 naming it,
        logged, and nothing is written (the commission issued in the transaction goes with it).
        """
        gone = await self.network("10.1.0.0/24", deleted=True)
        ok = await self.network("10.2.0.0/24")
        self.configure(default=["999"])
        fault = await self.refused(self.noNetworks(), "serviceUnavailable", 503)
        self.assertIn("network 999 does not exist", fault["message"])
        self.assertIn("default", fault["message"])
        self.configure(forced=[f"{gone.id}|SNF:ANY_PUBLIC_IPV6", str(ok.id)])
        fault = await self.refused(self.body(), "serviceUnavailable", 503)
        self.assertIn(f"network {gone.id} does not exist", fault["message"])
        self.assertIn("forced", fault["message"])
        # the pool of the network that would have been next is untouched
        self.assertEqual(await self.database.runQuery("SELECT COUNT(*) FROM ips"), [(0,)])

    async def test_exhausted(self) -> None:
        """
        No public network with a free address is a 409 conflict, as an exhausted pool of a requested network is, and
        nothing is written; so is a configured network whose pool is full.
        """
        full = await self.network("10.1.0.0/24", full=True)
        self.configure(default=["SNF:ANY_PUBLIC_IPV4"])
        fault = await self.refused(self.noNetworks(), "conflict", 409)
        self.assertIn("no public IPv4 network has a free address", fault["message"])
        self.configure(forced=[str(full.id)])
        fault = await self.refused(self.body(), "conflict", 409)
        self.assertIn(f"no free IPv4 address left in network {full.id}", fault["message"])
        self.configure(forced=["SNF:ANY_PUBLIC"])
        await self.refused(self.body(), "conflict", 409)

    async def test_lastAddress(self) -> None:
        """
        The address is taken in the create's transaction: with one address left, the second create is refused.
        """
        network = await self.network("10.1.0.0/29")
        for _ in range(4):
            await self.database.runInteraction(lambda tx: pools.allocateIP(tx, network.id))
        self.configure(forced=["SNF:ANY_PUBLIC_IPV4"])
        created = await self.create()
        self.assertEqual(await self.nics(created["id"]), [(network.id, 0, "10.1.0.6")])
        reply = await self.call("POST", f"{V}/servers", self.token, self.body())
        self.assertFault(reply, "conflict", 409)
        self.assertEqual(await self.serverCount(), 1)


class NoBrokerTests(ServersTestCase):
    async def _setUp(self) -> None:
        await super()._setUp()
        self.app = APIApplication(self.database, self.clock, BASE, backends=self.registry)
        self.stub = StubTreq(self.app.resource())

    async def test_consoleWithoutBroker(self) -> None:
        """
        Without a console broker the console actions are 503s.
        """
        server = await self.running()
        self.assertFault(await self.action(server.id, {"console": {"type": "vnc"}}), "serviceUnavailable", 503)


class OpenAPIServersTests(ServersTestCase, OpenAPIDocumentTests):
    async def test_serverRoutesDocumented(self) -> None:
        """
        The OpenAPI document covers the servers and VMAPI routes.
        """
        paths = (await self.call("GET", "/openapi.json")).json()["paths"]
        for path in (
            "/compute/v2.0/servers",
            "/compute/v2.1/servers/{server_id}/action",
            "/compute/v2.0/servers/{server_id}/tags/{tag}",
            "/vmapi/v1.0/server-params/{config_key}",
        ):
            self.assertIn(path, paths)
        self.assertEqual(paths["/vmapi/v1.0/server-params/{config_key}"]["get"]["security"], [])
