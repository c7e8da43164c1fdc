"""
The C{watcher} plugin (role C{ganeti-master}): snf-ganeti-eventd's
replacement, publishing Ganeti job-queue events to the bus.

Section C{[watcher]}:
  - C{queue_dir}: Ganeti's job queue directory (on a node that also runs the
    C{ganeti-sim} plugin and keeps the default, the simulated cluster's);
  - C{data_dir}: Ganeti's data directory (ssconf files, config.data);
    default: the parent of C{queue_dir};
  - C{node_name}: this node's name as Ganeti knows it (default: the FQDN);
    messages are published only while it is the master;
  - C{master_check}: false publishes whatever node this is;
  - C{cluster_name}: overrides C{ssconf_cluster_name};
  - C{details}: where instance NICs/disks/hvparams come from: C{auto}
    (config.data, else the simulated cluster's RAPI), C{config}, C{rapi},
    C{none};
  - C{rapi_url}, C{rapi_user}, C{rapi_password}, C{rapi_ca_file},
    C{rapi_verify}: the RAPI for C{details = "rapi"};
  - C{state_file}: what was already published (default
    C{<state_dir>/watcher/published.json});
  - C{rescan_interval}: seconds between safety rescans;
  - C{publish_window}: publishes awaiting confirmation at once.
"""

from __future__ import annotations

import socket

import attrs
from twisted.application.service import IService
from twisted.plugin import IPlugin
from twisted.python.filepath import FilePath
from zope.interface import implementer

from synnefo_twisted.config import Setting, checkPositive
from synnefo_twisted.context import NodeContext
from synnefo_twisted.interfaces import ISynnefoPlugin

DEFAULT_QUEUE_DIR = "/var/lib/ganeti/queue"


SETTINGS: tuple[Setting, ...] = (
    Setting("queue_dir", "str", DEFAULT_QUEUE_DIR, "Ganeti job queue directory"),
    Setting("data_dir", "str", "", "Ganeti data directory (default: parent of queue_dir)"),
    Setting("node_name", "str", "", "this node's Ganeti name (default: the FQDN)"),
    Setting("master_check", "bool", True, "publish only while this node is the Ganeti master"),
    Setting("cluster_name", "str", "", "cluster name in messages (default: ssconf_cluster_name)"),
    Setting("details", "str", "auto", "source of instance NICs/disks", choices=("auto", "config", "rapi", "none")),
    Setting("rapi_url", "str", "", "RAPI URL for details = rapi"),
    Setting("rapi_user", "str", "", "RAPI user"),
    Setting("rapi_password", "str", "", "RAPI password", secret=True),
    Setting("rapi_ca_file", "str", "", "PEM CA or certificate to pin for the RAPI"),
    Setting("rapi_verify", "bool", True, "verify the RAPI certificate (false: explicitly disabled)"),
    Setting("state_file", "str", "", "published-state file (default: <state_dir>/watcher/published.json)"),
    Setting("rescan_interval", "float", 60.0, "seconds between safety rescans", check=checkPositive),
    Setting("publish_window", "int", 64, "publishes awaiting confirmation at once", check=checkPositive),
)


@implementer(IPlugin, ISynnefoPlugin)
@attrs.frozen
class WatcherPlugin:
    name: str = "watcher"
    roles: frozenset[str] = frozenset({"ganeti-master"})
    description: str = "Ganeti job-queue watcher: op-status events to the bus (snf-ganeti-eventd)"
    requires: frozenset[str] = frozenset({"bus"})
    startOrder: int = 20
    section: str | None = "watcher"
    settings: tuple[Setting, ...] = SETTINGS

    def makeService(self, node: object) -> IService:
        assert isinstance(node, NodeContext)
        from synnefo_twisted.ganeti import details as sources
        from synnefo_twisted.ganeti.published import PublishedState
        from synnefo_twisted.ganeti.watcher import JobQueueWatcher

        s = node.settings
        queueDir = s["queue_dir"]
        simulated = queueDir == DEFAULT_QUEUE_DIR and "ganeti-sim" in node.plugins
        if simulated:
            from plugins.ganeti_sim import simDataDir

            queueDir = str(simDataDir(node) / "queue")
        queue = FilePath(queueDir)
        data = FilePath(s["data_dir"]) if s["data_dir"] else queue.parent()
        source: sources.DetailsSource
        if s["details"] == "auto":
            source = sources.AutoDetails(node.reactor, data)
        elif s["details"] == "config":
            source = sources.ConfigDataDetails(data.child("config.data"))
        elif s["details"] == "rapi":
            from synnefo_twisted.ganeti.rapi import RapiClient
            from synnefo_twisted.ganeti.tls import RapiTLSPolicy

            if not s["rapi_url"]:
                raise ValueError("[watcher] details = rapi needs rapi_url")
            ca = FilePath(s["rapi_ca_file"]).getContent() if s["rapi_ca_file"] else None
            tls = RapiTLSPolicy(verify=s["rapi_verify"], caPEM=ca)
            client = RapiClient.forURL(node.reactor, s["rapi_url"], s["rapi_user"] or None, s["rapi_password"], tls=tls)
            source = sources.RapiDetails(client)
        else:
            source = sources.NoDetails()
        stateFile = (
            FilePath(s["state_file"])
            if s["state_file"]
            else FilePath(str(node.stateDir / "watcher" / "published.json"))
        )
        # The simulated cluster's master is this very node, whatever its name.
        nodeName = (s["node_name"] or socket.getfqdn()) if s["master_check"] and not simulated else None
        return JobQueueWatcher(
            node.reactor,
            node.bus,
            queue,
            PublishedState(stateFile),
            dataDir=data,
            details=source,
            nodeName=nodeName,
            clusterName=s["cluster_name"] or None,
            metrics=node.metrics,
            window=s["publish_window"],
            rescanInterval=float(s["rescan_interval"]),
        )


watcher = WatcherPlugin()
