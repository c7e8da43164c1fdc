"""
Tests for L{synnefo_twisted.pluginloader}.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from synnefo_twisted.interfaces import ISynnefoPlugin
from synnefo_twisted.pluginloader import PluginError, discoverPlugins, pluginSections, selectPlugins
from tests.fixtures import badplugins, brokenplugins, goodplugins


class DiscoverTests(SynchronousTestCase):
    def test_discovers(self) -> None:
        """
        Every provider in the package is found by name and verified.
        """
        found = discoverPlugins(goodplugins)
        self.assertEqual(sorted(found), ["alpha", "beta", "ganeti-sim", "loner"])
        for plugin in found.values():
            self.assertTrue(verifyObject(ISynnefoPlugin, plugin))

    def test_brokenModule(self) -> None:
        """
        A plugin module that fails to import is an error, not skipped.
        """
        e = self.assertRaises(PluginError, discoverPlugins, brokenplugins)
        self.assertIn("broken on purpose", str(e))
        self.flushLoggedErrors(ImportError)

    def test_incompleteProvider(self) -> None:
        """
        A provider lacking a method of the interface is an error naming it.
        """
        e = self.assertRaises(PluginError, discoverPlugins, badplugins)
        self.assertIn("makeService", str(e))

    def test_projectPlugins(self) -> None:
        """
        The project's own plugins all satisfy the interface and have unique sections.
        """
        found = discoverPlugins()
        pluginSections(found)
        for plugin in found.values():
            self.assertTrue(verifyObject(ISynnefoPlugin, plugin))


class SelectTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.available = discoverPlugins(goodplugins)

    def names(self, *a, **kw) -> list[str]:
        return [p.name for p in selectPlugins(self.available, *a, **kw)]

    def test_byRole(self) -> None:
        """
        A role enables the plugins that name it, in start order.
        """
        self.assertEqual(self.names(["apiserver"]), ["alpha"])
        self.assertEqual(self.names(["apiserver", "logic"]), ["beta", "alpha"])

    def test_all(self) -> None:
        """
        C{all} enables every plugin with a role, and the simulator only when simulated.
        """
        self.assertEqual(self.names(["all"]), ["ganeti-sim", "beta", "alpha"])
        self.assertEqual(self.names(["all"], simulated=False), ["beta", "alpha"])

    def test_explicit(self) -> None:
        """
        C{--plugin} adds, C{--no-plugin} removes; C{none} runs just the named plugin.
        """
        self.assertEqual(self.names(["none"], enable=["loner"]), ["loner"])
        self.assertEqual(self.names([], enable=["loner"]), ["loner"])
        self.assertEqual(self.names(["all"], disable=["beta"]), ["ganeti-sim", "alpha"])

    def test_unknownNames(self) -> None:
        """
        Unknown roles and plugin names are errors that list the known ones.
        """
        e = self.assertRaises(PluginError, selectPlugins, self.available, ["webserver"])
        self.assertIn("unknown role 'webserver'", str(e))
        e = self.assertRaises(PluginError, selectPlugins, self.available, ["all"], enable=["gamma"])
        self.assertIn("unknown plugin 'gamma' (plugins: alpha, beta, ganeti-sim, loner)", str(e))
        self.assertRaises(PluginError, selectPlugins, self.available, ["all"], disable=["gamma"])

    def test_sections(self) -> None:
        """
        Plugins that own a section contribute its schema.
        """
        sections = pluginSections(self.available)
        self.assertEqual(list(sections), ["alpha"])
        self.assertEqual([s.name for s in sections["alpha"]], ["listen", "depth"])
