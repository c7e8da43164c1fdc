"""
Tests for L{synnefo_twisted.ganeti.naming}.
"""

from twisted.trial.unittest import SynchronousTestCase

from synnefo_twisted.ganeti import naming


class NamingTests(SynchronousTestCase):
    def test_names(self) -> None:
        """
        Instances, networks, NICs and volumes get C{snf-<id>}, C{snf-net-<id>}, C{snf-nic-<id>}, C{snf-vol-<id>}.
        """
        self.assertEqual(
            [naming.instanceName(42), naming.networkName(7), naming.nicName(3), naming.volumeName(9)],
            ["snf-42", "snf-net-7", "snf-nic-3", "snf-vol-9"],
        )
        self.assertEqual(naming.instanceName(1, prefix="x-"), "x-1")

    def test_idRoundTrip(self) -> None:
        """
        The id parsers invert the name builders.
        """
        self.assertEqual(naming.idFromInstanceName("snf-42"), 42)
        self.assertEqual(naming.idFromNetworkName("snf-net-7"), 7)
        self.assertEqual(naming.idFromNicName("snf-nic-3"), 3)

    def test_idRejects(self) -> None:
        """
        Foreign prefixes and non-numeric suffixes raise InvalidBackendIdError.
        """
        for bad in ["demo1.ganeti.lab", "snf-", "snf-4x", "snf-net-1", "snf-٣", "other-5"]:
            self.assertRaises(naming.InvalidBackendIdError, naming.idFromInstanceName, bad)

    def test_routingKeys(self) -> None:
        """
        The routing prefix is the name before the first dash, as eventd computes it.
        """
        self.assertEqual(naming.opRoutingKey("snf-42"), "ganeti.snf.event.op")
        self.assertEqual(naming.networkRoutingKey("snf-net-7"), "ganeti.snf.event.network")
        self.assertEqual(naming.progressRoutingKey("snf-42"), "ganeti.snf.event.progress")
        self.assertEqual(naming.netRoutingKey("snf-42"), "ganeti.snf.event.net")
        self.assertEqual(naming.opRoutingKey("demo1"), "ganeti.demo1.event.op")
