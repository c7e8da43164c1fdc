"""
The watcher end to end: a real job queue (the real Ganeti cluster's or the
simulator's) watched with inotify, the lifecycle create → shutdown →
startup → reboot → modify (add NIC) → remove and network add → connect →
disconnect → remove driven through RAPI, and the messages checked as they
come off a bus.
"""

from __future__ import annotations

import json
import time
from typing import Any

from twisted.internet import reactor  # tests only: inotify and sockets need the real reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.python.filepath import FilePath

from synnefo_twisted.bus.topology import Binding, Exchange, Queue, Topology
from synnefo_twisted.ganeti import jobfile
from synnefo_twisted.ganeti.details import DetailsSource
from synnefo_twisted.ganeti.published import PublishedState
from synnefo_twisted.ganeti.rapi import RapiClient
from synnefo_twisted.ganeti.watcher import JobQueueWatcher
from tests.ganeti.rapi_contract import ClusterEnv, uniqueId

_ORDER = ["queued", "waiting", "running", "success"]


class Collector:
    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any], float]] = []

    def __call__(self, message: Any) -> None:
        self.messages.append((message.routingKey, json.loads(message.body), time.time()))
        message.ack()

    def forJob(self, jobId: int) -> list[dict[str, Any]]:
        return [b for _, b, _ in self.messages if b.get("jobId") == jobId]


class WatcherHarness:
    """
    Subclasses set, in C{setUp}: C{self.bus} (a started IMessageBus),
    C{self.client} (write RapiClient), C{self.env}, C{self.queueDir},
    C{self.dataDir}, C{self.nodeName}, C{self.clusterName} and
    C{self.detailsSource}.
    """

    bus: Any
    client: RapiClient
    env: ClusterEnv
    queueDir: FilePath[str]
    dataDir: FilePath[str]
    nodeName: str
    clusterName: str
    detailsSource: DetailsSource
    tapPrefix = "watcher-test"

    assertEqual: Any
    assertIn: Any
    assertTrue: Any
    assertLessEqual: Any
    addCleanup: Any
    mktemp: Any
    fail: Any

    async def startWatcher(self, bindingKey: str = "ganeti.snf.#") -> tuple[JobQueueWatcher, Collector]:
        name = f"{self.tapPrefix}-{uniqueId()}-{int(time.time() * 1000) % 100000}"
        await self.bus.declare(
            Topology(
                exchanges=(Exchange("ganeti", "topic", True),),
                queues=(Queue(name, durable=False, autoDelete=True),),
                bindings=(Binding(name, "ganeti", bindingKey),),
            )
        )
        collector = Collector()
        consumer = await self.bus.consume(name, collector)
        self.addCleanup(consumer.stop)
        watcher = JobQueueWatcher(
            reactor,
            self.bus,
            self.queueDir,
            PublishedState(FilePath(self.mktemp())),
            dataDir=self.dataDir,
            details=self.detailsSource,
            nodeName=self.nodeName,
            rescanInterval=3600,
        )
        await watcher.startService()
        self.addCleanup(watcher.stopService)
        return watcher, collector

    async def waitFor(self, collector: Collector, jobs: list[int], timeout: float = 60.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if all(any(b["status"] in jobfile.FINALIZED for b in collector.forJob(j)) for j in jobs):
                return
            await deferLater(reactor, 0.05, lambda: None)
        missing = [j for j in jobs if not any(b["status"] in jobfile.FINALIZED for b in collector.forJob(j))]
        self.fail(f"no final message for jobs {missing} within {timeout}s")

    async def runJob(self, d: Deferred[int]) -> int:
        jobId = await d
        await self.client.waitForJob(jobId, timeout=self.env.jobTimeout)
        return jobId

    def checkJob(self, collector: Collector, jobId: int, operation: str, subject: str) -> dict[str, Any]:
        """
        The job's messages: statuses in Ganeti's order ending in success,
        non-decreasing event times, the final time being the op's end
        timestamp in the job file; returns the final message.
        """
        messages = collector.forJob(jobId)
        statuses = [m["status"] for m in messages]
        self.assertEqual(statuses[-1], "success", (operation, statuses))
        self.assertEqual(statuses, sorted(statuses, key=_ORDER.index), (operation, statuses))
        self.assertEqual(len(statuses), len(set(statuses)), (operation, statuses))
        times = [tuple(m["event_time"]) for m in messages]
        self.assertEqual(times, sorted(times), operation)
        final = messages[-1]
        job = jobfile.parseJobFile(self.queueDir.child(f"job-{jobId}").getContent())
        self.assertEqual(tuple(final["event_time"]), job.ops[0].end_timestamp, operation)
        self.assertEqual(final["operation"], operation)
        self.assertEqual(final.get("instance") or final.get("network"), subject)
        self.assertEqual(final["cluster"], self.clusterName)
        return final


class WatcherLifecycleMixin(WatcherHarness):
    async def test_lifecycle(self) -> None:
        """
        Each op of the instance and network lifecycles gives its message in order, with correct statuses, event times and, after create/startup/modify, the instance's NICs.
        """
        _watcher, collector = await self.startWatcher()
        n = uniqueId()
        net, inst, nic, nic2 = f"snf-net-{n}", f"snf-{n}", f"snf-nic-{n}", f"snf-nic-{n + 1}"
        cidr = f"10.{n % 200}.{n % 250}"
        steps: list[tuple[int, str, str]] = []

        async def step(d: Deferred[int], operation: str, subject: str) -> None:
            steps.append((await self.runJob(d), operation, subject))

        await step(self.client.createNetwork(net, f"{cidr}.0/24", gateway=f"{cidr}.1"), "OP_NETWORK_ADD", net)
        await step(
            self.client.connectNetwork(net, self.env.group, self.env.nicMode, self.env.nicLink),
            "OP_NETWORK_CONNECT",
            net,
        )
        create = self.client.createInstance(
            inst,
            self.env.diskTemplate,
            [{"size": 32, "name": f"snf-vol-{n}"}],
            [{"name": nic, "network": net, "ip": "pool"}],
            os=self.env.osType,
            pnode=self.env.pnode,
            hypervisor=self.env.hypervisor,
            beparams={"maxmem": 128, "minmem": 128, "vcpus": 1},
            ip_check=False,
            name_check=False,
            wait_for_sync=False,
            tags=[f"synnefo:network:{nic}:protected"],
        )
        await step(create, "OP_INSTANCE_CREATE", inst)
        record = await self.client.getInstance(inst)
        await step(self.client.shutdownInstance(inst, timeout=0), "OP_INSTANCE_SHUTDOWN", inst)
        await step(self.client.startupInstance(inst), "OP_INSTANCE_STARTUP", inst)
        await step(self.client.rebootInstance(inst, "hard", shutdownTimeout=0), "OP_INSTANCE_REBOOT", inst)
        await step(
            self.client.modifyInstance(inst, nics=[["add", -1, {"name": nic2, "network": net, "ip": "pool"}]]),
            "OP_INSTANCE_SET_PARAMS",
            inst,
        )
        await step(self.client.deleteInstance(inst, shutdownTimeout=0), "OP_INSTANCE_REMOVE", inst)
        await step(self.client.disconnectNetwork(net, self.env.group), "OP_NETWORK_DISCONNECT", net)
        await step(self.client.deleteNetwork(net), "OP_NETWORK_REMOVE", net)
        await self.waitFor(collector, [j for j, _, _ in steps])

        finals = {}
        for jobId, operation, subject in steps:
            finals[operation + subject] = self.checkJob(collector, jobId, operation, subject)
        order = [
            next(i for i, (_, b, _) in enumerate(collector.messages) if b["jobId"] == j and b["status"] == "success")
            for j, _, _ in steps
        ]
        self.assertEqual(order, sorted(order), "final messages out of job order")

        created = finals["OP_INSTANCE_CREATE" + inst]
        self.assertEqual(created["type"], "ganeti-op-status")
        self.assertEqual(created["tags"], [f"synnefo:network:{nic}:protected"])
        (createdNic,) = created["instance_nics"]
        self.assertEqual(createdNic["name"], nic)
        self.assertEqual(createdNic["network"], net)
        self.assertEqual(createdNic["ip"], record["nic.ips"][0])
        self.assertEqual(createdNic["mac"], record["nic.macs"][0])
        self.assertEqual(createdNic["firewall"], "protected")
        self.assertEqual(created["instance_disks"][0]["name"], f"snf-vol-{n}")
        self.assertIn("instance_nics", finals["OP_INSTANCE_STARTUP" + inst])
        self.assertTrue("instance_nics" not in finals["OP_INSTANCE_SHUTDOWN" + inst])
        modified = finals["OP_INSTANCE_SET_PARAMS" + inst]
        self.assertEqual([x["name"] for x in modified["instance_nics"]], [nic, nic2])
        self.assertEqual(modified["job_fields"]["nics"][0][0], "add")
        added = finals["OP_NETWORK_ADD" + net]
        self.assertEqual(added["type"], "ganeti-network-status")
        self.assertEqual((added["job_fields"]["subnet"], added["job_fields"]["gateway"]), (f"{cidr}.0/24", f"{cidr}.1"))
        self.assertEqual(finals["OP_NETWORK_CONNECT" + net]["job_fields"]["group_name"], self.env.group)
        keys = {k for k, b, _ in collector.messages if b["jobId"] in {j for j, _, _ in steps}}
        self.assertEqual(keys, {"ganeti.snf.event.op", "ganeti.snf.event.network"})


class WatcherRestartMixin(WatcherHarness):
    async def test_restartCatchesUp(self) -> None:
        """
        Jobs that finish while the watcher is stopped are published after it starts again, and nothing is published twice.
        """
        watcher, collector = await self.startWatcher()
        state = watcher.state
        n = uniqueId()
        net = f"snf-net-{n}"
        first = await self.runJob(self.client.createNetwork(net, f"10.{n % 200}.{n % 250}.0/24"))
        self.addCleanup(lambda: self.client.deleteNetwork(net))
        await self.waitFor(collector, [first])
        await watcher.stopService()
        second = await self.runJob(self.client.connectNetwork(net, self.env.group, self.env.nicMode, self.env.nicLink))
        third = await self.runJob(self.client.disconnectNetwork(net, self.env.group))
        watcher2 = JobQueueWatcher(
            reactor,
            self.bus,
            self.queueDir,
            PublishedState(state.path),
            dataDir=self.dataDir,
            details=self.detailsSource,
            nodeName=self.nodeName,
            rescanInterval=3600,
        )
        await watcher2.startService()
        self.addCleanup(watcher2.stopService)
        await self.waitFor(collector, [second, third])
        await watcher2.whenIdle(5)
        await deferLater(reactor, 0.2, lambda: None)
        self.assertEqual([b["status"] for b in collector.forJob(first)].count("success"), 1)
        self.assertEqual([b["status"] for b in collector.forJob(second)], ["success"])
        self.assertEqual([b["status"] for b in collector.forJob(third)], ["success"])


class WatcherHeartbeatMixin(WatcherHarness):
    async def test_heartbeat(self) -> None:
        """
        The dispatcher's status-check probe (a dry-run cluster tag snf:eventd:heartbeat:...) gives exactly one eventd-heartbeat naming the cluster.
        """
        _watcher, collector = await self.startWatcher("eventd.heartbeat")
        jobId = await self.runJob(self.client.addClusterTags([f"snf:eventd:heartbeat:test:{uniqueId()}"], dryRun=True))
        deadline = time.time() + 30
        while time.time() < deadline and not collector.forJob(jobId):
            await deferLater(reactor, 0.05, lambda: None)
        await deferLater(reactor, 0.3, lambda: None)
        beats = collector.forJob(jobId)
        self.assertEqual(len(beats), 1, beats)
        self.assertEqual((beats[0]["type"], beats[0]["cluster"]), ("eventd-heartbeat", self.clusterName))
        self.assertEqual({k for k, b, _ in collector.messages if b["jobId"] == jobId}, {"eventd.heartbeat"})
