# -*- test-case-name: tests.ganeti.test_sim_contract -*-
"""
The simulated cluster's RAPI: the subset of Ganeti's C{/2/...} resources the
control plane uses, with Ganeti's JSON shapes, status codes, error bodies,
basic authentication and read/write access levels.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from klein import Klein
from twisted.web.iweb import IRequest

from synnefo_twisted.ganeti.sim.model import SimCluster
from synnefo_twisted.ganeti.sim.queue import JobQueue

_EXPLAIN = {
    400: "Bad request syntax or unsupported method",
    401: "No permission -- see authorization schemes",
    403: "Request forbidden -- authorization will not help",
    404: "Nothing matches the given URI",
    405: "Specified method is invalid for this resource",
    415: "Entity body in unsupported format",
    503: "The server cannot process the request due to a high load",
}
_MESSAGES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    415: "Unsupported Media Type",
    503: "Service Unavailable",
}
FEATURES = ["instance-create-reqv1", "instance-reboot-reqv1", "node-migrate-reqv1", "node-evac-res1"]


class ConsolePorts(Protocol):
    """
    Gives the console port of a running instance (None when not running).
    """

    def portFor(self, name: str) -> int | None: ...


class HttpError(Exception):
    def __init__(self, code: int, message: str | None = None) -> None:
        self.code = code
        self.message = message or _MESSAGES.get(code, "Error")
        super().__init__(self.message)


def _arg(request: IRequest, name: str, default: str | None = None) -> str | None:
    values = request.args.get(name.encode())
    return values[0].decode() if values else default


def _flag(request: IRequest, name: str) -> bool:
    value = _arg(request, name, "0")
    try:
        return bool(int(value or "0"))
    except ValueError as e:
        raise HttpError(400, f"Parameter '{name}' should be an integer") from e


def _uriList(items: list[Any], template: str) -> list[dict[str, Any]]:
    return [{"id": item, "uri": template % item} for item in items]


class SimRapi:
    """
    Klein application serving a L{SimCluster} and its L{JobQueue}.

    @param users: user name → (password, C{"write"} or C{"read"}).
    @param consoleHost: the address RFB consoles listen on.
    """

    app = Klein()

    def __init__(
        self,
        cluster: SimCluster,
        queue: JobQueue,
        users: Mapping[str, tuple[str, str]],
        consoleHost: str = "127.0.0.1",
        consoles: ConsolePorts | None = None,
    ) -> None:
        self.cluster = cluster
        self.queue = queue
        self.users = dict(users)
        self.consoleHost = consoleHost
        self.consoles = consoles

    # ---------------------------------------------------------- plumbing

    def _handle(self, request: IRequest, write: bool, handler: Callable[[], Any]) -> bytes:
        request.setHeader(b"Content-Type", b"application/json")
        try:
            self._authorize(request, write)
            result = handler()
        except HttpError as e:
            request.setResponseCode(e.code)
            if e.code == 401:
                request.setHeader(b"WWW-Authenticate", b'Basic realm="Ganeti Remote API"')
            result = {"code": e.code, "message": e.message, "explain": _EXPLAIN.get(e.code, "")}
        return json.dumps(result).encode("utf-8")

    def _authorize(self, request: IRequest, write: bool) -> None:
        header = request.getHeader(b"authorization") or b""
        scheme, _, encoded = header.partition(b" ")
        if scheme.lower() != b"basic":
            raise HttpError(401)
        try:
            user, _, password = base64.b64decode(encoded).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError) as e:
            raise HttpError(401) from e
        known = self.users.get(user)
        if known is None or known[0] != password:
            raise HttpError(401)
        if write and known[1] != "write":
            raise HttpError(403)

    def _body(self, request: IRequest) -> dict[str, Any]:
        raw = request.content.read() if request.content is not None else b""
        if not raw:
            return {}
        contentType = (request.getHeader(b"content-type") or b"").split(b";")[0].strip()
        if contentType != b"application/json":
            raise HttpError(415)
        try:
            body = json.loads(raw)
        except ValueError as e:
            raise HttpError(400, f"Unable to parse JSON data: {e}") from e
        if not isinstance(body, dict):
            raise HttpError(400, "Invalid body contents, not a dictionary")
        return body

    def _submit(self, request: IRequest, opId: str, body: Mapping[str, Any], fixed: Mapping[str, Any]) -> int:
        opInput = dict(body)
        opInput.update(fixed)
        opInput["OP_ID"] = opId
        return self.queue.submit([opInput])

    def _instance(self, name: str) -> Any:
        inst = self.cluster.instances.get(name)
        if inst is None:
            raise HttpError(404)
        return inst

    def _network(self, name: str) -> Any:
        net = self.cluster.networks.get(name)
        if net is None:
            raise HttpError(404)
        return net

    # ----------------------------------------------------------- cluster

    @app.route("/version", methods=["GET"])
    def version(self, request: IRequest) -> bytes:
        return self._handle(request, False, lambda: 2)

    @app.route("/2/info", methods=["GET"])
    def info(self, request: IRequest) -> bytes:
        return self._handle(request, False, self.cluster.infoRecord)

    @app.route("/2/features", methods=["GET"])
    def features(self, request: IRequest) -> bytes:
        return self._handle(request, False, lambda: FEATURES)

    @app.route("/2/nodes", methods=["GET"])
    def nodes(self, request: IRequest) -> bytes:
        def run() -> Any:
            if _flag(request, "bulk"):
                return [self.cluster.nodeRecord()]
            return _uriList([self.cluster.node], "/2/nodes/%s")

        return self._handle(request, False, run)

    @app.route("/2/nodes/<name>", methods=["GET"])
    def node(self, request: IRequest, name: str) -> bytes:
        def run() -> Any:
            if name != self.cluster.node:
                raise HttpError(404)
            return self.cluster.nodeRecord()

        return self._handle(request, False, run)

    @app.route("/2/groups", methods=["GET"])
    def groups(self, request: IRequest) -> bytes:
        def run() -> Any:
            if _flag(request, "bulk"):
                return [self.cluster.groupRecord()]
            return _uriList([self.cluster.group], "/2/groups/%s")

        return self._handle(request, False, run)

    @app.route("/2/groups/<name>", methods=["GET"])
    def group(self, request: IRequest, name: str) -> bytes:
        def run() -> Any:
            if name != self.cluster.group:
                raise HttpError(404)
            return self.cluster.groupRecord()

        return self._handle(request, False, run)

    def _tags(self, request: IRequest, kind: str, name: str | None, current: Callable[[], list[str]]) -> bytes:
        method = request.method.decode()
        if method == "GET":
            return self._handle(request, False, current)

        def run() -> Any:
            current()
            tags = [t.decode() for t in request.args.get(b"tag", [])]
            opId = "OP_TAGS_SET" if method == "PUT" else "OP_TAGS_DEL"
            return self._submit(
                request, opId, {}, {"kind": kind, "name": name, "tags": tags, "dry_run": _flag(request, "dry-run")}
            )

        return self._handle(request, True, run)

    @app.route("/2/tags", methods=["GET", "PUT", "DELETE"])
    def clusterTags(self, request: IRequest) -> bytes:
        return self._tags(request, "cluster", None, lambda: list(self.cluster.tags))

    # --------------------------------------------------------- instances

    @app.route("/2/instances", methods=["GET"])
    def instances(self, request: IRequest) -> bytes:
        def run() -> Any:
            if _flag(request, "bulk"):
                return [self.cluster.instanceRecord(i) for i in self.cluster.instances.values()]
            return _uriList(list(self.cluster.instances), "/2/instances/%s")

        return self._handle(request, False, run)

    @app.route("/2/instances", methods=["POST"])
    def createInstance(self, request: IRequest) -> bytes:
        def run() -> Any:
            body = self._body(request)
            version = body.pop("__version__", 0)
            if version == 0:
                raise HttpError(400, "Instance creation request version 0 is no longer supported")
            if version != 1:
                raise HttpError(400, f"Unsupported request data version {version}")
            if "name" in body:
                body["instance_name"] = body.pop("name")
            if "os" in body:
                body["os_type"] = body.pop("os")
            for required in ("instance_name", "disk_template", "disks", "nics", "mode"):
                if required not in body:
                    raise HttpError(400, f"Required parameter '{required}' is missing")
            return self._submit(request, "OP_INSTANCE_CREATE", body, {"dry_run": _flag(request, "dry-run")})

        return self._handle(request, True, run)

    @app.route("/2/instances/<name>", methods=["GET"])
    def instance(self, request: IRequest, name: str) -> bytes:
        return self._handle(request, False, lambda: self.cluster.instanceRecord(self._instance(name)))

    @app.route("/2/instances/<name>", methods=["DELETE"])
    def deleteInstance(self, request: IRequest, name: str) -> bytes:
        def run() -> Any:
            body = self._body(request)
            fixed = {"instance_name": name, "ignore_failures": False, "dry_run": _flag(request, "dry-run")}
            return self._submit(request, "OP_INSTANCE_REMOVE", body, fixed)

        return self._handle(request, True, run)

    @app.route("/2/instances/<name>/info", methods=["GET"])
    def instanceInfo(self, request: IRequest, name: str) -> bytes:
        def run() -> Any:
            fixed = {"instances": [name], "static": _flag(request, "static"), "use_locking": True}
            return self._submit(request, "OP_INSTANCE_QUERY_DATA", {}, fixed)

        return self._handle(request, True, run)

    @app.route("/2/instances/<name>/startup", methods=["PUT"])
    def startup(self, request: IRequest, name: str) -> bytes:
        def run() -> Any:
            fixed = {
                "instance_name": name,
                "force": _flag(request, "force"),
                "dry_run": _flag(request, "dry-run"),
                "no_remember": _flag(request, "no_remember"),
            }
            return self._submit(request, "OP_INSTANCE_STARTUP", {}, fixed)

        return self._handle(request, True, run)

    @app.route("/2/instances/<name>/shutdown", methods=["PUT"])
    def shutdown(self, request: IRequest, name: str) -> bytes:
        def run() -> Any:
            body = self._body(request)
            fixed = {
                "instance_name": name,
                "no_remember": _flag(request, "no_remember"),
                "dry_run": _flag(request, "dry-run"),
            }
            return self._submit(request, "OP_INSTANCE_SHUTDOWN", body, fixed)

        return self._handle(request, True, run)

    @app.route("/2/instances/<name>/reboot", methods=["POST"])
    def reboot(self, request: IRequest, name: str) -> bytes:
        def run() -> Any:
            body = self._body(request)
            fixed = {
                "instance_name": name,
                "reboot_type": _arg(request, "type", "hard"),
                "ignore_secondaries": _flag(request, "ignore_secondaries"),
                "dry_run": _flag(request, "dry-run"),
            }
            return self._submit(request, "OP_INSTANCE_REBOOT", body, fixed)

        return self._handle(request, True, run)

    @app.route("/2/instances/<name>/modify", methods=["PUT"])
    def modify(self, request: IRequest, name: str) -> bytes:
        def run() -> Any:
            body = self._body(request)
            return self._submit(request, "OP_INSTANCE_SET_PARAMS", body, {"instance_name": name})

        return self._handle(request, True, run)

    @app.route("/2/instances/<name>/disk/<int:index>/grow", methods=["POST"])
    def growDisk(self, request: IRequest, name: str, index: int) -> bytes:
        def run() -> Any:
            body = self._body(request)
            return self._submit(request, "OP_INSTANCE_GROW_DISK", body, {"instance_name": name, "disk": index})

        return self._handle(request, True, run)

    @app.route("/2/instances/<name>/console", methods=["GET"])
    def console(self, request: IRequest, name: str) -> bytes:
        def run() -> Any:
            inst = self.cluster.instances.get(name)
            if inst is None:
                raise HttpError(404)
            port = self.consoles.portFor(name) if self.consoles is not None else inst.consolePort
            if not inst.operUp or port is None:
                raise HttpError(503, "Instance console unavailable")
            return {
                "instance": name,
                "kind": "vnc",
                "host": self.consoleHost,
                "port": port,
                "display": port - 5900,
            }

        return self._handle(request, False, run)

    @app.route("/2/instances/<name>/tags", methods=["GET", "PUT", "DELETE"])
    def instanceTags(self, request: IRequest, name: str) -> bytes:
        return self._tags(request, "instance", name, lambda: list(self._instance(name).tags))

    # -------------------------------------------------------------- jobs

    @app.route("/2/jobs", methods=["GET"])
    def jobs(self, request: IRequest) -> bytes:
        def run() -> Any:
            if _flag(request, "bulk"):
                keys = ("id", "ops", "status", "summary", "opstatus", "received_ts", "start_ts", "end_ts")
                return [{k: j.toRapi()[k] for k in keys} for j in self.queue.jobs.values()]
            return _uriList(list(self.queue.jobs), "/2/jobs/%s")

        return self._handle(request, False, run)

    @app.route("/2/jobs/<int:jobId>", methods=["GET"])
    def job(self, request: IRequest, jobId: int) -> bytes:
        def run() -> Any:
            job = self.queue.jobs.get(jobId)
            if job is None:
                # As Ganeti 3.0: a record with every field null.
                return {
                    "id": jobId,
                    **{
                        k: None
                        for k in (
                            "ops",
                            "status",
                            "summary",
                            "opstatus",
                            "received_ts",
                            "start_ts",
                            "end_ts",
                            "oplog",
                            "opresult",
                        )
                    },
                }
            return job.toRapi()

        return self._handle(request, False, run)

    @app.route("/2/jobs/<int:jobId>", methods=["DELETE"])
    def cancelJob(self, request: IRequest, jobId: int) -> bytes:
        return self._handle(request, True, lambda: self.queue.cancel(jobId))

    @app.route("/2/jobs/<int:jobId>/wait", methods=["GET"])
    def waitJob(self, request: IRequest, jobId: int) -> bytes:
        def run() -> Any:
            body = self._body(request)
            fields = body.get("fields")
            if not isinstance(fields, list):
                raise HttpError(400, "The 'fields' parameter should be a list")
            job = self.queue.jobs.get(jobId)
            if job is None:
                raise HttpError(404)
            record = job.toRapi()
            info = [record.get(f) for f in fields]
            previous = body.get("previous_job_info")
            serial = body.get("previous_log_serial") or 0
            entries = [e for op in record["oplog"] for e in op if e[0] > serial]
            if previous == info and not entries:
                return None
            return {"job_info": info, "log_entries": entries}

        return self._handle(request, True, run)

    # ---------------------------------------------------------- networks

    @app.route("/2/networks", methods=["GET"])
    def networks(self, request: IRequest) -> bytes:
        def run() -> Any:
            if _flag(request, "bulk"):
                return [self.cluster.networkRecord(n) for n in self.cluster.networks.values()]
            return _uriList(list(self.cluster.networks), "/2/networks/%s")

        return self._handle(request, False, run)

    @app.route("/2/networks", methods=["POST"])
    def createNetwork(self, request: IRequest) -> bytes:
        def run() -> Any:
            body = self._body(request)
            if "network_name" not in body:
                raise HttpError(400, "Required parameter 'network_name' is missing")
            return self._submit(request, "OP_NETWORK_ADD", body, {"dry_run": _flag(request, "dry-run")})

        return self._handle(request, True, run)

    @app.route("/2/networks/<name>", methods=["GET"])
    def network(self, request: IRequest, name: str) -> bytes:
        return self._handle(request, False, lambda: self.cluster.networkRecord(self._network(name)))

    @app.route("/2/networks/<name>", methods=["DELETE"])
    def deleteNetwork(self, request: IRequest, name: str) -> bytes:
        def run() -> Any:
            body = self._body(request)
            fixed = {"network_name": name, "dry_run": _flag(request, "dry-run")}
            return self._submit(request, "OP_NETWORK_REMOVE", body, fixed)

        return self._handle(request, True, run)

    @app.route("/2/networks/<name>/connect", methods=["PUT"])
    def connect(self, request: IRequest, name: str) -> bytes:
        def run() -> Any:
            body = self._body(request)
            fixed = {"network_name": name, "dry_run": _flag(request, "dry-run")}
            return self._submit(request, "OP_NETWORK_CONNECT", body, fixed)

        return self._handle(request, True, run)

    @app.route("/2/networks/<name>/disconnect", methods=["PUT"])
    def disconnect(self, request: IRequest, name: str) -> bytes:
        def run() -> Any:
            body = self._body(request)
            fixed = {"network_name": name, "dry_run": _flag(request, "dry-run")}
            return self._submit(request, "OP_NETWORK_DISCONNECT", body, fixed)

        return self._handle(request, True, run)

    @app.route("/2/networks/<name>/modify", methods=["PUT"])
    def modifyNetwork(self, request: IRequest, name: str) -> bytes:
        def run() -> Any:
            body = self._body(request)
            return self._submit(request, "OP_NETWORK_SET_PARAMS", body, {"network_name": name})

        return self._handle(request, True, run)

    @app.route("/2/networks/<name>/tags", methods=["GET", "PUT", "DELETE"])
    def networkTags(self, request: IRequest, name: str) -> bytes:
        return self._tags(request, "network", name, lambda: list(self._network(name).tags))

    @app.route("/", branch=True)
    def notFound(self, request: IRequest) -> bytes:
        def run() -> Any:
            raise HttpError(404)

        return self._handle(request, False, run)
