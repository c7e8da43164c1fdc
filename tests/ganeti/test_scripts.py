"""
Tests for the Ganeti-side scripts: C{snf-ganeti-hook}
(L{synnefo_twisted.ganeti.hook}) and C{snf-progress-monitor}
(L{synnefo_twisted.ganeti.progress}).
"""

from __future__ import annotations

import io
import os
import time
from typing import Any

from twisted.internet import reactor  # tests only: the unreachable-broker case uses real sockets
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase, TestCase

from synnefo_twisted.bus.memory import MemoryBus
from synnefo_twisted.ganeti import hook
from synnefo_twisted.ganeti.progress import ProgressMonitor, StreamDecoder
from tests.ganeti.samples import sampleBytes
from tests.ganeti.watcherkit import FlakyBus, tapBus


def sampleEnv() -> dict[str, str]:
    env = {}
    for line in sampleBytes("instance-add-post.env").decode().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    return env


class HookTests(SynchronousTestCase):
    def test_nicsFromRealEnvironment(self) -> None:
        """
        The NICs come from Ganeti's GANETI_INSTANCE_NIC<i>_* variables as a real instance-add post hook received them.
        """
        (nic,) = hook.nicsFromEnv(sampleEnv())
        self.assertEqual(
            {k: nic[k] for k in ("index", "mac", "ip", "mode", "link", "network", "uuid")},
            {
                "index": 0,
                "mac": "aa:00:00:3b:6d:a2",
                "ip": None,
                "mode": "bridged",
                "link": "gnt-br0",
                "network": None,
                "uuid": "4efc4b0e-7c8f-4b15-b7c7-e5e6c911998e",
            },
        )

    def test_firewallAndIPv6(self) -> None:
        """
        The firewall profile comes from the instance tags by NIC name or index; NIC 0 gets its EUI-64 address when a prefix is set.
        """
        env = sampleEnv()
        env.update(
            {
                "GANETI_INSTANCE_NIC_COUNT": "2",
                "GANETI_INSTANCE_NIC0_NAME": "snf-nic-7",
                "GANETI_INSTANCE_NIC1_MAC": "aa:00:00:00:00:02",
                "GANETI_INSTANCE_NIC1_NETWORK_NAME": "snf-net-3",
                "GANETI_INSTANCE_NIC1_IP": "10.0.0.5",
                "GANETI_INSTANCE_TAGS": "synnefo:network:snf-nic-7:protected synnefo:network:1:limited demo",
            }
        )
        nics = hook.nicsFromEnv(env, "2001:db8:1::/64")
        self.assertEqual([n.get("firewall") for n in nics], ["protected", "limited"])
        self.assertEqual(nics[0]["ipv6"], "2001:db8:1:0:a800:ff:fe3b:6da2")
        self.assertEqual((nics[1]["network"], nics[1]["ip"]), ("snf-net-3", "10.0.0.5"))
        self.assertNotIn("ipv6", nics[1])
        self.assertIsNone(hook.mac2eui64("zz", "2001:db8::/64"))

    def test_message(self) -> None:
        """
        A post hook of add/modify/reboot/start gives a ganeti-net-status message on ganeti.<prefix>.event.net; pre hooks and stop give none.
        """
        env = dict(sampleEnv(), GANETI_INSTANCE_NAME="snf-42")
        key, body = hook.netStatusMessage(env, 1000.5) or ("", {})
        self.assertEqual(key, "ganeti.snf.event.net")
        self.assertEqual(
            (body["type"], body["instance"], body["operation"]), ("ganeti-net-status", "snf-42", "OP_INSTANCE_CREATE")
        )
        self.assertEqual(body["event_time"], [1000, 500000])
        self.assertEqual(len(body["nics"]), 1)
        self.assertIsNone(hook.netStatusMessage(dict(env, GANETI_HOOKS_PHASE="pre"), 0))
        self.assertIsNone(hook.netStatusMessage(dict(env, GANETI_HOOKS_PATH="instance-stop"), 0))
        self.assertIsNone(hook.netStatusMessage({"GANETI_HOOKS_PHASE": "post", "GANETI_HOOKS_PATH": "instance-add"}, 0))

    def test_master(self) -> None:
        """
        The hook only acts where GANETI_MASTER names this host.
        """
        self.assertTrue(hook.isMaster({}))
        self.assertFalse(hook.isMaster({"GANETI_MASTER": "some-other-node.invalid"}))

    def test_install(self) -> None:
        """
        install links the hook into the five post hook directories, idempotently; uninstall removes them; bad names are refused.
        """
        hooks = FilePath(self.mktemp())
        made = hook.installHooks(hooks.path, "/usr/bin/snf-ganeti-hook")
        self.assertEqual(len(made), 5)
        self.assertEqual(
            os.readlink(hooks.child("instance-add-post.d").child("snf-ganeti-hook").path), "/usr/bin/snf-ganeti-hook"
        )
        self.assertEqual(hook.installHooks(hooks.path, "/usr/bin/snf-ganeti-hook"), [])
        self.assertEqual(len(hook.installHooks(hooks.path, "/opt/snf-ganeti-hook")), 5)
        self.assertEqual(len(hook.uninstallHooks(hooks.path)), 5)
        self.assertRaises(ValueError, hook.installHooks, hooks.path, "/x", "bad.name")


class HookRunTests(TestCase):
    def config(self, url: str) -> dict[str, str]:
        path = FilePath(self.mktemp())
        path.setContent(f'[bus]\nurl = "{url}"\n'.encode())
        return dict(sampleEnv(), GANETI_MASTER="", SNF_CONFIG=path.path)

    async def test_unreachableBus(self) -> None:
        """
        With the broker unreachable the hook gives up after bounded retries, says so on stderr, and exits 0 quickly.
        """
        stderr = io.StringIO()
        started = time.monotonic()
        code = await hook.runHook(
            reactor, self.config("amqp://guest:guest@127.0.0.1:9/x"), stderr, attempts=2, timeout=0.5
        )
        self.assertEqual(code, 0)
        self.assertLess(time.monotonic() - started, 5)
        self.assertIn("bus unreachable after 2 attempts", stderr.getvalue())
        self.assertIn("NIC state of demo1.ganeti.lab not published", stderr.getvalue())

    async def test_memoryBus(self) -> None:
        """
        A node configured with the in-process bus cannot be reached from a hook: it says so and exits 0.
        """
        stderr = io.StringIO()
        self.assertEqual(await hook.runHook(reactor, self.config("memory://"), stderr), 0)
        self.assertIn("memory://", stderr.getvalue())

    async def test_badConfig(self) -> None:
        """
        An unreadable configuration is reported on stderr, and the hook still exits 0.
        """
        stderr = io.StringIO()
        env = dict(sampleEnv(), GANETI_MASTER="", SNF_CONFIG="/nonexistent/synnefo.toml")
        self.assertEqual(await hook.runHook(reactor, env, stderr), 0)
        self.assertIn("cannot read the configuration", stderr.getvalue())


class DecoderTests(SynchronousTestCase):
    def test_chunking(self) -> None:
        """
        Concatenated objects are split correctly whatever the chunking, including split UTF-8 characters.
        """
        stream = '{"type": "image-info", "messages": ["ok"]}{"type":"image-copy-progress","progress":42}\n {"type": "image-warning", "messages": "λ"}'.encode()
        garbage: list[str] = []
        decoder = StreamDecoder(garbage.append)
        objects: list[Any] = []
        for i in range(len(stream)):
            objects.extend(decoder.feed(stream[i : i + 1]))
        self.assertEqual([o["type"] for o in objects], ["image-info", "image-copy-progress", "image-warning"])
        self.assertEqual(objects[2]["messages"], "λ")
        self.assertEqual((garbage, decoder.leftover()), ([], ""))

    def test_garbage(self) -> None:
        """
        Garbage between objects is reported and skipped; a truncated tail stays as leftover.
        """
        garbage: list[str] = []
        decoder = StreamDecoder(garbage.append)
        objects = list(decoder.feed(b'noise {"type": "image-info"} {"type": "image-er'))
        self.assertEqual(objects, [{"type": "image-info"}])
        self.assertEqual(garbage, ["noise "])
        self.assertEqual(decoder.leftover(), '{"type": "image-er')


class MonitorTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.bus = MemoryBus(self.reactor)
        self.bus.startService()
        self.tap = self.successResultOf(Deferred.fromCoroutine(tapBus(self.bus)))
        self.stderr = io.StringIO()

    def test_publishesAsItReads(self) -> None:
        """
        Each object is published as soon as it is read, with instance and event_time, on ganeti.<prefix>.event.progress; the end gives exit 0.
        """
        monitor = ProgressMonitor(self.reactor, self.bus, "snf-9", self.stderr, clock=lambda: 77.25)
        monitor.dataReceived(b'{"type": "image-copy-progress", "progress": 10}')
        self.reactor.advance(0)
        self.assertEqual(len(self.tap.messages), 1)
        monitor.dataReceived(b'{"type": "image-helper", "subtype": "task-start", "task": "FixPartitionTable"}[1, 2]')
        monitor.connectionLost()
        self.reactor.advance(0)
        self.assertEqual(self.successResultOf(monitor.finished), 0)
        keys = {k for k, _ in self.tap.messages}
        self.assertEqual(keys, {"ganeti.snf.event.progress"})
        first, second = (b for _, b in self.tap.messages)
        self.assertEqual((first["instance"], first["progress"], first["event_time"]), ("snf-9", 10, [77, 250000]))
        self.assertEqual(second["subtype"], "task-start")
        self.assertIn('[MONITOR] {"type": "image-copy-progress"', self.stderr.getvalue())
        self.assertIn("ignored malformed input", self.stderr.getvalue())

    def test_busDown(self) -> None:
        """
        When publishes fail the monitor still reads to the end, then says what was not published and exits 1.
        """
        flaky = FlakyBus(self.bus)
        monitor = ProgressMonitor(self.reactor, flaky, "snf-9", self.stderr)
        flaky.down = True
        monitor.dataReceived(b'{"type": "image-info", "messages": "a"}{"type": "image-info", "messages": "b"}')
        monitor.connectionLost()
        self.assertEqual(self.successResultOf(monitor.finished), 1)
        self.assertIn("2 of 2 messages for snf-9 not published", self.stderr.getvalue())

    def test_noConfirmation(self) -> None:
        """
        Publishes that never settle are given up after the settle timeout.
        """

        class Silent(FlakyBus):
            def publish(self, *args: Any, **kwargs: Any) -> Deferred[None]:
                return Deferred()

        monitor = ProgressMonitor(self.reactor, Silent(self.bus), "snf-9", self.stderr, settleTimeout=2)
        monitor.dataReceived(b'{"type": "image-info"}')
        monitor.connectionLost()
        self.assertNoResult(monitor.finished)
        self.reactor.advance(2)
        self.assertEqual(self.successResultOf(monitor.finished), 1)
        self.assertIn("no confirmation within 2", self.stderr.getvalue())
