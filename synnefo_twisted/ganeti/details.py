# -*- test-case-name: tests.ganeti.test_watcher -*-
"""
Where the watcher gets an instance's NICs, disks and hvparams: Ganeti's
config.data (no credentials needed; what eventd did off the master), or the
RAPI (what the simulated cluster offers).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.filepath import FilePath

from synnefo_twisted.ganeti.configdata import ConfigDataError, ConfigDataReader
from synnefo_twisted.ganeti.errors import GanetiError, RapiNotFound
from synnefo_twisted.ganeti.events import InstanceDetails, firewallProfiles
from synnefo_twisted.interfaces import IGanetiClient

log = Logger()

#: Written by the simulated cluster in its data directory: how to reach its RAPI.
SIM_RAPI_FILE = "sim-rapi.json"


class DetailsSource(Protocol):
    """
    Gives the L{InstanceDetails} of an instance (None when unknown or
    unavailable; the message then goes out without them).
    """

    def details(self, name: str) -> Deferred[InstanceDetails | None]: ...


class NoDetails:
    """
    Never attaches details.
    """

    def details(self, name: str) -> Deferred[InstanceDetails | None]:
        return succeed(None)


class ConfigDataDetails:
    """
    Reads config.data (re-read only when it changes).
    """

    def __init__(self, path: FilePath[str]) -> None:
        self.reader = ConfigDataReader(path)

    def details(self, name: str) -> Deferred[InstanceDetails | None]:
        try:
            return succeed(self.reader.instanceDetails(name))
        except ConfigDataError as e:
            log.warn("no details for {instance}: {error}", instance=name, error=str(e))
            return succeed(None)


def detailsFromRecord(record: dict[str, Any]) -> InstanceDetails:
    """
    L{InstanceDetails} from a RAPI instance record (C{nic.*}, C{disk.*},
    C{hvparams}, C{tags}), shaped as eventd's Ganeti query gave them.
    """
    keys = ("name", "network", "ip", "mac", "mode", "link", "uuid")
    columns = [
        record.get(f)
        for f in ("nic.names", "nic.networks.names", "nic.ips", "nic.macs", "nic.modes", "nic.links", "nic.uuids")
    ]
    nics = [dict(zip(keys, values)) for values in zip(*[c or [] for c in columns])]
    firewalls = firewallProfiles(record.get("tags") or [])
    for nic in nics:
        if nic["name"] in firewalls:
            nic["firewall"] = firewalls[nic["name"]]
    disks = [
        {"name": n, "size": s, "uuid": u}
        for n, s, u in zip(
            record.get("disk.names") or [], record.get("disk.sizes") or [], record.get("disk.uuids") or []
        )
    ]
    hv = record.get("hvparams") or {}
    return InstanceDetails(tuple(nics), tuple(disks), {k: hv.get(k) for k in ("boot_order", "cdrom_image_path")})


class RapiDetails:
    """
    Asks the RAPI (C{GET /2/instances/<name>}).
    """

    def __init__(self, client: IGanetiClient) -> None:
        self.client = client

    def details(self, name: str) -> Deferred[InstanceDetails | None]:
        async def fetch() -> InstanceDetails | None:
            try:
                record = await self.client.getInstance(name)  # type: ignore[misc]
            except RapiNotFound:
                return None
            except GanetiError as e:
                log.warn("no details for {instance}: {error}", instance=name, error=str(e))
                return None
            return detailsFromRecord(record)

        return Deferred.fromCoroutine(fetch())


def readSimRapiFile(dataDir: FilePath[str]) -> dict[str, str] | None:
    """
    The simulated cluster's RAPI address and credentials, if C{dataDir} is
    a simulated cluster's.
    """
    path = dataDir.child(SIM_RAPI_FILE)
    try:
        data = json.loads(path.getContent())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("url", "user", "password")):
        return None
    return {k: data[k] for k in ("url", "user", "password")}


class AutoDetails:
    """
    Picks the source per lookup: config.data when the data directory has
    one (a real Ganeti master), else the simulated cluster's RAPI when its
    pointer file is there, else none.
    """

    def __init__(self, reactor: Any, dataDir: FilePath[str]) -> None:
        self._reactor = reactor
        self.dataDir = dataDir
        self._config = ConfigDataDetails(dataDir.child("config.data"))
        self._rapi: tuple[dict[str, str], RapiDetails] | None = None

    def details(self, name: str) -> Deferred[InstanceDetails | None]:
        if self.dataDir.child("config.data").exists():
            return self._config.details(name)
        pointer = readSimRapiFile(self.dataDir)
        if pointer is None:
            return succeed(None)
        if self._rapi is None or self._rapi[0] != pointer:
            from synnefo_twisted.ganeti.rapi import RapiClient

            client = RapiClient.forURL(self._reactor, pointer["url"], pointer["user"], pointer["password"], timeout=10)
            self._rapi = (pointer, RapiDetails(client))
        return self._rapi[1].details(name)
