"""The typed ledger rows (i2vkit/rows.py) match the ledger a fresh file migrates to."""

import types
import typing

import pytest

from i2vkit.errors import StoreError
from i2vkit.rows import TABLES, BatchListRow, BatchRow, JobRow, UploadRow, job_url
from i2vkit.store import Store

#: Tables Store never hands out as rows: the migrations' own log, and the catalogue copy
#: (read and written by catalogue/stored.py as one JSON document).
NOT_ROWS = {"_i2vkit_migrations", "catalogue"}
SQL_TYPES = {"INTEGER": int, "TEXT": str, "TIMESTAMP": str, "REAL": float}


def _columns(store: Store, table: str) -> dict[str, tuple[str, bool]]:
    """name -> (declared type, may be NULL), from SQLite itself."""
    info = store.db.execute(f"PRAGMA table_info({table})").fetchall()
    # cid, name, type, notnull, default, pk: a primary key is never NULL for i2vkit
    return {name: (kind.upper(), not notnull and not pk) for _, name, kind, notnull, _, pk in info}


def _hint(hint: object) -> tuple[type, bool]:
    """(the Python type, optional?) of one TypedDict field's annotation."""
    args = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    kinds = [a for a in args if a is not type(None)]
    assert len(kinds) == 1, hint
    return kinds[0], type(None) in args


def test_every_table_store_returns_has_a_row_type(tmp_path):
    with Store(tmp_path / "l.db") as store:
        assert set(store.db.table_names()) - NOT_ROWS == set(TABLES)


@pytest.mark.parametrize("table", sorted(TABLES))
def test_row_types_are_the_columns_of_a_migrated_ledger(tmp_path, table):
    with Store(tmp_path / "l.db") as store:
        columns = _columns(store, table)
    hints = typing.get_type_hints(TABLES[table])
    assert list(hints) == list(columns), "rows.py lists each column once, in the table's order"
    for name, (kind, nullable) in columns.items():
        python, optional = _hint(hints[name])
        assert python is SQL_TYPES[kind], f"{table}.{name} is {kind}, typed {python.__name__}"
        assert optional == nullable, f"{table}.{name}: NULL allowed={nullable}, typed {hints[name]}"


def test_rows_store_returns_have_exactly_the_typed_keys(tmp_path):
    with Store(tmp_path / "l.db") as store:
        store.save_batch(
            {"id": "b1", "model": "m", "endpoint_id": "fal-ai/m", "pairing": "all",
             "output_dir": "out", "backend": "emulator", "job_count": 1}
        )  # fmt: skip
        store.add_jobs(
            [{"batch_id": "b1", "job_key": "k", "image_path": "a.png", "prompt": "p",
              "model": "m", "endpoint_id": "fal-ai/m", "backend": "emulator"}]
        )  # fmt: skip
        store.remember_upload(local_path="/a.png", file_hash="h", fal_url="https://x/a.png")
        assert set(store.get_batch("b1")) == set(typing.get_type_hints(BatchRow))
        assert set(store.list_batches()[0]) == set(typing.get_type_hints(BatchListRow))
        job = store.jobs("b1")[0]
        assert set(job) == set(typing.get_type_hints(JobRow))
        assert set(store.cached_by_path("/a.png")) == set(typing.get_type_hints(UploadRow))


def test_job_url_names_the_job_when_its_status_promised_a_url(tmp_path):
    with Store(tmp_path / "l.db") as store:
        store.save_batch(
            {"id": "b1", "model": "m", "endpoint_id": "fal-ai/m", "pairing": "all",
             "output_dir": "out", "backend": "emulator"}
        )  # fmt: skip
        store.add_jobs(
            [{"batch_id": "b1", "job_key": "k", "image_path": "a.png", "prompt": "p",
              "model": "m", "endpoint_id": "fal-ai/m", "backend": "emulator"}]
        )  # fmt: skip
        job = store.jobs("b1")[0]
        store.update_job(job["id"], status="queued", status_url="https://q/s")
        job = store.job(job["id"])
    assert job_url(job, "status_url") == "https://q/s"
    with pytest.raises(StoreError, match=rf"Job {job['id']} is queued but has no cancel_url"):
        job_url(job, "cancel_url")
