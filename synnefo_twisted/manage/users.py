# -*- test-case-name: tests.manage.test_users -*-
"""
User commands: user-add, user-list, user-modify (admin role, active flag,
token renewal).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

from synnefo_twisted.db.models import User
from synnefo_twisted.db.repositories import UserRepository
from synnefo_twisted.manage.base import BadInput, CommandError, ManageContext, command
from synnefo_twisted.manage.output import formatMapping, formatTable

USER_COLUMNS = ["id", "uuid", "email", "name", "admin", "active", "created"]


def parseBool(value: str) -> bool:
    """
    C{True}/C{False} (any case, also yes/no, 1/0) for argparse.
    """
    lowered = value.lower()
    if lowered in ("true", "yes", "1"):
        return True
    if lowered in ("false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, not {value!r}")


def tokenDays(value: str) -> int:
    """
    A token lifetime in days for argparse: a positive integer.
    """
    if not value.isdigit() or not 0 < int(value) <= 36500:
        raise argparse.ArgumentTypeError(f"expected a number of days from 1 to 36500, not {value!r}")
    return int(value)


def _expiry(days: int | None) -> datetime | None:
    return None if days is None else datetime.now(UTC) + timedelta(days=days)


def _row(user: User) -> list[Any]:
    return [user.id, user.uuid, user.email, user.name, user.isAdmin, user.is_active, user.created.isoformat()]


async def findUser(users: UserRepository, ident: str) -> User:
    """
    A user by id, uuid or e-mail; L{CommandError} when there is none.
    """
    user = None
    if ident.isdigit():
        user = await users.get(int(ident))
    if user is None:
        user = await users.byUUID(ident)
    if user is None:
        user = await users.byEmail(ident)
    if user is None:
        raise CommandError(f"no user {ident!r} (give an id, uuid or e-mail)")
    return user


def _addArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("email", help="the user's e-mail (unique)")
    parser.add_argument("--name", default="", help="display name")
    parser.add_argument("--admin", action="store_true", help="give the admin role")
    parser.add_argument("--token-days", type=tokenDays, help="the token expires after this many days (default: never)")


@command("user-add", "create a user and print its id and a fresh API token", _addArguments)
async def userAdd(context: ManageContext, args: argparse.Namespace) -> None:
    if "@" not in args.email:
        raise CommandError(f"{args.email!r} is not an e-mail address")
    users = UserRepository(await context.database())
    if await users.byEmail(args.email) is not None:
        raise CommandError(f"a user with e-mail {args.email} already exists")
    expires = _expiry(args.token_days)
    user, token = await users.create(args.email, args.name, roles=["admin"] if args.admin else [], tokenExpires=expires)
    data = {"id": user.id, "uuid": user.uuid, "email": user.email, "admin": user.isAdmin, "token": token}
    if expires is not None:
        data["token_expires"] = expires.isoformat()
    context.out.write(formatMapping(data, context.outputFormat))


@command("user-list", "list users")
async def userList(context: ManageContext, args: argparse.Namespace) -> None:
    users = await UserRepository(await context.database()).list()
    context.out.write(formatTable(USER_COLUMNS, [_row(u) for u in users], context.outputFormat))


def _modifyArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("user", help="id, uuid or e-mail")
    parser.add_argument("--admin", type=parseBool, metavar="True|False", help="give or take the admin role")
    parser.add_argument("--active", type=parseBool, metavar="True|False", help="enable or disable the user")
    parser.add_argument("--name", help="new display name")
    parser.add_argument(
        "--renew-token", action="store_true", help="revoke every token of the user and print a fresh one"
    )
    parser.add_argument(
        "--token-days", type=tokenDays, help="with --renew-token: the new token expires after this many days"
    )


@command("user-modify", "change a user's admin role, active flag or name; renew its token", _modifyArguments)
async def userModify(context: ManageContext, args: argparse.Namespace) -> None:
    users = UserRepository(await context.database())
    user = await findUser(users, args.user)
    fields: dict[str, object] = {}
    if args.admin is not None:
        roles = [r for r in user.roles if r != "admin"] + (["admin"] if args.admin else [])
        fields["roles"] = roles
    if args.active is not None:
        fields["is_active"] = args.active
    if args.name is not None:
        fields["name"] = args.name
    if args.token_days is not None and not args.renew_token:
        raise BadInput("--token-days applies to --renew-token")
    if not fields and not args.renew_token:
        raise CommandError("nothing to change (give --admin, --active, --name or --renew-token)")
    if fields:
        modified = await users.modify(user.id, **fields)
        assert modified is not None
        user = modified
    data: dict[str, Any] = dict(zip(USER_COLUMNS, _row(user)))
    if args.renew_token:
        expires = _expiry(args.token_days)
        await users.revokeTokens(user.id)
        data["token"] = await users.addToken(user.id, expires=expires)
        if expires is not None:
            data["token_expires"] = expires.isoformat()
    context.out.write(formatMapping(data, context.outputFormat))
