"""
The Ganeti-side scripts against the real things: C{snf-ganeti-hook}
installed (by symlink) in the real cluster's hook directories publishes the
NICs of a created instance to RabbitMQ; C{snf-progress-monitor} run as a
process publishes snf-image's stream to RabbitMQ.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from twisted.internet import reactor  # tests only: real services
from twisted.internet.task import deferLater
from twisted.python.filepath import FilePath

from synnefo_twisted.bus import openBus
from synnefo_twisted.bus.topology import Binding, Exchange, Queue, Topology
from synnefo_twisted.ganeti import hook
from tests.ganeti.rapi_contract import ClusterEnv, RapiHelpers, uniqueId
from tests.integration.ganeti import realcluster
from tests.integration.ganeti.test_rapi_real import QuiescingTestCase, realClient
from tests.integration.realservices import AMQP_URL

REPO = FilePath(__file__).parent().parent().parent().parent()


class Collector:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, message: Any) -> None:
        self.bodies.append(json.loads(message.body))
        message.ack()


class ScriptTestsBase(QuiescingTestCase):
    timeout = 120

    async def setUp(self) -> None:  # type: ignore[override]
        QuiescingTestCase.setUp(self)
        self.bus = openBus(AMQP_URL, reactor)
        await self.bus.startService()
        self.addCleanup(self.bus.stopService)
        self.configFile = FilePath(self.mktemp())
        self.configFile.setContent(f'[bus]\nurl = "{AMQP_URL}"\n'.encode())

    async def tap(self, key: str) -> Collector:
        name = f"scripts-test-{os.getpid()}-{uniqueId()}"
        await self.bus.declare(
            Topology(
                exchanges=(Exchange("ganeti", "topic", True),),
                queues=(Queue(name, durable=False, autoDelete=True),),
                bindings=(Binding(name, "ganeti", key),),
            )
        )
        collector = Collector()
        consumer = await self.bus.consume(name, collector)
        self.addCleanup(consumer.stop)
        return collector

    async def until(self, predicate: Any, timeout: float = 30.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate():
                return
            await deferLater(reactor, 0.05, lambda: None)
        self.fail("condition not met within the timeout")


class HookOnRealClusterTests(RapiHelpers, ScriptTestsBase):
    async def setUp(self) -> None:  # type: ignore[override]
        await super().setUp()
        if not FilePath(realcluster.DATA_DIR).child("config.data").exists():
            self.fail(realcluster.MISSING)
        self.client = realClient(realcluster.USER, realcluster.PASSWORD)
        self.env = ClusterEnv(pnode=realcluster.NODE)
        wrapper = FilePath(self.mktemp())
        wrapper.setContent(
            (
                "#!/bin/sh\n"
                "# snf-ganeti-hook for the test cluster: Ganeti runs hooks with a clean environment\n"
                f"SNF_CONFIG={self.configFile.path} exec {sys.executable} -m synnefo_twisted.ganeti.hook\n"
            ).encode()
        )
        wrapper.chmod(0o755)
        self.hookName = f"snf-ganeti-hook-test-{os.getpid()}"
        hook.installHooks(realcluster.HOOKS_DIR, wrapper.path, self.hookName)
        self.addCleanup(hook.uninstallHooks, realcluster.HOOKS_DIR, self.hookName)

    async def test_hookPublishesNics(self) -> None:
        """
        Creating and starting an instance runs the installed hook, which publishes the instance's NICs (name, MAC, IP, network, link, firewall) as Ganeti reports them.
        """
        collector = await self.tap("ganeti.snf.event.net")
        n = uniqueId()
        net = await self.makeNetwork(n)
        name = await self.makeInstance(
            n, [{"name": f"snf-nic-{n}", "network": net, "ip": "pool"}], tags=[f"synnefo:network:snf-nic-{n}:limited"]
        )
        await self.until(lambda: any(b["instance"] == name for b in collector.bodies))
        record = await self.client.getInstance(name)
        body = next(b for b in collector.bodies if b["instance"] == name)
        self.assertEqual(
            (body["type"], body["operation"], body["cluster"]),
            ("ganeti-net-status", "OP_INSTANCE_CREATE", "cluster.ganeti.lab"),
        )
        (nic,) = body["nics"]
        self.assertEqual(nic["mac"], record["nic.macs"][0])
        self.assertEqual(nic["ip"], record["nic.ips"][0])
        self.assertEqual(nic["network"], net)
        self.assertEqual(nic["link"], record["nic.links"][0])
        self.assertEqual(nic["firewall"], "limited")
        await self.wait(self.client.rebootInstance(name, "hard", shutdownTimeout=0))
        await self.until(
            lambda: (
                [b["operation"] for b in collector.bodies if b["instance"] == name]
                == ["OP_INSTANCE_CREATE", "OP_INSTANCE_REBOOT"]
            )
        )


class ProgressMonitorProcessTests(ScriptTestsBase):
    async def test_monitorProcess(self) -> None:
        """
        snf-progress-monitor, run as a process fed snf-image's stream, publishes each object to ganeti.snf.event.progress and exits 0.
        """
        collector = await self.tap("ganeti.snf.event.progress")
        instance = f"snf-{uniqueId()}"
        stream = b'{"type": "image-copy-progress", "progress": 5}{"type": "image-copy-progress", "progress": 100}\n{"type": "image-info", "messages": ["done"]}'
        result = await deferToProcess(
            [sys.executable, "-m", "synnefo_twisted.ganeti.progress", instance],
            stream,
            dict(os.environ, SNF_CONFIG=self.configFile.path),
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(b"[MONITOR]", result.stderr)
        await self.until(lambda: len([b for b in collector.bodies if b["instance"] == instance]) == 3)
        mine = [b for b in collector.bodies if b["instance"] == instance]
        self.assertEqual([b.get("progress") for b in mine], [5, 100, None])
        self.assertEqual(mine[2]["type"], "image-info")

    async def test_monitorUnreachableBus(self) -> None:
        """
        With the broker unreachable the monitor still reads all its input, then reports what it could not publish and exits 1.
        """
        config = FilePath(self.mktemp())
        config.setContent(b'[bus]\nurl = "amqp://guest:guest@127.0.0.1:9/x"\n')
        result = await deferToProcess(
            [sys.executable, "-m", "synnefo_twisted.ganeti.progress", "snf-1"],
            b'{"type": "image-info", "messages": "x"}' * 200,
            dict(os.environ, SNF_CONFIG=config.path),
        )
        self.assertEqual(result.returncode, 1)
        self.assertIn(b"200 of 200 messages for snf-1 not published", result.stderr)


async def deferToProcess(argv: list[str], stdin: bytes, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    from twisted.internet.threads import deferToThread

    return await deferToThread(subprocess.run, argv, input=stdin, env=env, capture_output=True, timeout=60, cwd="/")
