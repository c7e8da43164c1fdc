# -*- test-case-name: tests.vncproxy.test_ports -*-
"""
The pool of ports forwardings listen on (C{[vncproxy] port_range}).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

_RANDOM = random.SystemRandom()


class PortUnavailable(Exception):
    """
    No port can be given; C{str()} is the reason.
    """


class PortPool:
    """
    Ports in C{[low, high]} (inclusive) given out at random; a requested
    port (any port, as in the original) is given when no forwarding holds it.
    """

    def __init__(self, low: int, high: int, choice: Callable[[Sequence[int]], int] = _RANDOM.choice) -> None:
        if not 0 < low <= high < 65536:
            raise ValueError("port range must satisfy 0 < low <= high < 65536")
        self.low = low
        self.high = high
        self._choice = choice
        self._used: set[int] = set()

    @property
    def inUse(self) -> frozenset[int]:
        return frozenset(self._used)

    def free(self) -> int:
        return (self.high - self.low + 1) - sum(1 for p in self._used if self.low <= p <= self.high)

    def allocate(self, requested: int = 0, avoid: frozenset[int] = frozenset()) -> int:
        """
        Take C{requested} (nonzero), or a random free port of the range not in C{avoid}.

        @raise PortUnavailable: the port is taken or the range is exhausted.
        """
        if requested:
            if requested in self._used:
                raise PortUnavailable(f"port {requested} is in use by another forwarding")
            self._used.add(requested)
            return requested
        # Random probes first (cheap while the pool is mostly free), then a scan.
        everything = range(self.low, self.high + 1)
        for _ in range(16):
            port = self._choice(everything)
            if port not in self._used and port not in avoid:
                self._used.add(port)
                return port
        candidates = [p for p in everything if p not in self._used and p not in avoid]
        if not candidates:
            raise PortUnavailable(f"no free port in {self.low}-{self.high}")
        port = self._choice(candidates)
        self._used.add(port)
        return port

    def release(self, port: int) -> None:
        """
        Give C{port} back (a port not held is ignored).
        """
        self._used.discard(port)
