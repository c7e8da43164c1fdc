# -*- test-case-name: tests.test_tap -*-
"""
C{twistd synnefo}: command-line options and the composition root.

This is the only module that touches the global reactor (in
L{makeService}); everything below it receives the reactor as a parameter.
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import Any

from twisted.application.service import IService
from twisted.logger import Logger
from twisted.python import usage

from synnefo_twisted.config import ROLES, Config, ConfigError, loadConfig
from synnefo_twisted.pluginloader import PluginError, discoverPlugins, pluginSections, selectPlugins

log = Logger()

LOG_FORMATS = ("text", "json")


class Options(usage.Options):
    """
    Options of C{twistd synnefo}.
    """

    synopsis = "[--config FILE] [--role ROLE]... [--plugin NAME]... [--no-plugin NAME]... [--log-format text|json]"

    optParameters = [
        [
            "config",
            "c",
            None,
            "TOML configuration file (default /etc/synnefo/synnefo.toml if it exists, else the embedded default)",
        ],
        ["log-format", None, "text", "log output: text or json (one JSON object per line)"],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["roles"] = []
        self["plugins"] = []
        self["no-plugins"] = []
        self.available: dict[str, Any] | None = None
        self.selected: list[Any] = []
        self.loadedConfig: Config | None = None

    def opt_role(self, role: str) -> None:
        """
        A role of this node (repeatable); overrides [node] roles. 'none' for no role.
        """
        self["roles"].append(role)

    opt_r = opt_role

    def opt_plugin(self, name: str) -> None:
        """
        Also run this plugin (repeatable).
        """
        self["plugins"].append(name)

    opt_p = opt_plugin

    def opt_no_plugin(self, name: str) -> None:
        """
        Do not run this plugin although a role enables it (repeatable).
        """
        self["no-plugins"].append(name)

    def _plugins(self) -> dict[str, Any]:
        if self.available is None:
            self.available = discoverPlugins()
        return self.available

    def getUsage(self, width: int | None = None) -> str:
        text = super().getUsage(width)
        lines = ["", "Roles:", "  " + ", ".join(ROLES) + " (and none)", "", "Plugins:"]
        try:
            plugins = self._plugins()
        except PluginError as e:
            lines.append(f"  (plugin discovery failed: {e})")
        else:
            for name in sorted(plugins):
                plugin = plugins[name]
                roles = ", ".join(sorted(plugin.roles)) or "-"
                lines.append(f"  {name:<12} roles: {roles:<16} {plugin.description}")
        return text + "\n".join(lines) + "\n"

    def parseOptions(self, options: list[str] | None = None) -> None:
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            if self.parent is None:
                raise
            # Under twistd: one line with the reason, exit status 2,
            # instead of twistd's full usage text.
            sys.stderr.write(f"twistd synnefo: error: {e}\n")
            raise SystemExit(2) from None

    def postOptions(self) -> None:
        if self["log-format"] not in LOG_FORMATS:
            raise usage.UsageError(f"--log-format must be one of {', '.join(LOG_FORMATS)}, not {self['log-format']!r}")
        try:
            available = self._plugins()
            config = loadConfig(
                self["config"] or os.environ.get("SNF_CONFIG"),
                pluginSections(available),
            )
        except (ConfigError, PluginError) as e:
            raise usage.UsageError(str(e)) from None
        nodeSettings = config.section("node")
        roles = self["roles"] or nodeSettings["roles"]
        try:
            self.selected = selectPlugins(
                available,
                roles,
                enable=list(nodeSettings["plugins"]) + self["plugins"],
                disable=list(nodeSettings["disabled_plugins"]) + self["no-plugins"],
                simulated=config.section("ganeti")["simulated"],
            )
        except PluginError as e:
            raise usage.UsageError(str(e)) from None
        if self["roles"]:
            # the command line's roles are the node's roles
            try:
                config = config.replace("node", "roles", [r for r in self["roles"] if r != "none"])
            except ConfigError as e:
                raise usage.UsageError(str(e)) from None
        self.loadedConfig = config
        if self["log-format"] == "json" and self.parent is not None:
            # twistd resolves --logger by name after the subcommand's options
            self.parent["logger"] = "synnefo_twisted.logs.jsonStdoutObserver"


def makeService(options: Options) -> IService:
    """
    Build the node from parsed options: the composition root.
    """
    from twisted.internet import reactor

    assert options.loadedConfig is not None

    def fatal(code: int) -> None:
        # twistd has no exit status of its own: stop the reactor so twistd
        # cleans up (pid file, logs), then leave with the status.
        atexit.register(_exitWith, code)
        # the node may fail while twistd is still starting the reactor
        reactor.callWhenRunning(reactor.stop)

    from synnefo_twisted.malloc import tuneMalloc
    from synnefo_twisted.node import NodeService

    # the process's allocator, like the reactor, is set up here only
    retain = options.loadedConfig.section("node")["malloc_retain"]
    if tuneMalloc(retain):
        log.info("C allocator keeps up to {retain} bytes of freed memory", retain=retain)
    return NodeService(reactor, options.loadedConfig, options.selected, onFatal=fatal)


def _exitWith(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
