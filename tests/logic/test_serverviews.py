"""
Tests for L{synnefo_twisted.logic.serverviews}: the server JSON of spec §1.3.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from synnefo_twisted.db.models import Diagnostic, IPAddress, Port
from synnefo_twisted.logic import serverviews as views
from tests.logic.test_servers import NOW, makeServer

LINKS = views.ServerLinks("https://api/compute/v2.0", "https://api/image/v1.0")


def makePort(**fields: Any) -> Port:
    values: dict[str, Any] = {
        "id": 18,
        "name": "",
        "userid": "u-1",
        "project": "p-1",
        "network_id": 2718,
        "server_id": 42,
        "device_owner": "vm",
        "mac": "aa:01:02:6c:34:ab",
        "idx": 0,
        "firewall_profile": None,
        "state": "ACTIVE",
        "security_groups": (),
        "created": NOW,
        "updated": NOW,
    }
    values.update(fields)
    return Port(**values)


def makeIP(address: str, version: int, **fields: Any) -> IPAddress:
    values: dict[str, Any] = {
        "id": 1,
        "subnet_id": 1,
        "network_id": 2718,
        "port_id": 18,
        "userid": "u-1",
        "project": "p-1",
        "shared_to_project": False,
        "address": address,
        "ipversion": version,
        "floating_ip": False,
        "deleted": False,
        "serial_id": None,
        "created": NOW,
        "updated": NOW,
    }
    values.update(fields)
    return IPAddress(**values)


class ServerViewTests(SynchronousTestCase):
    def test_isoformat(self) -> None:
        """
        Dates are UTC with +00:00, microseconds kept; other zones are converted and naive ones taken as UTC.
        """
        self.assertEqual(
            views.isoformat(datetime(2011, 4, 19, 10, 18, 52, 85737, UTC)), "2011-04-19T10:18:52.085737+00:00"
        )
        plus2 = timezone(timedelta(hours=2))
        self.assertEqual(views.isoformat(datetime(2011, 4, 19, 12, 0, tzinfo=plus2)), "2011-04-19T10:00:00+00:00")
        self.assertEqual(views.isoformat(datetime(2011, 4, 19, 10, 0)), "2011-04-19T10:00:00+00:00")

    def test_summary(self) -> None:
        """
        A list entry has only id, name and links.
        """
        self.assertEqual(
            views.serverSummary(makeServer(), LINKS),
            {
                "id": 42,
                "name": "vm",
                "links": [
                    {"rel": "self", "href": "https://api/compute/v2.0/servers/42"},
                    {"rel": "bookmark", "href": "https://api/compute/v2.0/servers/42"},
                ],
            },
        )

    def test_detail(self) -> None:
        """
        The detail carries the status tables, links, metadata, ACTIVE ports and the latest diagnostic.
        """
        server = makeServer(task="REBOOT", key_names=("k1", "k2"), updated=NOW, created=NOW)
        ports = [
            (makePort(id=19, state="BUILD"), [makeIP("10.0.0.9", 4, id=9)]),
            (
                makePort(firewall_profile="ENABLED"),
                [makeIP("2001:db8::1", 6, id=2), makeIP("1.2.3.4", 4, floating_ip=True)],
            ),
        ]
        diagnostic = Diagnostic(1, 42, "image-info", "DEBUG", "done", None, None, NOW)
        extras = views.ServerExtras(
            metadata={"OS": "debian"}, tags=["t"], ports=ports, volumeIds=[17], diagnostic=diagnostic, fqdn="snf-42.vm"
        )
        view = views.serverDetail(server, LINKS, extras)
        json.dumps(view)
        self.assertEqual((view["status"], view["SNF:task_state"], view["progress"]), ("ACTIVE", "REBOOTING", 100))
        self.assertEqual(
            (view["user_id"], view["tenant_id"], view["created"]), ("u-1", "p-1", "2026-01-01T00:00:00+00:00")
        )
        self.assertEqual(view["flavor"]["id"], 1)
        self.assertEqual(view["image"]["links"][2], {"rel": "alternate", "href": "https://api/image/v1.0/images/img"})
        self.assertEqual(
            view["attachments"],
            [
                {
                    "id": 18,
                    "network_id": "2718",
                    "mac_address": "aa:01:02:6c:34:ab",
                    "ipv4": "1.2.3.4",
                    "ipv6": "2001:db8::1",
                    "OS-EXT-IPS:type": "floating",
                    "firewallProfile": "ENABLED",
                }
            ],
        )
        self.assertEqual(
            view["addresses"],
            {
                "2718": [
                    {"version": 4, "addr": "1.2.3.4", "OS-EXT-IPS:type": "floating"},
                    {"version": 6, "addr": "2001:db8::1", "OS-EXT-IPS:type": "fixed"},
                ]
            },
        )
        self.assertEqual(view["diagnostics"][0]["message"], "done")
        self.assertEqual((view["key_name"], view["SNF:key_names"]), ("k1", ["k1", "k2"]))
        self.assertEqual((view["volumes"], view["SNF:fqdn"], view["metadata"]), ([17], "snf-42.vm", {"OS": "debian"}))
        self.assertEqual(view["security_groups"], [{"name": "default"}])

    def test_bare(self) -> None:
        """
        Without extras the detail has empty collections, no key name and no firewall entry.
        """
        view = views.serverDetail(makeServer(operstate="BUILD", buildpercentage=40), LINKS)
        self.assertEqual((view["status"], view["progress"], view["SNF:task_state"]), ("BUILD", 40, ""))
        self.assertEqual((view["attachments"], view["addresses"], view["diagnostics"]), ([], {}, []))
        self.assertIsNone(view["key_name"])

    def test_created(self) -> None:
        """
        The create answer is the detail forced to BUILD, with the admin password.
        """
        view = views.createdServer(makeServer(operstate="STARTED"), LINKS, "Secret1Pass")
        self.assertEqual((view["status"], view["adminPass"]), ("BUILD", "Secret1Pass"))
