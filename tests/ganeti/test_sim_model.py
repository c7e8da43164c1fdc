"""
Tests for the simulated cluster model (L{synnefo_twisted.ganeti.sim.model}).
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from synnefo_twisted.ganeti.sim.model import OpError, SimCluster


class ModelTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.c = SimCluster()
        self.c.apply(
            {"OP_ID": "OP_NETWORK_ADD", "network_name": "snf-net-1", "network": "10.0.0.0/29", "gateway": "10.0.0.1"},
            1.0,
        )
        self.c.apply(
            {
                "OP_ID": "OP_NETWORK_CONNECT",
                "network_name": "snf-net-1",
                "group_name": "default",
                "network_mode": "bridged",
                "network_link": "br9",
            },
            1.0,
        )

    def create(self, name: str, nics: list[dict[str, Any]]) -> Any:
        return self.c.apply(
            {
                "OP_ID": "OP_INSTANCE_CREATE",
                "instance_name": name,
                "disk_template": "diskless",
                "disks": [],
                "nics": nics,
                "beparams": {"memory": 512, "vcpus": 2},
            },
            2.0,
        )

    def test_poolAllocation(self) -> None:
        """
        NICs with ip=pool get the network's free addresses, unique MACs and the network's mode and link.
        """
        self.create(
            "snf-1",
            [{"name": "snf-nic-1", "network": "snf-net-1", "ip": "pool"}, {"network": "snf-net-1", "ip": "pool"}],
        )
        rec = self.c.instanceRecord(self.c.instances["snf-1"])
        self.assertEqual(rec["nic.ips"], ["10.0.0.2", "10.0.0.3"])
        self.assertEqual(rec["nic.modes"], ["bridged", "bridged"])
        self.assertEqual(rec["nic.links"], ["br9", "br9"])
        self.assertEqual(len(set(rec["nic.macs"])), 2)
        self.assertEqual(rec["beparams"]["maxmem"], 512)
        net = self.c.networkRecord(self.c.networks["snf-net-1"])
        self.assertEqual((net["free_count"], net["reserved_count"], net["inst_list"]), (3, 5, ["snf-1"]))
        self.assertEqual(net["map"], "XXXX...X")

    def test_poolExhausted(self) -> None:
        """
        When the pool is empty creation fails with insufficient_resources and changes nothing.
        """
        self.create("snf-1", [{"network": "snf-net-1", "ip": "pool"}] * 5)
        e = self.assertRaises(OpError, self.create, "snf-2", [{"network": "snf-net-1", "ip": "pool"}])
        self.assertEqual(e.code, "insufficient_resources")
        self.assertNotIn("snf-2", self.c.instances)

    def test_removeReleases(self) -> None:
        """
        Removing an instance frees its addresses; the network can then be disconnected and removed.
        """
        self.create("snf-1", [{"network": "snf-net-1", "ip": "pool"}])
        disconnect = {"OP_ID": "OP_NETWORK_DISCONNECT", "network_name": "snf-net-1", "group_name": "default"}
        self.assertEqual(self.assertRaises(OpError, self.c.check, disconnect).code, "wrong_state")
        self.c.apply({"OP_ID": "OP_INSTANCE_REMOVE", "instance_name": "snf-1"}, 3.0)
        self.assertEqual(self.c.networks["snf-net-1"].freeCount(), 5)
        remove = {"OP_ID": "OP_NETWORK_REMOVE", "network_name": "snf-net-1"}
        self.assertRaises(OpError, self.c.check, remove)
        self.c.apply(disconnect, 4.0)
        self.c.apply(remove, 4.0)
        self.assertEqual(self.c.networks, {})

    def test_modifyNics(self) -> None:
        """
        SET_PARAMS adds a NIC from the pool, removes one by name, and reports the changes like Ganeti.
        """
        self.create("snf-1", [{"name": "snf-nic-1", "network": "snf-net-1", "ip": "pool"}])
        result = self.c.apply(
            {
                "OP_ID": "OP_INSTANCE_SET_PARAMS",
                "instance_name": "snf-1",
                "nics": [["add", -1, {"name": "snf-nic-2", "network": "snf-net-1", "ip": "pool"}]],
                "beparams": {"maxmem": 1024},
            },
            3.0,
        )
        self.assertEqual(result[0][0], "nic.1")
        self.assertEqual(result[1], ["be/maxmem", 1024])
        inst = self.c.instances["snf-1"]
        self.assertEqual([n.ip for n in inst.nics], ["10.0.0.2", "10.0.0.3"])
        self.c.apply(
            {"OP_ID": "OP_INSTANCE_SET_PARAMS", "instance_name": "snf-1", "nics": [["remove", "snf-nic-1", {}]]}, 4.0
        )
        self.assertEqual([n.name for n in inst.nics], ["snf-nic-2"])
        self.assertTrue(self.c.networks["snf-net-1"].isFree("10.0.0.2"))

    def test_states(self) -> None:
        """
        Shutdown, startup and reboot move admin and oper state as Ganeti reports them; reboot of a stopped instance fails.
        """
        self.create("snf-1", [])
        inst = self.c.instances["snf-1"]
        self.assertEqual(inst.status, "running")
        self.c.apply({"OP_ID": "OP_INSTANCE_SHUTDOWN", "instance_name": "snf-1"}, 3.0)
        self.assertEqual(inst.status, "ADMIN_down")
        e = self.assertRaises(OpError, self.c.check, {"OP_ID": "OP_INSTANCE_REBOOT", "instance_name": "snf-1"})
        self.assertEqual(e.code, "wrong_state")
        self.c.apply({"OP_ID": "OP_INSTANCE_STARTUP", "instance_name": "snf-1"}, 4.0)
        self.assertEqual(inst.status, "running")

    def test_badInput(self) -> None:
        """
        Duplicate names, unknown templates, bad beparams, unknown opcodes and unknown tags fail with Ganeti-style errors.
        """
        self.create("snf-1", [])
        self.assertEqual(self.assertRaises(OpError, self.create, "snf-1", []).code, "already_exists")
        bad = [
            {"OP_ID": "OP_INSTANCE_CREATE", "instance_name": "x", "disk_template": "nope", "nics": []},
            {"OP_ID": "OP_INSTANCE_SET_PARAMS", "instance_name": "snf-1", "beparams": {"vcpus": 0}},
            {"OP_ID": "OP_BOGUS"},
            {"OP_ID": "OP_TAGS_DEL", "kind": "cluster", "name": None, "tags": ["absent"]},
            {"OP_ID": "OP_NETWORK_ADD", "network_name": "n", "network": "not-a-cidr"},
        ]
        for op in bad:
            self.assertRaises(OpError, self.c.check, op)
