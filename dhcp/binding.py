# -*- test-case-name: tests.dhcp.test_binding -*-
"""
nfdhcpd binding files: one file per tap, named after it, of C{KEY=value}
lines (INDEV, IP, MAC, HOSTNAME, SUBNET, GATEWAY, SUBNET6, GATEWAY6, EUI64,
MACSPOOF, MTU, PRIVATE; TAGS, BRIDGE and unknown keys are tolerated and
ignored). An empty value means unset; surrounding double quotes are
removed (snf-network writes C{TAGS="..."}).

L{parseBinding} is pure. L{BindingStore} holds the current bindings and
loads or forgets files by name. L{BindingWatcher} keeps a store in step with
its directory through C{twisted.internet.inotify}.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
from twisted.logger import Logger
from twisted.python.filepath import FilePath

from dhcp.packet import macFromText

log = Logger()

KNOWN_KEYS = frozenset(
    {
        "INDEV",
        "IP",
        "MAC",
        "HOSTNAME",
        "SUBNET",
        "GATEWAY",
        "SUBNET6",
        "GATEWAY6",
        "EUI64",
        "MACSPOOF",
        "MTU",
        "PRIVATE",
        "TAGS",
        "BRIDGE",
    }
)


class BindingError(ValueError):
    """
    A binding file is malformed; the message says why.
    """


@attrs.frozen
class Binding:
    """
    One tap's binding.

    @ivar tap: the tap interface (the file name).
    @ivar indev: the device the packets arrive on: the tap (routed) or the
        bridge (bridged); its MAC is the source of our replies.
    """

    tap: str
    mac: bytes
    hostname: str
    indev: str
    ip: ipaddress.IPv4Address | None = None
    subnet: ipaddress.IPv4Network | None = None
    gateway: ipaddress.IPv4Address | None = None
    subnet6: ipaddress.IPv6Network | None = None
    gateway6: ipaddress.IPv6Address | None = None
    eui64: ipaddress.IPv6Address | None = None
    macSpoof: bool = False
    mtu: int | None = None
    private: bool = False

    @property
    def routed(self) -> bool:
        return self.indev == self.tap


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def parseBinding(tap: str, text: str) -> Binding:
    """
    Parse the content of the binding file of C{tap}.

    @raise BindingError: when MAC or HOSTNAME is missing or a value is
        malformed.
    """
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise BindingError(f"line {number} is not KEY=value")
        key = key.strip()
        if key in KNOWN_KEYS:
            values[key] = _unquote(value)

    def get(key: str) -> str | None:
        return values.get(key) or None

    def convert(key: str, fn: Callable[[str], Any]) -> Any:
        raw = get(key)
        if raw is None:
            return None
        try:
            return fn(raw)
        except ValueError as e:
            raise BindingError(f"{key}={raw!r}: {e}") from None

    macText = get("MAC")
    if macText is None:
        raise BindingError("MAC is missing")
    hostname = get("HOSTNAME")
    if hostname is None:
        raise BindingError("HOSTNAME is missing")
    mac = convert("MAC", macFromText)
    subnet = convert("SUBNET", lambda v: ipaddress.IPv4Network(v, strict=False))
    ip = convert("IP", ipaddress.IPv4Address)
    gateway = convert("GATEWAY", ipaddress.IPv4Address)
    subnet6 = convert("SUBNET6", lambda v: ipaddress.IPv6Network(v, strict=False))
    gateway6 = convert("GATEWAY6", ipaddress.IPv6Address)
    eui64 = convert("EUI64", ipaddress.IPv6Address)
    mtu = convert("MTU", int)
    if mtu is not None and not 576 <= mtu <= 65535:
        raise BindingError(f"MTU={mtu} is out of range 576..65535")
    if ip is not None and subnet is None:
        raise BindingError("IP is set but SUBNET is missing")
    if ip is not None and subnet is not None and ip not in subnet:
        raise BindingError(f"IP {ip} is not in SUBNET {subnet}")
    return Binding(
        tap=tap,
        mac=mac,
        hostname=hostname,
        indev=get("INDEV") or tap,
        ip=ip,
        subnet=subnet,
        gateway=gateway,
        subnet6=subnet6,
        gateway6=gateway6,
        eui64=eui64,
        macSpoof=get("MACSPOOF") is not None,
        mtu=mtu,
        private=get("PRIVATE") is not None,
    )


def formatBinding(values: dict[str, str]) -> str:
    """
    The text of a binding file with the given keys (empty values kept as
    C{KEY=}), in the order given.
    """
    return "".join(f"{k}={v}\n" for k, v in values.items())


def isBindingName(name: str) -> bool:
    """
    Whether a directory entry names a binding (not a temporary or hidden
    file, as written by L{dhcp.ifup} before its atomic rename).
    """
    return bool(name) and not name.startswith(".") and not name.endswith(("~", ".tmp", ".swp"))


class BindingStore:
    """
    The current bindings by tap name, loaded from a directory.

    @ivar generation: incremented on every change, so that caches keyed on
        bindings (ifindex lookups, sockets) know when to refresh.
    """

    def __init__(self, directory: Path, onChange: Callable[[str, Binding | None], None] | None = None) -> None:
        self.directory = directory
        self._bindings: dict[str, Binding] = {}
        self._onChange = onChange
        self.generation = 0
        self.errors = 0

    def __len__(self) -> int:
        return len(self._bindings)

    def __iter__(self) -> Iterator[Binding]:
        return iter(list(self._bindings.values()))

    def get(self, tap: str) -> Binding | None:
        return self._bindings.get(tap)

    def _set(self, tap: str, binding: Binding | None) -> None:
        old = self._bindings.get(tap)
        if binding is None:
            if old is None:
                return
            del self._bindings[tap]
        else:
            if old == binding:
                return
            self._bindings[tap] = binding
        self.generation += 1
        if self._onChange is not None:
            self._onChange(tap, binding)

    def load(self, name: str) -> Binding | None:
        """
        (Re)load the file C{name}; a missing or malformed file removes the
        binding (a malformed one is logged, and will be loaded when it is
        fixed, i.e. rewritten).
        """
        if not isBindingName(name):
            return None
        path = self.directory / name
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self._set(name, None)
            return None
        except (OSError, UnicodeDecodeError) as e:
            self.errors += 1
            log.warn("binding {path} unreadable, ignored: {error}", path=str(path), error=str(e))
            self._set(name, None)
            return None
        try:
            binding = parseBinding(name, text)
        except BindingError as e:
            self.errors += 1
            log.warn("binding {path} malformed, ignored until fixed: {error}", path=str(path), error=str(e))
            self._set(name, None)
            return None
        if self._bindings.get(name) != binding:
            log.info(
                "binding {tap}: MAC {mac} IP {ip} indev {indev} subnet6 {subnet6}",
                tap=name,
                mac=binding.mac.hex(":"),
                ip=str(binding.ip),
                indev=binding.indev,
                subnet6=str(binding.subnet6),
            )
        self._set(name, binding)
        return binding

    def forget(self, name: str) -> None:
        """
        Remove the binding C{name} (its file was deleted or moved away).
        """
        if name in self._bindings:
            log.info("binding {tap} removed", tap=name)
        self._set(name, None)

    def rescan(self) -> None:
        """
        Load every file of the directory and forget bindings whose file is
        gone.
        """
        try:
            names = {n for n in os.listdir(self.directory) if isBindingName(n)}
        except OSError as e:
            log.warn("bindings directory {dir} unreadable: {error}", dir=str(self.directory), error=str(e))
            names = set()
        for gone in set(self._bindings) - names:
            self.forget(gone)
        for name in sorted(names):
            self.load(name)


class BindingWatcher:
    """
    Keep a L{BindingStore} in step with its directory with inotify:
    C{IN_CLOSE_WRITE} and C{IN_MOVED_TO} (re)load a file, C{IN_DELETE} and
    C{IN_MOVED_FROM} forget it.

    Twisted's L{INotify} discards C{IN_Q_OVERFLOW} events (they carry watch
    descriptor -1, which it does not know), so an overflow cannot be seen
    here; a full rescan every C{rescanPeriod} seconds is the safety net
    (nfdhcpd rescanned on overflow, a bug fixed in 2016).
    """

    def __init__(self, store: BindingStore, reactor: Any, rescanPeriod: float = 60.0) -> None:
        self.store = store
        self._reactor = reactor
        self._rescanPeriod = rescanPeriod
        self._notifier: Any = None
        self._loop: Any = None

    def start(self) -> None:
        from twisted.internet import inotify, task

        self._notifier = inotify.INotify(reactor=self._reactor)
        self._notifier.startReading()
        mask = inotify.IN_CLOSE_WRITE | inotify.IN_MOVED_TO | inotify.IN_DELETE | inotify.IN_MOVED_FROM
        self._notifier.watch(FilePath(os.fspath(self.store.directory)), mask=mask, callbacks=[self._event])
        # after the watch, so that no change between the scan and the watch is lost
        self.store.rescan()
        if self._rescanPeriod > 0:
            self._loop = task.LoopingCall(self.store.rescan)
            self._loop.clock = self._reactor
            self._loop.start(self._rescanPeriod, now=False)

    def _event(self, ignored: object, filepath: FilePath[Any], mask: int) -> None:
        from twisted.internet import inotify

        name = filepath.asTextMode().basename()
        if mask & (inotify.IN_DELETE | inotify.IN_MOVED_FROM):
            self.store.forget(name)
        elif mask & (inotify.IN_CLOSE_WRITE | inotify.IN_MOVED_TO):
            self.store.load(name)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        if self._notifier is not None:
            self._notifier.loseConnection()
            self._notifier = None
