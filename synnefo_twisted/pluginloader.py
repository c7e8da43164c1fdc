# -*- test-case-name: tests.test_pluginloader -*-
"""
Discover the synnefo plugins and choose the ones a node runs.

Discovery uses L{twisted.plugin.getPlugins} on the top-level C{plugins}
package; every provider is checked with C{verifyObject} (a broken plugin is
an error, never silently skipped). Selection turns roles, C{--plugin} and
C{--no-plugin} into the ordered list of plugins to start; unknown names are
errors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import ModuleType
from typing import Any, cast

from twisted.logger import ILogObserver, globalLogPublisher
from twisted.plugin import getPlugins
from twisted.python.failure import Failure
from zope.interface.exceptions import Invalid
from zope.interface.verify import verifyObject

from synnefo_twisted.config import ROLES
from synnefo_twisted.interfaces import ISynnefoPlugin

SIMULATOR_PLUGIN = "ganeti-sim"


class PluginError(Exception):
    """
    A plugin is broken, unknown, or claimed twice.
    """


def discoverPlugins(package: ModuleType | None = None) -> dict[str, Any]:
    """
    Find every L{ISynnefoPlugin} provider in C{package} (the top-level
    C{plugins} package by default), verified.

    @return: name → plugin.
    @raise PluginError: a provider does not satisfy the interface, or two
        share a name.
    """
    if package is None:
        import plugins as package
    # getPlugins logs and skips a plugin module that fails to import; a
    # node must not start without a plugin it was asked for, so collect
    # those failures and raise.
    failures: list[Failure] = []

    def collect(event: dict[str, Any]) -> None:
        # legacy log.err() events carry "failure", new-style ones "log_failure"
        failure = event.get("log_failure", event.get("failure"))
        if isinstance(failure, Failure):
            failures.append(failure)

    observer = cast(ILogObserver, collect)
    globalLogPublisher.addObserver(observer)
    try:
        providers = list(getPlugins(ISynnefoPlugin, package))
    finally:
        globalLogPublisher.removeObserver(observer)
    if failures:
        raise PluginError(f"a plugin module failed to load: {failures[0].getErrorMessage() or repr(failures[0].value)}")
    found: dict[str, Any] = {}
    for plugin in providers:
        try:
            verifyObject(ISynnefoPlugin, plugin)
        except Invalid as e:
            raise PluginError(f"plugin {plugin!r} does not provide ISynnefoPlugin: {e}") from None
        if plugin.name in found:
            raise PluginError(f"two plugins are named {plugin.name!r}")
        found[plugin.name] = plugin
    return found


def selectPlugins(
    available: Mapping[str, Any],
    roles: Iterable[str],
    enable: Iterable[str] = (),
    disable: Iterable[str] = (),
    simulated: bool = True,
) -> list[Any]:
    """
    The plugins a node with C{roles} runs, in start order.

    @param roles: node roles; C{all} enables every plugin that has a role
        (and the simulated Ganeti cluster when C{simulated}); C{none} or
        no roles enables nothing by role.
    @param enable: plugin names added explicitly (C{--plugin}).
    @param disable: plugin names removed explicitly (C{--no-plugin}).
    @raise PluginError: for an unknown role or plugin name.
    """
    roleSet = {r for r in roles if r != "none"}
    unknownRoles = sorted(roleSet - set(ROLES))
    if unknownRoles:
        raise PluginError(f"unknown role {unknownRoles[0]!r} (roles: {', '.join(ROLES)}, none)")
    enable = list(enable)
    disable = list(disable)
    for name in enable + disable:
        if name not in available:
            known = ", ".join(sorted(available)) or "none installed"
            raise PluginError(f"unknown plugin {name!r} (plugins: {known})")

    chosen: set[str] = set()
    for name, plugin in available.items():
        pluginRoles = set(plugin.roles)
        if "all" in roleSet:
            if name == SIMULATOR_PLUGIN:
                if simulated:
                    chosen.add(name)
            elif pluginRoles:
                chosen.add(name)
        elif pluginRoles & roleSet:
            chosen.add(name)
    chosen |= set(enable)
    chosen -= set(disable)
    return orderPlugins(available[name] for name in chosen)


def orderPlugins(plugins: Iterable[Any]) -> list[Any]:
    """
    Sort plugins by C{startOrder}, then name.
    """
    return sorted(plugins, key=lambda p: (p.startOrder, p.name))


def pluginSections(available: Mapping[str, Any]) -> dict[str, Sequence[Any]]:
    """
    The configuration sections plugins own, with their schemas.

    @raise PluginError: two plugins claim one section.
    """
    sections: dict[str, Sequence[Any]] = {}
    owners: dict[str, str] = {}
    for name, plugin in sorted(available.items()):
        if plugin.section is None:
            continue
        if plugin.section in sections:
            raise PluginError(f"plugins {owners[plugin.section]!r} and {name!r} both claim section [{plugin.section}]")
        sections[plugin.section] = tuple(plugin.settings)
        owners[plugin.section] = name
    return sections
