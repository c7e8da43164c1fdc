# -*- test-case-name: tests.test_malloc -*-
"""
The C allocator's give-back policy, for a server that keeps allocating and
freeing the same large buffers.

glibc returns freed memory at the top of its heap to the kernel once more
than C{M_TRIM_THRESHOLD} is free there, and serves allocations above
C{M_MMAP_THRESHOLD} (128 KiB at first, raised as such blocks are freed)
with fresh mappings. An API node writes answers of a few hundred KiB (a
listing of 100 servers is about 150 KiB; Twisted joins it with its headers
into one buffer per answer): with the defaults each such buffer comes back
as new pages, zeroed by the kernel and faulted in one by one (measured: 21
page faults per C{/servers/detail} answer, a quarter of its time). Keeping
up to C{retain} bytes of freed memory in the heap, and allocating from the
heap below a quarter of it, reuses the same pages instead.

Only glibc has these knobs (C{mallopt}); elsewhere nothing is changed.
"""

from __future__ import annotations

import ctypes
import platform

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# glibc's largest M_MMAP_THRESHOLD on 64-bit platforms (DEFAULT_MMAP_THRESHOLD_MAX)
MMAP_THRESHOLD_MAX = 32 << 20


def mmapThresholdFor(retain: int) -> int:
    """
    The allocation size from which fresh mappings are used, for C{retain}
    bytes kept: a quarter of it, at most glibc's limit.
    """
    return min(retain // 4, MMAP_THRESHOLD_MAX)


def tuneMalloc(retain: int) -> bool:
    """
    Keep up to C{retain} bytes of freed memory in the heap (C{retain} 0:
    leave glibc's adaptive defaults alone).

    @return: whether the allocator was changed (False: not glibc, or
        C{retain} is 0).
    @raise OSError: glibc refused a value.
    """
    if retain < 0:
        raise ValueError("retain must not be negative")
    if retain == 0 or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    for param, value in ((M_MMAP_THRESHOLD, mmapThresholdFor(retain)), (M_TRIM_THRESHOLD, retain)):
        if mallopt(param, value) != 1:
            raise OSError(f"mallopt({param}, {value}) refused")
    return True
