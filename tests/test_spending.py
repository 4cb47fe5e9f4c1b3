"""Money: what a run asks before spending, what its cost lines say, and the spend cap.

Every test runs the real `i2vkit` CLI in a subprocess against the built-in emulator on
127.0.0.1 reached through I2VKIT_FAL_URL, which i2vkit treats as billed (it may be a
proxy of fal). stdin is closed: nobody can answer a question. The emulator's counters
say what was uploaded and submitted.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from clitools import bulk_args, cli_env, ledger, run_cli, videos, write_prompts
from helpers import TEST_KEY, make_images

from i2vkit.emulator import Emulator

UNPRICED = "someone/unpriced-i2v"  # a well-formed endpoint id no catalogue has a price for


@pytest.fixture
def emu():
    with Emulator(port=0, key=TEST_KEY, job_seconds=0) as emulator:
        yield emulator


def cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return run_cli(args, env, cwd, stdin=subprocess.DEVNULL)


def unconfirmed(args: list[str]) -> list[str]:
    return [a for a in args if a != "--yes"]


def counters(emu: Emulator) -> tuple[int, int]:
    stats = emu.stats()
    return stats["uploads"], stats["submits"]["total"]


# -- item 2: spending without the confirmation --------------------------------------------


def test_unknown_price_asks_and_with_stdin_closed_submits_nothing(tmp_path, emu):
    """An endpoint without a published price is not free: with no --yes and nobody to
    answer, nothing is uploaded or submitted (exit 2); --yes runs it."""
    make_images(tmp_path / "pics", 2)
    args = bulk_args(write_prompts(tmp_path / "p.txt", 2), tmp_path / "pics", model=UNPRICED)
    env = cli_env(tmp_path, emu.url)
    refused = cli(unconfirmed(args), env, tmp_path)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "whose price is unknown" in refused.stdout and "re-run with --yes" in refused.stdout
    assert counters(emu) == (0, 0)
    confirmed = cli(args, env, tmp_path)
    assert confirmed.returncode == 0, confirmed.stdout + confirmed.stderr
    assert counters(emu) == (2, 4)


def test_retry_summary_counts_what_it_resubmitted(tmp_path, emu):
    """`i2vkit retry --yes` of 16 failed wan jobs says it submitted 16 jobs for US$ 6.40,
    never "cost: $0.00"."""
    emu.configure(fail_rate=1.0)
    make_images(tmp_path / "pics", 4)
    env = cli_env(tmp_path, emu.url)
    first = cli(bulk_args(write_prompts(tmp_path / "p.txt", 4), tmp_path / "pics"), env, tmp_path)
    assert first.returncode == 1, first.stdout + first.stderr
    batch = ledger(tmp_path / "ledger.db", "SELECT id FROM batches")[0][0]
    emu.configure(fail_rate=0.0)
    retry = [sys.executable, "-m", "i2vkit", "retry", batch, "--no-progress"]
    refused = cli(retry, env, tmp_path)
    assert refused.returncode == 2 and "US$ 6.40 (16 jobs)" in refused.stdout
    done = cli([*retry, "--yes"], env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "this run: US$ 6.40 (16 requests fal may bill)" in done.stdout
    assert "$0.00" not in done.stdout and "US$ 0.00" not in done.stdout.split("earlier runs")[0]


def test_failed_requests_a_retry_replaced_still_count_in_the_batch_total(tmp_path, emu):
    """fal may bill a failed request (a 422 that used GPU time), so a retried job's
    earlier requests stay in the batch's cost: 4 wan jobs (US$ 0.40 each) fail, fail
    again on a retry, then succeed: 12 requests, US$ 4.80 in all."""
    emu.configure(fail_rate=1.0, fail_kind="validation")
    make_images(tmp_path / "pics", 2)
    args = bulk_args(write_prompts(tmp_path / "p.txt", 2), tmp_path / "pics")
    env = cli_env(tmp_path, emu.url)
    assert cli(args, env, tmp_path).returncode == 1
    batch = ledger(tmp_path / "ledger.db", "SELECT id FROM batches")[0][0]
    retry = [sys.executable, "-m", "i2vkit", "retry", batch, "--no-progress", "--yes"]
    second = cli(retry, env, tmp_path)
    assert second.returncode == 1, second.stdout + second.stderr
    assert "earlier runs: US$ 1.60 (4 jobs); batch total: US$ 3.20" in second.stdout
    emu.configure(fail_rate=0.0)
    third = cli(retry, env, tmp_path)
    assert third.returncode == 0, third.stdout + third.stderr
    assert "earlier runs: US$ 3.20 (4 jobs, 8 requests); batch total: US$ 4.80" in third.stdout
    again = cli(args, env, tmp_path)
    assert "earlier runs: US$ 4.80 (4 jobs, 12 requests)" in again.stdout, again.stdout
    assert counters(emu)[1] == 12


# -- item 3: cost lines count this run, not the whole batch -------------------------------


def test_rerun_of_a_finished_batch_adds_nothing_and_is_not_refused(tmp_path, emu):
    """4 x 4 wan = US$ 6.40, paid with --yes. The same command again without --yes (no
    terminal) is not refused: it adds US$ 0.00, and says earlier runs spent US$ 6.40."""
    make_images(tmp_path / "pics", 4)
    args = bulk_args(write_prompts(tmp_path / "p.txt", 4), tmp_path / "pics")
    env = cli_env(tmp_path, emu.url)
    first = cli(args, env, tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "this run: US$ 6.40 (16 requests fal may bill)" in first.stdout
    again = cli(unconfirmed(args), env, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "re-run with --yes" not in again.stdout
    for line in ("this run: US$ 0.00 (0 jobs)", "earlier runs: US$ 6.40 (16 jobs)"):
        assert line in again.stdout, again.stdout
    assert "batch total: US$ 6.40" in again.stdout
    assert counters(emu)[1] == 16


def test_a_grown_batch_asks_only_for_what_it_adds(tmp_path, emu):
    """2 x 4 done (US$ 3.20); two more images make 8 new jobs: US$ 3.20 more, under the
    threshold, so it runs without --yes; the plan says what this run adds and the total."""
    make_images(tmp_path / "pics", 2)
    prompts = write_prompts(tmp_path / "p.txt", 4)
    env = cli_env(tmp_path, emu.url)
    assert cli(bulk_args(prompts, tmp_path / "pics"), env, tmp_path).returncode == 0
    make_images(tmp_path / "pics", 2, start=2)
    grown = cli(unconfirmed(bulk_args(prompts, tmp_path / "pics")), env, tmp_path)
    assert grown.returncode == 0, grown.stdout + grown.stderr
    assert "this run: US$ 3.20 (8 jobs) to submit" in grown.stdout
    assert "earlier runs: US$ 3.20 (8 jobs); batch total: US$ 6.40" in grown.stdout
    assert "this run: US$ 3.20 (8 requests fal may bill)" in grown.stdout
    assert counters(emu)[1] == 16


# -- the spend cap --------------------------------------------------------------------------


def test_plan_over_the_cap_exits_before_any_upload(tmp_path, emu):
    """16 wan jobs (US$ 6.40) with --max-cost 5: refused even with --yes, exit 2, nothing
    uploaded or submitted; the message names the cap and the estimate."""
    make_images(tmp_path / "pics", 4)
    args = bulk_args(write_prompts(tmp_path / "p.txt", 4), tmp_path / "pics", "--max-cost", "5")
    out = cli(args, cli_env(tmp_path, emu.url), tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "US$ 6.40" in out.stdout and "spend cap of US$ 5.00" in out.stdout
    assert counters(emu) == (0, 0)
    assert not videos(tmp_path / "videos")


def test_cap_from_the_environment_and_unknown_price(tmp_path, emu):
    """I2VKIT_MAX_COST is the same cap; an unknown price cannot be proven to fit, so it is
    refused until the cap is removed (--max-cost none)."""
    make_images(tmp_path / "pics", 2)
    prompts = write_prompts(tmp_path / "p.txt", 1)
    env = cli_env(tmp_path, emu.url, I2VKIT_MAX_COST="100")
    refused = cli(bulk_args(prompts, tmp_path / "pics", model=UNPRICED), env, tmp_path)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "price of someone/unpriced-i2v is unknown" in refused.stdout
    assert "US$ 100.00" in refused.stdout and counters(emu) == (0, 0)
    uncapped = bulk_args(prompts, tmp_path / "pics", "--max-cost", "none", model=UNPRICED)
    assert cli(uncapped, env, tmp_path).returncode == 0
    assert counters(emu) == (2, 2)
    bad = cli(bulk_args(prompts, tmp_path / "pics", "--max-cost", "ten"), env, tmp_path)
    assert bad.returncode == 2 and "--max-cost='ten' is not an amount" in bad.stderr


def test_resubmits_that_would_cross_the_cap_stop_submitting(tmp_path, emu):
    """2 images x 3 prompts, 'prompt 1' done earlier: 4 new jobs fit a US$ 3.00 cap
    (US$ 1.60), but every image URL has expired on the CDN, so each job is refused once and
    resubmitted after a fresh upload: 8 submits (US$ 3.20). Submitting stops at 7 (US$ 2.80;
    the 8th would cross the cap); the last job stays pending, not failed; the summary says so
    and how to continue; a higher cap then finishes it."""
    make_images(tmp_path / "pics", 2)
    env = cli_env(tmp_path, emu.url)
    first = write_prompts(tmp_path / "prompts.txt", 1)
    assert cli(bulk_args(first, tmp_path / "pics"), env, tmp_path).returncode == 0
    emu.configure(file_ttl=600)
    emu.advance_clock(601)  # the cached image URLs now answer 404 on the CDN
    before = counters(emu)[1]
    second = write_prompts(tmp_path / "prompts.txt", 3)  # two lines added: the same batch
    capped = cli(bulk_args(second, tmp_path / "pics", "--max-cost", "3"), env, tmp_path)
    assert capped.returncode == 1, capped.stdout + capped.stderr
    assert counters(emu)[1] - before == 7
    assert "SPEND CAP: submitting stopped" in capped.stdout
    assert "over the spend cap of US$ 3.00" in capped.stdout
    assert "raise --max-cost" in capped.stdout and "run the same command again" in capped.stdout
    rows = ledger(tmp_path / "ledger.db", "SELECT status FROM jobs WHERE prompt != 'prompt 1'")
    statuses = sorted(r[0] for r in rows)
    assert statuses.count("pending") == 1 and "failed" not in statuses
    finish = cli(bulk_args(second, tmp_path / "pics", "--max-cost", "10"), env, tmp_path)
    assert finish.returncode == 0, finish.stdout + finish.stderr
    assert len(videos(tmp_path / "videos")) == 6


def test_retry_that_would_cross_the_cap_stops_at_it(tmp_path, emu):
    """`i2vkit retry` counts against the cap too: 16 failed jobs (US$ 6.40) with
    I2VKIT_MAX_COST=5 are refused before anything is sent; with a cap of US$ 7 the plan
    fits, but jobs that fail again are not resubmitted past it."""
    emu.configure(fail_rate=1.0)
    make_images(tmp_path / "pics", 4)
    env = cli_env(tmp_path, emu.url)
    args = bulk_args(write_prompts(tmp_path / "p.txt", 4), tmp_path / "pics")
    assert cli(args, env, tmp_path).returncode == 1
    batch = ledger(tmp_path / "ledger.db", "SELECT id FROM batches")[0][0]
    emu.configure(fail_rate=0.0)
    uploads, submits = counters(emu)
    retry = [sys.executable, "-m", "i2vkit", "retry", batch, "--no-progress", "--yes"]
    capped_env = {**env, "I2VKIT_MAX_COST": "5"}
    refused = cli(retry, capped_env, tmp_path)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "spend cap of US$ 5.00" in refused.stdout and counters(emu) == (uploads, submits)
    done = cli([*retry, "--max-cost", "7"], capped_env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert counters(emu)[1] == submits + 16
