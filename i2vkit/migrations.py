"""The ledger's schema: small numbered migrations (the `llm` way), applied in order.

A file made by an older version opens and upgrades in place; each step says why its
columns exist. `Store` (store.py) runs :func:`migrate` when it opens a file.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

from .timestamps import utcnow


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
