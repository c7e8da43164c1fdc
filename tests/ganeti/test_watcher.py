"""
Tests for the job-queue watcher (L{synnefo_twisted.ganeti.watcher}) on a
deterministic clock with the in-process bus, fed real Ganeti 3.0 job files.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from synnefo_twisted.bus.memory import MemoryBus
from synnefo_twisted.ganeti.details import ConfigDataDetails, RapiDetails, detailsFromRecord
from synnefo_twisted.ganeti.published import PublishedState
from synnefo_twisted.ganeti.watcher import JobQueueWatcher
from synnefo_twisted.interfaces import IHealthReporter, IMessageBus
from tests.ganeti.samples import sampleBytes
from tests.ganeti.watcherkit import FlakyBus, Tap, makeDataDir, tapBus

LIFECYCLE = [
    ("job-3-create.queuefile.json", "demo1.ganeti.lab", "OP_INSTANCE_CREATE"),
    ("job-4-shutdown.queuefile.json", "demo1.ganeti.lab", "OP_INSTANCE_SHUTDOWN"),
    ("job-5-startup.queuefile.json", "demo1.ganeti.lab", "OP_INSTANCE_STARTUP"),
    ("job-6-reboot.queuefile.json", "demo1.ganeti.lab", "OP_INSTANCE_REBOOT"),
    ("job-8-delete.queuefile.json", "demo1.ganeti.lab", "OP_INSTANCE_REMOVE"),
    ("job-9-net-add.queuefile.json", "demonet", "OP_NETWORK_ADD"),
    ("job-10-net-connect.queuefile.json", "demonet", "OP_NETWORK_CONNECT"),
    ("job-11-create-net.queuefile.json", "demo2.ganeti.lab", "OP_INSTANCE_CREATE"),
    ("job-12-modify-addnic.queuefile.json", "demo2.ganeti.lab", "OP_INSTANCE_SET_PARAMS"),
]


def jobNumber(sample: str) -> int:
    return int(sample.split("-")[1])


class WatcherTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.bus = MemoryBus(self.reactor)
        self.bus.startService()
        self.tap: Tap = self.successResultOf(Deferred.fromCoroutine(tapBus(self.bus)))
        self.data = FilePath(self.mktemp())
        self.queue = makeDataDir(self.data)
        self.stateFile = FilePath(self.mktemp())

    def put(self, sample: str, content: bytes | None = None) -> None:
        self.queue.child(f"job-{jobNumber(sample)}").setContent(content if content is not None else sampleBytes(sample))

    def watcher(self, bus: Any = None, **kwargs: Any) -> JobQueueWatcher:
        w = JobQueueWatcher(
            self.reactor,
            bus or self.bus,
            self.queue,
            PublishedState(self.stateFile),
            nodeName=kwargs.pop("nodeName", "node1.ganeti.lab"),
            useInotify=False,
            **kwargs,
        )
        self.successResultOf(w.startService())
        return w

    def settle(self) -> None:
        for _ in range(5):
            self.reactor.advance(0)

    def stop(self, w: JobQueueWatcher) -> None:
        self.successResultOf(w.stopService())

    def test_interfaces(self) -> None:
        """
        The watcher reports health; the test bus double honours IMessageBus.
        """
        w = self.watcher()
        self.assertTrue(verifyObject(IHealthReporter, w))
        self.assertTrue(verifyObject(IMessageBus, FlakyBus(self.bus)))
        self.assertTrue(w.health().ok)
        self.stop(w)
        self.assertFalse(w.health().ok)

    def test_missingQueueDir(self) -> None:
        """
        A queue directory that does not exist stops the start with an error naming it.
        """
        w = JobQueueWatcher(
            self.reactor, self.bus, FilePath("/nonexistent/queue"), PublishedState(None), useInotify=False
        )
        e = self.assertRaises(FileNotFoundError, w.startService)
        self.assertIn("/nonexistent/queue", str(e))
        self.assertFalse(w.running)

    def test_rescanPublishesInOrder(self) -> None:
        """
        On start the queue directory is rescanned and every job's op becomes its message, in job order, with the cluster name.
        """
        for sample, _, _ in LIFECYCLE:
            self.put(sample)
        self.put("job-7-info.queuefile.json")
        w = self.watcher()
        self.settle()
        expected = [(name, op, jobNumber(sample), "success") for sample, name, op in LIFECYCLE]
        self.assertEqual(self.tap.summary(), expected)
        keys = [k for k, _ in self.tap.messages]
        self.assertEqual(keys[0], "ganeti.demo1.ganeti.lab.event.op")
        self.assertEqual(keys[5], "ganeti.demonet.event.network")
        self.assertEqual({b["cluster"] for _, b in self.tap.messages}, {"cluster.ganeti.lab"})
        self.stop(w)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_restartNeitherLosesNorFloods(self) -> None:
        """
        After a restart only what changed while the watcher was down is published.
        """
        self.put("job-3-create.queuefile.json")
        w = self.watcher()
        self.settle()
        self.stop(w)
        self.assertEqual(len(self.tap.messages), 1)
        self.put("job-4-shutdown.queuefile.json")
        w = self.watcher()
        self.settle()
        self.assertEqual([m[1] for m in self.tap.summary()], ["OP_INSTANCE_CREATE", "OP_INSTANCE_SHUTDOWN"])
        self.stop(w)

    def test_statusChanges(self) -> None:
        """
        Each new op status in a rewritten job file is published once; rewriting an unchanged status publishes nothing.
        """
        raw = sampleBytes("job-5-startup.queuefile.json")
        running = raw.replace(b'"status": "success"', b'"status": "running"')
        self.put("job-5-startup.queuefile.json", running)
        w = self.watcher()
        self.settle()
        self.put("job-5-startup.queuefile.json", running + b" ")
        w.fileChanged("job-5")
        self.settle()
        self.put("job-5-startup.queuefile.json", raw)
        w.fileChanged("job-5")
        self.settle()
        self.assertEqual([m[3] for m in self.tap.summary()], ["running", "success"])
        running_, success = (b for _, b in self.tap.messages)
        self.assertEqual(running_["event_time"], [1795313446, 514501])  # the op's exec_timestamp
        self.assertEqual(success["event_time"], [1795313446, 933599])  # the op's end_timestamp
        self.assertNotIn("instance_nics", running_)
        self.stop(w)

    def test_badInput(self) -> None:
        """
        Truncated, non-JSON, empty and vanished files, unknown ops and jobs with no instance are skipped with a logged reason; good files still go out.
        """
        good = sampleBytes("job-4-shutdown.queuefile.json")
        self.queue.child("job-1").setContent(good[:40])
        self.queue.child("job-2").setContent(b"\x00garbage")
        self.queue.child("job-5").setContent(b"")
        self.queue.child("job-6").setContent(
            b'{"id": 6, "ops": [{"input": {"OP_ID": "OP_NODE_ADD"}, "status": "success", "end_timestamp": [1, 0]}]}'
        )
        self.put("job-7-info.queuefile.json")
        self.queue.child("job-9").setContent(good.replace(b'"id": 4', b'"id": 9'))
        self.queue.child("not-a-job").setContent(b"x")
        w = self.watcher()
        w.fileChanged("job-404")
        self.settle()
        self.assertEqual(self.tap.summary(), [("demo1.ganeti.lab", "OP_INSTANCE_SHUTDOWN", 9, "success")])
        self.assertTrue(w.running)
        self.stop(w)

    def test_notMaster(self) -> None:
        """
        A watcher on a node that is not the master publishes nothing.
        """
        self.put("job-3-create.queuefile.json")
        w = self.watcher(nodeName="node2.ganeti.lab")
        self.settle()
        self.assertEqual(self.tap.messages, [])
        self.stop(w)

    def test_busDownKeepsWhatItOwes(self) -> None:
        """
        While the bus is down messages are kept; after it returns they are delivered once, in order, and health tells the story.
        """
        flaky = FlakyBus(self.bus)
        flaky.down = True
        for sample, _, _ in LIFECYCLE[:4]:
            self.put(sample)
        w = self.watcher(bus=flaky, retryDelay=1.0)
        self.settle()
        self.reactor.advance(1.0)
        self.settle()
        self.assertEqual(self.tap.messages, [])
        flaky.down = False
        self.reactor.advance(1.0)  # the exchange is declared again, then the backlog goes out
        self.settle()
        self.assertEqual([m[2] for m in self.tap.summary()], [3, 4, 5, 6])
        flaky.down = True
        for sample in ("job-8-delete.queuefile.json", "job-9-net-add.queuefile.json"):
            self.put(sample)
            w.fileChanged(f"job-{jobNumber(sample)}")
        self.settle()
        self.assertFalse(w.health().ok)
        self.assertIn("2 messages owed", w.health().detail)
        self.reactor.advance(1.0)
        self.settle()
        flaky.down = False
        self.reactor.advance(60)
        self.settle()
        self.assertEqual([m[2] for m in self.tap.summary()], [3, 4, 5, 6, 8, 9])
        self.assertTrue(w.health().ok)
        self.stop(w)

    def test_stateSurvivesCorruption(self) -> None:
        """
        A corrupt state file is ignored (the rescan republishes; duplicates are harmless).
        """
        self.stateFile.setContent(b"{nonsense")
        self.put("job-3-create.queuefile.json")
        w = self.watcher()
        self.settle()
        self.assertEqual(len(self.tap.messages), 1)
        self.stop(w)

    def test_prune(self) -> None:
        """
        Jobs whose files were archived are forgotten by the state on the next start.
        """
        self.put("job-3-create.queuefile.json")
        w = self.watcher()
        self.settle()
        self.stop(w)
        self.queue.child("job-3").remove()
        w = self.watcher()
        self.settle()
        self.stop(w)
        state = PublishedState(self.stateFile)
        state.load()
        self.assertEqual(state.jobs, {})

    def test_configDataDetails(self) -> None:
        """
        With config.data as details source, a create success carries the instance's NICs with their firewall profile.
        """
        self.data.child("config.data").setContent(sampleBytes("config.data.json"))
        raw = sampleBytes("job-3-create.queuefile.json").replace(b"demo1.ganeti.lab", b"snf-900")
        self.queue.child("job-3").setContent(raw)
        w = self.watcher(details=ConfigDataDetails(self.data.child("config.data")))
        self.settle()
        ((key, body),) = self.tap.messages
        self.assertEqual(key, "ganeti.snf.event.op")
        self.assertEqual(body["instance_nics"][0]["firewall"], "protected")
        self.assertEqual(body["instance_nics"][0]["network"], "snf-net-900")
        self.stop(w)

    def test_rapiRecordDetails(self) -> None:
        """
        Details built from a RAPI instance record have eventd's NIC and disk keys.
        """
        record = {
            "nic.names": ["snf-nic-1"],
            "nic.networks.names": ["snf-net-1"],
            "nic.ips": ["10.0.0.2"],
            "nic.macs": ["aa:00:00:00:00:01"],
            "nic.modes": ["bridged"],
            "nic.links": ["br0"],
            "nic.uuids": ["u1"],
            "disk.names": ["snf-vol-1"],
            "disk.sizes": [1024],
            "disk.uuids": ["d1"],
            "hvparams": {"boot_order": "disk", "cdrom_image_path": ""},
            "tags": ["synnefo:network:snf-nic-1:limited"],
        }
        details = detailsFromRecord(record)
        self.assertEqual(
            details.nics[0],
            {
                "name": "snf-nic-1",
                "network": "snf-net-1",
                "ip": "10.0.0.2",
                "mac": "aa:00:00:00:00:01",
                "mode": "bridged",
                "link": "br0",
                "uuid": "u1",
                "firewall": "limited",
            },
        )
        self.assertEqual(details.disks, ({"name": "snf-vol-1", "size": 1024, "uuid": "d1"},))
        self.assertTrue(callable(RapiDetails(None).details))  # type: ignore[arg-type]
