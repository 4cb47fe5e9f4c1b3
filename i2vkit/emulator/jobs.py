"""What an emulated job is, and every way it can end.

:class:`Job` is one submitted request; an :data:`Outcome` is what its result endpoint will
answer (a result, or one of fal's error shapes: validation, runner, timeout, cancelled).
:func:`payload_problems` is fal's 422 check of a submit body. All of it is plain data and
pure functions, so the queue (:mod:`.queue`) only decides *when* things happen.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from i2vkit.refs import is_data_uri

from .platform import image_field, submit_problems
from .wire import validation_error

__all__ = [
    "CANCELLED",
    "Job",
    "JobError",
    "Outcome",
    "error_outcome",
    "field_error",
    "injected_failure",
    "payload_problems",
    "required_fields",
]

Outcome = tuple[int, Any, str | None, str | None, dict[str, str]]
"""(result status, result body, error, error_type, result headers) of a finished job."""


@dataclass(eq=False)
class Job:
    id: str
    index: int
    endpoint: str
    app: str
    payload: dict[str, Any]
    image_field: str | None
    fail: str | None  # failure kind drawn at submit, or None
    seed: int
    submitted_at: float  # loop clock
    output_ttl: float | None = None
    base: str = ""
    duration: float = 0.0  # drawn when the job starts (job_seconds may change meanwhile)
    state: str = "IN_QUEUE"
    started_at: float | None = None
    finished_at: float | None = None
    logs: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    error_type: str | None = None
    result_status: int = 200
    result_body: Any = None
    result_headers: dict[str, str] = field(default_factory=dict)
    result_size: int = 0
    cancelled: bool = False
    aborting: bool = False
    task: asyncio.Task | None = None
    done_at: float | None = None  # expiry clock at completion (result expiry)
    headers: dict[str, str] = field(default_factory=dict)  # the submit's x-fal-* headers
    priority: str = "normal"  # X-Fal-Queue-Priority: "low" waits behind "normal"

    def log(self, message: str, level: str = "INFO") -> None:
        self.logs.append(
            {
                "message": message,
                "level": level,
                "source": "user",
                "timestamp": datetime.now(UTC).isoformat(),
            }
        )

    def view(self) -> dict[str, Any]:
        """The debug view of :meth:`Emulator.job <i2vkit.emulator.Emulator.job>`."""
        return {
            "request_id": self.id,
            "endpoint": self.endpoint,
            "state": self.state,
            "duration": self.duration,
            "fail": self.fail,
            "submitted_at": self.submitted_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "error": self.error,
            "error_type": self.error_type,
            "result_status": self.result_status if self.state == "COMPLETED" else None,
            "cancelled": self.cancelled,
            "arguments": self.payload,  # what was submitted (tests read the image field)
            "headers": dict(self.headers),  # its X-Fal-* request headers, as sent
            "priority": self.priority,
        }


class JobError(Exception):
    """A job's failure, carrying the result fal would answer with."""

    def __init__(
        self,
        status: int,
        body: Any,
        error: str,
        error_type: str,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(error)
        self.outcome: Outcome = (status, body, error, error_type, headers or {})


def error_outcome(status: int, msg: str, etype: str, **headers: str) -> Outcome:
    """fal's plain error result: ``{"detail", "error_type"}`` and ``x-fal-error-type``."""
    body = {"detail": msg, "error_type": etype}
    return (status, body, msg, etype, {"x-fal-error-type": etype, **headers})


def field_error(field_name: str, type_: str, msg: str, value: Any) -> JobError:
    if isinstance(value, str) and is_data_uri(value) and len(value) > 80:
        value = value[:64] + "..."
    detail = [validation_error(["body", field_name], msg, type_, value)]
    return JobError(422, {"detail": detail}, msg, type_)


CANCELLED: Outcome = (
    400,
    {"detail": "Request was cancelled", "error_type": "request_cancelled"},
    "Request was cancelled",
    "request_cancelled",
    {"x-fal-error-type": "request_cancelled"},
)

_INJECTED = {
    "runner": (503, "Runner disconnected", "runner_disconnected"),
    "timeout": (504, "Request timed out", "request_timeout"),
    "internal": (500, "Internal server error", "internal_server_error"),
}


def injected_failure(job: Job) -> Outcome:
    """The result of a job the ``fail_rate`` knob picked to fail."""
    if job.fail == "validation":
        msg = (
            "The content could not be processed because it contained material flagged "
            "by a content checker."
        )
        prompt = job.payload.get("prompt")
        detail = [validation_error(["body", "prompt"], msg, "content_policy_violation", prompt)]
        return (422, {"detail": detail}, msg, "content_policy_violation", {})
    return error_outcome(*_INJECTED[job.fail or "runner"])


def required_fields(endpoint: str) -> tuple[list[str], str | None]:
    """(required string fields, the image field) for an endpoint id."""
    if (known := image_field(endpoint)) is not None:
        return ["prompt", known], known
    if re.search(r"kling-video/(v2\.6|v3)/", endpoint):
        return ["prompt", "start_image_url"], "start_image_url"
    if "luma-dream-machine/ray-2" in endpoint:
        return ["prompt"], "image_url"
    return ["prompt", "image_url"], "image_url"


def payload_problems(endpoint: str, payload: Any) -> list[dict[str, Any]]:
    """fal's 422 ``detail`` entries for a submit body (empty when it is acceptable)."""
    if not isinstance(payload, dict):
        return [validation_error(["body"], "value is not a valid dict", "type_error.dict")]
    if (by_schema := submit_problems(endpoint, payload)) is not None:
        return by_schema  # a catalogued endpoint: its own input schema, as fal checks it
    required, image_field = required_fields(endpoint)
    problems = []
    for name in required:
        if name not in payload or payload[name] is None:
            problems.append(
                validation_error(["body", name], "field required", "value_error.missing")
            )
        elif not isinstance(payload[name], str):
            problems.append(validation_error(["body", name], "str type expected", "type_error.str"))
    if (
        image_field is not None
        and image_field not in required
        and image_field in payload
        and not isinstance(payload[image_field], str)
    ):
        problems.append(
            validation_error(["body", image_field], "str type expected", "type_error.str")
        )
    return problems
