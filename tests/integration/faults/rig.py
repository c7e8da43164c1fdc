"""
The rig for the fault proofs: a simulated Ganeti cluster (in the test
process, so its state is the truth the database is compared with), a
PostgreSQL schema of its own with an audit of every write the dispatcher
makes, real node processes (C{twistd synnefo}) for the watcher and the
dispatcher(s) on RabbitMQ, a driver creating and deleting servers through
the server logic, fault injectors and the end-state checker.

Every test uses a fresh Ganeti name prefix (C{ft<hex>-}), so its bus queues
(C{ft<hex>-events-*}) and instances are its own.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
from twisted.internet import reactor  # tests only: real services
from twisted.internet.defer import Deferred, DeferredSemaphore, gatherResults
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.protocols.portforward import ProxyFactory, ProxyServer
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from synnefo_twisted.backends import BackendRegistry, rapiClientFor, tlsPolicyFor
from synnefo_twisted.bus import openBus
from synnefo_twisted.bus.topology import eventQueues, synnefoTopology
from synnefo_twisted.db import openDatabase
from synnefo_twisted.db.migrations import migrate
from synnefo_twisted.db.models import Backend, Server, User
from synnefo_twisted.db.repositories import (
    BackendRepository,
    FlavorRepository,
    ImageRepository,
    ProjectRepository,
    QuotaRepository,
    ServerRepository,
    UserRepository,
)
from synnefo_twisted.ganeti import naming
from synnefo_twisted.ganeti.rapi import RapiClient
from synnefo_twisted.ganeti.sim.model import SimCluster
from synnefo_twisted.ganeti.sim.service import SimulatedClusterService
from synnefo_twisted.interfaces import IGanetiClient
from synnefo_twisted.logic import serverops
from synnefo_twisted.logic.servers import BuildInProgress, CreateSettings, ServerFault, parseCreateRequest
from tests.integration import realservices
from tests.integration.db.test_postgres import withSearchPath
from tests.integration.nodeprocess import NodeProcess, adminPort, spawnNode

log = Logger()

POOL_SIZE = 8
RAPI_USER = "gnt-admin"
RAPI_PASSWORD = "gnt-secret"

#: Quota limits high enough for any number of test servers.
LIMITS = {
    "cyclades.vm": 100_000,
    "cyclades.total_cpu": 1_000_000,
    "cyclades.cpu": 1_000_000,
    "cyclades.total_ram": 1 << 50,
    "cyclades.ram": 1 << 50,
    "cyclades.disk": 1 << 55,
}

#: The audit of the dispatcher's writes: one row per UPDATE of a server's
#: backend fields or of a commission's state, with the writing transaction.
#: Two transactions writing the same (server, job, status) means one message
#: applied twice (an instance job has one op, so one message per status;
#: the reconciler's synthetic messages carry job 0 and are not counted); a backendtime going back means a stale message
#: won over a newer one (a lost update); a commission leaving a state that is
#: not "pending" means one resolved twice.
AUDIT_SQL = (
    """CREATE TABLE faults_server_writes (
        seq BIGSERIAL PRIMARY KEY,
        server_id BIGINT NOT NULL,
        old_backendtime TIMESTAMPTZ,
        new_backendtime TIMESTAMPTZ,
        jobid BIGINT,
        jobstatus TEXT,
        opcode TEXT,
        operstate TEXT,
        deleted BOOLEAN,
        xid BIGINT NOT NULL DEFAULT txid_current()
    )""",
    """CREATE FUNCTION faults_server_write() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO faults_server_writes
            (server_id, old_backendtime, new_backendtime, jobid, jobstatus, opcode, operstate, deleted)
        VALUES (NEW.id, OLD.backendtime, NEW.backendtime, NEW.backendjobid, NEW.backendjobstatus,
                NEW.backendopcode, NEW.operstate, NEW.deleted);
        RETURN NEW;
    END $$""",
    """CREATE TRIGGER faults_server_write AFTER UPDATE OF backendtime, backendjobstatus ON servers
        FOR EACH ROW EXECUTE FUNCTION faults_server_write()""",
    """CREATE TABLE faults_commission_writes (
        seq BIGSERIAL PRIMARY KEY,
        commission_id BIGINT NOT NULL,
        old_state TEXT,
        new_state TEXT,
        xid BIGINT NOT NULL DEFAULT txid_current()
    )""",
    """CREATE FUNCTION faults_commission_write() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO faults_commission_writes (commission_id, old_state, new_state)
        VALUES (NEW.id, OLD.state, NEW.state);
        RETURN NEW;
    END $$""",
    """CREATE TRIGGER faults_commission_write AFTER UPDATE OF state ON commissions
        FOR EACH ROW EXECUTE FUNCTION faults_commission_write()""",
)


def _stopped(node: NodeProcess) -> Deferred[int | None]:
    if not node.ended.called:
        node.terminate()
    return node.ended


def _started(event: dict[str, Any]) -> bool:
    return str(event.get("message", "")).startswith("node started")


def sleep(seconds: float) -> Deferred[None]:
    return deferLater(reactor, seconds, lambda: None)


class _Tracked(ProxyServer):
    """
    One connection through a L{_TrackingProxy}, listed there while it lasts.
    """

    factory: _TrackingProxy

    def connectionMade(self) -> None:
        self.factory.connections.append(self)
        super().connectionMade()

    def connectionLost(self, reason: Any = None) -> None:
        if self in self.factory.connections:
            self.factory.connections.remove(self)
        super().connectionLost(reason)


class _TrackingProxy(ProxyFactory):
    """
    A TCP forwarder that knows its connections and can abort them all.
    """

    protocol = _Tracked

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self.connections: list[_Tracked] = []

    def abortAll(self) -> None:
        """
        Abort every connection, both of its sides, at once (what was in flight is lost).
        """
        for conn in list(self.connections):
            transports: list[Any] = [conn.transport]
            if conn.peer is not None:
                transports.append(conn.peer.transport)
            for transport in transports:
                if transport is not None:
                    transport.abortConnection()


class _HeldUpstream(_Tracked):
    """
    One dispatcher connection to the broker: what the dispatcher sends is
    dropped while the proxy is L{BrokerProxy.holding} (acks included).
    """

    factory: BrokerProxy

    def dataReceived(self, data: bytes) -> None:
        if self.factory.holding:
            return
        super().dataReceived(data)


class BrokerProxy(_TrackingProxy):
    """
    A TCP forwarder between the dispatchers and RabbitMQ that can hold back
    everything the dispatchers send: with it, a dispatcher keeps applying
    (and committing) the messages it has prefetched while none of its acks
    reach the broker, so killing it then is killing it after the commit
    and before the ack, every time.
    """

    protocol = _HeldUpstream

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self.holding = False

    def cut(self) -> None:
        """
        Abort every connection at once (what was held back is lost) and
        stop holding.
        """
        self.abortAll()
        self.holding = False


class PartitionProxy(_TrackingProxy):
    """
    A TCP forwarder between the dispatchers and PostgreSQL that can play a
    network partition: every connection cut, new ones closed at once,
    until it is healed.
    """

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self.partitioned = False

    def buildProtocol(self, addr: Any) -> Any:
        if self.partitioned:
            return None
        return super().buildProtocol(addr)

    def partition(self) -> None:
        self.partitioned = True
        self.abortAll()

    def heal(self) -> None:
        self.partitioned = False


@attrs.define
class Expected:
    """
    What the database must say about one server, from the cluster's truth.
    """

    operstate: str
    deleted: bool
    jobId: int | None
    jobStatus: str | None


@attrs.define
class Report:
    """
    The checker's findings: each list empty when the invariant holds.
    """

    servers: int = 0
    live: int = 0
    deleted: int = 0
    mismatches: list[str] = attrs.field(factory=list)
    orphans: list[str] = attrs.field(factory=list)
    doubleApplied: list[str] = attrs.field(factory=list)
    regressions: list[str] = attrs.field(factory=list)
    commissions: list[str] = attrs.field(factory=list)
    quotas: list[str] = attrs.field(factory=list)
    deadLetters: list[str] = attrs.field(factory=list)
    drift: list[str] = attrs.field(factory=list)

    def problems(self) -> list[str]:
        return [
            *self.deadLetters,
            *self.drift,
            *self.mismatches,
            *self.orphans,
            *self.doubleApplied,
            *self.regressions,
            *self.commissions,
            *self.quotas,
        ]


class SimulatedGaneti:
    """
    The simulated cluster, in the test process: its model is the truth.
    """

    diskTemplate = "drbd"
    hypervisor = "kvm"
    os = "snf-image+default"
    opportunisticLocking = True
    flavor = (1, 512, 5)

    def __init__(
        self,
        workdir: Path,
        jobDuration: float = 0.05,
        createDuration: float = 0.2,
        maxRunning: int = 50,
        errorRates: dict[str, float] | None = None,
    ) -> None:
        self.sim = SimulatedClusterService(
            reactor,
            FilePath(str(workdir / "ganeti")),
            "tcp:0:interface=127.0.0.1",
            {RAPI_USER: (RAPI_PASSWORD, "write")},
            cluster=SimCluster(nicLink="gnt-br0"),
            durations={"OP_INSTANCE_CREATE": createDuration},
            defaultDuration=jobDuration,
            errorRates=errorRates or {},
            maxRunning=maxRunning,
            seed=5,
            persist=False,
        )

    async def start(self, testCase: TestCase, db: Any) -> None:
        await self.sim.startService()
        testCase.addCleanup(self.sim.stopService)
        await BackendRepository(db).add(
            self.sim.cluster.name,
            self.sim.rapiUrl,
            username=RAPI_USER,
            password=RAPI_PASSWORD,
            verifyTLS=False,
            hypervisor=self.hypervisor,
            simulated=True,
        )

    def clientFactory(self, reactor: Any, backend: Backend) -> IGanetiClient:
        return rapiClientFor(reactor, backend)

    def watcherSection(self) -> dict[str, Any]:
        return {
            "queue_dir": self.sim.queueDir.path,
            "master_check": False,
            "details": "auto",
            "rescan_interval": 2.0,
        }

    async def truth(self, prefix: str) -> Truth:
        """
        What the cluster has: this test's instances and their jobs.
        """
        instances = {name: inst.operUp for name, inst in self.sim.cluster.instances.items() if name.startswith(prefix)}
        jobs = [(job.id, [op.input for op in job.ops], job.status()) for job in self.sim.queue.jobs.values()]
        return Truth(instances, jobsByInstance(jobs, prefix))


class LabClusterRapiClient(RapiClient):
    """
    The RAPI client, with two adaptations of the create call to the lab
    cluster (everything else is the server logic's): it names the primary
    node, since the single-node cluster cannot place instances through its
    iallocator (hail's global N+1 check fails with C{FailN1} when there is
    no other node), and it drops snf-image's OS parameters, which the
    cluster's C{noop} OS refuses.
    """

    pnode = ""

    def createInstance(self, name: str, diskTemplate: str, disks: Any, nics: Any, **kwargs: Any) -> Deferred[int]:
        kwargs.setdefault("pnode", self.pnode)
        kwargs["osparams"] = {}
        return super().createInstance(name, diskTemplate, disks, nics, **kwargs)


class RealGaneti:
    """
    The real Ganeti 3.0 test cluster (L{tests.integration.ganeti.realcluster}):
    fake hypervisor, file disks, the noop OS; its RAPI is the truth. The
    instances a test leaves behind are removed at clean-up.
    """

    diskTemplate = "file"
    hypervisor = "fake"
    os = "noop"
    opportunisticLocking = False  # Ganeti allows it only with an iallocator
    flavor = (1, 128, 1)

    def __init__(self) -> None:
        from tests.integration.ganeti import realcluster
        from tests.integration.ganeti.test_rapi_real import realClient

        self.realcluster = realcluster
        self.client = realClient(realcluster.USER, realcluster.PASSWORD)

    def clientFactory(self, reactor: Any, backend: Backend) -> IGanetiClient:
        client = LabClusterRapiClient.forURL(
            reactor,
            backend.rapi_url,
            backend.username or None,
            backend.password or None,
            tls=tlsPolicyFor(backend),
        )
        assert isinstance(client, LabClusterRapiClient)
        client.pnode = self.realcluster.NODE
        return client

    async def start(self, testCase: TestCase, db: Any) -> None:
        from tests.integration.ganeti.test_rapi_real import quiesce

        rc = self.realcluster
        if not FilePath(rc.QUEUE_DIR).isdir():
            testCase.fail(rc.MISSING)
        testCase.addCleanup(lambda: Deferred.fromCoroutine(quiesce()))
        info = await self.client.getInfo()
        await BackendRepository(db).add(
            info["name"],
            rc.RAPI_URL,
            username=rc.USER,
            password=rc.PASSWORD,
            verifyTLS=True,
            hypervisor=self.hypervisor,
            caPEM=rc.pinnedCert().decode("ascii"),
        )

    def watcherSection(self) -> dict[str, Any]:
        rc = self.realcluster
        return {
            "queue_dir": rc.QUEUE_DIR,
            "data_dir": rc.DATA_DIR,
            "master_check": False,
            "details": "config",
            "rescan_interval": 2.0,
        }

    async def truth(self, prefix: str) -> Truth:
        instances = {
            i["name"]: bool(i.get("oper_state"))
            for i in await self.client.getInstances(bulk=True)
            if i["name"].startswith(prefix)
        }
        jobs = [(j["id"], j.get("ops") or [], j["status"]) for j in await self.client.getJobs(bulk=True)]
        return Truth(instances, jobsByInstance(jobs, prefix))

    async def removeAll(self, prefix: str) -> None:
        """
        Remove this test's instances (clean-up), waiting for the jobs.
        """
        for i in await self.client.getInstances(bulk=True):
            if i["name"].startswith(prefix):
                jobId = await self.client.deleteInstance(i["name"])
                await self.client.waitForJob(jobId)


@attrs.define
class Truth:
    """
    A snapshot of the cluster: its instances of this test (name → running)
    and, per instance, its jobs in order (job id, opcode, status), whoever
    submitted them.
    """

    instances: dict[str, bool]
    jobs: dict[str, list[tuple[int, str, str]]]

    def idle(self) -> bool:
        return all(status in FINAL for jobs in self.jobs.values() for _, _, status in jobs)

    def expected(self, name: str) -> Expected | None:
        """
        The state the database must reach for one server (None when no job
        of it reached Ganeti).
        """
        jobs = self.jobs.get(name)
        if not jobs:
            return None
        last, _, status = jobs[-1]
        if name in self.instances:
            return Expected("STARTED" if self.instances[name] else "STOPPED", False, last, status)
        removals = [jobId for jobId, op, s in jobs if op == "OP_INSTANCE_REMOVE" and s == "success"]
        if removals:
            # a deleted server ignores later jobs (a retried destroy's, failing)
            return Expected("DESTROYED", True, removals[0], "success")
        return Expected("ERROR", False, last, status)


def jobsByInstance(
    jobs: Iterable[tuple[int, Sequence[Mapping[str, Any]], str]], prefix: str
) -> dict[str, list[tuple[int, str, str]]]:
    """
    (job id, op inputs, status) triples → this test's instances' jobs, in job order.
    """
    found: dict[str, list[tuple[int, str, str]]] = {}
    for jobId, ops, status in sorted(jobs, key=lambda j: j[0]):
        for op in ops:
            name = op.get("instance_name")
            if isinstance(name, str) and name.startswith(prefix):
                found.setdefault(name, []).append((jobId, str(op.get("OP_ID")), status))
                break
    return found


FINAL = frozenset({"success", "error", "canceled"})


class FaultRig:
    """
    One fault scenario's world. C{await rig.start()} builds it (cleanups
    registered on C{testCase}); nodes are started with C{startWatcher} and
    C{startDispatcher}.

    @ivar cluster: the Ganeti cluster (L{SimulatedGaneti} by default).
    @ivar dispatcherSection: extra C{[dispatcher]} settings for the
        dispatcher nodes.
    @ivar created: the ids of the servers the driver created (a create
        retried after a fault may also have left a server it never heard
        of: the checker reads every server from the database).
    """

    def __init__(
        self,
        testCase: TestCase,
        cluster: Any = None,
        *,
        dispatcherSection: dict[str, Any] | None = None,
    ) -> None:
        self.testCase = testCase
        self.prefix = "ft" + uuid.uuid4().hex[:8] + "-"
        self.workdir = Path(testCase.mktemp()).resolve()
        self.workdir.mkdir(parents=True)
        self.cluster = cluster if cluster is not None else SimulatedGaneti(self.workdir)
        self.dispatcherSection = dispatcherSection or {}
        self.dispatchers: list[NodeProcess] = []
        self.watcher: NodeProcess | None = None
        self.created: list[int] = []
        self.driverErrors: list[str] = []
        self._nodeCount = 0
        self._apiPaused = False
        self._apiInFlight = 0

    # -- set-up --------------------------------------------------------------------------

    async def start(self) -> None:
        self.schema = self._makeSchema()
        self.dbURL = withSearchPath(realservices.PG_URL, self.schema)
        self.db = openDatabase(self.dbURL, reactor, poolSize=POOL_SIZE)
        await self.db.startService()
        self.testCase.addCleanup(self.db.stopService)
        await migrate(self.db)
        for statement in AUDIT_SQL:
            await self.db.runOperation(statement)
        self.testCase.addCleanup(lambda: Deferred.fromCoroutine(self.deleteQueues()))
        amqp = urlsplit(realservices.AMQP_URL)
        self.brokerProxy = BrokerProxy(amqp.hostname or "127.0.0.1", amqp.port or 5672)
        port = reactor.listenTCP(0, self.brokerProxy, interface="127.0.0.1")  # type: ignore[arg-type]
        self.testCase.addCleanup(port.stopListening)
        self.testCase.addCleanup(self.brokerProxy.cut)
        netloc = amqp.netloc.rsplit("@", 1)[0] + f"@127.0.0.1:{port.getHost().port}"  # type: ignore[attr-defined]
        self.dispatcherBusURL = amqp._replace(netloc=netloc).geturl()
        pg = urlsplit(self.dbURL)
        self.databaseProxy = PartitionProxy(pg.hostname or "127.0.0.1", pg.port or 5432)
        port = reactor.listenTCP(0, self.databaseProxy, interface="127.0.0.1")  # type: ignore[arg-type]
        self.testCase.addCleanup(port.stopListening)
        self.testCase.addCleanup(self.databaseProxy.partition)
        netloc = pg.netloc.rsplit("@", 1)[0] + f"@127.0.0.1:{port.getHost().port}"  # type: ignore[attr-defined]
        self.dispatcherDatabaseURL = pg._replace(netloc=netloc).geturl()
        await self.cluster.start(self.testCase, self.db)
        removeAll = getattr(self.cluster, "removeAll", None)
        if removeAll is not None:
            self.testCase.addCleanup(lambda: Deferred.fromCoroutine(removeAll(self.prefix)))
        await self._seed()

    def _makeSchema(self) -> str:
        import psycopg2

        schema = "snf_faults_" + uuid.uuid4().hex[:12]
        conn = psycopg2.connect(realservices.PG_URL)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"CREATE SCHEMA {schema}")
        conn.close()
        self.testCase.addCleanup(self._dropSchema, schema)
        return schema

    @staticmethod
    def _dropSchema(schema: str) -> None:
        import psycopg2

        conn = psycopg2.connect(realservices.PG_URL)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.close()

    async def _seed(self) -> None:
        self.registry = BackendRegistry(self.db, self.prefix, reactor, clientFactory=self.cluster.clientFactory)
        self.user, _ = await UserRepository(self.db).create("faults@example.org", "Faults")
        projects = ProjectRepository(self.db)
        self.project = await projects.create("base", ownerUUID=self.user.uuid, isBase=True)
        await projects.addMember(self.project.id, self.user.id)
        quotas = QuotaRepository(self.db)
        for resource, limit in LIMITS.items():
            await quotas.setLimit(self.project.id, resource, limit)
        flavors = FlavorRepository(self.db)
        volumeType = await flavors.addVolumeType(self.cluster.diskTemplate, self.cluster.diskTemplate)
        cpu, ram, disk = self.cluster.flavor
        self.flavor = await flavors.create(cpu, ram, disk, volumeType.id)
        self.image = await ImageRepository(self.db).register(
            "debian", self.user.uuid, "file:///images/debian", isPublic=True, properties={"OS": "debian"}
        )
        self.options = serverops.ServerOptions(
            create=CreateSettings(
                prefix=self.prefix, os=self.cluster.os, opportunisticLocking=self.cluster.opportunisticLocking
            )
        )

    # -- nodes ---------------------------------------------------------------------------

    def _config(
        self,
        name: str,
        plugins: list[str],
        sections: dict[str, dict[str, Any]],
        busURL: str | None = None,
        databaseURL: str | None = None,
    ) -> Path:
        home = self.workdir / name
        home.mkdir(exist_ok=True)
        lines = [
            "[node]",
            "roles = []",
            f"plugins = {json.dumps(plugins)}",
            'admin_listen = "tcp:0:interface=127.0.0.1"',
            'state_dir = "./state"',
            "[database]",
            f"url = {json.dumps(databaseURL or self.dbURL)}",
            "[bus]",
            f"url = {json.dumps(busURL or realservices.AMQP_URL)}",
            "heartbeat = 5",
            "[ganeti]",
            f"prefix = {json.dumps(self.prefix)}",
            "simulated = false",
        ]
        for section, values in sections.items():
            lines.append(f"[{section}]")
            lines.extend(f"{key} = {json.dumps(value)}" for key, value in values.items())
        (home / "node.toml").write_text("\n".join(lines) + "\n")
        return home

    async def _spawn(self, home: Path) -> NodeProcess:
        node = spawnNode(reactor, ["--config", "node.toml"], str(home))
        self.testCase.addCleanup(_stopped, node)
        await node.waitFor(_started)
        return node

    async def startWatcher(self) -> NodeProcess:
        home = self._config("watcher", ["watcher"], {"watcher": self.cluster.watcherSection()})
        self.watcher = await self._spawn(home)
        return self.watcher

    async def startDispatcher(self, name: str | None = None) -> NodeProcess:
        if name is None:
            self._nodeCount += 1
            name = f"dispatcher{self._nodeCount}"
        sections = {"dispatcher": self.dispatcherSection} if self.dispatcherSection else {}
        home = self._config(name, ["dispatcher"], sections, self.dispatcherBusURL, self.dispatcherDatabaseURL)
        node = await self._spawn(home)
        node.name = name  # type: ignore[attr-defined]
        self.dispatchers.append(node)
        return node

    async def metric(self, node: NodeProcess, name: str) -> dict[str, float]:
        """
        The samples of one metric on a node's C{/metrics}: labels → value.
        """
        import treq
        from twisted.web.client import HTTPConnectionPool

        event = await node.waitFor(adminPort)
        pool = HTTPConnectionPool(reactor, persistent=False)
        response = await treq.get(f"http://127.0.0.1:{event['port']}/metrics", pool=pool)
        text = (await response.text()).splitlines()
        samples: dict[str, float] = {}
        for line in text:
            if line.startswith(name) and not line.startswith("#"):
                labels, _, value = line[len(name) :].rpartition(" ")
                samples[labels] = float(value)
        return samples

    # -- faults --------------------------------------------------------------------------

    async def kill(self, node: NodeProcess) -> None:
        """
        SIGKILL a node process and wait for it to be gone.
        """
        if node.transport is not None and not node.ended.called:
            node.transport.signalProcess("KILL")
        await node.ended
        if node in self.dispatchers:
            self.dispatchers.remove(node)

    async def killAfterCommit(self, node: NodeProcess, hold: float = 1.0) -> NodeProcess:
        """
        Hold back everything the dispatchers send to the broker for
        C{hold} seconds (they go on committing what they prefetched, their
        acks lost), then SIGKILL C{node}, cut the connections and start it
        again: the broker redelivers messages whose updates are committed.
        """
        self.brokerProxy.holding = True
        await sleep(hold)
        name = getattr(node, "name", None)
        await self.kill(node)
        self.brokerProxy.cut()
        return await self.startDispatcher(name)

    async def restartDispatcher(self, node: NodeProcess) -> NodeProcess:
        name = getattr(node, "name", None)
        await self.kill(node)
        return await self.startDispatcher(name)

    async def restartWatcher(self) -> NodeProcess:
        assert self.watcher is not None
        await self.kill(self.watcher)
        return await self.startWatcher()

    async def restartBroker(self, down: float = 2.0) -> None:
        """
        Stop RabbitMQ, keep it down for C{down} seconds, start it again
        (C{SNF_TEST_AMQP_RESTART}: C{"stop && start"}).
        """
        command = realservices.amqpRestartCommand()
        stop, sep, start = command.partition("&&")
        if not sep:
            await deferToThread(realservices.runBlocking, command)
            return
        await deferToThread(realservices.runBlocking, stop)
        await sleep(down)
        await deferToThread(realservices.runBlocking, start)

    async def partitionDatabase(self, seconds: float = 6.0) -> None:
        """
        Cut the dispatchers off PostgreSQL for C{seconds} (longer than the
        dispatcher's default retry budget, 0.5 + 1 + 2 s), then heal.
        """
        self.databaseProxy.partition()
        try:
            await sleep(seconds)
        finally:
            self.databaseProxy.heal()

    async def restartDatabase(self) -> None:
        """
        Restart PostgreSQL (C{SNF_TEST_PG_RESTART}) with the API's calls
        quiesced around it: the jobs already submitted keep running in
        Ganeti and their messages reach the dispatcher while the database is
        down. (The API's own writes are not atomic with its RAPI calls: a
        create or destroy cut between its transaction and its job leaves a
        pending task or commission behind, which the dispatcher cannot know
        of; that is the API's concern, kept out of this proof.)
        """
        self._apiPaused = True
        while self._apiInFlight:
            await sleep(0.01)
        try:
            await deferToThread(realservices.runBlocking, realservices.pgRestartCommand())
            await self._databaseBack()
        finally:
            self._apiPaused = False

    async def _databaseBack(self, timeout: float = 30.0) -> None:
        """
        Wait until every connection of the test's pool works again (two
        rounds of as many concurrent queries), so that no API call resumed
        afterwards is cut half-way by a connection still being replaced.
        """
        deadline = time.monotonic() + timeout
        good = 0
        while good < 2:
            try:
                await gatherResults([self.db.runQuery("SELECT 1") for _ in range(POOL_SIZE)], consumeErrors=True)
            except Exception:  # still reconnecting
                good = 0
                if time.monotonic() > deadline:
                    raise
                await sleep(0.2)
            else:
                good += 1

    # -- the driver ----------------------------------------------------------------------

    async def _retrying(self, what: str, call: Callable[[], Awaitable[Any]], deadline: float) -> Any:
        """
        Run C{call} until it succeeds: a failure that is not a refusal of
        the server logic (database or Ganeti unreachable during a fault) is
        retried after a pause.
        """
        while True:
            while self._apiPaused:
                await sleep(0.01)
            self._apiInFlight += 1
            try:
                return await call()
            except BuildInProgress:
                pass
            except ServerFault:
                raise
            except Exception as e:  # the fault being injected: retried, and recorded
                self.driverErrors.append(f"{what}: {type(e).__name__}: {e}")
            finally:
                self._apiInFlight -= 1
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: still failing at the deadline; errors: {self.driverErrors[-5:]}")
            await sleep(0.5)

    async def _server(self, serverId: int) -> Server | None:
        return await ServerRepository(self.db).get(serverId)

    async def _waitActive(self, serverId: int, deadline: float) -> bool:
        while time.monotonic() < deadline:
            try:
                server = await self._server(serverId)
            except Exception as e:  # database restarting
                self.driverErrors.append(f"poll {serverId}: {type(e).__name__}: {e}")
                server = None
            if server is not None and server.operstate == "STARTED" and server.task is None:
                return True
            if server is not None and server.operstate == "ERROR":
                return False
            await sleep(0.2)
        return False

    async def _lifecycle(self, index: int, delete: bool, deadline: float) -> None:
        request = parseCreateRequest(
            {
                "server": {
                    "name": f"vm{index}",
                    "imageRef": self.image.id,
                    "flavorRef": str(self.flavor.id),
                    "networks": [],
                }
            }
        )
        user: User = self.user

        async def create() -> Any:
            return await serverops.createServer(self.db, self.registry, user, request, self.options)

        result = await self._retrying(f"create vm{index}", create, deadline)
        serverId = result.server.id
        self.created.append(serverId)
        if not delete:
            return
        if not await self._waitActive(serverId, deadline):
            self.driverErrors.append(f"server {serverId} never became ACTIVE: not deleted")
            return

        async def destroy() -> Any:
            return await serverops.destroyServer(self.db, self.registry, user, serverId)

        await self._retrying(f"delete {serverId}", destroy, deadline)

    async def drive(
        self,
        count: int = 200,
        deleteEvery: int = 2,
        concurrency: int = 25,
        fault: Callable[[], Awaitable[Any]] | None = None,
        faultAfter: float = 0.3,
        timeout: float = 90.0,
    ) -> None:
        """
        Create C{count} servers (C{concurrency} at a time) and delete every
        C{deleteEvery}-th once it is ACTIVE; once C{faultAfter} of the
        creates are submitted, run C{fault()} meanwhile.
        """
        deadline = time.monotonic() + timeout
        semaphore = DeferredSemaphore(concurrency)
        threshold = max(1, int(count * faultAfter))

        async def one(index: int) -> None:
            await self._lifecycle(index, deleteEvery > 0 and index % deleteEvery == 0, deadline)

        async def injector() -> bool:
            while len(self.created) < threshold:
                if time.monotonic() > deadline:
                    return False
                await sleep(0.05)
            if fault is not None:
                await fault()
            return True

        injected = Deferred.fromCoroutine(injector())
        work = [semaphore.run(Deferred.fromCoroutine, one(i)) for i in range(count)]
        results = await gatherResults(work, consumeErrors=True)
        assert len(results) == count
        if not await injected:
            raise AssertionError(f"the fault was never injected: {self.driverErrors[-5:]}")

    # -- the checker ---------------------------------------------------------------------

    async def _rows(self, sql: str, args: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        return list(await self.db.runQuery(sql, tuple(args)))

    async def check(self) -> Report:
        """
        Compare every server with the cluster and read the audit.
        """
        report = Report()
        truth = await self.cluster.truth(self.prefix)
        rows = await self._rows(
            "SELECT id, operstate, deleted, backendjobid, backendjobstatus FROM servers ORDER BY id"
        )
        known = set()
        for serverId, operstate, deleted, jobId, jobStatus in rows:
            known.add(naming.instanceName(serverId, self.prefix))
            report.servers += 1
            want = truth.expected(naming.instanceName(serverId, self.prefix))
            if want is None:
                continue
            if want.deleted:
                report.deleted += 1
            else:
                report.live += 1
            got = Expected(operstate, bool(deleted), jobId, jobStatus)
            if got != want:
                report.mismatches.append(f"server {serverId}: database {got}, Ganeti {want}")
        for name in truth.instances:
            if name not in known:
                report.orphans.append(f"instance {name} has no server")
        for serverId, jobId, jobStatus, xids in await self._rows(
            "SELECT server_id, jobid, jobstatus, count(DISTINCT xid) FROM faults_server_writes"
            " WHERE jobid IS NOT NULL AND jobid > 0 AND jobstatus IS NOT NULL"
            " GROUP BY server_id, jobid, jobstatus HAVING count(DISTINCT xid) > 1"
        ):
            report.doubleApplied.append(f"server {serverId}: job {jobId} {jobStatus} applied in {xids} transactions")
        for serverId, old, new, jobId, jobStatus in await self._rows(
            "SELECT server_id, old_backendtime, new_backendtime, jobid, jobstatus FROM faults_server_writes"
            " WHERE old_backendtime IS NOT NULL AND (new_backendtime IS NULL OR new_backendtime < old_backendtime)"
        ):
            report.regressions.append(
                f"server {serverId}: backendtime went back from {old} to {new} (job {jobId} {jobStatus})"
            )
        for commissionId, old, new in await self._rows(
            "SELECT commission_id, old_state, new_state FROM faults_commission_writes WHERE old_state <> 'pending'"
        ):
            report.commissions.append(f"commission {commissionId} resolved again: {old} -> {new}")
        for (pending,) in await self._rows("SELECT count(*) FROM commissions WHERE state = 'pending'"):
            if pending:
                report.commissions.append(f"{pending} commissions still pending")
        live = report.live
        want = {
            "cyclades.vm": live,
            "cyclades.cpu": live * self.flavor.cpu,
            "cyclades.total_cpu": live * self.flavor.cpu,
            "cyclades.ram": live * self.flavor.ram * (1 << 20),
            "cyclades.total_ram": live * self.flavor.ram * (1 << 20),
        }
        for quota in await QuotaRepository(self.db).holdings(self.project.id):
            if quota.user_id is not None:
                continue
            if quota.pending:
                report.quotas.append(f"{quota.resource}: {quota.pending} pending")
            if quota.resource in want and quota.usage != want[quota.resource]:
                report.quotas.append(
                    f"{quota.resource}: usage {quota.usage}, {want[quota.resource]} servers' worth live"
                )
        return report

    async def converge(self, timeout: float = 60.0) -> Report:
        """
        Wait until the cluster is idle and the database agrees with it (or
        the timeout), then the checker's report.
        """
        deadline = time.monotonic() + timeout
        report = Report()
        while time.monotonic() < deadline:
            try:
                truth = await self.cluster.truth(self.prefix)
                report = await self.check() if truth.idle() else Report()
            except Exception as e:  # database or RAPI still restarting
                log.info("check failed: {error}", error=repr(e))
            else:
                if truth.idle() and not report.mismatches and not report.quotas and not report.commissions:
                    report.deadLetters = await self.deadLetters()
                    report.drift = await self.drift()
                    return report
            await sleep(0.5)
        report = await self.check()
        report.deadLetters = await self.deadLetters()
        report.drift = await self.drift()
        return report

    async def drift(self) -> list[str]:
        """
        What a reconciliation pass (report only, no fixes) finds on every
        backend: nothing, once the dispatcher kept up. Called once the
        cluster is idle, so with no grace period: nothing is in flight.
        """
        from synnefo_twisted.logic.reconcile import Thresholds
        from synnefo_twisted.reconciler.shell import reconcileServers

        found: list[str] = []
        for backend in await self.registry.backends():
            result = await reconcileServers(
                self.db,
                backend,
                self.registry.clientFor(backend),
                lambda: datetime.now(UTC),
                prefix=self.prefix,
                thresholds=Thresholds(grace=timedelta(0)),
            )
            found.extend(f"reconcile: {finding.row()}" for finding in result.findings)
        return found

    async def deleteQueues(self) -> None:
        """
        Delete this test's eight queues (clean-up): its cluster queues are
        bound to the key every cluster message uses, so left behind they
        would fill up with the messages of later runs.
        """
        bus = openBus(realservices.AMQP_URL, reactor)
        await bus.startService()
        try:
            client = bus._client
            ch = await client.openChannel()
            for queue in synnefoTopology(self.prefix).queues:
                await ch.queue_delete(queue=queue.name)
            await client.closeChannel(ch)
        finally:
            await bus.stopService()

    async def deadLetters(self, wait: float = 1.0) -> list[str]:
        """
        The messages in this test's dead-letter queues (drained): under
        faults nothing well-formed may end there, since a dead letter is an
        update the database did not get.
        """
        bus = openBus(realservices.AMQP_URL, reactor)
        await bus.startService()
        found: list[str] = []
        try:
            await bus.declare(synnefoTopology(self.prefix))
            names = eventQueues(self.prefix)
            consumers = []
            for queue in (names.op, names.network, names.progress, names.cluster):

                def handle(message: Any, queue: str = queue) -> None:
                    found.append(f"{queue}-dl: {message.headers!r} {message.body[:200]!r}")
                    message.ack()

                consumers.append(await bus.consume(f"{queue}-dl", handle))
            await sleep(wait)
            for consumer in consumers:
                await consumer.stop()
        finally:
            await bus.stopService()
        return found

    def assertConverged(self, report: Report, created: int) -> None:
        tc = self.testCase
        problems = report.problems()
        tc.assertEqual(problems[:30], [], f"{len(problems)} problems; dispatcher logs:\n{self.logTail()}")
        tc.assertEqual(len(self.created), created, self.driverErrors[-10:])
        tc.assertGreater(report.live, 0)
        tc.assertGreater(report.deleted, 0)

    def logTail(self, lines: int = 40) -> str:
        out = []
        for node in self.dispatchers:
            out.append(f"--- {getattr(node, 'name', '?')}")
            out.append("\n".join(node.output().splitlines()[-lines:]))
        return "\n".join(out)


async def _run(fault: Callable[[], Awaitable[Any]]) -> None:
    await fault()
