"""Issue 24: every image-to-video endpoint fal lists, with honest dates and the current
version by default. Expectations come from the research file (docs/research, a copy of
the reference) and from the issue, never from the snapshot the build wrote."""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from clitools import bulk_args, cli_env, ledger, run_cli, write_prompts
from helpers import TEST_KEY, make_images

from i2vkit.catalogue import snapshot
from i2vkit.config import Settings
from i2vkit.errors import ModelError
from i2vkit.planning import BatchRequest, plan_batch
from i2vkit.store import Store
from i2vkit.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
REF = json.loads((ROOT / "docs" / "research" / "fal-i2v-models.json").read_text("utf-8"))
RETIRED = {m["endpoint_id"] for m in REF["models"] if "retired" in m["status"]}
RUNNING = [m for m in REF["models"] if m["endpoint_id"] not in RETIRED]
URL = "https://example.com/in.png"


def i2vkit(*args: str) -> list[str]:
    return [sys.executable, "-m", "i2vkit", *args]


def models_out(tmp_path: Path, *args: str) -> str:
    env = cli_env(tmp_path, "http://127.0.0.1:9", None)
    out = run_cli(i2vkit("models", *args), env, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_the_docs_copy_is_the_reference_byte_for_byte():
    shared = Path("/work/shared/reference/fal-i2v-models.json")
    if shared.is_file():  # the shared reference this checkout was built from
        assert shared.read_bytes() == (ROOT / "docs/research/fal-i2v-models.json").read_bytes()


def test_models_lists_every_endpoint_fal_runs(tmp_path):
    out = models_out(tmp_path)
    cat = snapshot()
    names = {line.split()[0] for line in out.splitlines()[1:] if line.strip()}
    for m in RUNNING:
        assert cat.by_id[m["endpoint_id"]]["name"] in names, m["endpoint_id"]
    for eid in RETIRED:
        assert cat.by_id[eid]["name"] not in names, eid


def _request_for(m: dict, images: Path) -> BatchRequest:
    """A dry-run request with the reference's required fields present."""
    options: dict = {}
    end = None
    for name, field in m["input"].items():
        if not field.get("required") or name in (m["image_field"], "prompt"):
            continue
        if name == m["end_image_field"]:
            end = str(images / "img1.png")
        elif field["type"] == "array":
            options[name] = json.dumps([{"path": "https://example.com/w.safetensors"}])
        else:
            options[name] = "https://example.com/track.mp3"
    return BatchRequest(
        images, prompts=["a slow pan"], model=m["endpoint_id"], options=options, end_image=end
    )


def test_every_running_endpoint_plans_with_its_required_fields(tmp_path):
    make_images(tmp_path / "pics", 1)
    settings = Settings(db_path=tmp_path / "l.db")
    with Workspace.open(settings) as ws:
        for m in RUNNING:
            plan = plan_batch(_request_for(m, tmp_path / "pics"), ws)
            assert plan.model.endpoint_id == m["endpoint_id"]
            assert not plan.model.generic, m["endpoint_id"]  # checked against its schema
            if m["pricing"].get("amounts_usd") and m["input"].get("duration", {}).get(
                "default"
            ) not in (None, "auto"):
                assert plan.estimated_cost is not None, m["endpoint_id"]


def test_an_input_a_folder_cannot_give_is_named_in_the_table_and_at_plan_time(tmp_path):
    lipsync = next(m for m in RUNNING if m["input"].get("audio_url", {}).get("required"))
    lora = next(m for m in RUNNING if m["input"].get("loras", {}).get("required"))
    cat = snapshot()
    table = models_out(tmp_path)
    assert "NEEDS" in table.splitlines()[0]
    row = next(
        ln
        for ln in table.splitlines()
        if ln.startswith(cat.by_id[lipsync["endpoint_id"]]["name"] + " ")
    )
    assert row.rstrip().endswith("audio")
    row = next(
        ln
        for ln in table.splitlines()
        if ln.startswith(cat.by_id[lora["endpoint_id"]]["name"] + " ")
    )
    assert row.rstrip().endswith("lora")
    make_images(tmp_path / "pics", 1)
    settings = Settings(db_path=tmp_path / "l.db")
    with Workspace.open(settings) as ws:
        for m, what in ((lipsync, "an audio track"), (lora, "LoRA weights")):
            request = BatchRequest(tmp_path / "pics", prompts=["p"], model=m["endpoint_id"])
            with pytest.raises(ModelError, match=what):
                plan_batch(request, ws)


def test_wan_plans_wan_2_7_and_models_wan_says_why(tmp_path):
    make_images(tmp_path / "pics", 1)
    with Workspace.open(Settings(db_path=tmp_path / "l.db")) as ws:
        plan = plan_batch(BatchRequest(tmp_path / "pics", prompts=["p"], model="wan"), ws)
    assert plan.model.endpoint_id == "fal-ai/wan/v2.7/image-to-video"
    out = models_out(tmp_path, "wan")
    assert "newest active, non-preview, general version" in out
    cat = snapshot()
    for m in RUNNING:  # the rest of the family, each by its name
        if m["family"] == "wan" and m["endpoint_id"] != plan.model.endpoint_id:
            assert f"  {cat.by_id[m['endpoint_id']]['name']} " in out, m["endpoint_id"]


def _tokens_usd(per_1000: float, size: tuple[int, int], seconds: float) -> float:
    return per_1000 * size[0] * size[1] * seconds * 24 / 1024 / 1000


def test_seedance_prices_at_a_length_and_resolution_that_are_said(tmp_path):
    table = models_out(tmp_path)
    cat = snapshot()
    fast = next(
        m for m in REF["models"] if m["endpoint_id"].endswith("seedance-2.0/fast/image-to-video")
    )
    assert fast["input"]["duration"]["default"] == "auto"
    shortest = min(int(v) for v in fast["input"]["duration"]["enum"] if v.isdigit())
    usd = _tokens_usd(fast["pricing"]["amounts_usd"]["per_1000_tokens"], (1280, 720), shortest)
    row = next(
        ln
        for ln in table.splitlines()
        if ln.startswith(cat.by_id[fast["endpoint_id"]]["name"] + " ")
    )
    assert f"US$ {usd:.2f} ({shortest}s~)" in row, row
    pro = next(
        m
        for m in REF["models"]
        if m["endpoint_id"] == "fal-ai/bytedance/seedance/v1/pro/image-to-video"
    )
    usd = _tokens_usd(pro["pricing"]["amounts_usd"]["per_million_tokens"] / 1000, (1920, 1080), 5)
    row = next(
        ln
        for ln in table.splitlines()
        if ln.startswith(cat.by_id[pro["endpoint_id"]]["name"] + " ")
    )
    assert f"US$ {usd:.2f} (5s)" in row, row  # 1080p, fal's default: about US$ 0.61
    make_images(tmp_path / "pics", 1)
    with Workspace.open(Settings(db_path=tmp_path / "l.db")) as ws:
        plan = plan_batch(
            BatchRequest(tmp_path / "pics", prompts=["p"], model=fast["endpoint_id"]), ws
        )
    text = plan.describe()
    assert f"assumes {shortest}s" in text and "~" in text, text


def test_models_says_what_its_dates_are_and_the_plan_the_catalogue_age(tmp_path):
    out = models_out(tmp_path)
    flat = " ".join(out.split())
    assert (
        "fal data as of 2026-08-02 (client types), prices from fal's pages; "
        "refreshed from fal: never" in flat
    )
    make_images(tmp_path / "pics", 1)
    with Workspace.open(Settings(db_path=tmp_path / "l.db")) as ws:
        plan = plan_batch(BatchRequest(tmp_path / "pics", prompts=["p"], model="kling"), ws)
    assert f"built {REF['read_on']}" in plan.describe()


def test_option_tables_show_defaults_whole_or_cut_closed_and_star_only_when_starred(tmp_path):
    cat = snapshot()
    for m in RUNNING:
        name = cat.by_id[m["endpoint_id"]]["name"]
        out = (
            models_out(tmp_path, name)
            if m["endpoint_id"]
            in {
                "fal-ai/kling-video/v3/pro/image-to-video",
                "fal-ai/wan/v2.7/image-to-video",
                "fal-ai/sync-lipsync/v3/image-to-video",
                "fal-ai/vidu/start-end-to-video",
            }
            else None
        )
        if out is None:
            continue
        rows = out.split("OPTION", 1)[1].splitlines()[1:]
        for row in rows:
            default = row[38:60].strip() if row[2:3].strip() else ""
            if default.startswith('"'):
                assert default.endswith('"'), row  # never an open quote
        starred = any(len(r.split()) > 1 and r.split()[1].endswith("*") for r in rows)
        assert ("* = required" in out) == starred, out
        for row in rows:
            if row.split() and row.split()[0] in ("audio_url", "video_url"):
                assert "end" not in row, row  # an audio or video URL is not an end image


def test_suggestions_only_among_listed_names_and_retired_names_give_their_replacement(tmp_path):
    from i2vkit.models import get_model

    cat = snapshot()
    listed_names = {cat.by_id[m["endpoint_id"]]["name"] for m in RUNNING} | set(cat.families)
    for typo in ("kling1.6x", "wann", "veo3.1x", "pixvers", "hailuo-2.3-fastt"):
        with pytest.raises(ModelError) as err:
            get_model(typo)
        hint = re.search(r"Did you mean (.*?)\?", str(err.value))
        assert hint, (typo, str(err.value))
        for suggested in re.findall(r"'([^']+)'", hint.group(1)):
            assert suggested in listed_names, (typo, suggested)
    gone = cat.by_id[sorted(RETIRED)[0]]
    with pytest.raises(ModelError) as err:
        get_model(gone["name"] + "x")
    instead = cat.name_of(gone["replacement"])
    assert f"{gone['name']!r} is shut down by fal: use {instead!r} instead" in str(err.value)


def test_a_batch_that_ran_under_a_family_name_keeps_its_endpoint(tmp_path, emulator):
    """A batch run with `--model wan` when wan meant Wan 2.1 continues on Wan 2.1 once wan
    means Wan 2.7: nothing is submitted again, and the plan says why."""
    make_images(tmp_path / "pics", 2)
    prompts = write_prompts(tmp_path / "p.txt", 1)
    env = cli_env(tmp_path, emulator.url)
    earlier = snapshot().data
    earlier["families"]["wan"] = earlier["names"]["wan"] = "fal-ai/wan-i2v"
    db = tmp_path / "ledger.db"
    with Store(db) as store:  # the catalogue as it was when the batch ran
        store.save_catalogue(emulator.url, "2099-01-01T00:00:00+00:00", json.dumps(earlier))
    first = run_cli(bulk_args(prompts, tmp_path / "pics", model="wan"), env, tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert {r[0] for r in ledger(db, "SELECT endpoint_id FROM jobs")} == {"fal-ai/wan-i2v"}
    with Store(db) as store:  # today's catalogue: wan means Wan 2.7
        store.save_catalogue(emulator.url, "2099-01-01T00:00:00+00:00", json.dumps(snapshot().data))
    submits = emulator.stats()["submits"]["total"]
    again = run_cli(bulk_args(prompts, tmp_path / "pics", "--dry-run", model="wan"), env, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "continues batch" in again.stdout and "(fal-ai/wan-i2v)" in again.stdout, again.stdout
    assert "now means" in again.stdout and "wan-2.7" in again.stdout
    assert "this run: US$ 0.00 (0 jobs)" in again.stdout, again.stdout
    assert emulator.stats()["submits"]["total"] == submits
    fresh = run_cli(
        bulk_args(
            write_prompts(tmp_path / "q.txt", 1), tmp_path / "pics", "--dry-run", model="wan"
        ),
        env,
        tmp_path,
    )
    assert "new batch" in fresh.stdout and "fal-ai/wan/v2.7/image-to-video" in fresh.stdout
    assert TEST_KEY not in again.stdout + again.stderr


def test_the_emulator_serves_every_endpoint_with_its_own_schema():
    """Each endpoint fal runs (the new ones too) is accepted with its required fields, and
    refused with fal's 422 without them (an audio track for the lip-sync endpoint)."""
    import httpx

    from i2vkit.emulator import Emulator

    emu = Emulator(key="i:s", job_seconds=0)
    headers = {"Authorization": "Key i:s"}
    with emu, httpx.Client(base_url=emu.url, headers=headers, timeout=30) as c:
        for m in RUNNING:
            body = {"prompt": "a slow pan"} if "prompt" in m["input"] else {}
            for name, field in m["input"].items():
                if field.get("required") and name != "prompt":
                    kind = field["type"]
                    body[name] = [{"path": URL}] if kind == "array" else URL
            r = c.post(f"/{m['endpoint_id']}", json=body)
            assert r.status_code == 200, (m["endpoint_id"], r.text)
        lipsync = next(m for m in RUNNING if m["input"].get("audio_url", {}).get("required"))
        r = c.post(f"/{lipsync['endpoint_id']}", json={"image_url": URL})
        assert r.status_code == 422 and "audio_url" in r.text


def test_a_shot_list_that_ran_a_family_name_keeps_its_endpoint(tmp_path, emulator):
    """The same for a shot list whose rows name `wan`: run again once `wan` moved on, its
    rows stay on the endpoint they ran on (nothing submitted twice)."""
    make_images(tmp_path / "pics", 2)
    shots = tmp_path / "shots.csv"
    shots.write_text("image,prompt,model\npics/img1.png,a pan,wan\npics/img2.png,a zoom,wan\n")
    env = cli_env(tmp_path, emulator.url)
    cmd = i2vkit("bulk", "--shots", str(shots), "--yes", "--no-progress")
    earlier = snapshot().data
    earlier["families"]["wan"] = earlier["names"]["wan"] = "fal-ai/wan-i2v"
    db = tmp_path / "ledger.db"
    with Store(db) as store:
        store.save_catalogue(emulator.url, "2099-01-01T00:00:00+00:00", json.dumps(earlier))
    first = run_cli(cmd, env, tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    with Store(db) as store:
        today = json.dumps(snapshot().data)
        store.save_catalogue(emulator.url, "2099-01-01T00:00:00+00:00", today)
    submits = emulator.stats()["submits"]["total"]
    again = run_cli(cmd, env, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "continues there" in again.stdout and "this run: US$ 0.00 (0 jobs)" in again.stdout
    assert emulator.stats()["submits"]["total"] == submits
    assert {r[0] for r in ledger(db, "SELECT endpoint_id FROM jobs")} == {"fal-ai/wan-i2v"}


def test_after_a_refresh_with_a_key_models_says_when(tmp_path, emulator):
    env = cli_env(tmp_path, emulator.url)  # a key, and fal's Platform API on the emulator
    before = datetime.now(UTC).strftime("%Y-%m-%d")
    refreshed = run_cli(i2vkit("models", "--refresh"), env, tmp_path)
    assert refreshed.returncode == 0, refreshed.stdout + refreshed.stderr
    out = run_cli(i2vkit("models"), env, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    flat = " ".join(out.stdout.split())
    days = {before, datetime.now(UTC).strftime("%Y-%m-%d")}  # a run across midnight: either
    assert any(f"refreshed from fal: {d}" in flat for d in days), flat
    assert "refreshed from fal: never" not in flat
    assert "fal data as of 2026-08-02 (client types)" in flat
