# -*- test-case-name: tests.logic.test_serverviews -*-
"""
The JSON shapes of servers in the compute API (spec §1.3, C{vm_to_dict}),
as pure functions over models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs

from synnefo_twisted.db.models import Diagnostic, IPAddress, Port, Server
from synnefo_twisted.logic.servers import progress, serverStatus, taskState


def isoformat(when: datetime) -> str:
    """
    Synnefo's date format: the UTC time with C{+00:00} (microseconds kept
    when present). Naive datetimes are taken as UTC.
    """
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when.isoformat() + "+00:00"


@attrs.frozen
class ServerLinks:
    """
    Where the API lives: C{compute} is e.g. C{https://h/compute/v2.0},
    C{image} e.g. C{https://h/image/v1.0}.
    """

    compute: str
    image: str

    def server(self, serverId: int) -> list[dict[str, str]]:
        href = f"{self.compute}/servers/{serverId}"
        return [{"rel": "self", "href": href}, {"rel": "bookmark", "href": href}]

    def flavor(self, flavorId: int) -> list[dict[str, str]]:
        href = f"{self.compute}/flavors/{flavorId}"
        return [{"rel": "self", "href": href}, {"rel": "bookmark", "href": href}]

    def imageLinks(self, imageId: str) -> list[dict[str, str]]:
        href = f"{self.compute}/images/{imageId}"
        return [
            {"rel": "self", "href": href},
            {"rel": "bookmark", "href": href},
            {"rel": "alternate", "href": f"{self.image}/images/{imageId}"},
        ]


@attrs.frozen
class ServerExtras:
    """
    What a detailed server shows besides its row.

    @ivar ports: the server's ports, each with its live IP addresses.
    @ivar diagnostic: the latest diagnostic, if any.
    @ivar portForwarding: C{SNF:port_forwarding} (filled by the caller
        from the deployment's settings when the server has a public IPv4).
    """

    metadata: Mapping[str, str] = attrs.field(factory=dict)
    tags: Sequence[str] = ()
    ports: Sequence[tuple[Port, Sequence[IPAddress]]] = ()
    volumeIds: Sequence[int] = ()
    diagnostic: Diagnostic | None = None
    fqdn: str | None = None
    portForwarding: Mapping[str, Any] = attrs.field(factory=dict)


def serverSummary(server: Server, links: ServerLinks) -> dict[str, Any]:
    """
    An entry of C{GET /servers}: id, name and links.
    """
    return {"id": server.id, "name": server.name, "links": links.server(server.id)}


def _ipType(ip: IPAddress) -> str:
    return "floating" if ip.floating_ip else "fixed"


def attachments(ports: Sequence[tuple[Port, Sequence[IPAddress]]]) -> list[dict[str, Any]]:
    """
    The C{attachments} of a server: its ACTIVE ports by id.
    """
    out = []
    for port, ips in sorted(ports, key=lambda p: p[0].id):
        if port.state != "ACTIVE":
            continue
        v4 = next((ip for ip in ips if ip.ipversion == 4), None)
        v6 = next((ip for ip in ips if ip.ipversion == 6), None)
        entry: dict[str, Any] = {
            "id": port.id,
            "network_id": str(port.network_id),
            "mac_address": port.mac or "",
            "ipv4": v4.address if v4 else "",
            "ipv6": v6.address if v6 else "",
            "OS-EXT-IPS:type": _ipType(v4) if v4 else "fixed",
        }
        if port.firewall_profile:
            entry["firewallProfile"] = port.firewall_profile
        out.append(entry)
    return out


def addresses(ports: Sequence[tuple[Port, Sequence[IPAddress]]]) -> dict[str, list[dict[str, Any]]]:
    """
    The C{addresses} of a server: per network id, the addresses of its ACTIVE ports.
    """
    out: dict[str, list[dict[str, Any]]] = {}
    for port, ips in sorted(ports, key=lambda p: p[0].id):
        if port.state != "ACTIVE":
            continue
        entries = out.setdefault(str(port.network_id), [])
        for ip in sorted(ips, key=lambda i: (i.ipversion, i.id)):
            entries.append({"version": ip.ipversion, "addr": ip.address, "OS-EXT-IPS:type": _ipType(ip)})
    return out


def diagnosticView(diagnostic: Diagnostic) -> dict[str, Any]:
    return {
        "source": diagnostic.source,
        "created": isoformat(diagnostic.created),
        "message": diagnostic.message,
        "details": diagnostic.details,
        "level": diagnostic.level,
        "source_date": isoformat(diagnostic.source_date) if diagnostic.source_date else None,
    }


def serverDetail(server: Server, links: ServerLinks, extras: ServerExtras | None = None) -> dict[str, Any]:
    """
    The detailed server object (C{GET /servers/<id>}, C{/servers/detail}).
    """
    extras = extras or ServerExtras()
    return {
        "id": server.id,
        "name": server.name,
        "links": links.server(server.id),
        "user_id": server.userid,
        "tenant_id": server.project,
        "shared_to_project": server.shared_to_project,
        "status": serverStatus(server),
        "SNF:task_state": taskState(server.task),
        "progress": progress(server),
        "hostId": "",
        "updated": isoformat(server.updated),
        "created": isoformat(server.created),
        "flavor": {"id": server.flavor_id, "links": links.flavor(server.flavor_id)},
        "image": {"id": server.image_id, "links": links.imageLinks(server.image_id)},
        "suspended": server.suspended,
        "metadata": dict(extras.metadata),
        "tags": list(extras.tags),
        "attachments": attachments(extras.ports),
        "addresses": addresses(extras.ports),
        "volumes": list(extras.volumeIds),
        "diagnostics": [diagnosticView(extras.diagnostic)] if extras.diagnostic else [],
        "security_groups": [{"name": "default"}],
        "key_name": server.key_names[0] if server.key_names else None,
        "SNF:key_names": list(server.key_names),
        "config_drive": "",
        "accessIPv4": "",
        "accessIPv6": "",
        "SNF:fqdn": extras.fqdn,
        "SNF:port_forwarding": dict(extras.portForwarding),
        "deleted": server.deleted,
        "SNF:rescue": server.rescue,
    }


def createdServer(
    server: Server, links: ServerLinks, adminPass: str, extras: ServerExtras | None = None
) -> dict[str, Any]:
    """
    The 202 answer of C{POST /servers}: the detail with status BUILD and the admin password.
    """
    view = serverDetail(server, links, extras)
    view["status"] = "BUILD"
    view["adminPass"] = adminPass
    return view
