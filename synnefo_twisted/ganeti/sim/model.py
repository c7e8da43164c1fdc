# -*- test-case-name: tests.ganeti.test_sim_model -*-
"""
The state of a simulated cluster and what each opcode does to it. Pure
synchronous code: no clock, no I/O. An op is checked (L{SimCluster.check},
Ganeti's CheckPrereq) when it starts running and applied
(L{SimCluster.apply}) when it ends.
"""

from __future__ import annotations

import ipaddress
import re
import uuid as uuidlib
from collections.abc import Mapping
from typing import Any

import attrs


class OpError(Exception):
    """
    An op failed the way Ganeti reports it: C{[errorClass, [message, code]]}.
    """

    def __init__(self, errorClass: str, message: str, code: str | None = None) -> None:
        self.errorClass = errorClass
        self.message = message
        self.code = code
        super().__init__(f"{errorClass}: {message}")

    def result(self) -> list[Any]:
        args: list[Any] = [self.message] if self.code is None else [self.message, self.code]
        return [self.errorClass, args]


_MAC_PREFIX = re.compile(r"^[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$", re.IGNORECASE)


def _prereq(message: str, code: str = "wrong_input") -> OpError:
    return OpError("OpPrereqError", message, code)


@attrs.define
class SimNIC:
    name: str | None
    uuid: str
    mac: str
    ip: str | None
    network: str | None
    mode: str
    link: str
    vlan: str = ""


@attrs.define
class SimDisk:
    name: str | None
    uuid: str
    size: int
    mode: str = "rw"


@attrs.define
class SimInstance:
    name: str
    uuid: str
    os: str
    hypervisor: str
    diskTemplate: str
    pnode: str
    beparams: dict[str, Any]
    hvparams: dict[str, Any]
    osparams: dict[str, Any]
    nics: list[SimNIC]
    disks: list[SimDisk]
    tags: list[str]
    adminUp: bool
    operUp: bool
    ctime: float
    mtime: float
    serial: int = 1
    consolePort: int | None = None

    @property
    def status(self) -> str:
        if self.adminUp:
            return "running" if self.operUp else "ERROR_down"
        return "ERROR_up" if self.operUp else "ADMIN_down"


@attrs.define
class SimNetwork:
    name: str
    uuid: str
    network: ipaddress.IPv4Network
    gateway: str | None
    network6: str | None
    gateway6: str | None
    macPrefix: str | None
    tags: list[str]
    external: set[str]
    reserved: dict[str, str]  # ip -> instance name
    groups: dict[str, tuple[str, str, str]]  # group -> (mode, link, vlan)
    ctime: float
    mtime: float
    serial: int = 1

    def size(self) -> int:
        return int(self.network.num_addresses)

    _hint: int = 0

    def isFree(self, ip: str) -> bool:
        return ip not in self.external and ip not in self.reserved

    def allocate(self, taken: set[str] | frozenset[str] = frozenset()) -> str | None:
        """
        A free address (not reserved, not in C{taken}), searching on from
        the last one handed out so that big pools stay fast.
        """
        base = int(self.network.network_address)
        size = self.size()
        for step in range(size):
            offset = (self._hint + step) % size
            ip = str(ipaddress.IPv4Address(base + offset))
            if self.isFree(ip) and ip not in taken:
                return ip
        return None

    def reserve(self, ip: str, instance: str) -> None:
        """
        Hand C{ip} to C{instance}; the next search starts after it.
        """
        self.reserved[ip] = instance
        offset = int(ipaddress.IPv4Address(ip)) - int(self.network.network_address)
        if 0 <= offset < self.size():
            self._hint = offset + 1

    def freeCount(self) -> int:
        return self.size() - len(self.external) - len(self.reserved)


DEFAULT_BEPARAMS: Mapping[str, Any] = {
    "minmem": 128,
    "maxmem": 128,
    "vcpus": 1,
    "auto_balance": True,
    "always_failover": False,
    "spindle_use": 1,
}
DEFAULT_HVPARAMS: Mapping[str, Any] = {"boot_order": "disk", "cdrom_image_path": "", "serial_console": False}


@attrs.define
class SimCluster:
    """
    One simulated single-node cluster.
    """

    name: str = "sim.ganeti.local"
    node: str = "node1.sim.ganeti.local"
    group: str = "default"
    hypervisor: str = "fake"
    diskTemplates: tuple[str, ...] = ("diskless", "file", "plain", "drbd", "ext")
    macPrefix: str = "aa:00:01"
    nicMode: str = "bridged"
    nicLink: str = "br0"
    memoryMiB: int = 1024 * 1024
    diskMiB: int = 100 * 1024 * 1024
    cpus: int = 1024
    instances: dict[str, SimInstance] = attrs.field(factory=dict)
    networks: dict[str, SimNetwork] = attrs.field(factory=dict)
    tags: list[str] = attrs.field(factory=list)
    groupUuid: str = attrs.field(factory=lambda: str(uuidlib.uuid4()))
    nodeUuid: str = attrs.field(factory=lambda: str(uuidlib.uuid4()))
    _macCounter: int = 0
    _macsInUse: set[str] = attrs.field(factory=set)

    # ---------------------------------------------------------- helpers

    def _newMac(self) -> str:
        while True:
            self._macCounter += 1
            n = self._macCounter
            mac = f"{self.macPrefix}:{(n >> 16) & 0xFF:02x}:{(n >> 8) & 0xFF:02x}:{n & 0xFF:02x}"
            if mac not in self._macsInUse:
                self._macsInUse.add(mac)
                return mac

    def instance(self, name: Any) -> SimInstance:
        inst = self.instances.get(name) if isinstance(name, str) else None
        if inst is None:
            raise _prereq(f"Instance '{name}' not known", "unknown_entity")
        return inst

    def network(self, name: Any) -> SimNetwork:
        net = self.networks.get(name) if isinstance(name, str) else None
        if net is None:
            raise _prereq(f"Network '{name}' not found", "unknown_entity")
        return net

    def _checkGroup(self, group: Any) -> None:
        if group != self.group:
            raise _prereq(f"Group '{group}' not found", "unknown_entity")

    # --------------------------------------------------------- the ops

    def check(self, opInput: Mapping[str, Any]) -> None:
        """
        Ganeti's CheckPrereq: raise L{OpError} if the op cannot run now.
        Changes nothing.
        """
        self._run(opInput, apply=False, now=0.0)

    def apply(self, opInput: Mapping[str, Any], now: float) -> Any:
        """
        Run the op (unless it is a dry run): change the state and return
        the op result.

        @raise OpError: when the op fails (nothing is changed then).
        """
        return self._run(opInput, apply=not opInput.get("dry_run"), now=now)

    def _run(self, op: Mapping[str, Any], apply: bool, now: float) -> Any:
        opId = op.get("OP_ID")
        handler = getattr(self, "_op_" + str(opId), None)
        if handler is None:
            raise OpError("OpPrereqError", f"Unsupported opcode {opId} in the simulator", "wrong_input")
        return handler(op, apply, now)

    # instances

    def _nicFromParams(self, params: Mapping[str, Any], instance: str, taken: set[str]) -> SimNIC:
        networkName = params.get("network")
        mode = params.get("mode") or self.nicMode
        link = params.get("link") or self.nicLink
        ip = params.get("ip")
        net = None
        if networkName:
            net = self.network(networkName)
            if self.group not in net.groups:
                raise _prereq(f"Network '{networkName}' is not connected to group '{self.group}'", "wrong_state")
            mode, link, _vlan = net.groups[self.group]
            if ip in ("pool", "POOL"):
                ip = net.allocate(taken)
                if ip is None:
                    raise OpError(
                        "OpPrereqError", f"No free IP address in network '{networkName}'", "insufficient_resources"
                    )
            elif ip:
                if ipaddress.ip_address(ip) not in net.network:
                    raise _prereq(f"IP address {ip} not in network {networkName}")
                if not net.isFree(ip) or ip in taken:
                    raise _prereq(
                        f"IP address {ip} already in use or reserved in network {networkName}", "already_exists"
                    )
        elif ip in ("pool", "POOL"):
            raise _prereq("if ip=pool, parameter network must be passed")
        if ip:
            taken.add(ip)
        mac = params.get("mac")
        if mac in (None, "auto", "generate"):
            mac = ""
        return SimNIC(
            name=params.get("name"),
            uuid=str(uuidlib.uuid4()),
            mac=str(mac),
            ip=ip or None,
            network=networkName or None,
            mode=str(mode),
            link=str(link),
        )

    def _claim(self, nic: SimNIC, instance: str) -> None:
        if not nic.mac:
            nic.mac = self._newMac()
        else:
            self._macsInUse.add(nic.mac)
        if nic.network and nic.ip:
            self.networks[nic.network].reserve(nic.ip, instance)

    def _release(self, nic: SimNIC) -> None:
        self._macsInUse.discard(nic.mac)
        if nic.network and nic.ip and nic.network in self.networks:
            self.networks[nic.network].reserved.pop(nic.ip, None)

    def _op_OP_INSTANCE_CREATE(self, op: Mapping[str, Any], apply: bool, now: float) -> Any:
        name = op.get("instance_name")
        if not isinstance(name, str) or not name:
            raise _prereq("Instance name is required")
        if name in self.instances:
            raise _prereq(f"Instance '{name}' is already in the cluster", "already_exists")
        if op.get("mode", "create") != "create":
            raise _prereq(f"Invalid instance creation mode '{op.get('mode')}'")
        template = op.get("disk_template")
        if template not in self.diskTemplates:
            raise _prereq(f"Disk template '{template}' is not enabled in cluster", "wrong_input")
        pnode = op.get("pnode") or self.node
        if pnode != self.node:
            raise _prereq(f"Node '{pnode}' not known", "unknown_entity")
        taken: set[str] = set()
        nics = [self._nicFromParams(p, name, taken) for p in op.get("nics") or []]
        disks = []
        for d in op.get("disks") or []:
            size = d.get("size")
            if not isinstance(size, int) or size <= 0:
                raise _prereq(f"Invalid disk size {size!r}")
            disks.append(SimDisk(d.get("name"), str(uuidlib.uuid4()), size, d.get("mode", "rw")))
        beparams = dict(DEFAULT_BEPARAMS)
        beparams.update(_beparams(op.get("beparams") or {}))
        hvparams = dict(DEFAULT_HVPARAMS)
        hv = op.get("hvparams") or {}
        if isinstance(hv, dict):
            hvparams.update(hv.get(self.hypervisor, hv) if self.hypervisor in hv else hv)
        if not apply:
            return None
        inst = SimInstance(
            name=name,
            uuid=str(uuidlib.uuid4()),
            os=str(op.get("os_type") or "snf-image+default"),
            hypervisor=str(op.get("hypervisor") or self.hypervisor),
            diskTemplate=str(template),
            pnode=pnode,
            beparams=beparams,
            hvparams={k: v for k, v in hvparams.items() if not isinstance(v, dict)},
            osparams=dict(op.get("osparams") or {}),
            nics=nics,
            disks=disks,
            tags=list(op.get("tags") or []),
            adminUp=bool(op.get("start", True)),
            operUp=bool(op.get("start", True)),
            ctime=now,
            mtime=now,
        )
        for nic in nics:
            self._claim(nic, name)
        self.instances[name] = inst
        return [pnode]

    def _op_OP_INSTANCE_REMOVE(self, op: Mapping[str, Any], apply: bool, now: float) -> Any:
        inst = self.instance(op.get("instance_name"))
        if apply:
            for nic in inst.nics:
                self._release(nic)
            del self.instances[inst.name]
        return None

    def _op_OP_INSTANCE_STARTUP(self, op: Mapping[str, Any], apply: bool, now: float) -> Any:
        inst = self.instance(op.get("instance_name"))
        if apply:
            inst.adminUp = inst.operUp = True
            self._touch(inst, now)
        return None

    def _op_OP_INSTANCE_SHUTDOWN(self, op: Mapping[str, Any], apply: bool, now: float) -> Any:
        inst = self.instance(op.get("instance_name"))
        if apply:
            inst.adminUp = inst.operUp = False
            self._touch(inst, now)
        return None

    def _op_OP_INSTANCE_REBOOT(self, op: Mapping[str, Any], apply: bool, now: float) -> Any:
        inst = self.instance(op.get("instance_name"))
        if op.get("reboot_type", "hard") not in ("soft", "hard", "full"):
            raise _prereq(f"Invalid reboot type '{op.get('reboot_type')}'")
        if not inst.adminUp:
            raise _prereq(f"Instance '{inst.name}' is marked to be down, cannot reboot", "wrong_state")
        if apply:
            inst.operUp = True
            self._touch(inst, now)
        return None

    def _op_OP_INSTANCE_QUERY_DATA(self, op: Mapping[str, Any], apply: bool, now: float) -> Any:
        names = op.get("instances") or list(self.instances)
        return {name: self.instanceData(self.instance(name)) for name in names}

    def _op_OP_INSTANCE_SET_PARAMS(self, op: Mapping[str, Any], apply: bool, now: float) -> Any:
        inst = self.instance(op.get("instance_name"))
        result: list[list[Any]] = []
        paramChanges: list[list[Any]] = []
        beparams = dict(inst.beparams)
        for key, value in _beparams(op.get("beparams") or {}).items():
            beparams[key] = value
            paramChanges.append([f"be/{key}", value])
        hvparams = dict(inst.hvparams)
        for key, value in (op.get("hvparams") or {}).items():
            hvparams[key] = value
            paramChanges.append([f"hv/{key}", value])
        nics = list(inst.nics)
        added: list[SimNIC] = []
        removed: list[SimNIC] = []
        taken: set[str] = set()
        for mod in op.get("nics") or []:
            if not isinstance(mod, list | tuple) or len(mod) not in (2, 3):
                raise _prereq(f"Invalid NIC modification {mod!r}")
            action = mod[0]
            ident, params = (mod[1], mod[2]) if len(mod) == 3 else (-1, mod[1])
            if action == "add":
                nic = self._nicFromParams(params or {}, inst.name, taken)
                index = len(nics) if int(ident) == -1 else int(ident)
                nics.insert(index, nic)
                added.append(nic)
                result.append(
                    [
                        f"nic.{index}",
                        f"add:mac={nic.mac or 'auto'},ip={nic.ip},mode={nic.mode},link={nic.link},network={nic.network}",
                    ]
                )
            elif action in ("remove", "modify"):
                index = _findNic(nics, ident)
                if action == "remove":
                    removed.append(nics.pop(index))
                    result.append([f"nic.{index}", "remove"])
                else:
                    old = nics[index]
                    if "ip" in (params or {}) and old.network:
                        ip = params["ip"]
                        net = self.networks[old.network]
                        if ip and (not net.isFree(ip) and net.reserved.get(ip) != inst.name):
                            raise _prereq(f"IP address {ip} already in use", "already_exists")
                    result.append([f"nic.{index}", "modify"])
            else:
                raise _prereq(f"Invalid NIC operation '{action}'")
        result.extend(paramChanges)
        if not apply:
            return result
        for nic in removed:
            self._release(nic)
        for nic in added:
            self._claim(nic, inst.name)
        for mod in op.get("nics") or []:
            if mod[0] == "modify":
                nic = nics[_findNic(nics, mod[1])]
                params = mod[2]
                if "ip" in params:
                    self._release(nic)
                    nic.ip = params["ip"] or None
                    self._claim(nic, inst.name)
                if params.get("name"):
                    nic.name = params["name"]
        inst.nics = nics
        inst.beparams = beparams
        inst.hvparams = hvparams
        self._touch(inst, now)
        return result

    def _op_OP_INSTANCE_GROW_DISK(self, op: Mapping[str, Any], apply: bool, now: float) -> Any:
        inst = self.instance(op.get("instance_name"))
        index = op.get("disk")
        if not isinstance(index, int) or not 0 <= index < len(inst.disks):
            raise _prereq(f"Invalid disk index {index!r}")
        amount = int(op.get("amount") or 0)
        if apply:
            disk = inst.disks[index]
            disk.size = amount if op.get("absolute") else disk.size + amount
            self._touch(inst, now)
        return None

    # tags

    def _op_OP_TAGS_SET(self, op: Mapping[str, Any], apply: bool, now: float) -> Any:
        tags = self._tagList(op)
        for tag in op.get("tags") or []:
            if not isinstance(tag, str) or not tag or len(tag) > 128 or " " in tag:
                raise OpError("OpPrereqError", f"Invalid tag '{tag}'", "wrong_input")
        if apply:
            for tag in op.get("tags") or []:
                if tag not in tags:
                    tags.append(tag)
        return None

    def _op_OP_TAGS_DEL(self, op: Mapping[str, Any], apply: bool, now: float) -> Any:
        tags = self._tagList(op)
        missing = [t for t in op.get("tags") or [] if t not in tags]
        if missing:
            raise OpError(
                "OpPrereqError", "Tag(s) " + ", ".join(f"'{t}'" for t in missing) + " not found", "wrong_input"
            )
        if apply:
            for tag in op.get("tags") or []:
                tags.remove(tag)
        return None

    def _tagList(self, op: Mapping[str, Any]) -> list[str]:
        kind = op.get("kind")
        if kind == "cluster":
            return self.tags
        if kind == "instance":
            return self.instance(op.get("name")).tags
        if kind == "network":
            return self.network(op.get("name")).tags
        raise _prereq(f"Unsupported tag kind '{kind}'")

    # networks

    def _op_OP_NETWORK_ADD(self, op: Mapping[str, Any], apply: bool, now: float) -> Any:
        name = op.get("network_name")
        if not isinstance(name, str) or not name:
            raise _prereq("Network name is required")
        if name in self.networks:
            raise _prereq(f"Network '{name}' already exists", "already_exists")
        try:
            net = ipaddress.IPv4Network(str(op.get("network")))
        except ValueError as e:
            raise _prereq(f"Invalid network '{op.get('network')}': {e}") from e
        if net.num_addresses > 65536:
            raise _prereq("Network too big (at most /16)")
        external = {str(net.network_address), str(net.broadcast_address)}
        gateway = op.get("gateway")
        if gateway:
            if ipaddress.ip_address(gateway) not in net:
                raise _prereq(f"Gateway {gateway} not in network {net}")
            external.add(str(gateway))
        for ip in op.get("add_reserved_ips") or []:
            external.add(str(ip))
        macPrefix = op.get("mac_prefix")
        if macPrefix:
            # as Ganeti 3.0 (NormalizeAndValidateThreeOctetMacPrefix): three full octets
            if not isinstance(macPrefix, str) or not _MAC_PREFIX.match(macPrefix):
                raise _prereq(f"Invalid MAC address prefix '{macPrefix}'", "wrong_input")
            macPrefix = macPrefix.lower()
        if apply:
            self.networks[name] = SimNetwork(
                name=name,
                uuid=str(uuidlib.uuid4()),
                network=net,
                gateway=gateway,
                network6=op.get("network6"),
                gateway6=op.get("gateway6"),
                macPrefix=macPrefix,
                tags=list(op.get("tags") or []),
                external=external,
                reserved={},
                groups={},
                ctime=now,
                mtime=now,
            )
        return None

    def _op_OP_NETWORK_CONNECT(self, op: Mapping[str, Any], apply: bool, now: float) -> Any:
        net = self.network(op.get("network_name"))
        self._checkGroup(op.get("group_name"))
        mode = op.get("network_mode")
        if mode not in ("bridged", "routed", "openvswitch"):
            raise _prereq(f"Invalid network mode '{mode}'")
        if apply:
            net.groups[str(op["group_name"])] = (
                str(mode),
                str(op.get("network_link") or ""),
                str(op.get("network_vlan") or ""),
            )
            net.mtime = now
        return None

    def _op_OP_NETWORK_DISCONNECT(self, op: Mapping[str, Any], apply: bool, now: float) -> Any:
        net = self.network(op.get("network_name"))
        self._checkGroup(op.get("group_name"))
        users = sorted({i.name for i in self.instances.values() for n in i.nics if n.network == net.name})
        if users:
            raise _prereq(f"Network '{net.name}' is in use by instance(s) {', '.join(users)}", "wrong_state")
        if apply:
            net.groups.pop(str(op["group_name"]), None)
            net.mtime = now
        return None

    def _op_OP_NETWORK_REMOVE(self, op: Mapping[str, Any], apply: bool, now: float) -> Any:
        net = self.network(op.get("network_name"))
        if net.groups:
            raise _prereq(
                f"Network '{net.name}' is connected to group(s) {', '.join(sorted(net.groups))}", "wrong_state"
            )
        if apply:
            del self.networks[net.name]
        return None

    def _op_OP_NETWORK_SET_PARAMS(self, op: Mapping[str, Any], apply: bool, now: float) -> Any:
        net = self.network(op.get("network_name"))
        if apply:
            for ip in op.get("add_reserved_ips") or []:
                net.external.add(str(ip))
            for ip in op.get("remove_reserved_ips") or []:
                net.external.discard(str(ip))
            if "gateway" in op and op["gateway"] is not None:
                net.gateway = op["gateway"]
            net.mtime = now
        return None

    # cluster

    def _op_OP_CLUSTER_SET_PARAMS(self, op: Mapping[str, Any], apply: bool, now: float) -> Any:
        return None

    def _op_OP_TEST_DELAY(self, op: Mapping[str, Any], apply: bool, now: float) -> Any:
        return None

    def _touch(self, inst: SimInstance, now: float) -> None:
        inst.mtime = now
        inst.serial += 1

    # ------------------------------------------------------ persistence

    def snapshot(self) -> dict[str, Any]:
        """
        The whole state as JSON-able data (see L{restore}).
        """

        def net(n: SimNetwork) -> dict[str, Any]:
            data = attrs.asdict(n, recurse=False)
            data["network"] = str(n.network)
            data["external"] = sorted(n.external)
            data["groups"] = {g: list(v) for g, v in n.groups.items()}
            data.pop("_hint", None)
            return data

        def inst(i: SimInstance) -> dict[str, Any]:
            data = attrs.asdict(i, recurse=False)
            data["nics"] = [attrs.asdict(x) for x in i.nics]
            data["disks"] = [attrs.asdict(x) for x in i.disks]
            data["consolePort"] = None
            return data

        return {
            "version": 1,
            "tags": list(self.tags),
            "macCounter": self._macCounter,
            "groupUuid": self.groupUuid,
            "nodeUuid": self.nodeUuid,
            "networks": [net(n) for n in self.networks.values()],
            "instances": [inst(i) for i in self.instances.values()],
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """
        Replace the state with a L{snapshot}.

        @raise ValueError: for data that is not a snapshot.
        """
        if not isinstance(data, Mapping) or data.get("version") != 1:
            raise ValueError("not a simulated-cluster snapshot")
        self.tags = list(data["tags"])
        self._macCounter = int(data["macCounter"])
        self.groupUuid = data["groupUuid"]
        self.nodeUuid = data["nodeUuid"]
        self.networks = {}
        for raw in data["networks"]:
            n = dict(raw)
            n["network"] = ipaddress.IPv4Network(n["network"])
            n["external"] = set(n["external"])
            n["groups"] = {g: tuple(v) for g, v in n["groups"].items()}
            self.networks[n["name"]] = SimNetwork(**n)
        self.instances = {}
        self._macsInUse = set()
        for raw in data["instances"]:
            i = dict(raw)
            i["nics"] = [SimNIC(**x) for x in i["nics"]]
            i["disks"] = [SimDisk(**x) for x in i["disks"]]
            inst = SimInstance(**i)
            self.instances[inst.name] = inst
            self._macsInUse.update(n.mac for n in inst.nics)

    # ------------------------------------------------------ RAPI records

    def instanceRecord(self, inst: SimInstance) -> dict[str, Any]:
        """
        The RAPI C{GET /2/instances/<name>} record (Ganeti's I_FIELDS).
        """
        nets = [n.network for n in inst.nics]
        return {
            "name": inst.name,
            "admin_state": "up" if inst.adminUp else "down",
            "os": inst.os,
            "pnode": inst.pnode,
            "snodes": [],
            "disk_template": inst.diskTemplate,
            "nic.ips": [n.ip for n in inst.nics],
            "nic.macs": [n.mac for n in inst.nics],
            "nic.modes": [n.mode for n in inst.nics],
            "nic.uuids": [n.uuid for n in inst.nics],
            "nic.names": [n.name for n in inst.nics],
            "nic.links": [n.link for n in inst.nics],
            "nic.networks": [self.networks[x].uuid if x in self.networks else None for x in nets],
            "nic.networks.names": nets,
            "nic.bridges": [n.link if n.mode == "bridged" else None for n in inst.nics],
            "network_port": inst.consolePort,
            "disk.sizes": [d.size for d in inst.disks],
            "disk.spindles": [None for _ in inst.disks],
            "disk_usage": sum(d.size for d in inst.disks),
            "disk.uuids": [d.uuid for d in inst.disks],
            "disk.names": [d.name for d in inst.disks],
            "beparams": dict(inst.beparams, memory=inst.beparams.get("maxmem")),
            "hvparams": dict(inst.hvparams),
            "oper_state": inst.operUp,
            "oper_ram": inst.beparams.get("maxmem") if inst.operUp else None,
            "oper_vcpus": inst.beparams.get("vcpus") if inst.operUp else None,
            "status": inst.status,
            "custom_hvparams": {},
            "custom_beparams": {},
            "custom_nicparams": [{"mode": n.mode, "link": n.link} for n in inst.nics],
            "ctime": inst.ctime,
            "mtime": inst.mtime,
            "uuid": inst.uuid,
            "serial_no": inst.serial,
            "tags": list(inst.tags),
        }

    def instanceData(self, inst: SimInstance) -> dict[str, Any]:
        """
        The C{OP_INSTANCE_QUERY_DATA} result for one instance.
        """
        return {
            "name": inst.name,
            "config_state": "up" if inst.adminUp else "down",
            "run_state": "up" if inst.operUp else "down",
            "pnode": inst.pnode,
            "snodes": [],
            "os": inst.os,
            "nics": [[n.name, n.uuid, n.ip, n.mac, n.mode, n.link, n.vlan, n.network, n.network] for n in inst.nics],
            "disk_template": inst.diskTemplate,
            "disks": [{"name": d.name, "uuid": d.uuid, "size": d.size, "mode": d.mode} for d in inst.disks],
            "hypervisor": inst.hypervisor,
            "hv_actual": dict(inst.hvparams),
            "be_actual": dict(inst.beparams),
            "uuid": inst.uuid,
            "tags": list(inst.tags),
        }

    def networkRecord(self, net: SimNetwork) -> dict[str, Any]:
        """
        The RAPI C{GET /2/networks/<name>} record (Ganeti's NET_FIELDS).
        """
        addresses = [str(a) for a in net.network]
        bitmap = "".join("X" if (a in net.external or a in net.reserved) else "." for a in addresses)
        return {
            "name": net.name,
            "network": str(net.network),
            "gateway": net.gateway,
            "network6": net.network6,
            "gateway6": net.gateway6,
            "mac_prefix": net.macPrefix,
            "free_count": net.freeCount(),
            "reserved_count": len(net.external) + len(net.reserved),
            "map": bitmap,
            "group_list": [[g, m, link, vlan] for g, (m, link, vlan) in sorted(net.groups.items())],
            "inst_list": sorted(set(net.reserved.values())),
            "external_reservations": ", ".join(a for a in addresses if a in net.external),
            "ctime": net.ctime,
            "mtime": net.mtime,
            "uuid": net.uuid,
            "serial_no": net.serial,
            "tags": list(net.tags),
        }

    def nodeRecord(self) -> dict[str, Any]:
        """
        The RAPI node record (Ganeti's N_FIELDS) of the only node.
        """
        running = [i for i in self.instances.values() if i.operUp]
        used = sum(int(i.beparams.get("maxmem") or 0) for i in running)
        disk = sum(d.size for i in self.instances.values() for d in i.disks)
        return {
            "name": self.node,
            "offline": False,
            "master_candidate": True,
            "drained": False,
            "dtotal": self.diskMiB,
            "dfree": self.diskMiB - disk,
            "sptotal": 0,
            "spfree": 0,
            "mtotal": self.memoryMiB,
            "mnode": 1024,
            "mfree": self.memoryMiB - used,
            "pinst_cnt": len(self.instances),
            "sinst_cnt": 0,
            "ctotal": self.cpus,
            "cnos": 1,
            "cnodes": 1,
            "csockets": 1,
            "pip": "127.0.0.1",
            "sip": "127.0.0.1",
            "role": "M",
            "pinst_list": sorted(self.instances),
            "sinst_list": [],
            "master_capable": True,
            "vm_capable": True,
            "ndparams": {},
            "group.uuid": self.groupUuid,
            "ctime": None,
            "mtime": None,
            "uuid": self.nodeUuid,
            "serial_no": 1,
            "tags": [],
        }

    def groupRecord(self) -> dict[str, Any]:
        """
        The RAPI record (Ganeti's G_FIELDS) of the only node group.
        """
        return {
            "alloc_policy": "preferred",
            "name": self.group,
            "node_cnt": 1,
            "node_list": [self.node],
            "ipolicy": {},
            "custom_ipolicy": {},
            "diskparams": {},
            "custom_diskparams": {},
            "ndparams": {},
            "custom_ndparams": {},
            "ctime": None,
            "mtime": None,
            "uuid": self.groupUuid,
            "serial_no": 1,
            "tags": [],
        }

    def infoRecord(self) -> dict[str, Any]:
        """
        The RAPI C{GET /2/info} record.
        """
        return {
            "software_version": "3.0.2",
            "protocol_version": 3000000,
            "config_version": 3000000,
            "os_api_version": 20,
            "export_version": 0,
            "vcs_version": "synnefo-twisted simulated cluster",
            "architecture": ["64bits", "x86_64"],
            "name": self.name,
            "master": self.node,
            "default_hypervisor": self.hypervisor,
            "enabled_hypervisors": [self.hypervisor],
            "hvparams": {self.hypervisor: dict(DEFAULT_HVPARAMS)},
            "beparams": {"default": dict(DEFAULT_BEPARAMS)},
            "nicparams": {"default": {"mode": self.nicMode, "link": self.nicLink, "vlan": ""}},
            "enabled_disk_templates": list(self.diskTemplates),
            "mac_prefix": self.macPrefix,
            "tags": list(self.tags),
            "uuid": self.groupUuid,
        }


def _beparams(values: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key == "memory":
            key = "maxmem"
            out["minmem"] = value
        if key in ("minmem", "maxmem", "vcpus", "spindle_use") and (not isinstance(value, int) or value <= 0):
            raise OpError("OpPrereqError", f"Invalid value {value!r} for beparam {key}", "wrong_input")
        if key not in DEFAULT_BEPARAMS:
            raise OpError("OpPrereqError", f"Unknown beparam '{key}'", "wrong_input")
        out[key] = value
    return out


def _findNic(nics: list[SimNIC], ident: Any) -> int:
    for index, nic in enumerate(nics):
        if ident in (nic.name, nic.uuid) or str(ident) == str(index):
            return index
    if str(ident) == "-1" and nics:
        return len(nics) - 1
    raise OpError("OpPrereqError", f"Cannot find NIC '{ident}'", "unknown_entity")
