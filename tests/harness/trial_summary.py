"""
Run trial, keep its exit status, and close with one line
C{N passed, N failed, N skipped}.

Usage: python tests/harness/trial_summary.py [trial arguments] TESTS...
"""

from __future__ import annotations

import re
import subprocess
import sys


def summarize(output: str) -> str | None:
    """
    The closing line for trial's output, or None when trial printed no
    result line (it crashed before running tests).
    """
    results = re.findall(r"^(PASSED|FAILED) \((.*)\)\s*$", output, re.M)
    if not results:
        return None
    counts = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", results[-1][1])}
    passed = counts.get("successes", 0) + counts.get("expectedFailures", 0)
    failed = counts.get("failures", 0) + counts.get("errors", 0) + counts.get("unexpectedSuccesses", 0)
    return f"{passed} passed, {failed} failed, {counts.get('skips', 0)} skipped"


def main(argv: list[str]) -> int:
    proc = subprocess.Popen(
        [sys.executable, "-m", "twisted.trial", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    assert proc.stdout is not None
    captured: list[str] = []
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        captured.append(line)
    status = proc.wait()
    line = summarize("".join(captured))
    if line is None:
        print("0 passed, 1 failed, 0 skipped")
        return status or 1
    print(line)
    if status == 0 and line.startswith("0 passed"):
        # no test ran: that is a failure of the suite, not a success
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
