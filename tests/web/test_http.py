"""
Tests for L{web.http.dumps}: compact UTF-8 JSON, the same document the standard library would write.
"""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from web.http import dumps


class DumpsTests(SynchronousTestCase):
    def test_compact(self) -> None:
        """
        Documents come out compact, UTF-8 encoded, and decode to what was encoded (tuples as lists, int keys as
        strings).
        """
        document = {"a": [1, 2.5, None, True], "é": "ünïcode", 3: (4, 5)}
        body = dumps(document)
        self.assertEqual(body, '{"a":[1,2.5,null,true],"é":"ünïcode","3":[4,5]}'.encode())
        self.assertEqual(json.loads(body), {"a": [1, 2.5, None, True], "é": "ünïcode", "3": [4, 5]})

    def test_hugeIntegers(self) -> None:
        """
        Integers beyond 64 bits (quota limits may be) are written exactly.
        """
        self.assertEqual(json.loads(dumps({"limit": 1 << 70})), {"limit": 1 << 70})
