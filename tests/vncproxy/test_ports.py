"""
Tests for L{vncproxy.ports}.
"""

from twisted.trial.unittest import SynchronousTestCase

from vncproxy.ports import PortPool, PortUnavailable


class PortPoolTests(SynchronousTestCase):
    def test_randomWithinRange(self) -> None:
        """
        Ports come from the range, each once, until it is exhausted.
        """
        pool = PortPool(25000, 25009)
        ports = {pool.allocate() for _ in range(10)}
        self.assertEqual(ports, set(range(25000, 25010)))
        self.assertEqual(pool.free(), 0)
        e = self.assertRaises(PortUnavailable, pool.allocate)
        self.assertEqual(str(e), "no free port in 25000-25009")

    def test_release(self) -> None:
        """
        A released port can be given again.
        """
        pool = PortPool(25000, 25000)
        port = pool.allocate()
        pool.release(port)
        self.assertEqual(pool.allocate(), 25000)

    def test_requested(self) -> None:
        """
        A requested port is given unless another forwarding holds it.
        """
        pool = PortPool(25000, 25009)
        self.assertEqual(pool.allocate(31000), 31000)
        self.assertRaises(PortUnavailable, pool.allocate, 31000)
        self.assertEqual(pool.free(), 10)

    def test_avoid(self) -> None:
        """
        Ports in avoid are not given (a port found taken by another program).
        """
        pool = PortPool(25000, 25001, choice=lambda seq: seq[0])
        self.assertEqual(pool.allocate(avoid=frozenset({25000})), 25001)

    def test_badRange(self) -> None:
        """
        An empty or out-of-bounds range is refused.
        """
        self.assertRaises(ValueError, PortPool, 30000, 25000)
        self.assertRaises(ValueError, PortPool, 0, 10)
