"""The ledger: migrations from an old file, WAL, and the submit claim."""

import sqlite3

from i2vkit.jobs import Jobs, JobStatus
from i2vkit.migrations import SCHEMA_VERSION
from i2vkit.store import Store

PENDING, SUBMITTING = JobStatus.PENDING, JobStatus.SUBMITTING


def make_v1_file(path):
    """A database exactly as the PRD's first version created it, with a row in it."""
    conn = sqlite3.connect(path)
    conn.execute(
        """CREATE TABLE upload_cache (
            id INTEGER PRIMARY KEY, local_path TEXT UNIQUE, file_hash TEXT,
            fal_url TEXT, uploaded_at TIMESTAMP)"""
    )
    conn.execute(
        "INSERT INTO upload_cache (local_path, file_hash, fal_url, uploaded_at) VALUES (?,?,?,?)",
        ["/pics/a.jpg", "abc", "https://v3.fal.media/files/x/a.jpg", "2025-01-01 00:00:00"],
    )
    conn.commit()
    conn.close()


def test_version1_file_upgrades_in_place(tmp_path):
    path = tmp_path / "old.db"
    make_v1_file(path)
    with Store(path) as store:
        assert store.version == SCHEMA_VERSION
        cols = store.db["upload_cache"].columns_dict
        for c in [
            "local_path",
            "file_hash",
            "fal_url",
            "uploaded_at",
            "size",
            "mtime_ns",
            "content_type",
            "expires_at",
            "backend",
        ]:
            assert c in cols
        row = store.cached_by_path("/pics/a.jpg")
        assert row["fal_url"] == "https://v3.fal.media/files/x/a.jpg"
        assert row["backend"] == "fal"
        assert "jobs" in store.db.table_names() and "batches" in store.db.table_names()
    # opening again applies nothing new and keeps the data
    with Store(path) as store:
        assert store.version == SCHEMA_VERSION
        assert store.db["upload_cache"].count == 1
        versions = [r[0] for r in store.db.execute("SELECT version FROM _i2vkit_migrations")]
        assert versions == list(range(1, SCHEMA_VERSION + 1))


def test_wal_mode_and_two_connections(tmp_path):
    path = tmp_path / "l.db"
    a, b = Store(path), Store(path)
    assert a.db.journal_mode == "wal"
    a.remember_upload(
        local_path="/x.png",
        file_hash="h",
        fal_url="u",
        uploaded_at="t",
        backend="fal",
        size=1,
        mtime_ns=2,
    )
    assert b.cached_by_hash("h", "fal", "0")["fal_url"] == "u"
    a.close()
    b.close()


def test_cache_filters_backend_and_expiry(tmp_path):
    with Store(tmp_path / "l.db") as s:
        s.remember_upload(
            local_path="/a.png",
            file_hash="h",
            fal_url="emu-url",
            uploaded_at="t",
            backend="http://127.0.0.1:1",
            expires_at="2026-01-01T00:00:00+00:00",
        )
        assert s.cached_by_hash("h", "fal", "2025") is None
        assert s.cached_by_hash("h", "http://127.0.0.1:1", "2025-06-01")["fal_url"] == "emu-url"
        assert s.cached_by_hash("h", "http://127.0.0.1:1", "2026-06-01") is None


BATCH = {
    "model": "wan",
    "endpoint_id": "fal-ai/wan-i2v",
    "pairing": "all",
    "output_dir": "/o",
    "backend": "fal",
    "job_count": 1,
}


def one_job(batch_id: str) -> list[dict]:
    """The planned row of a batch's single job."""
    return [
        {
            "batch_id": batch_id,
            "job_key": "k",
            "pair_index": 0,
            "image_path": "/a.png",
            "prompt": "p",
            "model": "wan",
            "endpoint_id": "fal-ai/wan-i2v",
            "backend": "fal",
        }
    ]


def test_claim_is_exclusive(tmp_path):
    path = tmp_path / "l.db"
    a, b = Store(path), Store(path)
    a.save_batch({"id": "b1", **BATCH})
    a.add_jobs(one_job("b1"))
    job = a.jobs("b1")[0]
    assert job["status"] == PENDING
    assert a.claim(job["id"], "proc-a", [PENDING]) is True
    assert b.claim(job["id"], "proc-b", [PENDING]) is False
    row = b.job(job["id"])
    assert row["status"] == SUBMITTING and row["owner"] == "proc-a" and row["submit_attempts"] == 1
    # planning the same job again keeps the existing row
    a.add_jobs(one_job("b1"))
    assert len(a.jobs("b1")) == 1 and a.jobs("b1")[0]["status"] == SUBMITTING
    a.close()
    b.close()


def test_update_job_if_is_a_compare_and_set_on_status_and_owner(tmp_path):
    with Store(tmp_path / "l.db") as s:
        s.save_batch({"id": "b", **BATCH})
        s.add_jobs(one_job("b"))
        job = s.jobs("b")[0]
        assert s.update_job_if(job["id"], "pending", None, owner="me", status="queued")
        assert not s.update_job_if(job["id"], "pending", None, owner="you")
        assert s.job(job["id"])["owner"] == "me"


def test_a_cancelled_job_waiting_again_forgets_why_it_was_cancelled(tmp_path):
    """Released for the next submit, a job cancelled in an earlier run is pending with no
    reason: a stop before its submit must not report it "cancelled while it waited"."""
    with Store(tmp_path / "l.db") as store:
        store.save_batch({"id": "b1", **BATCH})
        store.add_jobs(one_job("b1"))
        jobs = Jobs(store)
        job_id = store.jobs("b1")[0]["id"]
        jobs.cancelled(job_id, "cancelled while it waited in fal's queue")
        assert jobs.release_if(store.job(job_id))
        row = store.job(job_id)
        assert (row["status"], row["error"], row["error_type"]) == (PENDING, None, None)


def test_a_job_seen_running_loses_the_note_left_while_it_waited(tmp_path):
    """A stop notes on a queued job that its cancel went unanswered; once a later run sees
    it running, `i2vkit status` must not still say it "may still be queued"."""
    with Store(tmp_path / "l.db") as store:
        store.save_batch({"id": "b1", **BATCH})
        store.add_jobs(one_job("b1"))
        jobs = Jobs(store)
        job_id = store.jobs("b1")[0]["id"]
        urls = {f"{k}_url": f"http://127.0.0.1:1/{k}" for k in ("status", "response", "cancel")}
        jobs.submitted(job_id, "req-1", urls, 3)
        jobs.note(job_id, "stopped while its cancel was unanswered: it may still be queued")
        assert store.job(job_id)["error"]
        jobs.running(job_id)
        row = store.job(job_id)
        assert (row["status"], row["error"]) == (JobStatus.RUNNING, None)
