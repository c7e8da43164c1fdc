# -*- test-case-name: tests.test_logs -*-
"""
Log output formats and log-flood control.

C{--log-format json} writes one JSON object per line: C{time} (ISO 8601,
UTC), C{level}, C{namespace}, C{message} (the formatted text), the event's
own named fields, and C{failure} (the traceback) when there is one.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import IO, Any

from twisted.logger import FileLogObserver, ILogObserver, LogLevel, formatEvent
from twisted.python.failure import Failure

_SKIP = frozenset(
    {
        "log_logger",
        "log_source",
        "log_format",
        "log_level",
        "log_namespace",
        "log_time",
        "log_failure",
        "log_io",
        "log_system",
        "log_text",
        "log_trace",
        "log_flattened",
        "log_legacy",
        "format",
        "message",
        "isError",
        "system",
        "time",
        "why",
        "failure",
    }
)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return repr(value)


def eventAsJSON(event: dict[str, Any]) -> str:
    """
    One log event as one line of JSON (no newline inside).
    """
    level = event.get("log_level")
    record: dict[str, Any] = {
        "time": datetime.fromtimestamp(event.get("log_time", 0), UTC).isoformat(timespec="milliseconds"),
        "level": level.name if isinstance(level, type(LogLevel.info)) else "info",
        "namespace": event.get("log_namespace", ""),
        "message": formatEvent(event),
    }
    for key, value in event.items():
        if key not in _SKIP and not key.startswith("_"):
            record[key] = _jsonable(value)
    failure = event.get("log_failure")
    if isinstance(failure, Failure):
        record["failure"] = failure.getTraceback()
        if not record["message"]:
            record["message"] = failure.getErrorMessage()
    return json.dumps(record, ensure_ascii=False, sort_keys=False)


def jsonLineObserver(outFile: IO[str]) -> ILogObserver:
    """
    An observer writing each event as a line of JSON to C{outFile}.
    """
    return FileLogObserver(outFile, lambda event: eventAsJSON(event) + "\n")


def jsonStdoutObserver() -> ILogObserver:
    """
    The twistd C{--logger} factory behind C{--log-format json}: JSON lines
    on standard output (run under C{twistd -n}, for journald and log
    shippers).
    """
    return jsonLineObserver(sys.stdout)


class LogThrottle:
    """
    Decide whether a repeated event is worth logging: the first time a
    condition is seen, whenever its text changes, and then at most once
    per C{interval} seconds, with a count of how many were suppressed.

    @ivar suppressed: events suppressed since the last one logged.
    """

    def __init__(self, clock: Any, interval: float = 60.0) -> None:
        self._clock = clock
        self._interval = interval
        self._lastKey: str | None = None
        self._lastTime = 0.0
        self.suppressed = 0

    def ready(self, key: str) -> bool:
        """
        True when an event with this key should be logged now; the caller
        may report L{suppressed} with it (it is reset on the next call).
        """
        now = self._clock.seconds()
        if key != self._lastKey or now - self._lastTime >= self._interval:
            self._lastKey = key
            self._lastTime = now
            return True
        self.suppressed += 1
        return False

    def takeSuppressed(self) -> int:
        count, self.suppressed = self.suppressed, 0
        return count

    def reset(self) -> None:
        """
        The condition cleared: the next occurrence is logged at once.
        """
        self._lastKey = None
        self.suppressed = 0
