"""
Tests for the pool commands of snf-manage (L{synnefo_twisted.manage.pools}).
"""

from __future__ import annotations

from synnefo_twisted.db.pools import ResourcePoolRepository
from synnefo_twisted.logic import pools as poollogic
from tests.manage.support import ManageTestCase


class PoolCommandTests(ManageTestCase):
    async def test_createListShow(self) -> None:
        """
        pool-create makes the MAC-prefix and bridge pools (the default MAC
        prefix reserved); pool-list and pool-show report their use, with
        IPv4 pools of subnets next to them.
        """
        mac = await self.manageJSON("pool-create", "--type", "mac-prefix", "--base", "aa:00:0", "--size", "16")
        self.assertEqual((mac["pool"], mac["size"], mac["free"], mac["reserved"]), ("mac-prefix", 16, 15, 1))
        bridge = await self.manageJSON("pool-create", "--type", "bridge", "--base", "prv", "--size", "4")
        self.assertEqual((bridge["free"], bridge["in_use"]), (4, 0))
        await self.manageJSON(
            "network-create", "--flavor", "CUSTOM", "--public", "--subnet", "192.168.0.0/29", "--name", "small"
        )
        rows = await self.manageJSON("pool-list")
        self.assertEqual([(r["pool"], r["type"]) for r in rows], [("mac-prefix", "mac-prefix"), ("bridge", "bridge"),
                                                                   (1, "ip")])  # fmt: skip
        self.assertEqual((rows[2]["base"], rows[2]["size"], rows[2]["free"]), ("192.168.0.1", 6, 5))
        shown = await self.manageJSON("pool-show", "mac-prefix")
        self.assertEqual(shown["reserved_values"], ["aa:00:0"])
        shown = await self.manageJSON("pool-show", "1", "--in-use")
        self.assertEqual((shown["last"], shown["reserved_values"], shown["values_in_use"]),
                         ("192.168.0.6", ["192.168.0.1"], []))  # fmt: skip

    async def test_createErrors(self) -> None:
        """
        A second pool of a kind is refused; a malformed base or size is bad input.
        """
        await self.manageJSON("pool-create", "--type", "bridge", "--base", "prv", "--size", "4")
        code, _out, err = await self.manage("pool-create", "--type", "bridge", "--base", "br", "--size", "4")
        self.assertEqual(code, 1)
        self.assertIn("exists already", err)
        for argv in [
            ("--type", "mac-prefix", "--base", "zz:00:0", "--size", "4"),
            ("--type", "mac-prefix", "--base", "ab:00:0", "--size", "4"),
            ("--type", "mac-prefix", "--base", "aa:00:0", "--size", "0"),
            ("--type", "bridge", "--base", "b r", "--size", "4"),
            ("--type", "vlan", "--base", "x", "--size", "4"),
        ]:
            code, out, err = await self.manage("pool-create", *argv)
            self.assertEqual((code, out), (2, ""), (argv, err))

    async def test_modifyReservations(self) -> None:
        """
        pool-modify reserves values (never handed out afterwards) and
        releases them; values in use or that must stay reserved are refused
        and nothing changes.
        """
        await self.manageJSON("pool-create", "--type", "bridge", "--base", "prv", "--size", "4")
        data = await self.manageJSON("pool-modify", "bridge", "--add-reserved", "prv0,prv1")
        self.assertEqual((data["free"], data["reserved"]), (2, 2))
        net = await self.manageJSON("network-create", "--flavor", "PHYSICAL_VLAN", "--public")
        self.assertEqual(net["link"], "prv2")
        code, _out, err = await self.manage("pool-modify", "bridge", "--add-reserved", "prv3,prv2")
        self.assertEqual(code, 1)
        self.assertIn("prv2 is in use", err)
        pool = await ResourcePoolRepository(self.database).get(poollogic.BRIDGE)
        assert pool is not None
        self.assertTrue(poollogic.Bitmap.load(pool.size, pool.available, pool.reserved).isFree(3))
        data = await self.manageJSON("pool-modify", "bridge", "--remove-reserved", "prv0")
        self.assertEqual((data["free"], data["reserved"], data["in_use"]), (2, 1, 1))
        code, _out, err = await self.manage("pool-modify", "bridge", "--remove-reserved", "prv3")
        self.assertEqual(code, 1)
        self.assertIn("not reserved", err)
        code, _out, err = await self.manage("pool-modify", "bridge", "--add-reserved", "eth0")
        self.assertEqual(code, 2)
        await self.manageJSON("pool-create", "--type", "mac-prefix", "--base", "aa:00:0", "--size", "4")
        code, _out, err = await self.manage("pool-modify", "mac-prefix", "--remove-reserved", "aa:00:0")
        self.assertEqual(code, 1)
        self.assertIn("must stay reserved", err)

    async def test_modifyIPPoolAndResize(self) -> None:
        """
        An IP pool's addresses are reserved by pool id; the bridge pool
        grows, and shrinks only over free values.
        """
        await self.manageJSON("network-create", "--flavor", "CUSTOM", "--public", "--subnet", "192.168.0.0/29")
        data = await self.manageJSON("pool-modify", "1", "--add-reserved", "192.168.0.2")
        self.assertEqual((data["free"], data["reserved"]), (4, 2))
        code, _out, err = await self.manage("pool-modify", "1", "--add-reserved", "10.0.0.1")
        self.assertEqual(code, 1)
        self.assertIn("in none of the pools", err)
        code, _out, err = await self.manage("pool-modify", "1", "--size", "9")
        self.assertEqual(code, 2)
        await self.manageJSON("pool-create", "--type", "bridge", "--base", "prv", "--size", "2")
        await self.manageJSON("pool-modify", "bridge", "--add-reserved", "prv0")
        await self.manageJSON("network-create", "--flavor", "PHYSICAL_VLAN", "--public")
        grown = await self.manageJSON("pool-modify", "bridge", "--size", "5")
        self.assertEqual((grown["size"], grown["free"], grown["reserved"], grown["in_use"]), (5, 3, 1, 1))
        code, _out, err = await self.manage("pool-modify", "bridge", "--size", "1")
        self.assertEqual(code, 1)
        self.assertIn("prv1 is in use", err)
        shrunk = await self.manageJSON("pool-modify", "bridge", "--size", "3")
        self.assertEqual((shrunk["size"], shrunk["free"]), (3, 1))
        code, _out, err = await self.manage("pool-modify", "bridge")
        self.assertEqual(code, 1)
        code, _out, err = await self.manage("pool-show", "vlan")
        self.assertEqual(code, 2)
        code, _out, err = await self.manage("pool-show", "7")
        self.assertEqual(code, 1)
