"""Closing the one-request window (issue 14): a job left `submitting` by a crash is looked up
in fal's request history (Platform API, with payloads) before it is submitted again, and
a result the queue no longer has is recovered from the same history. The emulator serves
that history; the CLI runs in a subprocess and is killed with SIGKILL inside the window."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
from datetime import UTC, datetime, timedelta

import httpx
from aiohttp import web
from clitools import (
    assert_one_playable_video_per_job,
    bulk_args,
    cli_env,
    ledger,
    run_cli,
    wait_until,
    write_prompts,
)
from helpers import TEST_KEY, make_images

from i2vkit.emulator import Emulator, Route
from i2vkit.emulator.history import PATH

WAN = "fal-ai/wan-i2v"


def history(emulator, **params) -> httpx.Response:
    return httpx.get(
        emulator.url + PATH, params=params, headers={"Authorization": f"Key {TEST_KEY}"}
    )


def test_emulator_lists_requests_with_their_exact_input_by_window_and_id(emulator):
    emulator.configure(job_seconds=0)
    auth = {"Authorization": f"Key {TEST_KEY}"}
    sent = []
    for i in range(3):
        body = {"prompt": f"p{i}", "image_url": "data:,x", "seed": i}
        answer = httpx.post(f"{emulator.url}/{WAN}", json=body, headers=auth).json()
        sent.append((answer["request_id"], body))
    now = datetime.now(UTC)
    window = {"start": (now - timedelta(minutes=1)).isoformat(), "end": now.isoformat()}
    page = history(emulator, endpoint_id=WAN, expand="payloads", limit=2, **window).json()
    assert page["has_more"] and len(page["items"]) == 2
    rest = history(emulator, endpoint_id=WAN, expand="payloads", cursor=page["next_cursor"])
    items = page["items"] + rest.json()["items"]
    assert [(i["request_id"], i["json_input"]) for i in items] == sent
    assert base64.b64decode(page["next_cursor"])  # an opaque cursor, as fal's
    later = {"start": (now + timedelta(minutes=1)).isoformat()}
    assert history(emulator, endpoint_id=WAN, **later).json()["items"] == []
    one = history(emulator, endpoint_id=WAN, request_id=sent[1][0], expand="payloads").json()
    assert [i["request_id"] for i in one["items"]] == [sent[1][0]]
    assert "json_input" not in history(emulator, endpoint_id=WAN).json()["items"][0]
    emulator.configure(history_restricted=True)
    refused = history(emulator, endpoint_id=WAN)
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "authorization_error"
    assert history(emulator).status_code == 403  # refused before anything else is checked
    emulator.configure(history_restricted=False)
    assert history(emulator).status_code == 400  # endpoint_id is required


def kill_inside_the_submit_window(tmp_path, emulator, n_submits: int):
    """Run a 6-job batch whose submit answers take a while (emulator `submit_delay`) and
    SIGKILL the CLI once the emulator has queued at least `n_submits` jobs, every job the
    ledger has claimed among them, and answered none of them yet: those jobs are
    `submitting` in the ledger, without a request_id, and fal has each of them.

    Submits are pipelined (up to min(concurrency, 8) POSTs on the wire), so the window
    holds one job or several; returns the ids of the jobs in it."""
    make_images(tmp_path / "pics", 2)
    prompts = write_prompts(tmp_path / "prompts.txt", 3)
    env = cli_env(tmp_path, emulator.url)
    args = bulk_args(prompts, tmp_path / "pics")
    emulator.configure(job_seconds=0, submit_delay=2.0)
    db = tmp_path / "ledger.db"

    def every_claim_reached_fal() -> bool:
        if proc.poll() is not None:
            return True  # the assertions below say what went wrong
        received = len(emulator.jobs())
        if received < n_submits:
            return False  # (the ledger exists once a submit has reached the emulator)
        claimed = ledger(db, "SELECT COUNT(*) FROM jobs WHERE status != 'pending'")[0][0]
        return claimed == received

    proc = subprocess.Popen(
        args, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_until(every_claim_reached_fal, 60, f"{n_submits}+ submits queued, none unsent")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    window = ledger(db, "SELECT id FROM jobs WHERE status = 'submitting' AND request_id IS NULL")
    assert len(window) >= 1, "the kill did not land inside the submit window"
    emulator.configure(submit_delay=0)
    return args, env, db, [row[0] for row in window]


def test_a_job_killed_inside_the_submit_window_adopts_its_request(tmp_path, emulator):
    """The requests fal got before the kill are found in its history by each job's exact
    arguments and followed: 6 jobs, 6 submits, 6 videos; the summary says so per job."""
    args, env, db, window = kill_inside_the_submit_window(tmp_path, emulator, 3)
    lost = {j["request_id"] for j in emulator.jobs()} - {
        r[0] for r in ledger(db, "SELECT request_id FROM jobs WHERE request_id IS NOT NULL")
    }
    assert len(lost) == len(window)  # fal has a request for each job in the window
    again = run_cli(args, env, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert_one_playable_video_per_job(db, tmp_path / "videos", 6)
    assert emulator.stats()["submits"]["total"] == 6  # zero duplicates
    marks = ", ".join("?" * len(window))
    adopted = ledger(db, f"SELECT request_id FROM jobs WHERE id IN ({marks})", tuple(window))
    assert {r[0] for r in adopted} == lost  # each window job adopted one of the lost requests
    for job_id in window:
        line = next(x for x in again.stdout.splitlines() if x.startswith(f"job {job_id}: "))
        assert "found in fal's request history" in line, line


def test_restricted_request_history_resubmits_and_says_so(tmp_path, emulator):
    """An account whose request history the key may not read (403): each job in the window
    is submitted again, as before, and the summary says why (it may be billed twice)."""
    args, env, db, window = kill_inside_the_submit_window(tmp_path, emulator, 2)
    emulator.configure(history_restricted=True)
    again = run_cli(args, env, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert_one_playable_video_per_job(db, tmp_path / "videos", 6)
    assert emulator.stats()["submits"]["total"] == 6 + len(window)
    for job_id in window:
        line = next(x for x in again.stdout.splitlines() if x.startswith(f"job {job_id}: "))
        assert "403" in line and "submitted again" in line and "twice" in line, line


def cut_after_queueing(count: int):
    """Emulator plugin: the next `count` submits are queued (fal has them, and would bill
    them) and then the connection is closed before the answer is sent."""

    def plugin(emu: Emulator) -> list[Route]:
        submit = next(
            r.handler for r in emu.queue.routes() if (r.method, r.path) == ("POST", "/{tail:.+}")
        )
        left = [count]

        async def queue_then_hang_up(request: web.Request) -> web.StreamResponse:
            response = await submit(request)
            if left[0] > 0 and response.status == 200:
                left[0] -= 1
                request.transport.close()
            return response

        return [Route("POST", "/{tail:" + WAN + "}", queue_then_hang_up)]

    return plugin


def test_a_submit_cut_off_after_sending_is_settled_by_the_next_run_not_paid_twice(tmp_path):
    """Inside a run, a submit whose connection broke after it was sent stays `submitting`
    with its arguments and claim time (fal may have it); the summary says so; the next run
    finds it in fal's request history. Two runs, 6 jobs: 6 submits, 6 videos."""
    with Emulator(port=0, key=TEST_KEY, job_seconds=0, plugins=[cut_after_queueing(1)]) as emu:
        make_images(tmp_path / "pics", 2)
        args = bulk_args(write_prompts(tmp_path / "prompts.txt", 3), tmp_path / "pics")
        env = cli_env(tmp_path, emu.url)
        db = tmp_path / "ledger.db"
        first = run_cli(args, env, tmp_path)
        assert first.returncode != 0, first.stdout + first.stderr
        left = ledger(
            db,
            "SELECT id, arguments, submitted_at FROM jobs "
            "WHERE status = 'submitting' AND request_id IS NULL",
        )
        assert len(left) == 1 and left[0][1] and left[0][2], left
        job_id = left[0][0]
        line = next(x for x in first.stdout.splitlines() if f"job {job_id} " in x)
        assert "not known whether fal received it" in line.lower(), line
        assert "request history" in line, line
        assert emu.stats()["submits"]["total"] == 6  # the cut one reached fal
        # fal may bill the cut one: the summary counts it in money and in jobs alike
        assert (
            "this run: US$ 2.40 (6 requests fal may bill; 1 of them sent without an answer"
            in first.stdout
        ), first.stdout
        again = run_cli(args, env, tmp_path)
        assert again.returncode == 0, again.stdout + again.stderr
        assert_one_playable_video_per_job(db, tmp_path / "videos", 6)
        assert emu.stats()["submits"]["total"] == 6  # zero duplicates over the two runs
        held = {r[0] for r in ledger(db, "SELECT request_id FROM jobs")}
        assert held == {j["request_id"] for j in emu.jobs()}
        assert (
            f"job {job_id}: " in again.stdout and "found in fal's request history" in again.stdout
        )


def test_a_result_the_queue_no_longer_has_is_recovered_from_the_history(tmp_path, emulator):
    """fal's queue answers 404 for every result (expired: `result_ttl` 0): each job's output
    is read from the request history instead, nothing is failed or submitted again."""
    make_images(tmp_path / "pics", 2)
    prompts = write_prompts(tmp_path / "prompts.txt", 2)
    emulator.configure(job_seconds=0, result_ttl=0)
    env = cli_env(tmp_path, emulator.url)
    out = run_cli(bulk_args(prompts, tmp_path / "pics"), env, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert_one_playable_video_per_job(tmp_path / "ledger.db", tmp_path / "videos", 4)
    stats = emulator.stats()
    assert stats["submits"]["total"] == 4
    assert stats["responses"].get("404", 0) >= 4  # every result request was refused
    assert stats["history_requests"] >= 4
    assert out.stdout.count("recovered from fal's request history") == 4
