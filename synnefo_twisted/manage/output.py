# -*- test-case-name: tests.manage.test_output -*-
"""
Output of list commands: C{--output-format pretty|json|csv}.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

FORMATS = ("pretty", "json", "csv")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (list, tuple)):
        return ",".join(_cell(v) for v in value)
    return str(value)


def formatTable(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str = "pretty") -> str:
    """
    Render rows under C{columns} as an aligned table, a JSON list of
    objects, or CSV with a header line.
    """
    if fmt == "json":
        return json.dumps([dict(zip(columns, row)) for row in rows], indent=2, default=str) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(v) for v in row])
        return out.getvalue()
    if fmt != "pretty":
        raise ValueError(f"unknown output format {fmt!r}")
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(c) for c in columns]
    for row in cells:
        widths = [max(w, len(v)) for w, v in zip(widths, row)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    return "\n".join(lines) + "\n"


def formatMapping(data: dict[str, Any], fmt: str = "pretty") -> str:
    """
    Render one object: key/value lines, JSON, or two-column CSV.
    """
    if fmt == "json":
        return json.dumps(data, indent=2, default=str) + "\n"
    return formatTable(["key", "value"], [(k, v) for k, v in data.items()], fmt)
