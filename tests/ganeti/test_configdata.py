"""
Tests for L{synnefo_twisted.ganeti.configdata} against a real Ganeti 3.0.2 config.data.
"""

import os

from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from synnefo_twisted.ganeti.configdata import ConfigDataError, ConfigDataReader, instanceDetails
from tests.ganeti.samples import sampleBytes, sampleJSON


class ConfigDataTests(SynchronousTestCase):
    def test_instanceDetails(self) -> None:
        """
        An instance's NICs (with network name, mode, link and firewall from tags), disks and hvparams are read.
        """
        details = instanceDetails(sampleJSON("config.data.json"), "snf-900")
        assert details is not None
        (nic,) = details.nics
        self.assertEqual(
            nic,
            {
                "name": "snf-nic-5",
                "network": "snf-net-900",
                "ip": "10.99.0.2",
                "mac": "aa:00:00:a1:88:7e",
                "mode": "bridged",
                "link": "gnt-br0",
                "uuid": "736184dc-5031-41fe-8163-35203b74020f",
                "firewall": "protected",
            },
        )
        self.assertEqual(
            details.disks, ({"name": "snf-vol-1", "size": 64, "uuid": "8e16000b-b8f0-414e-ab3b-9a3339444d7d"},)
        )
        self.assertEqual(set(details.hvparams), {"boot_order", "cdrom_image_path"})

    def test_unknownInstance(self) -> None:
        """
        An instance absent from the configuration gives None.
        """
        self.assertIsNone(instanceDetails(sampleJSON("config.data.json"), "snf-1"))

    def test_reader(self) -> None:
        """
        The reader gives the cluster and master names and re-reads the file only after it changes.
        """
        path = FilePath(self.mktemp())
        path.setContent(sampleBytes("config.data.json"))
        reader = ConfigDataReader(path)
        self.assertEqual(reader.clusterName(), "cluster.ganeti.lab")
        self.assertEqual(reader.masterNode(), "node1.ganeti.lab")
        self.assertIsNotNone(reader.instanceDetails("snf-900"))
        path.setContent(b'{"cluster": {"cluster_name": "other"}, "instances": {}}')
        os.utime(path.path, ns=(1, 1))
        self.assertEqual(reader.clusterName(), "other")
        self.assertIsNone(reader.instanceDetails("snf-900"))

    def test_readerErrors(self) -> None:
        """
        A missing or malformed file raises ConfigDataError naming it.
        """
        path = FilePath(self.mktemp())
        reader = ConfigDataReader(path)
        self.assertRaises(ConfigDataError, reader.clusterName)
        path.setContent(b"{not json")
        e = self.assertRaises(ConfigDataError, reader.load)
        self.assertIn(path.path, str(e))
        path.setContent(b"[]")
        self.assertRaises(ConfigDataError, reader.load)
