"""
Proof under faults on real RabbitMQ and PostgreSQL with the simulated
Ganeti cluster (issue 5): while 200 servers are created and half of them
deleted again, RabbitMQ is restarted, PostgreSQL is restarted, the
dispatchers lose PostgreSQL for longer than their retry budget, the
dispatcher is killed (SIGKILL) mid-transaction and again after its commits
but before its acks, the watcher is killed and restarted, or two
dispatchers compete for the same queues. Afterwards every server is in the
state the cluster has, no message was applied twice (the audit triggers of
L{tests.integration.faults.rig}), no committed update was lost (no
backendtime went back, every commission resolved exactly once, the quota
usage is the live servers', no dead letters), and a reconciliation pass
finds no drift.

Each scenario takes 15-50 s (200 servers, the simulated cluster's jobs
taking 0.05 s, creates 0.2 s).

The restart commands are C{SNF_TEST_AMQP_RESTART} and C{SNF_TEST_PG_RESTART}
(L{tests.integration.realservices}); point them at private instances while
developing, since they restart the services for every client.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import TestCase

from tests.integration.faults.rig import FaultRig, sleep

SERVERS = 200


class FaultScenarios(TestCase):
    """
    Each scenario: 200 servers created (25 at a time), every other one
    deleted once ACTIVE, one fault injected once 30% of them are created.
    """

    timeout = 180

    async def rig(self, dispatchers: int = 1) -> FaultRig:
        rig = FaultRig(self)
        await rig.start()
        await rig.startWatcher()
        for _ in range(dispatchers):
            await rig.startDispatcher()
        return rig

    async def prove(self, rig: FaultRig, fault: Any) -> None:
        await rig.drive(SERVERS, deleteEvery=2, fault=fault)
        report = await rig.converge(timeout=60)
        rig.assertConverged(report, SERVERS)
        self.assertGreaterEqual(report.live + report.deleted, SERVERS)

    async def test_brokerRestart(self) -> None:
        """
        RabbitMQ stopped for two seconds and started again: the watcher
        republishes what it owed, the dispatcher reconnects; nothing lost,
        nothing applied twice.
        """
        rig = await self.rig()
        await self.prove(rig, rig.restartBroker)

    async def test_databaseRestart(self) -> None:
        """
        PostgreSQL restarted (fast shutdown: open transactions aborted):
        the messages in flight are retried, not lost nor dead-lettered.
        """
        rig = await self.rig()
        await self.prove(rig, rig.restartDatabase)

    async def test_databaseUnreachable(self) -> None:
        """
        The dispatcher cut off PostgreSQL for six seconds (a partition:
        its connections dropped, new ones refused), longer than its retry
        budget for a failing message: the messages wait for the database
        instead of being dead-lettered.
        """
        rig = await self.rig()
        await self.prove(rig, rig.partitionDatabase)

    async def test_dispatcherKilled(self) -> None:
        """
        The dispatcher SIGKILLed twice while applying messages, started
        again each time: first anywhere (transactions cut short are rolled
        back, their messages redelivered and applied), then after its
        commits and before its acks (everything it sent to the broker held
        back for a second): the redelivered messages whose updates are
        committed change nothing the second time.
        """
        rig = await self.rig()
        survivor: list[Any] = []

        async def fault() -> None:
            await rig.restartDispatcher(rig.dispatchers[0])
            await sleep(1.0)
            survivor.append(await rig.killAfterCommit(rig.dispatchers[0]))

        await self.prove(rig, fault)
        handled = await rig.metric(survivor[0], "synnefo_dispatcher_messages_total")
        redelivered = sum(
            v for labels, v in handled.items() if 'kind="op"' in labels and 'outcome="applied"' not in labels
        )
        self.assertGreater(redelivered, 0, handled)

    async def test_watcherRestarted(self) -> None:
        """
        The watcher SIGKILLed and started again: it rescans the job queue,
        publishes what it owed (and maybe some again), nothing lost or applied twice.
        """
        rig = await self.rig()
        await self.prove(rig, rig.restartWatcher)

    async def test_twoDispatchers(self) -> None:
        """
        Two dispatcher processes consume the same queues for the whole run:
        the messages of one server, spread over both, still apply in order
        and once (the row lock and the event-time guards decide).
        """
        rig = await self.rig(dispatchers=2)
        await self.prove(rig, None)
        for node in rig.dispatchers:
            self.assertFalse(node.ended.called, node.output()[-2000:])
            handled = await rig.metric(node, "synnefo_dispatcher_messages_total")
            ops = sum(v for labels, v in handled.items() if 'kind="op"' in labels)
            self.assertGreater(ops, SERVERS / 10, handled)
