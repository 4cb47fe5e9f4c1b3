"""A job's life in the ledger: one status vocabulary and the named moves between statuses.

Every place that reads or writes a job's status uses :class:`JobStatus` (SQL
parameters included), and every move is one function here, so "back to pending"
means the same thing (and clears the same fields) wherever it happens.

    pending -> submitting -> queued -> running -> completed -> downloaded
                   |            \\________\\___________\\-> failed / cancelled
                   '-> pending (released: not sent, or sent and known lost)

`submitting` is the one-request window: the job is claimed (compare-and-set, so two
processes never both pay for it) right before the POST and gets its request_id
right after.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import TYPE_CHECKING, Any

import psutil

from . import store as ledger
from .billing import CANCELLED_QUEUED, CANCELLED_RUNNING, billable_requests
from .job_status import FINISHED, IN_FLIGHT, OPEN, UNSUCCESSFUL, JobStatus

if TYPE_CHECKING:
    from .rows import JobRow
    from .store import Store

# The status vocabulary is defined in job_status.py (below the ledger, which names
# statuses in its SQL) and offered here too, next to the moves between statuses.
__all__ = [
    "CONTINUE",
    "FINISHED",
    "IN_FLIGHT",
    "OPEN",
    "RELEASE",
    "SKIP",
    "START_TIME_TOLERANCE",
    "TAKE_OVER",
    "UNSUCCESSFUL",
    "JobStatus",
    "Jobs",
    "owner_alive",
    "process_owner",
    "resume_action",
    "retire_owner",
]

# What a job forgets when it goes back to pending: everything about a submission.
_SUBMISSION = {
    "request_id": None,
    "status_url": None,
    "response_url": None,
    "cancel_url": None,
    "queue_position": None,
    "video_url": None,
    "video_size": None,
    "local_file": None,  # a new submission's video gets a new name
    "owner": None,
    "submitted_at": None,
    "started_at": None,
    "completed_at": None,
}


def process_owner() -> str:
    """Who owns a claimed job: ``host:pid:nonce:start``.

    The start time is the process's creation time as the OS reports it, which with the
    pid names one process for good: pids are reused, and a later process that got the
    owner's pid must not pass for it (see :func:`owner_alive`)."""
    me = psutil.Process()
    owner = f"{socket.gethostname()}:{me.pid}:{uuid.uuid4().hex[:8]}:{me.create_time():.2f}"
    _RUNNING.add(owner)
    return owner


#: The owners of this process whose run has not ended (see :func:`retire_owner`).
_RUNNING: set[str] = set()


def retire_owner(owner: str) -> None:
    """A run of this process has ended: its jobs no longer have a live owner.

    A notebook kernel runs batch after batch in one process; without this, the jobs an
    earlier run left (a download to finish) would look owned by a live process forever."""
    _RUNNING.discard(owner)


#: Start times are compared this loosely: a wall-clock step moves the boot time that
#: Linux derives them from; no pid is reused within a second of its first start.
START_TIME_TOLERANCE = 1.0


def owner_alive(owner: str | None) -> bool:
    """Is the process that owns a job still running? (Only knowable on this host.)

    Only looks: ``os.kill(pid, 0)``, the POSIX idiom, *terminates* the process on
    Windows, which would kill the notebook kernel that owns the jobs of a batch being
    resumed. psutil asks each OS without touching the process. An owner string written
    before the start time was recorded (``host:pid:nonce``) is judged by its pid alone.
    """
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text, _, rest = rest.partition(":")
    start_text = rest.partition(":")[2]
    if host != socket.gethostname() or not pid_text.isdigit() or int(pid_text) <= 0:
        return False
    pid = int(pid_text)
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:  # exited, not yet reaped by its parent
            return False
        started = proc.create_time()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # another user's process: it exists, its start is hidden
        return psutil.pid_exists(pid)
    if pid == os.getpid() and owner not in _RUNNING:
        return False  # an earlier run of this very process, since ended
    try:
        recorded = float(start_text)
    except ValueError:  # written by an earlier version: the pid is all there is
        return True
    return abs(started - recorded) <= START_TIME_TOLERANCE


def _ended(status: JobStatus, message: str, error_type: str | None) -> dict[str, Any]:
    return {
        "status": status,
        "error": message,
        "error_type": error_type,
        "completed_at": ledger.utcnow(),
    }


def _earlier_requests(job: JobRow) -> dict[str, int]:
    """A released job forgets its request; one fal may have billed (billing.py) is kept
    as a count for the batch's cost."""
    return {"earlier_requests": billable_requests(job, unanswered=False)}


class Jobs:
    """The ledger transitions of one process (`owner`) over a :class:`Store`."""

    def __init__(self, store: Store, owner: str | None = None):
        self.store = store
        self.owner = owner or process_owner()

    def get(self, job_id: int) -> JobRow:
        return self.store.job(job_id)

    def claim(self, job_id: int, **fields: Any) -> bool:
        """pending -> submitting for this process; False if another process got there first.

        Only from pending: a job another process claimed meanwhile is `submitting`
        and must not be claimed (and paid for) a second time. `fields` (the exact arguments
        about to be POSTed) are written in the same statement: one write per submit."""
        return self.store.claim(job_id, self.owner, [JobStatus.PENDING], **fields)

    def take_over(self, job: JobRow) -> bool:
        """Adopt a job whose owner died (compare-and-set on that owner: of several
        resuming processes exactly one wins)."""
        return self._if(job, owner=self.owner)

    def release(self, job: JobRow | int, *, error: str | None = None, **extra: Any) -> None:
        """Back to pending, forgetting the submission: it was never sent, or fal lost it.

        With a `job` row the move is a compare-and-set on its status and owner, so a
        process only releases what it still holds."""
        fields = {**_SUBMISSION, "status": JobStatus.PENDING, "error": error, **extra}
        if isinstance(job, int):
            self.store.update_job(job, **fields)
        else:
            self._if(job, **fields, **_earlier_requests(job))

    def release_if(self, job: JobRow, **extra: Any) -> bool:
        """Release only if status and owner are still what `job` says; True if it moved.
        What went wrong before is forgotten with the request: a job cancelled in an earlier
        run and waiting again is not reported as cancelled."""
        fields = {
            **_SUBMISSION,
            "status": JobStatus.PENDING,
            "error": None,
            "error_type": None,
            **_earlier_requests(job),
            **extra,
        }
        return self._if(job, **fields)

    def submitted(self, job_id: int, request_id: str, urls: dict[str, str], position: Any) -> None:
        self.store.update_job(
            job_id,
            request_id=request_id,
            status_url=urls["status_url"],
            response_url=urls["response_url"],
            cancel_url=urls["cancel_url"],
            status=JobStatus.QUEUED,
            queue_position=position if isinstance(position, int) else None,
            submitted_at=ledger.utcnow(),
            error=None,
            error_type=None,
        )

    def running(self, job_id: int) -> None:
        """Started at fal: a note left while it waited (a stop's unanswered cancel) is
        past."""
        self.store.update_job(
            job_id,
            status=JobStatus.RUNNING,
            started_at=ledger.utcnow(),
            queue_position=0,
            error=None,
        )

    def completed(self, job_id: int, video_url: str, size: int | None) -> None:
        self.store.update_job(
            job_id,
            status=JobStatus.COMPLETED,
            video_url=video_url,
            video_size=size,
            completed_at=ledger.utcnow(),
        )

    def downloaded(self, job_id: int, path: str) -> None:
        self.store.update_job(
            job_id,
            status=JobStatus.DOWNLOADED,
            local_file=path,
            downloaded_at=ledger.utcnow(),
            error=None,
        )

    def failed(self, job_id: int, message: str, error_type: str | None) -> None:
        self.store.update_job(job_id, **_ended(JobStatus.FAILED, message, error_type))

    def fail_if(self, job: JobRow, message: str, error_type: str | None) -> bool:
        """Fail a job only if its status and owner are still what `job` says (a request
        `i2vkit cancel` in another process has just recorded cancelled stays cancelled)."""
        return self._if(job, **_ended(JobStatus.FAILED, message, error_type))

    def cancelled(self, job_id: int, message: str, *, running: bool = False) -> None:
        """Recorded cancelled: while queued (not billed) or, `running`, while it ran."""
        kind = CANCELLED_RUNNING if running else CANCELLED_QUEUED
        self.store.update_job(job_id, **_ended(JobStatus.CANCELLED, message, kind))

    def cancel_if(self, job: JobRow, message: str, *, running: bool = False) -> bool:
        """Cancel a job only if its status and owner are still what `job` says (a pending
        job another process may be claiming right now); True if it moved."""
        kind = CANCELLED_RUNNING if running else CANCELLED_QUEUED
        return self._if(job, **_ended(JobStatus.CANCELLED, message, kind))

    def _if(self, job: JobRow, **fields: Any) -> bool:
        """Compare-and-set on the status and owner `job` was read with."""
        return self.store.update_job_if(job["id"], job["status"], job["owner"], **fields)

    def note(self, job_id: int, message: str | None) -> None:
        """A remark about a job that does not change its status (a download to retry)."""
        self.store.update_job(job_id, error=message)


# What a run does with a job it finds in the ledger (see :func:`resume_action`).
SKIP, RELEASE, TAKE_OVER, CONTINUE = "skip", "release", "take over", "continue"


def resume_action(job: JobRow, me: str, alive: bool) -> str:
    """The takeover rules: what this process (`me`) may do with a job of the ledger.

    `alive` says whether the job's recorded owner process is still running. A live
    other owner keeps its job (it is submitting, following or downloading it). A job
    left `submitting` without a request_id by a dead owner died inside the submit
    window: it is released, after fal's request history is asked whether the POST reached
    fal (engine/adopt.py). A dead owner's submitted job is taken over (a compare-and-set
    on that owner, so of several resuming processes one wins). A cancelled job (stopped
    while it waited in fal's queue, never billed) goes back to pending: running the
    batch again submits what was cancelled.
    """
    status, owner = job["status"], job["owner"]
    if status == JobStatus.FAILED:
        return SKIP
    if status == JobStatus.CANCELLED:
        return RELEASE
    if status == JobStatus.DOWNLOADED:
        return CONTINUE
    foreign = owner is not None and owner != me
    if status == JobStatus.SUBMITTING and job["request_id"] is None:
        return SKIP if foreign and alive else RELEASE
    if status in (*IN_FLIGHT, JobStatus.COMPLETED) and owner != me:
        return SKIP if foreign and alive else TAKE_OVER
    return CONTINUE
