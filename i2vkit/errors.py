"""One exception hierarchy for the whole tool.

Every message says what went wrong, where, and what to do next, because the
people reading them are running a batch from a notebook, not debugging us.
Messages never contain the FAL_KEY (see :func:`i2vkit.config.redact`).
"""

from __future__ import annotations


class I2vkitError(Exception):
    """Base of every error i2vkit raises on purpose."""


class ConfigError(I2vkitError):
    """A setting (environment variable or .env line) has a bad value."""


class InputError(I2vkitError):
    """The images folder, prompts file, pairing or another user input is unusable."""


class ModelError(InputError):
    """An unknown model name or bad model options."""


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


class UploadError(I2vkitError):
    """One image could not be uploaded; the batch goes on without it."""


class DownloadError(I2vkitError):
    """One video could not be downloaded; the job stays recoverable."""
