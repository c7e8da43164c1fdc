# -*- test-case-name: tests.manage.test_backends -*-
"""
Backend commands: backend-add, backend-list, backend-modify, backend-remove,
backend-update-status.

A backend is a Ganeti cluster reached through its RAPI: a URL, a user and
a password (read from a file, never from the command line), and TLS
checked against the system trust store, a pinned CA or certificate
(C{--ca-file}), or not at all (C{--no-verify}, explicit).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from synnefo_twisted.db.models import Backend
from synnefo_twisted.db.repositories import BackendRepository, ServerRepository
from synnefo_twisted.ganeti.errors import GanetiError
from synnefo_twisted.manage.base import BadInput, CommandError, ManageContext, command
from synnefo_twisted.manage.output import formatMapping, formatTable
from synnefo_twisted.manage.users import parseBool

BACKEND_COLUMNS = [
    "id",
    "clustername",
    "rapi_url",
    "username",
    "tls",
    "hypervisor",
    "disk_templates",
    "public",
    "drained",
    "offline",
    "servers",
]


def tlsMode(backend: Backend) -> str:
    """
    How the RAPI certificate is checked: C{pinned}, C{system} or C{none}.
    """
    if not backend.verify_tls:
        return "none"
    return "pinned" if backend.ca_pem else "system"


def rapiURL(value: str, port: int) -> str:
    """
    A RAPI base URL: C{value} when it is an http(s) URL, else the host name
    C{value} at C{https://value:port}.

    @raise BadInput: not a usable URL.
    """
    if "://" not in value:
        value = f"https://{value}:{port}"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInput(f"{value!r} is not an http(s) RAPI URL")
    try:
        parts.port  # noqa: B018  (validates the port)
    except ValueError:
        raise BadInput(f"{value!r} has an invalid port") from None
    return value.rstrip("/")


def readSecretFile(path: str, what: str) -> str:
    """
    The first line of a file (a password), stripped.

    @raise BadInput: unreadable or empty.
    """
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise BadInput(f"cannot read the {what} file {path}: {e.strerror}") from None
    lines = text.splitlines()
    secret = lines[0].strip() if lines else ""
    if not secret:
        raise BadInput(f"the {what} file {path} is empty")
    return secret


def readCertificate(path: str) -> str:
    """
    PEM text of the certificate in a CA or certificate file (a private
    key in the same file is left out).

    @raise BadInput: unreadable or not a PEM certificate.
    """
    from OpenSSL import crypto
    from twisted.internet.ssl import Certificate

    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise BadInput(f"cannot read the certificate file {path}: {e.strerror}") from None
    try:
        certificate = Certificate.loadPEM(data)
    except (crypto.Error, ValueError):
        raise BadInput(f"{path} is not a PEM certificate") from None
    # Only the certificate is kept: Ganeti's rapi.pem also holds the key.
    return certificate.dumpPEM().decode("ascii")


async def findBackend(repository: BackendRepository, ident: str) -> Backend:
    """
    A backend by id or cluster name; L{CommandError} when there is none.
    """
    backend = None
    if ident.isdigit():
        backend = await repository.get(int(ident))
    if backend is None:
        backend = await repository.byClustername(ident)
    if backend is None:
        raise CommandError(f"no backend {ident!r} (give an id or a cluster name)")
    return backend


def _draft(clustername: str, url: str, username: str, password: str, verify: bool, caPEM: str) -> Backend:
    now = datetime.now(UTC)
    return Backend(
        id=-1,
        clustername=clustername,
        rapi_url=url,
        username=username,
        password=password,
        verify_tls=verify,
        hypervisor="kvm",
        disk_templates=[],
        public=True,
        drained=False,
        offline=False,
        simulated=False,
        mfree=0,
        mtotal=0,
        dfree=0,
        dtotal=0,
        pinst_cnt=0,
        ctotal=0,
        resources_updated=None,
        created=now,
        updated=now,
        ca_pem=caPEM,
    )


async def clusterInfo(context: ManageContext, database: Any, backend: Backend) -> dict[str, Any]:
    """
    C{GET /2/info} of the backend's cluster (checks URL, TLS and that the
    credentials are accepted for reading).

    @raise CommandError: the cluster cannot be reached.
    """
    client = context.backends(database).clientFor(backend)
    try:
        info: dict[str, Any] = await client.getInfo()
    except GanetiError as e:
        raise CommandError(f"cannot reach the RAPI of {backend.clustername} at {backend.rapi_url}: {e}") from None
    return info


RESOURCE_FIELDS = ("mfree", "mtotal", "dfree", "dtotal", "pinst_cnt", "ctotal")


def nodeResources(nodes: list[dict[str, Any]]) -> dict[str, int]:
    """
    A cluster's resources for server placement: the sums over its nodes
    that can take instances (online, not drained, VM-capable); a value a
    node does not report counts as zero.
    """
    totals = dict.fromkeys(RESOURCE_FIELDS, 0)
    for node in nodes:
        if node.get("offline") or node.get("drained") or node.get("vm_capable") is False:
            continue
        for key in RESOURCE_FIELDS:
            value = node.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                totals[key] += value
    return totals


async def updateStatus(context: ManageContext, database: Any, backend: Backend) -> Backend:
    """
    Read the cluster's nodes and store its resources (the placement of new
    servers uses them).

    @raise CommandError: the cluster cannot be reached.
    """
    client = context.backends(database).clientFor(backend)
    try:
        nodes = await client.getNodes(bulk=True)
    except GanetiError as e:
        raise CommandError(f"cannot read the nodes of {backend.clustername}: {e}") from None
    fields: dict[str, Any] = dict(nodeResources(nodes))
    fields["resources_updated"] = datetime.now(UTC)
    updated = await BackendRepository(database).modify(backend.id, **fields)
    assert updated is not None
    return updated


def _row(backend: Backend, servers: int) -> list[Any]:
    return [
        backend.id,
        backend.clustername,
        backend.rapi_url,
        backend.username,
        tlsMode(backend),
        backend.hypervisor,
        list(backend.disk_templates),
        backend.public,
        backend.drained,
        backend.offline,
        servers,
    ]


def _show(backend: Backend, servers: int) -> dict[str, Any]:
    return dict(zip(BACKEND_COLUMNS, _row(backend, servers)))


def _credentialArguments(parser: argparse.ArgumentParser, adding: bool) -> None:
    parser.add_argument("--username", "--user", dest="username", help="RAPI user")
    parser.add_argument(
        "--password-file", metavar="FILE", help="file whose first line is the RAPI password (kept off the command line)"
    )
    tls = parser.add_mutually_exclusive_group()
    tls.add_argument("--ca-file", metavar="PEM", help="pin the RAPI certificate: its CA or the certificate itself")
    tls.add_argument("--no-verify", action="store_true", help="do not check the RAPI certificate at all")
    if not adding:
        tls.add_argument(
            "--system-trust", action="store_true", help="check the certificate against the system trust store"
        )
    parser.add_argument("--hypervisor", help="kvm, xen-pvm, xen-hvm (default: the cluster's)")
    parser.add_argument("--public", type=parseBool, metavar="True|False", help="available to every project")


def _addArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("clustername", nargs="?", help="the Ganeti cluster name (unique)")
    parser.add_argument(
        "--clustername", dest="clustername_option", metavar="CLUSTERNAME", help="the same, as an option"
    )
    parser.add_argument("--url", "--rapi-url", dest="url", help="RAPI URL (default https://CLUSTERNAME:PORT)")
    parser.add_argument("--port", type=int, default=5080, help="RAPI port when no --url is given (default 5080)")
    _credentialArguments(parser, adding=True)
    parser.add_argument("--no-check", action="store_true", help="do not contact the cluster before adding it")


@command("backend-add", "add a Ganeti cluster as a backend (checked through its RAPI first)", _addArguments)
async def backendAdd(context: ManageContext, args: argparse.Namespace) -> None:
    if (args.clustername is None) == (args.clustername_option is None):
        raise BadInput("give the cluster name once: as the argument or with --clustername")
    args.clustername = args.clustername or args.clustername_option
    if not 0 < args.port < 65536:
        raise BadInput(f"invalid port {args.port}")
    url = rapiURL(args.url or args.clustername, args.port)
    password = readSecretFile(args.password_file, "password") if args.password_file else ""
    caPEM = readCertificate(args.ca_file) if args.ca_file else ""
    if caPEM and not url.startswith("https://"):
        raise BadInput("--ca-file needs an https:// RAPI URL")
    database = await context.database()
    repository = BackendRepository(database)
    if await repository.byClustername(args.clustername) is not None:
        raise CommandError(f"a backend for cluster {args.clustername} exists already")
    hypervisor = args.hypervisor
    templates: list[str] = []
    if not args.no_check:
        draft = _draft(args.clustername, url, args.username or "", password, not args.no_verify, caPEM)
        info = await clusterInfo(context, database, draft)
        name = info.get("name")
        if name and name != args.clustername:
            raise CommandError(f"the RAPI at {url} serves cluster {name}, not {args.clustername}")
        hypervisor = hypervisor or info.get("default_hypervisor")
        templates = [str(t) for t in info.get("enabled_disk_templates") or []]
    backend = await repository.add(
        args.clustername,
        url,
        username=args.username or "",
        password=password,
        verifyTLS=not args.no_verify,
        hypervisor=hypervisor or "kvm",
        public=True if args.public is None else args.public,
        caPEM=caPEM,
    )
    if templates:
        updated = await repository.modify(backend.id, disk_templates=templates)
        assert updated is not None
        backend = updated
    if not args.no_check:
        backend = await updateStatus(context, database, backend)
    context.out.write(formatMapping(_show(backend, 0), context.outputFormat))


async def _serverCounts(database: Any, backends: list[Backend]) -> dict[int, int]:
    servers = ServerRepository(database)
    return {b.id: len(await servers.listByBackend(b.id)) for b in backends}


@command("backend-list", "list the backends with their TLS mode, flags and live server count")
async def backendList(context: ManageContext, args: argparse.Namespace) -> None:
    database = await context.database()
    backends = await BackendRepository(database).list()
    counts = await _serverCounts(database, backends)
    rows = [_row(b, counts[b.id]) for b in backends]
    context.out.write(formatTable(BACKEND_COLUMNS, rows, context.outputFormat))


def _modifyArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("backend", help="id or cluster name")
    parser.add_argument("--url", "--rapi-url", dest="url", help="new RAPI URL")
    _credentialArguments(parser, adding=False)
    parser.add_argument("--drained", type=parseBool, metavar="True|False", help="no new servers are placed here")
    parser.add_argument("--offline", type=parseBool, metavar="True|False", help="the cluster is unreachable")
    parser.add_argument("--check", action="store_true", help="contact the cluster with the new settings before saving")


@command(
    "backend-modify", "change a backend's drained/offline flags, RAPI URL, credentials or TLS check", _modifyArguments
)
async def backendModify(context: ManageContext, args: argparse.Namespace) -> None:
    database = await context.database()
    repository = BackendRepository(database)
    backend = await findBackend(repository, args.backend)
    fields: dict[str, Any] = {}
    if args.url is not None:
        fields["rapi_url"] = rapiURL(args.url, 5080)
    if args.username is not None:
        fields["username"] = args.username
    if args.password_file is not None:
        fields["password"] = readSecretFile(args.password_file, "password")
    if args.ca_file is not None:
        fields["ca_pem"] = readCertificate(args.ca_file)
        fields["verify_tls"] = True
    if args.no_verify:
        fields.update(verify_tls=False, ca_pem="")
    if args.system_trust:
        fields.update(verify_tls=True, ca_pem="")
    for key in ("hypervisor", "public", "drained", "offline"):
        value = getattr(args, key)
        if value is not None:
            fields[key] = value
    if not fields:
        raise CommandError(
            "nothing to change (give --drained, --offline, --url, --username, --password-file, --ca-file, "
            "--no-verify, --system-trust, --hypervisor or --public)"
        )
    if fields.get("ca_pem") and not fields.get("rapi_url", backend.rapi_url).startswith("https://"):
        raise BadInput("--ca-file needs an https:// RAPI URL")
    if args.check:
        merged = {f: fields.get(f, getattr(backend, f)) for f in ("rapi_url", "username", "password", "verify_tls")}
        draft = _draft(
            backend.clustername,
            merged["rapi_url"],
            merged["username"],
            merged["password"],
            merged["verify_tls"],
            fields.get("ca_pem", backend.ca_pem),
        )
        await clusterInfo(context, database, draft)
    modified = await repository.modify(backend.id, **fields)
    assert modified is not None
    counts = await _serverCounts(database, [modified])
    context.out.write(formatMapping(_show(modified, counts[modified.id]), context.outputFormat))


def _removeArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("backend", help="id or cluster name")


@command("backend-remove", "remove a backend that no server uses", _removeArguments)
async def backendRemove(context: ManageContext, args: argparse.Namespace) -> None:
    database = await context.database()
    repository = BackendRepository(database)
    backend = await findBackend(repository, args.backend)
    live = await ServerRepository(database).listByBackend(backend.id)
    if live:
        ids = ", ".join(str(s.id) for s in live[:10]) + (" ..." if len(live) > 10 else "")
        raise CommandError(f"backend {backend.id} ({backend.clustername}) still hosts {len(live)} server(s): {ids}")
    allServers = await ServerRepository(database).listByBackend(backend.id, includeDeleted=True)
    if allServers:
        raise CommandError(
            f"backend {backend.id} ({backend.clustername}) is referenced by {len(allServers)} deleted server(s); "
            "mark it --offline and --drained instead"
        )
    await repository.remove(backend.id)
    context.err.write(f"removed backend {backend.id} ({backend.clustername})\n")


STATUS_COLUMNS = ["id", "clustername", *RESOURCE_FIELDS, "resources_updated"]


def _updateArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("backends", nargs="*", metavar="backend", help="ids or cluster names (default: every one)")


@command(
    "backend-update-status",
    "refresh the free and total memory, disk and CPUs of backends from their nodes (used to place servers)",
    _updateArguments,
)
async def backendUpdateStatus(context: ManageContext, args: argparse.Namespace) -> int:
    database = await context.database()
    repository = BackendRepository(database)
    if args.backends:
        backends = [await findBackend(repository, ident) for ident in args.backends]
    else:
        backends = [b for b in await repository.list() if not b.offline]
    rows = []
    failed = 0
    for backend in backends:
        try:
            updated = await updateStatus(context, database, backend)
        except CommandError as e:
            failed += 1
            context.err.write(f"snf-manage backend-update-status: error: {e}\n")
            continue
        rows.append([updated.id, updated.clustername, *(getattr(updated, f) for f in RESOURCE_FIELDS),
                     updated.resources_updated.isoformat() if updated.resources_updated else None])  # fmt: skip
    context.out.write(formatTable(STATUS_COLUMNS, rows, context.outputFormat))
    return 1 if failed else 0
