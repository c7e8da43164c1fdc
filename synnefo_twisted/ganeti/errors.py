# -*- test-case-name: tests.ganeti.test_rapi -*-
"""
Typed failures of the Ganeti RAPI client.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class GanetiError(Exception):
    """
    Base class of every Ganeti backend failure.
    """


class RapiError(GanetiError):
    """
    The RAPI answered with an HTTP error.

    @ivar code: the HTTP status code.
    @ivar message: Ganeti's C{message} (e.g. C{"Not Found"}, or the reason
        a request was refused).
    @ivar explain: Ganeti's C{explain} text.
    """

    def __init__(self, code: int, message: str, explain: str = "", method: str = "", path: str = "") -> None:
        self.code = code
        self.message = message
        self.explain = explain
        self.method = method
        self.path = path
        super().__init__(f"{method} {path}: HTTP {code}: {message}" + (f" ({explain})" if explain else ""))


class RapiBadRequest(RapiError):
    """
    400: Ganeti refused the request (C{message} says why).
    """


class RapiUnauthorized(RapiError):
    """
    401: missing or wrong credentials.
    """


class RapiForbidden(RapiError):
    """
    403: the user may not do this (e.g. a read-only user submitting a job).
    """


class RapiNotFound(RapiError):
    """
    404: no such object or resource.
    """


class RapiServerError(RapiError):
    """
    5xx: a Ganeti-side failure (502 when its daemons are down, 503 for a
    stopped instance's console, ...).
    """


class RapiConnectionError(GanetiError):
    """
    The RAPI could not be reached (refused, reset, TLS verification failed).
    """


class RapiTimeout(GanetiError):
    """
    No answer (or no final job state) within the configured time.
    """


class RapiProtocolError(GanetiError):
    """
    The RAPI answered with something that is not the expected JSON.
    """


class JobNotFound(GanetiError):
    """
    Ganeti knows no such job (RAPI 404, or Ganeti 3.0's all-null record).
    """

    def __init__(self, jobId: int) -> None:
        self.jobId = jobId
        super().__init__(f"job {jobId} not found")


class JobCanceled(GanetiError):
    """
    The job was canceled.
    """

    def __init__(self, jobId: int, job: Mapping[str, Any] | None = None) -> None:
        self.jobId = jobId
        self.job = job
        super().__init__(f"job {jobId} was canceled")


class JobFailed(GanetiError):
    """
    The job ended in error.

    @ivar errorClass: Ganeti's exception class (C{OpPrereqError}, ...).
    @ivar message: Ganeti's error message.
    @ivar errorCode: Ganeti's error code (C{wrong_input},
        C{insufficient_resources}, C{temp_insufficient_resources}, ...) or None.
    @ivar job: the job record.
    """

    def __init__(
        self,
        jobId: int,
        errorClass: str,
        message: str,
        errorCode: str | None = None,
        job: Mapping[str, Any] | None = None,
    ) -> None:
        self.jobId = jobId
        self.errorClass = errorClass
        self.message = message
        self.errorCode = errorCode
        self.job = job
        super().__init__(f"job {jobId} failed: {errorClass}: {message}" + (f" [{errorCode}]" if errorCode else ""))


def errorForStatus(code: int, message: str, explain: str, method: str, path: str) -> RapiError:
    """
    The L{RapiError} subclass for an HTTP status code.
    """
    cls: type[RapiError]
    if code == 400:
        cls = RapiBadRequest
    elif code == 401:
        cls = RapiUnauthorized
    elif code == 403:
        cls = RapiForbidden
    elif code == 404:
        cls = RapiNotFound
    elif code >= 500:
        cls = RapiServerError
    else:
        cls = RapiError
    return cls(code, message, explain, method, path)


def jobFailure(job: Mapping[str, Any]) -> JobFailed:
    """
    A L{JobFailed} from a RAPI job record in status C{error}: the first op
    whose status is C{error} gives C{[errorClass, [message, code]]}.
    """
    jobId = int(job.get("id") or 0)
    statuses = job.get("opstatus") or []
    results = job.get("opresult") or []
    for status, result in zip(statuses, results):
        if status != "error":
            continue
        if isinstance(result, list) and len(result) == 2 and isinstance(result[0], str):
            errorClass, args = result
            if isinstance(args, list):
                message = str(args[0]) if args else ""
                code = str(args[1]) if len(args) > 1 and args[1] is not None else None
            else:
                message, code = str(args), None
            return JobFailed(jobId, errorClass, message, code, job)
        return JobFailed(jobId, "Unknown", repr(result), None, job)
    return JobFailed(jobId, "Unknown", "job status is error but no op failed", None, job)
