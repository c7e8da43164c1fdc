# -*- test-case-name: tests.logic.test_servernets -*-
"""
The networks a new server gets from the deployment's settings (spec §1.4,
"Networks"): Synnefo's C{CYCLADES_DEFAULT_SERVER_NETWORKS} (used when the
request names no networks) and C{CYCLADES_FORCED_SERVER_NETWORKS} (always
added), here the C{[api]} settings C{default_server_networks} and
C{forced_server_networks}.

Each setting item is a group of alternatives written as members joined by
C{|}: the first member that can be used is taken. A member is a network
id or one of the special values:
  - C{SNF:ANY_PUBLIC_IPV4}: a public, non-deleted, non-drained network
    with an IPv4 subnet that has a free address (lowest id first);
  - C{SNF:ANY_PUBLIC_IPV6}: a public, non-deleted, non-drained network
    with an IPv6 subnet and no IPv4 subnet (as Synnefo's
    C{create_public_ipv6_port}, so that it does not take a public IPv4);
  - C{SNF:ANY_PUBLIC}: C{SNF:ANY_PUBLIC_IPV4} if possible, else
    C{SNF:ANY_PUBLIC_IPV6}.

Everything here is pure: parsing and checking the settings, and choosing
among networks already read (and, for IPv4, their locked pools) by the
create transaction of L{synnefo_twisted.logic.serverops}.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import attrs

from synnefo_twisted.db import models
from synnefo_twisted.logic import pools

ANY_PUBLIC_IPV4 = "SNF:ANY_PUBLIC_IPV4"
ANY_PUBLIC_IPV6 = "SNF:ANY_PUBLIC_IPV6"
ANY_PUBLIC = "SNF:ANY_PUBLIC"
SPECIAL = (ANY_PUBLIC_IPV4, ANY_PUBLIC_IPV6, ANY_PUBLIC)

Member = int | str
"""
A network id, or one of L{SPECIAL}.
"""


@attrs.frozen
class NetworkChoice:
    """
    One item of C{default_server_networks} / C{forced_server_networks}: the
    first usable of C{members}. C{text} is the item as configured.
    """

    members: tuple[Member, ...]
    text: str


def parseNetworkChoice(text: str) -> NetworkChoice:
    """
    Parse one setting item (C{"5"}, C{"SNF:ANY_PUBLIC"}, C{"5|SNF:ANY_PUBLIC_IPV4"}).

    @raise ValueError: an empty member, or one that is neither a network
        id nor a special value.
    """
    members: list[Member] = []
    for raw in text.split("|"):
        member = raw.strip()
        if member in SPECIAL:
            members.append(member)
        elif member.isascii() and member.isdigit():
            members.append(int(member))
        else:
            raise ValueError(
                f"{text!r}: {member!r} is neither a network id nor one of {', '.join(SPECIAL)}"
                if member
                else f"{text!r} has an empty member"
            )
    return NetworkChoice(tuple(members), text)


def parseNetworkChoices(items: Iterable[str]) -> tuple[NetworkChoice, ...]:
    """
    Parse a whole setting; see L{parseNetworkChoice}.
    """
    return tuple(parseNetworkChoice(item) for item in items)


def checkNetworkChoices(items: list[str]) -> str | None:
    """
    The configuration check of the two settings: an error sentence naming
    the first bad item, or None.
    """
    try:
        parseNetworkChoices(items)
    except ValueError as e:
        return f"item {e}"
    return None


# -- choosing ---------------------------------------------------------------------------


def unusableReason(network: models.Network | None, networkId: int) -> str | None:
    """
    Why a network named by id in a setting cannot take a new port on its
    own account (None: it can, pools aside): missing or deleted (an
    operator misconfiguration, see L{isMisconfiguration}) or drained.
    """
    if network is None or network.deleted:
        return f"network {networkId} does not exist"
    if network.drained:
        return f"network {networkId} is drained"
    return None


def isMisconfiguration(reason: str) -> bool:
    """
    Whether a reason of L{unusableReason} is the operator's doing (the
    setting names a network that does not exist) rather than a lack of
    resources.
    """
    return reason.endswith("does not exist")


def hasFreeAddress(ipPools: Sequence[models.IPPool]) -> bool:
    """
    Whether one of a network's IPv4 pools has a free address.
    """
    return any(pools.Bitmap.load(p.size, p.available, p.reserved).first() is not None for p in ipPools)


def publicCandidates(
    special: str, networks: Iterable[models.Network], versions: Mapping[int, frozenset[int]]
) -> list[tuple[models.Network, int]]:
    """
    The networks C{special} may pick, best first, each with the IP version
    it is picked for: public, non-deleted, non-drained networks by id, with
    an IPv4 subnet for C{SNF:ANY_PUBLIC_IPV4}, an IPv6 and no IPv4 subnet
    for C{SNF:ANY_PUBLIC_IPV6}, and the IPv4 ones then the IPv6 ones for
    C{SNF:ANY_PUBLIC}. Whether an IPv4 network has a free address is
    checked by the caller on its locked pools (L{hasFreeAddress}).

    @param versions: network id → IP versions of its live subnets.
    """
    live = sorted((n for n in networks if n.public and not n.deleted and not n.drained), key=lambda n: n.id)
    ipv4 = [(n, 4) for n in live if 4 in versions.get(n.id, frozenset())]
    ipv6 = [(n, 6) for n in live if versions.get(n.id, frozenset()) == frozenset({6})]
    if special == ANY_PUBLIC_IPV4:
        return ipv4
    if special == ANY_PUBLIC_IPV6:
        return ipv6
    if special == ANY_PUBLIC:
        return ipv4 + ipv6
    raise ValueError(f"not a special network value: {special!r}")


def noPublicReason(special: str) -> str:
    """
    The reason recorded when C{special} found no network.
    """
    return {
        ANY_PUBLIC_IPV4: "no public IPv4 network has a free address",
        ANY_PUBLIC_IPV6: "no public IPv6-only network is available",
        ANY_PUBLIC: "no public IPv4 network has a free address and no public IPv6-only network is available",
    }[special]
