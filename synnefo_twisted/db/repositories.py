# -*- test-case-name: tests.db.test_repositories -*-
"""
Repositories: the SQL of each table behind methods that take and return
models (L{synnefo_twisted.db.models}); no raw row leaves C{db/}.

A repository is built on either an L{IDatabase} (each method runs in its
own transaction) or an L{ITransaction} (inside a C{runInteraction}, so
that several calls, and a row lock taken with
L{ServerRepository.getForUpdate}, share one transaction). Every method
returns a Deferred.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import secrets
import uuid as uuidlib
from collections.abc import Callable, Coroutine, Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar

import attrs
from twisted.internet.defer import Deferred, maybeDeferred

from synnefo_twisted.db import models
from synnefo_twisted.db.migrations import nowSQL
from synnefo_twisted.db.models import (
    Backend,
    Diagnostic,
    Flavor,
    Image,
    Network,
    Server,
    User,
    VolumeType,
    columns,
)
from synnefo_twisted.interfaces import IDatabase

M = TypeVar("M")
T = TypeVar("T")
Rows = list[tuple[Any, ...]]


def hashToken(token: str) -> str:
    """
    What is stored for an API token: its SHA-256, hex (tokens are random
    and long, so a plain hash is enough; the token itself is never stored).
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def newToken() -> str:
    """
    A new random API token (256 bits, URL-safe).
    """
    return secrets.token_urlsafe(32)


def _jsonFields(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in attrs.fields(cls) if f.converter is models._jsonList)


def _dbValue(value: object) -> object:
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value))
    return value


class _Repository:
    """
    Runs statements on an IDatabase or inside an ITransaction.
    """

    def __init__(self, runner: Any) -> None:
        self._runner = runner
        self._isDatabase = IDatabase.providedBy(runner)

    @property
    def dialect(self) -> str:
        dialect: str = self._runner.dialect
        return dialect

    def _now(self) -> str:
        return nowSQL(self.dialect)

    def _query(self, sql: str, params: object = ()) -> Deferred[Rows]:
        if self._isDatabase:
            d: Deferred[Rows] = self._runner.runQuery(sql, params)
        else:
            d = self._runner.execute(sql, params)
        return d

    def _atomic(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> Deferred[T]:
        """
        Run C{fn(tx, *args)} in one transaction: a new one on a database, the
        current one inside an interaction.
        """
        if self._isDatabase:
            d: Deferred[T] = self._runner.runInteraction(fn, *args)
            return d
        return maybeDeferred(fn, self._runner, *args)

    def _one(self, cls: type[M], sql: str, params: object = ()) -> Deferred[M | None]:
        def first(rows: Rows) -> M | None:
            return cls(*rows[0]) if rows else None

        return self._query(sql, params).addCallback(first)

    def _many(self, cls: type[M], sql: str, params: object = ()) -> Deferred[list[M]]:
        return self._query(sql, params).addCallback(lambda rows: [cls(*row) for row in rows])

    def _update(
        self, cls: type[M], table: str, ident: object, fields: Mapping[str, object], allowed: Iterable[str]
    ) -> Deferred[M | None]:
        allowedSet = frozenset(allowed)
        unknown = sorted(set(fields) - allowedSet)
        if unknown:
            raise ValueError(f"cannot update {table}.{', '.join(unknown)} (allowed: {', '.join(sorted(allowedSet))})")
        assignments = [f"{name} = %s" for name in fields]
        params = [_dbValue(v) for v in fields.values()]
        if any(f.name == "updated" for f in attrs.fields(cls)):  # type: ignore[arg-type]
            assignments.append(f"updated = {self._now()}")
        if not assignments:
            raise ValueError("nothing to update")
        sql = f"UPDATE {table} SET {', '.join(assignments)} WHERE id = %s RETURNING {columns(cls)}"
        return self._one(cls, sql, (*params, ident))


# -- users and tokens --------------------------------------------------------------


class UserRepository(_Repository):
    """
    Users and their API tokens (stored hashed, with an optional expiry).
    """

    _cols = columns(User)
    _userCols = ", ".join(f"u.{c.strip()}" for c in columns(User).split(","))

    def create(
        self,
        email: str,
        name: str = "",
        *,
        uuid: str | None = None,
        roles: Iterable[str] = (),
        token: str | None = None,
        tokenExpires: datetime | None = None,
    ) -> Deferred[tuple[User, str]]:
        """
        Create a user and a first token. Deferred C{(user, token)}: the only
        time the token is seen in clear.
        """
        userUUID = uuid or str(uuidlib.uuid4())
        clear = token or newToken()

        async def create(tx: Any) -> tuple[User, str]:
            rows = await tx.execute(
                f"INSERT INTO users (uuid, email, name, roles) VALUES (%s, %s, %s, %s) RETURNING {self._cols}",
                (userUUID, email, name, json.dumps(list(roles))),
            )
            user = User(*rows[0])
            await tx.execute(
                "INSERT INTO tokens (user_id, token_hash, expires) VALUES (%s, %s, %s)",
                (user.id, hashToken(clear), tokenExpires),
            )
            return user, clear

        return self._atomic(create)

    def addToken(
        self, userId: int, *, token: str | None = None, expires: datetime | None = None, name: str = ""
    ) -> Deferred[str]:
        """
        Give a user one more token. Deferred with the token in clear.
        """
        clear = token or newToken()
        d = self._query(
            "INSERT INTO tokens (user_id, token_hash, expires, name) VALUES (%s, %s, %s, %s)",
            (userId, hashToken(clear), expires, name),
        )
        return d.addCallback(lambda _: clear)

    def revokeTokens(self, userId: int) -> Deferred[None]:
        d = self._query("UPDATE tokens SET revoked = TRUE WHERE user_id = %s", (userId,))
        return d.addCallback(lambda _: None)

    def byToken(self, token: str, now: datetime) -> Deferred[User | None]:
        """
        The active user owning C{token}, if the token is neither revoked nor
        expired at C{now}; else None.
        """
        sql = (
            f"SELECT {self._userCols}, t.expires FROM tokens t JOIN users u ON u.id = t.user_id "
            "WHERE t.token_hash = %s AND t.revoked = FALSE AND u.is_active = TRUE"
        )

        def check(rows: Rows) -> User | None:
            if not rows:
                return None
            *userRow, expires = rows[0]
            expiry = models.parseTimestamp(expires)
            if expiry is not None and expiry <= now:
                return None
            return User(*userRow)

        return self._query(sql, (hashToken(token),)).addCallback(check)

    def get(self, userId: int) -> Deferred[User | None]:
        return self._one(User, f"SELECT {self._cols} FROM users WHERE id = %s", (userId,))

    def byUUID(self, userUUID: str) -> Deferred[User | None]:
        return self._one(User, f"SELECT {self._cols} FROM users WHERE uuid = %s", (userUUID,))

    def byEmail(self, email: str) -> Deferred[User | None]:
        return self._one(User, f"SELECT {self._cols} FROM users WHERE email = %s", (email,))

    def list(self) -> Deferred[list[User]]:
        return self._many(User, f"SELECT {self._cols} FROM users ORDER BY id")

    def modify(self, userId: int, **fields: object) -> Deferred[User | None]:
        return self._update(User, "users", userId, fields, ("email", "name", "roles", "is_active"))


# -- backends ----------------------------------------------------------------------------


class BackendRepository(_Repository):
    """
    Ganeti clusters.
    """

    _cols = columns(Backend)
    MODIFIABLE = (
        "clustername",
        "rapi_url",
        "username",
        "password",
        "verify_tls",
        "hypervisor",
        "disk_templates",
        "public",
        "drained",
        "offline",
        "mfree",
        "mtotal",
        "dfree",
        "dtotal",
        "pinst_cnt",
        "ctotal",
        "resources_updated",
        "ca_pem",
    )

    def add(
        self,
        clustername: str,
        rapiURL: str,
        *,
        username: str = "",
        password: str = "",
        verifyTLS: bool = True,
        hypervisor: str = "kvm",
        public: bool = True,
        simulated: bool = False,
        caPEM: str = "",
    ) -> Deferred[Backend]:
        sql = (
            "INSERT INTO backends (clustername, rapi_url, username, password, verify_tls, hypervisor, public, simulated, "
            f"ca_pem) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {self._cols}"
        )
        params = (clustername, rapiURL, username, password, verifyTLS, hypervisor, public, simulated, caPEM)
        d = self._query(sql, params)
        return d.addCallback(lambda rows: Backend(*rows[0]))

    def get(self, backendId: int) -> Deferred[Backend | None]:
        return self._one(Backend, f"SELECT {self._cols} FROM backends WHERE id = %s", (backendId,))

    def byClustername(self, clustername: str) -> Deferred[Backend | None]:
        return self._one(Backend, f"SELECT {self._cols} FROM backends WHERE clustername = %s", (clustername,))

    def list(self) -> Deferred[list[Backend]]:
        return self._many(Backend, f"SELECT {self._cols} FROM backends ORDER BY id")

    def modify(self, backendId: int, **fields: object) -> Deferred[Backend | None]:
        """
        Change some of L{MODIFIABLE}; Deferred with the new model (None when
        there is no such backend).
        """
        return self._update(Backend, "backends", backendId, fields, self.MODIFIABLE)

    def remove(self, backendId: int) -> Deferred[bool]:
        """
        Delete a backend; fails (foreign key) while servers reference it.
        """
        d = self._query("DELETE FROM backends WHERE id = %s RETURNING id", (backendId,))
        return d.addCallback(bool)


# -- flavors -------------------------------------------------------------------------------


class FlavorRepository(_Repository):
    """
    Volume types and flavors.
    """

    _cols = columns(Flavor)
    _vtCols = columns(VolumeType)

    def addVolumeType(self, name: str, diskTemplate: str) -> Deferred[VolumeType]:
        d = self._query(
            f"INSERT INTO volume_types (name, disk_template) VALUES (%s, %s) RETURNING {self._vtCols}",
            (name, diskTemplate),
        )
        return d.addCallback(lambda rows: VolumeType(*rows[0]))

    def volumeTypes(self) -> Deferred[list[VolumeType]]:
        return self._many(VolumeType, f"SELECT {self._vtCols} FROM volume_types ORDER BY id")

    def volumeType(self, volumeTypeId: int) -> Deferred[VolumeType | None]:
        return self._one(VolumeType, f"SELECT {self._vtCols} FROM volume_types WHERE id = %s", (volumeTypeId,))

    def create(
        self,
        cpu: int,
        ram: int,
        disk: int,
        volumeTypeId: int,
        *,
        name: str | None = None,
        public: bool = True,
        allowCreate: bool = True,
    ) -> Deferred[Flavor]:
        """
        Create a flavor (RAM in MiB, disk in GiB); the default name is
        Synnefo's C{C<cpu>R<ram>D<disk><template>}.
        """

        async def create(tx: Any) -> Flavor:
            flavorName = name
            if flavorName is None:
                rows = await tx.execute("SELECT disk_template FROM volume_types WHERE id = %s", (volumeTypeId,))
                template = rows[0][0] if rows else ""
                flavorName = f"C{cpu}R{ram}D{disk}{template}"
            rows = await tx.execute(
                "INSERT INTO flavors (name, cpu, ram, disk, volume_type_id, public, allow_create) "
                f"VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {self._cols}",
                (flavorName, cpu, ram, disk, volumeTypeId, public, allowCreate),
            )
            return Flavor(*rows[0])

        return self._atomic(create)

    def get(self, flavorId: int) -> Deferred[Flavor | None]:
        return self._one(Flavor, f"SELECT {self._cols} FROM flavors WHERE id = %s", (flavorId,))

    def list(self, includeDeleted: bool = False) -> Deferred[list[Flavor]]:
        where = "" if includeDeleted else " WHERE deleted = FALSE"
        return self._many(Flavor, f"SELECT {self._cols} FROM flavors{where} ORDER BY id")

    def bySpec(self, cpu: int, ram: int, disk: int, volumeTypeId: int) -> Deferred[Flavor | None]:
        return self._one(
            Flavor,
            f"SELECT {self._cols} FROM flavors WHERE cpu = %s AND ram = %s AND disk = %s AND volume_type_id = %s",
            (cpu, ram, disk, volumeTypeId),
        )

    def modify(self, flavorId: int, **fields: object) -> Deferred[Flavor | None]:
        return self._update(Flavor, "flavors", flavorId, fields, ("name", "allow_create", "public", "deleted"))


# -- images ---------------------------------------------------------------------------------


class ImageRepository(_Repository):
    """
    The image registry and image metadata (properties).
    """

    _cols = columns(Image)

    def register(
        self,
        name: str,
        owner: str,
        location: str,
        *,
        imageId: str | None = None,
        size: int = 0,
        checksum: str = "",
        diskFormat: str = "diskdump",
        containerFormat: str = "bare",
        isPublic: bool = False,
        isSnapshot: bool = False,
        properties: Mapping[str, str] | None = None,
        minDisk: int = 0,
        minRam: int = 0,
        protected: bool = False,
        status: str = "AVAILABLE",
    ) -> Deferred[Image]:
        ident = imageId or str(uuidlib.uuid4())
        props = dict(properties or {})

        async def register(tx: Any) -> Image:
            rows = await tx.execute(
                "INSERT INTO images (id, name, owner, location, size, checksum, disk_format, container_format, "
                "is_public, is_snapshot, min_disk, min_ram, protected, status) "
                f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {self._cols}",
                (
                    ident,
                    name,
                    owner,
                    location,
                    size,
                    checksum,
                    diskFormat,
                    containerFormat,
                    isPublic,
                    isSnapshot,
                    minDisk,
                    minRam,
                    protected,
                    status,
                ),
            )
            for key, value in sorted(props.items()):
                await tx.execute(
                    "INSERT INTO image_properties (image_id, prop_key, prop_value) VALUES (%s, %s, %s)",
                    (ident, key, value),
                )
            return attrs.evolve(Image(*rows[0]), properties=props)

        return self._atomic(register)

    async def _withProperties(self, tx: Any, images: list[Image]) -> list[Image]:
        if not images:
            return images
        marks = ", ".join(["%s"] * len(images))
        rows = await tx.execute(
            f"SELECT image_id, prop_key, prop_value FROM image_properties WHERE image_id IN ({marks})",
            tuple(i.id for i in images),
        )
        props: dict[str, dict[str, str]] = {}
        for imageId, key, value in rows:
            props.setdefault(imageId, {})[key] = value
        return [attrs.evolve(i, properties=props.get(i.id, {})) for i in images]

    def _select(self, where: str, params: tuple[Any, ...]) -> Deferred[list[Image]]:
        async def select(tx: Any) -> list[Image]:
            rows = await tx.execute(f"SELECT {self._cols} FROM images {where}", params)
            return await self._withProperties(tx, [Image(*row) for row in rows])

        return self._atomic(select)

    def get(self, imageId: str) -> Deferred[Image | None]:
        d = self._select("WHERE id = %s", (imageId,))
        return d.addCallback(lambda images: images[0] if images else None)

    def list(self, owner: str | None = None, includeDeleted: bool = False) -> Deferred[list[Image]]:
        """
        Images visible to C{owner} (theirs, public ones and those shared
        with them as a member), or all when None.
        """
        conditions = [] if includeDeleted else ["deleted = FALSE"]
        params: tuple[Any, ...] = ()
        if owner is not None:
            conditions.append(
                "(owner = %s OR is_public = TRUE OR id IN (SELECT image_id FROM image_members WHERE member = %s))"
            )
            params = (owner, owner)
        where = ("WHERE " + " AND ".join(conditions)) if conditions else ""
        return self._select(f"{where} ORDER BY created, id", params)

    def setProperties(self, imageId: str, properties: Mapping[str, str], replace: bool = False) -> Deferred[None]:
        """
        Merge (or with C{replace}, replace) an image's properties.
        """

        async def update(tx: Any) -> None:
            if replace:
                await tx.execute("DELETE FROM image_properties WHERE image_id = %s", (imageId,))
            for key, value in sorted(properties.items()):
                await tx.execute(
                    "INSERT INTO image_properties (image_id, prop_key, prop_value) VALUES (%s, %s, %s) "
                    "ON CONFLICT (image_id, prop_key) DO UPDATE SET prop_value = excluded.prop_value",
                    (imageId, key, value),
                )
            await tx.execute(f"UPDATE images SET updated = {nowSQL(self.dialect)} WHERE id = %s", (imageId,))

        return self._atomic(update)

    def modify(self, imageId: str, **fields: object) -> Deferred[Image | None]:
        allowed = (
            "name",
            "status",
            "is_public",
            "deleted",
            "size",
            "checksum",
            "location",
            "disk_format",
            "container_format",
            "min_disk",
            "min_ram",
            "protected",
            "owner",
            "deleted_at",
        )
        d = self._update(Image, "images", imageId, fields, allowed)
        return d.addCallback(lambda image: None if image is None else self.get(imageId))


# -- servers --------------------------------------------------------------------------------


class ServerRepository(_Repository):
    """
    Servers (virtual machines), their metadata, tags and diagnostics.
    """

    _cols = columns(Server)
    UPDATABLE = (
        "name",
        "backend_id",
        "flavor_id",
        "operstate",
        "action",
        "backendjobid",
        "backendopcode",
        "backendjobstatus",
        "backendlogmsg",
        "backendtime",
        "task",
        "task_job_id",
        "buildpercentage",
        "suspended",
        "deleted",
        "rescue",
        "rescue_image",
        "serial_id",
        "project",
        "shared_to_project",
        "key_names",
        "config_url",
        "userid",
        "jobtime",
        "statetime",
        "flavortime",
        "detailstime",
    )

    def create(
        self,
        name: str,
        userid: str,
        flavorId: int,
        imageId: str,
        *,
        project: str | None = None,
        backendId: int | None = None,
        keyNames: Iterable[str] = (),
        sharedToProject: bool = False,
    ) -> Deferred[Server]:
        sql = (
            "INSERT INTO servers (name, userid, project, flavor_id, image_id, backend_id, key_names, shared_to_project) "
            f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING {self._cols}"
        )
        params = (name, userid, project, flavorId, imageId, backendId, json.dumps(list(keyNames)), sharedToProject)
        return self._query(sql, params).addCallback(lambda rows: Server(*rows[0]))

    def get(self, serverId: int) -> Deferred[Server | None]:
        return self._one(Server, f"SELECT {self._cols} FROM servers WHERE id = %s", (serverId,))

    @staticmethod
    def getForUpdate(tx: Any, serverId: int) -> Deferred[Server | None]:
        """
        Read a server inside an interaction and lock its row until the
        transaction ends (C{SELECT ... FOR UPDATE}; SQLite serialises
        transactions instead).
        """
        d: Deferred[Rows] = tx.execute(
            f"SELECT {ServerRepository._cols} FROM servers WHERE id = %s FOR UPDATE", (serverId,)
        )
        return d.addCallback(lambda rows: Server(*rows[0]) if rows else None)

    def listByUser(self, userid: str, includeDeleted: bool = False) -> Deferred[list[Server]]:
        where = "" if includeDeleted else " AND deleted = FALSE"
        return self._many(Server, f"SELECT {self._cols} FROM servers WHERE userid = %s{where} ORDER BY id", (userid,))

    def listByBackend(self, backendId: int, includeDeleted: bool = False) -> Deferred[list[Server]]:
        where = "" if includeDeleted else " AND deleted = FALSE"
        return self._many(
            Server, f"SELECT {self._cols} FROM servers WHERE backend_id = %s{where} ORDER BY id", (backendId,)
        )

    def update(self, serverId: int, **fields: object) -> Deferred[Server | None]:
        """
        Set some of L{UPDATABLE} (and C{updated}); Deferred with the new
        model, None when there is no such server.
        """
        return self._update(Server, "servers", serverId, fields, self.UPDATABLE)

    def metadata(self, serverId: int) -> Deferred[dict[str, str]]:
        d = self._query(
            "SELECT meta_key, meta_value FROM server_metadata WHERE server_id = %s ORDER BY meta_key", (serverId,)
        )
        return d.addCallback(lambda rows: {k: v for k, v in rows})

    def setMetadata(self, serverId: int, items: Mapping[str, str]) -> Deferred[dict[str, str]]:
        """
        Merge C{items} into the server's metadata; Deferred with the result.
        """

        async def merge(tx: Any) -> dict[str, str]:
            for key, value in sorted(items.items()):
                await tx.execute(
                    "INSERT INTO server_metadata (server_id, meta_key, meta_value) VALUES (%s, %s, %s) "
                    "ON CONFLICT (server_id, meta_key) DO UPDATE SET meta_value = excluded.meta_value",
                    (serverId, key, value),
                )
            rows = await tx.execute(
                "SELECT meta_key, meta_value FROM server_metadata WHERE server_id = %s ORDER BY meta_key", (serverId,)
            )
            return {k: v for k, v in rows}

        return self._atomic(merge)

    def deleteMetadata(self, serverId: int, key: str) -> Deferred[bool]:
        d = self._query(
            "DELETE FROM server_metadata WHERE server_id = %s AND meta_key = %s RETURNING id", (serverId, key)
        )
        return d.addCallback(bool)

    def tags(self, serverId: int) -> Deferred[list[models.ServerTag]]:
        return self._many(
            models.ServerTag,
            f"SELECT {columns(models.ServerTag)} FROM server_tags WHERE server_id = %s ORDER BY tag",
            (serverId,),
        )

    def addTag(self, serverId: int, tag: str, status: str = "PENDADD") -> Deferred[bool]:
        """
        Add a tag; Deferred True when added, False when it existed.
        """
        d = self._query(
            "INSERT INTO server_tags (server_id, tag, status) VALUES (%s, %s, %s) "
            "ON CONFLICT (server_id, tag) DO NOTHING RETURNING id",
            (serverId, tag, status),
        )
        return d.addCallback(bool)

    def addDiagnostic(
        self,
        serverId: int,
        source: str,
        level: str,
        message: str,
        details: str | None = None,
        sourceDate: datetime | None = None,
    ) -> Deferred[Diagnostic]:
        d = self._query(
            "INSERT INTO diagnostics (server_id, source, level, message, details, source_date) "
            f"VALUES (%s, %s, %s, %s, %s, %s) RETURNING {columns(Diagnostic)}",
            (serverId, source, level, message, details, sourceDate),
        )
        return d.addCallback(lambda rows: Diagnostic(*rows[0]))

    def diagnostics(self, serverId: int) -> Deferred[list[Diagnostic]]:
        """
        The server's diagnostics, newest first.
        """
        return self._many(
            Diagnostic,
            f"SELECT {columns(Diagnostic)} FROM diagnostics WHERE server_id = %s ORDER BY id DESC",
            (serverId,),
        )


# -- networks ---------------------------------------------------------------------------------


class NetworkRepository(_Repository):
    """
    Networks.
    """

    _cols = columns(Network)

    def create(
        self,
        name: str,
        flavor: str,
        *,
        userid: str | None = None,
        project: str | None = None,
        mode: str = "bridged",
        link: str | None = None,
        macPrefix: str | None = None,
        public: bool = False,
        floatingIPPool: bool = False,
        externalRouter: bool = False,
        tags: Iterable[str] = (),
        sharedToProject: bool = False,
    ) -> Deferred[Network]:
        sql = (
            "INSERT INTO networks (name, flavor, userid, project, mode, link, mac_prefix, public, floating_ip_pool, "
            "external_router, tags, shared_to_project) "
            f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {self._cols}"
        )
        params = (
            name,
            flavor,
            userid,
            project,
            mode,
            link,
            macPrefix,
            public,
            floatingIPPool,
            externalRouter,
            json.dumps(list(tags)),
            sharedToProject,
        )
        return self._query(sql, params).addCallback(lambda rows: Network(*rows[0]))

    def get(self, networkId: int) -> Deferred[Network | None]:
        return self._one(Network, f"SELECT {self._cols} FROM networks WHERE id = %s", (networkId,))

    @staticmethod
    def getForUpdate(tx: Any, networkId: int) -> Deferred[Network | None]:
        """
        Read a network inside an interaction and lock its row.
        """
        d: Deferred[Rows] = tx.execute(
            f"SELECT {NetworkRepository._cols} FROM networks WHERE id = %s FOR UPDATE", (networkId,)
        )
        return d.addCallback(lambda rows: Network(*rows[0]) if rows else None)

    def list(self, userid: str | None = None, includeDeleted: bool = False) -> Deferred[list[Network]]:
        """
        Networks visible to C{userid} (theirs and public ones), or all when
        None.
        """
        conditions = [] if includeDeleted else ["deleted = FALSE"]
        params: tuple[Any, ...] = ()
        if userid is not None:
            conditions.append("(userid = %s OR public = TRUE)")
            params = (userid,)
        where = (" WHERE " + " AND ".join(conditions)) if conditions else ""
        return self._many(Network, f"SELECT {self._cols} FROM networks{where} ORDER BY id", params)

    def update(self, networkId: int, **fields: object) -> Deferred[Network | None]:
        allowed = (
            "name",
            "state",
            "action",
            "drained",
            "deleted",
            "floating_ip_pool",
            "link",
            "mac_prefix",
            "tags",
            "serial_id",
            "project",
            "shared_to_project",
            "userid",
        )
        return self._update(Network, "networks", networkId, fields, allowed)


# -- projects and quotas ----------------------------------------------------------------------


class QuotaExceededError(Exception):
    """
    A commission would take a holding over its limit; nothing was changed.
    """

    def __init__(self, resource: str, limit: int, used: int, requested: int) -> None:
        self.resource = resource
        self.limit = limit
        self.used = used
        self.requested = requested
        super().__init__(
            f"quota exceeded for {resource}: limit {limit}, in use or pending {used}, requested {requested}"
        )


class ProjectRepository(_Repository):
    """
    Projects and their members.
    """

    _cols = columns(models.Project)

    def create(
        self, name: str, *, ownerUUID: str | None = None, isBase: bool = False, uuid: str | None = None
    ) -> Deferred[models.Project]:
        d = self._query(
            f"INSERT INTO projects (uuid, name, owner_uuid, is_base) VALUES (%s, %s, %s, %s) RETURNING {self._cols}",
            (uuid or str(uuidlib.uuid4()), name, ownerUUID, isBase),
        )
        return d.addCallback(lambda rows: models.Project(*rows[0]))

    def get(self, projectId: int) -> Deferred[models.Project | None]:
        return self._one(models.Project, f"SELECT {self._cols} FROM projects WHERE id = %s", (projectId,))

    def byUUID(self, projectUUID: str) -> Deferred[models.Project | None]:
        return self._one(models.Project, f"SELECT {self._cols} FROM projects WHERE uuid = %s", (projectUUID,))

    def list(self) -> Deferred[list[models.Project]]:
        return self._many(models.Project, f"SELECT {self._cols} FROM projects ORDER BY id")

    def addMember(self, projectId: int, userId: int) -> Deferred[bool]:
        """
        Make a user a member; Deferred True when added, False when already one.
        """
        d = self._query(
            "INSERT INTO project_members (project_id, user_id) VALUES (%s, %s) "
            "ON CONFLICT (project_id, user_id) DO NOTHING RETURNING project_id",
            (projectId, userId),
        )
        return d.addCallback(bool)

    def projectsOf(self, userId: int) -> Deferred[builtins.list[models.Project]]:
        cols = ", ".join(f"p.{c.strip()}" for c in self._cols.split(","))
        return self._many(
            models.Project,
            f"SELECT {cols} FROM projects p JOIN project_members m ON m.project_id = p.id WHERE m.user_id = %s ORDER BY p.id",
            (userId,),
        )


class QuotaRepository(_Repository):
    """
    Quota holdings (limit, usage, pending) and commissions: a commission
    reserves resources (pending) after checking every affected holding
    under a row lock, then is accepted (usage moves) or rejected.
    """

    _cols = columns(models.Quota)
    _commissionCols = columns(models.Commission)

    def setLimit(self, projectId: int, resource: str, limit: int, userId: int | None = None) -> Deferred[models.Quota]:
        """
        Create or change the limit of a holding (the project's total when
        C{userId} is None, else the member's share).
        """
        if userId is None:
            target = "(project_id, resource) WHERE user_id IS NULL"
        else:
            target = "(project_id, user_id, resource) WHERE user_id IS NOT NULL"
        d = self._query(
            "INSERT INTO quotas (project_id, user_id, resource, quota_limit) VALUES (%s, %s, %s, %s) "
            f"ON CONFLICT {target} DO UPDATE SET quota_limit = excluded.quota_limit RETURNING {self._cols}",
            (projectId, userId, resource, limit),
        )
        return d.addCallback(lambda rows: models.Quota(*rows[0]))

    def holdings(self, projectId: int) -> Deferred[list[models.Quota]]:
        return self._many(
            models.Quota,
            f"SELECT {self._cols} FROM quotas WHERE project_id = %s ORDER BY resource, user_id",
            (projectId,),
        )

    def issue(
        self, projectId: int, userId: int | None, provisions: Mapping[str, int], name: str = ""
    ) -> Deferred[models.Commission]:
        """
        Reserve C{provisions} (resource -> quantity; negative releases) on the
        project's holding and the member's, if they exist.

        @raise QuotaExceededError: (in the Deferred) a positive quantity does
            not fit; nothing is reserved.
        """

        async def issue(tx: Any) -> models.Commission:
            for resource, quantity in sorted(provisions.items()):
                rows = await tx.execute(
                    f"SELECT {self._cols} FROM quotas WHERE project_id = %s AND resource = %s "
                    "AND (user_id IS NULL OR user_id = %s) ORDER BY id FOR UPDATE",
                    (projectId, resource, userId),
                )
                for holding in (models.Quota(*row) for row in rows):
                    used = holding.usage + holding.pending
                    if quantity > 0 and used + quantity > holding.quota_limit:
                        raise QuotaExceededError(resource, holding.quota_limit, used, quantity)
                if quantity > 0:
                    await tx.execute(
                        "UPDATE quotas SET pending = pending + %s WHERE project_id = %s AND resource = %s "
                        "AND (user_id IS NULL OR user_id = %s)",
                        (quantity, projectId, resource, userId),
                    )
            rows = await tx.execute(
                f"INSERT INTO commissions (project_id, user_id, name) VALUES (%s, %s, %s) RETURNING {self._commissionCols}",
                (projectId, userId, name),
            )
            commission = models.Commission(*rows[0])
            for resource, quantity in sorted(provisions.items()):
                await tx.execute(
                    "INSERT INTO commission_provisions (commission_id, resource, quantity) VALUES (%s, %s, %s)",
                    (commission.id, resource, quantity),
                )
            return commission

        return self._atomic(issue)

    def _resolve(self, commissionId: int, accept: bool) -> Deferred[models.Commission | None]:
        async def resolve(tx: Any) -> models.Commission | None:
            rows = await tx.execute(
                f"SELECT {self._commissionCols} FROM commissions WHERE id = %s FOR UPDATE", (commissionId,)
            )
            if not rows:
                return None
            commission = models.Commission(*rows[0])
            if commission.state != "pending":
                return commission
            provisions = await tx.execute(
                "SELECT resource, quantity FROM commission_provisions WHERE commission_id = %s ORDER BY resource",
                (commissionId,),
            )
            for resource, quantity in provisions:
                where = "WHERE project_id = %s AND resource = %s AND (user_id IS NULL OR user_id = %s)"
                holder = (commission.project_id, resource, commission.user_id)
                if accept:
                    await tx.execute(
                        "UPDATE quotas SET usage = CASE WHEN usage + %s < 0 THEN 0 ELSE usage + %s END, "
                        f"pending = pending - %s {where}",
                        (quantity, quantity, max(quantity, 0), *holder),
                    )
                elif quantity > 0:
                    await tx.execute(f"UPDATE quotas SET pending = pending - %s {where}", (quantity, *holder))
            rows = await tx.execute(
                f"UPDATE commissions SET state = %s, resolved = {self._now()} WHERE id = %s RETURNING {self._commissionCols}",
                ("accepted" if accept else "rejected", commissionId),
            )
            return models.Commission(*rows[0])

        return self._atomic(resolve)

    def accept(self, commissionId: int) -> Deferred[models.Commission | None]:
        """
        Apply a pending commission: usage changes by each quantity (never
        below zero), reservations are released. Resolving twice is a no-op.
        """
        return self._resolve(commissionId, True)

    def reject(self, commissionId: int) -> Deferred[models.Commission | None]:
        """
        Drop a pending commission: its reservations are released.
        """
        return self._resolve(commissionId, False)

    def pending(self) -> Deferred[list[models.Commission]]:
        return self._many(
            models.Commission, f"SELECT {self._commissionCols} FROM commissions WHERE state = 'pending' ORDER BY id"
        )


# -- subnets, ports, IPs ---------------------------------------------------------------------------


class SubnetRepository(_Repository):
    _cols = columns(models.Subnet)

    def create(
        self,
        networkId: int,
        cidr: str,
        ipversion: int,
        *,
        name: str = "",
        gateway: str | None = None,
        dhcp: bool = True,
        slaac: bool = True,
        userid: str | None = None,
        public: bool = False,
        dnsNameservers: Iterable[str] = (),
        hostRoutes: Iterable[Any] = (),
    ) -> Deferred[models.Subnet]:
        d = self._query(
            "INSERT INTO subnets (network_id, cidr, ipversion, name, gateway, dhcp, slaac, userid, public, "
            f"dns_nameservers, host_routes) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {self._cols}",
            (
                networkId,
                cidr,
                ipversion,
                name,
                gateway,
                dhcp,
                slaac,
                userid,
                public,
                json.dumps(list(dnsNameservers)),
                json.dumps(list(hostRoutes)),
            ),
        )
        return d.addCallback(lambda rows: models.Subnet(*rows[0]))

    def get(self, subnetId: int) -> Deferred[models.Subnet | None]:
        return self._one(models.Subnet, f"SELECT {self._cols} FROM subnets WHERE id = %s", (subnetId,))

    def listByNetwork(self, networkId: int) -> Deferred[list[models.Subnet]]:
        return self._many(
            models.Subnet,
            f"SELECT {self._cols} FROM subnets WHERE network_id = %s AND deleted = FALSE ORDER BY id",
            (networkId,),
        )


class PortRepository(_Repository):
    """
    Ports (NICs) and their IP addresses.
    """

    _cols = columns(models.Port)
    _ipCols = columns(models.IPAddress)

    def create(
        self,
        networkId: int,
        *,
        userid: str | None = None,
        project: str | None = None,
        serverId: int | None = None,
        name: str = "",
        mac: str | None = None,
        deviceOwner: str | None = None,
        state: str = "BUILD",
    ) -> Deferred[models.Port]:
        d = self._query(
            "INSERT INTO ports (network_id, userid, project, server_id, name, mac, device_owner, state) "
            f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING {self._cols}",
            (networkId, userid, project, serverId, name, mac, deviceOwner, state),
        )
        return d.addCallback(lambda rows: models.Port(*rows[0]))

    def get(self, portId: int) -> Deferred[models.Port | None]:
        return self._one(models.Port, f"SELECT {self._cols} FROM ports WHERE id = %s", (portId,))

    def listByServer(self, serverId: int) -> Deferred[list[models.Port]]:
        return self._many(models.Port, f"SELECT {self._cols} FROM ports WHERE server_id = %s ORDER BY id", (serverId,))

    def listByNetwork(self, networkId: int) -> Deferred[list[models.Port]]:
        return self._many(
            models.Port, f"SELECT {self._cols} FROM ports WHERE network_id = %s ORDER BY id", (networkId,)
        )

    def update(self, portId: int, **fields: object) -> Deferred[models.Port | None]:
        allowed = ("name", "server_id", "device_owner", "mac", "idx", "firewall_profile", "state", "security_groups")
        return self._update(models.Port, "ports", portId, fields, allowed)

    def delete(self, portId: int) -> Deferred[bool]:
        d = self._query("DELETE FROM ports WHERE id = %s RETURNING id", (portId,))
        return d.addCallback(bool)

    def addIP(
        self,
        subnetId: int,
        networkId: int,
        address: str,
        ipversion: int,
        *,
        portId: int | None = None,
        userid: str | None = None,
        project: str | None = None,
        floating: bool = False,
    ) -> Deferred[models.IPAddress]:
        """
        Record an address; a second live row for the same address on the
        network fails with IntegrityError.
        """
        d = self._query(
            "INSERT INTO ips (subnet_id, network_id, address, ipversion, port_id, userid, project, floating_ip) "
            f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING {self._ipCols}",
            (subnetId, networkId, address, ipversion, portId, userid, project, floating),
        )
        return d.addCallback(lambda rows: models.IPAddress(*rows[0]))

    def ipsOfPort(self, portId: int) -> Deferred[list[models.IPAddress]]:
        return self._many(
            models.IPAddress,
            f"SELECT {self._ipCols} FROM ips WHERE port_id = %s AND deleted = FALSE ORDER BY id",
            (portId,),
        )

    def releaseIP(self, ipId: int) -> Deferred[models.IPAddress | None]:
        """
        Mark an address deleted (it may then be allocated again).
        """
        return self._update(models.IPAddress, "ips", ipId, {"deleted": True, "port_id": None}, ("deleted", "port_id"))


# -- key pairs and console forwardings -------------------------------------------------------------


class KeyPairRepository(_Repository):
    _cols = columns(models.KeyPair)

    def create(self, userid: str, name: str, publicKey: str, fingerprint: str) -> Deferred[models.KeyPair]:
        """
        Store a key pair; a live one with the same name fails with
        IntegrityError.
        """
        d = self._query(
            "INSERT INTO keypairs (userid, name, public_key, fingerprint) "
            f"VALUES (%s, %s, %s, %s) RETURNING {self._cols}",
            (userid, name, publicKey, fingerprint),
        )
        return d.addCallback(lambda rows: models.KeyPair(*rows[0]))

    def list(self, userid: str) -> Deferred[list[models.KeyPair]]:
        return self._many(
            models.KeyPair,
            f"SELECT {self._cols} FROM keypairs WHERE userid = %s AND deleted = FALSE ORDER BY name",
            (userid,),
        )

    def get(self, userid: str, name: str) -> Deferred[models.KeyPair | None]:
        return self._one(
            models.KeyPair,
            f"SELECT {self._cols} FROM keypairs WHERE userid = %s AND name = %s AND deleted = FALSE",
            (userid, name),
        )

    def delete(self, userid: str, name: str) -> Deferred[bool]:
        now = self._now()
        d = self._query(
            f"UPDATE keypairs SET deleted = TRUE, deleted_at = {now}, updated = {now} "
            "WHERE userid = %s AND name = %s AND deleted = FALSE RETURNING id",
            (userid, name),
        )
        return d.addCallback(bool)


class ConsoleForwardingRepository(_Repository):
    """
    The audit trail of console forwardings.
    """

    _cols = columns(models.ConsoleForwarding)

    def record(
        self,
        serverId: int | None,
        userid: str,
        consoleType: str,
        destinationHost: str,
        destinationPort: int,
        proxyHost: str,
        proxyPort: int,
        expires: datetime | None = None,
    ) -> Deferred[models.ConsoleForwarding]:
        d = self._query(
            "INSERT INTO console_forwardings (server_id, userid, console_type, destination_host, destination_port, "
            f"proxy_host, proxy_port, expires) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING {self._cols}",
            (serverId, userid, consoleType, destinationHost, destinationPort, proxyHost, proxyPort, expires),
        )
        return d.addCallback(lambda rows: models.ConsoleForwarding(*rows[0]))

    def markUsed(
        self, forwardingId: int, clientAddress: str, outcome: str
    ) -> Deferred[models.ConsoleForwarding | None]:
        d = self._query(
            f"UPDATE console_forwardings SET used = {self._now()}, client_address = %s, outcome = %s "
            f"WHERE id = %s RETURNING {self._cols}",
            (clientAddress, outcome, forwardingId),
        )
        return d.addCallback(lambda rows: models.ConsoleForwarding(*rows[0]) if rows else None)

    def listForServer(self, serverId: int) -> Deferred[list[models.ConsoleForwarding]]:
        return self._many(
            models.ConsoleForwarding,
            f"SELECT {self._cols} FROM console_forwardings WHERE server_id = %s ORDER BY id",
            (serverId,),
        )
