"""The SQLite ledger: the durable log of every upload and every job.

The ledger is the source of truth for resume: a job is written before it is
submitted, its fal request_id the moment it arrives, and its video URL before
the download starts. Schema changes are small numbered migrations (migrations.py), so a file
made by an older version opens and upgrades in place (the `llm` way).
WAL mode and a generous busy timeout let a notebook and a CLI share one file.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sqlite_utils

from . import job_status as jobs  # the status vocabulary, as jobs.JobStatus
from .errors import StoreError
from .migrations import migrate
from .rows import BatchListRow, BatchRow, JobRow, PriceOverrideRow, UploadRow
from .timestamps import utcnow

BUSY_TIMEOUT_MS = 60_000


def enable_wal(db: sqlite_utils.Database, timeout: float) -> None:
    """Switch to WAL, waiting while another process holds the file: SQLite answers a
    journal-mode change with 'database is locked' at once, without its busy handler."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            db.enable_wal()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class Store:
    """A ledger file. One object per process; every write is its own short transaction."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self.db = sqlite_utils.Database(conn)
            enable_wal(self.db, BUSY_TIMEOUT_MS / 1000)
            # WAL + NORMAL: a commit survives a crash or kill -9 of this process (what resume
            # relies on); only an OS crash or power cut can lose the last few commits.
            conn.execute("PRAGMA synchronous = NORMAL")
            self.version = migrate(self.db)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(
                f"Cannot open the i2vkit ledger at {self.path}: {exc}. "
                "Set I2VKIT_DB to a writable file path."
            ) from exc

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        try:
            return self.db.execute(sql, list(params))
        except sqlite3.OperationalError as exc:
            raise StoreError(
                f"Could not write to the ledger {self.path}: {exc}. If another program holds a "
                "lock on it, close that program and run the same command again."
            ) from exc

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        """The rows as dicts; each method names their shape (a TypedDict of rows.py)."""
        return list(self.db.query(sql, list(params)))

    # -- the notebook form's values -----------------------------------------------------

    def form_values(self, place: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT form_values FROM form_values WHERE place = ?", [place])
        return json.loads(rows[0]["form_values"]) if rows else None

    def save_form_values(self, place: str, values: dict[str, Any]) -> None:
        self._write(
            "INSERT INTO form_values (place, form_values, saved_at) VALUES (?, ?, ?) "
            "ON CONFLICT (place) DO UPDATE SET form_values = excluded.form_values, "
            "saved_at = excluded.saved_at",
            [place, json.dumps(values, sort_keys=True), utcnow()],
        )

    def forget_form_values(self, place: str) -> None:
        self._write("DELETE FROM form_values WHERE place = ?", [place])

    # -- upload cache ------------------------------------------------------------------

    def cached_by_path(self, local_path: str) -> UploadRow | None:
        rows: list[UploadRow] = self._rows(
            "SELECT * FROM upload_cache WHERE local_path = ?", [local_path]
        )
        return rows[0] if rows else None

    def cached_by_hash(self, file_hash: str, backend: str, valid_until: str) -> UploadRow | None:
        """A URL for these bytes on this backend that is still valid at `valid_until`."""
        rows: list[UploadRow] = self._rows(
            """SELECT * FROM upload_cache WHERE file_hash = ? AND backend = ?
               AND fal_url IS NOT NULL AND (expires_at IS NULL OR expires_at > ?)
               ORDER BY uploaded_at DESC LIMIT 1""",
            [file_hash, backend, valid_until],
        )
        return rows[0] if rows else None

    def remember_upload(self, **row: Any) -> None:
        """Insert or replace the cache row of one local path."""
        columns = list(row)
        self._write(
            f"""INSERT INTO upload_cache ({", ".join(columns)}) VALUES ({", ".join("?" * len(columns))})
                ON CONFLICT(local_path) DO UPDATE SET
                {", ".join(f"{c} = excluded.{c}" for c in columns if c != "local_path")}""",
            [row[c] for c in columns],
        )

    def expire_url(self, fal_url: str) -> None:
        """fal could not fetch this URL: no cache row may hand it out again."""
        self._write("UPDATE upload_cache SET expires_at = ? WHERE fal_url = ?", [utcnow(), fal_url])

    # -- batches and jobs ----------------------------------------------------------------

    def save_batch(self, batch: dict[str, Any]) -> None:
        """Record a batch, or update one the ledger has; a batch an earlier version wrote
        (no identity yet) takes the identity, and the name, of the run that continues it."""
        now = utcnow()
        existing = self.get_batch_exact(batch["id"])
        if existing:
            self._write(
                """UPDATE batches SET updated_at = ?, job_count = ?,
                   identity = COALESCE(identity, ?), name = COALESCE(name, ?),
                   prompt_seed = COALESCE(?, prompt_seed) WHERE id = ?""",
                [
                    now,
                    batch.get("job_count"),
                    batch.get("identity"),
                    batch.get("name"),
                    batch.get("prompt_seed"),
                    batch["id"],
                ],
            )
            return
        row = {**batch, "created_at": now, "updated_at": now}
        if isinstance(row.get("options"), dict):
            row["options"] = json.dumps(row["options"], sort_keys=True)
        columns = list(row)
        self._write(
            f"INSERT OR IGNORE INTO batches ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            [row[c] for c in columns],
        )

    def get_batch(self, ref: str) -> BatchRow | None:
        """The batch a person means by ``ref``: its name, its id, or a prefix of its id."""
        found = self.batch_named(ref) or self.get_batch_exact(ref)
        if found is not None:
            return found
        rows: list[BatchRow] = self._rows(
            "SELECT * FROM batches WHERE id LIKE ? ORDER BY created_at", [ref + "%"]
        )
        if len(rows) > 1:
            raise StoreError(f"Batch id {ref!r} is ambiguous; give more characters.")
        return rows[0] if rows else None

    def get_batch_exact(self, batch_id: str) -> BatchRow | None:
        rows: list[BatchRow] = self._rows("SELECT * FROM batches WHERE id = ?", [batch_id])
        return rows[0] if rows else None

    def batch_named(self, name: str) -> BatchRow | None:
        rows: list[BatchRow] = self._rows("SELECT * FROM batches WHERE name = ?", [name])
        return rows[0] if rows else None

    # -- the model catalogue read from fal ---------------------------------------------

    def catalogue_copy(self, backend: str) -> dict[str, Any] | None:
        """The catalogue read from ``backend``'s Platform API: ``read_at`` and ``data`` (JSON)."""
        rows = self._rows("SELECT read_at, data FROM catalogue WHERE backend = ?", [backend])
        return rows[0] if rows else None

    def save_catalogue(self, backend: str, read_at: str, data: str) -> None:
        self._write(
            "INSERT OR REPLACE INTO catalogue (backend, read_at, data) VALUES (?, ?, ?)",
            [backend, read_at, data],
        )

    # -- what fal billed -----------------------------------------------------------------

    def save_billed(self, rows: Iterable[dict[str, Any]]) -> None:
        """Billing records read from fal: request_id, endpoint_id, billed_usd, unit_price,
        units, billed_at (read_at is now)."""
        now = utcnow()
        for r in rows:
            self._write(
                """INSERT OR REPLACE INTO billed (request_id, endpoint_id, billed_usd,
                   unit_price, units, billed_at, read_at) VALUES (?, ?, ?, ?, ?, ?, ?)""",
                [r["request_id"], r["endpoint_id"], r["billed_usd"], r.get("unit_price"),
                 r.get("units"), r.get("billed_at"), now],
            )  # fmt: skip

    def billed(self, request_ids: Iterable[str]) -> dict[str, float]:
        """What fal billed each of these requests, for those whose record was read."""
        ids = [i for i in request_ids if i]
        out: dict[str, float] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._rows(
                f"SELECT request_id, billed_usd FROM billed WHERE request_id IN ({marks})", chunk
            ):
                out[row["request_id"]] = row["billed_usd"]
        return out

    def set_price_override(
        self, backend: str, endpoint_id: str, unit_price: float, catalogue: float | None
    ) -> None:
        """The unit price fal billed for an endpoint, kept over the catalogue's (source
        "billed"): plans price the model at it from now on."""
        self._write(
            """INSERT OR REPLACE INTO price_overrides (backend, endpoint_id, unit_price,
               catalogue_unit_price, source, read_at) VALUES (?, ?, ?, ?, 'billed', ?)""",
            [backend, endpoint_id, unit_price, catalogue, utcnow()],
        )

    def price_overrides(self, backend: str) -> list[PriceOverrideRow]:
        return self._rows("SELECT * FROM price_overrides WHERE backend = ?", [backend])

    def list_batches(self) -> list[BatchListRow]:
        return self._rows(
            f"""SELECT b.*,
                 SUM(j.status = ?) AS done,
                 SUM(j.status = ?) AS failed,
                 SUM(j.status IN ({", ".join("?" * len(jobs.OPEN))})) AS open
               FROM batches b LEFT JOIN jobs j ON j.batch_id = b.id
               GROUP BY b.id ORDER BY b.created_at DESC""",
            [jobs.JobStatus.DOWNLOADED, jobs.JobStatus.FAILED, *jobs.OPEN],
        )

    def add_jobs(self, rows: list[dict[str, Any]]) -> None:
        """Record planned jobs; a job already in the ledger (same batch and key) is kept as is."""
        if not rows:
            return
        now = utcnow()
        columns = [*rows[0].keys(), "status", "created_at"]
        with self.db.conn:
            self.db.conn.executemany(
                f"INSERT OR IGNORE INTO jobs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                [[*r.values(), jobs.JobStatus.PENDING, now] for r in rows],
            )

    def jobs(
        self,
        batch_id: str | None = None,
        statuses: Iterable[str] | None = None,
        keys: Iterable[str] | None = None,
    ) -> list[JobRow]:
        where, params = [], []
        if batch_id is not None:
            where.append("batch_id = ?")
            params.append(batch_id)
        if statuses is not None:
            statuses = list(statuses)
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            params.extend(statuses)
        sql = "SELECT * FROM jobs" + (" WHERE " + " AND ".join(where) if where else "")
        rows: list[JobRow] = self._rows(sql + " ORDER BY pair_index, id", params)
        if keys is not None:
            wanted = set(keys)
            rows = [r for r in rows if r["job_key"] in wanted]
        return rows

    def statuses(self, batch_id: str) -> dict[int, str]:
        """Every job's status in a batch, by id (what the progress counters are read from)."""
        rows = self._rows("SELECT id, status FROM jobs WHERE batch_id = ?", [batch_id])
        return {r["id"]: r["status"] for r in rows}

    def job(self, job_id: int) -> JobRow:
        return self._rows("SELECT * FROM jobs WHERE id = ?", [job_id])[0]

    def update_job(self, job_id: int, **fields: Any) -> None:
        if not fields:
            return
        self._write(
            f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?",
            [*fields.values(), job_id],
        )

    def update_job_if(
        self, job_id: int, expect_status: str, expect_owner: str | None, /, **fields: Any
    ) -> bool:
        """Update a job only if its status and owner are still the expected ones (another
        process on the same ledger may have changed them since we read it)."""
        cursor = self._write(
            f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in fields)} "
            "WHERE id = ? AND status = ? AND owner IS ?",
            [*fields.values(), job_id, expect_status, expect_owner],
        )
        return cursor.rowcount == 1

    COUNTERS = frozenset(
        {"submit_attempts", "status_requests", "status_streams", "result_requests",
         "download_attempts"}
    )  # fmt: skip

    def count(self, job_id: int, column: str, by: int = 1, /, **also: int) -> None:
        """Bump request counters (status_requests, result_requests, ...) in one UPDATE."""
        by_column = {column: by, **also}
        assert set(by_column) <= self.COUNTERS
        self._write(
            f"UPDATE jobs SET {', '.join(f'{c} = {c} + ?' for c in by_column)} WHERE id = ?",
            [*by_column.values(), job_id],
        )

    def run_seconds(self, endpoint_id: str, limit: int) -> list[float]:
        """How long this endpoint's last `limit` finished jobs ran (started to completed)."""
        rows = self._rows(
            """SELECT (julianday(completed_at) - julianday(started_at)) * 86400.0 AS ran
               FROM jobs WHERE endpoint_id = ? AND status IN (?, ?)
               AND started_at IS NOT NULL AND completed_at IS NOT NULL
               ORDER BY completed_at DESC LIMIT ?""",
            [endpoint_id, jobs.JobStatus.COMPLETED, jobs.JobStatus.DOWNLOADED, limit],
        )
        return [r["ran"] for r in rows if r["ran"] is not None and r["ran"] > 0]

    def claim(
        self, job_id: int, owner: str, from_statuses: Iterable[str], /, **fields: Any
    ) -> bool:
        """Atomically move a job to 'submitting' for one owner (writing `fields` with it, in
        the same statement); False if someone else has it.

        This compare-and-set is what stops two processes on one batch from both paying for a job.
        """
        from_statuses = list(from_statuses)
        extra = "".join(f", {k} = ?" for k in fields)
        cursor = self._write(
            f"""UPDATE jobs SET status = ?, owner = ?, submit_attempts = submit_attempts + 1{extra}
                WHERE id = ? AND status IN ({", ".join("?" * len(from_statuses))})""",
            [jobs.JobStatus.SUBMITTING, owner, *fields.values(), job_id, *from_statuses],
        )
        return cursor.rowcount == 1
