"""
Tests for L{dhcp.ifup}: the binding-file part of kvm-ifup-custom.
"""

from __future__ import annotations

import io
import os
import stat
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from dhcp import ifup
from dhcp.binding import parseBinding

ENV = {
    "INSTANCE": "snf-42",
    "INTERFACE": "tap7",
    "MAC": "AA:00:00:12:34:56",
    "IP": "192.0.2.10",
    "MODE": "routed",
    "LINK": "snf_public",
    "NETWORK_SUBNET": "192.0.2.0/24",
    "NETWORK_GATEWAY": "192.0.2.1",
    "NETWORK_SUBNET6": "2001:db8:7::/64",
    "NETWORK_GATEWAY6": "2001:db8:7::1",
    "NETWORK_TAGS": "ip-less-routed nfdhcpd",
    "TAGS": "synnefo:network:0:protected",
}


class IfupTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = Path(self.mktemp())

    def test_routed(self) -> None:
        """
        In routed mode INDEV is the tap; the file has snf-network's keys in
        its order, mode 0644, EUI64 computed, and parses as a binding.
        """
        path = ifup.ifup(ENV, self.dir)
        assert path is not None
        self.assertEqual(path, self.dir / "tap7")
        text = path.read_text()
        self.assertEqual(
            [line.split("=")[0] for line in text.splitlines()],
            ["INDEV", "IP", "MAC", "HOSTNAME", "TAGS", "GATEWAY", "SUBNET", "GATEWAY6", "SUBNET6", "EUI64"],
        )
        self.assertIn('TAGS="synnefo:network:0:protected"\n', text)
        self.assertEqual(stat.S_IMODE(path.stat().st_mode), 0o644)
        b = parseBinding("tap7", text)
        self.assertEqual((b.indev, b.hostname, str(b.ip)), ("tap7", "snf-42", "192.0.2.10"))
        self.assertEqual(str(b.eui64), "2001:db8:7:0:a800:ff:fe12:3456")
        self.assertEqual(os.listdir(self.dir), ["tap7"])

    def test_bridged(self) -> None:
        """
        In bridged mode INDEV is the bridge (LINK).
        """
        path = ifup.ifup({**ENV, "MODE": "bridged", "LINK": "br0"}, self.dir)
        assert path is not None
        self.assertEqual(parseBinding("tap7", path.read_text()).indev, "br0")

    def test_untagged(self) -> None:
        """
        Without the nfdhcpd network tag no file is written and a previous
        one is removed.
        """
        ifup.ifup(ENV, self.dir)
        self.assertIsNone(ifup.ifup({**ENV, "NETWORK_TAGS": "ip-less-routed"}, self.dir))
        self.assertEqual(os.listdir(self.dir), [])

    def test_errors(self) -> None:
        """
        A missing INTERFACE, a bad MAC, a path-like interface name and a
        bridged NIC without LINK are refused.
        """
        for env in (
            {**ENV, "INTERFACE": ""},
            {**ENV, "MAC": "x"},
            {**ENV, "INTERFACE": "../x"},
            {**ENV, "MODE": "bridged", "LINK": ""},
        ):
            self.assertRaises(ifup.IfupError, ifup.ifup, env, self.dir)

    def test_main(self) -> None:
        """
        Called as kvm-ifup-custom the script writes into $NFDHCPD_STATE_DIR;
        as kvm-ifdown-custom it removes; errors exit 1 with a message.
        """
        env = {**ENV, "NFDHCPD_STATE_DIR": str(self.dir)}
        with redirect_stdout(io.StringIO()):
            self.assertEqual(ifup.main(["/etc/ganeti/kvm-ifup-custom", "tap7"], env), 0)
        self.assertTrue((self.dir / "tap7").exists())
        self.assertEqual(ifup.main(["/etc/ganeti/kvm-ifdown-custom", "tap7"], env), 0)
        self.assertFalse((self.dir / "tap7").exists())
        with redirect_stdout(io.StringIO()):
            self.assertEqual(ifup.main(["snf-dhcp-ifup", "up", "--bindings-dir", str(self.dir)], ENV), 0)
        self.assertTrue((self.dir / "tap7").exists())
        err = io.StringIO()
        with redirect_stderr(err):
            self.assertEqual(ifup.main(["snf-dhcp-ifup", "up"], {**env, "MAC": "nope"}), 1)
        self.assertIn("not a MAC address", err.getvalue())

    def test_mainNeedsAction(self) -> None:
        """
        Under any other name the action must be given: usage error.
        """
        with redirect_stderr(io.StringIO()):
            for name in ("snf-dhcp-ifup", "/x/dhcp/ifup.py"):
                error = self.assertRaises(SystemExit, ifup.main, [name], {**ENV, "NFDHCPD_STATE_DIR": str(self.dir)})
                self.assertEqual(error.code, 2)
        self.assertFalse(self.dir.exists())
