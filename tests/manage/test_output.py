"""
Tests for L{synnefo_twisted.manage.output}.
"""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from synnefo_twisted.manage.output import formatTable


class FormatTableTests(SynchronousTestCase):
    rows = [(1, "vm-one", True, None), (22, "vm,two", False, ["a", "b"])]
    cols = ["id", "name", "up", "tags"]

    def test_pretty(self) -> None:
        """
        Pretty output aligns columns under upper-case headers.
        """
        text = formatTable(self.cols, self.rows)
        lines = text.splitlines()
        self.assertEqual(lines[0], "ID  NAME    UP     TAGS")
        self.assertEqual(lines[2], "1   vm-one  True")
        self.assertEqual(lines[3], "22  vm,two  False  a,b")

    def test_json(self) -> None:
        """
        JSON output is a list of objects keyed by column.
        """
        data = json.loads(formatTable(self.cols, self.rows, "json"))
        self.assertEqual(data[1], {"id": 22, "name": "vm,two", "up": False, "tags": ["a", "b"]})

    def test_csv(self) -> None:
        """
        CSV output quotes cells that need it.
        """
        text = formatTable(self.cols, self.rows, "csv")
        self.assertEqual(text.splitlines(), ["id,name,up,tags", "1,vm-one,True,", '22,"vm,two",False,"a,b"'])

    def test_unknownFormat(self) -> None:
        """
        Unknown formats are refused.
        """
        self.assertRaises(ValueError, formatTable, self.cols, self.rows, "xml")
