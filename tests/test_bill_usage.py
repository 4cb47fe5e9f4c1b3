"""The bill where fal's billing records are missing (issue 26): `i2vkit cost` fills the gap
from fal's usage per endpoint over the batch's window (an aggregate, said so), without
counting a recorded request twice; and the mismatches between fal's records and the
ledger's billable rule are named both ways. Emulator over HTTP, real ledger, real mp4s."""

from __future__ import annotations

import json
import sqlite3
import sys
from datetime import datetime, timedelta
from pathlib import Path

import httpx
from clitools import cli_env, ledger, run_cli
from helpers import TEST_KEY, make_images

from i2vkit.models import get_model

HEADERS = {"Authorization": f"Key {TEST_KEY}"}


def i2vkit(*args: str) -> list[str]:
    return [sys.executable, "-m", "i2vkit", *args]


def bulk(tmp_path: Path, env: dict, *extra: str) -> None:
    make_images(tmp_path / "pics", 2)
    (tmp_path / "p.txt").write_text("a slow pan\n", encoding="utf-8")
    args = i2vkit("bulk", str(tmp_path / "p.txt"), "--images-dir", str(tmp_path / "pics"),
                  "--yes", "--no-progress", *extra)  # fmt: skip
    done = run_cli(args, env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def events(url: str, **params) -> list[dict]:
    answer = httpx.get(url + "/v1/models/billing-events", headers=HEADERS, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()["billing_events"]


def jobs_of(tmp_path: Path, batch: str) -> list[tuple]:
    return ledger(tmp_path / "ledger.db",
                  "SELECT j.request_id, j.endpoint_id, j.local_file FROM jobs j JOIN batches b "
                  "ON b.id = j.batch_id WHERE b.name = ? ORDER BY j.id", (batch,))  # fmt: skip


def test_cost_fills_lagging_records_from_usage_and_counts_no_request_twice(tmp_path, emulator):
    wan, kling = get_model("wan-2.1"), get_model("kling")
    emulator.configure(admin=True)
    env = cli_env(tmp_path, emulator.url)
    bulk(tmp_path, env, "--model", "wan-2.1", "--batch", "before")  # recorded, same endpoint
    bulk(tmp_path, env, "--model", "wan-2.1,kling", "--batch", "pans")
    emulator.configure(records_lag={wan.endpoint_id: 1})  # the last wan request: no record
    pans = jobs_of(tmp_path, "pans")
    wan_ids = [r for r, e, _ in pans if e == wan.endpoint_id]
    recorded = {e["request_id"] for e in events(emulator.url, request_id=wan_ids)}
    [missing] = set(wan_ids) - recorded  # the emulator's lag, seen from outside i2vkit

    cost = run_cli(i2vkit("cost", "pans"), env, tmp_path)
    assert cost.returncode == 0, cost.stdout + cost.stderr
    out = cost.stdout
    wan_price, kling_price = wan.estimate_cost({}), kling.estimate_cost({})
    [wan_row] = [line for line in out.splitlines() if line.strip().startswith("wan-2.1 ")]
    # 2 wan requests billed: one from its record, one from usage; not 1 (records only),
    # 3 (usage added to all records) or 4 (the batch before, in the window, counted too)
    assert wan_row.split()[4:6] == ["US$", f"{2 * wan_price:.2f}"], out  # billed
    assert f"(US$ {wan_price:.2f} from usage)" in wan_row, out
    [kling_row] = [line for line in out.splitlines() if line.strip().startswith("kling ")]
    assert "usage" not in kling_row, out
    [total] = [line for line in out.splitlines() if line.strip().startswith("total")]
    assert f"US$ {2 * wan_price + 2 * kling_price:.2f}" in total, out
    said = " ".join(out.split("no billing record yet for ")[1].split())
    assert said.startswith(f"1 request of wan-2.1: {missing} "), out
    assert "aggregate" in said and "not per request" in said, out
    assert "that fal has no billing record for" not in out  # usage covered it

    # usage is no per-request record: the ledger and the missing clip's sidecar stay without
    billed = dict(ledger(tmp_path / "ledger.db", "SELECT request_id, billed_usd FROM billed"))
    assert missing not in billed and set(wan_ids) - {missing} <= set(billed)
    for request_id, _, local in pans:
        recipe = json.loads(Path(local).with_suffix(".json").read_text(encoding="utf-8"))
        assert (recipe["cost"]["billed_usd"] is None) == (request_id == missing)

    emulator.configure(records_lag={})  # the record arrives: usage no longer needed
    later = run_cli(i2vkit("cost", "pans"), env, tmp_path)
    assert "usage" not in later.stdout and f"US$ {2 * wan_price:.2f}" in later.stdout


def test_the_emulators_usage_snaps_to_buckets_unless_told_not_to_and_pages(emulator, tmp_path):
    emulator.configure(admin=True)
    env = cli_env(tmp_path, emulator.url)
    bulk(tmp_path, env, "--model", "wan-2.1", "--batch", "pans")
    charged = [datetime.fromisoformat(e["timestamp"]) for e in events(emulator.url)]
    after = max(charged) + timedelta(microseconds=1)
    query = {"start": after.isoformat(), "end": (after + timedelta(seconds=1)).isoformat(),
             "timeframe": "day", "expand": "summary"}  # fmt: skip

    def usage(**extra) -> dict:
        answer = httpx.get(emulator.url + "/v1/models/usage", headers=HEADERS,
                           params={**query, **extra})  # fmt: skip
        assert answer.status_code == 200, answer.text
        return answer.json()

    snapped = usage()  # fal's default: the window grows to the whole day
    assert snapped["summary"][0]["quantity"] > 0
    assert usage(bound_to_timeframe="false")["summary"] == []
    wan = get_model("wan-2.1").endpoint_id
    emulator.configure(records_lag={wan: 2})
    assert events(emulator.url) == []  # the records lag; usage still has the charges
    assert usage()["summary"][0]["cost_total"] > 0
    bad = httpx.get(emulator.url + "/v1/models/usage", headers=HEADERS,
                    params={"bound_to_timeframe": "no"})  # fmt: skip
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "validation_error"


def test_requests_fal_billed_that_the_ledger_counted_as_not_billed_are_named(tmp_path, emulator):
    emulator.configure(admin=True)
    env = cli_env(tmp_path, emulator.url)
    bulk(tmp_path, env, "--model", "wan-2.1", "--batch", "pans")
    [(first, _, _), (second, _, _)] = jobs_of(tmp_path, "pans")
    # the ledger's view after answers that raced fal's: the first job failed with a 5xx
    # (not billed), the second was cancelled while it ran (counted); fal billed both
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        db.execute("UPDATE jobs SET status = 'failed', error_type = 'server_error' "
                   "WHERE request_id = ?", (first,))  # fmt: skip
        db.execute("UPDATE jobs SET status = 'cancelled', error_type = 'cancelled_running' "
                   "WHERE request_id = ?", (second,))  # fmt: skip
    db.close()
    cost = run_cli(i2vkit("cost", "pans"), env, tmp_path)
    assert cost.returncode == 0, cost.stdout + cost.stderr
    [line] = [x for x in cost.stdout.splitlines() if "the ledger counted as not billed" in x]
    assert line.startswith("fal billed 1 request of wan-2.1") and first in line, cost.stdout
    assert second not in line


def tags_of(video: Path) -> tuple[dict, dict, list[bytes]]:
    """The i2vkit and comment tags and the video packets, read with PyAV, not i2vkit."""
    import av

    with av.open(str(video)) as container:
        tags = dict(container.metadata)
        packets = [bytes(p) for p in container.demux(container.streams.video[0]) if p.size]
    return json.loads(tags["i2vkit"]), json.loads(tags["comment"]), packets


def test_cost_writes_the_billed_cost_into_the_videos_tags_and_skips_moved_ones(tmp_path, emulator):
    wan = get_model("wan-2.1")
    billed_unit = round(wan.estimate_cost({}) * 1.2, 4)
    emulator.configure(admin=True, billed_prices={wan.endpoint_id: billed_unit})
    env = cli_env(tmp_path, emulator.url)
    bulk(tmp_path, env, "--model", "wan-2.1", "--batch", "pans")
    [(_, _, kept), (_, _, moved)] = jobs_of(tmp_path, "pans")
    kept, moved = Path(kept), Path(moved)
    before, _, packets = tags_of(kept)
    assert before["cost"]["billed_usd"] is None  # unknown at download time
    away = tmp_path / "elsewhere" / moved.name
    away.parent.mkdir()
    moved.rename(away)

    cost = run_cli(i2vkit("cost", "pans"), env, tmp_path)
    assert cost.returncode == 0, cost.stdout + cost.stderr
    assert "1 video no longer where i2vkit downloaded it (moved away): skipped" in cost.stdout
    tag, comment, after = tags_of(kept)
    assert abs(tag["cost"]["billed_usd"] - billed_unit) < 1e-9, tag["cost"]
    assert comment == tag and after == packets  # the same packets: remuxed, not re-encoded
    assert {k: v for k, v in tag.items() if k != "cost"} == {
        k: v for k, v in before.items() if k != "cost"
    }
    sidecar = json.loads(kept.with_suffix(".json").read_text(encoding="utf-8"))
    assert sidecar["cost"] == tag["cost"]
    assert tags_of(away)[0]["cost"]["billed_usd"] is None  # moved away: left as it was
    assert sorted(p.name for p in kept.parent.iterdir() if p.name.startswith(".")) == []
