"""
Tests for the simulated cluster service
(L{synnefo_twisted.ganeti.sim.service}): persistence across restarts,
interrupted jobs, archiving, health, and the RAPI pointer for watchers.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.testing import MemoryReactorClock
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from synnefo_twisted.ganeti import jobfile
from synnefo_twisted.ganeti.details import readSimRapiFile
from synnefo_twisted.ganeti.sim.service import SimulatedClusterService, lastJobId
from synnefo_twisted.interfaces import IHealthReporter

USERS = {"u": ("p", "write")}


def create(name: str) -> dict[str, Any]:
    return {
        "OP_ID": "OP_INSTANCE_CREATE",
        "instance_name": name,
        "disk_template": "diskless",
        "disks": [],
        "nics": [{"network": "snf-net-1", "ip": "pool"}],
    }


class ServiceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.data = FilePath(self.mktemp())

    def service(self) -> SimulatedClusterService:
        s = SimulatedClusterService(self.reactor, self.data, "tcp:0:interface=127.0.0.1", USERS, defaultDuration=1.0)
        self.successResultOf(s.startService())
        return s

    def runJob(self, s: SimulatedClusterService, ops: list[dict[str, Any]]) -> int:
        jobId = s.queue.submit(ops)
        self.reactor.advance(0)
        for _ in ops:
            self.reactor.advance(1)
        return jobId

    def test_persistence(self) -> None:
        """
        Instances and networks survive a restart (addresses and MACs stay allocated), and job ids continue after the last one on disk.
        """
        s = self.service()
        self.assertTrue(verifyObject(IHealthReporter, s))
        self.assertTrue(s.health().ok)
        self.runJob(s, [{"OP_ID": "OP_NETWORK_ADD", "network_name": "snf-net-1", "network": "10.9.0.0/24"}])
        self.runJob(
            s,
            [
                {
                    "OP_ID": "OP_NETWORK_CONNECT",
                    "network_name": "snf-net-1",
                    "group_name": "default",
                    "network_mode": "bridged",
                    "network_link": "br0",
                }
            ],
        )
        last = self.runJob(s, [create("snf-1")])
        mac = s.cluster.instances["snf-1"].nics[0].mac
        self.successResultOf(s.stopService())
        self.assertFalse(s.health().ok)
        again = self.service()
        self.assertEqual(set(again.cluster.instances), {"snf-1"})
        self.assertEqual(again.cluster.instances["snf-1"].nics[0].ip, "10.9.0.1")
        self.runJob(again, [create("snf-2")])
        second = again.cluster.instances["snf-2"].nics[0]
        self.assertEqual(second.ip, "10.9.0.2")
        self.assertNotEqual(second.mac, mac)
        self.assertEqual(min(again.queue.jobs), last + 1)
        self.successResultOf(again.stopService())

    def test_interruptedJobs(self) -> None:
        """
        Jobs unfinished at shutdown end in error with Ganeti's "Unclean master daemon shutdown", in their job files.
        """
        s = self.service()
        jobId = s.queue.submit([dict(create("snf-1"), nics=[])])
        self.reactor.advance(0)
        self.assertEqual(s.queue.jobs[jobId].status(), "running")
        self.successResultOf(s.stopService())
        job = jobfile.parseJobFile(s.queueDir.child(f"job-{jobId}").getContent())
        self.assertEqual(job.ops[0].status, "error")
        self.assertEqual(job.ops[0].result, ["OpExecError", ["Unclean master daemon shutdown"]])
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_archive(self) -> None:
        """
        Finished jobs older than archive_after move to queue/archive/<id // 10000>/ and are forgotten.
        """
        s = self.service()
        s.archiveAfter = 100
        jobId = self.runJob(s, [{"OP_ID": "OP_CLUSTER_SET_PARAMS"}])
        self.reactor.advance(60)
        self.assertIn(jobId, s.queue.jobs)
        self.reactor.advance(120)
        self.assertNotIn(jobId, s.queue.jobs)
        self.assertTrue(s.queueDir.child("archive").child("0").child(f"job-{jobId}").exists())
        self.assertFalse(s.queueDir.child(f"job-{jobId}").exists())
        self.assertEqual(lastJobId(s.queueDir), jobId)
        self.successResultOf(s.stopService())

    def test_pointerAndSsconf(self) -> None:
        """
        The service writes ssconf files and a 0600 pointer telling watchers how to reach its RAPI.
        """
        s = self.service()
        self.assertEqual(self.data.child("ssconf_cluster_name").getContent().strip(), s.cluster.name.encode())
        self.assertEqual(self.data.child("ssconf_master_node").getContent().strip(), s.cluster.node.encode())
        pointer = readSimRapiFile(self.data)
        assert pointer is not None
        self.assertEqual((pointer["user"], pointer["password"]), ("u", "p"))
        self.assertTrue(pointer["url"].startswith("http://"))
        self.assertEqual(self.data.child("sim-rapi.json").getPermissions().shorthand(), "rw-------")
        self.successResultOf(s.stopService())

    def test_corruptState(self) -> None:
        """
        A corrupt state file is logged and the cluster starts empty.
        """
        self.data.makedirs()
        self.data.child("sim-state.json").setContent(b"{oops")
        s = self.service()
        self.assertEqual(s.cluster.instances, {})
        self.successResultOf(s.stopService())
        self.assertEqual(json.loads(self.data.child("sim-state.json").getContent())["version"], 1)
