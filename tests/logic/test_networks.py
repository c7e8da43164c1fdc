"""
The pure network logic: flavors, request validation with errors naming the
field, EUI-64 addresses and network state from backend states.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from synnefo_twisted.logic.networks import (
    POOL,
    BadRequestError,
    ConflictError,
    ForbiddenError,
    NetworkDefaults,
    NetworkRequestError,
    OverLimitError,
    backendNetworkOperstate,
    eui64Address,
    flavorParameters,
    networkState,
    parseFloatingIP,
    parseNetwork,
    parsePort,
    parseSubnet,
)

DEFAULTS = NetworkDefaults()


class FlavorTests(SynchronousTestCase):
    """
    L{flavorParameters} follows the table of spec §1.9.
    """

    def test_table(self) -> None:
        """
        Each flavor gets its mode, link, MAC prefix and Ganeti tags.
        """
        got = {f: flavorParameters(f, DEFAULTS) for f in ("CUSTOM", "IP_LESS_ROUTED", "MAC_FILTERED", "PHYSICAL_VLAN")}
        self.assertEqual(
            {f: (p.mode, p.link, p.macPrefix, p.tags) for f, p in got.items()},
            {
                "CUSTOM": ("bridged", "br0", "aa:00:0", ()),
                "IP_LESS_ROUTED": ("routed", None, "aa:00:0", ("ip-less-routed",)),
                "MAC_FILTERED": ("bridged", "prv0", POOL, ("private-filtered",)),
                "PHYSICAL_VLAN": ("bridged", POOL, "aa:00:0", ("physical-vlan",)),
            },
        )

    def test_unknown(self) -> None:
        """
        An unknown flavor is a bad request naming network.type.
        """
        e = self.assertRaises(BadRequestError, flavorParameters, "VXLAN", DEFAULTS)
        self.assertEqual((e.field, e.code), ("network.type", 400))


class NetworkBodyTests(SynchronousTestCase):
    """
    L{parseNetwork}.
    """

    def test_valid(self) -> None:
        """
        A MAC_FILTERED network with a name parses into a request.
        """
        r = parseNetwork({"network": {"type": "MAC_FILTERED", "name": "n", "shared_to_project": True}}, DEFAULTS)
        self.assertEqual((r.flavor, r.name, r.project, r.sharedToProject), ("MAC_FILTERED", "n", None, True))

    def test_errors(self) -> None:
        """
        Each malformed body fails with the field it concerns and its code:
        no envelope, missing or unknown type (400), a type not enabled for
        the API (403), bad name or flag types.
        """
        cases: list[tuple[Any, str, int]] = [
            ([], "network", 400),
            ({"network": "x"}, "network", 400),
            ({"network": {}}, "network.type", 400),
            ({"network": {"type": "NOPE"}}, "network.type", 400),
            ({"network": {"type": "CUSTOM"}}, "network.type", 403),
            ({"network": {"type": "MAC_FILTERED", "name": 3}}, "network.name", 400),
            ({"network": {"type": "MAC_FILTERED", "shared_to_project": "yes"}}, "network.shared_to_project", 400),
            ({"network": {"type": "MAC_FILTERED", "project": 5}}, "network.project", 400),
        ]
        for body, field, code in cases:
            e = self.assertRaises(NetworkRequestError, parseNetwork, body, DEFAULTS)
            self.assertEqual((e.field, e.code), (field, code), body)

    def test_adminMayUseAnyType(self) -> None:
        """
        An admin may create a type that is not enabled for the API.
        """
        self.assertEqual(parseNetwork({"network": {"type": "CUSTOM"}}, DEFAULTS, admin=True).flavor, "CUSTOM")
        self.assertIsInstance(
            self.assertRaises(ForbiddenError, parseNetwork, {"network": {"type": "CUSTOM"}}, DEFAULTS), ForbiddenError
        )


def subnet(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"network_id": "3", "cidr": "10.0.0.0/24"}
    body.update(fields)
    return {"subnet": body}


class SubnetBodyTests(SynchronousTestCase):
    """
    L{parseSubnet}.
    """

    def test_defaults(self) -> None:
        """
        Without gateway and pools, the gateway is network + 1 and the pool
        every host address; DHCP is on.
        """
        r = parseSubnet(subnet(), DEFAULTS)
        self.assertEqual(r.networkId, 3)
        self.assertEqual(r.gateway, ipaddress.IPv4Address("10.0.0.1"))
        self.assertEqual([(str(p.start), str(p.end)) for p in r.allocationPools], [("10.0.0.1", "10.0.0.254")])
        self.assertTrue(r.dhcp)
        self.assertEqual(r.ipversion, 4)

    def test_nullGateway(self) -> None:
        """
        gateway_ip null means no gateway.
        """
        self.assertIsNone(parseSubnet(subnet(gateway_ip=None), DEFAULTS).gateway)

    def test_explicitPoolsSorted(self) -> None:
        """
        Explicit pools, given in any order, come back sorted; DNS servers and
        host routes are normalised.
        """
        r = parseSubnet(
            subnet(
                gateway_ip="10.0.0.254",
                allocation_pools=[
                    {"start": "10.0.0.100", "end": "10.0.0.110"},
                    {"start": "10.0.0.2", "end": "10.0.0.9"},
                ],
                dns_nameservers=["8.8.8.8"],
                host_routes=[{"destination": "10.1.0.0/16", "nexthop": "10.0.0.254"}],
            ),
            DEFAULTS,
        )
        self.assertEqual([str(p.start) for p in r.allocationPools], ["10.0.0.2", "10.0.0.100"])
        self.assertEqual(r.dnsNameservers, ("8.8.8.8",))
        self.assertEqual(r.hostRoutes, ({"destination": "10.1.0.0/16", "nexthop": "10.0.0.254"},))

    def test_ipv6(self) -> None:
        """
        An IPv6 /64 has no pools and honours enable_slaac.
        """
        r = parseSubnet(subnet(cidr="2001:db8::/64", ip_version=6, enable_slaac=False), DEFAULTS)
        self.assertEqual((r.ipversion, r.allocationPools, r.slaac), (6, (), False))
        self.assertEqual(str(r.gateway), "2001:db8::1")

    def test_errors(self) -> None:
        """
        Every invalid subnet fails naming its field with the right code:
        malformed or mismatched CIDR and gateway (400), sizes out of range
        (413), pools out of bounds, reversed, overlapping or holding the
        gateway (409), IPv6 specifics (400).
        """
        pools = "subnet.allocation_pools"
        cases: list[tuple[Any, str, int]] = [
            ({"subnet": {"cidr": "10.0.0.0/24"}}, "subnet.network_id", 400),
            (subnet(network_id="x"), "subnet.network_id", 400),
            (subnet(cidr=None), "subnet.cidr", 400),
            (subnet(cidr="10.0.0.0/33"), "subnet.cidr", 400),
            (subnet(cidr="10.0.0.1/24"), "subnet.cidr", 400),
            (subnet(cidr=7), "subnet.cidr", 400),
            (subnet(cidr="2001:db8::/64"), "subnet.cidr", 400),
            (subnet(ip_version=5), "subnet.ip_version", 400),
            (subnet(cidr="10.0.0.0/30"), "subnet.cidr", 413),
            (subnet(cidr="10.0.0.0/16"), "subnet.cidr", 413),
            (subnet(cidr="2001:db8::/48", ip_version=6), "subnet.cidr", 400),
            (subnet(gateway_ip="10.0.1.1"), "subnet.gateway_ip", 400),
            (subnet(gateway_ip="10.0.0.255"), "subnet.gateway_ip", 400),
            (subnet(gateway_ip="nope"), "subnet.gateway_ip", 400),
            (subnet(enable_dhcp="yes"), "subnet.enable_dhcp", 400),
            (subnet(enable_slaac=True), "subnet.enable_slaac", 400),
            (subnet(allocation_pools=[]), pools, 400),
            (subnet(allocation_pools=[{"start": "10.0.0.5"}]), f"{pools}[0]", 400),
            (subnet(allocation_pools=[{"start": "10.0.0.x", "end": "10.0.0.9"}]), f"{pools}[0].start", 400),
            (subnet(allocation_pools=[{"start": "10.0.0.0", "end": "10.0.0.9"}]), f"{pools}[0].start", 409),
            (subnet(allocation_pools=[{"start": "10.0.0.5", "end": "10.0.0.255"}]), f"{pools}[0].end", 409),
            (subnet(allocation_pools=[{"start": "10.0.0.9", "end": "10.0.0.5"}]), f"{pools}[0]", 409),
            (subnet(allocation_pools=[{"start": "10.0.0.1", "end": "10.0.0.9"}]), f"{pools}[0]", 409),
            (
                subnet(
                    allocation_pools=[
                        {"start": "10.0.0.2", "end": "10.0.0.9"},
                        {"start": "10.0.0.9", "end": "10.0.0.20"},
                    ]
                ),
                pools,
                409,
            ),
            (
                subnet(cidr="2001:db8::/64", ip_version=6, allocation_pools=[{"start": "a", "end": "b"}]),
                pools,
                400,
            ),
            (subnet(dns_nameservers=["x"]), "subnet.dns_nameservers[0]", 400),
            (subnet(dns_nameservers="8.8.8.8"), "subnet.dns_nameservers", 400),
            (
                subnet(host_routes=[{"destination": "10/8", "nexthop": "1.1.1.1"}]),
                "subnet.host_routes[0].destination",
                400,
            ),
            (subnet(host_routes=[{"destination": "10.0.0.0/8"}]), "subnet.host_routes[0].nexthop", 400),
            (subnet(host_routes={}), "subnet.host_routes", 400),
        ]
        for body, field, code in cases:
            e = self.assertRaises(NetworkRequestError, parseSubnet, body, DEFAULTS)
            self.assertEqual((e.field, e.code), (field, code), body)
        self.assertIsInstance(
            self.assertRaises(OverLimitError, parseSubnet, subnet(cidr="10.0.0.0/30"), DEFAULTS), OverLimitError
        )
        self.assertIsInstance(
            self.assertRaises(
                ConflictError,
                parseSubnet,
                subnet(allocation_pools=[{"start": "10.0.0.1", "end": "10.0.0.9"}]),
                DEFAULTS,
            ),
            ConflictError,
        )

    def test_networkIdGiven(self) -> None:
        """
        With the network id given by the caller, network_id is not needed.
        """
        self.assertEqual(parseSubnet({"subnet": {"cidr": "10.0.0.0/24"}}, DEFAULTS, networkId=9).networkId, 9)


class PortAndFloatingIPBodyTests(SynchronousTestCase):
    """
    L{parsePort} and L{parseFloatingIP}.
    """

    def test_port(self) -> None:
        """
        A port with a device and one fixed IPv4 parses.
        """
        r = parsePort({"port": {"network_id": 4, "device_id": "7", "fixed_ips": [{"ip_address": "10.0.0.5"}]}})
        self.assertEqual((r.networkId, r.deviceId, r.address, r.securityGroups), (4, 7, "10.0.0.5", ()))

    def test_portErrors(self) -> None:
        """
        Missing network, two fixed IPs, an IPv6 fixed IP, a fixed IP with no
        address and bad security groups each fail naming their field.
        """
        cases: list[tuple[Any, str]] = [
            ({"port": {}}, "port.network_id"),
            ({"port": {"network_id": True}}, "port.network_id"),
            ({"port": {"network_id": 1, "device_id": "x"}}, "port.device_id"),
            ({"port": {"network_id": 1, "fixed_ips": {}}}, "port.fixed_ips"),
            (
                {"port": {"network_id": 1, "fixed_ips": [{"ip_address": "10.0.0.1"}, {"ip_address": "10.0.0.2"}]}},
                "port.fixed_ips",
            ),
            ({"port": {"network_id": 1, "fixed_ips": [{"ip_address": "2001:db8::1"}]}}, "port.fixed_ips[0].ip_address"),
            ({"port": {"network_id": 1, "fixed_ips": [{"subnet_id": "1"}]}}, "port.fixed_ips[0].ip_address"),
            ({"port": {"network_id": 1, "security_groups": "x"}}, "port.security_groups"),
        ]
        for body, field in cases:
            e = self.assertRaises(BadRequestError, parsePort, body)
            self.assertEqual(e.field, field, body)

    def test_floatingIP(self) -> None:
        """
        An empty floating IP body is valid; an address needs its network,
        and must be IPv4.
        """
        r = parseFloatingIP({"floatingip": {}})
        self.assertEqual((r.networkId, r.address, r.sharedToProject), (None, None, False))
        r = parseFloatingIP({"floatingip": {"floating_network_id": "2", "floating_ip_address": "192.0.2.9"}})
        self.assertEqual((r.networkId, r.address), (2, "192.0.2.9"))
        for body, field in [
            ({"floatingip": {"floating_ip_address": "192.0.2.9"}}, "floatingip.floating_network_id"),
            ({"floatingip": {"floating_network_id": 2, "floating_ip_address": "x"}}, "floatingip.floating_ip_address"),
            ({"floatingip": {"project": 1}}, "floatingip.project"),
            ({}, "floatingip"),
        ]:
            self.assertEqual(self.assertRaises(BadRequestError, parseFloatingIP, body).field, field)


class EUI64Tests(SynchronousTestCase):
    """
    L{eui64Address}.
    """

    def test_rfc4291(self) -> None:
        """
        The MAC aa:00:00:12:34:56 in 2001:db8::/64 gives the universal/local
        bit flipped and ff:fe inserted.
        """
        self.assertEqual(eui64Address("2001:db8::/64", "aa:00:00:12:34:56"), "2001:db8::a800:ff:fe12:3456")

    def test_invalid(self) -> None:
        """
        A non-/64 network or a malformed MAC raise ValueError.
        """
        self.assertRaises(ValueError, eui64Address, "2001:db8::/48", "aa:00:00:12:34:56")
        self.assertRaises(ValueError, eui64Address, "2001:db8::/64", "aa:00:00:12:34")


class StateTests(SynchronousTestCase):
    """
    L{networkState} and L{backendNetworkOperstate}.
    """

    def test_networkState(self) -> None:
        """
        No backends: ACTIVE (unless being destroyed); all DELETED: DELETED;
        any ACTIVE: ACTIVE; else ERROR if any, else PENDING; a deleted
        network stays DELETED.
        """
        self.assertEqual(networkState("PENDING", False, None, []), "ACTIVE")
        self.assertEqual(networkState("PENDING", False, "DESTROY", []), "PENDING")
        self.assertEqual(networkState("ACTIVE", False, "DESTROY", ["DELETED", "DELETED"]), "DELETED")
        self.assertEqual(networkState("PENDING", False, None, ["PENDING", "ACTIVE", "ERROR"]), "ACTIVE")
        self.assertEqual(networkState("PENDING", False, None, ["PENDING", "ERROR"]), "ERROR")
        self.assertEqual(networkState("ACTIVE", False, None, ["PENDING", "DELETED"]), "PENDING")
        self.assertEqual(networkState("ACTIVE", True, None, ["ACTIVE"]), "DELETED")

    def test_backendOperstate(self) -> None:
        """
        Successful jobs map ADD/CONNECT/DISCONNECT/REMOVE to
        PENDING/ACTIVE/PENDING/DELETED; a failed ADD is ERROR; a failed
        REMOVE is DELETED only when the network is gone; anything else keeps
        the state.
        """
        self.assertEqual(backendNetworkOperstate("OP_NETWORK_ADD", "success", "X"), "PENDING")
        self.assertEqual(backendNetworkOperstate("OP_NETWORK_CONNECT", "success", "PENDING"), "ACTIVE")
        self.assertEqual(backendNetworkOperstate("OP_NETWORK_DISCONNECT", "success", "ACTIVE"), "PENDING")
        self.assertEqual(backendNetworkOperstate("OP_NETWORK_REMOVE", "success", "ACTIVE"), "DELETED")
        self.assertEqual(backendNetworkOperstate("OP_NETWORK_ADD", "canceled", "PENDING"), "ERROR")
        self.assertEqual(backendNetworkOperstate("OP_NETWORK_REMOVE", "error", "ACTIVE"), "ACTIVE")
        self.assertEqual(backendNetworkOperstate("OP_NETWORK_REMOVE", "error", "ACTIVE", networkGone=True), "DELETED")
        self.assertEqual(backendNetworkOperstate("OP_NETWORK_SET_PARAMS", "success", "ACTIVE"), "ACTIVE")
