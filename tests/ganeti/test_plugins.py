"""
Tests for the C{watcher} and C{ganeti-sim} plugins (plugins/watcher.py,
plugins/ganeti_sim.py).
"""

from pathlib import Path

from twisted.internet.testing import MemoryReactorClock
from twisted.plugin import IPlugin, getPlugins
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

import plugins
from plugins.ganeti_sim import ganeti_sim, parsePairs
from plugins.watcher import watcher
from synnefo_twisted.bus.memory import MemoryBus
from synnefo_twisted.config import ConfigError, loadConfig
from synnefo_twisted.context import NodeContext
from synnefo_twisted.ganeti.details import AutoDetails, ConfigDataDetails, RapiDetails
from synnefo_twisted.ganeti.sim.service import SimulatedClusterService
from synnefo_twisted.ganeti.watcher import JobQueueWatcher
from synnefo_twisted.interfaces import ISynnefoPlugin
from synnefo_twisted.metrics import MetricsRegistry


class PluginTests(SynchronousTestCase):
    def context(self, text: str, plugin: object, section: str, plugins_: frozenset[str] = frozenset()) -> NodeContext:
        path = self.mktemp()
        Path(path).write_text(text)
        cfg = loadConfig(path, {section: plugin.settings}, environ={})  # type: ignore[attr-defined]
        reactor = MemoryReactorClock()
        return NodeContext(
            reactor=reactor,
            settings=cfg.section(section),
            metrics=MetricsRegistry(),
            stateDir=Path(self.mktemp()),
            plugins=plugins_,
            bus=MemoryBus(reactor),
        )

    def test_interfaces(self) -> None:
        """
        Both plugin objects provide IPlugin and ISynnefoPlugin, with the agreed roles and start order, and are found by getPlugins.
        """
        for plugin in (watcher, ganeti_sim):
            self.assertTrue(verifyObject(ISynnefoPlugin, plugin))
            self.assertTrue(verifyObject(IPlugin, plugin))
        found = {p.name for p in getPlugins(ISynnefoPlugin, plugins)}
        self.assertTrue({"watcher", "ganeti-sim"} <= found)
        self.assertEqual(
            (watcher.roles, watcher.startOrder, watcher.requires),
            (frozenset({"ganeti-master"}), 20, frozenset({"bus"})),
        )
        self.assertEqual((ganeti_sim.startOrder, ganeti_sim.section), (10, "ganeti-sim"))

    def test_watcherDefaults(self) -> None:
        """
        By default the watcher watches /var/lib/ganeti/queue, with details chosen automatically and the state under the state dir.
        """
        node = self.context("", watcher, "watcher")
        service = watcher.makeService(node)
        assert isinstance(service, JobQueueWatcher)
        self.assertEqual(service.queueDir.path, "/var/lib/ganeti/queue")
        self.assertEqual(service.dataDir.path, "/var/lib/ganeti")
        self.assertIsInstance(service.detailsSource, AutoDetails)
        self.assertEqual(
            service.state.path.path if service.state.path else None,
            str(Path(node.stateDir).absolute() / "watcher" / "published.json"),
        )
        self.assertTrue(service.nodeName)

    def test_watcherWithSimulator(self) -> None:
        """
        On a node running ganeti-sim, the default queue is the simulated cluster's.
        """
        node = self.context("", watcher, "watcher", frozenset({"ganeti-sim", "watcher"}))
        service = watcher.makeService(node)
        assert isinstance(service, JobQueueWatcher)
        self.assertEqual(service.queueDir.path, str(Path(node.stateDir).absolute() / "ganeti-sim" / "queue"))
        self.assertIsNone(service.nodeName)

    def test_watcherSettings(self) -> None:
        """
        Explicit settings select config.data or RAPI details, disable the master check and set the cluster name.
        """
        text = '[watcher]\nqueue_dir = "/q/queue"\ndetails = "config"\nmaster_check = false\ncluster_name = "c1"\n'
        service = watcher.makeService(self.context(text, watcher, "watcher"))
        assert isinstance(service, JobQueueWatcher)
        self.assertIsInstance(service.detailsSource, ConfigDataDetails)
        self.assertIsNone(service.nodeName)
        self.assertEqual(service.clusterNameOverride, "c1")
        text = '[watcher]\ndetails = "rapi"\nrapi_url = "https://127.0.0.1:5080"\nrapi_user = "u"\nrapi_password = "p"\nrapi_verify = false\n'
        service = watcher.makeService(self.context(text, watcher, "watcher"))
        assert isinstance(service, JobQueueWatcher)
        self.assertIsInstance(service.detailsSource, RapiDetails)
        self.assertRaises(
            ValueError, watcher.makeService, self.context('[watcher]\ndetails = "rapi"\n', watcher, "watcher")
        )

    def test_watcherBadSettings(self) -> None:
        """
        An unknown details source is a configuration error.
        """
        self.assertRaises(ConfigError, self.context, '[watcher]\ndetails = "magic"\n', watcher, "watcher")

    def test_simulator(self) -> None:
        """
        The simulator plugin builds a SimulatedClusterService with its durations, error rates and users.
        """
        text = '[ganeti-sim]\nrapi_listen = "tcp:0:interface=127.0.0.1"\nerror_rates = ["OP_INSTANCE_CREATE=0.5"]\nread_user = "r"\nread_password = "rp"\n'
        node = self.context(text, ganeti_sim, "ganeti-sim")
        wrapper = ganeti_sim.makeService(node)
        service = wrapper.simulated  # type: ignore[attr-defined]
        assert isinstance(service, SimulatedClusterService)
        self.assertEqual(wrapper.healthName, "ganeti-sim")  # type: ignore[attr-defined]
        self.assertEqual(service.queue.errorRates, {"OP_INSTANCE_CREATE": 0.5})
        self.assertEqual(service.queue.durations, {"OP_INSTANCE_CREATE": 2.0})
        self.assertEqual(service.rapi.users, {"synnefo": ("synnefo-sim", "write"), "r": ("rp", "read")})
        self.assertEqual(service.queueDir.path, str(Path(node.stateDir).absolute() / "ganeti-sim" / "queue"))
        self.assertEqual(parsePairs(["OP_A=1", "OP_B=0.25"]), {"OP_A": 1.0, "OP_B": 0.25})

    def test_simulatorBadSettings(self) -> None:
        """
        Malformed per-op pairs and endpoints are configuration errors.
        """
        self.assertRaises(
            ConfigError, self.context, '[ganeti-sim]\nerror_rates = ["create=1"]\n', ganeti_sim, "ganeti-sim"
        )
        self.assertRaises(
            ConfigError, self.context, '[ganeti-sim]\nop_durations = ["OP_X=fast"]\n', ganeti_sim, "ganeti-sim"
        )
        self.assertRaises(ConfigError, self.context, '[ganeti-sim]\nrapi_listen = "5081"\n', ganeti_sim, "ganeti-sim")
