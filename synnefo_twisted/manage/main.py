# -*- test-case-name: tests.manage.test_main -*-
"""
C{snf-manage [--config FILE] [--output-format pretty|json|csv] COMMAND ...}
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import react

from synnefo_twisted.config import ConfigError, loadConfig
from synnefo_twisted.manage import (  # noqa: F401  (each module registers its commands)
    backends,
    catalog,
    core,
    networks,
    pools,
    queues,
    quotas,
    reconcile,
    servers,
    users,
)
from synnefo_twisted.manage.base import COMMANDS, CommandError, ManageContext
from synnefo_twisted.manage.output import FORMATS
from synnefo_twisted.pluginloader import PluginError, discoverPlugins, pluginSections


class UsageError(Exception):
    """
    An argument did not parse; C{str(error)} is the one-line message.
    """


class _Parser(argparse.ArgumentParser):
    """
    An argument parser whose errors are one line (C{snf-manage COMMAND:
    error: ...}) and exit status 2, instead of the usage text.
    """

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message}")


def buildParser() -> argparse.ArgumentParser:
    parser = _Parser(prog="snf-manage", description="synnefo-twisted administration")
    parser.add_argument(
        "--config",
        help="TOML configuration file (default: $SNF_CONFIG, /etc/synnefo/synnefo.toml, else the embedded default)",
    )
    parser.add_argument("--output-format", choices=FORMATS, default="pretty", help="output of list commands")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in sorted(COMMANDS):
        cmd = COMMANDS[name]
        p = sub.add_parser(name, help=cmd.help, description=cmd.help)
        p.add_argument("--output-format", choices=FORMATS, default=argparse.SUPPRESS, help="output of list commands")
        cmd.arguments(p)
    return parser


def run(reactor: Any, argv: Sequence[str], context: ManageContext | None = None) -> Deferred[int]:
    """
    Parse C{argv} and run the command; Deferred exit status.
    """
    return ensureDeferred(_run(reactor, argv, context))


async def _run(reactor: Any, argv: Sequence[str], context: ManageContext | None) -> int:
    parser = buildParser()
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as e:
        return int(e.code or 0)
    except UsageError as e:
        (context.err if context is not None else sys.stderr).write(f"{e} (see --help)\n")
        return 2
    if context is None:
        try:
            config = loadConfig(args.config or os.environ.get("SNF_CONFIG"), pluginSections(discoverPlugins()))
        except (ConfigError, PluginError) as e:
            sys.stderr.write(f"snf-manage: error: {e}\n")
            return 2
        context = ManageContext(reactor=reactor, config=config, outputFormat=args.output_format)
    else:
        context.outputFormat = args.output_format
    cmd = COMMANDS[args.command]
    try:
        result = cmd.run(context, args)
        if inspect.isawaitable(result):
            result = await result
    except CommandError as e:
        message = " ".join(str(e).split())
        context.err.write(f"snf-manage {cmd.name}: error: {message}\n")
        return e.exitCode
    finally:
        await context.close()
    return result if isinstance(result, int) else 0


def main() -> None:
    """
    The console script.
    """

    def go(reactor: Any) -> Deferred[None]:
        d = run(reactor, sys.argv[1:])

        def done(code: int) -> None:
            if code:
                raise SystemExit(code)

        return d.addCallback(done)

    react(go)
