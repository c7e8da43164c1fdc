"""
Property (hypothesis): whatever the interleaving, duplication and delay of
the messages of a set of jobs, applying them with
L{synnefo_twisted.logic.dispatchapply.applyMessage} ends in the same
database state as in-order delivery.

Each example builds two fresh databases with the same servers (as the API
leaves them: BUILD, a pending create commission, a port with an address, a
volume, a tag), applies the scenario's messages in event-time order to
one and in the drawn order (with repeats) to the other, and compares
everything the dispatcher writes: servers, ports, addresses and pools,
volumes, tags, diagnostics, commissions and quotas.

Hypothesis drives a synchronous function in a worker thread; each example's
asynchronous work runs on the reactor through C{blockingCallFromThread}.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import reactor as _globalReactor  # noqa: N812  (real threads: SQLite)
from twisted.internet.defer import Deferred
from twisted.internet.threads import blockingCallFromThread, deferToThread
from twisted.trial.unittest import TestCase

from synnefo_twisted.db import openDatabase
from synnefo_twisted.logic.dispatchapply import applyMessage
from tests.logic.dispatchfixture import BuiltServer, DispatchFixture, at, makeFixture, opMessage

EXAMPLES = int(os.environ.get("SNF_PROPERTY_EXAMPLES", "50"))

ACTIONS = ("OP_INSTANCE_STARTUP", "OP_INSTANCE_SHUTDOWN", "OP_INSTANCE_REBOOT", "OP_INSTANCE_SET_PARAMS", "OP_TAGS_SET")


@attrs.frozen
class Job:
    opcode: str
    statuses: tuple[str, ...]
    variant: int


@attrs.frozen
class ServerScript:
    jobs: tuple[Job, ...]
    taskRecorded: bool
    progress: tuple[int, ...]


@attrs.frozen
class Message:
    """
    One message of the scenario: its family, its event time (its rank in
    in-order delivery) and how to build its body for the servers made.
    """

    kind: str
    seconds: float
    build: Callable[[DispatchFixture, list[BuiltServer]], dict[str, Any]]


@st.composite
def serverScripts(draw: Any) -> ServerScript:
    createFinal = draw(st.sampled_from(["success", "success", "error", "canceled"]))
    jobs = [Job("OP_INSTANCE_CREATE", draw(_prefix()) + (createFinal,), 0)]
    if createFinal == "success":
        for _ in range(draw(st.integers(0, 4))):
            opcode = draw(st.sampled_from(ACTIONS))
            final = draw(st.sampled_from(["success", "success", "error"]))
            jobs.append(Job(opcode, draw(_prefix()) + (final,), draw(st.integers(0, 3))))
        if draw(st.booleans()):
            final = draw(st.sampled_from(["success", "error-gone", "error"]))
            jobs.append(Job("OP_INSTANCE_REMOVE", draw(_prefix()) + (final,), 0))
    progress = tuple(sorted(draw(st.lists(st.integers(0, 120), max_size=3))))
    return ServerScript(tuple(jobs), draw(st.booleans()), progress)


def _prefix() -> Any:
    return st.tuples(st.booleans(), st.booleans()).map(
        lambda flags: tuple(s for s, on in zip(("queued", "running"), flags, strict=True) if on)
    )


def _details(fx: DispatchFixture, server: BuiltServer, variant: int, nicGone: bool) -> dict[str, Any]:
    nics = [] if nicGone else [
        {"name": f"snf-nic-{server.portId}", "network": f"snf-net-{fx.networkId}", "ip": server.address,
         "mac": f"aa:00:{server.portId >> 8 & 255:02x}:{server.portId & 255:02x}:00:{variant:02x}", "firewall": ("protected", "enabled", "disabled", "")[variant]}
    ]  # fmt: skip
    return {
        "instance_nics": nics,
        "instance_disks": [{"name": f"snf-vol-{server.volumeId}", "size": 10240 * (1 + variant % 2)}],
        "instance_hvparams": {"boot_order": "cdrom" if variant == 2 else "disk", "cdrom_image_path": "/r.iso"},
    }


def messagesOf(index: int, script: ServerScript, jobBase: int) -> list[Message]:
    """
    The messages a server's jobs produce, with increasing event times (Ganeti
    runs one instance's jobs one after the other).
    """
    out: list[Message] = []
    seconds = 0.0
    nicGone = False
    for number, job in enumerate(script.jobs):
        jobId = jobBase + number
        # A consistent history: once the NIC is gone from Ganeti (variant 1
        # of a job carrying details), later jobs do not show it again.
        carries = job.opcode in ("OP_INSTANCE_STARTUP", "OP_INSTANCE_SET_PARAMS")
        nicGone = nicGone or (carries and job.variant == 1)
        for status in job.statuses:
            seconds += 1.0
            if job.opcode == "OP_INSTANCE_CREATE" and status == "running":
                for step, value in enumerate(script.progress):
                    out.append(_progress(index, value, seconds + 0.1 * (step + 1)))
                seconds += 1.0
            out.append(Message("op", seconds, _op(index, job, jobId, status, seconds, nicGone)))
    return out


def _progress(index: int, value: int, seconds: float) -> Message:
    def build(fx: DispatchFixture, servers: list[BuiltServer]) -> dict[str, Any]:
        base = {"instance": f"snf-{servers[index].id}", "event_time": at(seconds)}
        if value > 100:
            return {**base, "type": "image-info", "messages": [f"at {value}"]}
        return {**base, "type": "image-copy-progress", "progress": value}

    return Message("progress", seconds, build)


def _op(index: int, job: Job, jobId: int, status: str, seconds: float, nicGone: bool) -> Callable[..., dict[str, Any]]:
    def build(fx: DispatchFixture, servers: list[BuiltServer]) -> dict[str, Any]:
        server = servers[index]
        extra: dict[str, Any] = {}
        real = "error" if status == "error-gone" else status
        if status == "error-gone":
            extra["logmsg"] = f"Instance 'snf-{server.id}' not known"
        final = real in ("success", "error", "canceled")
        if job.opcode in ("OP_INSTANCE_CREATE", "OP_INSTANCE_STARTUP") and real == "success":
            extra.update(_details(fx, server, job.variant, nicGone))
        if job.opcode == "OP_INSTANCE_SET_PARAMS" and final:
            extra.update(_details(fx, server, job.variant, nicGone))
            if real == "success":
                cpu, ram = (4, 2048) if job.variant % 2 else (2, 1024)
                extra["job_fields"] = {"beparams": {"vcpus": cpu, "maxmem": ram}}
        if job.opcode == "OP_TAGS_SET":
            extra.update(tags=[f"t{job.variant}"], job_fields={"dry_run": job.variant == 3})
        return opMessage(server.id, job.opcode, real, jobId, seconds, **extra)

    return build


@attrs.frozen
class Scenario:
    scripts: tuple[ServerScript, ...]
    order: tuple[int, ...]
    repeats: tuple[tuple[int, int], ...]

    def messages(self) -> list[Message]:
        out: list[Message] = []
        for index, script in enumerate(self.scripts):
            out.extend(messagesOf(index, script, 100 * (index + 1)))
        return out


@st.composite
def scenarios(draw: Any) -> Scenario:
    scripts = tuple(draw(st.lists(serverScripts(), min_size=1, max_size=3)))
    count = sum(len(messagesOf(i, s, 0)) for i, s in enumerate(scripts))
    order = tuple(draw(st.permutations(range(count))))
    repeats = tuple(draw(st.lists(st.tuples(st.integers(0, count - 1), st.integers(0, count)), max_size=4)))
    return Scenario(scripts, order, repeats)


async def _run(scenario: Scenario, shuffled: bool) -> Any:
    db = openDatabase("sqlite:///:memory:", _globalReactor)
    await db.startService()
    try:
        fx = await makeFixture(db)
        servers = []
        for index, script in enumerate(scenario.scripts):
            createJob = 100 * (index + 1)
            servers.append(await fx.server(jobId=createJob if script.taskRecorded else None))
        messages = scenario.messages()
        if shuffled:
            delivery = [messages[i] for i in scenario.order]
            for source, position in scenario.repeats:
                delivery.insert(position, delivery[source])
        else:
            delivery = sorted(messages, key=lambda m: m.seconds)
        for message in delivery:
            await applyMessage(db, message.kind, message.build(fx, servers))
        return await fx.snapshot([s.id for s in servers])
    finally:
        await db.stopService()


class ConvergenceTests(TestCase):
    timeout = 600

    def test_anyOrderConverges(self) -> None:
        """
        For any jobs of up to three servers (create success/error/cancel, start, stop, reboot, resize with NICs,
        disks and rescue, tags, remove), any delivery order with repeats gives the in-order database state.
        """

        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        @given(scenarios())
        def converges(scenario: Scenario) -> None:
            inOrder = blockingCallFromThread(_globalReactor, lambda: Deferred.fromCoroutine(_run(scenario, False)))
            anyOrder = blockingCallFromThread(_globalReactor, lambda: Deferred.fromCoroutine(_run(scenario, True)))
            for table in inOrder:
                assert anyOrder[table] == inOrder[table], (table, inOrder[table], anyOrder[table])

        return deferToThread(converges)  # type: ignore[return-value]
