"""
Tests for L{synnefo_twisted.ganeti.rapi.RapiClient} without sockets
(L{treq.testing.StubTreq}); the same client is proven against the real
cluster and the simulator by the contract suite.
"""

import base64
import json
from typing import Any, cast

from treq.testing import StringStubbingResource, StubTreq
from twisted.internet import error as ierror
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from synnefo_twisted.ganeti import errors
from synnefo_twisted.ganeti.rapi import RapiClient, Requester
from synnefo_twisted.interfaces import IGanetiClient
from tests.ganeti.samples import sampleJSON


class Recorder:
    """
    A stub RAPI: answers from a queue of (code, json-or-bytes) and records requests.
    """

    def __init__(self, *answers: tuple[int, Any]) -> None:
        self.answers = list(answers)
        self.requests: list[dict[str, Any]] = []

    def __call__(self, method: bytes, url: str, params: dict, headers: dict, data: bytes):
        self.requests.append(
            {"method": method.decode(), "url": url, "params": params, "headers": headers, "data": data}
        )
        code, body = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return code, {b"Content-Type": b"application/json"}, raw


def makeClient(recorder: Recorder, **kwargs: Any) -> tuple[RapiClient, Clock]:
    clock = Clock()
    client = RapiClient(
        clock,
        "https://rapi.example:5080/",
        cast(Requester, StubTreq(StringStubbingResource(recorder))),
        "gnt-admin",
        "secret",
        **kwargs,
    )
    return client, clock


class NeverAnswers:
    """
    A requester whose requests never complete, or fail with a given error.
    """

    def __init__(self, failWith: Exception | None = None) -> None:
        self.failWith = failWith
        self.calls = 0

    def request(self, method: str, url: Any, **kwargs: Any) -> Deferred[Any]:
        self.calls += 1
        if self.failWith is not None:
            return fail(self.failWith)
        return Deferred()


class ClientTests(SynchronousTestCase):
    def test_interface(self) -> None:
        """
        RapiClient provides IGanetiClient.
        """
        client, _ = makeClient(Recorder((200, {})))
        self.assertTrue(verifyObject(IGanetiClient, client))

    def test_getInfo(self) -> None:
        """
        getInfo GETs /2/info with basic auth and JSON accept, and returns the decoded body.
        """
        rec = Recorder((200, {"name": "cluster.ganeti.lab"}))
        client, _ = makeClient(rec)
        self.assertEqual(self.successResultOf(client.getInfo()), {"name": "cluster.ganeti.lab"})
        (req,) = rec.requests
        self.assertEqual((req["method"], req["url"]), ("GET", "https://rapi.example:5080/2/info"))
        self.assertEqual(req["headers"][b"Authorization"], [b"Basic " + base64.b64encode(b"gnt-admin:secret")])
        self.assertEqual(req["headers"][b"Accept"], [b"application/json"])

    def test_createInstance(self) -> None:
        """
        createInstance POSTs a version-1 request with the spec's fields, dry-run in the query, and returns the job id.
        """
        rec = Recorder((200, 17))
        client, _ = makeClient(rec)
        d = client.createInstance(
            "snf-1",
            "file",
            [{"size": 1024, "name": "snf-vol-1"}],
            [{"name": "snf-nic-1", "network": "snf-net-1", "ip": None}],
            os="snf-image+default",
            beparams={"vcpus": 1, "memory": 512, "auto_balance": True},
            ip_check=False,
            name_check=False,
            opportunistic_locking=True,
            depends=[[3, ["success", "error", "canceled"]]],
            dry_run=True,
        )
        self.assertEqual(self.successResultOf(d), 17)
        (req,) = rec.requests
        self.assertEqual(req["method"], "POST")
        self.assertEqual(req["params"], {b"dry-run": [b"1"]})
        self.assertEqual(req["headers"][b"Content-Type"], [b"application/json"])
        body = json.loads(req["data"])
        self.assertEqual(body["__version__"], 1)
        self.assertEqual(body["mode"], "create")
        self.assertEqual(body["name"], "snf-1")
        self.assertEqual(body["disk_template"], "file")
        self.assertEqual(body["os"], "snf-image+default")
        self.assertEqual(body["depends"], [[3, ["success", "error", "canceled"]]])
        self.assertNotIn("dry_run", body)

    def test_actions(self) -> None:
        """
        Instance and network actions use Ganeti's paths, methods, query flags and bodies.
        """
        rec = Recorder((200, 5))
        client, _ = makeClient(rec)
        calls = [
            (client.shutdownInstance("snf-1", timeout=30), "PUT", "/2/instances/snf-1/shutdown", {}, {"timeout": 30}),
            (client.startupInstance("snf-1"), "PUT", "/2/instances/snf-1/startup", {}, None),
            (
                client.rebootInstance("snf-1", "soft", 10),
                "POST",
                "/2/instances/snf-1/reboot",
                {b"type": [b"soft"]},
                {"shutdown_timeout": 10},
            ),
            (
                client.deleteInstance("snf-1", shutdownTimeout=0),
                "DELETE",
                "/2/instances/snf-1",
                {},
                {"shutdown_timeout": 0},
            ),
            (
                client.modifyInstance("snf-1", nics=[["add", -1, {"network": "n"}]]),
                "PUT",
                "/2/instances/snf-1/modify",
                {},
                {"nics": [["add", -1, {"network": "n"}]]},
            ),
            (
                client.addInstanceTags("snf-1", ["a", "b"], dryRun=True),
                "PUT",
                "/2/instances/snf-1/tags",
                {b"tag": [b"a", b"b"], b"dry-run": [b"1"]},
                None,
            ),
            (client.deleteInstanceTags("snf-1", ["a"]), "DELETE", "/2/instances/snf-1/tags", {b"tag": [b"a"]}, None),
            (
                client.addClusterTags(["snf:eventd:heartbeat:x"], dryRun=True),
                "PUT",
                "/2/tags",
                {b"tag": [b"snf:eventd:heartbeat:x"], b"dry-run": [b"1"]},
                None,
            ),
            (
                client.createNetwork("snf-net-1", "10.0.0.0/24", gateway="10.0.0.1"),
                "POST",
                "/2/networks",
                {},
                {"network_name": "snf-net-1", "network": "10.0.0.0/24", "gateway": "10.0.0.1"},
            ),
            (
                client.connectNetwork("snf-net-1", "default", "bridged", "br0"),
                "PUT",
                "/2/networks/snf-net-1/connect",
                {},
                {"group_name": "default", "network_mode": "bridged", "network_link": "br0"},
            ),
            (
                client.disconnectNetwork("snf-net-1", "default"),
                "PUT",
                "/2/networks/snf-net-1/disconnect",
                {},
                {"group_name": "default"},
            ),
            (
                client.deleteNetwork("snf-net-1", depends=[[1, ["success"]]]),
                "DELETE",
                "/2/networks/snf-net-1",
                {},
                {"depends": [[1, ["success"]]]},
            ),
            (client.getInstanceInfo("snf-1"), "GET", "/2/instances/snf-1/info", {}, None),
        ]
        for (d, method, path, params, body), req in zip(calls, rec.requests):
            self.assertEqual(self.successResultOf(d), 5)
            self.assertEqual((req["method"], req["url"]), (method, "https://rapi.example:5080" + path))
            self.assertEqual(req["params"], params, path)
            self.assertEqual(json.loads(req["data"]) if req["data"] else None, body, path)
        self.assertEqual(len(rec.requests), len(calls))

    def test_bulkReads(self) -> None:
        """
        List calls ask for bulk records with bulk=1, and names are URL-quoted.
        """
        rec = Recorder((200, []))
        client, _ = makeClient(rec)
        for d in [client.getInstances(), client.getNodes(), client.getGroups(), client.getNetworks()]:
            self.assertEqual(self.successResultOf(d), [])
        self.assertEqual({r["params"][b"bulk"][0] for r in rec.requests}, {b"1"})
        self.successResultOf(client.getInstance("a b/c"))
        self.assertTrue(rec.requests[-1]["url"].endswith("/2/instances/a%20b%2Fc"))

    def test_errorsAreTyped(self) -> None:
        """
        HTTP errors become RapiError subclasses carrying Ganeti's message and explain.
        """
        cases = [
            (400, errors.RapiBadRequest),
            (401, errors.RapiUnauthorized),
            (403, errors.RapiForbidden),
            (404, errors.RapiNotFound),
            (500, errors.RapiServerError),
            (415, errors.RapiError),
        ]
        for code, cls in cases:
            client, _ = makeClient(Recorder((code, {"code": code, "message": f"m{code}", "explain": "x"})))
            f = self.failureResultOf(client.startupInstance("snf-1"), cls)
            self.assertEqual((f.value.code, f.value.message, f.value.explain), (code, f"m{code}", "x"))

    def test_nonJSON(self) -> None:
        """
        A 200 answer that is not JSON is a RapiProtocolError; a non-JSON error keeps its status code.
        """
        client, _ = makeClient(Recorder((200, b"<html>")))
        self.failureResultOf(client.getInfo(), errors.RapiProtocolError)
        client, _ = makeClient(Recorder((404, b"<html>nope")))
        self.failureResultOf(client.getInfo(), errors.RapiNotFound)

    def test_readRetriedOn502(self) -> None:
        """
        A read answered 502 is retried after a delay on the clock and then succeeds.
        """
        rec = Recorder((502, {"message": "luxi down"}), (200, {"name": "c"}))
        client, clock = makeClient(rec)
        d = client.getInfo()
        self.assertNoResult(d)
        clock.advance(client.retryDelay)
        self.assertEqual(self.successResultOf(d), {"name": "c"})
        self.assertEqual(len(rec.requests), 2)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_readGivesUp(self) -> None:
        """
        A read that keeps failing is retried readRetries times, then fails with the last error.
        """
        rec = Recorder((502, {"message": "down"}))
        client, clock = makeClient(rec, readRetries=2)
        d = client.getInfo()
        clock.pump([1.0] * 5)
        self.failureResultOf(d, errors.RapiServerError)
        self.assertEqual(len(rec.requests), 3)

    def test_submissionNeverRetried(self) -> None:
        """
        A job submission answered 502 is not retried: the job may exist.
        """
        rec = Recorder((502, {"message": "down"}), (200, 3))
        client, clock = makeClient(rec)
        d = client.startupInstance("snf-1")
        clock.pump([1.0] * 5)
        self.failureResultOf(d, errors.RapiServerError)
        self.assertEqual(len(rec.requests), 1)

    def test_connectionErrors(self) -> None:
        """
        Refused connections become RapiConnectionError; reads retry them, submissions do not.
        """
        requester = NeverAnswers(ierror.ConnectionRefusedError())
        clock = Clock()
        client = RapiClient(clock, "https://x", requester, readRetries=1)
        d = client.getInfo()
        clock.advance(10)
        self.failureResultOf(d, errors.RapiConnectionError)
        self.assertEqual(requester.calls, 2)
        self.failureResultOf(client.startupInstance("a"), errors.RapiConnectionError)
        self.assertEqual(requester.calls, 3)

    def test_timeout(self) -> None:
        """
        A request without an answer fails with RapiTimeout after the timeout, leaving no delayed call.
        """
        requester = NeverAnswers()
        clock = Clock()
        client = RapiClient(clock, "https://x", requester, timeout=5, readRetries=0)
        d = client.getInfo()
        clock.advance(4.9)
        self.assertNoResult(d)
        clock.advance(0.2)
        self.failureResultOf(d, errors.RapiTimeout)
        self.assertEqual(clock.getDelayedCalls(), [])


def job(status: str, **extra: Any) -> dict[str, Any]:
    base = {"id": 9, "status": status, "ops": [], "opstatus": [status], "opresult": [None], "oplog": [[]]}
    base.update(extra)
    return base


class JobTests(SynchronousTestCase):
    def test_unknownJob(self) -> None:
        """
        Ganeti 3.0's all-null answer and a 404 both become JobNotFound.
        """
        nulls = {"id": 99, "ops": None, "status": None, "opstatus": None, "opresult": None}
        client, _ = makeClient(Recorder((200, nulls)))
        self.assertEqual(self.failureResultOf(client.getJob(99), errors.JobNotFound).value.jobId, 99)
        client, _ = makeClient(Recorder((404, {"message": "Not Found"})))
        self.failureResultOf(client.getJob(99), errors.JobNotFound)

    def test_waitForJob(self) -> None:
        """
        waitForJob polls on the clock until the job succeeds and returns the job record.
        """
        rec = Recorder((200, job("queued")), (200, job("running")), (200, job("success")))
        client, clock = makeClient(rec)
        d = client.waitForJob(9)
        self.assertNoResult(d)
        clock.advance(client.pollInterval)
        self.assertNoResult(d)
        clock.advance(client.pollInterval)
        self.assertEqual(self.successResultOf(d)["status"], "success")
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_waitForFailedJob(self) -> None:
        """
        A failed job (real Ganeti record) raises JobFailed with Ganeti's error class, message and code.
        """
        record = sampleJSON("error-job.json")
        client, _ = makeClient(Recorder((200, record)))
        f = self.failureResultOf(client.waitForJob(15), errors.JobFailed)
        self.assertEqual(f.value.errorClass, "OpPrereqError")
        self.assertEqual(f.value.errorCode, "wrong_input")
        self.assertIn("violates policy", f.value.message)
        self.assertEqual(f.value.jobId, 15)

    def test_waitForCanceledJob(self) -> None:
        """
        A canceled job raises JobCanceled.
        """
        client, _ = makeClient(Recorder((200, job("canceled"))))
        self.failureResultOf(client.waitForJob(9), errors.JobCanceled)

    def test_waitTimeout(self) -> None:
        """
        A job still running at the deadline raises RapiTimeout.
        """
        client, clock = makeClient(Recorder((200, job("running"))))
        d = client.waitForJob(9, timeout=2)
        clock.pump([0.5] * 6)
        self.failureResultOf(d, errors.RapiTimeout)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_jobFailureShapes(self) -> None:
        """
        jobFailure copes with results without a code and with unexpected shapes.
        """
        f = errors.jobFailure(job("error", opresult=[["OpExecError", ["boom"]]]))
        self.assertEqual((f.errorClass, f.message, f.errorCode), ("OpExecError", "boom", None))
        f = errors.jobFailure(job("error", opresult=[42]))
        self.assertEqual(f.errorClass, "Unknown")
        f = errors.jobFailure(job("error", opstatus=["success"], opresult=[None]))
        self.assertIn("no op failed", f.message)
