"""
Tests for L{synnefo_twisted.metrics}.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from synnefo_twisted.metrics import MetricsRegistry


class MetricsTests(SynchronousTestCase):
    def test_counterAndGauge(self) -> None:
        """
        Counters and gauges render as Prometheus samples with escaped labels.
        """
        registry = MetricsRegistry()
        c = registry.counter("snf_things_total", "things", ["kind"])
        c.inc(kind='a"b')
        c.inc(2, kind='a"b')
        g = registry.gauge("snf_level", "level")
        g.set(1.5)
        text = registry.render()
        self.assertIn("# TYPE snf_things_total counter\n", text)
        self.assertIn('snf_things_total{kind="a\\"b"} 3\n', text)
        self.assertIn("snf_level 1.5\n", text)
        self.assertEqual(c.value(kind='a"b'), 3)

    def test_counterOnlyUp(self) -> None:
        """
        A counter refuses negative increments, and labels must match.
        """
        c = MetricsRegistry().counter("snf_c_total", "c", ["x"])
        self.assertRaises(ValueError, c.inc, -1, x="1")
        self.assertRaises(ValueError, c.inc, 1, y="1")

    def test_histogram(self) -> None:
        """
        Histogram buckets are cumulative and end with +Inf, with sum and count.
        """
        registry = MetricsRegistry()
        h = registry.histogram("snf_latency_seconds", "latency", buckets=(0.1, 1.0))
        for v in (0.05, 0.5, 5.0):
            h.observe(v)
        text = registry.render()
        self.assertIn('snf_latency_seconds_bucket{le="0.1"} 1\n', text)
        self.assertIn('snf_latency_seconds_bucket{le="1"} 2\n', text)
        self.assertIn('snf_latency_seconds_bucket{le="+Inf"} 3\n', text)
        self.assertIn("snf_latency_seconds_sum 5.55\n", text)
        self.assertIn("snf_latency_seconds_count 3\n", text)

    def test_sameNameSameMetric(self) -> None:
        """
        Asking twice gives the same metric; another kind under that name is an error.
        """
        registry = MetricsRegistry()
        self.assertIs(registry.counter("snf_x_total", "x"), registry.counter("snf_x_total", "x"))
        self.assertRaises(ValueError, registry.gauge, "snf_x_total", "x")

    def test_collectedGauge(self) -> None:
        """
        A gauge with C{collect} is computed at scrape time.
        """
        registry = MetricsRegistry()
        state = {"v": 1.0}
        registry.gauge("snf_up", "up", ["dep"], collect=lambda: [({"dep": "db"}, state["v"])])
        self.assertIn('snf_up{dep="db"} 1\n', registry.render())
        state["v"] = 0.0
        self.assertIn('snf_up{dep="db"} 0\n', registry.render())
