# -*- test-case-name: tests.test_config -*-
"""
TOML settings: a schema per section, defaults, validation (unknown sections
and keys are errors naming the file, the key and the line), and
C{SNF_<SECTION>_<KEY>} environment overrides.

The core owns the sections C{node}, C{database}, C{bus} and C{ganeti}; every
plugin that has settings owns one more section (see
L{synnefo_twisted.interfaces.ISynnefoPlugin.settings}).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import attrs

DEFAULT_CONFIG_PATH = Path("/etc/synnefo/synnefo.toml")

ROLES = ("apiserver", "logic", "ganeti-master", "ganeti-node", "webapp", "all")


class ConfigError(Exception):
    """
    The configuration is invalid. C{str(error)} is one line naming the
    file, the line (when known), the key and the reason.
    """

    def __init__(self, reason: str, path: str = "", key: str = "", line: int | None = None) -> None:
        self.reason = reason
        self.path = path
        self.key = key
        self.line = line
        where = path or "<config>"
        if line is not None:
            where += f":{line}"
        prefix = f"{where}: " if path or line is not None else ""
        keypart = f"{key}: " if key else ""
        super().__init__(f"{prefix}{keypart}{reason}")


# Setting kinds: a name for messages and a checker/coercer.
_KINDS: dict[str, Callable[[Any], bool]] = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "list[str]": lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v),
    "list[int]": lambda v: isinstance(v, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in v),
}

_ARTICLES = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "list[str]": "a list of strings",
    "list[int]": "a list of integers",
}


@attrs.frozen
class Setting:
    """
    One key of a configuration section.

    @ivar kind: one of C{str}, C{int}, C{float}, C{bool}, C{list[str]},
        C{list[int]}.
    @ivar secret: masked by C{snf-manage config-show} (and URLs have their
        password masked whatever this says).
    @ivar check: optional extra validation: returns an error sentence, or None.
    """

    name: str
    kind: str
    default: Any
    help: str = ""
    secret: bool = False
    choices: tuple[Any, ...] | None = None
    check: Callable[[Any], str | None] | None = attrs.field(default=None, eq=False)

    def __attrs_post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown setting kind {self.kind!r}")

    def validate(self, value: Any) -> str | None:
        """
        Return why C{value} is not acceptable, or None.
        """
        if not _KINDS[self.kind](value):
            return f"must be {_ARTICLES[self.kind]}, not {_describe(value)}"
        if self.choices is not None:
            items = value if isinstance(value, list) else [value]
            bad = [i for i in items if i not in self.choices]
            if bad:
                allowed = ", ".join(str(c) for c in self.choices)
                return f"{bad[0]!r} is not one of: {allowed}"
        if self.check is not None:
            return self.check(value)
        return None


def _describe(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


# Checks shared by the core's and the plugins' settings.


def checkEndpoint(value: str) -> str | None:
    """
    A Twisted server endpoint description (tcp, tcp6, ssl or unix).
    """
    if not re.match(r"^(tcp|tcp6|ssl|unix):", value):
        return "must be a Twisted endpoint description such as tcp:8080:interface=127.0.0.1"
    return None


def checkPositive(value: float) -> str | None:
    return None if value > 0 else "must be positive"


def checkNonNegative(value: float) -> str | None:
    return None if value >= 0 else "must be zero or more"


def checkPortRange(value: list[int]) -> str | None:
    if len(value) != 2 or not (0 < value[0] <= value[1] < 65536):
        return "must be [low, high] with 0 < low <= high < 65536"
    return None


def _urlCheck(schemes: Iterable[str]) -> Callable[[str], str | None]:
    allowed = tuple(schemes)

    def check(value: str) -> str | None:
        scheme = urlsplit(value).scheme
        if scheme not in allowed:
            return f"URL scheme must be one of {', '.join(allowed)} (got {scheme or 'none'!r})"
        return None

    return check


CORE_SECTIONS: dict[str, tuple[Setting, ...]] = {
    "node": (
        Setting(
            "roles",
            "list[str]",
            ["all"],
            "roles of this node: apiserver, logic, ganeti-master, ganeti-node, webapp, all; [] with plugins = [P] runs just P",
            choices=ROLES,
        ),
        Setting("state_dir", "str", "./var", "embedded SQLite, simulated Ganeti, runtime files"),
        Setting(
            "admin_listen",
            "str",
            "tcp:9090:interface=127.0.0.1",
            "Twisted endpoint for /healthz and /metrics",
            check=checkEndpoint,
        ),
        Setting("plugins", "list[str]", [], "plugins to run besides the roles' (like --plugin)"),
        Setting(
            "disabled_plugins", "list[str]", [], "plugins not to run although a role enables them (like --no-plugin)"
        ),
        Setting(
            "malloc_retain",
            "int",
            64 << 20,
            "bytes of freed memory the C allocator keeps for reuse instead of giving back to the kernel"
            " (glibc; large answers then reuse pages instead of faulting new ones in; 0: glibc's defaults)",
            check=checkNonNegative,
        ),
    ),
    "database": (
        Setting(
            "url",
            "str",
            "sqlite:///./var/synnefo.db",
            "sqlite:///PATH (relative to the working directory) or postgresql://user:password@host:5432/dbname",
            secret=True,
            check=_urlCheck(("sqlite", "postgresql", "postgres")),
        ),
        Setting(
            "pool_size",
            "int",
            16,
            "PostgreSQL connections in the pool (at least [dispatcher] concurrency on a logic node)",
            check=checkPositive,
        ),
        Setting(
            "migrate_on_start",
            "bool",
            True,
            "apply pending schema migrations when the node starts (else run snf-manage migrate)",
        ),
    ),
    "bus": (
        Setting(
            "url",
            "str",
            "memory://",
            "memory:// (in-process) or amqp://user:password@host:5672/vhost (%2F for /)",
            secret=True,
            check=_urlCheck(("memory", "amqp", "amqps")),
        ),
        Setting("heartbeat", "int", 30, "AMQP heartbeat seconds (0 disables)"),
        Setting(
            "spec",
            "str",
            "/usr/share/amqp/specs/0-9-1-rabbit/amqp0-9-1.stripped.extended.xml",
            "AMQP 0-9-1 spec file (Debian package amqp-specs)",
        ),
    ),
    "ganeti": (
        Setting("prefix", "str", "snf-", "instance snf-<id>, network snf-net-<id>, nic snf-nic-<id>"),
        Setting(
            "simulated",
            "bool",
            True,
            "run the simulated cluster (plugin ganeti-sim) as backend 1; real clusters are added with snf-manage backend-add",
        ),
    ),
}


class Settings(Mapping[str, Any]):
    """
    The effective values of one section: a read-only mapping.
    """

    def __init__(self, section: str, values: Mapping[str, Any], schema: Sequence[Setting]) -> None:
        self.section = section
        self._values = dict(values)
        self._schema = {s.name: s for s in schema}

    @property
    def schema(self) -> Mapping[str, Setting]:
        return self._schema

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Settings({self.section!r}, {self.masked()!r})"

    def masked(self) -> dict[str, Any]:
        """
        The values with secrets masked, for display.
        """
        out: dict[str, Any] = {}
        for key, value in self._values.items():
            setting = self._schema.get(key)
            if setting is not None and setting.secret and isinstance(value, str):
                out[key] = maskSecret(value)
            else:
                out[key] = value
        return out


def maskSecret(value: str) -> str:
    """
    Mask the password of a URL, or the whole value when it is not a URL
    with credentials.
    """
    parts = urlsplit(value)
    if parts.scheme and "://" in value:
        if parts.password is None:
            return value
        netloc = f"{parts.username}:***@{parts.hostname}"
        if parts.port is not None:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return "***" if value else value


@attrs.frozen
class Config:
    """
    The whole validated configuration.

    @ivar path: the file it came from, or C{""} for the embedded default.
    """

    path: str
    sections: Mapping[str, Settings]

    def section(self, name: str) -> Settings:
        return self.sections[name]

    def masked(self) -> dict[str, dict[str, Any]]:
        return {name: s.masked() for name, s in self.sections.items()}

    def replace(self, section: str, key: str, value: Any) -> Config:
        """
        A copy with one value replaced (validated like the file's values).

        @raise ConfigError: the value is not acceptable.
        """
        old = self.sections[section]
        setting = old.schema[key]
        problem = setting.validate(value)
        if problem:
            raise ConfigError(problem, key=f"{section}.{key}")
        values = dict(old)
        values[key] = value
        sections = dict(self.sections)
        sections[section] = Settings(section, values, tuple(old.schema.values()))
        return Config(path=self.path, sections=sections)


def _keyLines(text: str) -> dict[tuple[str, str], int]:
    """
    Find the line of every C{[section]} header and C{key = } assignment.

    A small scanner (tomllib reports no positions): good for the flat
    layout our files have (tables of scalar and array keys).
    """
    lines: dict[tuple[str, str], int] = {}
    section = ""
    header = re.compile(r'^\s*\[\s*"?([A-Za-z0-9_.-]+)"?\s*\]')
    assign = re.compile(r'^\s*"?([A-Za-z0-9_-]+)"?\s*=')
    for number, line in enumerate(text.splitlines(), start=1):
        m = header.match(line)
        if m:
            section = m.group(1)
            lines.setdefault((section, ""), number)
            continue
        m = assign.match(line)
        if m:
            lines.setdefault((section, m.group(1)), number)
    return lines


def _parseEnvValue(raw: str, setting: Setting, name: str) -> Any:
    if setting.kind == "str":
        return raw
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"not a TOML value ({e})", path=f"environment {name}") from None


def loadConfig(
    path: str | os.PathLike[str] | None,
    pluginSections: Mapping[str, Sequence[Setting]] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """
    Read, validate and complete the configuration.

    @param path: the TOML file; None means the default file when it exists,
        else the embedded default (no file).
    @param pluginSections: the sections plugins own, with their schemas.
    @param environ: where to look for C{SNF_<SECTION>_<KEY>} overrides
        (C{os.environ} when None).
    @raise ConfigError: for the first problem found.
    """
    schema: dict[str, tuple[Setting, ...]] = dict(CORE_SECTIONS)
    for name, settings in (pluginSections or {}).items():
        if name in schema:
            raise ConfigError(f"section [{name}] is claimed twice (core or another plugin)")
        schema[name] = tuple(settings)

    if path is None and DEFAULT_CONFIG_PATH.exists():
        path = DEFAULT_CONFIG_PATH
    data: dict[str, Any] = {}
    lines: dict[tuple[str, str], int] = {}
    where = ""
    if path is not None:
        where = os.fspath(path)
        try:
            text = Path(where).read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"cannot read: {e.strerror}", path=where) from None
        except UnicodeDecodeError:
            raise ConfigError("not UTF-8 text", path=where) from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            # tomllib says "... (at line N, column M)"
            m = re.search(r"at line (\d+)", str(e))
            raise ConfigError(
                f"invalid TOML: {str(e).split(' (at line')[0]}",
                path=where,
                line=int(m.group(1)) if m else None,
            ) from None
        lines = _keyLines(text)

    values: dict[str, dict[str, Any]] = {
        name: {s.name: _copy(s.default) for s in settings} for name, settings in schema.items()
    }

    for sectionName, content in data.items():
        if sectionName not in schema:
            raise ConfigError(
                f"unknown section [{sectionName}] (known: {', '.join(sorted(schema))})",
                path=where,
                key=sectionName,
                line=lines.get((sectionName, "")),
            )
        if not isinstance(content, dict):
            raise ConfigError(
                "must be a table ([section])", path=where, key=sectionName, line=lines.get(("", sectionName))
            )
        known = {s.name: s for s in schema[sectionName]}
        for key, value in content.items():
            dotted = f"{sectionName}.{key}"
            line = lines.get((sectionName, key))
            if key not in known:
                raise ConfigError(
                    f"unknown key (known in [{sectionName}]: {', '.join(sorted(known)) or 'none'})",
                    path=where,
                    key=dotted,
                    line=line,
                )
            problem = known[key].validate(value)
            if problem:
                raise ConfigError(problem, path=where, key=dotted, line=line)
            values[sectionName][key] = value

    env = os.environ if environ is None else environ
    for sectionName, settings in schema.items():
        for setting in settings:
            name = f"SNF_{sectionName.upper().replace('-', '_')}_{setting.name.upper()}"
            if name in env:
                value = _parseEnvValue(env[name], setting, name)
                problem = setting.validate(value)
                if problem:
                    raise ConfigError(problem, path=f"environment {name}", key=f"{sectionName}.{setting.name}")
                values[sectionName][setting.name] = value
    for name in env:
        if name.startswith("SNF_") and not _envKnown(name, schema):
            raise ConfigError(
                "unknown setting (expected SNF_<SECTION>_<KEY> for a known section and key)",
                path=f"environment {name}",
            )

    return Config(
        path=where,
        sections={name: Settings(name, values[name], schema[name]) for name in schema},
    )


def _envKnown(name: str, schema: Mapping[str, Sequence[Setting]]) -> bool:
    for sectionName, settings in schema.items():
        for setting in settings:
            if name == f"SNF_{sectionName.upper().replace('-', '_')}_{setting.name.upper()}":
                return True
    # variables the tools and the test harness use, not settings
    return name in _NON_SETTING_ENV or name.startswith("SNF_TEST_")


_NON_SETTING_ENV = frozenset({"SNF_CONFIG"})


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value
