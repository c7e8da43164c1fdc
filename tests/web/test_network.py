"""
Tests for L{web.network}: the network API (networks, subnets, ports,
floating IPs under C{/network/v2.0}), the compute C{os-floating-ips} and the
C{addFloatingIp}/C{removeFloatingIp} server actions, over HTTP (L{StubTreq})
against SQLite and the in-memory simulated Ganeti cluster; concurrent
allocations through the API (L{ConcurrencyTests}, run again on PostgreSQL
in L{tests.web.test_api_postgres}).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import DeferredList, fail
from twisted.trial.unittest import SynchronousTestCase

from synnefo_twisted.db.models import Network
from synnefo_twisted.db.repositories import NetworkRepository, PortRepository, ProjectRepository
from synnefo_twisted.ganeti.errors import RapiServerError
from synnefo_twisted.logic import networkops, serverops
from synnefo_twisted.logic import networks as netlogic
from synnefo_twisted.logic import pools as poollogic
from synnefo_twisted.logic.networks import BadRequestError, NetworkDefaults, NetworkRequest, parseSubnet
from tests.web import test_servers
from tests.web.support import Reply
from web.app import APIApplication
from web.network import networkFault

N = "/network/v2.0"

NETWORK_LIMITS = {"cyclades.network.private": 2, "cyclades.floating_ip": 3}

DEFAULTS = NetworkDefaults()


async def publicNetwork(database: Any, cidr: str = "192.0.2.0/29", floating: bool = True) -> Network:
    """
    A public CUSTOM network (a floating-IP pool) with a DHCP IPv4 subnet.
    """
    created = await netlogic.createNetwork(
        database,
        NetworkRequest("CUSTOM", "public", None, False),
        None,
        DEFAULTS,
        subnets=[parseSubnet({"subnet": {"cidr": cidr}}, DEFAULTS, networkId=0)],
        public=True,
        floatingIPPool=floating,
    )
    return created.network


class NetworkFaultTests(SynchronousTestCase):
    def test_badRequestNamesField(self) -> None:
        """
        A 400 of the network logic names the field in its message and details.
        """
        fault = networkFault(BadRequestError("subnet.cidr", "Malformed CIDR '10/8'"))
        self.assertEqual((fault.code, fault.name), (400, "badRequest"))
        self.assertEqual(fault.message, "Invalid 'subnet.cidr': Malformed CIDR '10/8'")
        self.assertEqual(fault.details, "field: subnet.cidr")


class NetworkTestCase(test_servers.ServersTestCase):
    """
    The API over the simulated cluster, a public floating-IP network with a
    /29 (five addresses), the MAC-prefix and bridge pools, and network and
    floating-IP quotas on the user's base project.
    """

    macPrefixSize = 4096
    bridgeSize = 20

    async def _setUp(self) -> None:
        await super()._setUp()
        await netlogic.ensureResourcePools(self.database, macPrefixSize=self.macPrefixSize, bridgeSize=self.bridgeSize)
        for resource, limit in NETWORK_LIMITS.items():
            await self.quotas.setLimit(self.project.id, resource, limit)
        self.public = await publicNetwork(self.database)
        self.other, self.otherToken = await self.users.create("other@example.org", "Another User")
        projects = ProjectRepository(self.database)
        otherProject = await projects.create("other base", ownerUUID=self.other.uuid, isBase=True)
        await projects.addMember(otherProject.id, self.other.id)

    async def createNetwork(self, token: str | None = None, **fields: Any) -> Reply:
        body = {"type": "MAC_FILTERED", "name": "private"}
        body.update(fields)
        return await self.call("POST", f"{N}/networks", token or self.token, {"network": body})

    async def network(self, token: str | None = None, cidr: str | None = "10.10.0.0/29") -> dict[str, Any]:
        reply = await self.createNetwork(token)
        self.assertEqual(reply.code, 201, reply.body)
        network: dict[str, Any] = reply.json()["network"]
        if cidr is not None:
            subnet = {"network_id": network["id"], "cidr": cidr}
            reply = await self.call("POST", f"{N}/subnets", token or self.token, {"subnet": subnet})
            self.assertEqual(reply.code, 201, reply.body)
        return network

    async def networkCount(self) -> int:
        return len(await NetworkRepository(self.database).list(includeDeleted=True))

    async def usage(self, resource: str) -> int:
        usage, pending = await self.holding(resource)
        self.assertEqual(pending, 0)
        return usage

    def jobs(self) -> list[dict[str, Any]]:
        return [dict(op.input) for job in sorted(self.sim.queue.jobs.values(), key=lambda j: j.id) for op in job.ops]


class VersionTests(NetworkTestCase):
    async def test_versions(self) -> None:
        """
        C{/network} lists v2.0 without a token; C{/network/v2.0} needs one and names the resources.
        """
        reply = await self.call("GET", "/network")
        self.assertEqual(reply.code, 200)
        self.assertEqual([v["id"] for v in reply.json()["versions"]], ["v2.0"])
        self.assertFault(await self.call("GET", N), "unauthorized", 401)
        reply = await self.call("GET", f"{N}/", self.token)
        self.assertEqual(reply.code, 200)
        self.assertEqual(
            [r["collection"] for r in reply.json()["resources"]], ["networks", "subnets", "ports", "floatingips"]
        )
        self.assertEqual((await self.call("GET", f"{N}/extensions", self.token)).json(), {"extensions": []})

    async def test_routing(self) -> None:
        """
        An unknown URL is a 404; a wrong method a 405 with C{Allow}.
        """
        self.assertFault(await self.call("GET", f"{N}/routers", self.token), "itemNotFound", 404)
        reply = await self.call("PATCH", f"{N}/networks", self.token)
        self.assertFault(reply, "notAllowed", 405)
        self.assertEqual(reply.header("Allow"), "GET,HEAD,POST")
        reply = await self.call("POST", f"{N}/networks/{self.public.id}", self.token, {})
        self.assertFault(reply, "notAllowed", 405)
        self.assertEqual(reply.header("Allow"), "DELETE,GET,HEAD,PUT")

    async def test_openapi(self) -> None:
        """
        Every network route is in the OpenAPI document.
        """
        paths = (await self.call("GET", "/openapi.json")).json()["paths"]
        for path, method in (
            ("/network/v2.0/networks", "post"),
            ("/network/v2.0/networks/{network_id}", "delete"),
            ("/network/v2.0/subnets/{subnet_id}", "put"),
            ("/network/v2.0/ports", "post"),
            ("/network/v2.0/floatingips/{floatingip_id}", "get"),
            ("/compute/v2.1/os-floating-ips", "post"),
            ("/compute/v2.0/os-floating-ips/{floatingip_id}", "delete"),
        ):
            self.assertIn(method, paths[path], path)


class NetworkTests(NetworkTestCase):
    async def test_create(self) -> None:
        """
        A MAC_FILTERED network is created (201) on the user's base project, charged to its quota, and listed with
        the public network.
        """
        reply = await self.createNetwork(name="mine")
        self.assertEqual(reply.code, 201, reply.body)
        network = reply.json()["network"]
        self.assertEqual(
            (network["name"], network["type"], network["status"], network["user_id"], network["tenant_id"]),
            ("mine", "MAC_FILTERED", "ACTIVE", self.user.uuid, self.project.uuid),
        )
        self.assertEqual((network["public"], network["subnets"], network["SNF:floating_ip_pool"]), (False, [], False))
        self.assertEqual(network["links"][0]["href"], f"{test_servers.BASE}{N}/networks/{network['id']}")
        self.assertEqual(await self.usage("cyclades.network.private"), 1)
        listed = (await self.call("GET", f"{N}/networks", self.token)).json()["networks"]
        self.assertEqual([n["id"] for n in listed], [str(self.public.id), network["id"]])
        detail = (await self.call("GET", f"{N}/networks/detail", self.token)).json()["networks"]
        self.assertEqual(detail, listed)
        shown = (await self.call("GET", f"{N}/networks/{network['id']}", self.token)).json()["network"]
        self.assertEqual(shown, network)

    async def test_badInput(self) -> None:
        """
        Every malformed body is a 400 naming the field, and nothing is written.
        """
        before = await self.networkCount()
        for body, field in (
            ({"network": {"name": "x"}}, "network.type"),
            ({"network": {"type": "BRIDGED"}}, "network.type"),
            ({"network": {"type": "MAC_FILTERED", "name": 5}}, "network.name"),
            ({"network": {"type": "MAC_FILTERED", "shared_to_project": "yes"}}, "network.shared_to_project"),
            ({"network": "x"}, "network"),
            ({"net": {}}, "network"),
        ):
            reply = await self.call("POST", f"{N}/networks", self.token, body)
            inner = self.assertFault(reply, "badRequest", 400)
            self.assertEqual(inner["details"], f"field: {field}", body)
            self.assertIn(field, inner["message"])
        self.assertFault(await self.call("POST", f"{N}/networks", self.token, raw=b"{"), "badRequest", 400)
        reply = await self.call("PUT", f"{N}/networks/{self.public.id}", self.adminToken, {"network": {"name": 3}})
        self.assertEqual(self.assertFault(reply, "badRequest", 400)["details"], "field: network.name")
        reply = await self.call("PUT", f"{N}/networks/{self.public.id}", self.adminToken, {"network": {}})
        self.assertEqual(self.assertFault(reply, "badRequest", 400)["details"], "field: network.name")
        self.assertEqual(await self.networkCount(), before)
        self.assertEqual(await self.usage("cyclades.network.private"), 0)

    async def test_typeNotEnabled(self) -> None:
        """
        Types not enabled for the API are 403 for users; admins may create them.
        """
        reply = await self.createNetwork(type="CUSTOM")
        self.assertEqual(self.assertFault(reply, "forbidden", 403)["details"], "field: network.type")
        projects = ProjectRepository(self.database)
        adminProject = await projects.create("admin base", ownerUUID=self.admin.uuid, isBase=True)
        await projects.addMember(adminProject.id, self.admin.id)
        reply = await self.createNetwork(self.adminToken, type="CUSTOM")
        self.assertEqual(reply.code, 201, reply.body)
        self.assertEqual(reply.json()["network"]["type"], "CUSTOM")

    async def test_quota(self) -> None:
        """
        Past C{cyclades.network.private} a create is a 413 overLimit and nothing is written; deleting releases it.
        """
        first = await self.network(cidr=None)
        await self.network(cidr=None)
        before = await self.networkCount()
        self.assertFault(await self.createNetwork(), "overLimit", 413)
        self.assertEqual(await self.networkCount(), before)
        self.assertEqual(await self.usage("cyclades.network.private"), 2)
        reply = await self.call("DELETE", f"{N}/networks/{first['id']}", self.token)
        self.assertEqual(reply.code, 204, reply.body)
        self.assertEqual(await self.usage("cyclades.network.private"), 1)
        self.assertEqual((await self.createNetwork()).code, 201)

    async def test_noProject(self) -> None:
        """
        A user in no project cannot create networks (403).
        """
        _lonely, token = await self.users.create("lonely@example.org")
        self.assertFault(await self.createNetwork(token), "forbidden", 403)

    async def test_isolation(self) -> None:
        """
        Another user's network is a 404 for every operation and is not listed.
        """
        network = await self.network()
        for method, body in (("GET", None), ("PUT", {"network": {"name": "x"}}), ("DELETE", None)):
            reply = await self.call(method, f"{N}/networks/{network['id']}", self.otherToken, body)
            self.assertFault(reply, "itemNotFound", 404)
        listed = (await self.call("GET", f"{N}/networks", self.otherToken)).json()["networks"]
        self.assertEqual([n["id"] for n in listed], [str(self.public.id)])
        self.assertFault(await self.call("GET", f"{N}/networks/abc", self.token), "itemNotFound", 404)
        # admins see it
        self.assertEqual((await self.call("GET", f"{N}/networks/{network['id']}", self.adminToken)).code, 200)

    async def test_rename(self) -> None:
        """
        PUT renames (200); the public network only by admins (403 otherwise).
        """
        network = await self.network(cidr=None)
        reply = await self.call("PUT", f"{N}/networks/{network['id']}", self.token, {"network": {"name": "new"}})
        self.assertEqual(reply.code, 200, reply.body)
        self.assertEqual(reply.json()["network"]["name"], "new")
        path = f"{N}/networks/{self.public.id}"
        self.assertFault(await self.call("PUT", path, self.token, {"network": {"name": "x"}}), "forbidden", 403)
        reply = await self.call("PUT", path, self.adminToken, {"network": {"name": "Internet"}})
        self.assertEqual(reply.json()["network"]["name"], "Internet")

    async def test_delete(self) -> None:
        """
        DELETE is 204 and the network is gone; with a port it is a 409; the public network is a 403 for users.
        """
        network = await self.network()
        reply = await self.call("POST", f"{N}/ports", self.token, {"port": {"network_id": network["id"]}})
        self.assertEqual(reply.code, 201, reply.body)
        port = reply.json()["port"]
        self.assertFault(await self.call("DELETE", f"{N}/networks/{network['id']}", self.token), "conflict", 409)
        self.assertEqual((await self.call("DELETE", f"{N}/ports/{port['id']}", self.token)).code, 204)
        self.assertEqual((await self.call("DELETE", f"{N}/networks/{network['id']}", self.token)).code, 204)
        self.assertFault(await self.call("GET", f"{N}/networks/{network['id']}", self.token), "itemNotFound", 404)
        self.assertFault(await self.call("DELETE", f"{N}/networks/{self.public.id}", self.token), "forbidden", 403)

    async def test_deleteRemovesFromBackend(self) -> None:
        """
        A network present on a cluster is disconnected and removed there; it is DESTROY-pending until then.
        """
        network = await self.network()
        server = await self.running()
        reply = await self.call(
            "POST", f"{N}/ports", self.token, {"port": {"network_id": network["id"], "device_id": str(server.id)}}
        )
        port = reply.json()["port"]
        self.clock.pump([0.1] * 10)
        self.assertIn(f"snf-net-{network['id']}", self.sim.cluster.networks)
        await PortRepository(self.database).update(int(port["id"]), state="ACTIVE")
        self.assertEqual((await self.call("DELETE", f"{N}/ports/{port['id']}", self.token)).code, 204)
        self.clock.pump([0.1] * 10)
        self.assertEqual((await self.call("DELETE", f"{N}/networks/{network['id']}", self.token)).code, 204)
        ops = [j["OP_ID"] for j in self.jobs()]
        self.assertEqual(ops[-2:], ["OP_NETWORK_DISCONNECT", "OP_NETWORK_REMOVE"])
        stored = await NetworkRepository(self.database).get(int(network["id"]))
        assert stored is not None
        self.assertEqual((stored.action, stored.deleted), ("DESTROY", False))


class ChangesSinceTests(NetworkTestCase):
    async def test_changesSince(self) -> None:
        """
        changes-since lists what changed since then, deleted networks, subnets and floating IPs included (spec
        §1.2); nothing changed is a 304; a bad or future value is a 400.
        """
        since = datetime.fromtimestamp(self.clock.seconds() - 60, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        network = await self.network()
        fip = (await self.call("POST", f"{N}/floatingips", self.token, {"floatingip": {}})).json()["floatingip"]
        self.assertEqual((await self.call("DELETE", f"{N}/networks/{network['id']}", self.token)).code, 204)
        self.assertEqual((await self.call("DELETE", f"{N}/floatingips/{fip['id']}", self.token)).code, 204)
        self.assertEqual(
            (await self.call("GET", f"{N}/networks", self.token)).json()["networks"][-1]["id"], str(self.public.id)
        )
        listed = (await self.call("GET", f"{N}/networks?changes-since={since}", self.token)).json()["networks"]
        self.assertEqual([(n["id"], n["status"], n["deleted"]) for n in listed][-1], (network["id"], "DELETED", True))
        subnets = (await self.call("GET", f"{N}/subnets?changes-since={since}", self.token)).json()["subnets"]
        self.assertEqual([s["deleted"] for s in subnets if s["network_id"] == network["id"]], [True])
        ips = (await self.call("GET", f"{N}/floatingips?changes-since={since}", self.token)).json()["floatingips"]
        self.assertEqual([(i["id"], i["deleted"]) for i in ips], [(fip["id"], True)])
        self.assertEqual((await self.call("GET", f"{N}/floatingips", self.token)).json()["floatingips"], [])
        now = datetime.fromtimestamp(self.clock.seconds(), UTC).strftime("%Y-%m-%dT%H:%M:%S")
        reply = await self.call("GET", f"{N}/ports?changes-since={now}", self.otherToken)
        self.assertEqual((reply.code, reply.body), (304, b""))
        reply = await self.call("GET", f"{N}/networks?changes-since=yesterday", self.token)
        self.assertEqual(self.assertFault(reply, "badRequest", 400)["details"], "field: changes-since")
        future = datetime.fromtimestamp(self.clock.seconds() + 60, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        self.assertFault(await self.call("GET", f"{N}/ports?changes-since={future}", self.token), "badRequest", 400)


class ReassignTests(NetworkTestCase):
    async def _setUp(self) -> None:
        await super()._setUp()
        projects = ProjectRepository(self.database)
        self.second = await projects.create("second", ownerUUID=self.user.uuid)
        await projects.addMember(self.second.id, self.user.id)
        for resource, limit in NETWORK_LIMITS.items():
            await self.quotas.setLimit(self.second.id, resource, limit)

    async def secondUsage(self, resource: str) -> int:
        for quota in await self.quotas.holdings(self.second.id):
            if quota.resource == resource and quota.user_id is None:
                return quota.usage
        raise AssertionError(resource)

    async def test_network(self) -> None:
        """
        reassign moves a network and its quota to another project of the user (200); a project the user is not
        in, sharing (disabled), another action or another user's network are refused; over the new project's quota
        it is a 413 and nothing moves.
        """
        network = await self.network(cidr=None)
        path = f"{N}/networks/{network['id']}/action"
        reply = await self.call("POST", path, self.token, {"reassign": {"project": self.second.uuid}})
        self.assertEqual(reply.code, 200, reply.body)
        self.assertEqual(reply.json()["network"]["tenant_id"], self.second.uuid)
        self.assertEqual(await self.usage("cyclades.network.private"), 0)
        self.assertEqual(await self.secondUsage("cyclades.network.private"), 1)
        for body, name, code, field in (
            ({"reassign": {"project": "nope"}}, "forbidden", 403, "reassign.project"),
            (
                {"reassign": {"project": self.project.uuid, "shared_to_project": True}},
                "forbidden",
                403,
                "reassign.shared_to_project",
            ),
            (
                {"reassign": {"project": self.project.uuid, "shared_to_project": "yes"}},
                "badRequest",
                400,
                "reassign.shared_to_project",
            ),
            ({"reassign": {}}, "badRequest", 400, "reassign.project"),
            ({"rename": {}}, "badRequest", 400, "action"),
        ):
            inner = self.assertFault(await self.call("POST", path, self.token, body), name, code)
            self.assertEqual(inner["details"], f"field: {field}", body)
        body = {"reassign": {"project": self.project.uuid}}
        self.assertFault(await self.call("POST", path, self.otherToken, body), "itemNotFound", 404)
        publicPath = f"{N}/networks/{self.public.id}/action"
        self.assertFault(await self.call("POST", publicPath, self.token, body), "forbidden", 403)
        await self.quotas.setLimit(self.project.id, "cyclades.network.private", 0)
        self.assertFault(await self.call("POST", path, self.token, body), "overLimit", 413)
        self.assertEqual(await self.secondUsage("cyclades.network.private"), 1)
        shown = (await self.call("GET", f"{N}/networks/{network['id']}", self.token)).json()["network"]
        self.assertEqual(shown["tenant_id"], self.second.uuid)

    async def test_floatingIP(self) -> None:
        """
        reassign moves a floating IP and its quota to another project of the user (200).
        """
        fip = (await self.call("POST", f"{N}/floatingips", self.token, {"floatingip": {}})).json()["floatingip"]
        path = f"{N}/floatingips/{fip['id']}/action"
        reply = await self.call("POST", path, self.token, {"reassign": {"project": self.second.uuid}})
        self.assertEqual(reply.code, 200, reply.body)
        self.assertEqual(reply.json()["floatingip"]["tenant_id"], self.second.uuid)
        self.assertEqual(await self.usage("cyclades.floating_ip"), 0)
        self.assertEqual(await self.secondUsage("cyclades.floating_ip"), 1)
        self.assertFault(
            await self.call("POST", path, self.otherToken, {"reassign": {"project": "x"}}), "itemNotFound", 404
        )
        # releasing it frees the new project's quota
        self.assertEqual((await self.call("DELETE", f"{N}/floatingips/{fip['id']}", self.token)).code, 204)
        self.assertEqual(await self.secondUsage("cyclades.floating_ip"), 0)

    async def test_sharingDisabled(self) -> None:
        """
        Without [api] shared_resources, shared networks and floating IPs are refused (403) at creation.
        """
        reply = await self.createNetwork(shared_to_project=True)
        self.assertEqual(self.assertFault(reply, "forbidden", 403)["details"], "field: network.shared_to_project")
        reply = await self.call("POST", f"{N}/floatingips", self.token, {"floatingip": {"shared_to_project": True}})
        self.assertEqual(self.assertFault(reply, "forbidden", 403)["details"], "field: floatingip.shared_to_project")


class SharingTests(NetworkTestCase):
    settings = {"sharingEnabled": True}

    async def test_shared(self) -> None:
        """
        With sharing enabled a network is created shared to its project.
        """
        reply = await self.createNetwork(shared_to_project=True)
        self.assertEqual(reply.code, 201, reply.body)
        self.assertTrue(reply.json()["network"]["shared_to_project"])


class SubnetTests(NetworkTestCase):
    async def test_createIPv4(self) -> None:
        """
        An IPv4 subnet with allocation pools, gateway and DHCP (201); listed with the public subnet.
        """
        network = await self.network(cidr=None)
        body = {
            "subnet": {
                "network_id": network["id"],
                "cidr": "10.1.0.0/24",
                "name": "lan",
                "gateway_ip": "10.1.0.254",
                "allocation_pools": [{"start": "10.1.0.10", "end": "10.1.0.20"}],
                "dns_nameservers": ["8.8.8.8"],
            }
        }
        reply = await self.call("POST", f"{N}/subnets", self.token, body)
        self.assertEqual(reply.code, 201, reply.body)
        subnet = reply.json()["subnet"]
        self.assertEqual(
            (subnet["cidr"], subnet["gateway_ip"], subnet["enable_dhcp"], subnet["ip_version"], subnet["name"]),
            ("10.1.0.0/24", "10.1.0.254", True, 4, "lan"),
        )
        self.assertEqual(subnet["allocation_pools"], [{"start": "10.1.0.10", "end": "10.1.0.20"}])
        self.assertNotIn("enable_slaac", subnet)
        shown = (await self.call("GET", f"{N}/networks/{network['id']}", self.token)).json()["network"]
        self.assertEqual(shown["subnets"], [subnet["id"]])
        listed = (await self.call("GET", f"{N}/subnets", self.token)).json()["subnets"]
        self.assertEqual(len(listed), 2)
        self.assertEqual(listed[1], subnet)
        self.assertEqual(listed[0]["network_id"], str(self.public.id))
        self.assertEqual((await self.call("GET", f"{N}/subnets/{subnet['id']}", self.token)).json()["subnet"], subnet)

    async def test_createIPv6(self) -> None:
        """
        An IPv6 /64 subnet has SLAAC and no allocation pools.
        """
        network = await self.network(cidr=None)
        body = {"subnet": {"network_id": network["id"], "cidr": "2001:db8:1::/64", "ip_version": 6}}
        reply = await self.call("POST", f"{N}/subnets", self.token, body)
        self.assertEqual(reply.code, 201, reply.body)
        subnet = reply.json()["subnet"]
        self.assertEqual(
            (subnet["ip_version"], subnet["enable_slaac"], subnet["allocation_pools"], subnet["gateway_ip"]),
            (6, True, [], "2001:db8:1::1"),
        )

    async def test_badInput(self) -> None:
        """
        Malformed subnets are 400s naming the field (pool conflicts 409, sizes 413), and nothing is written.
        """
        network = await self.network(cidr=None)
        nid = network["id"]
        for fields, name, code, field in (
            ({"cidr": "10.0.0/24"}, "badRequest", 400, "subnet.cidr"),
            ({}, "badRequest", 400, "subnet.cidr"),
            ({"cidr": "10.0.0.0/24", "gateway_ip": "10.9.9.9"}, "badRequest", 400, "subnet.gateway_ip"),
            ({"cidr": "10.0.0.0/24", "ip_version": 5}, "badRequest", 400, "subnet.ip_version"),
            ({"cidr": "10.0.0.0/24", "enable_dhcp": "no"}, "badRequest", 400, "subnet.enable_dhcp"),
            ({"cidr": "10.0.0.0/8"}, "overLimit", 413, "subnet.cidr"),
            (
                {"cidr": "10.0.0.0/24", "allocation_pools": [{"start": "10.0.0.1", "end": "10.0.0.9"}]},
                "conflict",
                409,
                "subnet.allocation_pools[0]",
            ),
        ):
            body = {"subnet": {"network_id": nid, **fields}}
            inner = self.assertFault(await self.call("POST", f"{N}/subnets", self.token, body), name, code)
            self.assertEqual(inner["details"], f"field: {field}", fields)
        reply = await self.call("POST", f"{N}/subnets", self.token, {"subnet": {"cidr": "10.0.0.0/24"}})
        self.assertEqual(self.assertFault(reply, "badRequest", 400)["details"], "field: subnet.network_id")
        shown = (await self.call("GET", f"{N}/networks/{nid}", self.token)).json()["network"]
        self.assertEqual(shown["subnets"], [])

    async def test_isolationAndUpdate(self) -> None:
        """
        Only the network's owner adds subnets (404 otherwise); PUT changes the name only; DELETE is a 400.
        """
        network = await self.network()
        body = {"subnet": {"network_id": network["id"], "cidr": "2001:db8::/64", "ip_version": 6}}
        self.assertFault(await self.call("POST", f"{N}/subnets", self.otherToken, body), "itemNotFound", 404)
        subnetId = (
            network["subnets"]
            or (await self.call("GET", f"{N}/networks/{network['id']}", self.token)).json()["network"]["subnets"]
        )
        path = f"{N}/subnets/{subnetId[0]}"
        self.assertFault(await self.call("GET", path, self.otherToken), "itemNotFound", 404)
        reply = await self.call("PUT", path, self.token, {"subnet": {"name": "renamed"}})
        self.assertEqual(reply.json()["subnet"]["name"], "renamed")
        reply = await self.call("PUT", path, self.token, {"subnet": {"cidr": "10.0.0.0/24"}})
        self.assertEqual(self.assertFault(reply, "badRequest", 400)["details"], "field: subnet.cidr")
        self.assertFault(await self.call("DELETE", path, self.token), "badRequest", 400)
        publicSubnet = (await self.call("GET", f"{N}/networks/{self.public.id}", self.token)).json()["network"]
        reply = await self.call(
            "PUT", f"{N}/subnets/{publicSubnet['subnets'][0]}", self.token, {"subnet": {"name": "x"}}
        )
        self.assertFault(reply, "forbidden", 403)


class PortTests(NetworkTestCase):
    async def test_createWithoutDevice(self) -> None:
        """
        A port takes an address from the subnet's pool; PUT renames; DELETE returns the address.
        """
        network = await self.network()
        reply = await self.call("POST", f"{N}/ports", self.token, {"port": {"network_id": network["id"], "name": "p"}})
        self.assertEqual(reply.code, 201, reply.body)
        port = reply.json()["port"]
        self.assertEqual((port["name"], port["device_id"], port["status"]), ("p", None, "BUILD"))
        self.assertEqual(port["fixed_ips"][0]["ip_address"], "10.10.0.2")
        listed = (await self.call("GET", f"{N}/ports", self.token)).json()["ports"]
        self.assertEqual([p["id"] for p in listed], [port["id"]])
        self.assertEqual((await self.call("GET", f"{N}/ports/detail", self.otherToken)).json()["ports"], [])
        self.assertFault(await self.call("GET", f"{N}/ports/{port['id']}", self.otherToken), "itemNotFound", 404)
        body = {"port": {"name": "q", "security_groups": ["default"]}}
        reply = await self.call("PUT", f"{N}/ports/{port['id']}", self.token, body)
        self.assertEqual((reply.json()["port"]["name"], reply.json()["port"]["security_groups"]), ("q", ["default"]))
        self.assertEqual((await self.call("DELETE", f"{N}/ports/{port['id']}", self.token)).code, 204)
        again = await self.call("POST", f"{N}/ports", self.token, {"port": {"network_id": network["id"]}})
        self.assertEqual(again.json()["port"]["fixed_ips"][0]["ip_address"], "10.10.0.2")

    @staticmethod
    def ids(reply: Reply) -> list[str]:
        return [item["id"] for item in next(iter(reply.json().values()))]

    async def test_filters(self) -> None:
        """
        Lists filter by their attributes as Neutron's do (device_id, network_id, name, booleans).
        """
        network = await self.network()
        server = await self.running()
        body = {"port": {"network_id": network["id"], "device_id": str(server.id), "name": "on-vm"}}
        onServer = (await self.call("POST", f"{N}/ports", self.token, body)).json()["port"]
        spare = (await self.call("POST", f"{N}/ports", self.token, {"port": {"network_id": network["id"]}})).json()
        self.assertEqual(
            self.ids(await self.call("GET", f"{N}/ports?device_id={server.id}", self.token)), [onServer["id"]]
        )
        self.assertEqual(
            self.ids(await self.call("GET", f"{N}/ports?network_id={network['id']}", self.token)),
            [onServer["id"], spare["port"]["id"]],
        )
        self.assertEqual(self.ids(await self.call("GET", f"{N}/ports?name=on-vm&name=x", self.token)), [onServer["id"]])
        self.assertEqual(
            self.ids(await self.call("GET", f"{N}/networks?shared=true", self.token)), [str(self.public.id)]
        )
        self.assertEqual(self.ids(await self.call("GET", f"{N}/networks?public=false", self.token)), [network["id"]])
        self.assertEqual(self.ids(await self.call("GET", f"{N}/subnets?ip_version=6", self.token)), [])
        self.assertEqual(len(self.ids(await self.call("GET", f"{N}/subnets?unknown=1", self.token))), 2)

    async def test_badInput(self) -> None:
        """
        Malformed ports are 400s naming the field; another user's network or server is a 404; nothing is written.
        """
        network = await self.network()
        server = await self.running()
        for port, field in (
            ({}, "port.network_id"),
            ({"network_id": "x"}, "port.network_id"),
            ({"network_id": network["id"], "fixed_ips": "10.10.0.3"}, "port.fixed_ips"),
            ({"network_id": network["id"], "fixed_ips": [{"ip_address": "a"}, {}]}, "port.fixed_ips"),
            ({"network_id": network["id"], "fixed_ips": [{"ip_address": "fe80::1"}]}, "port.fixed_ips[0].ip_address"),
            ({"network_id": network["id"], "device_id": "abc"}, "port.device_id"),
            ({"network_id": network["id"], "name": ["x"]}, "port.name"),
        ):
            reply = await self.call("POST", f"{N}/ports", self.token, {"port": port})
            self.assertEqual(self.assertFault(reply, "badRequest", 400)["details"], f"field: {field}", port)
        reply = await self.call("POST", f"{N}/ports", self.otherToken, {"port": {"network_id": network["id"]}})
        self.assertEqual(self.assertFault(reply, "itemNotFound", 404)["details"], "field: port.network_id")
        body = {"port": {"network_id": str(self.public.id), "device_id": str(server.id)}}
        reply = await self.call("POST", f"{N}/ports", self.otherToken, body)
        self.assertEqual(self.assertFault(reply, "itemNotFound", 404)["details"], "field: port.device_id")
        reply = await self.call(
            "POST",
            f"{N}/ports",
            self.token,
            {"port": {"network_id": network["id"], "fixed_ips": [{"ip_address": "10.9.0.1"}]}},
        )
        self.assertEqual(self.assertFault(reply, "badRequest", 400)["details"], "field: port.fixed_ips[0].ip_address")
        self.assertEqual(await PortRepository(self.database).listByNetwork(int(network["id"])), [])

    async def test_attachToServer(self) -> None:
        """
        A port with a device_id creates the network on the server's cluster (create, then connect per node group)
        and adds the NIC after those jobs; deleting it removes the NIC.
        """
        network = await self.network()
        server = await self.running()
        before = len(self.jobs())
        body = {"port": {"network_id": network["id"], "device_id": str(server.id)}}
        reply = await self.call("POST", f"{N}/ports", self.token, body)
        self.assertEqual(reply.code, 201, reply.body)
        port = reply.json()["port"]
        self.assertEqual((port["device_id"], port["device_owner"], port["status"]), (str(server.id), "vm", "BUILD"))
        jobs = self.jobs()[before:]
        self.assertEqual([j["OP_ID"] for j in jobs], ["OP_NETWORK_ADD", "OP_NETWORK_CONNECT", "OP_INSTANCE_SET_PARAMS"])
        add, connect, nic = jobs
        self.assertEqual(
            (add["network_name"], add["network"], add["gateway"]),
            (f"snf-net-{network['id']}", "10.10.0.0/29", "10.10.0.1"),
        )
        self.assertEqual(sorted(add["tags"]), ["nfdhcpd", "private", "private-filtered"])
        self.assertEqual((connect["network_mode"], connect["network_link"]), ("bridged", "prv0"))
        self.assertEqual(nic["instance_name"], f"snf-{server.id}")
        self.assertEqual(
            nic["nics"],
            [["add", -1, {"name": f"snf-nic-{port['id']}", "network": f"snf-net-{network['id']}", "ip": "10.10.0.2"}]],
        )
        self.assertEqual(len(nic["depends"]), 2)
        self.clock.pump([0.1] * 20)
        instance = self.sim.cluster.instances[f"snf-{server.id}"]
        self.assertIn(f"snf-nic-{port['id']}", [n.name for n in instance.nics])
        # a second port on the same network does not create the network again
        second = await self.call("POST", f"{N}/ports", self.token, body)
        self.assertEqual(second.code, 201, second.body)
        self.assertEqual([j["OP_ID"] for j in self.jobs()[before + 3 :]], ["OP_INSTANCE_SET_PARAMS"])
        reply = await self.call("DELETE", f"{N}/ports/{port['id']}", self.token)
        self.assertEqual(reply.code, 204, reply.body)
        self.assertEqual(self.jobs()[-1]["nics"], [["remove", f"snf-nic-{port['id']}", {}]])
        self.assertIsNone(await PortRepository(self.database).get(int(port["id"])))

    async def test_attachRefusedByState(self) -> None:
        """
        A server being built refuses NICs (409); a Ganeti failure is a 503 and the port is not kept.
        """
        network = await self.network()
        created = await self.create()
        body = {"port": {"network_id": network["id"], "device_id": str(created["id"])}}
        self.assertFault(await self.call("POST", f"{N}/ports", self.token, body), "buildInProgress", 409)
        server = await self.running()
        body = {"port": {"network_id": network["id"], "device_id": str(server.id)}}
        self.sim.cluster.instances.pop(f"snf-{server.id}")
        self.patch(self.sim.client, "modifyInstance", _failing)
        self.assertFault(await self.call("POST", f"{N}/ports", self.token, body), "serviceUnavailable", 503)
        self.assertEqual(len(self.flushLoggedErrors(RapiServerError)), 1)
        self.assertEqual(await PortRepository(self.database).listByServer(server.id), [])


def _failing(*args: Any, **kwargs: Any) -> Any:
    return fail(RapiServerError(500, "cluster on fire"))


class FloatingIPTests(NetworkTestCase):
    async def allocate(self, token: str | None = None, **fields: Any) -> Reply:
        return await self.call("POST", f"{N}/floatingips", token or self.token, {"floatingip": fields})

    async def test_lifecycle(self) -> None:
        """
        Allocate (200) from the public pool, list, show, PUT is a 501, DELETE (204) releases address and quota.
        """
        reply = await self.allocate()
        self.assertEqual(reply.code, 200, reply.body)
        fip = reply.json()["floatingip"]
        self.assertEqual(
            (fip["floating_ip_address"], fip["floating_network_id"], fip["instance_id"], fip["port_id"]),
            ("192.0.2.2", str(self.public.id), None, None),
        )
        self.assertEqual((fip["user_id"], fip["tenant_id"]), (self.user.uuid, self.project.uuid))
        self.assertEqual(await self.usage("cyclades.floating_ip"), 1)
        self.assertEqual((await self.call("GET", f"{N}/floatingips", self.token)).json()["floatingips"], [fip])
        path = f"{N}/floatingips/{fip['id']}"
        self.assertEqual((await self.call("GET", path, self.token)).json()["floatingip"], fip)
        self.assertFault(await self.call("GET", path, self.otherToken), "itemNotFound", 404)
        self.assertFault(await self.call("DELETE", path, self.otherToken), "itemNotFound", 404)
        self.assertFault(await self.call("PUT", path, self.token, {"floatingip": {}}), "notImplemented", 501)
        self.assertEqual((await self.call("DELETE", path, self.token)).code, 204)
        self.assertEqual(await self.usage("cyclades.floating_ip"), 0)
        self.assertFault(await self.call("GET", path, self.token), "itemNotFound", 404)

    async def test_chosenAddress(self) -> None:
        """
        A given address on a given network is allocated; taken again it is a 409; without its network a 400.
        """
        reply = await self.allocate(floating_network_id=str(self.public.id), floating_ip_address="192.0.2.5")
        self.assertEqual(reply.json()["floatingip"]["floating_ip_address"], "192.0.2.5")
        reply = await self.allocate(floating_network_id=str(self.public.id), floating_ip_address="192.0.2.5")
        self.assertFault(reply, "conflict", 409)
        reply = await self.allocate(floating_ip_address="192.0.2.6")
        self.assertEqual(self.assertFault(reply, "badRequest", 400)["details"], "field: floatingip.floating_network_id")
        reply = await self.allocate(floating_network_id="x")
        self.assertEqual(self.assertFault(reply, "badRequest", 400)["details"], "field: floatingip.floating_network_id")
        self.assertEqual(await self.usage("cyclades.floating_ip"), 1)

    async def test_quotaAndExhaustion(self) -> None:
        """
        Past C{cyclades.floating_ip} an allocation is a 413; an empty pool is a 409; neither writes anything.
        """
        for _ in range(3):
            self.assertEqual((await self.allocate()).code, 200)
        self.assertFault(await self.allocate(), "overLimit", 413)
        self.assertEqual(await self.usage("cyclades.floating_ip"), 3)
        for _ in range(2):
            self.assertEqual((await self.allocate(self.otherToken)).code, 200)
        self.assertFault(await self.allocate(self.otherToken), "conflict", 409)
        listed = (await self.call("GET", f"{N}/floatingips", self.otherToken)).json()["floatingips"]
        self.assertEqual(len(listed), 2)

    async def test_computeFlavour(self) -> None:
        """
        C{os-floating-ips} under v2.0 and v2.1: allocate (no body needed), list, show, release.
        """
        for v in ("v2.0", "v2.1"):
            reply = await self.call("POST", f"/compute/{v}/os-floating-ips", self.token)
            self.assertEqual(reply.code, 200, reply.body)
            fip = reply.json()["floating_ip"]
            self.assertEqual((fip["instance_id"], fip["fixed_ip"], fip["pool"]), (None, None, None))
            self.assertEqual(
                (await self.call("GET", f"/compute/{v}/os-floating-ips", self.token)).json()["floating_ips"], [fip]
            )
            path = f"/compute/{v}/os-floating-ips/{fip['id']}"
            self.assertEqual((await self.call("GET", path, self.token)).json()["floating_ip"], fip)
            self.assertEqual((await self.call("DELETE", path, self.token)).code, 204)
        reply = await self.call("POST", "/compute/v2.1/os-floating-ips", self.token, {"pool": str(self.public.id)})
        self.assertEqual(reply.json()["floating_ip"]["ip"], "192.0.2.2")
        reply = await self.call("POST", "/compute/v2.1/os-floating-ips", self.token, {"pool": "public"})
        self.assertEqual(self.assertFault(reply, "badRequest", 400)["details"], "field: pool")
        pools = (await self.call("GET", "/compute/v2.0/os-floating-ip-pools", self.token)).json()
        self.assertEqual(pools, {"floating_ip_pools": [{"name": str(self.public.id)}]})

    async def test_serverActions(self) -> None:
        """
        addFloatingIp attaches the floating IP through a new port and a NIC add (202); removeFloatingIp removes the
        NIC and the port and keeps the floating IP (202).
        """
        server = await self.running()
        fip = (await self.allocate()).json()["floatingip"]
        action = f"/compute/v2.0/servers/{server.id}/action"
        before = len(self.jobs())
        reply = await self.call("POST", action, self.token, {"addFloatingIp": {"address": fip["floating_ip_address"]}})
        self.assertEqual(reply.code, 202, reply.body)
        shown = (await self.call("GET", f"{N}/floatingips/{fip['id']}", self.token)).json()["floatingip"]
        self.assertEqual(shown["instance_id"], str(server.id))
        [port] = await PortRepository(self.database).listByServer(server.id)
        self.assertEqual((shown["port_id"], port.network_id), (str(port.id), self.public.id))
        nic = self.jobs()[-1]
        self.assertEqual([j["OP_ID"] for j in self.jobs()[before:]][-1], "OP_INSTANCE_SET_PARAMS")
        self.assertEqual(nic["nics"][0][2]["ip"], fip["floating_ip_address"])
        compute = (await self.call("GET", "/compute/v2.1/os-floating-ips", self.token)).json()["floating_ips"]
        self.assertEqual(compute[0]["instance_id"], str(server.id))
        reply = await self.call("POST", action, self.token, {"addFloatingIp": {"address": fip["floating_ip_address"]}})
        self.assertFault(reply, "conflict", 409)
        self.assertFault(await self.call("DELETE", f"{N}/floatingips/{fip['id']}", self.token), "conflict", 409)
        reply = await self.call("POST", action, self.token, {"addFloatingIp": {}})
        self.assertEqual(self.assertFault(reply, "badRequest", 400)["details"], "field: address")
        self.clock.pump([0.1] * 20)
        reply = await self.call(
            "POST", action, self.token, {"removeFloatingIp": {"address": fip["floating_ip_address"]}}
        )
        self.assertEqual(reply.code, 202, reply.body)
        self.assertEqual(self.jobs()[-1]["nics"], [["remove", f"snf-nic-{port.id}", {}]])
        shown = (await self.call("GET", f"{N}/floatingips/{fip['id']}", self.token)).json()["floatingip"]
        self.assertEqual((shown["instance_id"], shown["port_id"], shown["deleted"]), (None, None, False))
        self.assertEqual(await PortRepository(self.database).listByServer(server.id), [])
        reply = await self.call(
            "POST", action, self.token, {"removeFloatingIp": {"address": fip["floating_ip_address"]}}
        )
        self.assertFault(reply, "conflict", 409)
        # another user's floating IP is not found
        theirs = (await self.allocate(self.otherToken)).json()["floatingip"]
        reply = await self.call(
            "POST", action, self.token, {"addFloatingIp": {"address": theirs["floating_ip_address"]}}
        )
        self.assertFault(reply, "itemNotFound", 404)


class ConcurrencyTests(NetworkTestCase):
    """
    Parallel requests racing for the last values of a pool: exactly as many
    succeed as there are values, none twice, the rest get a fault.
    """

    macPrefixSize = 8
    bridgeSize = 6
    parallel = 20

    async def _setUp(self) -> None:
        await super()._setUp()
        big = {"cyclades.network.private": 100, "cyclades.floating_ip": 100}
        for resource, limit in big.items():
            await self.quotas.setLimit(self.project.id, resource, limit)

    async def race(self, method: str, path: str, body: Any, token: str | None = None) -> list[Reply]:
        calls = [self.call(method, path, token or self.token, body) for _ in range(self.parallel)]
        results = await DeferredList(calls, consumeErrors=True)
        replies = []
        for ok, value in results:
            self.assertTrue(ok, value)
            replies.append(value)
        return replies

    async def test_floatingIPs(self) -> None:
        """
        20 parallel allocations on a /29 (five addresses): five distinct addresses, fifteen 409s, quota usage five.
        """
        replies = await self.race("POST", f"{N}/floatingips", {"floatingip": {}})
        won = [r.json()["floatingip"]["floating_ip_address"] for r in replies if r.code == 200]
        lost = [r for r in replies if r.code != 200]
        self.assertEqual(sorted(won), [f"192.0.2.{i}" for i in range(2, 7)])
        for reply in lost:
            self.assertFault(reply, "conflict", 409)
        self.assertEqual(await self.usage("cyclades.floating_ip"), 5)

    async def test_allocateWhileReleasing(self) -> None:
        """
        Releases racing allocations on the same pool and quota (locks taken in one order: address, holding, pool)
        neither deadlock nor fail: every request answers 200/204/409, and the quota usage equals the live floating
        IPs, all with distinct addresses.
        """
        held = []
        for _ in range(4):
            held.append((await self.call("POST", f"{N}/floatingips", self.token, {"floatingip": {}})).json())
        calls = [self.call("DELETE", f"{N}/floatingips/{h['floatingip']['id']}", self.token) for h in held]
        calls += [self.call("POST", f"{N}/floatingips", self.token, {"floatingip": {}}) for _ in range(12)]
        results = await DeferredList(calls, consumeErrors=True)
        codes = []
        for ok, reply in results:
            self.assertTrue(ok, reply)
            codes.append(reply.code)
        self.assertEqual(codes[:4], [204] * 4)
        self.assertEqual(set(codes[4:]) - {200, 409}, set(), codes)
        live = (await self.call("GET", f"{N}/floatingips", self.token)).json()["floatingips"]
        addresses = [ip["floating_ip_address"] for ip in live]
        self.assertEqual(len(addresses), len(set(addresses)))
        self.assertEqual(len(live), codes[4:].count(200))
        self.assertEqual(await self.usage("cyclades.floating_ip"), len(live))

    async def test_ports(self) -> None:
        """
        20 parallel port creations on a /29: five ports with distinct addresses, fifteen 409s.
        """
        network = await self.network()
        replies = await self.race("POST", f"{N}/ports", {"port": {"network_id": network["id"]}})
        won = [r.json()["port"]["fixed_ips"][0]["ip_address"] for r in replies if r.code == 201]
        self.assertEqual(sorted(won), [f"10.10.0.{i}" for i in range(2, 7)])
        for reply in replies:
            if reply.code != 201:
                self.assertFault(reply, "conflict", 409)
        self.assertEqual(len(await PortRepository(self.database).listByNetwork(int(network["id"]))), 5)

    async def test_bridges(self) -> None:
        """
        20 parallel PHYSICAL_VLAN networks (an admin's) on a bridge pool of six: each free bridge once, the rest 409.
        """
        projects = ProjectRepository(self.database)
        adminProject = await projects.create("admin base", ownerUUID=self.admin.uuid, isBase=True)
        await projects.addMember(adminProject.id, self.admin.id)
        free = poollogic.resourcePoolBitmap(poollogic.BRIDGE, "prv", self.bridgeSize).freeCount()
        body = {"network": {"type": "PHYSICAL_VLAN", "name": "vlan"}}
        replies = await self.race("POST", f"{N}/networks", body, self.adminToken)
        won = [r.json()["network"]["id"] for r in replies if r.code == 201]
        self.assertEqual(len(won), free)
        links = set()
        for networkId in won:
            stored = await NetworkRepository(self.database).get(int(networkId))
            assert stored is not None
            links.add(stored.link)
        self.assertEqual(len(links), free)
        for reply in replies:
            if reply.code != 201:
                self.assertFault(reply, "conflict", 409)

    async def test_subnets(self) -> None:
        """
        20 parallel IPv4 subnets on one network: one is created, the others are 409s.
        """
        network = await self.network(cidr=None)
        replies = await self.race(
            "POST", f"{N}/subnets", {"subnet": {"network_id": network["id"], "cidr": "10.5.0.0/24"}}
        )
        self.assertEqual(sorted(r.code for r in replies), [201] + [409] * (self.parallel - 1))
        shown = (await self.call("GET", f"{N}/networks/{network['id']}", self.token)).json()["network"]
        self.assertEqual(len(shown["subnets"]), 1)

    async def test_macPrefixes(self) -> None:
        """
        20 parallel MAC_FILTERED networks on a small MAC-prefix pool: as many as it has free prefixes, all
        distinct, the rest 409; the quota counts only the created ones.
        """
        free = poollogic.resourcePoolBitmap(poollogic.MAC_PREFIX, "aa:00:0", self.macPrefixSize).freeCount()
        replies = await self.race("POST", f"{N}/networks", {"network": {"type": "MAC_FILTERED", "name": "n"}})
        won = [r.json()["network"]["id"] for r in replies if r.code == 201]
        self.assertEqual(len(won), free)
        prefixes = set()
        for networkId in won:
            stored = await NetworkRepository(self.database).get(int(networkId))
            assert stored is not None
            prefixes.add(stored.mac_prefix)
        self.assertEqual(len(prefixes), free)
        for reply in replies:
            if reply.code != 201:
                self.assertFault(reply, "conflict", 409)
        self.assertEqual(await self.usage("cyclades.network.private"), free)


class ServerNetworkTests(NetworkTestCase):
    """
    Servers created with networks, with the plugin's hooks: addresses from
    the pools, NICs waiting for the network jobs.
    """

    async def _setUp(self) -> None:
        await super()._setUp()
        options = serverops.ServerOptions(
            vmapiURL=f"{test_servers.BASE}/vmapi/v1.0/server-params",
            clock=self.clock,
            ipAllocator=netlogic.allocateServerPortIP,
            activateNetwork=networkops.networkActivator(self.database, self.registry),
        )
        self.app = APIApplication(
            self.database, self.clock, test_servers.BASE, backends=self.registry, serverOptions=options
        )
        self.stub = StubTreq(self.app.resource())

    async def test_createWithNetworks(self) -> None:
        """
        Each port of a new server takes an address from its network's pool (a fixed_ip if given), and the
        CreateInstance job depends on the networks' create and connect jobs.
        """
        network = await self.network()
        networks = [{"uuid": network["id"], "fixed_ip": "10.10.0.5"}, {"uuid": str(self.public.id)}]
        created = await self.create(networks=networks)
        ports = await PortRepository(self.database).listByServer(int(created["id"]))
        addresses = [[ip.address for ip in await PortRepository(self.database).ipsOfPort(p.id)] for p in ports]
        self.assertEqual(addresses, [["10.10.0.5"], ["192.0.2.2"]])
        ops = self.jobs()
        self.assertEqual(
            [o["OP_ID"] for o in ops],
            ["OP_NETWORK_ADD", "OP_NETWORK_CONNECT", "OP_NETWORK_ADD", "OP_NETWORK_CONNECT", "OP_INSTANCE_CREATE"],
        )
        create = ops[-1]
        self.assertEqual([n["ip"] for n in create["nics"]], ["10.10.0.5", "192.0.2.2"])
        self.assertEqual(len(create["depends"]), 4)

    async def test_exhaustedPool(self) -> None:
        """
        A server on a network without free addresses is a 409 and nothing is written.
        """
        await self.quotas.setLimit(self.project.id, "cyclades.floating_ip", 10)
        for _ in range(5):
            self.assertEqual((await self.call("POST", f"{N}/floatingips", self.token, {"floatingip": {}})).code, 200)
        before = await self.serverCount()
        reply = await self.call(
            "POST", "/compute/v2.0/servers", self.token, self.body(networks=[{"uuid": str(self.public.id)}])
        )
        self.assertEqual(self.assertFault(reply, "conflict", 409)["details"], "field: networks")
        self.assertEqual(await self.serverCount(), before)
        self.assertEqual(await self.holding("cyclades.vm"), (0, 0))
