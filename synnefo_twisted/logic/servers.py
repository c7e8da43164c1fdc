# -*- test-case-name: tests.logic.test_servers -*-
"""
Server business logic without I/O (spec §1.3, §1.4, §2.2).

 - L{ServerFault} and its subclasses: typed errors naming the field, each
   with the HTTP code and fault name of spec §1.2, for the web layer.
 - L{parseCreateRequest}: the validation of a C{POST /servers} body, giving
   a L{CreateRequest}.
 - L{serverStatus}, L{taskState}: the status tables.
 - L{actionCode}, L{validateServerAction}: which actions are allowed when.
 - L{createProvisions}, L{actionProvisions}: quota quantities.
 - L{createInstanceCall}: the C{CreateInstance} RAPI arguments.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import secrets
import string
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from synnefo_twisted.db.models import Backend, Flavor, Image, Server, VolumeType
from synnefo_twisted.ganeti import naming

# -- faults -------------------------------------------------------------------------


class ServerFault(Exception):
    """
    A request the logic refuses. C{code} is the HTTP status, C{faultName}
    the key of the fault envelope (spec §1.2), C{field} the request field
    at fault when there is one.
    """

    code = 500
    faultName = "internalServerError"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class BadRequest(ServerFault):
    code = 400
    faultName = "badRequest"


class Forbidden(ServerFault):
    code = 403
    faultName = "forbidden"


class ItemNotFound(ServerFault):
    code = 404
    faultName = "itemNotFound"


class Conflict(ServerFault):
    code = 409
    faultName = "conflict"


class BuildInProgress(ServerFault):
    code = 409
    faultName = "buildInProgress"


class OverLimit(ServerFault):
    code = 413
    faultName = "overLimit"


class NotImplementedFault(ServerFault):
    code = 501
    faultName = "notImplemented"


class ServiceUnavailable(ServerFault):
    code = 503
    faultName = "serviceUnavailable"


# -- limits and settings ---------------------------------------------------------------


@attrs.frozen
class ServerLimits:
    """
    The validation limits of spec §1.3 (Synnefo's defaults).
    """

    maxMetadata: int = 10
    maxMetadataKey: int = 50
    maxMetadataValue: int = 500
    maxPersonality: int = 5
    maxPersonalitySize: int = 10240
    maxTags: int = 50
    maxTagLength: int = 60
    maxNics: int = 8
    maxNameLength: int = 255


DEFAULT_HVPARAMS: Mapping[str, Mapping[str, Any]] = {"kvm": {"serial_console": False}, "xen-pvm": {}, "xen-hvm": {}}


@attrs.frozen
class CreateSettings:
    """
    What spec §2.2 takes from the deployment's settings.

    @ivar os: C{GANETI_CREATEINSTANCE_KWARGS["os"]}.
    @ivar hvparams: per hypervisor; narrowed to the backend's.
    @ivar waitForSync: C{GANETI_DISKS_WAIT_FOR_SYNC}.
    @ivar opportunisticLocking: C{GANETI_USE_OPPORTUNISTIC_LOCKING}.
    @ivar dryRun: C{settings.TEST}: the job is only checked by Ganeti.
    @ivar prefix: the Ganeti name prefix.
    """

    os: str = "snf-image+default"
    hvparams: Mapping[str, Mapping[str, Any]] = DEFAULT_HVPARAMS
    waitForSync: bool = False
    opportunisticLocking: bool = True
    dryRun: bool = False
    prefix: str = naming.DEFAULT_PREFIX


# -- create request ----------------------------------------------------------------------


@attrs.frozen
class PersonalityFile:
    path: str
    contents: str
    owner: str | None = None
    group: str | None = None
    mode: int | None = None

    def toJSON(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "contents": self.contents}
        for key in ("owner", "group", "mode"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


@attrs.frozen
class NetworkRequest:
    """
    One entry of C{networks}: a network (C{uuid}, maybe with C{fixed_ip})
    or an existing port.
    """

    network: str | None = None
    port: str | None = None
    fixedIp: str | None = None


@attrs.frozen
class CreateRequest:
    """
    A validated C{POST /servers} body. C{networks} is None when the body
    did not name any (the deployment's default networks apply).
    """

    name: str
    imageRef: str
    flavorRef: int
    metadata: Mapping[str, str] = attrs.field(factory=dict)
    tags: tuple[str, ...] = ()
    personality: tuple[PersonalityFile, ...] = ()
    networks: tuple[NetworkRequest, ...] | None = None
    keyNames: tuple[str, ...] = ()
    adminPass: str | None = None
    userData: str | None = None
    project: str | None = None
    sharedToProject: bool = False


_PERSONALITY_KEYS = frozenset({"contents", "group", "mode", "owner", "path"})
_BASE64 = re.compile(r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")
WEAK_PASSWORD = "Password not strong (must contain upper case, lower case, digits and be at least 10 characters!"


def _malformed(field: str) -> BadRequest:
    return BadRequest(f"Malformed request. Invalid '{field}' field", field)


def _missing(field: str) -> BadRequest:
    return BadRequest(f"Malformed request. Missing attribute '{field}'.", field)


def _str(obj: Mapping[str, Any], key: str, required: bool = False) -> str | None:
    if key not in obj or obj[key] is None:
        if required:
            raise _missing(key)
        return None
    value = obj[key]
    if not isinstance(value, str):
        raise _malformed(key)
    return value


def parseId(value: object, field: str) -> int:
    """
    A numeric id given as an integer or a string of digits (OpenStack
    clients send C{flavorRef} as a string).
    """
    if isinstance(value, bool):
        raise _malformed(field)
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    raise _malformed(field)


def validateMetadata(metadata: object, limits: ServerLimits, field: str = "metadata") -> dict[str, str]:
    """
    Metadata: a mapping of strings within the key/value length limits and
    at most C{limits.maxMetadata} items.
    """
    if not isinstance(metadata, dict):
        raise _malformed(field)
    out: dict[str, str] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise _malformed(field)
        if len(key) > limits.maxMetadataKey:
            raise BadRequest("Malformed Request. Metadata key is too long", field)
        if len(value) > limits.maxMetadataValue:
            raise BadRequest("Malformed Request. Metadata value is too long", field)
        out[key] = value
    if len(out) > limits.maxMetadata:
        raise BadRequest(f"Virtual Machines cannot have more than {limits.maxMetadata} metadata items", field)
    return out


def validateTags(tags: object, limits: ServerLimits, field: str = "tags") -> tuple[str, ...]:
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise _malformed(field)
    if len(tags) > limits.maxTags:
        raise BadRequest(f"Virtual Machines cannot have more than {limits.maxTags} tags", field)
    for tag in tags:
        if len(tag) > limits.maxTagLength:
            raise BadRequest(f"Tag '{tag[:20]}...' is longer than {limits.maxTagLength} characters", field)
    return tuple(dict.fromkeys(tags))


def _personality(value: object, limits: ServerLimits) -> tuple[PersonalityFile, ...]:
    field = "personality"
    if not isinstance(value, list):
        raise _malformed(field)
    if len(value) > limits.maxPersonality:
        raise OverLimit(f"Maximum number of personalities exceeded ({limits.maxPersonality})", field)
    files = []
    for entry in value:
        if not isinstance(entry, dict) or not set(entry) <= _PERSONALITY_KEYS:
            raise _malformed(field)
        path = entry.get("path")
        contents = entry.get("contents")
        if not isinstance(path, str) or not path or not isinstance(contents, str):
            raise _malformed(field)
        try:
            decoded = base64.b64decode(contents, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("Malformed request. Personality contents are not base64", field) from None
        if len(decoded) > limits.maxPersonalitySize:
            raise OverLimit(f"Maximum size of personality exceeded ({limits.maxPersonalitySize})", field)
        owner, group, mode = entry.get("owner"), entry.get("group"), entry.get("mode")
        if owner is not None and not isinstance(owner, str):
            raise _malformed(field)
        if group is not None and not isinstance(group, str):
            raise _malformed(field)
        if mode is not None and (isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o7777):
            raise _malformed(field)
        files.append(PersonalityFile(path, contents, owner, group, mode))
    return tuple(files)


def _networks(value: object, limits: ServerLimits) -> tuple[NetworkRequest, ...]:
    field = "networks"
    if not isinstance(value, list):
        raise _malformed(field)
    out = []
    for entry in value:
        if not isinstance(entry, dict):
            raise _malformed(field)
        if "port" in entry:
            port = entry["port"]
            if isinstance(port, int) and not isinstance(port, bool):
                port = str(port)
            if not isinstance(port, str) or not port:
                raise _malformed(field)
            out.append(NetworkRequest(port=port))
            continue
        if "uuid" not in entry:
            raise BadRequest("Malformed request. Missing 'uuid' or 'port' attribute.", field)
        network = entry["uuid"]
        if isinstance(network, int) and not isinstance(network, bool):
            network = str(network)
        if not isinstance(network, str) or not network:
            raise _malformed(field)
        fixedIp = entry.get("fixed_ip")
        if fixedIp is not None:
            if not isinstance(fixedIp, str):
                raise _malformed(field)
            try:
                ipaddress.ip_address(fixedIp)
            except ValueError:
                raise BadRequest(f"Invalid fixed IP address '{fixedIp}'", field) from None
        out.append(NetworkRequest(network=network, fixedIp=fixedIp))
    if len(out) > limits.maxNics:
        raise BadRequest(f"Maximum ports per server limit reached ({limits.maxNics})", field)
    return tuple(out)


def passwordIsStrong(password: str) -> bool:
    return (
        len(password) >= 10
        and any(c.isupper() for c in password)
        and any(c.islower() for c in password)
        and any(c.isdigit() for c in password)
    )


def randomPassword(length: int = 10) -> str:
    """
    A random password with upper case, lower case and digits (Synnefo's
    generated C{adminPass}).
    """
    alphabet = string.ascii_letters + string.digits
    while True:
        candidate = "".join(secrets.choice(alphabet) for _ in range(length))
        if passwordIsStrong(candidate):
            return candidate


def parseCreateRequest(body: object, limits: ServerLimits | None = None) -> CreateRequest:
    """
    Validate a C{POST /servers} body (spec §1.3, steps 1-3, 5-7).

    @raise BadRequest: a malformed or missing field (named by C{field}).
    @raise OverLimit: too many or too big personality files.
    """
    limits = limits or ServerLimits()
    if not isinstance(body, dict):
        raise _malformed("server")
    server = body.get("server")
    if server is None:
        raise _missing("server")
    if not isinstance(server, dict):
        raise _malformed("server")
    name = _str(server, "name", required=True)
    assert name is not None
    if len(name) > limits.maxNameLength:
        raise BadRequest(f"Server name is longer than {limits.maxNameLength} characters", "name")
    if "imageRef" not in server or server["imageRef"] in (None, ""):
        raise _missing("imageRef")
    imageRef = server["imageRef"]
    if not isinstance(imageRef, str):
        raise _malformed("imageRef")
    if "flavorRef" not in server or server["flavorRef"] in (None, ""):
        raise _missing("flavorRef")
    flavorRef = parseId(server["flavorRef"], "flavorRef")
    metadata = validateMetadata(server.get("metadata") or {}, limits)
    tags = validateTags(server.get("tags") or [], limits)
    personality = _personality(server.get("personality") or [], limits)
    userData = _str(server, "user_data")
    if userData is not None and not _BASE64.match(userData):
        raise BadRequest("Malformed request. user_data is not base64", "user_data")
    adminPass = _str(server, "adminPass")
    if adminPass is not None and not passwordIsStrong(adminPass):
        raise BadRequest(WEAK_PASSWORD, "adminPass")
    keyName = _str(server, "key_name")
    keyNames: object = server.get("SNF:key_names") or []
    if not isinstance(keyNames, list) or not all(isinstance(k, str) and k for k in keyNames):
        raise _malformed("SNF:key_names")
    if keyName is not None and keyNames:
        raise BadRequest("Only one of 'key_name' and 'SNF:key_names' can be given", "key_name")
    names = (keyName,) if keyName else tuple(dict.fromkeys(keyNames))
    networks = _networks(server["networks"], limits) if server.get("networks") is not None else None
    project = _str(server, "project")
    shared = server.get("shared_to_project", False)
    if not isinstance(shared, bool):
        raise _malformed("shared_to_project")
    return CreateRequest(
        name=name,
        imageRef=imageRef,
        flavorRef=flavorRef,
        metadata=metadata,
        tags=tags,
        personality=personality,
        networks=networks,
        keyNames=names,
        adminPass=adminPass,
        userData=userData,
        project=project or None,
        sharedToProject=shared,
    )


# -- status tables ---------------------------------------------------------------------------

OPERSTATE_STATUS: Mapping[str, str] = {
    "BUILD": "BUILD",
    "ERROR": "ERROR",
    "STOPPED": "STOPPED",
    "STARTED": "ACTIVE",
    "RESIZE": "RESIZE",
    "DESTROYED": "DELETED",
}

TASK_STATE: Mapping[str, str] = {
    "BUILD": "BUILDING",
    "START": "STARTING",
    "STOP": "STOPPING",
    "REBOOT": "REBOOTING",
    "DESTROY": "DESTROYING",
    "RESIZE": "RESIZING",
    "RESCUE": "RESCUING",
    "UNRESCUE": "UNRESCUING",
    "CONNECT": "CONNECTING",
    "DISCONNECT": "DISCONNECTING",
    "ATTACH_VOLUME": "ATTACHING_VOLUME",
    "DETACH_VOLUME": "DETACHING_VOLUME",
}

JOB_IN_PROGRESS = frozenset({"queued", "waiting", "running"})


def serverStatus(server: Server) -> str:
    """
    The OpenStack C{status} of a server (spec §1.3, C{get_rsapi_state}).
    """
    if server.deleted:
        return "DELETED"
    status = OPERSTATE_STATUS.get(server.operstate, "UNKNOWN")
    inProgress = server.backendjobstatus in JOB_IN_PROGRESS
    if status == "ACTIVE" and server.backendopcode == "OP_INSTANCE_REBOOT" and inProgress:
        return "REBOOT"
    if status == "STOPPED" and server.backendopcode == "OP_INSTANCE_MODIFY" and server.task == "RESIZE" and inProgress:
        return "RESIZE"
    return status


def taskState(task: str | None) -> str:
    """
    C{SNF:task_state} for a server's C{task}.
    """
    if task is None:
        return ""
    return TASK_STATE.get(task, "UNKNOWN")


def progress(server: Server) -> int:
    return 100 if serverStatus(server) == "ACTIVE" else server.buildpercentage


# -- actions ------------------------------------------------------------------------------------

ACTIONS = frozenset(
    {
        "CREATE",
        "START",
        "STOP",
        "SUSPEND",
        "REBOOT",
        "DESTROY",
        "RESIZE",
        "ADDFLOATINGIP",
        "REMOVEFLOATINGIP",
        "RESCUE",
        "UNRESCUE",
    }
)
ARBITRARY_ACTIONS = frozenset(
    {"console", "firewallProfile", "reassign", "os-getVNCConsole", "os-getRDPConsole", "os-getSPICEConsole"}
)
NOT_IMPLEMENTED_ACTIONS = frozenset({"changePassword", "rebuild", "confirmResize", "revertResize"})
_ACTION_KEYS = {"shutdown": "STOP", "os-stop": "STOP", "os-start": "START", "delete": "DESTROY"}
_ALWAYS_ALLOWED = frozenset({"DESTROY", "ADDTAGS", "DELETETAGS", "REPLACETAGS"})
_HOTPLUG_ACTIONS = frozenset({"CONNECT", "DISCONNECT", "ATTACH_VOLUME", "DETACH_VOLUME"})
_NEEDS_STOPPED = frozenset({"RESIZE", "RESCUE", "UNRESCUE"})


def actionCode(key: str) -> str:
    """
    The action of a C{POST /servers/<id>/action} body key: C{START},
    C{STOP}, ... for state-changing actions, the key itself for the
    arbitrary ones (C{console}, C{reassign}, ...).

    @raise NotImplementedFault: C{changePassword}, C{rebuild},
        C{confirmResize}, C{revertResize}, C{os-getRDPConsole},
        C{os-getSPICEConsole}.
    @raise BadRequest: any other unknown key.
    """
    if key in NOT_IMPLEMENTED_ACTIONS or key in ("os-getRDPConsole", "os-getSPICEConsole"):
        raise NotImplementedFault(f"Action {key} is not implemented", "action")
    if key in ARBITRARY_ACTIONS:
        return key
    code = _ACTION_KEYS.get(key, key.upper())
    if code not in ACTIONS or code == "CREATE":
        raise BadRequest(f"Action {key} not supported", "action")
    return code


def validateServerAction(server: Server, action: str, isAdmin: bool = False, hotplug: bool = True) -> None:
    """
    Whether C{action} may run on C{server} now (spec §1.4,
    C{validate_server_action}).

    @raise BadRequest: deleted, ERROR state, pending task, wrong state.
    @raise BuildInProgress: the server is being built.
    @raise Forbidden: suspended (for non-admins), or C{SUSPEND}.
    """
    if action == "SUSPEND":
        raise Forbidden("User is not allowed to suspend his server")
    if server.deleted:
        raise BadRequest(f"Server '{server.id}' has been deleted.")
    if action in _ALWAYS_ALLOWED:
        return
    if server.suspended and not isAdmin:
        raise Forbidden("Administratively Suspended VM")
    if server.task is not None:
        if server.task == "BUILD":
            raise BuildInProgress(f"Server '{server.id}' is being built.")
        raise BadRequest(f"Cannot perform '{action}' action while there is a pending '{server.task}'.")
    if action == "REASSIGN" or action == "reassign":
        return
    state = server.operstate
    if state == "ERROR":
        raise BadRequest(f"Cannot perform '{action}' action while server is in 'ERROR' state.")
    if state == "BUILD":
        raise BuildInProgress(f"Server '{server.id}' is being built.")
    needed: str | None = None
    if action == "START":
        needed = "STOPPED"
    elif action == "STOP":
        needed = "STARTED"
    elif action in _NEEDS_STOPPED or (action in _HOTPLUG_ACTIONS and not hotplug):
        needed = "STOPPED"
    if action == "RESCUE" and server.rescue:
        raise BadRequest(f"Server '{server.id}' is already in rescue mode.")
    if action == "UNRESCUE" and not server.rescue:
        raise BadRequest(f"Server '{server.id}' is not in rescue mode.")
    if needed is not None and state != needed:
        raise BadRequest(f"Cannot perform '{action}' action while server is in '{state}' state.")


def validateResize(server: Server, current: Flavor, new: Flavor | None, newRef: int) -> None:
    """
    The flavor checks of C{resize} (spec §1.4): the new flavor exists,
    differs and keeps the disk size and volume type.
    """
    if new is None or new.deleted:
        raise ItemNotFound(f"Flavor {newRef} not found.", "flavorRef")
    if not new.allow_create:
        raise Forbidden(f"Flavor {new.id} is not allowed for new servers.", "flavorRef")
    if new.id == current.id:
        raise BadRequest(f"Server '{server.id}' flavor is already '{current.name}'.", "flavorRef")
    if new.disk != current.disk:
        raise BadRequest("Cannot change disk size.", "flavorRef")
    if new.volume_type_id != current.volume_type_id:
        raise BadRequest("Cannot change volume type.", "flavorRef")


REBOOT_TYPES = frozenset({"SOFT", "HARD"})


def rebootShutdownTimeout(rebootType: object) -> int | None:
    """
    The Ganeti C{shutdown_timeout} for an OpenStack reboot type: C{0} for
    HARD, Ganeti's default (None) for SOFT. The Ganeti reboot type is always
    C{hard}.
    """
    if rebootType is None:
        rebootType = "SOFT"
    if not isinstance(rebootType, str) or rebootType.upper() not in REBOOT_TYPES:
        raise BadRequest("Invalid 'type' attribute.", "type")
    return 0 if rebootType.upper() == "HARD" else None


# -- quota ---------------------------------------------------------------------------------------

MiB = 1 << 20
GiB = 1 << 30


def createProvisions(flavor: Flavor) -> dict[str, int]:
    """
    What a new server takes (RAM and disk in bytes; C{cpu}/C{ram} count
    running servers, and a new server starts).
    """
    return {
        "cyclades.vm": 1,
        "cyclades.total_cpu": flavor.cpu,
        "cyclades.cpu": flavor.cpu,
        "cyclades.total_ram": flavor.ram * MiB,
        "cyclades.ram": flavor.ram * MiB,
        "cyclades.disk": flavor.disk * GiB,
    }


def actionProvisions(server: Server, action: str, flavor: Flavor, newFlavor: Flavor | None = None) -> dict[str, int]:
    """
    The quota change of an action on C{server} of C{flavor} (empty when
    none): START takes the running CPU/RAM, STOP releases them, DESTROY
    releases everything, RESIZE (of a stopped server) changes the totals.
    """
    running = {"cyclades.cpu": flavor.cpu, "cyclades.ram": flavor.ram * MiB}
    if action == "START":
        return running
    if action == "STOP":
        return {k: -v for k, v in running.items()}
    if action == "DESTROY":
        out = {k: -v for k, v in createProvisions(flavor).items()}
        if server.operstate != "STARTED":
            del out["cyclades.cpu"], out["cyclades.ram"]
        return out
    if action == "RESIZE" and newFlavor is not None:
        out = {
            "cyclades.total_cpu": newFlavor.cpu - flavor.cpu,
            "cyclades.total_ram": (newFlavor.ram - flavor.ram) * MiB,
        }
        return {k: v for k, v in out.items() if v}
    return {}


# -- the CreateInstance call -----------------------------------------------------------------------


@attrs.frozen
class NicSpec:
    """
    One NIC of a new instance: the port, its network and its IPv4 (or None).
    """

    portId: int
    networkId: int
    ipv4: str | None = None


@attrs.frozen
class RapiCreate:
    """
    The arguments of L{IGanetiClient.createInstance}: C{client.createInstance(
    call.name, call.diskTemplate, call.disks, call.nics, **call.kwargs)}.
    """

    name: str
    diskTemplate: str
    disks: list[dict[str, Any]]
    nics: list[dict[str, Any]]
    kwargs: dict[str, Any]


def encodeTag(tag: str) -> str:
    """
    A user tag as Ganeti stores it (C{tag_to_ganeti}): URL-quoted, then
    C{%} as C{/} and C{_} as C{*}.
    """
    from urllib.parse import quote

    return quote(tag, safe="").replace("%", "/").replace("_", "*")


def createInstanceCall(
    *,
    server: Server,
    flavor: Flavor,
    volumeType: VolumeType,
    image: Image,
    backend: Backend,
    rootVolumeId: int,
    nics: Sequence[NicSpec],
    configUrl: str,
    tags: Sequence[str] = (),
    depends: Sequence[int] = (),
    settings: CreateSettings | None = None,
) -> RapiCreate:
    """
    The C{CreateInstance} parameters of spec §2.2 for a recorded server.
    """
    settings = settings or CreateSettings()
    prefix = settings.prefix
    hvparams = dict(settings.hvparams.get(backend.hypervisor, {}))
    kwargs: dict[str, Any] = {
        "mode": "create",
        "os": settings.os,
        "hvparams": hvparams,
        "wait_for_sync": settings.waitForSync,
        "ip_check": False,
        "name_check": False,
        "dry_run": settings.dryRun,
        "beparams": {"auto_balance": True, "vcpus": flavor.cpu, "memory": flavor.ram},
        "osparams": {"config_url": configUrl, "img_id": image.location, "img_format": image.disk_format},
        "opportunistic_locking": settings.opportunisticLocking,
        "tags": [encodeTag(t) for t in tags],
    }
    if depends:
        kwargs["depends"] = [[job, ["canceled", "success", "error"]] for job in depends]
    disks = [{"name": naming.volumeName(rootVolumeId, prefix), "size": flavor.disk * 1024}]
    nicList = [
        {
            "name": naming.nicName(nic.portId, prefix),
            "network": naming.networkName(nic.networkId, prefix),
            "ip": nic.ipv4,
        }
        for nic in nics
    ]
    return RapiCreate(naming.instanceName(server.id, prefix), volumeType.disk_template, disks, nicList, kwargs)


def serverParams(
    image: Image,
    password: str,
    personality: Sequence[PersonalityFile],
    authorizedKeys: Sequence[str] = (),
    userData: str | None = None,
) -> dict[str, Any]:
    """
    The one-time parameters snf-image reads from C{config_url} (VMAPI):
    secrets stay out of Ganeti's osparams.
    """
    import json

    params: dict[str, Any] = {
        "img_id": image.location,
        "img_passwd": password,
        "img_format": image.disk_format,
        "img_personality": json.dumps([p.toJSON() for p in personality]),
        "img_properties": json.dumps(dict(image.properties)),
    }
    if authorizedKeys:
        params["auth_keys"] = "\n".join(authorizedKeys)
    if userData is not None:
        params["cloud_userdata"] = userData
    return params


# -- names, metadata writes, firewall, VNC console URLs ------------------------------------------------


def validateServerName(name: object, limits: ServerLimits | None = None) -> str:
    """
    A server's new name (C{PUT /servers/<id>}).
    """
    limits = limits or ServerLimits()
    if not isinstance(name, str):
        raise _malformed("name")
    if len(name) > limits.maxNameLength:
        raise BadRequest(f"Server name is longer than {limits.maxNameLength} characters", "name")
    return name


def validateMetadataWrite(server: Server, isAdmin: bool = False) -> None:
    """
    Metadata may be changed only on live, not suspended servers.
    """
    if server.deleted:
        raise BadRequest("Server has been deleted.")
    if server.suspended and not isAdmin:
        raise Forbidden("Administratively Suspended VM")


FIREWALL_TAGS: Mapping[str, str] = {
    "ENABLED": "synnefo:network:{nic}:protected",
    "DISABLED": "synnefo:network:{nic}:unprotected",
    "PROTECTED": "synnefo:network:{nic}:limited",
}


def firewallTagPrefix(nicName: str) -> str:
    return f"synnefo:network:{nicName}:"


def firewallTag(profile: str, nicName: str) -> str:
    """
    The Ganeti instance tag of a firewall profile on a NIC (spec §2.1).
    """
    return FIREWALL_TAGS[profile].format(nic=nicName)


def parseFirewallProfile(args: object) -> tuple[str, int]:
    """
    The C{firewallProfile} action's arguments: C{(profile, port id)}.
    """
    if not isinstance(args, dict):
        raise _malformed("firewallProfile")
    profile = args.get("profile")
    if profile is None:
        raise _missing("profile")
    if not isinstance(profile, str) or profile.upper() not in FIREWALL_TAGS:
        raise BadRequest(f"Unsupported firewall profile '{profile}'", "profile")
    if args.get("nic") in (None, ""):
        raise _missing("nic")
    return profile.upper(), parseId(args["nic"], "nic")


VNC_CONSOLE_TYPES: Mapping[str, str] = {"novnc": "vnc-wss", "xvpvnc": "vnc"}


def vncConsoleType(args: object) -> str:
    """
    The console type behind C{os-getVNCConsole}'s C{novnc} / C{xvpvnc}.
    """
    kind = args.get("type") if isinstance(args, dict) else None
    if kind is None:
        raise _missing("type")
    if kind not in VNC_CONSOLE_TYPES:
        raise BadRequest(f"Invalid console type '{kind}'", "type")
    return VNC_CONSOLE_TYPES[str(kind)]


def vncConsoleURL(kind: str, console: Mapping[str, Any], consolePageURL: str) -> dict[str, str]:
    """
    C{os-getVNCConsole}'s answer for a console C{{host, port, password}}:
    the noVNC page URL with the connection in its query, or C{host:port}
    with the password for C{xvpvnc}.
    """
    from urllib.parse import urlencode

    host, port, password = console["host"], console["port"], console["password"]
    if kind == "novnc":
        query = urlencode({"host": host, "port": port, "password": password})
        return {"type": kind, "url": f"{consolePageURL}?{query}"}
    return {"type": kind, "url": f"{host}:{port}?{urlencode({'password': password})}"}
