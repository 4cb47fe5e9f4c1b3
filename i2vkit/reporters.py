"""Progress of a running batch on a terminal (tqdm bars) or in a log (a line now and then).

`i2vkit bulk`, `i2vkit retry`, the exported script and the notebook's text fallback all
report through :func:`progress_reporter`.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import IO, Any, Protocol

from .engine.progress import Progress
from .spending import is_interactive

PROGRESS_EVERY_SECONDS = 5.0  # progress lines when stderr is a log, not a terminal


class Reporter(Protocol):
    def __call__(self, p: Progress) -> None: ...
    def close(self) -> None: ...


def progress_line(p: Progress) -> str:
    """Every job in exactly one place (the counters sum to the job count), as the ledger
    has it: the same words and numbers as the summary's status counts."""
    stopped = f"{p.state}: " if p.state in ("stopping", "stopped") else ""
    return (
        f"{stopped}uploaded {p.uploaded}/{p.uploads_total}  pending {p.pending}  "
        f"queued {p.queued}  running {p.running}  completed {p.completed}  "
        f"downloaded {p.downloaded}/{p.total}  failed {p.failed}  cancelled {p.cancelled}"
        + (f"  {p.waiting}" if p.waiting else "")
        + (f"  ({p.message})" if p.message else "")
    )


class ProgressLines:
    """One plain line at the first update, then at most one every ``interval`` seconds
    (and one when jobs start waiting in fal's queue, with their positions), and the last
    state when every job is finished (or on close): for logs and pipes, where tqdm's redrawn bars would be
    either invisible or a wall of carriage returns."""

    def __init__(self, stream: IO[str] | None = None, interval: float = PROGRESS_EVERY_SECONDS):
        self.stream = stream
        self.interval = interval
        self.last: Progress | None = None
        self.state = "running"
        self._printed = ""
        self._printed_at: float | None = None
        self._waiting_shown = False  # a line said that jobs wait in fal's queue
        self._lock = threading.Lock()

    def _print(self, line: str) -> None:
        print(line, file=self.stream or sys.stderr, flush=True)
        self._printed, self._printed_at = line, time.monotonic()

    def __call__(self, p: Progress) -> None:
        if not (p.total or p.uploads_total):
            return  # nothing counted yet: a line of zeros says nothing
        with self._lock:
            self.last = p
            line = progress_line(p)
            done = p.downloaded + p.failed + p.cancelled
            finished = p.state in ("stopped", "finished") or (p.total > 0 and done >= p.total)
            due = self._printed_at is None or time.monotonic() - self._printed_at >= self.interval
            changed = self.state != p.state  # stopping, stopped, finished: said at once
            self.state = p.state
            # jobs starting to wait in fal's queue is news: a queue that does not move would
            # otherwise bring no later update to print it with
            waits = bool(p.queue_positions) and not self._waiting_shown
            if (due or finished or changed or waits) and line != self._printed:
                self._print(line)
                self._waiting_shown = bool(p.queue_positions)

    def close(self) -> None:
        with self._lock:
            if self.last is not None and progress_line(self.last) != self._printed:
                self._print(progress_line(self.last))


class TerminalBars:
    """tqdm bars on an interactive stderr, fed by the engine's progress callback."""

    ROWS = [  # label, value field, total field, unit
        ("uploads", "uploaded", "uploads_total", "image"),
        ("submitted", "submitted", "total", "job"),
        ("downloaded", "downloaded", "total", "job"),
        ("failed", "failed", "total", "job"),
        ("cancelled", "cancelled", "total", "job"),
    ]
    # no rate: uploads found in the cache count in an instant (a meaningless 90000 image/s)
    FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}]{postfix}"

    def __init__(self, stream: IO[str] | None = None):
        self.stream = stream
        self.bars: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.said = ""

    def __call__(self, p: Progress) -> None:
        from tqdm import tqdm

        with self.lock:
            if p.state == "stopping" and p.message != self.said:
                self.said = p.message
                tqdm.write(p.message, file=self.stream or sys.stderr)
            for name, value, total, unit in self.ROWS:
                bar = self.bars.get(name)
                if bar is None:
                    bar = self.bars[name] = tqdm(
                        total=getattr(p, total),
                        desc=f"{name:>10}",
                        unit=unit,
                        position=len(self.bars),
                        leave=True,
                        bar_format=self.FORMAT,
                        file=self.stream or sys.stderr,
                    )
                bar.total = getattr(p, total)
                bar.n = getattr(p, value)
                if name == "submitted":  # how many wait in fal's queue, the next's position
                    bar.set_postfix_str(p.waiting, refresh=False)
                bar.refresh()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


class NoProgress:
    """No progress; but what a stop waits for is said (the user pressed Ctrl-C)."""

    def __init__(self, stream: IO[str] | None = None):
        self.stream, self.said = stream, ""

    def __call__(self, p: Progress) -> None:
        if p.state == "stopping" and p.message != self.said:
            self.said = p.message
            print(p.message, file=self.stream or sys.stderr, flush=True)

    def close(self) -> None:
        pass


def progress_reporter(enabled: bool = True, stream: IO[str] | None = None) -> Reporter:
    """Bars on a terminal, a line every few seconds in a log or pipe, nothing if disabled."""
    stream = stream or sys.stderr
    if not enabled:
        return NoProgress(stream)
    return TerminalBars(stream) if is_interactive(stream) else ProgressLines(stream)
