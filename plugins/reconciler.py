"""
The C{reconciler} plugin (role C{logic}): a periodic, staggered comparison
of the database with every backend's Ganeti, fixing drift through the
dispatcher's state machine (spec §3).

Section C{[reconciler]}:
  - C{period}: seconds in which every server is visited once; the batches
    are spread evenly over it;
  - C{batch_size}: servers per batch;
  - C{initial_delay}: seconds from start to the first pass;
  - C{fix}: apply fixes (false: report in the log only);
  - C{fix_orphans}: also delete instances Ganeti has but the database
    does not (only with C{fix});
  - C{grace}: seconds during which a recently changed server or instance
    is not judged (a job or message about it may be in flight);
  - C{networks}: reconcile networks too (fixed when C{fix}).
"""

from __future__ import annotations

from datetime import timedelta

import attrs
from twisted.application.service import IService
from twisted.plugin import IPlugin
from zope.interface import implementer

from synnefo_twisted.config import Setting, checkNonNegative, checkPositive
from synnefo_twisted.context import NodeContext
from synnefo_twisted.interfaces import ISynnefoPlugin

SETTINGS: tuple[Setting, ...] = (
    Setting("period", "float", 1800.0, "seconds in which every server is visited once", check=checkPositive),
    Setting("batch_size", "int", 500, "servers per batch", check=checkPositive),
    Setting("initial_delay", "float", 60.0, "seconds before the first pass", check=checkNonNegative),
    Setting("fix", "bool", True, "fix what is found (false: report only)"),
    Setting("fix_orphans", "bool", False, "delete Ganeti instances unknown to the database (with fix)"),
    Setting("grace", "float", 60.0, "seconds a recently changed server is left alone", check=checkNonNegative),
    Setting("networks", "bool", True, "reconcile networks too"),
)


@implementer(IPlugin, ISynnefoPlugin)
@attrs.frozen
class ReconcilerPlugin:
    name: str = "reconciler"
    roles: frozenset[str] = frozenset({"logic"})
    description: str = "periodic staggered reconciliation of the database with Ganeti"
    requires: frozenset[str] = frozenset({"database", "ganeti"})
    startOrder: int = 45
    section: str | None = "reconciler"
    settings: tuple[Setting, ...] = SETTINGS

    def makeService(self, node: object) -> IService:
        assert isinstance(node, NodeContext)
        from synnefo_twisted.ganeti import naming
        from synnefo_twisted.logic.reconcile import Thresholds
        from synnefo_twisted.reconciler.service import ReconcilerService
        from synnefo_twisted.reconciler.shell import FixOptions

        s = node.settings
        fix = FixOptions.all() if s["fix"] else FixOptions()
        if not s["fix_orphans"]:
            fix = attrs.evolve(fix, orphans=False)
        return ReconcilerService(
            node.reactor,
            node.database,
            node.backends,
            period=float(s["period"]),
            batchSize=int(s["batch_size"]),
            initialDelay=float(s["initial_delay"]),
            fix=fix,
            fixNetworks=bool(s["fix"]),
            networks=bool(s["networks"]),
            thresholds=Thresholds(grace=timedelta(seconds=float(s["grace"]))),
            prefix=getattr(node.backends, "prefix", naming.DEFAULT_PREFIX),
            metrics=node.metrics,
        )


reconciler = ReconcilerPlugin()
