"""What a finished fal request means for its job: a pure function, testable without HTTP.

fal has no FAILED state: a failed run is COMPLETED with `error` set in its status,
and the real message (a 422 detail list, a 5xx detail) is the answer to the result
request. A cancelled request is COMPLETED too, its error typed `request_cancelled`.
:func:`outcome` turns status + result (or the error fetching it) into one of four things
the engine does next.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..billing import SERVER_ERROR, START_TIMEOUT
from ..download import check_url
from ..errors import DownloadError, FalError
from ..models import ModelSpec

RESULT_GONE = (
    "fal no longer has this request's result (results are kept 1 hour, "
    "6 minutes when large); `i2vkit retry` submits it again."
)


@dataclass(frozen=True)
class Completed:
    video_url: str
    size: int | None


@dataclass(frozen=True)
class Failed:
    message: str
    error_type: str | None


@dataclass(frozen=True)
class FreshImage:
    """fal could not fetch an image URL we gave it (a cached upload expired early): upload
    that image again and resubmit (the caller allows this once per job). ``field`` is the
    argument fal named: the model's image field or its end-image field."""

    message: str
    field: str = ""


@dataclass(frozen=True)
class Cancelled:
    """The request was cancelled on fal (by `i2vkit cancel` from another process, or in
    fal's dashboard): it is not a failure, and running the batch again submits it."""

    message: str


Outcome = Completed | Failed | FreshImage | Cancelled


def outcome(
    status: Mapping[str, Any],
    result: Mapping[str, Any] | None,
    error: FalError | None,
    model: ModelSpec,
) -> Outcome:
    """Decide a completed request's fate from its status, its result or the result's error.

    `error` is the non-transient error the result request got (for a failed run,
    fal's answer to it *is* the reason); a transient one is passed as None.
    """
    failed = bool(status.get("error"))
    if failed or result is None:
        detail = str(error) if error is not None else None
        error_type = (error.error_type if error else None) or status.get("error_type")
        if error is not None and error.status_code == 404 and not failed:
            detail = RESULT_GONE
        message = f"fal reported an error: {status.get('error') or 'job failed'}"
        if detail and (status.get("error") or "") not in detail:
            message += f" ({detail})"
        elif detail and not status.get("error"):
            message = detail
        if error_type == "request_cancelled":
            return Cancelled(message)
        if error_type:
            message += f" [{error_type}]"
        if error_type == START_TIMEOUT:  # fal never started it: not billed either
            return Failed(f"{message} (fal's side: not billed)", START_TIMEOUT)
        if error is not None and (error.status_code or 0) >= 500:
            return Failed(f"{message} (fal's side: not billed)", SERVER_ERROR)
        if error_type == "file_download_error":
            ours = (model.image_field, model.end_image_field)
            field = next((f for f in ours if f and f"{f}:" in (detail or "")), None)
            if field is not None:
                return FreshImage(message, field)
        return Failed(message, error_type)
    try:
        url = model.video_url(result)
        check_url(url)
    except FalError as exc:
        return Failed(str(exc), exc.error_type)
    except DownloadError as exc:
        return Failed(f"fal's result has an unusable video URL: {exc}", "bad_result")
    video = v if isinstance(v := result.get("video"), Mapping) else {}
    size = n if isinstance(n := video.get("file_size"), int) else None
    return Completed(url, size)
