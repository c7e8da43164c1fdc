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
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import react

from synnefo_twisted.config import ConfigError, loadConfig
from synnefo_twisted.manage import core  # noqa: F401  (registers the core commands)
from synnefo_twisted.manage.base import COMMANDS, CommandError, ManageContext
from synnefo_twisted.manage.output import FORMATS
from synnefo_twisted.pluginloader import PluginError, discoverPlugins, pluginSections


def buildParser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="snf-manage", description="synnefo-twisted administration")
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
        context.err.write(f"snf-manage {cmd.name}: error: {e}\n")
        return 1
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
