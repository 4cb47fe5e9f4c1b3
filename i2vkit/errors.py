"""One exception hierarchy for the whole tool.

Every message says what went wrong, where, and what to do next, because the
people reading them are running a batch from a notebook, not debugging us.
Messages never contain the FAL_KEY (see :func:`i2vkit.config.redact`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


class I2vkitError(Exception):
    """Base of every error i2vkit raises on purpose."""


class ConfigError(I2vkitError):
    """A setting (environment variable or .env line) has a bad value."""


class InputError(I2vkitError):
    """The images folder, prompts file, pairing or another user input is unusable."""


class ModelError(InputError):
    """An unknown model name or bad model options."""


class SpendCapError(InputError):
    """The plan may add more than the spend cap (or its price is unknown): nothing is sent.
    Raise the cap (--max-cost / I2VKIT_MAX_COST) or plan fewer jobs."""


class SpendNotConfirmed(InputError):
    """Nothing submitted: the batch would spend above the threshold and nobody said yes, or
    it would spend above the spend cap (I2VKIT_MAX_COST). Answer y, or pass --yes."""


class ReportFolderInUse(InputError):
    """The report folder holds another batch's report: nothing was written. Give another
    folder, or ``--replace`` to remove what that report wrote there first."""


class ShotListError(InputError):
    """Problems in a shot list, all of them, each with its file, row and column: fix them
    in the file and run the same command again."""

    MAX_SHOWN = 50

    def __init__(self, path: Path, problems: list[str]):
        self.problems = problems
        shown = problems[: self.MAX_SHOWN]
        more = len(problems) - len(shown)
        text = "\n".join(f"  - {p}" for p in shown)
        if more:
            text += f"\n  ... and {more} more"
        super().__init__(
            f"Shot list {path} has {len(problems)} problem(s); nothing was uploaded or "
            f"submitted:\n{text}\nFix them in the file and run the same command again."
        )


class StoreError(I2vkitError):
    """The SQLite ledger cannot be opened or written."""


class FalError(I2vkitError):
    """fal (or the emulator) answered with an error."""

    def __init__(
        self, message: str, *, status_code: int | None = None, error_type: str | None = None
    ):
        super().__init__(message)
        self.status_code = status_code
        self.error_type = error_type


class FalAuthError(FalError):
    """401: the key was rejected. Fatal for the whole batch."""


class FalLockedError(FalError):
    """403 'User is locked': usually an exhausted balance. Fatal for the whole batch."""


class FalValidationError(FalError):
    """422: fal rejected this job's input. Fatal for that job only."""


class FalTransientError(FalError):
    """429, 5xx or a dropped connection that survived our retries."""


class BackendUnreachable(FalTransientError):
    """No connection to the backend at all (closed port, no network, unknown host).

    Raised by the preflight before anything is uploaded or recorded (the CLI exits 4),
    and by any later call that cannot connect. What to do: check the network, or start
    the service ``I2VKIT_FAL_URL`` points at, then run the same command again."""


class NotFal(FalError):
    """The backend answers, but not as fal does (a plain web server, a captive portal, a
    wrong URL): raised by the preflight and the catalogue's refresh, before anything is
    uploaded or recorded (the CLI exits 4, as for no connection at all). What to do:
    point I2VKIT_FAL_URL at fal or a fal-compatible service, or unset it."""


class SubmitUnanswered(FalTransientError):
    """A submit whose connection broke after it was sent: fal may have queued it (and will
    bill it), so it must not be sent again blindly; fal's request history settles it.

    Raised by the submit POST only; the engine keeps the job ``submitting`` and the next
    run adopts the request fal got, or submits it again if fal has none."""


class StreamUnavailable(FalTransientError):
    """A status stream that cannot be used: `refused` (404/405: this host has none) or it
    dropped, stalled or could not be opened.

    Raised while following a job; nothing to do: polling takes over either way."""

    def __init__(self, message: str, *, refused: bool = False):
        super().__init__(message)
        self.refused = refused


class HistoryUnavailable(FalError):
    """fal will not list the requests: the key may not read the account's request history
    (403, "restricted request view"), or the service has no such endpoint (404/405).

    Raised by the request-history lookup; a job a crash left ``submitting`` is then
    submitted again (fal may bill it twice) and its note says so. What to do: give the
    key the right to read the request history (an admin key can)."""


class ImageDataError(I2vkitError):
    """An image's data is damaged or cut short (the message says how); the image checks
    turn it into a skip, never into a stopped batch."""


class BillingUnavailable(FalError):
    """fal will not show the account's bill (billing events, usage, balance): the key is not
    an admin key (401/403), or the service has no such endpoint (404/405).

    Raised by the billing reads (:mod:`i2vkit.bill`); `i2vkit cost` then shows the
    estimates and says which key it needs, and the plan shows no balance."""


class UploadError(I2vkitError):
    """One image could not be uploaded; the batch goes on without it."""


class DownloadError(I2vkitError):
    """One video could not be downloaded; the job stays recoverable."""


class ExpiredURLError(DownloadError):
    """The video URL answers 403/404/410: ask fal for the result again."""


class RenameBlockedError(DownloadError):
    """The video is downloaded whole but cannot take its final name; its `.part` is kept.

    On Windows a rename fails while another program holds either file open (a video
    player, an antivirus or indexer scanning the fresh file): PermissionError,
    winerror 32 or 5. Nothing is wrong with the bytes, so they are not thrown away: the
    next run finds the complete `.part` (``size`` bytes) and only renames it.
    """

    def __init__(self, dest: Path, size: int, exc: OSError, part: Path):
        self.dest, self.size = dest, size
        why = (
            "another program has it open (a video player?) or access was denied"
            if isinstance(exc, PermissionError)
            else (exc.strerror or str(exc)).lower()
        )
        super().__init__(
            f"{dest.name} is downloaded ({size} bytes) but cannot be given its final name: "
            f"{why}. The finished download is kept as {part.name}; close what "
            "uses the file and run the same command again to finish it without downloading."
        )


class BatchInterrupted(KeyboardInterrupt):
    """A batch stopped by an interrupt (Ctrl-C, the kernel's stop button) once it has
    settled what fal has: ``result`` is its summary (None when it stopped before its
    jobs were recorded). A KeyboardInterrupt, so a notebook's Run All stops there; in a
    notebook it shows one plain "stopped" paragraph instead of a traceback."""

    def __init__(self, result: object = None):
        super().__init__()
        self.result = result

    def stopped_text(self) -> str:
        summary = getattr(self.result, "stop_line", None)
        head = summary() if callable(summary) else "stopped before any job was submitted"
        return f"{head}\nRun the cell (or Run All) again to resume."

    def _render_traceback_(self) -> list[str]:  # IPython shows this instead of a traceback
        return self.stopped_text().splitlines()
