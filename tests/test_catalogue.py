"""The model catalogue end to end: the snapshot against the research file, names, schema
checks before any upload, status refusals, the Platform API refresh on the emulator, the
image and end-image fields on the wire, and every README command."""

from __future__ import annotations

import json
import re
import shlex
import sqlite3
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from clitools import cli_env, run_cli, write_prompts
from helpers import TEST_KEY, make_images

from i2vkit.catalogue import snapshot

ROOT = Path(__file__).resolve().parents[1]
# the research file the snapshot was built from (python -m i2vkit.catalogue.build FILE)
REFERENCE = ROOT / "docs" / "research" / "fal-i2v-models.json"


def i2vkit(*args: str) -> list[str]:
    return [sys.executable, "-m", "i2vkit", *args]


# ------------------------------------------------------------ snapshot vs reference


def test_snapshot_matches_the_reference_file():
    """Every input schema of the snapshot against the research file: field names, which
    are required, types, enums, defaults and bounds (the one default the build corrects,
    Seedance 1.0 Pro's resolution, is checked on its own in test_catalogue_whole)."""
    ref = json.loads(REFERENCE.read_text(encoding="utf-8"))
    cat = snapshot()
    kinds = {"string", "integer", "number", "boolean", "array", "object"}
    for m in ref["models"]:
        eid = m["endpoint_id"]
        entry = cat.by_id.get(eid)
        assert entry is not None, f"{eid} missing from the snapshot"
        props = entry["input"]["properties"]
        assert set(props) == set(m["input"]), eid
        want_required = {n for n, f in m["input"].items() if f.get("required")}
        assert set(entry["input"]["required"]) == want_required, eid
        for name, field in m["input"].items():
            p = props[name]
            assert p.get("enum") == field.get("enum"), (eid, name)
            if "default_source" not in p:
                assert p.get("default") == field.get("default"), (eid, name)
            assert p.get("minimum") == field.get("min"), (eid, name)
            assert p.get("maximum") == field.get("max"), (eid, name)
            assert p.get("maxLength") == field.get("max_length"), (eid, name)
            t = field["type"]
            if t.startswith("string (URL"):
                assert p["type"] == "file", (eid, name)
            elif t in kinds:
                assert p["type"] == t, (eid, name)
            else:  # "string or object (ImageSize)", a named structure: a JSON kind
                assert p["type"] in kinds, (eid, name, p["type"])
        assert entry["image_field"] == m["image_field"]
        assert entry.get("end_image_field") == m.get("end_image_field")
        if not m["pricing"].get("amounts_usd"):
            assert not entry["price"]["rates"], f"{eid}: price invented"
            assert entry["price"]["verified"] == "unknown"
        elif m["pricing"].get("inferred"):
            assert entry["price"]["verified"] == "unverified", eid
        # every number in the rule is one the reference printed (or its x1000 per-token form)
        printed = set()
        for v in (m["pricing"].get("amounts_usd") or {}).values():
            printed |= {round(v, 6), round(v * 1000, 6)}
        for r in entry["price"]["rates"] + entry["price"].get("adds", []):
            assert round(r["usd"], 6) in printed, (eid, r)


def test_families_the_issue_names_are_all_there():
    cat = snapshot()
    for fam in ("kling", "veo", "wan", "hailuo", "minimax", "ltx", "seedance", "pixverse"):
        assert fam in cat.families
    for fam in ("luma", "vidu", "grok"):
        assert fam in cat.families
    for name in ("kling-2.5-turbo", "veo-3.1-fast", "wan-2.7", "hailuo-2.3", "ltx-2.3"):
        assert cat.lookup(name) is not None, name


# ------------------------------------------------------------ the CLI on an emulator


@pytest.fixture
def batch(tmp_path):
    images = tmp_path / "pics"
    make_images(images, 2)
    prompts = write_prompts(tmp_path / "prompts.txt", 2)
    return images, prompts


def bulk(emulator, tmp_path, images, prompts, *extra, env_extra=None, model="wan", key=TEST_KEY):
    env = cli_env(tmp_path, emulator.url, key, **(env_extra or {}))
    args = i2vkit(
        "bulk", str(prompts), "--images-dir", str(images), "--model", model, "--yes",
        "--no-progress", *extra,
    )  # fmt: skip
    return run_cli(args, env, tmp_path)


def test_veo_dry_run_plans_veo_3_1_with_fal_option_names(emulator, tmp_path, batch):
    out = bulk(emulator, tmp_path, *batch, "--dry-run", "-o", "duration=6s", model="veo-3.1-fast")
    assert out.returncode == 0, out.stderr
    assert "fal-ai/veo3.1/fast/image-to-video" in out.stdout
    # 4 jobs x 6 s x $0.15/s (720p, audio on by default) = $3.60
    assert "3.60" in out.stdout, out.stdout
    refused = bulk(emulator, tmp_path, *batch, "--dry-run", "-o", "aspect=16:9", model="veo")
    assert refused.returncode == 2
    assert "no option 'aspect'" in refused.stderr and "aspect_ratio" in refused.stderr


def test_veo_3_endpoint_plans_with_a_warning_naming_veo_3_1(emulator, tmp_path, batch):
    out = bulk(emulator, tmp_path, *batch, "--dry-run", model="fal-ai/veo3/image-to-video")
    assert out.returncode == 0, out.stderr
    warning = [line for line in (out.stdout + out.stderr).splitlines() if "warning" in line]
    assert warning and "fal-ai/veo3.1/image-to-video" in warning[0], out.stdout


def test_shut_down_endpoint_is_refused_before_any_upload(emulator, tmp_path, batch):
    out = bulk(emulator, tmp_path, *batch, model="sora-2")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "shut down" in out.stderr and "veo3.1" in out.stderr
    stats = emulator.stats()
    assert stats["uploads"] == 0 and stats["submits"]["total"] == 0


@pytest.mark.parametrize(
    ("option", "said"),
    [
        ("duration=7", 'one of "5", "10"'),  # out of the enum
        ("cfg_scale=abc", "a number"),  # wrong type
    ],
)
def test_bad_option_values_are_refused_before_any_upload(emulator, tmp_path, batch, option, said):
    out = bulk(emulator, tmp_path, *batch, "-o", option, model="kling-2.5-turbo")
    assert out.returncode == 2
    assert said in out.stderr, out.stderr
    assert emulator.stats()["uploads"] == 0 and emulator.stats()["submits"]["total"] == 0


def test_out_of_range_and_all_problems_reported_at_once(emulator, tmp_path, batch):
    out = bulk(
        emulator, tmp_path, *batch, "-o", "duration=99", "-o", "resolution=8k", "-o",
        "sed=3", model="vidu-q3",
    )  # fmt: skip
    assert out.returncode == 2
    said_all = ("duration='99': out of range, expected a whole number from 1 to 16",
                "resolution='8k'", "did you mean 'seed'")  # fmt: skip
    for said in said_all:
        assert said in out.stderr, out.stderr
    assert emulator.stats()["uploads"] == 0


@pytest.mark.parametrize(
    "end,said",
    [("ftp://127.0.0.1/end.png", "is not an http(s) URL"), ("http:///end.png", "has no host")],
)
def test_an_end_image_url_fal_cannot_fetch_is_refused_before_any_upload(
    emulator, tmp_path, batch, end, said
):
    out = bulk(emulator, tmp_path, *batch, "--end-image", end, model="kling")
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"End image {end} {said}" in out.stderr, out.stderr
    assert emulator.stats()["uploads"] == 0 and emulator.stats()["submits"]["total"] == 0


def test_an_end_image_url_with_its_scheme_in_capitals_is_sent_as_a_url(emulator, tmp_path, batch):
    """`HTTP://...` passes the URL check, so it is a URL everywhere: sent as is, never
    looked for as a local file to upload."""
    from helpers import upload_blob

    end = upload_blob(emulator, (tmp_path / "pics" / "img1.png").read_bytes())
    end = "HTTP" + end[len("http") :]
    out = bulk(emulator, tmp_path, *batch, "--end-image", end, model="kling")
    assert out.returncode == 0, out.stdout + out.stderr
    assert {j["arguments"]["end_image_url"] for j in emulator.jobs()} == {end}
    assert emulator.stats()["uploads"] == 1 + 2  # the end frame by hand, then the two images


def test_kling_v3_jobs_send_start_image_url_and_the_end_image(emulator, tmp_path, batch):
    images, prompts = batch
    end = make_images(tmp_path / "end", 1, start=7)[0]
    out = bulk(emulator, tmp_path, images, prompts, "--end-image", str(end), model="kling")
    assert out.returncode == 0, out.stdout + out.stderr
    jobs = emulator.jobs()
    assert len(jobs) == 4
    for job in jobs:
        args = job["arguments"]
        assert job["endpoint"] == "fal-ai/kling-video/v3/standard/image-to-video"
        assert args["start_image_url"].startswith(emulator.url)
        assert "image_url" not in args
        assert args["end_image_url"].startswith(emulator.url)
    assert len({j["arguments"]["end_image_url"] for j in jobs}) == 1
    assert emulator.stats()["uploads"] == 3  # two images and one end frame


def test_wrong_argument_is_a_422_on_the_emulator(emulator):
    url = f"{emulator.url}/fal-ai/wan/v2.7/image-to-video"
    body = {"prompt": "p", "image_url": "https://x/y.png", "duration": "5"}  # a string
    r = httpx.post(url, json=body, headers={"Authorization": f"Key {TEST_KEY}"})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail[0]["loc"] == ["body", "duration"] and detail[0]["type"] and detail[0]["msg"]
    body["duration"] = 5
    assert httpx.post(url, json=body, headers={"Authorization": f"Key {TEST_KEY}"}).is_success


# ------------------------------------------------------------ Platform API and refresh


def test_platform_api_shapes_and_auth(emulator):
    base = f"{emulator.url}/v1"
    eid = "fal-ai/kling-video/v3/pro/image-to-video"
    r = httpx.get(f"{base}/models", params={"endpoint_id": eid, "expand": "openapi-3.0"})
    model = r.json()["models"][0]
    assert model["endpoint_id"] == eid and model["metadata"]["status"] == "active"
    schemas = model["openapi"]["components"]["schemas"]
    assert any("start_image_url" in s.get("properties", {}) for s in schemas.values())
    refused = httpx.get(f"{base}/models/pricing", params={"endpoint_id": eid})
    assert refused.status_code == 401
    assert refused.json()["error"]["type"] == "authorization_error"
    auth = {"Authorization": f"Key {TEST_KEY}"}
    prices = httpx.get(f"{base}/models/pricing", params={"endpoint_id": eid}, headers=auth)
    assert prices.json()["prices"][0]["unit_price"] == 0.168  # audio on, fal's default
    body = {"estimate_type": "unit_price", "endpoints": {eid: {"unit_quantity": 10}}}
    quote = httpx.post(f"{base}/models/pricing/estimate", json=body, headers=auth)
    assert quote.json()["total_cost"] == pytest.approx(1.68)


def age_catalogue(db: Path, days: int) -> None:
    conn = sqlite3.connect(db)
    with conn:
        old = (datetime.now(UTC) - timedelta(days=days)).isoformat()
        conn.execute("UPDATE catalogue SET read_at = ?", [old])
    conn.close()


def test_refresh_stores_the_catalogue_and_a_changed_price_shows_in_the_next_plan(
    emulator, tmp_path, batch
):
    env = cli_env(tmp_path, emulator.url)
    out = run_cli(i2vkit("models", "--refresh"), env, tmp_path)
    assert out.returncode == 0, out.stderr
    assert "kept in the ledger" in out.stdout
    rows = sqlite3.connect(tmp_path / "ledger.db").execute("SELECT count(*) FROM catalogue")
    assert rows.fetchone()[0] == 1
    plan = bulk(emulator, tmp_path, *batch, "--dry-run", model="kling-2.5-turbo")
    assert "$0.210 per video" in plan.stdout.replace("US$ ", "$"), plan.stdout
    eid = "fal-ai/kling-video/v2.5-turbo/standard/image-to-video"
    httpx.post(f"{emulator.url}/_emulator/prices", json={eid: 0.05}).raise_for_status()
    age_catalogue(tmp_path / "ledger.db", days=8)  # a week later: the next plan reads again
    plan = bulk(emulator, tmp_path, *batch, "--dry-run", model="kling-2.5-turbo")
    assert "$0.250 per video" in plan.stdout.replace("US$ ", "$"), plan.stdout
    shown = run_cli(i2vkit("models", "kling-2.5-turbo"), env, tmp_path)
    assert "fal pricing API" in shown.stdout


def test_unreachable_platform_api_falls_back_in_one_line(emulator, tmp_path, batch):
    env = cli_env(tmp_path, emulator.url)
    assert run_cli(i2vkit("models", "--refresh"), env, tmp_path).returncode == 0
    age_catalogue(tmp_path / "ledger.db", days=8)
    emulator.stop()
    out = bulk(emulator, tmp_path, *batch, "--dry-run", model="kling-2.5-turbo")
    assert out.returncode == 0, out.stdout + out.stderr
    notes = [line for line in (out.stdout + out.stderr).splitlines() if "catalogue" in line]
    assert len(notes) == 1 and "could not refresh" in notes[0], out.stdout + out.stderr


WRONG_KEY = "testid:not-the-emulators-secret"  # the emulator rejects every key but TEST_KEY


def test_refresh_without_a_key_says_the_key_is_missing_not_rejected(emulator, tmp_path):
    """Issue 13: with I2VKIT_FAL_URL set and no FAL_KEY, --refresh said the key was rejected."""
    refresh = i2vkit("models", "--refresh")
    missing = run_cli(refresh, cli_env(tmp_path, emulator.url, key=None), tmp_path)
    assert missing.returncode == 2, missing.stdout + missing.stderr
    assert "FAL_KEY is not set" in missing.stderr and "rejected" not in missing.stderr
    assert "set FAL_KEY" in missing.stderr and "i2vkit models --refresh" in missing.stderr
    wrong = run_cli(refresh, cli_env(tmp_path, emulator.url, key=WRONG_KEY), tmp_path)
    assert wrong.returncode == 3, wrong.stdout + wrong.stderr
    assert "FAL_KEY was rejected" in wrong.stderr and "not set" not in wrong.stderr
    assert WRONG_KEY not in wrong.stdout + wrong.stderr


def test_a_stale_catalogue_note_says_missing_or_rejected_key(emulator, tmp_path, batch):
    done = run_cli(i2vkit("models", "--refresh"), cli_env(tmp_path, emulator.url), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    age_catalogue(tmp_path / "ledger.db", days=8)

    def note(key):
        out = bulk(emulator, tmp_path, *batch, "--dry-run", key=key)
        assert out.returncode == 0, out.stdout + out.stderr
        lines = (out.stdout + out.stderr).splitlines()
        notes = [ln for ln in lines if "model catalogue" in ln]
        assert len(notes) == 1, out.stdout + out.stderr
        return notes[0]

    missing = note(None)
    assert "FAL_KEY is not set" in missing and "rejected" not in missing
    assert "set FAL_KEY" in missing and "i2vkit models --refresh" in missing
    rejected = note(WRONG_KEY)
    assert "FAL_KEY was rejected" in rejected and "not set" not in rejected
    assert WRONG_KEY not in rejected


# ------------------------------------------------------------ README and printed text


def readme_commands() -> list[str]:
    """The README's command lines (indented or fenced) that start with ``i2vkit``, minus the
    synopsis (placeholders in capitals) and the Windows example (its paths are C:\\...)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = [ln.strip().removeprefix("$ ") for ln in text.splitlines() if ln.startswith("    ")]
    return [
        ln
        for ln in lines
        if ln.startswith("i2vkit ")
        and not ln.startswith("i2vkit emulator")
        and not re.search(r"\b[A-Z]{3,}\b|\[", ln.split("#")[0])
        and ":\\" not in ln
    ]


def test_every_readme_command_runs(emulator, tmp_path):
    commands = readme_commands()
    assert any(c.startswith("i2vkit models") for c in commands)
    env = cli_env(tmp_path, emulator.url)
    for command in commands:
        args = shlex.split(command.split("#")[0].split("|")[0])[1:]
        if args and args[0] in ("bulk", "retry") and "--dry-run" not in args:
            args.append("--dry-run")
        if args and args[0] in ("status", "retry", "report", "keep", "export", "cancel"):
            continue  # need a batch in the ledger; their own tests run them on one
        out = run_cli(i2vkit(*args), env, ROOT)
        assert out.returncode == 0, f"{command}\n{out.stdout}\n{out.stderr}"
        for path in re.findall(r"(?:\.\./|/)shared/\S*", out.stdout + out.stderr):
            raise AssertionError(f"{command} printed a path outside the repository: {path}")


def test_nothing_printed_cites_a_path_outside_the_repository(tmp_path):
    env = cli_env(tmp_path, "http://127.0.0.1:9")
    names = ["veo", "sora-2", "kling-3.0-pro", "seedance", "pixverse"]
    for args in [["models"], *(["models", n] for n in names)]:
        out = run_cli(i2vkit(*args), env, tmp_path)
        text = out.stdout + out.stderr
        assert "shared/reference" not in text and "../" not in text, text
        assert "http" not in text.replace("http://127.0.0.1:9", ""), text


# ------------------------------------------------------------ prompt limits in bytes


def _pixverse_byte_limit() -> int:
    """The limit the research file states for PixVerse, read from its prose note."""
    models = json.loads(REFERENCE.read_text(encoding="utf-8"))["models"]
    notes = " ".join(n for m in models if m["family"] == "pixverse" for n in m.get("notes", []))
    found = re.search(r"limited to (\d+) UTF-8 BYTES", notes)
    assert found, "the reference no longer states PixVerse's byte limit"
    return int(found.group(1))


def test_pixverse_counts_its_prompt_limit_in_utf8_bytes(emulator, tmp_path, batch):
    limit = _pixverse_byte_limit()
    images, _ = batch
    accented = "é" * (limit // 2 + 50)  # fewer characters than the limit, more bytes
    assert len(accented) < limit < len(accented.encode("utf-8"))
    prompts = tmp_path / "long.txt"
    prompts.write_text(f"a short prompt\n{accented}\n", encoding="utf-8")
    out = bulk(emulator, tmp_path, images, prompts, model="pixverse")
    assert out.returncode == 2, out.stdout + out.stderr
    said = out.stderr
    assert f"{limit} UTF-8 bytes" in said and f"#2 ({len(accented.encode())} bytes)" in said
    assert "#1" not in said, said
    assert emulator.stats()["uploads"] == 0 and emulator.stats()["submits"]["total"] == 0
    fits = tmp_path / "fits.txt"
    fits.write_text("é" * (limit // 2) + "\n", encoding="utf-8")  # exactly the limit in bytes
    assert bulk(emulator, tmp_path, images, fits, "--dry-run", model="pixverse").returncode == 0
    # a model that counts characters takes the same text
    plain = bulk(emulator, tmp_path, images, prompts, "--dry-run", model="kling-2.5-turbo")
    assert plain.returncode == 0, plain.stdout + plain.stderr


# ------------------------------------------------------------ retry keeps the version


def test_retry_runs_on_the_endpoint_the_batch_ran_on_not_the_family_pick(emulator, settings):
    """A batch run as `kling` fails; `kling` then comes to mean another version (a newer
    catalogue); the retry plans and submits on the endpoint the batch really used."""
    from i2vkit import catalogue
    from i2vkit.engine import run_batch
    from i2vkit.planning import BatchRequest, plan_retry
    from i2vkit.workspace import Workspace

    images = settings.download_dir.parent / "pics"
    make_images(images, 1)
    first = snapshot().families["kling"]
    newer = next(
        e["endpoint_id"]
        for e in snapshot().family_versions("kling")
        if e["endpoint_id"] != first and e["status"] == "active"
    )
    emulator.configure(fail_rate=1.0, fail_kind="runner")
    spec = BatchRequest(images_dir=images, prompts=["a cat"], model="kling", concurrency=1)
    result = run_batch(spec, settings)
    assert emulator.jobs()[0]["endpoint"] == first
    emulator.configure(fail_rate=0.0)
    moved = snapshot()
    moved.data["families"]["kling"] = newer
    moved.data["names"]["kling"] = newer
    catalogue.use(moved)
    try:
        assert catalogue.active().lookup("kling")["endpoint_id"] == newer
        with Workspace.open(settings) as ws:
            plan = plan_retry(result.batch_id, ws)
        assert plan.model.endpoint_id == first
        run_batch(plan, settings)
    finally:
        catalogue.use(None)
    assert [j["endpoint"] for j in emulator.jobs()] == [first, first]


# ------------------------------------------------------------ an expired end-image URL


def test_expired_end_image_url_is_uploaded_again_and_each_job_resubmitted_once(
    emulator, tmp_path, batch
):
    """The end frame's cached upload expired on the CDN (file_ttl) while new start images
    are fresh: fal answers file_download_error on end_image_url; the end frame is uploaded
    again once for the whole batch and each job is resubmitted once, and every video made."""
    images, prompts = batch
    end = make_images(tmp_path / "end", 1, start=7)[0]
    first = bulk(emulator, tmp_path, images, prompts, "--end-image", str(end), model="kling")
    assert first.returncode == 0, first.stdout + first.stderr
    stale = {j["arguments"]["end_image_url"] for j in emulator.jobs()}
    emulator.configure(file_ttl=600)
    emulator.advance_clock(601)  # every file uploaded so far now answers 404 on the CDN
    assert httpx.get(next(iter(stale))).status_code == 404
    fresh_images = tmp_path / "new"
    make_images(fresh_images, 2, start=20)
    before = emulator.stats()
    second = bulk(emulator, tmp_path, fresh_images, prompts, "--end-image", str(end), model="kling")
    assert second.returncode == 0, second.stdout + second.stderr
    after = emulator.stats()
    assert after["uploads"] - before["uploads"] == 3  # two new images, the end frame again
    jobs = emulator.jobs()[4:]  # this run's submits (the first run made 4)
    assert len(jobs) == 8  # 4 jobs, each submitted twice
    refused = [j for j in jobs if j["arguments"]["end_image_url"] in stale]
    assert len(refused) == 4 and all(j["error_type"] == "file_download_error" for j in refused)
    redone = [j for j in jobs if j["arguments"]["end_image_url"] not in stale]
    assert len(redone) == 4 and len({j["arguments"]["end_image_url"] for j in redone}) == 1
    assert httpx.get(redone[0]["arguments"]["end_image_url"]).status_code == 200
    done = sqlite3.connect(tmp_path / "ledger.db").execute(
        "SELECT count(*) FROM jobs WHERE status = 'downloaded'"
    )
    assert done.fetchone()[0] == 8


# ------------------------------------------------------------ "Application not found"


def remove_apps(emulator, *endpoint_ids: str) -> None:
    body = {"remove": list(endpoint_ids)}
    httpx.post(f"{emulator.url}/_emulator/models", json=body).raise_for_status()


def test_the_emulator_answers_application_not_found_for_a_removed_app(emulator):
    remove_apps(emulator, "someone/retired-i2v")
    auth = {"Authorization": f"Key {TEST_KEY}"}
    body = {"prompt": "p", "image_url": "https://x/y.png"}
    r = httpx.post(f"{emulator.url}/someone/retired-i2v", json=body, headers=auth)
    assert (
        r.status_code == 404 and r.json()["detail"] == "Application 'someone/retired-i2v' not found"
    )
    status = f"{emulator.url}/someone/retired-i2v/requests/abc/status"
    assert httpx.get(status, headers=auth).status_code == 404
    assert httpx.post(f"{emulator.url}/someone/still-here", json=body, headers=auth).is_success
    listed = httpx.get(f"{emulator.url}/v1/models", params={"endpoint_id": "someone/retired-i2v"})
    assert listed.json()["models"] == []
    assert emulator.stats()["submits"]["total"] == 1


@pytest.mark.parametrize(
    ("model", "said"),
    [
        ("someone/retired-i2v", "`i2vkit models` lists the models fal runs"),
        ("fal-ai/veo3/image-to-video", "(fal-ai/veo3.1/image-to-video) instead"),
    ],
)
def test_an_endpoint_fal_no_longer_has_is_refused_before_any_upload(
    emulator, tmp_path, batch, model, said
):
    """Exit 2 (like any unusable --model), the replacement named when the catalogue has one,
    nothing uploaded or submitted, no job in the ledger."""
    remove_apps(emulator, model)
    out = bulk(emulator, tmp_path, *batch, "--max-cost", "none", model=model)
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"fal answers 404 'Application not found' for {model}" in out.stderr, out.stderr
    assert said in out.stderr and "Nothing was uploaded or submitted" in out.stderr
    stats = emulator.stats()
    assert stats["uploads"] == 0 and stats["submits"]["total"] == 0
    jobs = sqlite3.connect(tmp_path / "ledger.db").execute("SELECT count(*) FROM jobs")
    assert jobs.fetchone()[0] == 0


# ------------------------------------------------------------ new endpoints from a refresh

NEW_ID = "fal-ai/newco/v1/image-to-video"
NEW_ENTRY = {  # what fal "published": the catalogue's shape, served by the emulator
    "endpoint_id": NEW_ID,
    "display_name": "NewCo v1 image-to-video",
    "status": "active",
    "read_on": "2026-11-25",
    "image_field": "image_url",
    "input": {
        "properties": {
            "prompt": {"type": "string"},
            "image_url": {"type": "file"},
            "duration": {"type": "string", "enum": ["5", "10"], "default": "5"},
        },
        "required": ["prompt", "image_url"],
    },
    "price": {"unit": "video", "verified": "verified", "rates": [{"when": {}, "usd": 0.33}]},
}


def test_refresh_discovers_a_new_image_to_video_endpoint(emulator, tmp_path, batch):
    env = cli_env(tmp_path, emulator.url)
    httpx.post(f"{emulator.url}/_emulator/models", json={"add": [NEW_ENTRY]}).raise_for_status()
    # the listing is paginated: every page is needed to see every endpoint
    first = httpx.get(f"{emulator.url}/v1/models", params={"category": "image-to-video"}).json()
    assert first["has_more"] and NEW_ID not in [m["endpoint_id"] for m in first["models"]]
    unknown = run_cli(i2vkit("models", NEW_ID), env, tmp_path)
    assert "0.33" not in unknown.stdout  # before the refresh: a generic endpoint, no price
    out = run_cli(i2vkit("models", "--refresh"), env, tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"{len(snapshot().entries) + 1} models" in out.stdout, out.stdout
    assert f"new on fal: newco-v1 ({NEW_ID})" in out.stdout, out.stdout
    table = run_cli(i2vkit("models"), env, tmp_path)
    assert "newco-v1" in table.stdout, table.stdout
    detail = run_cli(i2vkit("models", "newco-v1"), env, tmp_path)
    assert detail.returncode == 0 and "duration" in detail.stdout and '"10"' in detail.stdout
    plan = bulk(emulator, tmp_path, *batch, "--dry-run", "-o", "duration=10", model="newco-v1")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "1.32" in plan.stdout, plan.stdout  # 4 jobs x US$ 0.33 (fal's unit price)
    refused = bulk(emulator, tmp_path, *batch, "--dry-run", "-o", "duration=7", model="newco-v1")
    assert refused.returncode == 2 and 'one of "5", "10"' in refused.stderr, refused.stderr
