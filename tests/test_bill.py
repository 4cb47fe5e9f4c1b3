"""The bill (issue 26): `i2vkit cost` reads fal's billing records for a batch's request ids
from the emulator's Platform API (admin keys only), compares them with the estimates per
model, and takes over a unit price fal billed more than 5% away from the catalogue's."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
from clitools import cli_env, ledger, run_cli
from helpers import TEST_KEY, make_images

from i2vkit.models import get_model


def i2vkit(*args: str) -> list[str]:
    return [sys.executable, "-m", "i2vkit", *args]


def bulk(tmp_path: Path, env: dict, *extra: str) -> str:
    make_images(tmp_path / "pics", 2)
    (tmp_path / "p.txt").write_text("a slow pan\n", encoding="utf-8")
    args = i2vkit("bulk", str(tmp_path / "p.txt"), "--images-dir", str(tmp_path / "pics"),
                  "--yes", "--no-progress", *extra)  # fmt: skip
    return run_cli(args, env, tmp_path)


def test_cost_names_a_model_billed_above_the_catalogue_and_the_next_plan_uses_it(
    tmp_path, emulator
):
    wan, kling = get_model("wan-2.1"), get_model("kling")
    listed = wan.estimate_cost({})
    billed_unit = round(listed * 1.2, 4)  # fal bills wan 20% above its price list
    emulator.configure(admin=True, billed_prices={wan.endpoint_id: billed_unit})
    env = cli_env(tmp_path, emulator.url)
    done = bulk(tmp_path, env, "--model", "wan-2.1,kling", "--batch", "pans")
    assert done.returncode == 0, done.stdout + done.stderr

    cost = run_cli(i2vkit("cost", "pans"), env, tmp_path)
    assert cost.returncode == 0, cost.stdout + cost.stderr
    out = cost.stdout
    estimated_total = 2 * listed + 2 * kling.estimate_cost({})
    billed_total = 2 * billed_unit + 2 * kling.estimate_cost({})
    total = next(line for line in out.splitlines() if line.strip().startswith("total"))
    assert f"US$ {estimated_total:.2f}" in total and f"US$ {billed_total:.2f}" in total, out
    drift = [line for line in out.splitlines() if "fal billed" in line and "+20%" in line]
    assert len(drift) == 1 and wan.endpoint_id in drift[0], out
    assert kling.endpoint_id not in out.split("total")[-1]  # kling billed as listed
    [(price, source)] = ledger(
        tmp_path / "ledger.db", "SELECT unit_price, source FROM price_overrides"
    )
    assert abs(price - billed_unit) < 1e-6 and source == "billed"
    billed = ledger(tmp_path / "ledger.db", "SELECT count(*), sum(billed_usd) FROM billed")
    assert billed[0][0] == 4 and abs(billed[0][1] - billed_total) < 1e-6
    for local, endpoint in ledger(
        tmp_path / "ledger.db", "SELECT local_file, endpoint_id FROM jobs"
    ):
        recipe = json.loads(Path(local).with_suffix(".json").read_text(encoding="utf-8"))
        unit = billed_unit if endpoint == wan.endpoint_id else kling.estimate_cost({})
        assert abs(recipe["cost"]["billed_usd"] - unit) < 1e-6  # the sidecar knows it now

    report = run_cli(i2vkit("report", "pans", "--out", str(tmp_path / "rep")), env, tmp_path)
    assert report.returncode == 0, report.stdout + report.stderr
    page = (tmp_path / "rep" / "index.html").read_text(encoding="utf-8")
    assert "Billed by fal" in page and f"US$ {2 * billed_unit:.2f}" in page  # wan, billed

    plan = run_cli(i2vkit("bulk", str(tmp_path / "p.txt"), "--images-dir",
                          str(tmp_path / "pics"), "--model", "wan-2.1", "--dry-run"), env,
                   tmp_path)  # fmt: skip
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert f"US$ {2 * billed_unit:.2f}" in plan.stdout, plan.stdout  # priced at what fal billed
    again = run_cli(i2vkit("cost", "pans"), env, tmp_path)
    assert "+20%" not in again.stdout  # taken over: no longer a difference to report
    assert "wan-2.1 is estimated at the price fal billed it" in again.stdout  # and why


def test_cost_with_a_key_that_may_not_read_billing_says_which_key_and_shows_estimates(
    tmp_path, emulator
):
    env = cli_env(tmp_path, emulator.url)
    done = bulk(tmp_path, env, "--model", "wan-2.1", "--batch", "pans")
    assert done.returncode == 0, done.stdout + done.stderr
    cost = run_cli(i2vkit("cost"), env, tmp_path)  # the latest batch
    assert cost.returncode == 0, cost.stdout + cost.stderr
    assert "admin key" in cost.stdout and "ADMIN" in cost.stdout
    assert f"US$ {2 * get_model('wan-2.1').estimate_cost({}):.2f}" in cost.stdout
    assert TEST_KEY.split(":")[1] not in cost.stdout + cost.stderr
    assert ledger(tmp_path / "ledger.db", "SELECT count(*) FROM price_overrides") == [(0,)]


def test_the_emulator_refuses_billing_to_a_non_admin_key(emulator):
    headers = {"Authorization": f"Key {TEST_KEY}"}
    for path in ("/v1/models/billing-events", "/v1/models/usage", "/v1/account/billing"):
        answer = httpx.get(emulator.url + path, headers=headers)
        assert answer.status_code == 403, path
        assert answer.json()["error"]["type"] == "authorization_error"
    emulator.configure(admin=True, balance=12.5)
    answer = httpx.get(emulator.url + "/v1/account/billing?expand=credits", headers=headers)
    assert answer.json()["credits"] == {"current_balance": 12.5, "currency": "USD"}


def test_a_run_over_the_balance_is_refused_before_any_upload(tmp_path, emulator):
    kling = get_model("kling")
    jobs = 4 * 3  # 4 images x 3 prompts: over US$ 5, a run that needs confirmation
    estimate = jobs * kling.estimate_cost({})
    emulator.configure(admin=True, balance=round(estimate / 2, 2))
    make_images(tmp_path / "pics", 4)
    (tmp_path / "p.txt").write_text("one\ntwo\nthree\n", encoding="utf-8")
    env = cli_env(tmp_path, emulator.url)
    args = i2vkit("bulk", str(tmp_path / "p.txt"), "--images-dir", str(tmp_path / "pics"),
                  "--model", "kling", "--yes", "--no-progress")  # fmt: skip
    done = run_cli(args, env, tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"US$ {estimate:.2f}" in done.stdout and f"US$ {estimate / 2:.2f}" in done.stdout
    assert "balance" in done.stdout
    stats = emulator.stats()
    assert stats["uploads"] == 0 and stats["submits"]["total"] == 0

    emulator.configure(balance=estimate * 2)  # enough now: shown, and the run goes ahead
    done = run_cli(args, env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"fal balance: US$ {estimate * 2:.2f}" in done.stdout
    assert emulator.stats()["submits"]["total"] == jobs


def test_requests_the_ledger_counted_but_fal_did_not_bill_are_named(tmp_path, emulator):
    # a 4xx failure may be billed (billing.py), so the ledger counts it; the emulator bills
    # no failure: the two disagree, and `i2vkit cost` names the requests
    emulator.configure(admin=True, fail_rate=1.0, fail_kind="validation")
    env = cli_env(tmp_path, emulator.url)
    done = bulk(tmp_path, env, "--model", "wan-2.1", "--batch", "broken")
    assert done.returncode == 1, done.stdout + done.stderr
    ids = [r[0] for r in ledger(tmp_path / "ledger.db", "SELECT request_id FROM jobs")]
    cost = run_cli(i2vkit("cost", "broken"), env, tmp_path)
    assert cost.returncode == 0, cost.stdout + cost.stderr
    assert "2 requests of wan-2.1 that fal has no billing record for" in cost.stdout, cost.stdout
    assert all(i in cost.stdout for i in ids)
