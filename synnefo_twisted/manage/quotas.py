# -*- test-case-name: tests.manage.test_quotas -*-
"""
Quota commands: quota-list, quota-set.

Limits are holdings of a project (its total) or of one member in a
project (that member's share). A user's own quota is the total of the
user's base project. Resources may be named in full (C{cyclades.vm}) or
by alias (C{servers}, C{cpu}, C{ram}, C{disk}, C{networks},
C{floating-ips}); C{cpu} and C{ram} set both the total and the active
(running servers) limit. RAM and disk are bytes; a K, M, G or T suffix
multiplies by 1024 as often.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from synnefo_twisted.db import models
from synnefo_twisted.db.manage import AdminQueries
from synnefo_twisted.db.repositories import ProjectRepository, QuotaRepository, UserRepository
from synnefo_twisted.manage.base import BadInput, CommandError, ManageContext, command
from synnefo_twisted.manage.output import formatTable
from synnefo_twisted.manage.users import findUser

RESOURCES = (
    "cyclades.vm",
    "cyclades.total_cpu",
    "cyclades.cpu",
    "cyclades.total_ram",
    "cyclades.ram",
    "cyclades.disk",
    "cyclades.network.private",
    "cyclades.floating_ip",
)

ALIASES: Mapping[str, tuple[str, ...]] = {
    "servers": ("cyclades.vm",),
    "cpu": ("cyclades.total_cpu", "cyclades.cpu"),
    "ram": ("cyclades.total_ram", "cyclades.ram"),
    "disk": ("cyclades.disk",),
    "networks": ("cyclades.network.private",),
    "floating-ips": ("cyclades.floating_ip",),
}

BYTES = frozenset({"cyclades.total_ram", "cyclades.ram", "cyclades.disk"})
UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}

QUOTA_COLUMNS = ["project", "project_name", "user", "resource", "limit", "usage", "pending"]


def parseLimits(items: list[str]) -> dict[str, int]:
    """
    C{RESOURCE=VALUE} items → limits by full resource name.

    @raise BadInput: an unknown resource, a malformed or negative value, a
        unit on a count.
    """
    limits: dict[str, int] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not raw:
            raise BadInput(f"expected RESOURCE=VALUE, not {item!r}")
        resources = ALIASES.get(name) or ((name,) if name in RESOURCES else ())
        if not resources:
            known = ", ".join([*ALIASES, *RESOURCES])
            raise BadInput(f"unknown resource {name!r} (one of {known})")
        multiplier = 1
        number = raw.strip()
        if number[-1:].upper() in UNITS:
            if not all(r in BYTES for r in resources):
                raise BadInput(f"{name} is a count: no unit suffix ({raw!r})")
            multiplier = UNITS[number[-1].upper()]
            number = number[:-1]
        if not number.isdigit():
            raise BadInput(f"{name}: {raw!r} is not a non-negative integer")
        for resource in resources:
            limits[resource] = int(number) * multiplier
    return limits


async def findProject(database: Any, ident: str) -> models.Project:
    """
    A project by uuid, id or (unique) name.
    """
    projects = ProjectRepository(database)
    project = await projects.byUUID(ident)
    if project is None and ident.isdigit():
        project = await projects.get(int(ident))
    if project is None:
        named = [p for p in await projects.list() if p.name == ident]
        if len(named) > 1:
            raise CommandError(f"{len(named)} projects are named {ident!r}; give the uuid")
        project = named[0] if named else None
    if project is None:
        raise CommandError(f"no project {ident!r} (give a uuid, id or name)")
    return project


async def baseProject(database: Any, user: models.User) -> models.Project:
    for project in await ProjectRepository(database).projectsOf(user.id):
        if project.is_base and project.owner_uuid == user.uuid:
            return project
    raise CommandError(f"user {user.email} has no base project")


def _listArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project", help="only this project's holdings (uuid, id or name)")
    parser.add_argument("--user", help="only this user's holdings: base and member quotas (id, uuid or e-mail)")
    parser.add_argument("--display-mails", action="store_true", help="show members' e-mails instead of uuids")


@command("quota-list", "list quota limits, usage and pending reservations", _listArguments)
async def quotaList(context: ManageContext, args: argparse.Namespace) -> None:
    database = await context.database()
    queries = AdminQueries(database)
    users = {u.id: u for u in await UserRepository(database).list()}
    projects = {p.id: p for p in await ProjectRepository(database).list()}
    holdings: list[models.Quota]
    if args.project is not None:
        holdings = await queries.quotas(projectId=(await findProject(database, args.project)).id)
    else:
        holdings = await queries.quotas()
    if args.user is not None:
        user = await findUser(UserRepository(database), args.user)
        member = {p.id for p in await ProjectRepository(database).projectsOf(user.id)}
        holdings = [
            q
            for q in holdings
            if q.user_id == user.id
            or (q.user_id is None and q.project_id in member and projects[q.project_id].owner_uuid == user.uuid)
        ]

    def who(userId: int | None) -> str:
        if userId is None:
            return "(project total)"
        user = users.get(userId)
        if user is None:
            return str(userId)
        return user.email if args.display_mails else user.uuid

    rows = [
        [
            projects[q.project_id].uuid,
            projects[q.project_id].name,
            who(q.user_id),
            q.resource,
            q.quota_limit,
            q.usage,
            q.pending,
        ]
        for q in holdings
    ]
    context.out.write(formatTable(QUOTA_COLUMNS, rows, context.outputFormat))


def _setArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("limits", nargs="+", metavar="RESOURCE=VALUE", help="e.g. servers=5 ram=8G cpu=16")
    parser.add_argument("--project", help="project (uuid, id or name); without --user: the project's total")
    parser.add_argument(
        "--user", help="user (id, uuid or e-mail): the share in --project, or the user's base project total"
    )


@command("quota-set", "set quota limits of a project, a user, or a member in a project", _setArguments)
async def quotaSet(context: ManageContext, args: argparse.Namespace) -> None:
    limits = parseLimits(args.limits)
    if args.project is None and args.user is None:
        raise BadInput("give --project, --user or both")
    database = await context.database()
    user = await findUser(UserRepository(database), args.user) if args.user is not None else None
    userId: int | None = None
    if args.project is not None:
        project = await findProject(database, args.project)
        if user is not None:
            members = {p.id for p in await ProjectRepository(database).projectsOf(user.id)}
            if project.id not in members:
                raise CommandError(f"user {user.email} is not a member of project {project.name}")
            userId = user.id
    else:
        assert user is not None
        project = await baseProject(database, user)

    async def store(tx: Any) -> list[models.Quota]:
        quotas = QuotaRepository(tx)
        return [await quotas.setLimit(project.id, r, v, userId) for r, v in sorted(limits.items())]

    stored: list[models.Quota] = await database.runInteraction(store)
    for quota in stored:
        if quota.usage + quota.pending > quota.quota_limit:
            context.err.write(
                f"warning: {quota.resource} is over its new limit {quota.quota_limit} "
                f"(usage {quota.usage}, pending {quota.pending})\n"
            )
    holder = "(project total)" if userId is None else (user.uuid if user is not None else "")
    rows = [[project.uuid, project.name, holder, q.resource, q.quota_limit, q.usage, q.pending] for q in stored]
    context.out.write(formatTable(QUOTA_COLUMNS, rows, context.outputFormat))
