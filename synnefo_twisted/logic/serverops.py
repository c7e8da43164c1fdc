# -*- test-case-name: tests.logic.test_serverops -*-
"""
The asynchronous shell of the server logic: read and write the database
(L{IDatabase}), submit Ganeti jobs (L{IBackendRegistry} /
L{IGanetiClient}) and ask for consoles (L{IConsoleBroker}). Decisions are
made by the pure functions of L{synnefo_twisted.logic.servers} and
L{synnefo_twisted.logic.backendselect}.

Every function returns a Deferred and fails with a
L{synnefo_twisted.logic.servers.ServerFault} when the request is refused.

Quota: a create, and an action that changes what a server takes (start,
stop, resize, destroy), issues a pending commission
(L{QuotaRepository.issue}) checked against the project's and the member's
limits, and stores its id as the server's C{serial_id} together with the
job it submits (C{backendjobid}/C{task_job_id}). Whoever learns the job's
outcome (the dispatcher, or reconciliation) resolves it by that id:
C{QuotaRepository(tx).accept(server.serial_id)} when the job succeeded,
C{reject(server.serial_id)} when it failed or was canceled; resolving twice
is a no-op. A job that cannot be submitted has its commission rejected here.
"""

from __future__ import annotations

import secrets
import uuid as uuidlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from synnefo_twisted.db.dispatch import DispatchRepository
from synnefo_twisted.db.models import (
    Flavor,
    Image,
    Network,
    Port,
    Project,
    Server,
    User,
    Volume,
)
from synnefo_twisted.db.pools import IPPoolRepository
from synnefo_twisted.db.repositories import (
    ConsoleForwardingRepository,
    FlavorRepository,
    ImageRepository,
    KeyPairRepository,
    NetworkRepository,
    PortRepository,
    ProjectRepository,
    QuotaExceededError,
    QuotaRepository,
    ServerRepository,
    SubnetRepository,
    UserRepository,
)
from synnefo_twisted.db.servers import (
    ServerListRepository,
    ServerParamsRepository,
    ServerPasswordRepository,
    ServerRelations,
)
from synnefo_twisted.db.volumes import VolumeRepository
from synnefo_twisted.ganeti import naming
from synnefo_twisted.ganeti.errors import GanetiError, RapiNotFound, RapiServerError
from synnefo_twisted.logic import servernets, serverviews
from synnefo_twisted.logic import servers as logic
from synnefo_twisted.logic.backendselect import NoBackendAvailable, chooseBackend
from synnefo_twisted.logic.servers import (
    BadRequest,
    BuildInProgress,
    Conflict,
    CreateRequest,
    CreateSettings,
    Forbidden,
    ItemNotFound,
    NicSpec,
    OverLimit,
    ServiceUnavailable,
)

log = Logger()

CONSOLE_TYPES = frozenset({"vnc", "vnc-ws", "vnc-wss"})

IPAllocator = Callable[[Any, Network, Port, "str | None"], Awaitable["str | None"]]
NetworkActivator = Callable[[Any, Network], Awaitable[Sequence[int]]]


@attrs.frozen
class CreateResult:
    """
    A created server, its admin password (shown once) and the one-time
    parameters for snf-image, served at C{config_url} under C{configKey}
    (stored with L{ServerParamsRepository} in the create transaction, so
    they are readable before the job is submitted).
    """

    server: Server
    adminPass: str
    configKey: str
    serverParams: Mapping[str, Any]


@attrs.frozen
class ServerOptions:
    """
    Deployment settings of the server logic.

    @ivar vmapiURL: base of C{config_url}: C{<vmapiURL>/<configKey>}.
    @ivar defaultNetworks: the networks a server gets when the request names
        none (C{[api] default_server_networks}); C{forcedNetworks} are
        always added, as the first NICs (C{[api] forced_server_networks}).
        See L{servernets}.
    @ivar ipAllocator: C{ipAllocator(tx, network, port, fixedIp)} → the IPv4
        recorded for a new port (the network logic's pools), or None.
    @ivar activateNetwork: C{activateNetwork(backend, network)} → ids of the
        jobs (CreateNetwork/ConnectNetwork) the create must wait for.
    @ivar clock: an C{IReactorTime} dating the expiry of the stored
        creation parameters and admin password (None: they never expire).
    @ivar paramsLifetime: seconds the creation parameters stay readable
        at C{config_url} (None: until read).
    @ivar passwordLifetime: seconds the admin password stays readable with
        C{GET /servers/<id>/password} (None: until forgotten).
    """

    create: CreateSettings = attrs.field(factory=CreateSettings)
    limits: logic.ServerLimits = attrs.field(factory=logic.ServerLimits)
    vmapiURL: str = "http://127.0.0.1:8080/vmapi/v1.0/server-params"
    defaultNetworks: tuple[servernets.NetworkChoice, ...] = ()
    forcedNetworks: tuple[servernets.NetworkChoice, ...] = ()
    hotplug: bool = True
    ipAllocator: IPAllocator | None = None
    activateNetwork: NetworkActivator | None = None
    clock: Any = None
    paramsLifetime: float | None = 86400.0
    passwordLifetime: float | None = 86400.0

    def expiry(self, seconds: float | None) -> datetime | None:
        """
        When something kept for C{seconds} from now expires (None: never).
        """
        if seconds is None or self.clock is None:
            return None
        return datetime.fromtimestamp(self.clock.seconds() + seconds, UTC)


def _visibleServer(server: Server | None, user: User, serverId: int) -> Server:
    if server is None or (server.userid != user.uuid and not user.isAdmin):
        raise ItemNotFound(f"Server {serverId} not found.")
    return server


# -- create -----------------------------------------------------------------------------


async def _project(db: Any, user: User, requested: str | None) -> Project:
    projects = await ProjectRepository(db).projectsOf(user.id)
    if requested is not None:
        for project in projects:
            if project.uuid == requested:
                return project
        raise Forbidden(f"Not a member of project {requested}.", "project")
    for project in projects:
        if project.is_base and project.owner_uuid == user.uuid:
            return project
    if projects:
        return projects[0]
    raise Forbidden("The user belongs to no project.", "project")


async def _insertRootVolume(tx: Any, server: Server, flavor: Flavor, image: Image) -> Volume:
    return await VolumeRepository(tx).create(
        server.userid,
        flavor.volume_type_id,
        flavor.disk,
        project=server.project,
        serverId=server.id,
        idx=0,
        source=f"image:{image.id}",
    )


@attrs.frozen
class ConfiguredNetwork:
    """
    A NIC asked for by a deployment setting rather than by the request:
    C{setting} is C{"default"} or C{"forced"}.
    """

    choice: servernets.NetworkChoice
    setting: str


async def _subnetVersions(tx: Any, networkIds: Sequence[int]) -> dict[int, frozenset[int]]:
    subnets = SubnetRepository(tx)
    return {n: frozenset(s.ipversion for s in await subnets.listByNetwork(n)) for n in networkIds}


async def _pickConfigured(tx: Any, wanted: ConfiguredNetwork) -> Network:
    """
    The first usable member of a setting item, in the create transaction.
    IPv4 pools are read locked, so that the address the port then takes
    cannot be taken by a concurrent create.

    @raise ServiceUnavailable: no member is usable and one of them names a
        network that does not exist (the operator's misconfiguration).
    @raise Conflict: no member is usable for lack of resources (drained
        networks, exhausted pools, no public network): as an exhausted pool
        of a requested network is answered.
    """
    networkRepo = NetworkRepository(tx)
    ipPools = IPPoolRepository(tx)
    reasons: list[str] = []
    for member in wanted.choice.members:
        if isinstance(member, int):
            network = await networkRepo.get(member)
            reason = servernets.unusableReason(network, member)
            if reason is None:
                assert network is not None
                locked = await ipPools.lockByNetwork(network.id)
                if not locked or servernets.hasFreeAddress(locked):
                    return network
                reason = f"no free IPv4 address left in network {network.id}"
            reasons.append(reason)
            continue
        networks = await networkRepo.list()
        versions = await _subnetVersions(tx, [n.id for n in networks if n.public and not n.drained])
        for network, version in servernets.publicCandidates(member, networks, versions):
            if version == 6 or servernets.hasFreeAddress(await ipPools.lockByNetwork(network.id)):
                return network
        reasons.append(servernets.noPublicReason(member))
    message = f"Cannot connect server to {wanted.setting} server networks ({wanted.choice.text}): {'; '.join(reasons)}"
    if any(servernets.isMisconfiguration(r) for r in reasons):
        log.error(
            "{setting}_server_networks item {item!r} names no usable network: {reasons}",
            setting=wanted.setting,
            item=wanted.choice.text,
            reasons="; ".join(reasons),
        )
        raise ServiceUnavailable(message)
    log.warn(
        "{setting}_server_networks item {item!r}: {reasons}",
        setting=wanted.setting,
        item=wanted.choice.text,
        reasons="; ".join(reasons),
    )
    raise Conflict(message, "networks")


async def _resolvePorts(
    tx: Any,
    user: User,
    server: Server,
    wanted: Sequence[logic.NetworkRequest | ConfiguredNetwork],
    options: ServerOptions,
) -> tuple[list[NicSpec], list[Network]]:
    networkRepo = NetworkRepository(tx)
    portRepo = PortRepository(tx)
    specs: list[NicSpec] = []
    networks: list[Network] = []
    for index, request in enumerate(wanted):
        if isinstance(request, logic.NetworkRequest) and request.port is not None:
            portId = logic.parseId(request.port, "networks")
            port = await portRepo.get(portId)
            if port is None or (port.userid != user.uuid and not user.isAdmin):
                raise ItemNotFound(f"Port {request.port} not found.", "networks")
            if port.server_id is not None:
                raise Conflict(f"Port {port.id} is in use.", "networks")
            await portRepo.update(port.id, server_id=server.id, idx=index, device_owner="vm")
            network = await networkRepo.get(port.network_id)
            assert network is not None
            ips = await portRepo.ipsOfPort(port.id)
            ipv4 = next((ip.address for ip in ips if ip.ipversion == 4), None)
            specs.append(NicSpec(port.id, network.id, ipv4))
            networks.append(network)
            continue
        fixedIp: str | None = None
        if isinstance(request, ConfiguredNetwork):
            network = await _pickConfigured(tx, request)
        else:
            assert request.network is not None
            networkId = logic.parseId(request.network, "networks")
            found = await networkRepo.get(networkId)
            if found is None or found.deleted or not (found.public or found.userid == user.uuid or user.isAdmin):
                raise ItemNotFound(f"Network {request.network} not found.", "networks")
            if found.drained:
                raise Conflict(f"Network {found.id} is drained.", "networks")
            network = found
            fixedIp = request.fixedIp
        port = await portRepo.create(
            network.id, userid=user.uuid, project=server.project, serverId=server.id, deviceOwner="vm"
        )
        await portRepo.update(port.id, idx=index)
        ipv4 = fixedIp
        if options.ipAllocator is not None:
            ipv4 = await options.ipAllocator(tx, network, port, fixedIp)
        specs.append(NicSpec(port.id, network.id, ipv4))
        networks.append(network)
    return specs, networks


async def _createServer(
    db: Any, registry: Any, user: User, request: CreateRequest, options: ServerOptions
) -> CreateResult:
    flavors = FlavorRepository(db)
    flavor = await flavors.get(request.flavorRef)
    if flavor is None or flavor.deleted:
        raise ItemNotFound(f"Flavor {request.flavorRef} not found.", "flavorRef")
    if not flavor.allow_create:
        raise Forbidden(f"Flavor {flavor.id} is not allowed for new servers.", "flavorRef")
    volumeType = await flavors.volumeType(flavor.volume_type_id)
    assert volumeType is not None
    image = await ImageRepository(db).get(request.imageRef)
    if image is None or image.deleted or not (image.is_public or image.owner == user.uuid):
        raise ItemNotFound(f"Image {request.imageRef} not found.", "imageRef")
    keys = []
    for keyName in request.keyNames:
        key = await KeyPairRepository(db).get(user.uuid, keyName)
        if key is None:
            raise ItemNotFound(f"Keypair {keyName} not found.", "key_name")
        keys.append(key.public_key)
    project = await _project(db, user, request.project)
    try:
        backend = chooseBackend(await registry.backends(), flavor, volumeType.disk_template)
    except NoBackendAvailable:
        raise ServiceUnavailable("No available backends") from None
    # As Synnefo's create_instance_ports: the forced networks first, then
    # the requested ones, or the default ones when the request names none.
    wanted: list[logic.NetworkRequest | ConfiguredNetwork] = [
        ConfiguredNetwork(c, "forced") for c in options.forcedNetworks
    ]
    if request.networks is None:
        wanted += [ConfiguredNetwork(c, "default") for c in options.defaultNetworks]
    else:
        wanted += request.networks
    if len(wanted) > options.limits.maxNics:
        raise BadRequest(f"Maximum ports per server limit reached ({options.limits.maxNics})", "networks")
    password = request.adminPass or logic.randomPassword()
    configKey = uuidlib.uuid4().hex
    configUrl = f"{options.vmapiURL.rstrip('/')}/{configKey}"
    params = logic.serverParams(image, password, request.personality, keys, request.userData)

    async def record(tx: Any) -> tuple[Server, Volume, list[NicSpec], list[Network], int]:
        repo = ServerRepository(tx)
        server = await repo.create(
            request.name,
            user.uuid,
            flavor.id,
            image.id,
            project=project.uuid,
            backendId=backend.id,
            keyNames=request.keyNames,
            sharedToProject=request.sharedToProject,
        )
        try:
            commission = await QuotaRepository(tx).issue(
                project.id, user.id, logic.createProvisions(flavor), name=f"server create {server.id}"
            )
        except QuotaExceededError as e:
            raise OverLimit(f"Resource limit exceeded for your account: {e}", e.resource) from None
        # The task is set before the job is submitted: a fast dispatcher may
        # apply the job's messages before the job id is recorded below.
        updated = await repo.update(
            server.id,
            serial_id=commission.id,
            action="CREATE",
            config_url=configUrl,
            task="BUILD",
            backendopcode="OP_INSTANCE_CREATE",
        )
        assert updated is not None
        volume = await _insertRootVolume(tx, updated, flavor, image)
        if request.metadata:
            await repo.setMetadata(server.id, request.metadata)
        for tag in request.tags:
            await repo.addTag(server.id, tag)
        nics, networks = await _resolvePorts(tx, user, updated, wanted, options)
        await ServerParamsRepository(tx).store(configKey, server.id, params, options.expiry(options.paramsLifetime))
        await ServerPasswordRepository(tx).remember(server.id, password, options.expiry(options.passwordLifetime))
        return updated, volume, nics, networks, commission.id

    server, volume, nics, networks, commissionId = await db.runInteraction(record)
    client = registry.clientFor(backend)
    try:
        depends: list[int] = []
        if options.activateNetwork is not None:
            for network in {n.id: n for n in networks}.values():
                depends.extend(await options.activateNetwork(backend, network))
        call = logic.createInstanceCall(
            server=server,
            flavor=flavor,
            volumeType=volumeType,
            image=image,
            backend=backend,
            rootVolumeId=volume.id,
            nics=nics,
            configUrl=configUrl,
            tags=request.tags,
            depends=depends,
            settings=options.create,
        )
        jobId = await client.createInstance(call.name, call.diskTemplate, call.disks, call.nics, **call.kwargs)
    except GanetiError:
        log.failure("creating server {server_id} on backend {backend}", server_id=server.id, backend=backend.id)
        await db.runInteraction(_markCreateFailed, server.id, volume.id, [nic.portId for nic in nics])
        await QuotaRepository(db).reject(commissionId)
        raise ServiceUnavailable("Failed to send job to Ganeti.") from None
    recorded = await DispatchRepository(db).recordSubmittedJob(server.id, jobId, backendJob=True)
    assert recorded is not None
    log.info("server {server_id} create job {job_id} on backend {backend}", server_id=server.id, job_id=jobId,
             backend=backend.id)  # fmt: skip
    return CreateResult(recorded, password, configKey, params)


async def _markCreateFailed(tx: Any, serverId: int, volumeId: int, portIds: Sequence[int]) -> None:
    """
    The job never reached Ganeti: the server, its root volume and its
    ports are in ERROR.
    """
    await ServerRepository(tx).update(
        serverId, operstate="ERROR", task=None, backendlogmsg="Failed to send job to Ganeti."
    )
    await VolumeRepository(tx).update(volumeId, status="ERROR")
    await ServerParamsRepository(tx).discardForServer(serverId)
    ports = PortRepository(tx)
    for portId in portIds:
        await ports.update(portId, state="ERROR")


def createServer(
    db: Any, registry: Any, user: User, request: CreateRequest, options: ServerOptions | None = None
) -> Deferred[CreateResult]:
    """
    Create a server: check the flavor, image, key pairs and project,
    choose a backend, record the server (BUILD), its root volume, metadata,
    tags and ports and a quota commission in one transaction, then submit
    C{CreateInstance} and record the job.

    @raise ItemNotFound: unknown flavor, image, key pair, network or port.
    @raise Forbidden: the flavor does not allow creation; not a project member.
    @raise OverLimit: the quota does not allow it (nothing is written).
    @raise ServiceUnavailable: no backend, or the job could not be sent
        (the server is left in ERROR, the commission rejected), or a
        default or forced network setting names no existing network
        (nothing is written).
    @raise Conflict: a default or forced network setting item found no
        usable network (drained, pools exhausted, no public network;
        nothing is written).
    """
    return Deferred.fromCoroutine(_createServer(db, registry, user, request, options or ServerOptions()))


# -- actions --------------------------------------------------------------------------------


async def _backendOf(db: Any, registry: Any, server: Server) -> Any:
    for backend in await registry.backends():
        if backend.id == server.backend_id:
            return backend
    raise ServiceUnavailable(f"Server {server.id} has no backend.")


async def _serverAction(
    db: Any, registry: Any, user: User, serverId: int, action: str, args: Mapping[str, Any], options: ServerOptions
) -> Server:
    shutdownTimeout: int | None = None
    if action == "REBOOT":
        shutdownTimeout = logic.rebootShutdownTimeout(args.get("type"))
    newFlavorRef: int | None = None
    if action == "RESIZE":
        if args.get("flavorRef") in (None, ""):
            raise BadRequest("Malformed request. Missing attribute 'flavorRef'.", "flavorRef")
        newFlavorRef = logic.parseId(args["flavorRef"], "flavorRef")
    if action not in ("START", "STOP", "REBOOT", "RESIZE", "DESTROY"):
        raise BadRequest(f"Action {action} not supported", "action")

    async def claim(tx: Any) -> tuple[Server, Flavor | None, int | None, bool]:
        server = _visibleServer(await ServerRepository.getForUpdate(tx, serverId), user, serverId)
        logic.validateServerAction(server, action, isAdmin=user.isAdmin, hotplug=options.hotplug)
        if action == "DESTROY" and server.task == "DESTROY":
            # A destroy repeated while one is pending (a client retrying its
            # DELETE, or a first job lost to a fault): the job is submitted
            # again, but the pending destroy's commission stays the one that
            # the first successful removal settles (a second one would leak).
            return server, None, None, True
        if action == "DESTROY" and server.backendjobid is None and server.operstate == "ERROR":
            # Never reached Ganeti (its create commission was rejected): gone at once.
            gone = await ServerRepository(tx).update(server.id, deleted=True, operstate="DESTROYED", action="DESTROY")
            assert gone is not None
            return gone, None, None, False
        flavors = FlavorRepository(tx)
        flavor = await flavors.get(server.flavor_id)
        assert flavor is not None
        newFlavor = None
        if newFlavorRef is not None:
            newFlavor = await flavors.get(newFlavorRef)
            logic.validateResize(server, flavor, newFlavor, newFlavorRef)
        provisions = logic.actionProvisions(server, action, flavor, newFlavor)
        commissionId: int | None = None
        if provisions and server.project is not None:
            project = await ProjectRepository(tx).byUUID(server.project)
            owner = await _ownerId(tx, server)
            if project is not None:
                try:
                    commission = await QuotaRepository(tx).issue(
                        project.id, owner, provisions, name=f"server {action.lower()} {server.id}"
                    )
                except QuotaExceededError as e:
                    raise OverLimit(f"Resource limit exceeded for your account: {e}", e.resource) from None
                commissionId = commission.id
        fields: dict[str, object] = {"action": action, "task": action, "task_job_id": None}
        if commissionId is not None:
            fields["serial_id"] = commissionId
        claimed = await ServerRepository(tx).update(server.id, **fields)
        assert claimed is not None
        return claimed, newFlavor, commissionId, False

    server, newFlavor, commissionId, repeated = await db.runInteraction(claim)
    if server.deleted:
        log.info("server {server_id} never reached Ganeti: deleted", server_id=server.id)
        return server
    servers = ServerRepository(db)
    try:
        backend = await _backendOf(db, registry, server)
        client = registry.clientFor(backend)
        name = naming.instanceName(server.id, registry.prefix)
        if action == "START":
            jobId = await client.startupInstance(name)
        elif action == "STOP":
            jobId = await client.shutdownInstance(name)
        elif action == "REBOOT":
            jobId = await client.rebootInstance(name, rebootType="hard", shutdownTimeout=shutdownTimeout)
        elif action == "RESIZE":
            assert newFlavor is not None
            beparams = {"vcpus": newFlavor.cpu, "minmem": newFlavor.ram, "maxmem": newFlavor.ram}
            jobId = await client.modifyInstance(name, beparams=beparams)
        else:
            if server.operstate == "BUILD":
                try:
                    await client.getInstance(name)
                except RapiNotFound:
                    raise BuildInProgress("Server is being build") from None
            jobId = await client.deleteInstance(name)
    except Exception as e:
        if not repeated:
            # (A repeated destroy leaves the pending one's task and commission as they are.)
            await servers.update(server.id, task=None, action=None)
        if commissionId is not None:
            await QuotaRepository(db).reject(commissionId)
        if isinstance(e, GanetiError):
            log.failure("{action} of server {server_id}", action=action, server_id=server.id)
            raise ServiceUnavailable("Failed to send job to Ganeti.") from e
        raise
    # A repeated destroy's job becomes the task's: if the earlier job fails
    # (or was lost), this one's success settles the task and its commission.
    recorded = await DispatchRepository(db).recordSubmittedJob(server.id, jobId, retake=repeated)
    assert recorded is not None
    log.info("server {server_id} {action} job {job_id}", server_id=server.id, action=action, job_id=jobId)
    return recorded


async def _ownerId(tx: Any, server: Server) -> int | None:
    owner = await UserRepository(tx).byUUID(server.userid)
    return None if owner is None else owner.id


def serverAction(
    db: Any,
    registry: Any,
    user: User,
    serverId: int,
    action: str,
    args: Mapping[str, Any] | None = None,
    options: ServerOptions | None = None,
) -> Deferred[Server]:
    """
    Run a state-changing action (C{START}, C{STOP}, C{REBOOT}, C{RESIZE},
    C{DESTROY}, as given by L{logic.actionCode}) on a server: under the
    server's row lock, check the state, issue the quota commission and
    claim the server (C{action} and C{task} set, so a concurrent action is
    refused); then submit the job and record C{task_job_id}. When the job
    cannot be submitted the claim is undone and the commission rejected.

    @param args: the action's arguments (C{{"type": "HARD"}} for reboot,
        C{{"flavorRef": 2}} for resize).
    """
    return Deferred.fromCoroutine(
        _serverAction(db, registry, user, serverId, action, args or {}, options or ServerOptions())
    )


def startServer(db: Any, registry: Any, user: User, serverId: int) -> Deferred[Server]:
    return serverAction(db, registry, user, serverId, "START")


def stopServer(db: Any, registry: Any, user: User, serverId: int) -> Deferred[Server]:
    return serverAction(db, registry, user, serverId, "STOP")


def rebootServer(db: Any, registry: Any, user: User, serverId: int, rebootType: str = "SOFT") -> Deferred[Server]:
    return serverAction(db, registry, user, serverId, "REBOOT", {"type": rebootType})


def resizeServer(db: Any, registry: Any, user: User, serverId: int, flavorRef: int) -> Deferred[Server]:
    return serverAction(db, registry, user, serverId, "RESIZE", {"flavorRef": flavorRef})


def destroyServer(db: Any, registry: Any, user: User, serverId: int) -> Deferred[Server]:
    return serverAction(db, registry, user, serverId, "DESTROY")


# -- console ------------------------------------------------------------------------------


async def _console(db: Any, registry: Any, broker: Any, user: User, serverId: int, consoleType: str) -> dict[str, Any]:
    if consoleType not in CONSOLE_TYPES:
        raise BadRequest(f"Invalid console type '{consoleType}'.", "type")
    server = _visibleServer(await ServerRepository(db).get(serverId), user, serverId)
    if server.deleted:
        raise BadRequest(f"Server '{server.id}' has been deleted.")
    if server.operstate != "STARTED":
        raise BadRequest("Server not in ACTIVE state.")
    backend = await _backendOf(db, registry, server)
    client = registry.clientFor(backend)
    name = naming.instanceName(server.id, registry.prefix)

    async def where() -> tuple[str, int]:
        try:
            info = await client.getInstanceConsole(name)
        except RapiServerError:
            raise BadRequest("Server not in ACTIVE state.") from None
        except GanetiError:
            log.failure("console of server {server_id}", server_id=server.id)
            raise ServiceUnavailable("Could not get the console of the server.") from None
        if info.get("kind") != "vnc":
            raise ServiceUnavailable("The server has no VNC console.")
        return str(info["host"]), int(info["port"])

    host, port = await where()
    password = secrets.token_urlsafe(12)
    try:
        answer = await broker.requestForwarding(host, port, password, consoleType)
    except Exception as e:
        log.failure("console forwarding for server {server_id}", server_id=server.id)
        raise ServiceUnavailable("vncauthproxy returned error status") from e
    if await where() != (host, port):
        raise ServiceUnavailable("VNC Server settings changed.")
    await ConsoleForwardingRepository(db).record(
        server.id, user.uuid, consoleType, host, port, str(answer["host"]), int(answer["port"])
    )
    return {"type": consoleType, "host": answer["host"], "port": int(answer["port"]), "password": answer["password"]}


def serverConsole(
    db: Any, registry: Any, broker: Any, user: User, serverId: int, consoleType: str = "vnc"
) -> Deferred[dict[str, Any]]:
    """
    A one-time console for a running server (spec §4.4): the instance's VNC
    address from RAPI, a forwarding with a fresh password from the
    L{IConsoleBroker}, checked against a second RAPI read (a migration
    in between is a 503). Deferred C{{type, host, port, password}}.
    """
    return Deferred.fromCoroutine(_console(db, registry, broker, user, serverId, consoleType))


# -- rename, metadata, firewall, reassign -----------------------------------------------------


async def _owned(db: Any, user: User, serverId: int) -> Server:
    return _visibleServer(await ServerRepository(db).get(serverId), user, serverId)


async def _rename(db: Any, user: User, serverId: int, name: object, options: ServerOptions) -> Server:
    newName = logic.validateServerName(name, options.limits)
    server = await _owned(db, user, serverId)
    logic.validateMetadataWrite(server, user.isAdmin)
    renamed = await ServerRepository(db).update(server.id, name=newName)
    assert renamed is not None
    return renamed


def renameServer(
    db: Any, user: User, serverId: int, name: object, options: ServerOptions | None = None
) -> Deferred[Server]:
    """
    Rename a server (C{PUT /servers/<id>}).
    """
    return Deferred.fromCoroutine(_rename(db, user, serverId, name, options or ServerOptions()))


async def _updateMetadata(db: Any, user: User, serverId: int, items: object, options: ServerOptions) -> dict[str, str]:
    wanted = logic.validateMetadata(items, options.limits)

    async def merge(tx: Any) -> dict[str, str]:
        server = _visibleServer(await ServerRepository.getForUpdate(tx, serverId), user, serverId)
        logic.validateMetadataWrite(server, user.isAdmin)
        repo = ServerRepository(tx)
        current = await repo.metadata(server.id)
        logic.validateMetadata({**current, **wanted}, options.limits)
        return await repo.setMetadata(server.id, wanted)

    result: dict[str, str] = await db.runInteraction(merge)
    return result


def updateMetadata(
    db: Any, user: User, serverId: int, items: object, options: ServerOptions | None = None
) -> Deferred[dict[str, str]]:
    """
    Merge metadata items into a server's (C{POST /servers/<id>/metadata},
    C{PUT .../metadata/<key>}); Deferred with the resulting metadata. The
    item limit counts the merged result; nothing is written when refused.
    """
    return Deferred.fromCoroutine(_updateMetadata(db, user, serverId, items, options or ServerOptions()))


async def _deleteMetadata(db: Any, user: User, serverId: int, key: str) -> None:
    server = await _owned(db, user, serverId)
    logic.validateMetadataWrite(server, user.isAdmin)
    if not await ServerRepository(db).deleteMetadata(server.id, key):
        raise ItemNotFound("Metadata key not found.", "key")


def deleteMetadata(db: Any, user: User, serverId: int, key: str) -> Deferred[None]:
    """
    Remove one metadata item; a missing key is a 404.
    """
    return Deferred.fromCoroutine(_deleteMetadata(db, user, serverId, key))


async def _firewall(db: Any, registry: Any, user: User, serverId: int, args: object, options: ServerOptions) -> Port:
    profile, portId = logic.parseFirewallProfile(args)
    server = await _owned(db, user, serverId)
    logic.validateServerAction(server, "FIREWALL", isAdmin=user.isAdmin, hotplug=options.hotplug)
    ports = PortRepository(db)
    port = await ports.get(portId)
    if port is None or port.server_id != server.id:
        raise ItemNotFound(f"Port {portId} not found.", "nic")
    backend = await _backendOf(db, registry, server)
    client = registry.clientFor(backend)
    name = naming.instanceName(server.id, registry.prefix)
    prefix = logic.firewallTagPrefix(naming.nicName(port.id, registry.prefix))
    try:
        old = [tag for tag in await client.getInstanceTags(name) if tag.startswith(prefix)]
        if old:
            await client.deleteInstanceTags(name, old)
        if profile != "DISABLED":
            await client.addInstanceTags(name, [logic.firewallTag(profile, naming.nicName(port.id, registry.prefix))])
        jobId = await client.modifyInstance(name, os_name=options.create.os)
    except GanetiError as e:
        log.failure("firewall profile of server {server_id}", server_id=server.id)
        raise ServiceUnavailable("Failed to send job to Ganeti.") from e
    log.info(
        "server {server_id} port {port_id} firewall {profile} (job {job_id})",
        server_id=server.id,
        port_id=port.id,
        profile=profile,
        job_id=jobId,
    )
    updated = await ports.update(port.id, firewall_profile=profile)
    assert updated is not None
    return updated


def setFirewallProfile(
    db: Any, registry: Any, user: User, serverId: int, args: object, options: ServerOptions | None = None
) -> Deferred[Port]:
    """
    The C{firewallProfile} action (spec §1.4): replace the NIC's firewall
    tag on the Ganeti instance (none for DISABLED), then a no-op
    C{ModifyInstance} so that an event reports the change. The port
    records the new profile.
    """
    return Deferred.fromCoroutine(_firewall(db, registry, user, serverId, args, options or ServerOptions()))


async def _reassign(db: Any, user: User, serverId: int, args: object, sharingEnabled: bool) -> Server:
    if not isinstance(args, dict):
        raise BadRequest("Malformed request. Invalid 'reassign' field", "reassign")
    target = args.get("project")
    if not isinstance(target, str) or not target:
        raise BadRequest("Malformed request. Missing attribute 'project'.", "project")
    shared = args.get("shared_to_project", False)
    if not isinstance(shared, bool):
        raise BadRequest("Malformed request. Invalid 'shared_to_project' field", "shared_to_project")
    if shared and not sharingEnabled:
        raise Forbidden("Sharing resources to the members of the project is not permitted", "shared_to_project")
    newProject = await _project(db, user, target)

    async def move(tx: Any) -> Server:
        server = _visibleServer(await ServerRepository.getForUpdate(tx, serverId), user, serverId)
        logic.validateServerAction(server, "REASSIGN", isAdmin=user.isAdmin)
        flavor = await FlavorRepository(tx).get(server.flavor_id)
        assert flavor is not None
        if server.project != newProject.uuid:
            provisions = logic.createProvisions(flavor)
            if server.operstate != "STARTED":
                del provisions["cyclades.cpu"], provisions["cyclades.ram"]
            owner = await _ownerId(tx, server)
            quotas = QuotaRepository(tx)
            oldProject = await ProjectRepository(tx).byUUID(server.project) if server.project else None
            try:
                taken = await quotas.issue(newProject.id, owner, provisions, name=f"server reassign {server.id}")
            except QuotaExceededError as e:
                raise OverLimit(f"Resource limit exceeded for your account: {e}", e.resource) from None
            await quotas.accept(taken.id)
            if oldProject is not None:
                released = await quotas.issue(
                    oldProject.id, owner, {k: -v for k, v in provisions.items()}, name=f"server reassign {server.id}"
                )
                await quotas.accept(released.id)
        moved = await ServerRepository(tx).update(server.id, project=newProject.uuid, shared_to_project=shared)
        assert moved is not None
        return moved

    result: Server = await db.runInteraction(move)
    return result


def reassignServer(db: Any, user: User, serverId: int, args: object, sharingEnabled: bool = False) -> Deferred[Server]:
    """
    The C{reassign} action (C{{"project": uuid, "shared_to_project": bool}}):
    move the server and its quota to another project of the user, in one
    transaction (the database and quota only; no Ganeti job).
    """
    return Deferred.fromCoroutine(_reassign(db, user, serverId, args, sharingEnabled))


# -- the action endpoint ---------------------------------------------------------------------------


@attrs.frozen
class ActionResult:
    """
    What C{POST /servers/<id>/action} answers: the HTTP code and the JSON
    body (None for an empty body).
    """

    code: int
    body: Mapping[str, Any] | None = None


def parseActionBody(body: object) -> tuple[str, Mapping[str, Any]]:
    """
    The action key and its arguments from C{{"<action>": {args}}} (a null
    argument object counts as C{{}}).
    """
    if not isinstance(body, dict) or len(body) != 1:
        raise BadRequest("Malformed request. The body must hold exactly one action.", "action")
    ((key, args),) = body.items()
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise BadRequest(f"Malformed request. Invalid '{key}' field", key)
    return key, args


async def _runAction(
    db: Any,
    registry: Any,
    broker: Any,
    user: User,
    serverId: int,
    body: object,
    options: ServerOptions,
    consolePageURL: str,
    sharingEnabled: bool,
) -> ActionResult:
    key, args = parseActionBody(body)
    action = logic.actionCode(key)
    if action == "console":
        consoleType = args.get("type")
        if not isinstance(consoleType, str):
            raise BadRequest("Malformed request. Missing attribute 'type'.", "type")
        console = await serverConsole(db, registry, broker, user, serverId, consoleType)
        return ActionResult(200, {"console": console})
    if action == "os-getVNCConsole":
        consoleType = logic.vncConsoleType(args)
        console = await serverConsole(db, registry, broker, user, serverId, consoleType)
        return ActionResult(200, {"console": logic.vncConsoleURL(str(args["type"]), console, consolePageURL)})
    if action == "firewallProfile":
        await setFirewallProfile(db, registry, user, serverId, args, options)
        return ActionResult(202)
    if action == "reassign":
        await reassignServer(db, user, serverId, args, sharingEnabled)
        return ActionResult(200)
    if action == "SUSPEND":
        raise Forbidden("User is not allowed to suspend his server")
    if action in ("START", "STOP", "REBOOT", "RESIZE", "DESTROY"):
        await serverAction(db, registry, user, serverId, action, args, options)
        return ActionResult(202)
    raise logic.NotImplementedFault(f"Action {key} is not implemented here", "action")


def runAction(
    db: Any,
    registry: Any,
    broker: Any,
    user: User,
    serverId: int,
    body: object,
    options: ServerOptions | None = None,
    consolePageURL: str = "",
    sharingEnabled: bool = False,
) -> Deferred[ActionResult]:
    """
    C{POST /servers/<id>/action} (spec §1.4): parse the body, run the
    action and say what to answer (202 for jobs, 200 with C{console} for
    consoles, 200 for C{reassign}). C{addFloatingIp}, C{removeFloatingIp},
    C{rescue} and C{unrescue} are not handled here (501): the floating-IP
    ones belong to the network logic.
    """
    return Deferred.fromCoroutine(
        _runAction(
            db, registry, broker, user, serverId, body, options or ServerOptions(), consolePageURL, sharingEnabled
        )
    )


# -- what the server views show -----------------------------------------------------------------


def extrasFromRelations(
    relations: Mapping[int, ServerRelations], fqdnTemplate: str | None
) -> dict[int, serverviews.ServerExtras]:
    """
    The L{serverviews.ServerExtras} of servers from their relations and
    the FQDN template (such as C{snf-{id}.vm.example.org}).
    """
    return {
        i: serverviews.ServerExtras(
            metadata=r.metadata,
            tags=r.tags,
            ports=r.ports,
            volumeIds=r.volumeIds,
            diagnostic=r.diagnostic,
            fqdn=fqdnTemplate.format(id=i) if fqdnTemplate else None,
        )
        for i, r in relations.items()
    }


async def _loadExtras(
    db: Any, serverIds: Sequence[int], fqdnTemplate: str | None
) -> dict[int, serverviews.ServerExtras]:
    return extrasFromRelations(await ServerListRepository(db).relations(serverIds), fqdnTemplate)


def serverExtras(
    db: Any, serverIds: Sequence[int], fqdnTemplate: str | None = None
) -> Deferred[dict[int, serverviews.ServerExtras]]:
    """
    What the detailed views of these servers show besides their rows
    (metadata, tags, ports with their addresses, volumes, the latest
    diagnostic, the FQDN from a template such as C{snf-{id}.vm.example.org}),
    read in one transaction with a fixed number of queries per 500
    servers, whatever their count.
    """
    return Deferred.fromCoroutine(_loadExtras(db, list(serverIds), fqdnTemplate))
