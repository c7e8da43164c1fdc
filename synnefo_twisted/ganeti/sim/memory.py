# -*- test-case-name: tests.ganeti.test_sim_memory -*-
"""
The simulated cluster without sockets, for other components' unit tests:
the same model, job queue and RAPI resource, reached by a L{RapiClient}
through L{treq.testing.StubTreq}, with the job queue on the given clock
(a L{twisted.internet.task.Clock} makes it deterministic). It passes the
same RAPI contract suite as the real cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import attrs
from treq.testing import StubTreq
from twisted.python.filepath import FilePath

from synnefo_twisted.ganeti.rapi import RapiClient, Requester
from synnefo_twisted.ganeti.sim.model import SimCluster
from synnefo_twisted.ganeti.sim.queue import JobQueue
from synnefo_twisted.ganeti.sim.rapi import SimRapi
from synnefo_twisted.ganeti.sim.service import Consoles

USER = "synnefo"
PASSWORD = "synnefo-sim"
READ_USER = "reader"
READ_PASSWORD = "reader-sim"


class FixedConsoles:
    """
    Console ports for running instances without listening (5900 + n): for
    tests that only look at the console call's answer.
    """

    def __init__(self, cluster: SimCluster) -> None:
        self._cluster = cluster
        self._ports: dict[str, int] = {}

    def portFor(self, name: str) -> int | None:
        inst = self._cluster.instances.get(name)
        if inst is None or not inst.operUp:
            return None
        port = self._ports.setdefault(name, 5900 + len(self._ports) + 1)
        inst.consolePort = port
        return port


@attrs.define
class InMemoryCluster:
    """
    A simulated cluster and a client for it.

    @ivar client: a write-user L{RapiClient}.
    @ivar readOnlyClient: a read-only-user client.
    """

    clock: Any
    cluster: SimCluster
    queue: JobQueue
    rapi: SimRapi
    client: RapiClient
    readOnlyClient: RapiClient

    @classmethod
    def create(
        cls,
        clock: Any,
        queueDir: FilePath[str] | None = None,
        cluster: SimCluster | None = None,
        consoleReactor: Any = None,
        durations: Mapping[str, float] | None = None,
        defaultDuration: float = 0.1,
        pollInterval: float = 0.1,
        **queueArgs: Any,
    ) -> InMemoryCluster:
        """
        @param consoleReactor: an C{IReactorTCP} to run real RFB consoles
            on; without one, console calls answer fixed ports nobody
            listens on.
        @param queueDir: where to write job files (none when None).
        """
        cluster = cluster or SimCluster()
        queue = JobQueue(clock, cluster, queueDir, durations=durations, defaultDuration=defaultDuration, **queueArgs)
        consoles: Any = Consoles(consoleReactor, cluster) if consoleReactor is not None else FixedConsoles(cluster)
        if consoleReactor is not None:
            queue.onApplied = lambda op: (
                consoles.sync(op["instance_name"]) if isinstance(op.get("instance_name"), str) else None
            )
        users = {USER: (PASSWORD, "write"), READ_USER: (READ_PASSWORD, "read")}
        rapi = SimRapi(cluster, queue, users, consoles=consoles)
        stub = cast(Requester, StubTreq(rapi.app.resource()))
        client = RapiClient(clock, "http://simulated-cluster", stub, USER, PASSWORD, pollInterval=pollInterval)
        reader = RapiClient(
            clock, "http://simulated-cluster", stub, READ_USER, READ_PASSWORD, pollInterval=pollInterval
        )
        return cls(clock, cluster, queue, rapi, client, reader)

    def clientFor(self, user: str, password: str) -> RapiClient:
        """
        Another client (e.g. with wrong credentials).
        """
        stub = cast(Requester, StubTreq(self.rapi.app.resource()))
        return RapiClient(
            self.clock, "http://simulated-cluster", stub, user, password, pollInterval=self.client.pollInterval
        )
