"""
Tests for L{synnefo_twisted.tap.Options}.
"""

from __future__ import annotations

from pathlib import Path

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from synnefo_twisted.tap import Options


class OptionsTests(SynchronousTestCase):
    def setUp(self) -> None:
        import os

        # keep the test independent of a machine-wide config file
        self.patch(os, "environ", {k: v for k, v in os.environ.items() if not k.startswith("SNF_")})
        from synnefo_twisted import config

        self.patch(config, "DEFAULT_CONFIG_PATH", Path(self.mktemp()))

    def test_defaults(self) -> None:
        """
        Without options: roles from the embedded default, text logs.
        """
        options = Options()
        options.parseOptions([])
        assert options.loadedConfig is not None
        self.assertEqual(options.loadedConfig.section("node")["roles"], ["all"])
        self.assertEqual(options["log-format"], "text")

    def test_rolesOverride(self) -> None:
        """
        C{--role} replaces the configured roles; C{--role none} leaves none.
        """
        options = Options()
        options.parseOptions(["--role", "logic", "-r", "apiserver"])
        assert options.loadedConfig is not None
        self.assertEqual(options.loadedConfig.section("node")["roles"], ["logic", "apiserver"])
        options = Options()
        options.parseOptions(["--role", "none"])
        assert options.loadedConfig is not None
        self.assertEqual(options.loadedConfig.section("node")["roles"], [])
        self.assertEqual(options.selected, [])

    def test_unknownRole(self) -> None:
        """
        An unknown role is a usage error naming it.
        """
        e = self.assertRaises(usage.UsageError, Options().parseOptions, ["--role", "bogus"])
        self.assertIn("unknown role 'bogus'", str(e))

    def test_unknownPlugin(self) -> None:
        """
        An unknown plugin, to add or to remove, is a usage error naming it.
        """
        e = self.assertRaises(usage.UsageError, Options().parseOptions, ["--plugin", "bogus"])
        self.assertIn("unknown plugin 'bogus'", str(e))
        self.assertRaises(usage.UsageError, Options().parseOptions, ["--no-plugin", "bogus"])

    def test_badLogFormat(self) -> None:
        """
        Only text and json are log formats.
        """
        e = self.assertRaises(usage.UsageError, Options().parseOptions, ["--log-format", "xml"])
        self.assertIn("text, json", str(e))

    def test_badConfig(self) -> None:
        """
        A configuration error is a usage error with the file, line and key.
        """
        path = Path(self.mktemp())
        path.write_text('[node]\nroles = "all"\n')
        e = self.assertRaises(usage.UsageError, Options().parseOptions, ["--config", str(path)])
        self.assertEqual(str(e), f"{path}:2: node.roles: must be a list of strings, not a string")

    def test_helpListsRolesAndPlugins(self) -> None:
        """
        The usage text lists the roles and the installed plugins.
        """
        text = str(Options())
        self.assertIn("Roles:", text)
        self.assertIn("ganeti-master", text)
        self.assertIn("Plugins:", text)

    def test_underTwistdOneLine(self) -> None:
        """
        Under twistd a usage error exits with status 2 after one line on stderr.
        """
        import io
        import sys

        err = io.StringIO()
        self.patch(sys, "stderr", err)
        options = Options()
        options.parent = usage.Options()
        e = self.assertRaises(SystemExit, options.parseOptions, ["--role", "bogus"])
        self.assertEqual(e.code, 2)
        self.assertEqual(err.getvalue().count("\n"), 1)
        self.assertTrue(err.getvalue().startswith("twistd synnefo: error: unknown role 'bogus'"))
