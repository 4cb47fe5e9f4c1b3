"""The one status vocabulary of a job in the ledger: :class:`JobStatus` and its groups.

It sits below both the ledger (:mod:`i2vkit.store`, which puts statuses in its SQL) and
the moves between statuses (:mod:`i2vkit.jobs`, which re-exports everything here), so
neither has to import the other to name a status.
"""

from __future__ import annotations

import enum

__all__ = ["FINISHED", "IN_FLIGHT", "OPEN", "UNSUCCESSFUL", "JobStatus"]


class JobStatus(enum.StrEnum):
    PENDING = "pending"  # in the ledger, never sent to fal
    SUBMITTING = "submitting"  # POST in flight: after a crash fal may or may not have it
    QUEUED = "queued"  # fal gave us a request_id
    RUNNING = "running"
    COMPLETED = "completed"  # result fetched, video URL recorded, not on disk yet
    DOWNLOADED = "downloaded"  # the mp4 is on disk: done
    FAILED = "failed"
    CANCELLED = "cancelled"


IN_FLIGHT = (JobStatus.SUBMITTING, JobStatus.QUEUED, JobStatus.RUNNING)
OPEN = (JobStatus.PENDING, *IN_FLIGHT, JobStatus.COMPLETED)
FINISHED = (JobStatus.DOWNLOADED, JobStatus.FAILED, JobStatus.CANCELLED)
UNSUCCESSFUL = (JobStatus.FAILED, JobStatus.CANCELLED)
