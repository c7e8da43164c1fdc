"""
The RAPI contract: what the control plane relies on from a Ganeti RAPI,
run through L{RapiClient} against the real Ganeti 3.0 test cluster
(C{tests.integration.ganeti.test_rapi_real}) and against the simulated
cluster (C{tests.ganeti.test_sim_contract}).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Awaitable
from typing import Any

import attrs
from twisted.internet.defer import Deferred

from synnefo_twisted.ganeti import errors
from synnefo_twisted.ganeti.rapi import RapiClient

_counter = itertools.count(1)


@attrs.frozen
class ClusterEnv:
    """
    How to address the cluster under test.
    """

    pnode: str
    group: str = "default"
    diskTemplate: str = "file"
    osType: str = "noop"
    hypervisor: str = "fake"
    nicMode: str = "bridged"
    nicLink: str = "gnt-br0"
    jobTimeout: float = 60.0


def uniqueId() -> int:
    """
    An id for test objects unlikely to collide with leftovers of other runs.
    """
    return 70000 + (os.getpid() % 1000) * 20 + next(_counter) % 20


class RapiHelpers:
    """
    Job and cleanup helpers for a trial TestCase whose C{setUp} sets
    C{self.client} (a write user) and C{self.env} (L{ClusterEnv}).
    """

    client: RapiClient
    readOnly: RapiClient
    badPassword: RapiClient
    env: ClusterEnv

    # trial TestCase methods, for the type checker
    assertEqual: Any
    assertIn: Any
    assertTrue: Any
    assertFalse: Any
    assertIsInstance: Any
    addCleanup: Any
    fail: Any

    async def wait(self, jobId: Deferred[int] | int) -> dict[str, Any]:
        if isinstance(jobId, Deferred):
            jobId = await jobId
        job: dict[str, Any] = await self.client.waitForJob(jobId, timeout=self.env.jobTimeout)
        return job

    async def failsWith(self, d: Awaitable[Any], cls: type[Exception]) -> Exception:
        try:
            await d
        except cls as e:
            return e
        self.fail(f"did not fail with {cls.__name__}")
        raise AssertionError

    def cleanupInstance(self, name: str) -> None:
        async def remove() -> None:
            try:
                await self.wait(self.client.deleteInstance(name, shutdownTimeout=0))
            except errors.GanetiError:
                pass

        self.addCleanup(lambda: Deferred.fromCoroutine(remove()))

    def cleanupNetwork(self, name: str) -> None:
        async def remove() -> None:
            for call in (
                lambda: self.client.disconnectNetwork(name, self.env.group),
                lambda: self.client.deleteNetwork(name),
            ):
                try:
                    await self.wait(call())
                except errors.GanetiError:
                    pass

        self.addCleanup(lambda: Deferred.fromCoroutine(remove()))

    async def makeNetwork(self, n: int) -> str:
        name = f"snf-net-{n}"
        self.cleanupNetwork(name)
        await self.wait(
            self.client.createNetwork(name, f"10.{n % 200}.{n % 250}.0/24", gateway=f"10.{n % 200}.{n % 250}.1")
        )
        await self.wait(self.client.connectNetwork(name, self.env.group, self.env.nicMode, self.env.nicLink))
        return name

    async def makeInstance(self, n: int, nics: list[dict[str, Any]], **kwargs: Any) -> str:
        name = f"snf-{n}"
        self.cleanupInstance(name)
        params: dict[str, Any] = {
            "os": self.env.osType,
            "pnode": self.env.pnode,
            "hypervisor": self.env.hypervisor,
            "beparams": {"maxmem": 128, "minmem": 128, "vcpus": 1},
            "ip_check": False,
            "name_check": False,
            "wait_for_sync": False,
        }
        params.update(kwargs)
        disks = [{"size": 32, "name": f"snf-vol-{n}"}] if self.env.diskTemplate != "diskless" else []
        await self.wait(self.client.createInstance(name, self.env.diskTemplate, disks, nics, **params))
        return name


class RapiContractMixin(RapiHelpers):
    """
    The contract; C{setUp} also sets C{self.readOnly} and
    C{self.badPassword} clients.
    """

    # ------------------------------------------------------------ cluster

    async def test_versionAndInfo(self) -> None:
        """
        The RAPI is version 2 and /2/info names the cluster, its master and hypervisors.
        """
        self.assertEqual(await self.client.getVersion(), 2)
        info = await self.client.getInfo()
        for key in ("name", "master", "software_version", "enabled_hypervisors", "default_hypervisor"):
            self.assertIn(key, info)
        self.assertEqual(info["master"], self.env.pnode)

    async def test_nodesAndGroups(self) -> None:
        """
        Bulk node and group lists carry the fields the reconciler reads; single lookups work; unknown ones are 404.
        """
        nodes = await self.client.getNodes()
        self.assertIn(self.env.pnode, [n["name"] for n in nodes])
        node = await self.client.getNode(self.env.pnode)
        for key in ("mtotal", "mfree", "dtotal", "dfree", "ctotal", "pinst_cnt", "offline", "drained", "role"):
            self.assertIn(key, node)
        groups = await self.client.getGroups()
        self.assertIn(self.env.group, [g["name"] for g in groups])
        group = await self.client.getGroup(self.env.group)
        self.assertIn(self.env.pnode, group["node_list"])
        plain = await self.client.getNodes(bulk=False)
        self.assertEqual(set(plain[0]), {"id", "uri"})
        await self.failsWith(self.client.getNode("no-such-node.example"), errors.RapiNotFound)

    async def test_clusterTags(self) -> None:
        """
        Cluster tags are added and deleted by jobs; a dry-run add (the heartbeat probe) succeeds and adds nothing.
        """
        tag = f"contract:{uniqueId()}"
        await self.wait(self.client.addClusterTags([tag], dryRun=True))
        self.assertFalse(tag in await self.client.getClusterTags())
        await self.wait(self.client.addClusterTags([tag]))
        self.assertIn(tag, await self.client.getClusterTags())
        await self.wait(self.client.deleteClusterTags([tag]))
        self.assertFalse(tag in await self.client.getClusterTags())

    # -------------------------------------------------------------- errors

    async def test_authErrors(self) -> None:
        """
        A wrong password is 401; a read-only user may read but submitting a job is 403.
        """
        e = await self.failsWith(self.badPassword.getInfo(), errors.RapiUnauthorized)
        assert isinstance(e, errors.RapiUnauthorized)
        self.assertEqual(e.code, 401)
        self.assertIn("name", await self.readOnly.getInfo())
        await self.failsWith(self.readOnly.startupInstance("snf-1"), errors.RapiForbidden)

    async def test_notFound(self) -> None:
        """
        Unknown instances, networks and jobs are typed not-found errors.
        """
        await self.failsWith(self.client.getInstance("snf-0"), errors.RapiNotFound)
        await self.failsWith(self.client.getNetwork("snf-net-0"), errors.RapiNotFound)
        await self.failsWith(self.client.getJob(987654), errors.JobNotFound)

    async def test_failedJob(self) -> None:
        """
        A job that Ganeti rejects fails waitForJob with Ganeti's error class, message and code.
        """
        e = await self.failsWith(self.wait(self.client.startupInstance("snf-0")), errors.JobFailed)
        assert isinstance(e, errors.JobFailed)
        self.assertEqual(e.errorClass, "OpPrereqError")
        self.assertEqual(e.errorCode, "unknown_entity")
        self.assertIn("snf-0", e.message)
        job = await self.client.getJob(e.jobId)
        self.assertEqual((job["status"], job["opstatus"]), ("error", ["error"]))
        self.assertEqual(job["summary"], ["INSTANCE_STARTUP(snf-0)"])

    async def test_badRequest(self) -> None:
        """
        A creation request without a name is refused with 400 and Ganeti's message.
        """
        d = self.client._submit("POST", "/2/instances", None, {"__version__": 1, "mode": "create"})
        e = await self.failsWith(d, errors.RapiBadRequest)
        assert isinstance(e, errors.RapiBadRequest)
        self.assertTrue(e.message)

    # ---------------------------------------------------------------- jobs

    async def test_jobRecords(self) -> None:
        """
        A finished job has Ganeti's record fields; job lists include it; cancelling it is refused.
        """
        jobId = await self.client.addClusterTags([f"contract:{uniqueId()}"], dryRun=True)
        job = await self.wait(jobId)
        for key in (
            "id",
            "status",
            "ops",
            "opstatus",
            "opresult",
            "oplog",
            "summary",
            "received_ts",
            "start_ts",
            "end_ts",
        ):
            self.assertIn(key, job)
        self.assertEqual(job["ops"][0]["OP_ID"], "OP_TAGS_SET")
        self.assertEqual(len(job["end_ts"]), 2)
        jobs = await self.client.getJobs()
        self.assertIn(jobId, [int(j["id"]) for j in jobs])
        bulk = await self.client.getJobs(bulk=True)
        self.assertIn("status", bulk[0])
        change = await self.client.waitForJobChange(jobId, ["status", "opstatus"])
        self.assertEqual(change["job_info"], ["success", ["success"]])
        self.assertIsInstance(change["log_entries"], list)
        cancelled, message = await self.client.cancelJob(jobId)
        self.assertFalse(cancelled)
        self.assertTrue(message)

    # ------------------------------------------------------------ networks

    async def test_networkLifecycle(self) -> None:
        """
        A network is created, connected to the group, listed, disconnected and removed.
        """
        n = uniqueId()
        name = await self.makeNetwork(n)
        net = await self.client.getNetwork(name)
        self.assertEqual(net["network"], f"10.{n % 200}.{n % 250}.0/24")
        self.assertEqual(net["gateway"], f"10.{n % 200}.{n % 250}.1")
        self.assertEqual(net["group_list"][0][:3], [self.env.group, self.env.nicMode, self.env.nicLink])
        self.assertEqual(net["free_count"], 253)
        self.assertIn(name, [x["name"] for x in await self.client.getNetworks()])
        await self.wait(self.client.disconnectNetwork(name, self.env.group))
        self.assertEqual((await self.client.getNetwork(name))["group_list"], [])
        await self.wait(self.client.deleteNetwork(name))
        await self.failsWith(self.client.getNetwork(name), errors.RapiNotFound)

    # ----------------------------------------------------------- instances

    async def test_instanceLifecycle(self) -> None:
        """
        Create with a pool NIC → running with MAC and IP; shutdown → down, console 503; startup; reboot; modify; tags; delete → 404.
        """
        n = uniqueId()
        net = await self.makeNetwork(n)
        name = await self.makeInstance(
            n,
            [{"name": f"snf-nic-{n}", "network": net, "ip": "pool"}],
            tags=[f"synnefo:network:snf-nic-{n}:protected"],
        )
        inst = await self.client.getInstance(name)
        self.assertEqual((inst["status"], inst["admin_state"], inst["oper_state"]), ("running", "up", True))
        self.assertEqual(inst["nic.names"], [f"snf-nic-{n}"])
        self.assertEqual(inst["nic.networks.names"], [net])
        self.assertTrue(inst["nic.ips"][0].startswith(f"10.{n % 200}.{n % 250}."))
        self.assertEqual(len(inst["nic.macs"][0].split(":")), 6)
        self.assertEqual(inst["tags"], [f"synnefo:network:snf-nic-{n}:protected"])
        self.assertEqual(inst["beparams"]["vcpus"], 1)
        bulk = {i["name"]: i for i in await self.client.getInstances()}
        self.assertEqual(bulk[name]["nic.ips"], inst["nic.ips"])

        await self.wait(self.client.shutdownInstance(name, timeout=0))
        inst = await self.client.getInstance(name)
        self.assertEqual((inst["status"], inst["admin_state"], inst["oper_state"]), ("ADMIN_down", "down", False))
        e = await self.failsWith(self.client.getInstanceConsole(name), errors.RapiServerError)
        assert isinstance(e, errors.RapiServerError)
        self.assertEqual(e.code, 503)

        await self.wait(self.client.startupInstance(name))
        self.assertEqual((await self.client.getInstance(name))["status"], "running")
        console = await self.client.getInstanceConsole(name)
        self.assertEqual(console["instance"], name)
        self.assertIn(console["kind"], ("vnc", "msg"))

        for rebootType in ("soft", "hard"):
            job = await self.wait(self.client.rebootInstance(name, rebootType, shutdownTimeout=0))
            self.assertEqual(job["ops"][0]["reboot_type"], rebootType)
        self.assertEqual((await self.client.getInstance(name))["status"], "running")

        await self.wait(self.client.modifyInstance(name, beparams={"maxmem": 256, "minmem": 256, "vcpus": 2}))
        inst = await self.client.getInstance(name)
        self.assertEqual((inst["beparams"]["maxmem"], inst["beparams"]["vcpus"]), (256, 2))

        await self.wait(
            self.client.modifyInstance(
                name, nics=[["add", -1, {"name": f"snf-nic-{n + 1}", "network": net, "ip": "pool"}]]
            )
        )
        inst = await self.client.getInstance(name)
        self.assertEqual(inst["nic.names"], [f"snf-nic-{n}", f"snf-nic-{n + 1}"])
        self.assertEqual(len(set(inst["nic.ips"])), 2)
        await self.wait(self.client.modifyInstance(name, nics=[["remove", f"snf-nic-{n + 1}", {}]]))
        self.assertEqual((await self.client.getInstance(name))["nic.names"], [f"snf-nic-{n}"])
        newIp = f"10.{n % 200}.{n % 250}.200"
        await self.wait(self.client.modifyInstance(name, nics=[["modify", f"snf-nic-{n}", {"ip": newIp}]]))
        self.assertEqual((await self.client.getInstance(name))["nic.ips"], [newIp])

        await self.wait(self.client.addInstanceTags(name, ["extra"], dryRun=True))
        self.assertFalse("extra" in await self.client.getInstanceTags(name))
        await self.wait(self.client.addInstanceTags(name, ["extra"]))
        self.assertIn("extra", await self.client.getInstanceTags(name))
        await self.wait(self.client.deleteInstanceTags(name, ["extra"]))
        self.assertFalse("extra" in await self.client.getInstanceTags(name))

        infoJob = await self.wait(self.client.getInstanceInfo(name))
        self.assertIn(name, infoJob["opresult"][0])

        await self.wait(self.client.deleteInstance(name, shutdownTimeout=0))
        await self.failsWith(self.client.getInstance(name), errors.RapiNotFound)
        self.assertEqual((await self.client.getNetwork(net))["free_count"], 253)

    async def test_macPrefix(self) -> None:
        """
        A network's MAC prefix must be three full octets (Synnefo's pools
        hand out longer strings, cut to them before they are sent); it is
        kept lower-cased.
        """
        n = uniqueId()
        name = f"snf-net-{n}"
        self.cleanupNetwork(name)
        e = await self.failsWith(
            self.wait(self.client.createNetwork(name, f"10.{n % 200}.{n % 250}.0/24", mac_prefix="aa:00:0")),
            errors.JobFailed,
        )
        assert isinstance(e, errors.JobFailed)
        self.assertEqual((e.errorClass, e.errorCode), ("OpPrereqError", "wrong_input"))
        self.assertIn("aa:00:0", e.message)
        await self.failsWith(self.client.getNetwork(name), errors.RapiNotFound)
        await self.wait(self.client.createNetwork(name, f"10.{n % 200}.{n % 250}.0/24", mac_prefix="AA:00:1F"))
        self.assertEqual((await self.client.getNetwork(name))["mac_prefix"], "aa:00:1f")

    async def test_depends(self) -> None:
        """
        A job that depends on another runs after it; its record keeps the dependency.
        """
        n = uniqueId()
        name = f"snf-net-{n}"
        self.cleanupNetwork(name)
        first = await self.client.createNetwork(name, f"10.{n % 200}.{n % 250}.0/24")
        second = await self.client.connectNetwork(
            name, self.env.group, self.env.nicMode, self.env.nicLink, depends=[[first, ["success"]]]
        )
        job = await self.wait(second)
        self.assertEqual(job["ops"][0]["depends"], [[first, ["success"]]])
        firstJob = await self.client.getJob(first)
        self.assertEqual(firstJob["status"], "success")
        self.assertTrue(tuple(firstJob["end_ts"]) <= tuple(job["start_ts"]))
