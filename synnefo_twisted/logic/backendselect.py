# -*- test-case-name: tests.logic.test_backendselect -*-
"""
Choosing the Ganeti backend of a new server, as Synnefo's default
allocator does: only public, usable backends (neither drained nor offline)
that support the disk template (non-public backends are for dedicated
placements, not for the allocator); among those, the ones with room for the flavor
(when none has room by the recorded figures, all of them, since the
figures are refreshed only now and then); then the lowest load score.
"""

from __future__ import annotations

from collections.abc import Sequence

from synnefo_twisted.db.models import Backend, Flavor


class NoBackendAvailable(Exception):
    """
    No backend may host the server.
    """


def fits(backend: Backend, flavor: Flavor) -> bool:
    """
    The recorded free memory (MiB) and disk (MiB) hold the flavor.
    """
    return backend.mfree > flavor.ram and backend.dfree > flavor.disk * 1024


def score(backend: Backend) -> float:
    """
    The load of a backend (lower is better): the used fraction of memory
    and disk, and the instance count per CPU (four instances per CPU count
    as full).
    """
    memRatio = 1 - backend.mfree / backend.mtotal if backend.mtotal else 0.0
    diskRatio = 1 - backend.dfree / backend.dtotal if backend.dtotal else 0.0
    cpuRatio = (backend.pinst_cnt + 1) / (backend.ctotal * 4) if backend.ctotal else 1.0
    return 0.5 * cpuRatio + 0.5 * (memRatio + diskRatio)


def candidates(backends: Sequence[Backend], diskTemplate: str) -> list[Backend]:
    """
    Public, usable backends supporting C{diskTemplate} (a backend whose
    templates are not known yet, an empty list, is assumed to support it).
    """
    return [b for b in backends if b.public and b.usable and (not b.disk_templates or diskTemplate in b.disk_templates)]


def chooseBackend(backends: Sequence[Backend], flavor: Flavor, diskTemplate: str) -> Backend:
    """
    The backend for a new server of C{flavor}; ties go to the lowest id.

    @raise NoBackendAvailable: every backend is drained, offline or lacks
        the disk template.
    """
    usable = candidates(backends, diskTemplate)
    if not usable:
        raise NoBackendAvailable("No available backends")
    roomy = [b for b in usable if fits(b, flavor)] or usable
    return min(roomy, key=lambda b: (score(b), b.id))
