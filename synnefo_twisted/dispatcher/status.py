# -*- test-case-name: tests.dispatcher.test_status -*-
"""
The dispatcher status round trip (spec §2.5 C{--status-check}; issue 5
item 3), over the bus:

 1. C{snf-manage dispatcher-status} (L{statusCheck}) declares a reply queue,
    publishes C{{"action": "status-check", "reply_to": <key>, "id": ...}}
    to exchange C{ganeti} with key C{<p>.dispatcher.status} (queue
    C{<p>-dispatcher-status}, shared by every dispatcher: one answers);
 2. the dispatcher (L{StatusResponder}) asks each backend's RAPI for its
    info and submits the dry-run heartbeat C{AddClusterTags(
    ["snf:eventd:heartbeat:<host>:<pid>"], dry_run=True)};
 3. the watcher sees the job and publishes C{eventd-heartbeat} with key
    C{eventd.heartbeat}, which reaches the dispatcher's own heartbeat queue;
 4. the dispatcher replies C{{"status": {cluster: {"RAPI": "ok|fail",
    "eventd": "ok|fail"}}}} once every heartbeat came or C{timeout} passed.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Mapping
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.logger import Logger

from synnefo_twisted.bus.topology import (
    GANETI_EXCHANGE,
    HEARTBEAT_ROUTING_KEY,
    Binding,
    Exchange,
    Queue,
    Topology,
    queuePrefix,
)
from synnefo_twisted.ganeti.events import HEARTBEAT, HEARTBEAT_TAG

log = Logger()

QUEUE_EXPIRES_MS = 600_000


class NoAnswer(Exception):
    """
    No dispatcher answered the status check in time.
    """


def requestKey(prefix: str) -> str:
    return f"{queuePrefix(prefix)}.dispatcher.status"


def requestQueue(prefix: str) -> str:
    return f"{queuePrefix(prefix)}-dispatcher-status"


def _processTag() -> str:
    return f"{socket.gethostname()}-{os.getpid()}".replace(".", "_")


def _timeout(reactor: Any, d: Deferred[Any], seconds: float) -> None:
    call = reactor.callLater(seconds, d.cancel)

    def cancelTimer(result: object) -> object:
        if call.active():
            call.cancel()
        return result

    d.addBoth(cancelTimer)


class StatusResponder(Service):
    """
    The dispatcher's side: answers status checks.

    @param registry: the L{IBackendRegistry} of the backends to check.
    """

    def __init__(self, reactor: Any, bus: Any, registry: Any, prefix: str = "snf-", timeout: float = 5.0) -> None:
        self._reactor = reactor
        self._bus = bus
        self._registry = registry
        self._prefix = prefix
        self._timeout = timeout
        tag = _processTag()
        p = queuePrefix(prefix)
        self.heartbeatQueue = f"{p}-dispatcher-heartbeat-{tag}"
        self._heartbeatTag = f"{HEARTBEAT_TAG}:{tag}"
        self._waiting: dict[tuple[str, int], Deferred[None]] = {}
        self._early: set[tuple[str, int]] = set()
        self._consumers: list[Any] = []
        self._checks: set[Deferred[None]] = set()

    def topology(self) -> Topology:
        expiring = {"x-expires": QUEUE_EXPIRES_MS}
        return Topology(
            exchanges=(Exchange(GANETI_EXCHANGE, "topic", True),),
            queues=(
                Queue(requestQueue(self._prefix), durable=False, arguments=expiring),
                Queue(self.heartbeatQueue, durable=False, arguments=expiring),
            ),
            bindings=(
                Binding(requestQueue(self._prefix), GANETI_EXCHANGE, requestKey(self._prefix)),
                Binding(self.heartbeatQueue, GANETI_EXCHANGE, HEARTBEAT_ROUTING_KEY),
            ),
        )

    def startService(self) -> Deferred[None]:
        Service.startService(self)
        return Deferred.fromCoroutine(self._start())

    async def _start(self) -> None:
        await self._bus.declare(self.topology())
        self._consumers.append(await self._bus.consume(self.heartbeatQueue, self._heartbeat, 100))
        self._consumers.append(await self._bus.consume(requestQueue(self._prefix), self._request, 4))

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        for d in list(self._waiting.values()):
            d.cancel()
        consumers, self._consumers = self._consumers, []
        dl: Deferred[Any] = DeferredList([c.stop() for c in consumers] + list(self._checks), consumeErrors=True)
        return dl.addCallback(lambda _: None)

    def _heartbeat(self, message: Any) -> None:
        message.ack()
        try:
            body = json.loads(message.body)
            key = (str(body["cluster"]), int(body["jobId"]))
        except (ValueError, KeyError, TypeError):
            log.warn("ignoring a malformed heartbeat: {body!r}", body=message.body[:200])
            return
        if body.get("type") != HEARTBEAT:
            return
        waiter = self._waiting.pop(key, None)
        if waiter is not None:
            waiter.callback(None)
        else:
            self._early.add(key)

    def _request(self, message: Any) -> Deferred[None] | None:
        try:
            body = json.loads(message.body)
            replyTo = str(body["reply_to"])
            checkId = str(body.get("id", ""))
        except (ValueError, KeyError, TypeError):
            return message.deadLetter("malformed status-check request")
        message.ack()
        d = Deferred.fromCoroutine(self._check(replyTo, checkId))
        self._checks.add(d)
        d.addBoth(lambda _: self._checks.discard(d))
        d.addErrback(lambda f: log.failure("answering a status check", f))
        return None

    async def _check(self, replyTo: str, checkId: str) -> None:
        status = await self.check()
        body = {"action": "status-check", "id": checkId, "status": status}
        await self._bus.publish(GANETI_EXCHANGE, replyTo, json.dumps(body).encode(), persistent=False)

    async def check(self) -> dict[str, dict[str, str]]:
        """
        C{{cluster: {"RAPI": "ok|fail", "eventd": "ok|fail"}}} for every
        backend that is not offline.
        """
        backends = [b for b in await self._registry.backends() if not b.offline]
        results = await DeferredList(
            [Deferred.fromCoroutine(self._checkBackend(b)) for b in backends], consumeErrors=True
        )
        status: dict[str, dict[str, str]] = {}
        for backend, (ok, value) in zip(backends, results, strict=True):
            status[backend.clustername] = value if ok else {"RAPI": "fail", "eventd": "fail"}
        return status

    async def _checkBackend(self, backend: Any) -> dict[str, str]:
        client = self._registry.clientFor(backend)
        out = {"RAPI": "fail", "eventd": "fail"}
        try:
            info = client.getInfo()
            _timeout(self._reactor, info, self._timeout)
            await info
            out["RAPI"] = "ok"
            submitted = client.addClusterTags([self._heartbeatTag], dryRun=True)
            _timeout(self._reactor, submitted, self._timeout)
            jobId = int(await submitted)
        except Exception as e:
            log.info("status check of {cluster}: {error}", cluster=backend.clustername, error=repr(e))
            return out
        key = (backend.clustername, jobId)
        if key in self._early:
            self._early.discard(key)
            out["eventd"] = "ok"
            return out
        waiter: Deferred[None] = Deferred()
        self._waiting[key] = waiter
        _timeout(self._reactor, waiter, self._timeout)
        try:
            await waiter
        except Exception:
            self._waiting.pop(key, None)
            return out
        out["eventd"] = "ok"
        return out


async def statusCheck(reactor: Any, bus: Any, prefix: str = "snf-", timeout: float = 15.0) -> Mapping[str, Any]:
    """
    Ask a running dispatcher for the status of every backend.

    @raise NoAnswer: no dispatcher answered within C{timeout} seconds.
    """
    tag = _processTag()
    p = queuePrefix(prefix)
    replyQueue = f"{p}-check-{tag}"
    replyKey = f"{p}.dispatcher.reply.{tag}"
    await bus.declare(
        Topology(
            exchanges=(Exchange(GANETI_EXCHANGE, "topic", True),),
            queues=(Queue(replyQueue, durable=False, arguments={"x-expires": QUEUE_EXPIRES_MS}),),
            bindings=(Binding(replyQueue, GANETI_EXCHANGE, replyKey),),
        )
    )
    checkId = uuid.uuid4().hex
    answer: Deferred[Mapping[str, Any]] = Deferred()

    def reply(message: Any) -> None:
        message.ack()
        try:
            body = json.loads(message.body)
        except ValueError:
            return
        if isinstance(body, dict) and body.get("id") == checkId and not answer.called:
            answer.callback(body.get("status") or {})

    consumer = await bus.consume(replyQueue, reply, 10)
    try:
        request = {"action": "status-check", "reply_to": replyKey, "id": checkId}
        await bus.publish(GANETI_EXCHANGE, requestKey(prefix), json.dumps(request).encode(), persistent=False)
        _timeout(reactor, answer, timeout)
        try:
            return await answer
        except Exception:
            raise NoAnswer(f"no dispatcher answered within {timeout:g} s") from None
    finally:
        await consumer.stop()
        await bus.deleteQueue(replyQueue)
