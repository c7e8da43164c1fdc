# -*- test-case-name: tests.ganeti.test_configdata -*-
"""
Reading Ganeti's cluster configuration file (C{/var/lib/ganeti/config.data},
JSON) for what the watcher needs: the cluster name, the master node, and an
instance's NICs, disks and hvparams (as snf-ganeti-eventd does on nodes where
it cannot query Ganeti).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import attrs
from twisted.python.filepath import FilePath

from synnefo_twisted.ganeti.events import InstanceDetails, firewallProfiles


class ConfigDataError(ValueError):
    """
    The configuration file is missing, unreadable or not Ganeti's format.
    """


def _nicDetails(config: Mapping[str, Any], nic: Mapping[str, Any]) -> dict[str, Any]:
    defaults = config.get("cluster", {}).get("nicparams", {}).get("default", {})
    params = dict(defaults)
    params.update(nic.get("nicparams") or {})
    network = nic.get("network")
    networkName = None
    if network:
        networkName = config.get("networks", {}).get(network, {}).get("name", network)
    return {
        "name": nic.get("name"),
        "network": networkName,
        "ip": nic.get("ip"),
        "mac": nic.get("mac"),
        "mode": params.get("mode"),
        "link": params.get("link"),
        "uuid": nic.get("uuid"),
    }


def instanceDetails(config: Mapping[str, Any], name: str) -> InstanceDetails | None:
    """
    The L{InstanceDetails} of instance C{name} in a decoded config.data, or
    None when the instance is not there.
    """
    for inst in (config.get("instances") or {}).values():
        if inst.get("name") != name:
            continue
        nics = [_nicDetails(config, nic) for nic in inst.get("nics") or []]
        firewalls = firewallProfiles(inst.get("tags") or [])
        for nic in nics:
            if nic["name"] in firewalls:
                nic["firewall"] = firewalls[nic["name"]]
        allDisks = config.get("disks") or {}
        disks = []
        for disk in inst.get("disks") or []:
            # Ganeti >= 2.16 stores disk uuids here; older versions the objects.
            obj = allDisks.get(disk, {}) if isinstance(disk, str) else disk
            disks.append({"name": obj.get("name"), "size": obj.get("size"), "uuid": obj.get("uuid")})
        hypervisor = inst.get("hypervisor")
        clusterHv = (config.get("cluster", {}).get("hvparams") or {}).get(hypervisor, {})
        hvparams = {}
        for key in ("boot_order", "cdrom_image_path"):
            hvparams[key] = (inst.get("hvparams") or {}).get(key, clusterHv.get(key))
        return InstanceDetails(tuple(nics), tuple(disks), hvparams)
    return None


@attrs.define
class ConfigDataReader:
    """
    Reads config.data again only when its size or modification time changed.
    Blocking file reads (small, local; as eventd did).
    """

    path: FilePath[str]
    _stamp: tuple[int, int] | None = None
    _config: Mapping[str, Any] = attrs.field(factory=dict)

    def load(self) -> Mapping[str, Any]:
        """
        The decoded configuration, re-read if the file changed.

        @raise ConfigDataError: missing, unreadable or malformed file.
        """
        try:
            st = os.stat(self.path.path)
        except OSError as e:
            raise ConfigDataError(f"cannot stat {self.path.path}: {e.strerror}") from e
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            try:
                data = json.loads(self.path.getContent())
            except (OSError, ValueError) as e:
                raise ConfigDataError(f"cannot read {self.path.path}: {e}") from e
            if not isinstance(data, dict) or not isinstance(data.get("cluster"), dict):
                raise ConfigDataError(f"{self.path.path} is not a Ganeti configuration")
            self._config = data
            self._stamp = stamp
        return self._config

    def clusterName(self) -> str:
        """
        The cluster name.
        """
        return str(self.load()["cluster"].get("cluster_name", ""))

    def masterNode(self) -> str:
        """
        The name of the current master node.
        """
        config = self.load()
        uuid = config["cluster"].get("master_node")
        node = (config.get("nodes") or {}).get(uuid, {})
        return str(node.get("name", uuid))

    def instanceDetails(self, name: str) -> InstanceDetails | None:
        """
        L{instanceDetails} of the current configuration.
        """
        return instanceDetails(self.load(), name)
