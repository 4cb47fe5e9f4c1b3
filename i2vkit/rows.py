"""The shapes of the ledger's rows, as :class:`~i2vkit.store.Store` returns them.

Each table's columns are written once here, with their types, next to the migrations that
create them (:mod:`i2vkit.store`); ``tests/test_store.py`` compares these keys with a
freshly migrated ledger (``PRAGMA table_info``), so the two cannot drift apart. A column
SQLite lets be NULL is ``X | None``. Rows are plain dicts at run time (``sqlite_utils``
builds them); these types only tell mypy, and a reader, what is in them.

Timestamps are ISO 8601 text (:func:`i2vkit.store.utcnow`, read by :mod:`i2vkit.timestamps`);
``options`` and ``arguments`` are JSON text; ``status`` is a :class:`~i2vkit.jobs.JobStatus`
value; ``keeper`` is 0 or 1.
"""

from __future__ import annotations

from typing import Literal, TypedDict

from .errors import StoreError


class UploadRow(TypedDict):
    """``upload_cache``: one local file's upload to a backend's CDN."""

    id: int
    local_path: str | None
    file_hash: str | None
    fal_url: str | None
    uploaded_at: str | None
    size: int | None
    mtime_ns: int | None
    content_type: str | None
    expires_at: str | None
    backend: str | None


class BatchRow(TypedDict):
    """``batches``: one planned batch (its jobs are :class:`JobRow`)."""

    id: str
    created_at: str
    updated_at: str | None
    model: str
    endpoint_id: str
    options: str | None
    pairing: str
    images_dir: str | None
    prompts_source: str | None
    output_dir: str
    backend: str
    job_count: int | None
    name: str | None  # --batch NAME
    identity: str | None  # what the batch is, as JSON; None: written by an earlier version
    prompt_seed: int | None  # the seed of its prompts' random picks {~a|b}; None: none


class BatchListRow(BatchRow):
    """A batch as :meth:`Store.list_batches` lists it: with its jobs counted by outcome
    (None for a batch without jobs)."""

    done: int | None
    failed: int | None
    open: int | None


class JobRow(TypedDict):
    """``jobs``: one video to make, from plan to downloaded file."""

    id: int
    batch_id: str
    job_key: str
    pair_index: int | None
    image_path: str
    image_hash: str | None
    image_url: str | None
    prompt: str
    model: str
    endpoint_id: str
    arguments: str | None
    request_id: str | None
    status_url: str | None
    response_url: str | None
    cancel_url: str | None
    status: str
    queue_position: int | None
    video_url: str | None
    video_size: int | None
    local_file: str | None
    error: str | None
    error_type: str | None
    created_at: str
    submitted_at: str | None
    started_at: str | None
    completed_at: str | None
    downloaded_at: str | None
    backend: str
    owner: str | None
    submit_attempts: int
    status_requests: int
    result_requests: int
    download_attempts: int
    take: int
    seed: int | None
    shot_name: str | None
    options: str | None
    keeper: int
    end_image_path: str | None
    status_streams: int
    earlier_requests: int
    axes: str | None  # JSON {"options": {varied option: value}, "prompt": {variable: value}}


class BilledRow(TypedDict):
    """``billed``: what fal billed one request, as its billing record said (`i2vkit cost`)."""

    request_id: str
    endpoint_id: str
    billed_usd: float
    unit_price: float | None
    units: float | None
    billed_at: str | None
    read_at: str


class PriceOverrideRow(TypedDict):
    """``price_overrides``: a unit price fal billed that the catalogue's is replaced by."""

    backend: str
    endpoint_id: str
    unit_price: float
    catalogue_unit_price: float | None
    source: str  # "billed"
    read_at: str


#: The URLs a job's row holds once its status says so (see :func:`job_url`).
JobURL = Literal["image_url", "status_url", "response_url", "cancel_url", "video_url"]


def job_url(job: JobRow, column: JobURL) -> str:
    """A URL the job's status guarantees (a submitted job's request URLs, a completed job's
    video URL). A row without it was changed by hand or by a broken run: a StoreError
    names the job, and the engine records it as that job's failure."""
    value = job[column]
    if not value:
        raise StoreError(
            f"Job {job['id']} is {job['status']} but has no {column} in the ledger "
            "(was the ledger edited by hand?)."
        )
    return value


#: Each table and the TypedDict of its rows (what the drift test checks).
class FormValuesRow(TypedDict):
    """``form_values``: the notebook form's values last set in one notebook folder."""

    place: str
    form_values: str  # JSON: field name -> value
    saved_at: str


TABLES: dict[str, type] = {
    "upload_cache": UploadRow,
    "batches": BatchRow,
    "jobs": JobRow,
    "form_values": FormValuesRow,
    "billed": BilledRow,
    "price_overrides": PriceOverrideRow,
}
