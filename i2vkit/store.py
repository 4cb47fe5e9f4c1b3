"""The SQLite ledger: the durable log of every upload and every job.

The ledger is the source of truth for resume: a job is written before it is
submitted, its fal request_id the moment it arrives, and its video URL before
the download starts. Schema changes are small numbered migrations, so a file
made by an older version opens and upgrades in place (the `llm` way).
WAL mode and a generous busy timeout let a notebook and a CLI share one file.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from . import job_status as jobs  # the status vocabulary, as jobs.JobStatus
from .errors import StoreError
from .rows import BatchListRow, BatchRow, JobRow, PriceOverrideRow, UploadRow

BUSY_TIMEOUT_MS = 60_000


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _m001_upload_cache(db: sqlite_utils.Database) -> None:
    """The PRD's table, exactly as the first version created it."""
    db.execute(
        """CREATE TABLE IF NOT EXISTS upload_cache (
            id INTEGER PRIMARY KEY,
            local_path TEXT UNIQUE,
            file_hash TEXT,
            fal_url TEXT,
            uploaded_at TIMESTAMP
        )"""
    )


SQL_TYPES = {int: "INTEGER", str: "TEXT"}


def _m002_upload_cache_validity(db: sqlite_utils.Database) -> None:
    """What caching correctly needs: skip-hash keys, expiry and which backend a URL is for."""
    table = db["upload_cache"]
    for column, kind in [
        ("size", int),
        ("mtime_ns", int),
        ("content_type", str),
        ("expires_at", str),
        ("backend", str),
    ]:
        if column not in table.columns_dict:
            db.execute(f"ALTER TABLE upload_cache ADD COLUMN {column} {SQL_TYPES[kind]}")
    db.execute("UPDATE upload_cache SET backend = 'fal' WHERE backend IS NULL")
    db.execute(
        "CREATE INDEX IF NOT EXISTS idx_upload_cache_hash ON upload_cache (file_hash, backend)"
    )


def _m003_batches_and_jobs(db: sqlite_utils.Database) -> None:
    db.execute(
        """CREATE TABLE IF NOT EXISTS batches (
            id TEXT PRIMARY KEY,
            created_at TEXT NOT NULL,
            updated_at TEXT,
            model TEXT NOT NULL,
            endpoint_id TEXT NOT NULL,
            options TEXT,
            pairing TEXT NOT NULL,
            images_dir TEXT,
            prompts_source TEXT,
            output_dir TEXT NOT NULL,
            backend TEXT NOT NULL,
            job_count INTEGER
        )"""
    )
    db.execute(
        """CREATE TABLE IF NOT EXISTS jobs (
            id INTEGER PRIMARY KEY,
            batch_id TEXT NOT NULL REFERENCES batches(id),
            job_key TEXT NOT NULL,
            pair_index INTEGER,
            image_path TEXT NOT NULL,
            image_hash TEXT,
            image_url TEXT,
            prompt TEXT NOT NULL,
            model TEXT NOT NULL,
            endpoint_id TEXT NOT NULL,
            arguments TEXT,
            request_id TEXT,
            status_url TEXT,
            response_url TEXT,
            cancel_url TEXT,
            status TEXT NOT NULL,
            queue_position INTEGER,
            video_url TEXT,
            video_size INTEGER,
            local_file TEXT,
            error TEXT,
            error_type TEXT,
            created_at TEXT NOT NULL,
            submitted_at TEXT,
            started_at TEXT,
            completed_at TEXT,
            downloaded_at TEXT,
            backend TEXT NOT NULL,
            owner TEXT,
            submit_attempts INTEGER NOT NULL DEFAULT 0,
            status_requests INTEGER NOT NULL DEFAULT 0,
            result_requests INTEGER NOT NULL DEFAULT 0,
            download_attempts INTEGER NOT NULL DEFAULT 0,
            UNIQUE (batch_id, job_key)
        )"""
    )
    db.execute("CREATE INDEX IF NOT EXISTS idx_jobs_batch_status ON jobs (batch_id, status)")
    db.execute("CREATE INDEX IF NOT EXISTS idx_jobs_request ON jobs (request_id)")


def _m004_catalogue(db: sqlite_utils.Database) -> None:
    """The model catalogue read from fal's Platform API, one copy per backend."""
    db.execute(
        """CREATE TABLE IF NOT EXISTS catalogue (
            backend TEXT PRIMARY KEY,
            read_at TEXT NOT NULL,
            data TEXT NOT NULL
        )"""
    )


def _m005_jobs_per_job_model(db: sqlite_utils.Database) -> None:
    """Each job carries its own model, options, take and seed, so one batch can compare
    models and takes; keepers are the user's picks; a shot-list row names its shot and may
    give an end frame of its own."""
    have = set(db["jobs"].columns_dict)
    for column, ddl in [
        ("take", "INTEGER NOT NULL DEFAULT 1"),
        ("seed", "INTEGER"),
        ("shot_name", "TEXT"),
        ("options", "TEXT"),
        ("keeper", "INTEGER NOT NULL DEFAULT 0"),
        ("end_image_path", "TEXT"),
    ]:
        if column not in have:
            db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {ddl}")
    # rows from before: their options were the batch's
    db.execute(
        "UPDATE jobs SET options = (SELECT options FROM batches WHERE batches.id = jobs.batch_id)"
        " WHERE options IS NULL"
    )


def _m006_status_streams(db: sqlite_utils.Database) -> None:
    """How many of a job's status requests were streams (fal's status stream follows a job
    with one request; polls are the rest of status_requests)."""
    if "status_streams" not in db["jobs"].columns_dict:
        db.execute("ALTER TABLE jobs ADD COLUMN status_streams INTEGER NOT NULL DEFAULT 0")


def _m007_earlier_requests(db: sqlite_utils.Database) -> None:
    """How many requests a job had at fal before its current one (a failed request that a
    retry or a fresh image upload replaced): fal may have billed them, so the batch's
    cost counts them after the job's row has forgotten their request ids."""
    if "earlier_requests" not in db["jobs"].columns_dict:
        db.execute("ALTER TABLE jobs ADD COLUMN earlier_requests INTEGER NOT NULL DEFAULT 0")


def _m008_batch_names(db: sqlite_utils.Database) -> None:
    """A batch's name (``--batch NAME``) and identity (what it is, as JSON: folder, prompts,
    models, options, pairing, output folder, backend). A batch an earlier version wrote
    has no identity yet: the first run that matches it records one (planning/identity.py)."""
    for column in ("name", "identity"):
        if column not in db["batches"].columns_dict:
            db.execute(f"ALTER TABLE batches ADD COLUMN {column} TEXT")
    db.execute(
        "CREATE UNIQUE INDEX IF NOT EXISTS idx_batches_name ON batches (name) "
        "WHERE name IS NOT NULL"
    )


def _m009_axes(db: sqlite_utils.Database) -> None:
    """What a job was varied along (``--vary`` options and prompt variables, as JSON) so the
    grid can lay clips out along any of them, and the seed of a batch's random prompt
    picks (``{~a|b}``) so the same command plans the same prompts."""
    if "axes" not in db["jobs"].columns_dict:
        db.execute("ALTER TABLE jobs ADD COLUMN axes TEXT")
    if "prompt_seed" not in db["batches"].columns_dict:
        db.execute("ALTER TABLE batches ADD COLUMN prompt_seed INTEGER")


def _m010_form_values(db: sqlite_utils.Database) -> None:
    """The notebook form's values, per notebook folder: what the user last set, so *Run All*
    and a restarted kernel show the same batch (notebook/memory.py)."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS form_values (place TEXT PRIMARY KEY, "
        "form_values TEXT NOT NULL, saved_at TEXT NOT NULL)"
    )


def _m011_billing(db: sqlite_utils.Database) -> None:
    """What fal billed each request (read by `i2vkit cost`), and unit prices fal billed
    that differ from the catalogue's: the next plan prices the model at what fal billed."""
    db.execute(
        """CREATE TABLE IF NOT EXISTS billed (
            request_id TEXT PRIMARY KEY,
            endpoint_id TEXT NOT NULL,
            billed_usd REAL NOT NULL,
            unit_price REAL,
            units REAL,
            billed_at TEXT,
            read_at TEXT NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE IF NOT EXISTS price_overrides (
            backend TEXT NOT NULL,
            endpoint_id TEXT NOT NULL,
            unit_price REAL NOT NULL,
            catalogue_unit_price REAL,
            source TEXT NOT NULL,
            read_at TEXT NOT NULL,
            PRIMARY KEY (backend, endpoint_id)
        )"""
    )


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _m001_upload_cache,
    _m002_upload_cache_validity,
    _m003_batches_and_jobs,
    _m004_catalogue,
    _m005_jobs_per_job_model,
    _m006_status_streams,
    _m007_earlier_requests,
    _m008_batch_names,
    _m009_axes,
    _m010_form_values,
    _m011_billing,
]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: sqlite_utils.Database) -> int:
    """Apply every migration this file has not seen yet; return the resulting version."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS _i2vkit_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)"
    )
    # one process migrates at a time (the others wait on the write lock, then see it done)
    db.execute("BEGIN IMMEDIATE")
    try:
        done = {r[0] for r in db.execute("SELECT version FROM _i2vkit_migrations").fetchall()}
        for version, step in enumerate(MIGRATIONS, start=1):
            if version in done:
                continue
            step(db)
            db.execute(
                "INSERT INTO _i2vkit_migrations (version, applied_at) VALUES (?, ?)",
                [version, utcnow()],
            )
        db.execute("COMMIT")
    except BaseException:
        if db.conn.in_transaction:
            db.execute("ROLLBACK")
        raise
    return max(done | set(range(1, SCHEMA_VERSION + 1)))


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
