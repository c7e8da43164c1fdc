# -*- test-case-name: tests.db.test_repositories -*-
"""
Immutable models of the database rows.

Field names are the column names and their order is the column order the
repositories select (L{columns}), so a row becomes a model with
C{Model(*row)}; converters normalise what the drivers return (SQLite gives
0/1 for booleans and ISO text for timestamps, JSON columns are text).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, TypeVar

import attrs

from synnefo_twisted.db._sql import parseBool, parseTimestamp

M = TypeVar("M")


def _ts(value: object) -> datetime:
    parsed = parseTimestamp(value)
    if parsed is None:
        raise TypeError("timestamp required")
    return parsed


def _jsonList(value: object) -> tuple[Any, ...]:
    if isinstance(value, (bytes, str)):
        value = json.loads(value or "[]")
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"not a JSON list: {value!r}")
    return tuple(value)


def _optInt(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


def _bytes(value: object) -> bytes:
    if isinstance(value, memoryview):
        return value.tobytes()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    raise TypeError(f"not bytes: {value!r}")


def columns(cls: type) -> str:
    """
    The model's columns, comma-separated, in field order.
    """
    return ", ".join(f.name for f in attrs.fields(cls) if f.metadata.get("column", True))


def fromRow(cls: type[M], row: tuple[Any, ...]) -> M:
    return cls(*row)


# -- identity -----------------------------------------------------------------


@attrs.frozen
class User:
    id: int
    uuid: str
    email: str
    name: str
    roles: tuple[str, ...] = attrs.field(converter=_jsonList)
    is_active: bool = attrs.field(converter=parseBool)
    created: datetime = attrs.field(converter=_ts)
    updated: datetime = attrs.field(converter=_ts)

    @property
    def isAdmin(self) -> bool:
        return "admin" in self.roles


@attrs.frozen
class Token:
    """
    An API token; only its SHA-256 is stored (the token itself is shown
    once, when created).
    """

    id: int
    user_id: int
    token_hash: str = attrs.field(repr=False)
    name: str
    created: datetime = attrs.field(converter=_ts)
    expires: datetime | None = attrs.field(converter=parseTimestamp)
    revoked: bool = attrs.field(converter=parseBool)


@attrs.frozen
class Project:
    id: int
    uuid: str
    name: str
    owner_uuid: str | None
    is_base: bool = attrs.field(converter=parseBool)
    created: datetime = attrs.field(converter=_ts)
    updated: datetime = attrs.field(converter=_ts)


@attrs.frozen
class Quota:
    """
    One holding: the project's total when C{user_id} is None, else one
    member's share. C{pending} is what pending commissions may still add.
    """

    id: int
    project_id: int
    user_id: int | None
    resource: str
    quota_limit: int
    usage: int
    pending: int


@attrs.frozen
class Commission:
    id: int
    project_id: int
    user_id: int | None
    name: str
    state: str
    created: datetime = attrs.field(converter=_ts)
    resolved: datetime | None = attrs.field(converter=parseTimestamp)


# -- backends, flavors, images ---------------------------------------------------


@attrs.frozen
class Backend:
    """
    A Ganeti cluster.
    """

    id: int
    clustername: str
    rapi_url: str
    username: str
    password: str = attrs.field(repr=False)
    verify_tls: bool = attrs.field(converter=parseBool)
    hypervisor: str
    disk_templates: tuple[str, ...] = attrs.field(converter=_jsonList)
    public: bool = attrs.field(converter=parseBool)
    drained: bool = attrs.field(converter=parseBool)
    offline: bool = attrs.field(converter=parseBool)
    simulated: bool = attrs.field(converter=parseBool)
    mfree: int
    mtotal: int
    dfree: int
    dtotal: int
    pinst_cnt: int
    ctotal: int
    resources_updated: datetime | None = attrs.field(converter=parseTimestamp)
    created: datetime = attrs.field(converter=_ts)
    updated: datetime = attrs.field(converter=_ts)
    ca_pem: str = attrs.field(default="", repr=False)
    """PEM the RAPI certificate must chain to (migration 0007); empty: the system trust store."""

    @property
    def usable(self) -> bool:
        """
        New servers may be placed here (not drained, not offline).
        """
        return not (self.drained or self.offline)


@attrs.frozen
class VolumeType:
    id: int
    name: str
    disk_template: str
    deleted: bool = attrs.field(converter=parseBool)


@attrs.frozen
class Flavor:
    """
    C{ram} in MiB, C{disk} in GiB.
    """

    id: int
    name: str
    cpu: int
    ram: int
    disk: int
    volume_type_id: int
    allow_create: bool = attrs.field(converter=parseBool)
    public: bool = attrs.field(converter=parseBool)
    deleted: bool = attrs.field(converter=parseBool)
    created: datetime = attrs.field(converter=_ts)
    updated: datetime = attrs.field(converter=_ts)


@attrs.frozen
class Image:
    """
    A registered image; C{properties} (metadata) are read with it.
    C{min_disk} is in GiB, C{min_ram} in MiB.
    """

    id: str
    name: str
    owner: str
    location: str
    checksum: str
    size: int
    disk_format: str
    container_format: str
    status: str
    is_public: bool = attrs.field(converter=parseBool)
    is_snapshot: bool = attrs.field(converter=parseBool)
    deleted: bool = attrs.field(converter=parseBool)
    created: datetime = attrs.field(converter=_ts)
    updated: datetime = attrs.field(converter=_ts)
    # added by migration 0004 (defaults keep keyword construction working)
    min_disk: int = 0
    min_ram: int = 0
    protected: bool = attrs.field(default=False, converter=parseBool)
    deleted_at: datetime | None = attrs.field(default=None, converter=parseTimestamp)
    properties: dict[str, str] = attrs.field(factory=dict, metadata={"column": False})


@attrs.frozen
class ImageMember:
    """
    An image shared with C{member} (a user uuid); with C{can_share} the
    member may share it further.
    """

    image_id: str
    member: str
    can_share: bool = attrs.field(converter=parseBool)


# -- servers -----------------------------------------------------------------------


@attrs.frozen
class Server:
    """
    A virtual machine (Synnefo's C{VirtualMachine}).
    """

    id: int
    name: str
    userid: str
    project: str | None
    shared_to_project: bool = attrs.field(converter=parseBool)
    backend_id: int | None = attrs.field(converter=_optInt)
    flavor_id: int
    image_id: str
    operstate: str
    action: str | None
    backendjobid: int | None = attrs.field(converter=_optInt)
    backendopcode: str | None
    backendjobstatus: str | None
    backendlogmsg: str | None
    backendtime: datetime | None = attrs.field(converter=parseTimestamp)
    task: str | None
    task_job_id: int | None = attrs.field(converter=_optInt)
    buildpercentage: int
    suspended: bool = attrs.field(converter=parseBool)
    deleted: bool = attrs.field(converter=parseBool)
    rescue: bool = attrs.field(converter=parseBool)
    rescue_image: str | None
    serial_id: int | None = attrs.field(converter=_optInt)
    key_names: tuple[str, ...] = attrs.field(converter=_jsonList)
    config_url: str | None
    created: datetime = attrs.field(converter=_ts)
    updated: datetime = attrs.field(converter=_ts)
    # added by migration 0005: the event times stamping what the dispatcher wrote
    jobtime: datetime | None = attrs.field(default=None, converter=parseTimestamp)
    statetime: datetime | None = attrs.field(default=None, converter=parseTimestamp)
    flavortime: datetime | None = attrs.field(default=None, converter=parseTimestamp)
    detailstime: datetime | None = attrs.field(default=None, converter=parseTimestamp)


@attrs.frozen
class ServerTag:
    id: int
    server_id: int
    tag: str
    status: str
    created: datetime = attrs.field(converter=_ts)


@attrs.frozen
class Diagnostic:
    id: int
    server_id: int
    source: str
    level: str
    message: str
    details: str | None
    source_date: datetime | None = attrs.field(converter=parseTimestamp)
    created: datetime = attrs.field(converter=_ts)


@attrs.frozen
class Volume:
    id: int
    name: str
    userid: str
    project: str | None
    server_id: int | None
    volume_type_id: int
    size: int
    idx: int | None
    source: str | None
    status: str
    delete_on_termination: bool = attrs.field(converter=parseBool)
    deleted: bool = attrs.field(converter=parseBool)
    backendjobid: int | None = attrs.field(converter=_optInt)
    created: datetime = attrs.field(converter=_ts)
    updated: datetime = attrs.field(converter=_ts)


# -- networks ------------------------------------------------------------------------


@attrs.frozen
class Network:
    id: int
    name: str
    userid: str | None
    project: str | None
    shared_to_project: bool = attrs.field(converter=parseBool)
    flavor: str
    mode: str
    link: str | None
    mac_prefix: str | None
    public: bool = attrs.field(converter=parseBool)
    external_router: bool = attrs.field(converter=parseBool)
    floating_ip_pool: bool = attrs.field(converter=parseBool)
    drained: bool = attrs.field(converter=parseBool)
    state: str
    action: str | None
    tags: tuple[str, ...] = attrs.field(converter=_jsonList)
    deleted: bool = attrs.field(converter=parseBool)
    serial_id: int | None = attrs.field(converter=_optInt)
    created: datetime = attrs.field(converter=_ts)
    updated: datetime = attrs.field(converter=_ts)


@attrs.frozen
class BackendNetwork:
    id: int
    network_id: int
    backend_id: int
    operstate: str
    backendjobid: int | None
    backendopcode: str | None
    backendjobstatus: str | None
    backendlogmsg: str | None
    backendtime: datetime | None = attrs.field(converter=parseTimestamp)
    mac_prefix: str | None
    created: datetime = attrs.field(converter=_ts)
    updated: datetime = attrs.field(converter=_ts)
    # added by migration 0005
    jobtime: datetime | None = attrs.field(default=None, converter=parseTimestamp)


@attrs.frozen
class Subnet:
    id: int
    network_id: int
    name: str
    userid: str | None
    ipversion: int
    cidr: str
    gateway: str | None
    dhcp: bool = attrs.field(converter=parseBool)
    slaac: bool = attrs.field(converter=parseBool)
    dns_nameservers: tuple[str, ...] = attrs.field(converter=_jsonList)
    host_routes: tuple[Any, ...] = attrs.field(converter=_jsonList)
    public: bool = attrs.field(converter=parseBool)
    deleted: bool = attrs.field(converter=parseBool)
    created: datetime = attrs.field(converter=_ts)
    updated: datetime = attrs.field(converter=_ts)


@attrs.frozen
class IPPool:
    """
    An allocation table: bit I of C{available} is set when C{base + I} is
    free, of C{reserved} when it is reserved (gateway, external).
    """

    id: int
    subnet_id: int
    base: str
    size: int
    pool_offset: int
    available: bytes = attrs.field(converter=_bytes, repr=False)
    reserved: bytes = attrs.field(converter=_bytes, repr=False)


@attrs.frozen
class ResourcePool:
    """
    The MAC-prefix or bridge pool (bitmaps as in L{IPPool}).
    """

    id: int
    kind: str
    base: str
    size: int
    pool_offset: int
    available: bytes = attrs.field(converter=_bytes, repr=False)
    reserved: bytes = attrs.field(converter=_bytes, repr=False)


@attrs.frozen
class Port:
    """
    A port (Synnefo's C{NetworkInterface}).
    """

    id: int
    name: str
    userid: str | None
    project: str | None
    network_id: int
    server_id: int | None
    device_owner: str | None
    mac: str | None
    idx: int | None
    firewall_profile: str | None
    state: str
    security_groups: tuple[str, ...] = attrs.field(converter=_jsonList)
    created: datetime = attrs.field(converter=_ts)
    updated: datetime = attrs.field(converter=_ts)


@attrs.frozen
class IPAddress:
    id: int
    subnet_id: int
    network_id: int
    port_id: int | None
    userid: str | None
    project: str | None
    shared_to_project: bool = attrs.field(converter=parseBool)
    address: str
    ipversion: int
    floating_ip: bool = attrs.field(converter=parseBool)
    deleted: bool = attrs.field(converter=parseBool)
    serial_id: int | None = attrs.field(converter=_optInt)
    created: datetime = attrs.field(converter=_ts)
    updated: datetime = attrs.field(converter=_ts)


@attrs.frozen
class KeyPair:
    id: int
    userid: str
    name: str
    fingerprint: str
    public_key: str
    deleted: bool = attrs.field(converter=parseBool)
    created: datetime = attrs.field(converter=_ts)
    updated: datetime = attrs.field(converter=_ts)
    deleted_at: datetime | None = attrs.field(converter=parseTimestamp)


@attrs.frozen
class ConsoleForwarding:
    id: int
    server_id: int | None
    userid: str
    console_type: str
    destination_host: str
    destination_port: int
    proxy_host: str
    proxy_port: int
    client_address: str | None
    outcome: str | None
    created: datetime = attrs.field(converter=_ts)
    expires: datetime | None = attrs.field(converter=parseTimestamp)
    used: datetime | None = attrs.field(converter=parseTimestamp)
