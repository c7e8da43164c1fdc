# -*- test-case-name: tests.manage.test_main -*-
"""
The command registry of snf-manage and what a command receives.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import IO, Any

import attrs
from twisted.internet.defer import Deferred, succeed

from synnefo_twisted.config import Config

#: how long C{--wait} waits for a Ganeti job before giving up (seconds)
JOB_WAIT_TIMEOUT = 1800.0


class CommandError(Exception):
    """
    The command cannot do what was asked; C{str(error)} is shown to the
    operator (one line) and the exit status is 1.
    """

    exitCode = 1


class BadInput(CommandError):
    """
    A malformed argument (an address, a CIDR, a value out of range): shown
    as one line, exit status 2 like an argparse usage error. Nothing was
    changed.
    """

    exitCode = 2


@attrs.define
class ManageContext:
    """
    What a command runs with.

    @ivar reactor: the running reactor.
    @ivar config: the validated configuration.
    @ivar outputFormat: C{pretty}, C{json} or C{csv}.
    @ivar out: where results go (standard output).
    @ivar err: where progress and warnings go (standard error).
    @ivar stdin: where confirmations are read from.
    """

    reactor: Any
    config: Config
    outputFormat: str = "pretty"
    out: IO[str] = attrs.field(factory=lambda: sys.stdout)
    err: IO[str] = attrs.field(factory=lambda: sys.stderr)
    stdin: IO[str] = attrs.field(factory=lambda: sys.stdin)
    _database: Any = None
    _bus: Any = None

    def database(self) -> Deferred[Any]:
        """
        The configured database, started (connected) on first use.
        """
        if self._database is not None:
            return succeed(self._database)
        from synnefo_twisted.db import openDatabase

        settings = self.config.section("database")
        database = openDatabase(settings["url"], self.reactor, poolSize=1)
        self._database = database
        return Deferred.fromCoroutine(_start(database))

    def backends(self, database: Any) -> Any:
        """
        The L{IBackendRegistry} of the backends in C{database}, with RAPI
        clients built from their rows (and C{[ganeti] prefix}).
        """
        from synnefo_twisted.backends import BackendRegistry

        return BackendRegistry(database, self.config.section("ganeti")["prefix"], self.reactor)

    def bus(self) -> Deferred[Any]:
        """
        The configured message bus (RabbitMQ), started on first use.

        @raise CommandError: (in the Deferred) the bus is the in-process one,
            which lives inside the node and cannot be reached from here.
        """
        if self._bus is not None:
            return succeed(self._bus)
        settings = self.config.section("bus")
        if settings["url"].startswith("memory:"):
            from twisted.internet.defer import fail

            return fail(
                CommandError(
                    "the in-process bus (memory://) lives inside the node: "
                    "queue commands need RabbitMQ ([bus] url = amqp://...)"
                )
            )
        from synnefo_twisted.bus import openBus

        bus = openBus(settings["url"], self.reactor, spec=settings["spec"], heartbeat=settings["heartbeat"])
        self._bus = bus
        return Deferred.fromCoroutine(_start(bus))

    def close(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._close())

    async def _close(self) -> None:
        bus, self._bus = self._bus, None
        if bus is not None:
            await bus.stopService()
        database, self._database = self._database, None
        if database is not None:
            await database.stopService()


async def _start(database: Any) -> Any:
    await database.startService()
    return database


@attrs.frozen
class Command:
    """
    One snf-manage command.

    @ivar arguments: adds the command's arguments to its sub-parser.
    @ivar run: C{run(context, args)}: a Deferred, a value or None; raise
        L{CommandError} for operator mistakes.
    """

    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[ManageContext, argparse.Namespace], Any]


COMMANDS: dict[str, Command] = {}


def command(
    name: str, help: str, arguments: Callable[[argparse.ArgumentParser], None] = lambda p: None
) -> Callable[[Callable[[ManageContext, argparse.Namespace], Any]], Callable[[ManageContext, argparse.Namespace], Any]]:
    """
    Register a function as the command C{name}.
    """

    def register(
        run: Callable[[ManageContext, argparse.Namespace], Any],
    ) -> Callable[[ManageContext, argparse.Namespace], Any]:
        if name in COMMANDS:
            raise ValueError(f"command {name!r} registered twice")
        COMMANDS[name] = Command(name, help, arguments, run)
        return run

    return register
