"""
Issue 5 item 5 once against the real Ganeti 3.0 cluster, with RabbitMQ and
PostgreSQL: a server's create, reboot, stop, start and remove jobs run on
the real cluster; the watcher reads the real job queue (inotify) and
publishes to RabbitMQ; the dispatcher applies the messages to PostgreSQL.
The database learns every state only that way.

The actions go through L{synnefo_twisted.logic.serverops} (real RAPI). The
create job is submitted with the RAPI parameters the lab's C{noop} OS
accepts (the API's C{CreateInstance} carries snf-image's OS parameters,
which C{noop} refuses), then recorded as the API records it
(L{DispatchRepository.recordSubmittedJob}). Names use a prefix of the
test's own (C{d<hex>-<id>}), so other runs on the shared cluster do not
collide and their events are not routed here.
"""

from __future__ import annotations

import uuid
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.python.filepath import FilePath

from synnefo_twisted.backends import BackendRegistry
from synnefo_twisted.bus import openBus
from synnefo_twisted.db import openDatabase
from synnefo_twisted.db.dispatch import DispatchRepository
from synnefo_twisted.db.repositories import (
    BackendRepository,
    FlavorRepository,
    ServerRepository,
    UserRepository,
)
from synnefo_twisted.dispatcher.service import DispatcherService, DispatcherSettings
from synnefo_twisted.ganeti import naming
from synnefo_twisted.ganeti.details import ConfigDataDetails
from synnefo_twisted.ganeti.errors import GanetiError
from synnefo_twisted.ganeti.published import PublishedState
from synnefo_twisted.ganeti.watcher import JobQueueWatcher
from synnefo_twisted.logic import serverops
from tests.integration import realservices
from tests.integration.db.test_postgres import SchemaMixin, withSearchPath
from tests.integration.ganeti import realcluster
from tests.integration.ganeti.test_rapi_real import QuiescingTestCase, realClient
from tests.logic.dispatchfixture import makeFixture


class RealGanetiLifecycleTests(SchemaMixin, QuiescingTestCase):
    timeout = 300

    async def test_lifecycle(self) -> None:
        """
        On the real cluster: create → STARTED (create commission accepted), reboot → STARTED, stop → STOPPED,
        start → STARTED, destroy → deleted; each state written only by the dispatcher, from the real job files.
        """
        queue = FilePath(realcluster.QUEUE_DIR)
        if not queue.isdir():
            self.fail(realcluster.MISSING)
        prefix = "d" + uuid.uuid4().hex[:8] + "-"
        db = openDatabase(withSearchPath(realservices.PG_URL, self.makeSchema()), reactor, poolSize=4)
        await db.startService()
        self.addCleanup(db.stopService)
        fx = await makeFixture(db)
        rapi = realClient(realcluster.USER, realcluster.PASSWORD)
        clustername = (await rapi.getInfo())["name"]
        backend = await BackendRepository(db).add(
            clustername,
            realcluster.RAPI_URL,
            username=realcluster.USER,
            password=realcluster.PASSWORD,
            hypervisor="fake",
            caPEM=realcluster.pinnedCert().decode(),
        )
        fx.backendId = backend.id
        # what the create job's beparams say (the dispatcher moves the server to it)
        small = await FlavorRepository(db).create(1, 128, 10, fx.volumeTypeId)
        registry = BackendRegistry(db, prefix, reactor)

        bus = openBus(realservices.AMQP_URL, reactor)
        await bus.startService()
        self.addCleanup(bus.stopService)
        watcher = JobQueueWatcher(
            reactor,
            bus,
            queue,
            PublishedState(FilePath(self.mktemp())),
            dataDir=FilePath(realcluster.DATA_DIR),
            details=ConfigDataDetails(FilePath(realcluster.DATA_DIR).child("config.data")),
            nodeName=realcluster.NODE,
            rescanInterval=3600,
        )
        await watcher.startService()
        self.addCleanup(watcher.stopService)
        dispatcher = DispatcherService(reactor, db, bus, DispatcherSettings(prefix=prefix))
        await dispatcher.startService()
        self.addCleanup(dispatcher.stopService)

        async def dropQueues() -> None:
            for family in ("op", "network", "progress", "cluster"):
                name = f"{prefix.rstrip('-')}-events-{family}"
                await bus.deleteQueue(name)
                await bus.deleteQueue(f"{name}-dl")

        self.addCleanup(dropQueues)

        built = await fx.server(task="BUILD", jobId=None, tags=())
        name = naming.instanceName(built.id, prefix)

        async def removeLeftover() -> None:
            try:
                await rapi.waitForJob(await rapi.deleteInstance(name), timeout=120)
            except GanetiError:
                pass

        self.addCleanup(removeLeftover)
        servers = ServerRepository(db)

        async def reached(operstate: str, deleted: bool = False) -> Any:
            server = None
            for _ in range(1200):
                server = await servers.get(built.id)
                assert server is not None
                if server.operstate == operstate and server.task is None and server.deleted == deleted:
                    return server
                await deferLater(reactor, 0.1, lambda: None)
            raise AssertionError(f"server never {operstate}: {server}")

        jobId = await rapi.createInstance(
            name,
            "file",
            [{"size": 32, "name": naming.volumeName(built.volumeId, prefix)}],
            [],
            os="noop",
            pnode=realcluster.NODE,
            hypervisor="fake",
            beparams={"maxmem": 128, "minmem": 128, "vcpus": 1},
            ip_check=False,
            name_check=False,
            wait_for_sync=False,
        )
        await DispatchRepository(db).recordSubmittedJob(built.id, jobId, backendJob=True)
        server = await reached("STARTED")
        self.assertEqual(
            (server.backendjobid, server.backendopcode, server.flavor_id), (jobId, "OP_INSTANCE_CREATE", small.id)
        )
        self.assertEqual(await fx.holding("cyclades.vm"), (1, 0))
        rows = await db.runQuery("SELECT status FROM volumes WHERE id = %s", (built.volumeId,))
        self.assertEqual([tuple(r) for r in rows], [("IN_USE",)])

        user = await UserRepository(db).byUUID(fx.userid)
        assert user is not None
        await serverops.rebootServer(db, registry, user, built.id, "HARD")
        server = await reached("STARTED")
        self.assertEqual(server.backendopcode, "OP_INSTANCE_REBOOT")
        await serverops.stopServer(db, registry, user, built.id)
        await reached("STOPPED")
        await serverops.startServer(db, registry, user, built.id)
        await reached("STARTED")
        await serverops.destroyServer(db, registry, user, built.id)
        server = await reached("DESTROYED", deleted=True)
        self.assertEqual(server.backendopcode, "OP_INSTANCE_REMOVE")
        self.assertEqual(await fx.holding("cyclades.vm"), (0, 0))
        self.assertEqual(dispatcher.counts["deadLettered"], 0)
