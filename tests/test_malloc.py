"""
Tests for L{synnefo_twisted.malloc}: with the allocator tuned, buffers of an
answer's size freed and allocated again reuse their pages instead of
faulting new ones in.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from synnefo_twisted.malloc import MMAP_THRESHOLD_MAX, mmapThresholdFor, tuneMalloc

ROOT = Path(__file__).resolve().parents[1]

# what a busy API node does: answers of ~150 KiB joined with their headers,
# several alive at once, then freed (the page faults of 2,000 rounds)
_PROGRAM = """
import resource, sys
from synnefo_twisted.malloc import tuneMalloc
print(tuneMalloc(int(sys.argv[1])))
parts = [b"h" * 300, b"x" * 150_000]
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    b"".join(parts)
before = faults()
for _ in range(2000):
    a, b, c = b"".join(parts), b"".join(parts), b"".join(parts)
    del a, b, c
print(faults() - before)
"""


def _faults(retain: int) -> tuple[bool, int]:
    out = subprocess.run(
        [sys.executable, "-c", _PROGRAM, str(retain)], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0] == "True", int(out[1])


class TuneMallocTests(SynchronousTestCase):
    def test_pagesReused(self) -> None:
        """
        Tuned, 2,000 rounds of large buffers fault in almost no page; with
        glibc's defaults (retain 0: untouched) they fault in thousands.
        """
        if platform.libc_ver()[0] != "glibc":
            raise self.skipTest("this machine's C library is not glibc: tuneMalloc changes nothing there")
        changed, tuned = _faults(64 << 20)
        self.assertTrue(changed)
        unchanged, default = _faults(0)
        self.assertFalse(unchanged)
        self.assertLess(tuned, 1000)
        self.assertGreater(default, 10 * max(tuned, 100))

    def test_thresholds(self) -> None:
        """
        Fresh mappings start at a quarter of what is retained, at most glibc's limit.
        """
        self.assertEqual(mmapThresholdFor(64 << 20), 16 << 20)
        self.assertEqual(mmapThresholdFor(1 << 30), MMAP_THRESHOLD_MAX)

    def test_negative(self) -> None:
        """
        A negative amount is refused.
        """
        self.assertRaises(ValueError, tuneMalloc, -1)
