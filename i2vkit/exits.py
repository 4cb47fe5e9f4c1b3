"""How a batch command ends: its exit code, and one line for an error.

The same from `i2vkit bulk`, `i2vkit retry` and the exported notebook script:
0 every job has its video; 1 some jobs failed (the summary says which and why);
2 bad input or settings, spending not confirmed, or over the spend cap (nothing
submitted); 3 the batch was stopped (401 bad key, 403 locked account); 4 the backend
cannot be reached, or answers but not as fal does (nothing uploaded or submitted); 130 interrupted with Ctrl-C (resume
with the same command).
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .blocking import keep_ctrl_c
from .config import load_settings, redact
from .errors import (
    BackendUnreachable,
    ConfigError,
    I2vkitError,
    InputError,
    NotFal,
    StoreError,
)

if TYPE_CHECKING:
    from .engine.progress import BatchResult

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_STOPPED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_UNREACHABLE = 4  # fal / I2VKIT_FAL_URL not reached, or not fal; nothing sent or failed
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a C tool killed by `| head` returns


def exit_code(result: BatchResult) -> int:
    """The exit code of a finished (or stopped, or interrupted) batch."""
    if result.fatal:
        return EXIT_STOPPED
    if result.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if result.ok else EXIT_FAILED


def error_exit_code(exc: BaseException) -> int:
    """Bad input or settings is 2 (nothing submitted); any other i2vkit error stopped a batch."""
    if isinstance(exc, ConfigError | InputError | StoreError):
        return EXIT_INPUT
    if isinstance(exc, BackendUnreachable | NotFal):
        return EXIT_UNREACHABLE
    return EXIT_STOPPED


def report_error(exc: BaseException, key: str | None = None) -> int:
    """Print an i2vkit error as one line (the key redacted) and return its exit code."""
    print(f"error: {redact(str(exc), key)}", file=sys.stderr)
    return error_exit_code(exc)


def print_resume(command: Sequence[str]) -> None:
    print(
        "Interrupted: every job is in the ledger as the summary says; the same command again "
        "submits the pending and cancelled jobs and downloads what ran. Resume with:"
    )
    print("  " + shlex.join(command))


def install_script_hooks(resume: Sequence[str]) -> None:
    """In the exported script, end an i2vkit error or a Ctrl-C the way `i2vkit bulk` does:
    one line (no traceback) and the same exit code, or the resume command and 130."""
    if getattr(sys.excepthook, "_i2vkit", False):
        return
    keep_ctrl_c()
    previous = sys.excepthook

    def hook(kind, value, tb):  # type: ignore[no-untyped-def]
        if isinstance(value, KeyboardInterrupt):
            stopped = getattr(value, "result", None)
            if stopped is not None:
                print(stopped.summary())
            print_resume(resume)
            sys.stdout.flush()
            os._exit(EXIT_INTERRUPTED)
        if isinstance(value, I2vkitError):
            try:
                key = load_settings().fal_key
            except I2vkitError:
                key = None
            code = report_error(value, key)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        previous(kind, value, tb)

    hook._i2vkit = True  # type: ignore[attr-defined]
    sys.excepthook = hook
