# -*- test-case-name: tests.manage.test_servers -*-
"""
Server commands: server-list, server-show, server-inspect, server-modify,
server-remove.

Actions go through the server logic (L{synnefo_twisted.logic.serverops})
as an administrator, with the node's backend registry, so they take the
same locks, state checks, quota commissions and job records as the API.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from synnefo_twisted.db.manage import AdminQueries
from synnefo_twisted.db.models import Server, User
from synnefo_twisted.db.repositories import (
    BackendRepository,
    FlavorRepository,
    PortRepository,
    ProjectRepository,
    ServerRepository,
    UserRepository,
)
from synnefo_twisted.ganeti import naming
from synnefo_twisted.ganeti.errors import GanetiError, RapiNotFound
from synnefo_twisted.logic import serverops
from synnefo_twisted.logic.servers import ServerFault, serverStatus
from synnefo_twisted.manage.backends import findBackend
from synnefo_twisted.manage.base import JOB_WAIT_TIMEOUT, BadInput, CommandError, ManageContext, command
from synnefo_twisted.manage.output import formatMapping, formatTable
from synnefo_twisted.manage.users import findUser, parseBool

SERVER_COLUMNS = [
    "id",
    "name",
    "user",
    "project",
    "flavor",
    "image",
    "backend",
    "status",
    "operstate",
    "task",
    "suspended",
    "deleted",
    "created",
]

STATUSES = ("ACTIVE", "BUILD", "STOPPED", "ERROR", "DELETED", "REBOOT", "RESIZE", "UNKNOWN")

#: server-modify --action → the logic's action code and arguments
ACTIONS: Mapping[str, tuple[str, dict[str, Any]]] = {
    "start": ("START", {}),
    "stop": ("STOP", {}),
    "reboot_soft": ("REBOOT", {"type": "SOFT"}),
    "reboot_hard": ("REBOOT", {"type": "HARD"}),
}


def operator() -> User:
    """
    The identity snf-manage acts as: an administrator that owns nothing.
    """
    now = datetime.now(UTC)
    return User(0, "snf-manage", "", "snf-manage", ["admin"], True, now, now)


def positiveId(value: str) -> int:
    """
    An id for argparse: a positive integer.
    """
    if not value.isdigit() or int(value) <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer id, not {value!r}")
    return int(value)


async def findServer(database: Any, serverId: int) -> Server:
    server = await ServerRepository(database).get(serverId)
    if server is None:
        raise CommandError(f"no server {serverId}")
    return server


class _Names:
    """
    Display names of users, flavors and backends, read once per command.
    """

    def __init__(self, emails: Mapping[str, str], flavors: Mapping[int, str], backends: Mapping[int, str]) -> None:
        self.emails = emails
        self.flavors = flavors
        self.backends = backends

    @classmethod
    async def load(cls, database: Any) -> _Names:
        users = await UserRepository(database).list()
        flavors = await FlavorRepository(database).list(includeDeleted=True)
        backends = await BackendRepository(database).list()
        return cls(
            {u.uuid: u.email for u in users},
            {f.id: f.name for f in flavors},
            {b.id: b.clustername for b in backends},
        )

    def user(self, uuid: str, mails: bool) -> str:
        return self.emails.get(uuid, uuid) if mails else uuid

    def backend(self, backendId: int | None) -> str:
        if backendId is None:
            return ""
        return self.backends.get(backendId, str(backendId))


def _row(server: Server, names: _Names, mails: bool) -> list[Any]:
    return [
        server.id,
        server.name,
        names.user(server.userid, mails),
        server.project,
        names.flavors.get(server.flavor_id, str(server.flavor_id)),
        server.image_id,
        names.backend(server.backend_id),
        serverStatus(server),
        server.operstate,
        server.task,
        server.suspended,
        server.deleted,
        server.created.isoformat(),
    ]


def _listArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", help="only this user's servers (id, uuid or e-mail)")
    parser.add_argument("--backend", help="only servers on this backend (id or cluster name)")
    parser.add_argument(
        "--status", type=str.upper, choices=STATUSES, help="only servers in this API status (ACTIVE, STOPPED, ...)"
    )
    parser.add_argument("--suspended", type=parseBool, metavar="True|False", help="only (not) suspended servers")
    parser.add_argument("--deleted", action="store_true", help="include deleted servers")
    parser.add_argument("--display-mails", action="store_true", help="show users' e-mails instead of uuids")


@command("server-list", "list servers of every user, with filters", _listArguments)
async def serverList(context: ManageContext, args: argparse.Namespace) -> None:
    database = await context.database()
    userid = (await findUser(UserRepository(database), args.user)).uuid if args.user else None
    backendId = (await findBackend(BackendRepository(database), args.backend)).id if args.backend else None
    servers = await AdminQueries(database).servers(
        userid=userid, backendId=backendId, includeDeleted=args.deleted or args.status == "DELETED"
    )
    if args.status is not None:
        servers = [s for s in servers if serverStatus(s) == args.status]
    if args.suspended is not None:
        servers = [s for s in servers if s.suspended == args.suspended]
    names = await _Names.load(database)
    rows = [_row(s, names, args.display_mails) for s in servers]
    context.out.write(formatTable(SERVER_COLUMNS, rows, context.outputFormat))


async def serverDetails(database: Any, server: Server, mails: bool) -> dict[str, Any]:
    """
    What the database knows of a server: its fields, owner, flavor,
    backend, ports with addresses, metadata.
    """
    names = await _Names.load(database)
    data: dict[str, Any] = dict(zip(SERVER_COLUMNS, _row(server, names, mails)))
    data.update(
        {
            "flavor_id": server.flavor_id,
            "backend_id": server.backend_id,
            "ganeti_name": None,
            "action": server.action,
            "task_job_id": server.task_job_id,
            "backendjobid": server.backendjobid,
            "backendopcode": server.backendopcode,
            "backendjobstatus": server.backendjobstatus,
            "backendlogmsg": server.backendlogmsg,
            "buildpercentage": server.buildpercentage,
            "rescue": server.rescue,
            "key_names": list(server.key_names),
            "updated": server.updated.isoformat(),
        }
    )
    ports = PortRepository(database)
    nics = []
    for port in await ports.listByServer(server.id):
        addresses = [ip.address for ip in await ports.ipsOfPort(port.id)]
        nics.append(f"port {port.id} network {port.network_id} {port.mac or '-'} {port.state} {' '.join(addresses)}")
    data["ports"] = nics
    data["metadata"] = dict(await ServerRepository(database).metadata(server.id))
    return data


def _showArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", type=positiveId, help="server id")
    parser.add_argument("--display-mails", action="store_true", help="show the owner's e-mail instead of the uuid")


@command("server-show", "show what the database knows of a server", _showArguments)
async def serverShow(context: ManageContext, args: argparse.Namespace) -> None:
    database = await context.database()
    server = await findServer(database, args.id)
    data = await serverDetails(database, server, args.display_mails)
    data["ganeti_name"] = naming.instanceName(server.id, context.backends(database).prefix)
    context.out.write(formatMapping(data, context.outputFormat))


GANETI_FIELDS = (
    "name",
    "status",
    "admin_state",
    "oper_state",
    "pnode",
    "snodes",
    "disk_template",
    "os",
    "nic.names",
    "nic.macs",
    "nic.ips",
    "nic.networks.names",
    "nic.links",
    "disk.sizes",
    "beparams",
    "network_port",
    "tags",
    "ctime",
    "mtime",
)


def _jobSummary(job: Mapping[str, Any]) -> dict[str, Any]:
    summary = job.get("summary") or []
    ended = job.get("end_ts")
    return {
        "id": job.get("id"),
        "status": job.get("status"),
        "summary": ",".join(str(s) for s in summary),
        "ended": datetime.fromtimestamp(ended[0], UTC).isoformat() if ended else None,
        "error": _jobError(job),
    }


def _jobError(job: Mapping[str, Any]) -> str | None:
    if job.get("status") != "error":
        return None
    for result in job.get("opresult") or []:
        if isinstance(result, list) and len(result) >= 2 and isinstance(result[1], list) and result[1]:
            return str(result[1][0])
    return "failed"


def _mentions(job: Mapping[str, Any], name: str) -> bool:
    for op in job.get("ops") or []:
        if isinstance(op, Mapping) and op.get("instance_name") == name:
            return True
    return any(f"({name})" in str(s) for s in job.get("summary") or [])


async def ganetiView(context: ManageContext, database: Any, server: Server, withJobs: bool) -> dict[str, Any]:
    """
    What the server's Ganeti cluster says: the instance record and, with
    C{withJobs}, the jobs that touched the instance. Errors are reported
    in the view (the database view is still shown).
    """
    registry = context.backends(database)
    name = naming.instanceName(server.id, registry.prefix)
    view: dict[str, Any] = {"instance": None, "error": None, "jobs": []}
    backend = None
    if server.backend_id is not None:
        backend = await BackendRepository(database).get(server.backend_id)
    if backend is None:
        view["error"] = "the server has no backend"
        return view
    client = registry.clientFor(backend)
    try:
        record = await client.getInstance(name)
        view["instance"] = {k: record.get(k) for k in GANETI_FIELDS if k in record}
    except RapiNotFound:
        view["error"] = f"instance {name} does not exist on {backend.clustername}"
    except GanetiError as e:
        view["error"] = f"cannot read instance {name} from {backend.clustername}: {e}"
    if withJobs:
        try:
            jobs = await client.getJobs(bulk=True)
        except GanetiError as e:
            view["jobs_error"] = f"cannot list jobs of {backend.clustername}: {e}"
        else:
            mine = sorted((j for j in jobs if _mentions(j, name)), key=lambda j: int(j.get("id", 0)))
            view["jobs"] = [_jobSummary(j) for j in mine]
    return view


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = value


def _inspectArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", type=positiveId, help="server id")
    parser.add_argument("--jobs", action="store_true", help="also list the Ganeti jobs of the instance")
    parser.add_argument("--display-mails", action="store_true", help="show the owner's e-mail instead of the uuid")


@command("server-inspect", "show a server as the database and as its Ganeti cluster see it", _inspectArguments)
async def serverInspect(context: ManageContext, args: argparse.Namespace) -> None:
    database = await context.database()
    server = await findServer(database, args.id)
    data = await serverDetails(database, server, args.display_mails)
    data["ganeti_name"] = naming.instanceName(server.id, context.backends(database).prefix)
    ganeti = await ganetiView(context, database, server, args.jobs)
    if context.outputFormat == "json":
        context.out.write(formatMapping({"db": data, "ganeti": ganeti}, "json"))
        return
    flat: dict[str, Any] = {}
    _flatten("db", data, flat)
    _flatten("ganeti", {k: v for k, v in ganeti.items() if k != "jobs"}, flat)
    for job in ganeti["jobs"]:
        _flatten(f"job.{job['id']}", {k: v for k, v in job.items() if k != "id"}, flat)
    context.out.write(formatMapping(flat, context.outputFormat))


def _modifyArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", type=positiveId, help="server id")
    parser.add_argument("--name", help="rename the server")
    parser.add_argument("--user", help="give the server to another user (id, uuid or e-mail)")
    parser.add_argument("--suspended", type=parseBool, metavar="True|False", help="suspend (or resume) the server")
    parser.add_argument("--flavor", type=positiveId, help="resize to this flavor (the server must be stopped)")
    parser.add_argument("--action", choices=sorted(ACTIONS), help="start, stop or reboot the server")
    parser.add_argument("--wait", action="store_true", help="wait for the submitted Ganeti job to finish")


async def _waitForJob(context: ManageContext, database: Any, server: Server, jobId: int) -> str:
    backend = await BackendRepository(database).get(server.backend_id) if server.backend_id is not None else None
    if backend is None:
        raise CommandError(f"server {server.id} has no backend to wait on")
    client = context.backends(database).clientFor(backend)
    context.err.write(f"waiting for job {jobId} on {backend.clustername}...\n")
    try:
        job = await client.waitForJob(jobId, timeout=JOB_WAIT_TIMEOUT)
    except GanetiError as e:
        raise CommandError(f"job {jobId} of server {server.id} did not succeed: {e}") from None
    return str(job.get("status", "success"))


@command("server-modify", "rename, reassign, suspend, resize, start, stop or reboot a server", _modifyArguments)
async def serverModify(context: ManageContext, args: argparse.Namespace) -> None:
    database = await context.database()
    server = await findServer(database, args.id)
    if server.deleted:
        raise CommandError(f"server {server.id} is deleted")
    changes = [args.name, args.user, args.suspended, args.flavor, args.action]
    if all(c is None for c in changes):
        raise CommandError("nothing to change (give --name, --user, --suspended, --flavor or --action)")
    if args.flavor is not None and args.action is not None:
        raise BadInput("give either --flavor or --action: each submits a job")
    if args.name is not None and (not args.name.strip() or len(args.name) > 255):
        raise BadInput("--name must be 1 to 255 characters")
    fields: dict[str, Any] = {}
    if args.name is not None:
        fields["name"] = args.name
    if args.user is not None:
        newOwner = await findUser(UserRepository(database), args.user)
        if server.project is not None:
            memberOf = {p.uuid for p in await ProjectRepository(database).projectsOf(newOwner.id)}
            if server.project not in memberOf:
                raise CommandError(
                    f"{newOwner.email} is not a member of project {server.project}, which holds the server's quota"
                )
        fields["userid"] = newOwner.uuid
    if args.suspended is not None:
        fields["suspended"] = args.suspended
    if args.flavor is not None:
        if await FlavorRepository(database).get(args.flavor) is None:
            raise CommandError(f"no flavor {args.flavor}")
        if args.flavor == server.flavor_id:
            raise CommandError(f"server {server.id} already has flavor {args.flavor}")
    jobId: int | None = None
    if args.flavor is not None or args.action is not None:
        # The job first: when the logic refuses it, nothing is changed.
        action, actionArgs = ("RESIZE", {"flavorRef": args.flavor}) if args.flavor is not None else ACTIONS[args.action]
        registry = context.backends(database)
        try:
            server = await serverops.serverAction(database, registry, operator(), server.id, action, actionArgs)
        except ServerFault as e:
            raise CommandError(f"{action.lower()} refused: {e.message}") from None
        jobId = server.task_job_id
    if fields:
        updated = await ServerRepository(database).update(server.id, **fields)
        assert updated is not None
        server = updated
    data = await serverDetails(database, server, False)
    if jobId is not None:
        data["job"] = jobId
        if args.wait:
            data["job_status"] = await _waitForJob(context, database, server, jobId)
    context.out.write(formatMapping(data, context.outputFormat))


def _removeArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ids", type=positiveId, nargs="+", metavar="id", help="server ids")
    parser.add_argument("--wait", action="store_true", help="wait for each delete job to finish")


@command("server-remove", "delete servers: submit each one's Ganeti delete job", _removeArguments)
async def serverRemove(context: ManageContext, args: argparse.Namespace) -> int:
    database = await context.database()
    registry = context.backends(database)
    rows: list[Sequence[Any]] = []
    failed = 0
    for serverId in args.ids:
        try:
            server = await findServer(database, serverId)
            try:
                server = await serverops.destroyServer(database, registry, operator(), server.id)
            except ServerFault as e:
                raise CommandError(f"server {serverId}: delete refused: {e.message}") from None
            status = "deleted" if server.deleted else "submitted"
            if server.task_job_id is not None and args.wait and not server.deleted:
                status = await _waitForJob(context, database, server, server.task_job_id)
            rows.append([server.id, server.task_job_id, status])
        except CommandError as e:
            failed += 1
            context.err.write(f"snf-manage server-remove: error: {e}\n")
    context.out.write(formatTable(["id", "job", "status"], rows, context.outputFormat))
    return 1 if failed else 0
