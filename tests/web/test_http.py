"""
Tests for L{web.http}: C{dumps} writes compact UTF-8 JSON, the same document
the standard library would write; C{acceptsGzip} reads C{Accept-Encoding}.
"""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from web.http import acceptsGzip, dumps


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


class AcceptsGzipTests(SynchronousTestCase):
    def accepts(self, header: str | None) -> bool:
        request = DummyRequest([b""])
        if header is not None:
            request.requestHeaders.setRawHeaders(b"Accept-Encoding", [header.encode()])
        return acceptsGzip(request)

    def test_accepted(self) -> None:
        """
        C{gzip} (python-requests sends C{gzip, deflate}), C{x-gzip} and C{*} with a quality above 0.
        """
        for header in ("gzip, deflate", "deflate, GZIP", "gzip;q=0.5", "br, *", "x-gzip", "gzip; q=1.0"):
            self.assertTrue(self.accepts(header), header)

    def test_refused(self) -> None:
        """
        No header, other codings only, or gzip with quality 0 (or an unreadable one).
        """
        for header in (None, "", "identity", "deflate, br", "gzip;q=0", "gzip;q=0.0, deflate", "gzip;q=x", "gzipped"):
            self.assertFalse(self.accepts(header), header)
