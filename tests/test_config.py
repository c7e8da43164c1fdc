"""
Tests for L{synnefo_twisted.config}.
"""

from __future__ import annotations

from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from synnefo_twisted.config import ConfigError, Setting, loadConfig, maskSecret

PLUGIN_SECTIONS = {
    "vncproxy": (Setting("port_range", "list[int]", [25000, 30000]), Setting("connect_timeout", "int", 30)),
}


class LoadConfigTests(SynchronousTestCase):
    def write(self, text: str) -> str:
        path = Path(self.mktemp())
        path.write_text(text, encoding="utf-8")
        return str(path)

    def test_embeddedDefault(self) -> None:
        """
        With no file, every section has its defaults: SQLite, the memory bus, roles all.
        """
        config = loadConfig(None, PLUGIN_SECTIONS, environ={})
        self.assertEqual(config.section("node")["roles"], ["all"])
        self.assertEqual(config.section("database")["url"], "sqlite:///./var/synnefo.db")
        self.assertEqual(config.section("bus")["url"], "memory://")
        self.assertEqual(config.section("vncproxy")["connect_timeout"], 30)

    def test_fileValues(self) -> None:
        """
        Values from the file replace the defaults of their section only.
        """
        path = self.write('[node]\nroles = ["apiserver", "logic"]\n\n[vncproxy]\nconnect_timeout = 5\n')
        config = loadConfig(path, PLUGIN_SECTIONS, environ={})
        self.assertEqual(config.section("node")["roles"], ["apiserver", "logic"])
        self.assertEqual(config.section("node")["state_dir"], "./var")
        self.assertEqual(config.section("vncproxy")["connect_timeout"], 5)
        self.assertEqual(config.path, path)

    def test_unknownKeyNamesFileKeyAndLine(self) -> None:
        """
        An unknown key is an error naming the file, the line and the dotted key.
        """
        path = self.write('[node]\nroles = ["all"]\n\n# comment\nrolez = ["x"]\n')
        e = self.assertRaises(ConfigError, loadConfig, path, PLUGIN_SECTIONS, environ={})
        self.assertEqual(e.line, 5)
        self.assertEqual(e.key, "node.rolez")
        self.assertTrue(str(e).startswith(f"{path}:5: node.rolez: unknown key"), str(e))

    def test_unknownSection(self) -> None:
        """
        An unknown section is an error naming its header's line.
        """
        path = self.write('[node]\nroles = ["all"]\n[nodes]\nx = 1\n')
        e = self.assertRaises(ConfigError, loadConfig, path, PLUGIN_SECTIONS, environ={})
        self.assertEqual((e.line, e.key), (3, "nodes"))
        self.assertIn("unknown section [nodes]", str(e))

    def test_wrongType(self) -> None:
        """
        A value of the wrong type is an error that says what was expected.
        """
        path = self.write('[vncproxy]\nconnect_timeout = "30"\n')
        e = self.assertRaises(ConfigError, loadConfig, path, PLUGIN_SECTIONS, environ={})
        self.assertEqual(str(e), f"{path}:2: vncproxy.connect_timeout: must be an integer, not a string")

    def test_boolIsNotInt(self) -> None:
        """
        C{true} is not accepted where an integer is expected.
        """
        path = self.write("[database]\npool_size = true\n")
        e = self.assertRaises(ConfigError, loadConfig, path, PLUGIN_SECTIONS, environ={})
        self.assertIn("must be an integer, not a boolean", str(e))

    def test_badChoice(self) -> None:
        """
        An unknown role is refused with the list of roles.
        """
        path = self.write('[node]\nroles = ["apiserver", "dispatcher"]\n')
        e = self.assertRaises(ConfigError, loadConfig, path, PLUGIN_SECTIONS, environ={})
        self.assertIn("'dispatcher' is not one of: apiserver, logic", str(e))

    def test_checkedValue(self) -> None:
        """
        Per-setting checks reject malformed URLs and endpoints.
        """
        path = self.write('[bus]\nurl = "http://x"\n')
        e = self.assertRaises(ConfigError, loadConfig, path, PLUGIN_SECTIONS, environ={})
        self.assertIn("URL scheme must be one of memory, amqp, amqps", str(e))
        path = self.write('[node]\nadmin_listen = "9090"\n')
        e = self.assertRaises(ConfigError, loadConfig, path, PLUGIN_SECTIONS, environ={})
        self.assertIn("Twisted endpoint description", str(e))

    def test_malformedTOML(self) -> None:
        """
        A syntax error reports the line tomllib found it on.
        """
        path = self.write('[node]\nroles = ["all"\nstate_dir = "x"\n')
        e = self.assertRaises(ConfigError, loadConfig, path, PLUGIN_SECTIONS, environ={})
        self.assertIsNotNone(e.line)
        self.assertIn("invalid TOML", str(e))

    def test_missingFile(self) -> None:
        """
        A file that cannot be read is an error naming it.
        """
        path = self.mktemp()
        e = self.assertRaises(ConfigError, loadConfig, path, PLUGIN_SECTIONS, environ={})
        self.assertIn("cannot read", str(e))
        self.assertIn(path, str(e))

    def test_environmentOverrides(self) -> None:
        """
        C{SNF_<SECTION>_<KEY>} replaces one value: strings raw, others as TOML values.
        """
        env = {
            "SNF_DATABASE_URL": "postgresql://u:p@127.0.0.1/db",
            "SNF_VNCPROXY_PORT_RANGE": "[100, 200]",
            "SNF_NODE_ROLES": '["logic"]',
            "SNF_TEST_WHATEVER": "ignored",
        }
        config = loadConfig(None, PLUGIN_SECTIONS, environ=env)
        self.assertEqual(config.section("database")["url"], "postgresql://u:p@127.0.0.1/db")
        self.assertEqual(config.section("vncproxy")["port_range"], [100, 200])
        self.assertEqual(config.section("node")["roles"], ["logic"])

    def test_environmentBadValue(self) -> None:
        """
        An override of the wrong type names the variable.
        """
        e = self.assertRaises(
            ConfigError, loadConfig, None, PLUGIN_SECTIONS, environ={"SNF_DATABASE_POOL_SIZE": "many"}
        )
        self.assertIn("SNF_DATABASE_POOL_SIZE", str(e))

    def test_environmentUnknown(self) -> None:
        """
        A misspelt override is an error, not silently ignored.
        """
        e = self.assertRaises(ConfigError, loadConfig, None, PLUGIN_SECTIONS, environ={"SNF_DATABASE_URI": "x"})
        self.assertIn("SNF_DATABASE_URI", str(e))

    def test_sectionClaimedTwice(self) -> None:
        """
        A plugin cannot claim a core section.
        """
        self.assertRaises(ConfigError, loadConfig, None, {"node": ()}, environ={})

    def test_masked(self) -> None:
        """
        Secrets are masked for display: URL passwords and secret values.
        """
        config = loadConfig(None, PLUGIN_SECTIONS, environ={"SNF_BUS_URL": "amqp://guest:s3cret@127.0.0.1:5672/%2F"})
        masked = config.masked()
        self.assertEqual(masked["bus"]["url"], "amqp://guest:***@127.0.0.1:5672/%2F")
        self.assertNotIn("s3cret", repr(config.section("bus")))

    def test_replace(self) -> None:
        """
        C{replace} validates and returns a new configuration, leaving the old one alone.
        """
        config = loadConfig(None, PLUGIN_SECTIONS, environ={})
        other = config.replace("node", "roles", ["logic"])
        self.assertEqual(other.section("node")["roles"], ["logic"])
        self.assertEqual(config.section("node")["roles"], ["all"])
        self.assertRaises(ConfigError, config.replace, "node", "roles", ["bogus"])


class MaskSecretTests(SynchronousTestCase):
    def test_forms(self) -> None:
        """
        URLs keep everything but the password; plain secrets become ***.
        """
        self.assertEqual(maskSecret("postgresql://a:b@h:1/d"), "postgresql://a:***@h:1/d")
        self.assertEqual(maskSecret("sqlite:///./var/x.db"), "sqlite:///./var/x.db")
        self.assertEqual(maskSecret("hunter2"), "***")
        self.assertEqual(maskSecret(""), "")
