# -*- test-case-name: tests.manage.test_main -*-
"""
Core commands: config-show, migrate.
"""

from __future__ import annotations

import argparse

from synnefo_twisted.config import CORE_SECTIONS, Config
from synnefo_twisted.manage.base import ManageContext, command
from synnefo_twisted.manage.output import formatTable


def _configArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("section", nargs="*", help="only these sections")


@command("config-show", "print the effective configuration, secrets masked", _configArguments)
def configShow(context: ManageContext, args: argparse.Namespace) -> None:
    from synnefo_twisted.manage.base import CommandError

    masked = context.config.masked()
    sections = args.section or sorted(masked)
    unknown = [s for s in sections if s not in masked]
    if unknown:
        raise CommandError(f"unknown section [{unknown[0]}] (known: {', '.join(sorted(masked))})")
    if context.outputFormat == "pretty":
        source = context.config.path or "embedded default (no file)"
        context.out.write(f"# source: {source}\n")
        for name in sections:
            context.out.write(f"\n[{name}]\n")
            for key, value in masked[name].items():
                context.out.write(f"{key} = {_toml(value)}\n")
        return
    rows = [(name, key, value) for name in sections for key, value in masked[name].items()]
    context.out.write(formatTable(["section", "key", "value"], rows, context.outputFormat))


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


def _migrateArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--list", action="store_true", help="show applied and pending migrations, change nothing")


@command("migrate", "apply pending schema migrations to the configured database", _migrateArguments)
async def migrateCommand(context: ManageContext, args: argparse.Namespace) -> None:
    from synnefo_twisted.db.migrations import allMigrations, appliedMigrations, migrate

    database = await context.database()
    if args.list:
        applied = set(await appliedMigrations(database))
        rows = [(m.name, "applied" if m.name in applied else "pending") for m in allMigrations()]
        context.out.write(formatTable(["migration", "state"], rows, context.outputFormat))
        return
    done = await migrate(database)
    if done:
        for name in done:
            context.err.write(f"applied {name}\n")
    else:
        context.err.write("database schema is up to date\n")


_KIND_NAMES = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "list[str]": "list of strings",
    "list[int]": "list of integers",
}


def configReference(config: Config) -> str:
    """
    The configuration reference in Markdown: a table per section with each
    key's type, default and meaning (the README embeds this text).
    """
    out: list[str] = []
    for name in sorted(
        config.sections,
        key=lambda n: (n not in CORE_SECTIONS, list(CORE_SECTIONS).index(n) if n in CORE_SECTIONS else 0, n),
    ):
        out.append(f"### `[{name}]`\n")
        out.append("| key | type | default | meaning |")
        out.append("|---|---|---|---|")
        for setting in config.section(name).schema.values():
            kind = _KIND_NAMES[setting.kind] + (" (secret)" if setting.secret else "")
            meaning = setting.help.replace("|", "\\|")
            out.append(f"| `{setting.name}` | {kind} | `{_toml(setting.default)}` | {meaning} |")
        out.append("")
    return "\n".join(out)


@command("config-reference", "print the configuration reference (every section and key) as Markdown")
def configReferenceCommand(context: ManageContext, args: argparse.Namespace) -> None:
    context.out.write(configReference(context.config))
