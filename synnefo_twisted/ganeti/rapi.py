# -*- test-case-name: tests.ganeti.test_rapi -*-
"""
A Ganeti RAPI (version 2) client on treq: L{RapiClient}.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, cast

import treq
from OpenSSL import SSL
from treq.client import HTTPClient
from twisted.internet import error as ierror
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.web.client import Agent, ResponseFailed
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from synnefo_twisted.ganeti import errors
from synnefo_twisted.ganeti.errors import (
    JobCanceled,
    JobNotFound,
    RapiConnectionError,
    RapiNotFound,
    RapiProtocolError,
    RapiServerError,
    RapiTimeout,
)
from synnefo_twisted.interfaces import IGanetiClient

log = Logger()

FINAL_JOB_STATUSES = frozenset({"success", "error", "canceled"})
_RETRY_HTTP = frozenset({502, 504})

Params = list[tuple[str, str]]


class Requester(Protocol):
    """
    What the client needs of treq's L{HTTPClient} (or L{treq.testing.StubTreq}).
    """

    def request(self, method: str, url: Any, **kwargs: Any) -> Deferred[Any]: ...


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def _flag(params: Params, name: str, value: bool) -> Params:
    if value:
        params.append((name, "1"))
    return params


@implementer(IGanetiClient)
class RapiClient:
    """
    Talks to one Ganeti cluster's RAPI.

    @param clock: for timeouts, retry delays and job polling.
    @param baseUrl: e.g. C{https://127.0.0.1:5080}.
    @param http: a treq L{HTTPClient} (see L{RapiClient.forURL}) or a
        L{treq.testing.StubTreq}.
    @param timeout: seconds for each HTTP exchange, including the body.
    @param readRetries: further attempts for reads (GET) after transport
        errors, timeouts and 502/504 answers. Job submissions are never
        retried: a lost answer may hide a submitted job.
    """

    def __init__(
        self,
        clock: IReactorTime,
        baseUrl: str,
        http: Requester,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        readRetries: int = 2,
        retryDelay: float = 0.5,
        pollInterval: float = 0.5,
    ) -> None:
        self._clock = clock
        self.baseUrl = baseUrl.rstrip("/")
        self._http = http
        self._auth = (username, password or "") if username else None
        self.timeout = timeout
        self.readRetries = readRetries
        self.retryDelay = retryDelay
        self.pollInterval = pollInterval

    @classmethod
    def forURL(
        cls,
        reactor: Any,
        baseUrl: str,
        username: str | None = None,
        password: str | None = None,
        tls: IPolicyForHTTPS | None = None,
        **kwargs: Any,
    ) -> RapiClient:
        """
        A client with its own treq L{HTTPClient} on C{reactor}, checking the
        server with the C{tls} policy (see L{synnefo_twisted.ganeti.tls}).
        """
        agent = Agent(reactor, contextFactory=tls) if tls is not None else Agent(reactor)
        return cls(reactor, baseUrl, cast(Requester, HTTPClient(agent)), username, password, **kwargs)

    # ------------------------------------------------------------------ core

    async def _once(self, method: str, path: str, params: Params | None, body: Any) -> Any:
        headers = {b"Accept": [b"application/json"]}
        kwargs: dict[str, Any] = {"headers": headers}
        if params:
            kwargs["params"] = params
        if body is not None:
            headers[b"Content-Type"] = [b"application/json"]
            kwargs["data"] = json.dumps(body).encode("utf-8")
        if self._auth is not None:
            kwargs["auth"] = self._auth
        try:
            response = await self._http.request(method, self.baseUrl + path, **kwargs)
            content = await treq.content(response)
        except (
            ierror.ConnectError,
            ierror.ConnectionLost,
            ResponseFailed,
            SSL.Error,
            ierror.DNSLookupError,
        ) as e:
            raise RapiConnectionError(f"{method} {self.baseUrl}{path}: {e}") from e
        code = response.code
        try:
            data = json.loads(content) if content.strip() else None
        except ValueError as e:
            if code >= 400:
                raise errors.errorForStatus(code, content[:200].decode("utf-8", "replace"), "", method, path) from e
            raise RapiProtocolError(f"{method} {path}: HTTP {code} with a non-JSON body") from e
        if code >= 400:
            if isinstance(data, dict):
                message, explain = str(data.get("message", "")), str(data.get("explain", ""))
            else:
                message, explain = str(data), ""
            raise errors.errorForStatus(code, message, explain, method, path)
        return data

    def _attempt(self, method: str, path: str, params: Params | None, body: Any) -> Deferred[Any]:
        d = Deferred.fromCoroutine(self._once(method, path, params, body))
        d.addTimeout(self.timeout, self._clock)

        def timedOut(f: Any) -> Any:
            f.trap(DeferredTimeout, ierror.TimeoutError, CancelledError)
            raise RapiTimeout(f"{method} {self.baseUrl}{path}: no answer within {self.timeout}s")

        return d.addErrback(timedOut)

    async def _read(self, path: str, params: Params | None = None) -> Any:
        attempt = 0
        while True:
            try:
                return await self._attempt("GET", path, params, None)
            except (RapiConnectionError, RapiTimeout, RapiServerError) as e:
                if isinstance(e, RapiServerError) and e.code not in _RETRY_HTTP:
                    raise
                if attempt >= self.readRetries:
                    raise
                delay = self.retryDelay * (2**attempt)
                attempt += 1
                log.info(
                    "RAPI read {path} failed ({error}); retry {attempt} in {delay}s",
                    path=path,
                    error=str(e),
                    attempt=attempt,
                    delay=delay,
                )
                await deferLater(self._clock, delay, lambda: None)

    def _get(self, path: str, params: Params | None = None) -> Deferred[Any]:
        return Deferred.fromCoroutine(self._read(path, params))

    def _submit(self, method: str, path: str, params: Params | None = None, body: Any = None) -> Deferred[int]:
        def jobId(result: Any) -> int:
            try:
                return int(result)
            except (TypeError, ValueError) as e:
                raise RapiProtocolError(f"{method} {path}: expected a job id, got {result!r}") from e

        return self._attempt(method, path, params, body).addCallback(jobId)

    # --------------------------------------------------------------- cluster

    def getVersion(self) -> Deferred[Any]:
        return self._get("/version")

    def getInfo(self) -> Deferred[Any]:
        return self._get("/2/info")

    def getNodes(self, bulk: bool = True) -> Deferred[Any]:
        return self._get("/2/nodes", _flag([], "bulk", bulk))

    def getNode(self, name: str) -> Deferred[Any]:
        return self._get(f"/2/nodes/{_quote(name)}")

    def getGroups(self, bulk: bool = True) -> Deferred[Any]:
        return self._get("/2/groups", _flag([], "bulk", bulk))

    def getGroup(self, name: str) -> Deferred[Any]:
        return self._get(f"/2/groups/{_quote(name)}")

    def getClusterTags(self) -> Deferred[Any]:
        return self._get("/2/tags")

    def addClusterTags(self, tags: Sequence[str], dryRun: bool = False) -> Deferred[int]:
        return self._submit("PUT", "/2/tags", _flag([("tag", t) for t in tags], "dry-run", dryRun))

    def deleteClusterTags(self, tags: Sequence[str], dryRun: bool = False) -> Deferred[int]:
        return self._submit("DELETE", "/2/tags", _flag([("tag", t) for t in tags], "dry-run", dryRun))

    # ------------------------------------------------------------- instances

    def getInstances(self, bulk: bool = True) -> Deferred[Any]:
        return self._get("/2/instances", _flag([], "bulk", bulk))

    def getInstance(self, name: str) -> Deferred[Any]:
        return self._get(f"/2/instances/{_quote(name)}")

    def getInstanceInfo(self, name: str, static: bool = False) -> Deferred[int]:
        return self._submit("GET", f"/2/instances/{_quote(name)}/info", _flag([], "static", static))

    def createInstance(self, name: str, diskTemplate: str, disks: Any, nics: Any, **kwargs: Any) -> Deferred[int]:
        dryRun = bool(kwargs.pop("dry_run", False))
        body: dict[str, Any] = {
            "__version__": 1,
            "mode": kwargs.pop("mode", "create"),
            "name": name,
            "disk_template": diskTemplate,
            "disks": disks,
            "nics": nics,
        }
        body.update(kwargs)
        return self._submit("POST", "/2/instances", _flag([], "dry-run", dryRun), body)

    def deleteInstance(self, name: str, shutdownTimeout: int | None = None, dryRun: bool = False) -> Deferred[int]:
        body = {"shutdown_timeout": shutdownTimeout} if shutdownTimeout is not None else None
        return self._submit("DELETE", f"/2/instances/{_quote(name)}", _flag([], "dry-run", dryRun), body)

    def startupInstance(self, name: str, dryRun: bool = False) -> Deferred[int]:
        return self._submit("PUT", f"/2/instances/{_quote(name)}/startup", _flag([], "dry-run", dryRun))

    def shutdownInstance(self, name: str, timeout: int | None = None, dryRun: bool = False) -> Deferred[int]:
        body = {"timeout": timeout} if timeout is not None else {}
        return self._submit("PUT", f"/2/instances/{_quote(name)}/shutdown", _flag([], "dry-run", dryRun), body)

    def rebootInstance(
        self, name: str, rebootType: str = "hard", shutdownTimeout: int | None = None, dryRun: bool = False
    ) -> Deferred[int]:
        params = _flag([("type", rebootType)], "dry-run", dryRun)
        body = {"shutdown_timeout": shutdownTimeout} if shutdownTimeout is not None else {}
        return self._submit("POST", f"/2/instances/{_quote(name)}/reboot", params, body)

    def modifyInstance(self, name: str, **kwargs: Any) -> Deferred[int]:
        return self._submit("PUT", f"/2/instances/{_quote(name)}/modify", None, kwargs)

    def getInstanceConsole(self, name: str) -> Deferred[Any]:
        # Not retried: 503 here means "instance not running".
        return self._attempt("GET", f"/2/instances/{_quote(name)}/console", None, None)

    def getInstanceTags(self, name: str) -> Deferred[Any]:
        return self._get(f"/2/instances/{_quote(name)}/tags")

    def addInstanceTags(self, name: str, tags: Sequence[str], dryRun: bool = False) -> Deferred[int]:
        params = _flag([("tag", t) for t in tags], "dry-run", dryRun)
        return self._submit("PUT", f"/2/instances/{_quote(name)}/tags", params)

    def deleteInstanceTags(self, name: str, tags: Sequence[str], dryRun: bool = False) -> Deferred[int]:
        params = _flag([("tag", t) for t in tags], "dry-run", dryRun)
        return self._submit("DELETE", f"/2/instances/{_quote(name)}/tags", params)

    # ------------------------------------------------------------------ jobs

    def getJobs(self, bulk: bool = False) -> Deferred[Any]:
        return self._get("/2/jobs", _flag([], "bulk", bulk))

    async def _getJob(self, jobId: int) -> Mapping[str, Any]:
        try:
            job = await self._get(f"/2/jobs/{int(jobId)}")
        except RapiNotFound as e:
            raise JobNotFound(jobId) from e
        if not isinstance(job, dict) or job.get("status") is None:
            # Ganeti 3.0 answers 200 with every field null for unknown jobs.
            raise JobNotFound(jobId)
        return job

    def getJob(self, jobId: int) -> Deferred[Any]:
        return Deferred.fromCoroutine(self._getJob(jobId))

    def waitForJobChange(
        self,
        jobId: int,
        fields: Sequence[str],
        previousJobInfo: Any = None,
        previousLogSerial: int | None = None,
    ) -> Deferred[Any]:
        body = {"fields": list(fields), "previous_job_info": previousJobInfo, "previous_log_serial": previousLogSerial}
        return self._attempt("GET", f"/2/jobs/{int(jobId)}/wait", None, body)

    async def _waitForJob(self, jobId: int, timeout: float | None) -> Mapping[str, Any]:
        deadline = None if timeout is None else self._clock.seconds() + timeout
        while True:
            job = await self._getJob(jobId)
            status = job.get("status")
            if status == "success":
                return job
            if status == "error":
                raise errors.jobFailure(job)
            if status == "canceled":
                raise JobCanceled(jobId, job)
            if deadline is not None and self._clock.seconds() + self.pollInterval > deadline:
                raise RapiTimeout(f"job {jobId} still {status} after {timeout}s")
            await deferLater(self._clock, self.pollInterval, lambda: None)

    def waitForJob(self, jobId: int, timeout: float | None = None) -> Deferred[Any]:
        return Deferred.fromCoroutine(self._waitForJob(jobId, timeout))

    def cancelJob(self, jobId: int) -> Deferred[Any]:
        return self._attempt("DELETE", f"/2/jobs/{int(jobId)}", None, None)

    # -------------------------------------------------------------- networks

    def getNetworks(self, bulk: bool = True) -> Deferred[Any]:
        return self._get("/2/networks", _flag([], "bulk", bulk))

    def getNetwork(self, name: str) -> Deferred[Any]:
        return self._get(f"/2/networks/{_quote(name)}")

    def createNetwork(self, name: str, network: str, **kwargs: Any) -> Deferred[int]:
        dryRun = bool(kwargs.pop("dry_run", False))
        body = {"network_name": name, "network": network}
        body.update(kwargs)
        return self._submit("POST", "/2/networks", _flag([], "dry-run", dryRun), body)

    def connectNetwork(self, name: str, groupName: str, mode: str, link: str, **kwargs: Any) -> Deferred[int]:
        dryRun = bool(kwargs.pop("dry_run", False))
        body = {"group_name": groupName, "network_mode": mode, "network_link": link}
        body.update(kwargs)
        return self._submit("PUT", f"/2/networks/{_quote(name)}/connect", _flag([], "dry-run", dryRun), body)

    def disconnectNetwork(self, name: str, groupName: str, **kwargs: Any) -> Deferred[int]:
        dryRun = bool(kwargs.pop("dry_run", False))
        body = {"group_name": groupName}
        body.update(kwargs)
        return self._submit("PUT", f"/2/networks/{_quote(name)}/disconnect", _flag([], "dry-run", dryRun), body)

    def deleteNetwork(self, name: str, **kwargs: Any) -> Deferred[int]:
        dryRun = bool(kwargs.pop("dry_run", False))
        return self._submit("DELETE", f"/2/networks/{_quote(name)}", _flag([], "dry-run", dryRun), kwargs or None)
