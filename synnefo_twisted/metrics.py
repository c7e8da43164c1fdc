# -*- test-case-name: tests.test_metrics -*-
"""
A small metrics registry rendered in the Prometheus text exposition format
(version 0.0.4): counters, gauges (set or computed at scrape time) and
histograms, with labels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

LabelValues = tuple[str, ...]

DEFAULT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _labelText(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class _Metric:
    kind = ""

    def __init__(self, name: str, help: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help
        self.labelNames = tuple(labels)

    def _key(self, labels: dict[str, str]) -> LabelValues:
        if set(labels) != set(self.labelNames):
            raise ValueError(f"{self.name} takes labels {self.labelNames}, got {tuple(labels)}")
        return tuple(str(labels[n]) for n in self.labelNames)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {_escape(self.help)}", f"# TYPE {self.name} {self.kind}"]

    def samples(self) -> Iterable[str]:
        raise NotImplementedError


class Counter(_Metric):
    """
    A monotonically increasing count.
    """

    kind = "counter"

    def __init__(self, name: str, help: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help, labels)
        self._values: dict[LabelValues, float] = {}
        if not self.labelNames:
            self._values[()] = 0.0

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        if amount < 0:
            raise ValueError("counters only go up")
        key = self._key(labels)
        self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        return self._values.get(self._key(labels), 0.0)

    def samples(self) -> Iterable[str]:
        for key, value in sorted(self._values.items()):
            yield f"{self.name}{_labelText(self.labelNames, key)} {_fmt(value)}"


class Gauge(_Metric):
    """
    A value that goes up and down; or, with C{collect}, computed when scraped.
    """

    kind = "gauge"

    def __init__(
        self,
        name: str,
        help: str,
        labels: Sequence[str] = (),
        collect: Callable[[], Iterable[tuple[dict[str, str], float]]] | None = None,
    ) -> None:
        super().__init__(name, help, labels)
        self._values: dict[LabelValues, float] = {}
        self._collect = collect

    def set(self, value: float, **labels: str) -> None:
        self._values[self._key(labels)] = float(value)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = self._key(labels)
        self._values[key] = self._values.get(key, 0.0) + amount

    def dec(self, amount: float = 1.0, **labels: str) -> None:
        self.inc(-amount, **labels)

    def value(self, **labels: str) -> float:
        return self._values.get(self._key(labels), 0.0)

    def samples(self) -> Iterable[str]:
        values = dict(self._values)
        if self._collect is not None:
            for labels, value in self._collect():
                values[self._key(labels)] = value
        for key, value in sorted(values.items()):
            yield f"{self.name}{_labelText(self.labelNames, key)} {_fmt(value)}"


class Histogram(_Metric):
    """
    Observations counted into cumulative buckets, with their sum and count.
    """

    kind = "histogram"

    def __init__(
        self, name: str, help: str, labels: Sequence[str] = (), buckets: Sequence[float] = DEFAULT_BUCKETS
    ) -> None:
        super().__init__(name, help, labels)
        self.buckets = tuple(sorted(buckets)) + (math.inf,)
        self._counts: dict[LabelValues, list[int]] = {}
        self._sums: dict[LabelValues, float] = {}

    def observe(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        counts = self._counts.setdefault(key, [0] * len(self.buckets))
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                counts[i] += 1
        self._sums[key] = self._sums.get(key, 0.0) + value

    def count(self, **labels: str) -> int:
        counts = self._counts.get(self._key(labels))
        return counts[-1] if counts else 0

    def samples(self) -> Iterable[str]:
        for key in sorted(self._counts):
            counts = self._counts[key]
            for bound, count in zip(self.buckets, counts):
                le = 'le="' + _fmt(bound) + '"'
                yield f"{self.name}_bucket{_labelText(self.labelNames, key, le)} {count}"
            yield f"{self.name}_sum{_labelText(self.labelNames, key)} {_fmt(self._sums[key])}"
            yield f"{self.name}_count{_labelText(self.labelNames, key)} {counts[-1]}"


class MetricsRegistry:
    """
    The node's metrics. Asking twice for the same name returns the same
    metric (so plugins restarted in tests do not clash); asking for it
    with another kind is an error.
    """

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}

    def _get(self, cls: type[_Metric], name: str, help: str, labels: Sequence[str], **kw: object) -> _Metric:
        existing = self._metrics.get(name)
        if existing is not None:
            if type(existing) is not cls or existing.labelNames != tuple(labels):
                raise ValueError(f"metric {name} already registered as a different {existing.kind}")
            return existing
        metric = cls(name, help, labels, **kw)
        self._metrics[name] = metric
        return metric

    def counter(self, name: str, help: str, labels: Sequence[str] = ()) -> Counter:
        m = self._get(Counter, name, help, labels)
        assert isinstance(m, Counter)
        return m

    def gauge(
        self,
        name: str,
        help: str,
        labels: Sequence[str] = (),
        collect: Callable[[], Iterable[tuple[dict[str, str], float]]] | None = None,
    ) -> Gauge:
        m = self._get(Gauge, name, help, labels, collect=collect)
        assert isinstance(m, Gauge)
        return m

    def histogram(
        self, name: str, help: str, labels: Sequence[str] = (), buckets: Sequence[float] = DEFAULT_BUCKETS
    ) -> Histogram:
        m = self._get(Histogram, name, help, labels, buckets=buckets)
        assert isinstance(m, Histogram)
        return m

    def render(self) -> str:
        """
        The whole registry in the Prometheus text format.
        """
        out: list[str] = []
        for name in sorted(self._metrics):
            metric = self._metrics[name]
            out.extend(metric.header())
            out.extend(metric.samples())
        return "\n".join(out) + "\n"
