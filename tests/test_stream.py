"""Following jobs by fal's status stream, the fallbacks to polling, and pipelined submits.

Everything runs against the built-in emulator over HTTP on 127.0.0.1 with real ledgers
and videos. Counts come from two sides: the ledger (what i2vkit says it did) and the
emulator (what it received), so neither can flatter itself.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time

import httpx
import pytest
from helpers import TEST_KEY, make_images

from i2vkit.backend import Backend
from i2vkit.config import Settings
from i2vkit.emulator import Emulator
from i2vkit.emulator.clips import GREY_PNG
from i2vkit.engine import run_batch
from i2vkit.errors import StreamUnavailable
from i2vkit.fal import FalConnection
from i2vkit.planning import BatchRequest
from i2vkit.store import Store

ENDPOINT = "fal-ai/wan-i2v"
IMAGE = "data:image/png;base64," + base64.b64encode(GREY_PNG).decode()
HEADERS = {"Authorization": f"Key {TEST_KEY}"}
DEADLINE = 60.0


def batch(tmp_path, emu: Emulator, images: int, concurrency: int):
    make_images(tmp_path / "images", images)
    settings = Settings(
        fal_key=TEST_KEY,
        download_dir=tmp_path / "out",
        db_path=tmp_path / "ledger.db",
        fal_url=emu.url,
    )
    spec = BatchRequest(
        images_dir=tmp_path / "images",
        prompts=["a slow zoom"],
        model="wan",
        output_dir=tmp_path / "out",
        concurrency=concurrency,
    )
    result = run_batch(spec, settings)
    with Store(settings.db_path) as store:
        rows = store.jobs(result.batch_id)
    return result, sorted(rows, key=lambda r: r["submitted_at"])


def assert_all_downloaded(result, rows, count):
    assert len(rows) == count
    assert [r["status"] for r in rows] == ["downloaded"] * count, [r["error"] for r in rows]
    assert all(j.video for j in result.jobs)


def test_with_the_stream_each_job_uses_exactly_one_status_request(tmp_path):
    with Emulator(port=0, key=TEST_KEY, job_seconds=0.2, concurrency=2) as emu:
        result, rows = batch(tmp_path, emu, images=5, concurrency=2)
        stats = emu.stats()
    assert_all_downloaded(result, rows, 5)
    # the ledger: one status request per job, and it was a stream
    assert [(r["status_requests"], r["status_streams"]) for r in rows] == [(1, 1)] * 5
    # the emulator: one status request per request id, all of them streams, none refused
    by_request = stats["status_requests"]["by_request"]
    assert sorted(by_request) == sorted(r["request_id"] for r in rows)
    assert set(by_request.values()) == {1}
    assert stats["status_streams"]["opened"] == 5 and stats["status_streams"]["refused"] == 0


def test_a_refused_stream_sends_the_batch_to_polling_and_it_completes(tmp_path):
    with Emulator(port=0, key=TEST_KEY, job_seconds=0.1, stream_refuse=True) as emu:
        # one slot: jobs are followed one after another, so the refusals come in order
        result, rows = batch(tmp_path, emu, images=6, concurrency=1)
        stats = emu.stats()
    assert_all_downloaded(result, rows, 6)
    assert stats["status_streams"] == {"opened": 0, "refused": 3, "dropped": 0, "keepalives": 0}
    # the first three jobs tried a stream (refused) and then polled; after three
    # refusals the rest of the batch polls without asking for a stream again
    assert [r["status_streams"] for r in rows] == [1, 1, 1, 0, 0, 0]
    assert all(r["status_requests"] >= r["status_streams"] + 1 for r in rows)
    polls = sum(r["status_requests"] for r in rows)
    assert stats["status_requests"]["total"] == polls


def test_a_stream_dropped_mid_job_resumes_by_polling_without_losing_the_job(tmp_path):
    # the first two streams are cut off where they would have said COMPLETED
    with Emulator(port=0, key=TEST_KEY, job_seconds=0.1, stream_drop=2) as emu:
        result, rows = batch(tmp_path, emu, images=3, concurrency=1)
        stats = emu.stats()
        submits = stats["submits"]["total"]
    assert_all_downloaded(result, rows, 3)
    assert submits == 3  # no job was lost or submitted again
    assert stats["status_streams"]["dropped"] == 2 and stats["status_streams"]["refused"] == 0
    # a drop is not a refusal: every job still opened a stream; the dropped ones polled after
    assert [r["status_streams"] for r in rows] == [1, 1, 1]
    assert [r["status_requests"] > 1 for r in rows] == [True, True, False]


def test_submits_are_pipelined(tmp_path):
    # each submit's answer is held a moment: serialized submits could never overlap
    with Emulator(port=0, key=TEST_KEY, job_seconds=0, submit_delay=0.3) as emu:
        result, rows = batch(tmp_path, emu, images=8, concurrency=8)
        stats = emu.stats()
    assert_all_downloaded(result, rows, 8)
    assert stats["submits"]["total"] == 8
    assert stats["max_concurrent_submits"] > 1


# -- the emulator's stream, seen on the wire ----------------------------------------------


def submit(client: httpx.Client, url: str) -> dict:
    answer = client.post(f"{url}/{ENDPOINT}", json={"prompt": "p", "image_url": IMAGE})
    assert answer.status_code == 200, answer.text
    return answer.json()


def wait_for(predicate, what: str):
    deadline = time.monotonic() + DEADLINE
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_emulator_stream_sends_changes_keepalives_and_closes_after_completed():
    with (
        Emulator(
            port=0, key=TEST_KEY, job_seconds=600, concurrency=1, stream_keepalive=0.05
        ) as emu,
        httpx.Client(headers=HEADERS, timeout=DEADLINE) as client,
    ):
        submit(client, emu.url)  # takes the one slot for ten minutes
        queued = submit(client, emu.url)
        lines: list[str] = []
        with client.stream("GET", queued["status_url"] + "/stream") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                lines.append(line)
                if line.startswith(": keep-alive") and emu.stats()["in_progress"] == 1:
                    # free the slot: the queued job starts (and, at 0 s, completes) at once
                    emu.configure(job_seconds=0, concurrency=2)
        events = [line.removeprefix("data: ") for line in lines if line.startswith("data:")]
    states = [json.loads(e)["status"] for e in events]
    assert states[0] == "IN_QUEUE" and states[-1] == "COMPLETED"
    assert states.count("COMPLETED") == 1  # closed right after it
    assert len(set(events)) == len(events)  # an event only on a change
    assert any(line.startswith(": keep-alive") for line in lines)


def test_emulator_starts_a_queued_job_when_a_slot_frees_without_any_polling():
    with (
        Emulator(port=0, key=TEST_KEY, job_seconds=0.2, concurrency=1) as emu,
        httpx.Client(headers=HEADERS, timeout=DEADLINE) as client,
    ):
        first, second = submit(client, emu.url), submit(client, emu.url)
        # watched through the emulator's own API, which is not a request to it
        wait_for(lambda: emu.job(second["request_id"])["state"] == "COMPLETED", "job 2")
        one, two = emu.job(first["request_id"]), emu.job(second["request_id"])
        stats = emu.stats()
    assert stats["status_requests"]["total"] == 0
    assert two["started_at"] >= one["finished_at"]  # it waited for the slot, then ran


def test_status_stream_client_reads_events_and_reports_refusal_and_drop(tmp_path):
    async def follow(emu: Emulator, request: dict) -> list[str]:
        backend = Backend(kind="url", base_url=emu.url)
        async with FalConnection(backend, TEST_KEY) as fal:
            return [s["status"] async for s in fal.status_stream(request["status_url"])]

    with (
        Emulator(port=0, key=TEST_KEY, job_seconds=0) as emu,
        httpx.Client(headers=HEADERS, timeout=DEADLINE) as client,
    ):
        request = submit(client, emu.url)
        assert asyncio.run(follow(emu, request))[-1] == "COMPLETED"
        emu.configure(stream_drop=1)
        with pytest.raises(StreamUnavailable) as dropped:
            asyncio.run(follow(emu, request))
        assert not dropped.value.refused
        emu.configure(stream_refuse=True)
        with pytest.raises(StreamUnavailable) as refused:
            asyncio.run(follow(emu, request))
        assert refused.value.refused
