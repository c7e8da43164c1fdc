# -*- test-case-name: tests.test_admin -*-
"""
Health values reported on C{/healthz}.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class Health:
    """
    The state of one dependency or plugin.

    @ivar ok: whether it is usable now.
    @ivar state: a short word (C{up}, C{down}, C{connecting}, C{starting},
        C{running}, C{stopped}, C{failed}).
    @ivar detail: a human sentence: why it is down, what it is doing.
    """

    ok: bool
    state: str
    detail: str = ""

    @classmethod
    def up(cls, detail: str = "") -> Health:
        return cls(True, "up", detail)

    @classmethod
    def down(cls, detail: str) -> Health:
        return cls(False, "down", detail)

    def asDict(self) -> dict[str, object]:
        return {"ok": self.ok, "state": self.state, "detail": self.detail}
