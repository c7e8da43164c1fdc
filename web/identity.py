# -*- test-case-name: tests.web.test_identity -*-
"""
Identity as Synnefo's Astakos offers it to clients (spec §1.1, §1.2):

 - C{POST /identity/v2.0/tokens}: Keystone v2 C{access} document for
   C{{"auth": {"token": {"id": T}}}} or
   C{{"auth": {"passwordCredentials": {"username": <uuid or email>, "password": T}}}}
   (Astakos's password is the API token), with the service catalog;
 - C{GET /identity}, C{/identity/v2.0}, C{/identity/v3}: version documents
   for client discovery;
 - C{POST /account/v1.0/user_catalogs}: uuid <-> display name (the e-mail).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from twisted.web.iweb import IRequest

from synnefo_twisted.db.models import User
from synnefo_twisted.db.repositories import ProjectRepository, UserRepository
from web.auth import Authenticator
from web.faults import BadRequest, Unauthorized
from web.http import attribute, isoformat, readJSON
from web.routing import Router

# Tokens without an expiry are reported as valid for this long (clients
# then ask again, which succeeds while the token lives).
REPORTED_TOKEN_LIFETIME = timedelta(days=1)

UPDATED = "2013-03-06T00:00:00Z"


def serviceCatalog(baseURL: str) -> list[dict[str, Any]]:
    """
    The catalog Synnefo publishes: compute (version in the URL), network and
    image (version discovered by the client), account, identity, vmapi.
    """
    base = baseURL.rstrip("/")
    services = [
        ("cyclades_compute", "compute", "v2.0", f"{base}/compute/v2.0"),
        ("cyclades_network", "network", "v2.0", f"{base}/network"),
        ("cyclades_plankton", "image", "v1.0", f"{base}/image"),
        ("cyclades_vmapi", "vmapi", "v1.0", f"{base}/vmapi/v1.0"),
        ("astakos_account", "account", "v1.0", f"{base}/account/v1.0"),
        ("astakos_identity", "identity", "v2.0", f"{base}/identity/v2.0"),
    ]
    return [
        {
            "name": name,
            "type": kind,
            "endpoints_links": [],
            "endpoints": [
                {
                    "versionId": version,
                    "publicURL": url,
                    "internalURL": url,
                    "adminURL": url,
                    "region": "default",
                    "SNF:uiURL": f"{base}/ui",
                }
            ],
        }
        for name, kind, version, url in services
    ]


def _version(baseURL: str, ident: str, status: str, path: str) -> dict[str, Any]:
    return {
        "id": ident,
        "status": status,
        "updated": UPDATED,
        "links": [{"rel": "self", "href": f"{baseURL.rstrip('/')}{path}"}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
    }


class IdentityAPI:
    """
    The identity routes.
    """

    def __init__(
        self, users: UserRepository, projects: ProjectRepository, authenticator: Authenticator, baseURL: str
    ) -> None:
        self._users = users
        self._projects = projects
        self._authenticator = authenticator
        self._baseURL = baseURL

    def register(self, router: Router) -> None:
        tag = "identity"
        router.add("GET", "/identity", self.versions, "identity API versions", auth="none", tag=tag)
        router.add("GET", "/identity/v2.0", self.v2, "identity v2.0 version document", auth="none", tag=tag)
        router.add("GET", "/identity/v3", self.v3, "identity v3 version document (discovery)", auth="none", tag=tag)
        router.add("POST", "/identity/v2.0/tokens", self.tokens, "authenticate: token and catalog", "none", tag)
        router.add("POST", "/account/v1.0/user_catalogs", self.userCatalogs, "uuid <-> display name", tag="account")

    def versions(self, request: IRequest) -> dict[str, Any]:
        return {
            "versions": {
                "values": [
                    _version(self._baseURL, "v3.0", "stable", "/identity/v3"),
                    _version(self._baseURL, "v2.0", "deprecated", "/identity/v2.0"),
                ]
            }
        }

    def v2(self, request: IRequest) -> dict[str, Any]:
        return {"version": _version(self._baseURL, "v2.0", "deprecated", "/identity/v2.0")}

    def v3(self, request: IRequest) -> dict[str, Any]:
        return {"version": _version(self._baseURL, "v3.0", "stable", "/identity/v3")}

    async def tokens(self, request: IRequest) -> dict[str, Any]:
        body = readJSON(request)
        auth = attribute(body, "auth", dict)
        if "token" in auth:
            token = attribute(attribute(auth, "token", dict), "id", str)
            username = None
        elif "passwordCredentials" in auth:
            credentials = attribute(auth, "passwordCredentials", dict)
            username = attribute(credentials, "username", str)
            token = attribute(credentials, "password", str)
        else:
            raise BadRequest("Malformed request. Missing attribute 'token' or 'passwordCredentials'.")
        user = await self._authenticator.userForToken(token)
        if user is None or (username is not None and username not in (user.uuid, user.email)):
            raise Unauthorized("Invalid token or credentials")
        tenant = auth.get("tenantId") or auth.get("tenantName")
        projects = await self._projects.projectsOf(user.id)
        projectIds = [user.uuid] + [p.uuid for p in projects if p.uuid != user.uuid]
        if tenant is not None and tenant not in projectIds:
            raise Unauthorized(f"Not a member of project {tenant}")
        return self._access(user, token, tenant or user.uuid, projectIds)

    def _access(self, user: User, token: str, tenant: str, projectIds: list[str]) -> dict[str, Any]:
        expires = self._authenticator.now() + REPORTED_TOKEN_LIFETIME
        roles = [{"id": index + 1, "name": role} for index, role in enumerate(user.roles)]
        return {
            "access": {
                "token": {
                    "id": token,
                    "expires": isoformat(expires),
                    "tenant": {"id": tenant, "name": user.name or user.email},
                },
                "serviceCatalog": serviceCatalog(self._baseURL),
                "user": {
                    "id": user.uuid,
                    "name": user.name or user.email,
                    "username": user.email,
                    "roles": roles,
                    "roles_links": [],
                    "projects": projectIds,
                },
            }
        }

    async def userCatalogs(self, request: IRequest, user: User) -> dict[str, Any]:
        body = readJSON(request)
        uuids = attribute(body, "uuids", list, required=False, default=[])
        names = attribute(body, "displaynames", list, required=False, default=[])
        if not all(isinstance(v, str) for v in [*uuids, *names]):
            raise BadRequest("Malformed request. Invalid 'uuids' or 'displaynames' field")
        uuidCatalog: dict[str, str] = {}
        for ident in uuids:
            found = await self._users.byUUID(ident)
            if found is not None:
                uuidCatalog[ident] = found.email
        nameCatalog: dict[str, str] = {}
        for name in names:
            found = await self._users.byEmail(name)
            if found is not None:
                nameCatalog[name] = found.uuid
        return {"uuid_catalog": uuidCatalog, "displayname_catalog": nameCatalog}
