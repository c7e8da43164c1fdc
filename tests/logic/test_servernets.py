"""
Tests for L{synnefo_twisted.logic.servernets}: parsing and checking the
default/forced server network settings, and choosing public networks.
"""

from __future__ import annotations

from datetime import UTC, datetime

from twisted.trial.unittest import SynchronousTestCase

from synnefo_twisted.db import models
from synnefo_twisted.logic import pools
from synnefo_twisted.logic.servernets import (
    ANY_PUBLIC,
    ANY_PUBLIC_IPV4,
    ANY_PUBLIC_IPV6,
    NetworkChoice,
    checkNetworkChoices,
    hasFreeAddress,
    isMisconfiguration,
    noPublicReason,
    parseNetworkChoice,
    parseNetworkChoices,
    publicCandidates,
    unusableReason,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def network(networkId: int, *, public: bool = True, drained: bool = False, deleted: bool = False) -> models.Network:
    return models.Network(
        id=networkId,
        name=f"n{networkId}",
        userid=None,
        project=None,
        shared_to_project=False,
        flavor="IP_LESS_ROUTED",
        mode="routed",
        link=None,
        mac_prefix=None,
        public=public,
        external_router=False,
        floating_ip_pool=False,
        drained=drained,
        state="ACTIVE",
        action=None,
        tags=(),
        deleted=deleted,
        serial_id=None,
        created=NOW,
        updated=NOW,
    )


def ipPool(size: int, taken: int) -> models.IPPool:
    bitmap = pools.Bitmap.new(size)
    for index in range(taken):
        bitmap.take(index)
    return models.IPPool(1, 1, "10.0.0.0", size, 0, *bitmap.dump())


class ParseTests(SynchronousTestCase):
    def test_members(self) -> None:
        """
        Items are network ids, special values, or groups of those joined by |, spaces around members ignored.
        """
        self.assertEqual(parseNetworkChoice("5"), NetworkChoice((5,), "5"))
        self.assertEqual(parseNetworkChoice(ANY_PUBLIC), NetworkChoice((ANY_PUBLIC,), ANY_PUBLIC))
        self.assertEqual(
            parseNetworkChoice("5 | SNF:ANY_PUBLIC_IPV4|SNF:ANY_PUBLIC_IPV6").members,
            (5, ANY_PUBLIC_IPV4, ANY_PUBLIC_IPV6),
        )
        self.assertEqual(parseNetworkChoices(["1", "2|3"]), (NetworkChoice((1,), "1"), NetworkChoice((2, 3), "2|3")))

    def test_badItems(self) -> None:
        """
        An empty member, a name that is not special (case matters) or a negative id is refused, naming the item.
        """
        for bad in ("", "5|", "public", "snf:any_public", "SNF:ANY", "-1", "5|x"):
            self.assertRaises(ValueError, parseNetworkChoice, bad)
            message = checkNetworkChoices(["1", bad])
            assert message is not None
            self.assertIn(repr(bad), message)
        self.assertIsNone(checkNetworkChoices([]))
        self.assertIsNone(checkNetworkChoices(["1", "SNF:ANY_PUBLIC|2"]))


class ChooseTests(SynchronousTestCase):
    def test_unusable(self) -> None:
        """
        Missing and deleted networks are misconfigurations; drained ones are unusable but not misconfigured.
        """
        for missing in (None, network(3, deleted=True)):
            reason = unusableReason(missing, 3)
            assert reason is not None
            self.assertTrue(isMisconfiguration(reason))
        drained = unusableReason(network(3, drained=True), 3)
        assert drained is not None
        self.assertFalse(isMisconfiguration(drained))
        self.assertIsNone(unusableReason(network(3, public=False), 3))

    def test_hasFreeAddress(self) -> None:
        """
        A network has a free address when one of its pools does.
        """
        self.assertFalse(hasFreeAddress([]))
        self.assertFalse(hasFreeAddress([ipPool(4, 4)]))
        self.assertTrue(hasFreeAddress([ipPool(4, 4), ipPool(4, 3)]))

    def test_publicCandidates(self) -> None:
        """
        Only public, live, undrained networks, by id: IPv4 ones for IPV4, IPv6-only ones for IPV6, both in that
        order for ANY_PUBLIC.
        """
        nets = [
            network(7),
            network(2),
            network(3, public=False),
            network(4, drained=True),
            network(5),
            network(6),
            network(8),
        ]
        versions = {
            7: frozenset({4}),
            2: frozenset({4, 6}),
            3: frozenset({4}),
            4: frozenset({4}),
            5: frozenset({6}),
            6: frozenset(),
        }
        ids = {
            s: [(n.id, v) for n, v in publicCandidates(s, nets, versions)]
            for s in (ANY_PUBLIC_IPV4, ANY_PUBLIC_IPV6, ANY_PUBLIC)
        }
        self.assertEqual(ids[ANY_PUBLIC_IPV4], [(2, 4), (7, 4)])
        self.assertEqual(ids[ANY_PUBLIC_IPV6], [(5, 6)])
        self.assertEqual(ids[ANY_PUBLIC], [(2, 4), (7, 4), (5, 6)])
        self.assertRaises(ValueError, publicCandidates, "SNF:OTHER", nets, versions)
        self.assertIn("IPv4", noPublicReason(ANY_PUBLIC_IPV4))
