"""The engine's decisions as pure functions: poll schedule, outcome mapping, takeover rules.

These are reached end to end through the CLI and emulator elsewhere; here each rule
is checked directly against what the docstrings promise.
"""

from __future__ import annotations

import pytest

from i2vkit.engine.outcome import RESULT_GONE, Cancelled, Completed, Failed, FreshImage, outcome
from i2vkit.engine.schedule import PollSchedule
from i2vkit.errors import FalError
from i2vkit.jobs import CONTINUE, RELEASE, SKIP, TAKE_OVER, JobStatus, resume_action
from i2vkit.models import get_model

WAN = get_model("wan")

# -- poll schedule ---------------------------------------------------------------------


def test_blind_polls_start_at_half_a_second_and_grow_by_half():
    s = PollSchedule()
    delays = [s.next_delay("IN_PROGRESS", 0.0, None, polls, None) for polls in range(4)]
    assert delays == pytest.approx([0.5, 0.75, 1.125, 1.6875])
    assert s.next_delay("IN_PROGRESS", 0.0, None, 50, None) == 15.0  # capped


def test_with_a_typical_run_time_the_poll_lands_when_the_run_should_be_over():
    s = PollSchedule()
    for seconds in (10.0, 12.0, 11.0):
        s.observe(seconds)
    assert s.typical == 11.0
    # 4 s into an 11 s run: wake when it should be done (plus a 50 ms margin)
    assert s.next_delay("IN_PROGRESS", 4.0, 4.0, 1, None) == pytest.approx(7.05)
    # overdue: every eighth of a typical run
    assert s.next_delay("IN_PROGRESS", 20.0, 20.0, 3, None) == pytest.approx(11.0 / 8)


def test_two_finished_jobs_are_not_yet_a_typical_time():
    s = PollSchedule()
    s.observe(30.0)
    s.observe(30.0)
    assert s.typical is None


def test_a_seeded_schedule_polls_first_when_the_expected_run_should_be_over():
    s = PollSchedule(expected=20.0)
    assert s.typical == 20.0  # not blind: the first poll lands at the expected end
    assert s.next_delay("IN_PROGRESS", 0.0, None, 0, None) == pytest.approx(20.05)
    for seconds in (10.0, 12.0, 11.0):
        s.observe(seconds)
    assert s.typical == 11.0  # this batch's own jobs outrank the seed once three finish


def test_the_seed_is_the_catalogue_estimate_else_the_ledgers_median(tmp_path):
    from i2vkit.engine.schedule import expected_run_seconds
    from i2vkit.store import Store

    with Store(tmp_path / "ledger.db") as store:
        assert expected_run_seconds({"duration_estimate": 95}, store, "fal-ai/x") == 95.0
        assert expected_run_seconds({}, store, "fal-ai/x") is None  # nothing known: blind
        store.save_batch(
            {"id": "b", "model": "x", "endpoint_id": "fal-ai/x", "pairing": "all",
             "output_dir": str(tmp_path), "backend": "emulator"}
        )  # fmt: skip
        rows = [
            {"batch_id": "b", "job_key": f"k{i}", "image_path": "a.png", "prompt": "p",
             "model": "x", "endpoint_id": endpoint, "backend": "emulator"}
            for i, endpoint in enumerate(["fal-ai/x"] * 3 + ["fal-ai/other"])
        ]  # fmt: skip
        store.add_jobs(rows)
        ran = {"k0": 30, "k1": 50, "k2": 40, "k3": 999}
        for job in store.jobs("b"):
            store.update_job(
                job["id"],
                status="downloaded",
                started_at="2026-01-01T00:00:00.000+00:00",
                completed_at=f"2026-01-01T00:00:{ran[job['job_key']] % 60:02d}.000+00:00"
                if ran[job["job_key"]] < 60
                else "2026-01-01T00:16:39.000+00:00",
            )
        assert expected_run_seconds({}, store, "fal-ai/x") == pytest.approx(40.0, abs=0.01)
        # the catalogue's estimate wins over the ledger
        assert expected_run_seconds({"duration_estimate": 7}, store, "fal-ai/x") == 7.0


def test_queued_jobs_back_off_and_are_polled_sooner_near_the_front():
    s = PollSchedule()
    far = s.next_delay("IN_QUEUE", 5.0, None, 4, 40)
    assert far == pytest.approx(1.5**4)
    assert s.next_delay("IN_QUEUE", 5.0, None, 30, 40) == 30.0  # capped at 30 s
    for seconds in (8.0, 8.0, 8.0):
        s.observe(seconds)
    # two ahead of an 8 s typical run: about half a run away, not the long back-off
    assert s.next_delay("IN_QUEUE", 5.0, None, 9, 2) == pytest.approx(4.0)


# -- outcome -----------------------------------------------------------------------------


def test_a_result_with_a_video_completes_with_its_size():
    result = {"video": {"url": "https://cdn.example/v.mp4", "file_size": 1234}}
    assert outcome({"status": "COMPLETED"}, result, None, WAN) == Completed(
        "https://cdn.example/v.mp4", 1234
    )


def test_a_failed_run_carries_fals_own_reason_and_type():
    error = FalError("prompt: too long", status_code=422, error_type="string_too_long")
    decided = outcome({"status": "COMPLETED", "error": "Invalid input"}, None, error, WAN)
    assert isinstance(decided, Failed)
    assert "Invalid input" in decided.message and "prompt: too long" in decided.message
    assert decided.error_type == "string_too_long"


def test_an_expired_result_says_retry():
    error = FalError("not found", status_code=404)
    decided = outcome({"status": "COMPLETED"}, None, error, WAN)
    assert isinstance(decided, Failed) and decided.message == RESULT_GONE


def test_fal_unable_to_fetch_our_image_asks_for_a_fresh_upload():
    error = FalError(
        f"{WAN.image_field}: could not download the file",
        status_code=422,
        error_type="file_download_error",
    )
    decided = outcome({"status": "COMPLETED", "error": "Invalid input"}, None, error, WAN)
    assert isinstance(decided, FreshImage)


def test_an_unreachable_end_frame_is_not_mistaken_for_our_image():
    error = FalError(
        "some_other_url: could not download the file",
        status_code=422,
        error_type="file_download_error",
    )
    decided = outcome({"status": "COMPLETED", "error": "Invalid input"}, None, error, WAN)
    assert isinstance(decided, Failed)


def test_a_request_cancelled_on_fal_is_cancelled_not_failed():
    """fal reports a cancelled request COMPLETED; its result's error type says why."""
    error = FalError("Request was cancelled", status_code=400, error_type="request_cancelled")
    decided = outcome({"status": "COMPLETED"}, None, error, WAN)
    assert isinstance(decided, Cancelled) and "cancelled" in decided.message


@pytest.mark.parametrize(
    "result,needle",
    [({"images": []}, "video"), ({"video": {"url": "file:///etc/passwd"}}, "http")],
)
def test_a_result_without_a_usable_video_fails_saying_why(result, needle):
    decided = outcome({"status": "COMPLETED"}, result, None, WAN)
    assert isinstance(decided, Failed) and needle in decided.message


# -- takeover rules ------------------------------------------------------------------------

ME, OTHER = "host:1:me", "host:2:other"


def job(status, owner, request_id="req-1"):
    return {"status": JobStatus(status), "owner": owner, "request_id": request_id}


@pytest.mark.parametrize(
    "row,alive,expected",
    [
        (job("pending", None, None), False, CONTINUE),
        (job("failed", OTHER), True, SKIP),
        # cancelled while waiting in fal's queue: the next run submits it again
        (job("cancelled", None), False, RELEASE),
        (job("downloaded", OTHER), True, CONTINUE),
        # died inside the submit window: back to pending (paid at most once more)
        (job("submitting", OTHER, None), False, RELEASE),
        # a live process is submitting it right now
        (job("submitting", OTHER, None), True, SKIP),
        # this process's own claim
        (job("submitting", ME, None), True, RELEASE),
        # submitted jobs of a dead owner are adopted; of a live one, left alone
        (job("queued", OTHER), False, TAKE_OVER),
        (job("running", OTHER), True, SKIP),
        (job("completed", OTHER), False, TAKE_OVER),
        (job("queued", None), False, TAKE_OVER),
        (job("running", ME), True, CONTINUE),
    ],
)
def test_resume_action(row, alive, expected):
    assert resume_action(row, ME, alive) == expected
