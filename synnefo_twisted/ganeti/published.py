# -*- test-case-name: tests.ganeti.test_watcher -*-
"""
What the watcher already reported: for each job in the queue directory,
the last op status it published (or deliberately skipped), kept in a small
JSON state file so a restart neither loses nor floods messages.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from twisted.logger import Logger
from twisted.python.filepath import FilePath

log = Logger()


class PublishedState:
    """
    Job id → per-op last handled status. Saved atomically (temporary file,
    then rename) by L{save}; the caller decides when.
    """

    def __init__(self, path: FilePath[str] | None) -> None:
        self.path = path
        self.jobs: dict[int, list[str | None]] = {}
        self.dirty = False

    def load(self) -> None:
        """
        Read the state file; a missing file is an empty state, a corrupt one
        is logged and ignored (the next rescan republishes: duplicates are
        harmless, losses are not).
        """
        if self.path is None or not self.path.exists():
            return
        try:
            data = json.loads(self.path.getContent())
            self.jobs = {int(k): list(v) for k, v in data["jobs"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            log.warn("watcher state {path} unreadable ({error}); starting afresh", path=self.path.path, error=str(e))
            self.jobs = {}

    def get(self, jobId: int, index: int) -> str | None:
        statuses = self.jobs.get(jobId)
        if statuses is None or index >= len(statuses):
            return None
        return statuses[index]

    def set(self, jobId: int, index: int, status: str, opCount: int) -> None:
        statuses = self.jobs.setdefault(jobId, [None] * opCount)
        if len(statuses) < opCount:
            statuses.extend([None] * (opCount - len(statuses)))
        if statuses[index] != status:
            statuses[index] = status
            self.dirty = True

    def prune(self, present: Iterable[int]) -> int:
        """
        Forget jobs whose files are gone (archived); returns how many.
        """
        keep = set(present)
        gone = [j for j in self.jobs if j not in keep]
        for j in gone:
            del self.jobs[j]
        if gone:
            self.dirty = True
        return len(gone)

    def save(self) -> None:
        """
        Write the state if it changed.
        """
        if self.path is None or not self.dirty:
            return
        self.path.parent().makedirs(ignoreExistingDirectory=True)
        temporary = self.path.siblingExtension(".tmp")
        data = json.dumps({"version": 1, "jobs": {str(k): v for k, v in sorted(self.jobs.items())}})
        with open(temporary.path, "w") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(temporary.path, self.path.path)
        self.dirty = False
