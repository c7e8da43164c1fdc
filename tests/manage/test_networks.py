"""
Tests for the network, subnet, port and floating-IP commands of snf-manage
(L{synnefo_twisted.manage.networks}), with NIC changes and network removal
checked on the simulated cluster.
"""

from __future__ import annotations

from typing import Any

from synnefo_twisted.db.manage import AdminQueries
from synnefo_twisted.db.pools import BackendNetworkRepository
from synnefo_twisted.db.repositories import NetworkRepository, PortRepository
from tests.manage.support import WorldTestCase


class NetworkTestCase(WorldTestCase):
    async def publicNetwork(self, *extra: str) -> dict[str, Any]:
        """
        A public CUSTOM network with 10.0.0.0/24, a floating-IP pool.
        """
        return await self.manageJSON(  # type: ignore[no-any-return]
            "network-create", "--name", "public", "--flavor", "CUSTOM", "--public", "--subnet", "10.0.0.0/24",
            "--floating-ip-pool", "True", *extra,
        )  # fmt: skip

    async def activate(self, networkId: int, cidr: str = "10.0.0.0/24") -> None:
        """
        Create and connect the network in the simulated cluster and record
        it ACTIVE there, as the network activation does.
        """
        client = self.sim.client
        name = f"snf-net-{networkId}"
        await client.waitForJob(await client.createNetwork(name, cidr))
        await client.waitForJob(await client.connectNetwork(name, "default", "bridged", "br0"))
        await BackendNetworkRepository(self.database).create(networkId, self.backend.id, operstate="ACTIVE")


class NetworkCommandTests(NetworkTestCase):
    async def test_createPublicWithSubnet(self) -> None:
        """
        network-create makes a public network with its IPv4 subnet and
        allocation pool; network-list and subnet-list show them.
        """
        data = await self.publicNetwork("--allocation-pool", "10.0.0.10,10.0.0.20")
        self.assertEqual((data["flavor"], data["public"], data["floating_ip_pool"]), ("CUSTOM", True, True))
        self.assertEqual((data["link"], data["mode"], data["subnets"]), ("br0", "bridged", ["10.0.0.0/24"]))
        rows = await self.manageJSON("network-list")
        self.assertEqual([r["id"] for r in rows], [data["id"]])
        subnets = await self.manageJSON("subnet-list", "--network", str(data["id"]))
        self.assertEqual([(s["cidr"], s["gateway"], s["pools"]) for s in subnets],
                         [("10.0.0.0/24", "10.0.0.1", ["10.0.0.10-10.0.0.20"])])  # fmt: skip

    async def test_createPrivateNeedsPool(self) -> None:
        """
        A MAC_FILTERED network takes its MAC prefix from the pool: without
        the pool it is refused, with it the prefix is allocated.
        """
        code, _out, err = await self.manage("network-create", "--flavor", "MAC_FILTERED", "--user", "user@example.org")
        self.assertEqual(code, 1)
        self.assertIn("mac_prefix pool", err)
        self.assertEqual(await NetworkRepository(self.database).list(includeDeleted=True), [])
        await self.manageJSON("pool-create", "--type", "mac-prefix", "--base", "aa:00:0", "--size", "16")
        data = await self.manageJSON(
            "network-create", "--flavor", "MAC_FILTERED", "--user", "user@example.org", "--name", "priv"
        )
        self.assertEqual((data["user"], data["mac_prefix"], data["link"]), (self.user.uuid, "aa:00:1", "prv0"))
        rows = await self.manageJSON("network-list", "--user", "other@example.org")
        self.assertEqual(rows, [])

    async def test_createBadInput(self) -> None:
        """
        Malformed or contradictory options are one-line errors with exit
        status 2 and create nothing.
        """
        cases = [
            ("--flavor", "CUSTOM", "--public", "--subnet", "10.0.0.0/33"),
            ("--flavor", "CUSTOM", "--public", "--subnet", "10.0.0.0/24", "--gateway", "10.9.9.9"),
            ("--flavor", "CUSTOM", "--public", "--subnet", "10.0.0.0/24", "--allocation-pool", "10.0.0.1"),
            ("--flavor", "CUSTOM", "--public", "--gateway", "10.0.0.1"),
            ("--flavor", "CUSTOM"),
            ("--flavor", "WIRELESS", "--public"),
            ("--flavor", "MAC_FILTERED", "--public"),
            ("--flavor", "MAC_FILTERED", "--user", "user@example.org", "--mac-prefix", "aa:00:5"),
            ("--flavor", "IP_LESS_ROUTED", "--public", "--link", "br9"),
            ("--flavor", "CUSTOM", "--public", "--mac-prefix", "ab:00:01"),
            ("--flavor", "CUSTOM", "--public", "--mac-prefix", "aa:00"),
        ]
        for argv in cases:
            code, out, err = await self.manage("network-create", *argv)
            self.assertEqual((code, out), (2, ""), (argv, err))
            self.assertEqual(len(err.splitlines()), 1, err)
        self.assertEqual(await NetworkRepository(self.database).list(includeDeleted=True), [])

    async def test_createCustomLinkAndPrefix(self) -> None:
        """
        A CUSTOM network takes --link and --mac-prefix instead of the
        deployment's defaults; an IP_LESS_ROUTED one gets its own link.
        """
        data = await self.manageJSON(
            "network-create", "--flavor", "CUSTOM", "--public", "--link", "br7", "--mac-prefix", "aa:00:07"
        )
        self.assertEqual((data["link"], data["mac_prefix"]), ("br7", "aa:00:07"))
        routed = await self.manageJSON("network-create", "--flavor", "IP_LESS_ROUTED", "--public")
        self.assertEqual((routed["mode"], routed["link"]), ("routed", f"snf-link-{routed['id']}"))

    async def test_inspectAndModify(self) -> None:
        """
        network-modify renames, drains and reserves addresses (which then
        are no longer handed out); network-inspect shows the subnet's use,
        ports and floating IPs.
        """
        data = await self.publicNetwork()
        netId = str(data["id"])
        changed = await self.manageJSON(
            "network-modify", netId, "--name", "outside", "--add-reserved-ips", "10.0.0.2,10.0.0.3"
        )
        self.assertEqual(changed["name"], "outside")
        port = await self.manageJSON("port-create", "--network", netId, "--user", "user@example.org")
        self.assertEqual(port["ips"], ["10.0.0.4"])
        await self.manageJSON("network-modify", netId, "--remove-reserved-ips", "10.0.0.3")
        fip = await self.manageJSON("floating-ip-create", "--user", "user@example.org", "--network", netId)
        self.assertEqual(fip["address"], "10.0.0.3")
        code, _out, err = await self.manage("network-modify", netId, "--remove-reserved-ips", "10.0.0.1")
        self.assertEqual(code, 1)
        self.assertIn("must stay reserved", err)
        code, _out, err = await self.manage("network-modify", netId, "--add-reserved-ips", "10.0.0.4")
        self.assertEqual(code, 1)
        self.assertIn("in use", err)
        await self.manageJSON("network-modify", netId, "--drained", "True")
        info = await self.manageJSON("network-inspect", netId)
        self.assertEqual(info["status"], "SNF:DRAINED")
        self.assertEqual(info["ports"], [str(port["id"])])
        self.assertEqual(info["floating_ips"], ["10.0.0.3"])
        self.assertIn("free 250/254", info[f"subnet {data['subnets'] and 1}"])
        code, _out, err = await self.manage("port-create", "--network", netId, "--user", "user@example.org")
        self.assertEqual(code, 1)
        self.assertIn("drained", err)

    async def test_removeWithoutBackend(self) -> None:
        """
        network-remove refuses while ports or floating IPs remain; a network
        no backend has is deleted at once, its subnet with it.
        """
        data = await self.publicNetwork()
        netId = str(data["id"])
        port = await self.manageJSON("port-create", "--network", netId, "--user", "user@example.org")
        code, _out, err = await self.manage("network-remove", netId)
        self.assertEqual(code, 1)
        self.assertIn("ports still configured", err)
        await self.manageJSON("port-remove", str(port["id"]))
        code, _out, err = await self.manage("network-remove", netId)
        self.assertEqual(code, 0, err)
        network = await NetworkRepository(self.database).get(data["id"])
        assert network is not None
        self.assertEqual((network.deleted, network.state), (True, "DELETED"))
        self.assertEqual(await AdminQueries(self.database).subnets(networkId=data["id"]), [])
        code, _out, err = await self.manage("network-remove", netId)
        self.assertEqual(code, 1)
        self.assertIn(f"no network {netId}", err)

    async def test_removeFromBackend(self) -> None:
        """
        A network present on a backend is disconnected and removed there by
        jobs (waited for with --wait); the Ganeti network is gone.
        """
        data = await self.publicNetwork()
        await self.activate(data["id"])
        self.assertIn(f"snf-net-{data['id']}", self.sim.cluster.networks)
        rows = await self.manageJSON("network-remove", str(data["id"]), "--wait")
        self.assertEqual([(r["backend"], r["status"]) for r in rows], [("sim.ganeti.local", "success")])
        self.assertNotIn(f"snf-net-{data['id']}", self.sim.cluster.networks)
        row = await BackendNetworkRepository(self.database).get(data["id"], self.backend.id)
        assert row is not None
        self.assertEqual((row.backendjobid, row.backendopcode), (rows[0]["job"], "OP_NETWORK_REMOVE"))


class SubnetCommandTests(NetworkTestCase):
    async def test_createInspectModify(self) -> None:
        """
        subnet-create adds an IPv6 subnet to a network; subnet-inspect shows
        the IPv4 pool's use; subnet-modify renames.
        """
        data = await self.publicNetwork()
        v4 = (await self.manageJSON("subnet-list"))[0]
        v6 = await self.manageJSON(
            "subnet-create", "--network", str(data["id"]), "--cidr", "2001:db8::/64", "--name", "six"
        )
        self.assertEqual((v6["ipversion"], v6["gateway"], v6["pools"]), (6, "2001:db8::1", []))
        info = await self.manageJSON("subnet-inspect", str(v4["id"]))
        self.assertEqual(info["allocation_pools"], ["10.0.0.1-10.0.0.254"])
        self.assertIn("free 253", next(v for k, v in info.items() if k.startswith("pool ")))
        renamed = await self.manageJSON("subnet-modify", str(v4["id"]), "--name", "four")
        self.assertEqual(renamed["name"], "four")

    async def test_createErrors(self) -> None:
        """
        A malformed CIDR is bad input (exit 2); a second IPv4 subnet or an
        unknown network are refused (exit 1).
        """
        data = await self.publicNetwork()
        netId = str(data["id"])
        code, _out, err = await self.manage("subnet-create", "--network", netId, "--cidr", "10.1.0.0/40")
        self.assertEqual(code, 2)
        self.assertIn("Malformed CIDR", err)
        code, _out, err = await self.manage("subnet-create", "--network", netId, "--cidr", "10.1.0.0/24")
        self.assertEqual(code, 1)
        self.assertIn("already has an IPv4 subnet", err)
        code, _out, err = await self.manage("subnet-create", "--network", "99", "--cidr", "10.1.0.0/24")
        self.assertEqual(code, 1)
        self.assertIn("no network 99", err)
        code, _out, err = await self.manage("subnet-modify", "99", "--name", "x")
        self.assertEqual(code, 1)


class PortCommandTests(NetworkTestCase):
    async def test_portOnServerAddsNIC(self) -> None:
        """
        port-create --server allocates an address and adds the NIC to the
        instance; port-remove removes the NIC, then the port, and the
        address goes back to the pool.
        """
        data = await self.publicNetwork()
        await self.activate(data["id"])
        server = await self.createServer()
        port = await self.manageJSON(
            "port-create", "--network", str(data["id"]), "--server", str(server.id), "--ipv4-address", "10.0.0.7",
            "--wait",
        )  # fmt: skip
        self.assertEqual((port["server"], port["ips"], port["job_status"]), (server.id, ["10.0.0.7"], "success"))
        self.assertEqual(port["user"], self.user.uuid)
        nics = self.sim.cluster.instances[f"snf-{server.id}"].nics
        self.assertIn((f"snf-nic-{port['id']}", "10.0.0.7"), [(n.name, n.ip) for n in nics])
        listed = await self.manageJSON("port-list", "--server", str(server.id))
        self.assertEqual([p["id"] for p in listed], [port["id"]])
        info = await self.manageJSON("port-inspect", str(port["id"]))
        self.assertEqual(info["ganeti_name"], f"snf-nic-{port['id']}")
        removed = await self.manageJSON("port-remove", str(port["id"]), "--wait")
        self.assertEqual(removed["status"], "success")
        nics = self.sim.cluster.instances[f"snf-{server.id}"].nics
        self.assertNotIn(f"snf-nic-{port['id']}", [n.name for n in nics])
        self.assertIsNone(await PortRepository(self.database).get(port["id"]))
        again = await self.manageJSON("port-create", "--network", str(data["id"]), "--user", "user@example.org",
                                      "--ipv4-address", "10.0.0.7")  # fmt: skip
        self.assertEqual(again["ips"], ["10.0.0.7"])

    async def test_portErrors(self) -> None:
        """
        A port on a server needs the network active on the server's
        backend; an address outside the pool is bad input; no owner, a
        malformed address or an unknown port are errors. Nothing is left.
        """
        data = await self.publicNetwork()
        netId = str(data["id"])
        server = await self.createServer()
        code, _out, err = await self.manage("port-create", "--network", netId, "--server", str(server.id))
        self.assertEqual(code, 1)
        self.assertIn("not active on sim.ganeti.local", err)
        code, _out, err = await self.manage("port-create", "--network", netId, "--user", "user@example.org",
                                            "--ipv4-address", "10.9.0.1")  # fmt: skip
        self.assertEqual(code, 2)
        code, _out, err = await self.manage("port-create", "--network", netId, "--ipv4-address", "10.0.0.300")
        self.assertEqual(code, 2)
        code, _out, err = await self.manage("port-create", "--network", netId)
        self.assertEqual(code, 2)
        self.assertIn("--user", err)
        code, _out, err = await self.manage("port-remove", "42")
        self.assertEqual(code, 1)
        self.assertEqual(await AdminQueries(self.database).ports(), [])


class FloatingIPCommandTests(NetworkTestCase):
    async def test_lifecycle(self) -> None:
        """
        A floating IP is allocated to a user, attached to the user's server
        (a NIC with that address), detached (the NIC removed, the address
        kept) and released.
        """
        data = await self.publicNetwork()
        await self.activate(data["id"])
        server = await self.createServer()
        fip = await self.manageJSON("floating-ip-create", "--user", "user@example.org")
        self.assertEqual((fip["address"], fip["network"], fip["port"]), ("10.0.0.2", data["id"], None))
        attached = await self.manageJSON("floating-ip-attach", str(fip["id"]), "--server", str(server.id), "--wait")
        self.assertEqual((attached["server"], attached["job_status"]), (server.id, "success"))
        nics = self.sim.cluster.instances[f"snf-{server.id}"].nics
        self.assertIn("10.0.0.2", [n.ip for n in nics])
        code, _out, err = await self.manage("floating-ip-remove", str(fip["id"]))
        self.assertEqual(code, 1)
        self.assertIn("attached", err)
        detached = await self.manageJSON("floating-ip-detach", str(fip["id"]), "--wait")
        self.assertEqual((detached["port"], detached["server"], detached["job_status"]), (None, None, "success"))
        nics = self.sim.cluster.instances[f"snf-{server.id}"].nics
        self.assertNotIn("10.0.0.2", [n.ip for n in nics])
        rows = await self.manageJSON("floating-ip-list", "--user", "user@example.org")
        self.assertEqual([r["address"] for r in rows], ["10.0.0.2"])
        await self.manageJSON("floating-ip-remove", str(fip["id"]))
        self.assertEqual(await self.manageJSON("floating-ip-list"), [])
        rows = await self.manageJSON("floating-ip-list", "--deleted")
        self.assertEqual([r["deleted"] for r in rows], [True])

    async def test_errors(self) -> None:
        """
        Another user's server, an unknown IP, an address outside every pool
        network and a missing pool are refused.
        """
        data = await self.publicNetwork()
        server = await self.createServer()
        fip = await self.manageJSON("floating-ip-create", "--user", "other@example.org")
        code, _out, err = await self.manage("floating-ip-attach", str(fip["id"]), "--server", str(server.id))
        self.assertEqual(code, 1)
        self.assertIn("different users", err)
        code, _out, err = await self.manage("floating-ip-detach", str(fip["id"]))
        self.assertEqual(code, 1)
        self.assertIn("not attached", err)
        code, _out, err = await self.manage("floating-ip-remove", "999")
        self.assertEqual(code, 1)
        code, _out, err = await self.manage("floating-ip-create", "--user", "user@example.org", "--address", "10.0.0.9")
        self.assertEqual(code, 2)
        self.assertIn("floating_network_id", err)
        code, _out, err = await self.manage(
            "floating-ip-create", "--user", "user@example.org", "--network", str(data["id"]), "--address", "10.0.0.2"
        )
        self.assertEqual(code, 1)
        self.assertIn("in use", err)
