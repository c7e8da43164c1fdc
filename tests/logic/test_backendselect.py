"""
Tests for L{synnefo_twisted.logic.backendselect}.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from synnefo_twisted.logic.backendselect import NoBackendAvailable, candidates, chooseBackend, fits, score
from tests.logic.test_servers import makeBackend, makeFlavor


class ChooseBackendTests(SynchronousTestCase):
    flavor = makeFlavor(ram=2048, disk=20)

    def test_skipsDrainedAndOffline(self) -> None:
        """
        Drained, offline and non-public backends are never chosen, however empty.
        """
        empty = {"mfree": 16384, "pinst_cnt": 0, "dfree": 1000 * 1024}
        backends = [
            makeBackend(id=1, drained=True, **empty),
            makeBackend(id=2, offline=True, **empty),
            makeBackend(id=3, mfree=4096, pinst_cnt=20),
            makeBackend(id=4, public=False, **empty),
        ]
        self.assertEqual(chooseBackend(backends, self.flavor, "drbd").id, 3)

    def test_noneUsable(self) -> None:
        """
        With every backend drained, offline or lacking the template, there is no backend.
        """
        backends = [makeBackend(id=1, drained=True), makeBackend(id=2, disk_templates=("plain",))]
        self.assertRaises(NoBackendAvailable, chooseBackend, backends, self.flavor, "drbd")
        self.assertRaises(NoBackendAvailable, chooseBackend, [], self.flavor, "drbd")

    def test_diskTemplate(self) -> None:
        """
        Backends without the flavor's disk template are skipped; unknown templates count as supported.
        """
        backends = [makeBackend(id=1, disk_templates=("plain",), mfree=16000), makeBackend(id=2, mfree=100)]
        self.assertEqual(chooseBackend(backends, self.flavor, "drbd").id, 2)
        self.assertEqual(candidates([makeBackend(id=5, disk_templates=())], "ext")[0].id, 5)

    def test_freeMemory(self) -> None:
        """
        The backend with more free memory wins, other figures equal.
        """
        backends = [makeBackend(id=1, mfree=4096), makeBackend(id=2, mfree=12288)]
        self.assertEqual(chooseBackend(backends, self.flavor, "drbd").id, 2)

    def test_instanceCount(self) -> None:
        """
        The backend with fewer instances per CPU wins, other figures equal.
        """
        backends = [makeBackend(id=1, pinst_cnt=30), makeBackend(id=2, pinst_cnt=2)]
        self.assertEqual(chooseBackend(backends, self.flavor, "drbd").id, 2)

    def test_roomFirst(self) -> None:
        """
        A backend that cannot hold the flavor loses to one that can, even if emptier otherwise.
        """
        full = makeBackend(id=1, mfree=1024, pinst_cnt=0)
        roomy = makeBackend(id=2, mfree=3000, pinst_cnt=30)
        self.assertFalse(fits(full, self.flavor))
        self.assertEqual(chooseBackend([full, roomy], self.flavor, "drbd").id, 2)

    def test_noRoomAnywhere(self) -> None:
        """
        When no backend has room by the recorded figures, the least loaded usable one is chosen anyway.
        """
        backends = [makeBackend(id=1, mfree=10, pinst_cnt=9), makeBackend(id=2, mfree=10, pinst_cnt=1)]
        self.assertEqual(chooseBackend(backends, self.flavor, "drbd").id, 2)

    def test_tiesByLowestId(self) -> None:
        """
        Equal scores go to the lowest id.
        """
        backends = [makeBackend(id=3), makeBackend(id=1), makeBackend(id=2)]
        self.assertEqual(chooseBackend(backends, self.flavor, "drbd").id, 1)

    def test_scoreWithoutFigures(self) -> None:
        """
        A backend with no recorded totals scores as fully loaded in CPU and empty in memory and disk.
        """
        self.assertEqual(score(makeBackend(mtotal=0, dtotal=0, ctotal=0)), 0.5)
