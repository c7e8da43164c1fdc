"""
Tests for L{dhcp.binding}: the file format, the store and the inotify
watcher (against the kernel's inotify, on the real reactor).
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import defer, task
from twisted.internet import reactor as real_reactor  # tests only: real inotify needs the real reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from dhcp.binding import Binding, BindingError, BindingStore, BindingWatcher, isBindingName, parseBinding
from tests.dhcp.helpers import ROUTED


class ParseTests(SynchronousTestCase):
    def test_full(self) -> None:
        """
        Every key snf-network writes is parsed; TAGS is tolerated and the
        EUI64 kept for information.
        """
        b = parseBinding("tap1", ROUTED)
        self.assertEqual(b.tap, "tap1")
        self.assertEqual(b.indev, "tap1")
        self.assertTrue(b.routed)
        self.assertEqual(b.mac, bytes.fromhex("020000000101"))
        self.assertEqual(b.ip, ipaddress.IPv4Address("192.0.2.10"))
        self.assertEqual(b.subnet, ipaddress.IPv4Network("192.0.2.0/24"))
        self.assertEqual(b.gateway, ipaddress.IPv4Address("192.0.2.1"))
        self.assertEqual(b.subnet6, ipaddress.IPv6Network("2001:db8:1::/64"))
        self.assertEqual(b.gateway6, ipaddress.IPv6Address("2001:db8:1::1"))
        self.assertEqual(b.eui64, ipaddress.IPv6Address("2001:db8:1::ff:fe00:101"))
        self.assertEqual(b.hostname, "vm1.test.example")
        self.assertFalse(b.macSpoof)
        self.assertFalse(b.private)
        self.assertIsNone(b.mtu)

    def test_minimal(self) -> None:
        """
        Only MAC and HOSTNAME are required; empty values mean unset; INDEV
        defaults to the tap; flags are set by any non-empty value; quotes
        and unknown keys are tolerated; MTU is an integer.
        """
        b = parseBinding(
            "tap9",
            'MAC=02:00:00:00:09:09\nHOSTNAME="snf-9"\nIP=\nINDEV=br0\nMACSPOOF=1\nPRIVATE=yes\nMTU=1400\nBRIDGE=br0\nFOO=bar\n',
        )
        self.assertEqual(
            b,
            Binding(
                tap="tap9",
                mac=bytes.fromhex("020000000909"),
                hostname="snf-9",
                indev="br0",
                macSpoof=True,
                private=True,
                mtu=1400,
            ),
        )
        self.assertFalse(b.routed)

    def test_errors(self) -> None:
        """
        Missing MAC or HOSTNAME, malformed values, an IP outside its subnet
        or without one, an absurd MTU and a line without '=' are errors
        that say what is wrong.
        """
        cases = {
            "HOSTNAME=a\n": "MAC is missing",
            "MAC=02:00:00:00:01:01\n": "HOSTNAME is missing",
            "MAC=nope\nHOSTNAME=a\n": "MAC=",
            "MAC=02:00:00:00:01:01\nHOSTNAME=a\nIP=1.2.3\nSUBNET=1.2.3.0/24\n": "IP=",
            "MAC=02:00:00:00:01:01\nHOSTNAME=a\nIP=10.0.0.1\nSUBNET=192.0.2.0/24\n": "not in SUBNET",
            "MAC=02:00:00:00:01:01\nHOSTNAME=a\nIP=10.0.0.1\n": "SUBNET is missing",
            "MAC=02:00:00:00:01:01\nHOSTNAME=a\nMTU=70000\n": "MTU",
            "MAC=02:00:00:00:01:01\nHOSTNAME=a\nSUBNET6=zz::/64\n": "SUBNET6=",
            "MAC=02:00:00:00:01:01\nHOSTNAME=a\ngarbage\n": "line 3",
        }
        for text, message in cases.items():
            error = self.assertRaises(BindingError, parseBinding, "tap1", text)
            self.assertIn(message, str(error))

    @given(st.text(max_size=300))
    def test_garbage(self, text: str) -> None:
        """
        Any text either parses or raises BindingError, nothing else.
        """
        try:
            parseBinding("tap1", text)
        except BindingError:
            pass

    def test_names(self) -> None:
        """
        Hidden, temporary and editor backup files are not bindings.
        """
        self.assertTrue(isBindingName("tap1"))
        for name in ("", ".tap1.tmp", "tap1~", "tap1.tmp", "tap1.swp"):
            self.assertFalse(isBindingName(name))


class StoreTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = Path(self.mktemp())
        self.dir.mkdir()
        self.changes: list[tuple[str, Binding | None]] = []
        self.store = BindingStore(self.dir, onChange=lambda tap, b: self.changes.append((tap, b)))

    def test_rescan(self) -> None:
        """
        A rescan loads every valid file, skips temporaries, logs and skips
        malformed ones, and forgets bindings whose file is gone.
        """
        (self.dir / "tap1").write_text(ROUTED)
        (self.dir / ".tap2.tmp").write_text(ROUTED)
        (self.dir / "tap3").write_text("HOSTNAME=x\n")
        self.store.rescan()
        self.assertEqual([b.tap for b in self.store], ["tap1"])
        self.assertEqual(self.store.errors, 1)
        (self.dir / "tap1").unlink()
        self.store.rescan()
        self.assertEqual(len(self.store), 0)
        self.assertEqual([tap for tap, _ in self.changes], ["tap1", "tap1"])
        self.assertIsNone(self.changes[-1][1])

    def test_malformedRemovesUntilFixed(self) -> None:
        """
        Rewriting a binding with garbage removes it (the old values are no
        longer what the file says); fixing the file brings it back.
        """
        path = self.dir / "tap1"
        path.write_text(ROUTED)
        self.store.load("tap1")
        generation = self.store.generation
        path.write_text("MAC=02:00:00:00:01:01\n")
        self.assertIsNone(self.store.load("tap1"))
        self.assertIsNone(self.store.get("tap1"))
        self.assertGreater(self.store.generation, generation)
        path.write_text(ROUTED)
        self.assertIsNotNone(self.store.load("tap1"))

    def test_unchangedIsNoChange(self) -> None:
        """
        Reloading an identical file changes nothing (no generation bump, no
        callback), so caches stay warm.
        """
        (self.dir / "tap1").write_text(ROUTED)
        self.store.load("tap1")
        generation = self.store.generation
        self.store.load("tap1")
        self.assertEqual(self.store.generation, generation)
        self.assertEqual(len(self.changes), 1)

    def test_unreadableDirectory(self) -> None:
        """
        A missing directory is logged and leaves an empty store.
        """
        store = BindingStore(self.dir / "missing")
        store.rescan()
        self.assertEqual(len(store), 0)


class WatcherTests(TestCase):
    """
    The inotify watcher against the kernel, on the real reactor.
    """

    def setUp(self) -> None:
        self.dir = Path(self.mktemp())
        self.dir.mkdir()
        (self.dir / "tap0").write_text(ROUTED)
        self.store = BindingStore(self.dir)
        self.watcher = BindingWatcher(self.store, real_reactor, rescanPeriod=0)
        self.watcher.start()
        self.addCleanup(self.watcher.stop)

    @defer.inlineCallbacks
    def waitFor(self, condition, timeout: float = 5.0):
        for _ in range(int(timeout / 0.02)):
            if condition():
                return
            yield task.deferLater(real_reactor, 0.02, lambda: None)
        self.fail("condition not reached")

    @defer.inlineCallbacks
    def test_lifecycle(self):
        """
        The initial scan loads existing files; an atomic write (temporary +
        rename) adds a binding, an in-place rewrite replaces it, a
        malformed rewrite removes it and a delete forgets it.
        """
        self.assertIsNotNone(self.store.get("tap0"))
        tmp = self.dir / ".tap1.tmp"
        tmp.write_text(ROUTED)
        os.replace(tmp, self.dir / "tap1")
        yield self.waitFor(lambda: self.store.get("tap1") is not None)
        (self.dir / "tap1").write_text(ROUTED.replace("192.0.2.10", "192.0.2.11"))
        yield self.waitFor(lambda: str(self.store.get("tap1").ip) == "192.0.2.11")  # type: ignore[union-attr]
        (self.dir / "tap1").write_text("MAC=broken\n")
        yield self.waitFor(lambda: self.store.get("tap1") is None)
        (self.dir / "tap0").unlink()
        yield self.waitFor(lambda: self.store.get("tap0") is None)
        self.assertIsNone(self.store.get(".tap1.tmp"))

    @defer.inlineCallbacks
    def test_moveAway(self):
        """
        Moving a binding out of the directory forgets it.
        """
        os.replace(self.dir / "tap0", Path(self.mktemp()))
        yield self.waitFor(lambda: self.store.get("tap0") is None)
