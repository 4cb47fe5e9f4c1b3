"""The gallery, timeline and table HTML builders (pure functions, no kernel)."""

from __future__ import annotations

import random
import re

from PIL import Image

from i2vkit import gallery as g
from i2vkit import timeline as tl

EVIL = "<script>alert('x')</script> & \"quoted\""


def make_video(path, size=4096):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)
    return path


def make_image(path, size=(64, 48), noisy=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", size, (200, 100, 50))
    if noisy:
        rng = random.Random(1)
        img.putdata(
            [
                (rng.randrange(256), rng.randrange(256), rng.randrange(256))
                for _ in range(size[0] * size[1])
            ]
        )
    img.save(path)
    return path


def item(tmp_path, job_id=1, **kw):
    defaults = dict(
        job_id=job_id,
        image=str(make_image(tmp_path / "project" / "data" / f"img{job_id}.png")),
        prompt="a prompt",
        model="wan",
        status="downloaded",
        video=str(make_video(tmp_path / "project" / "downloads" / f"{job_id}_wan_x.mp4")),
        error=None,
    )
    defaults.update(kw)
    return g.GalleryItem(**defaults)


def project(tmp_path):
    root = tmp_path / "project"
    (root / "notebooks").mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text("")
    return root


def test_videos_are_linked_relative_to_the_notebook_folder(tmp_path):
    root = project(tmp_path)
    it = item(tmp_path, video=str(make_video(root / "downloads" / "my clips" / "1_wan_#1.mp4")))
    html = g.gallery_html([it], root / "notebooks")
    assert '<video src="../downloads/my%20clips/1_wan_%231.mp4"' in html
    for attr in ("controls", "muted", "loop", 'preload="metadata"'):
        assert attr in html
    assert "data:video" not in html


def test_everything_from_the_user_is_escaped(tmp_path):
    root = project(tmp_path)
    bad_name = make_image(root / "data" / "a<b>.png")
    failed = item(
        tmp_path, 2, prompt=EVIL, status="failed", video=None, error=EVIL, image=str(bad_name)
    )
    ok = item(tmp_path, 3, prompt=EVIL, model=EVIL)
    html = g.gallery_html([failed, ok], root / "notebooks", title=EVIL)
    assert "<script>" not in html and "a<b>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;quoted&quot;" in html
    assert html.count('class="i2v-error"') == 1  # the failed job shows its error


def test_failed_and_unfinished_jobs_have_no_player(tmp_path):
    root = project(tmp_path)
    items = [
        item(tmp_path, 1, status="failed", video=None, error="fal reported an error: boom"),
        item(tmp_path, 2, status="queued", video=None),
        item(tmp_path, 3),
    ]
    html = g.gallery_html(items, root / "notebooks")
    assert html.count("<video") == 1
    assert "fal reported an error: boom" in html
    assert "queued: no video yet" in html
    assert "3 jobs (1 downloaded, 1 failed, 1 queued)" in html


def test_missing_file_is_reported(tmp_path):
    root = project(tmp_path)
    it = item(tmp_path, video=str(root / "downloads" / "gone.mp4"))
    html = g.gallery_html([it], root / "notebooks")
    assert "<video" not in html and "file missing" in html


def test_videos_outside_the_root_are_embedded_only_when_small(tmp_path):
    root = project(tmp_path)
    outside = tmp_path / "elsewhere"
    small = [item(tmp_path, i, video=str(make_video(outside / f"{i}.mp4", 1000))) for i in (1, 2)]
    big = item(tmp_path, 3, video=str(make_video(outside / "3.mp4", 5000)))
    html = g.gallery_html(
        [*small, big], root / "notebooks", embed_max_bytes=2000, embed_budget_bytes=10_000
    )
    assert html.count('<video src="data:video/mp4;base64,') == 2
    assert "is outside the folder Jupyter serves" in html
    # and the total budget holds
    html = g.gallery_html(small, root / "notebooks", embed_max_bytes=2000, embed_budget_bytes=1500)
    assert html.count("data:video") == 1


def test_root_can_be_given_by_env(tmp_path, monkeypatch):
    root = project(tmp_path)
    outside = tmp_path / "elsewhere"
    it = item(tmp_path, video=str(make_video(outside / "1.mp4")))
    monkeypatch.setenv("I2VKIT_JUPYTER_ROOT", str(tmp_path))
    html = g.gallery_html([it], root / "notebooks")
    assert '<video src="../../elsewhere/1.mp4"' in html


def test_thumbnails_are_small_jpeg_data_uris(tmp_path):
    big = make_image(tmp_path / "big.png", size=(1200, 900), noisy=True)
    uri = g.thumbnail_data_uri(big)
    assert uri.startswith("data:image/jpeg;base64,") and len(uri) <= g.THUMB_MAX_CHARS
    rgba = tmp_path / "alpha.png"
    Image.new("RGBA", (50, 50), (0, 0, 0, 0)).save(rgba)
    assert g.thumbnail_data_uri(rgba).startswith("data:image/jpeg")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    assert g.thumbnail_data_uri(broken) is None
    assert g.thumbnail_data_uri(tmp_path / "missing.png") is None


def test_a_hundred_jobs_make_a_small_page(tmp_path):
    root = project(tmp_path)
    image = str(make_image(root / "data" / "one.png"))
    items = [item(tmp_path, i, image=image) for i in range(1, 101)]
    html = g.gallery_html(items, root / "notebooks")
    assert html.count("<video") == 100
    assert len(html) < 300_000
    limited = g.gallery_html(items, root / "notebooks", limit=10)
    assert limited.count("<video") == 10 and "90 more jobs" in limited


def test_items_from_ledger_rows_and_text_form(tmp_path):
    rows = [
        {
            "id": 7,
            "image_path": "/x/a.png",
            "prompt": "p",
            "model": "wan",
            "status": "failed",
            "local_file": None,
            "error": "nope",
        },
        {
            "id": 8,
            "image_path": "/x/b.png",
            "prompt": "q",
            "model": "wan",
            "status": "downloaded",
            "local_file": "/d/8_wan_x.mp4",
            "error": None,
        },
    ]
    items = g.items_from_rows(rows)
    assert [i.video for i in items] == [None, "/d/8_wan_x.mp4"]
    text = g.gallery_text(rows)
    assert "error: nope" in text and "/d/8_wan_x.mp4" in text


def ledger_row(i, created, submitted, started, completed, downloaded, status="downloaded"):
    def t(s):
        return None if s is None else f"2026-01-01T00:00:{s:06.3f}+00:00"

    return {
        "id": i,
        "image_path": f"/x/img{i}.png",
        "status": status,
        "error": "boom" if status == "failed" else None,
        "created_at": t(created),
        "submitted_at": t(submitted),
        "started_at": t(started),
        "completed_at": t(completed),
        "downloaded_at": t(downloaded),
    }


def test_timeline_draws_each_phase():
    rows = [
        ledger_row(1, 0, 0.5, 1.0, 5.0, 5.5),
        ledger_row(2, 0, 0.5, None, 4.0, 4.2),  # never seen running
        ledger_row(3, 0, 0.6, 1.0, 2.0, None, status="failed"),
    ]
    html = tl.timeline_svg(rows)
    assert html.count("<svg") == 1
    phases = re.findall(r'data-phase="([a-z+]+)"', html)
    assert phases.count("local") == 3
    assert phases.count("queue") == 2 and phases.count("run") == 2
    assert phases.count("queue+run") == 1 and phases.count("download") == 2
    assert "&#x2715;" in html and "boom" in html  # the failed job is marked with its error
    times, _ = tl.job_phases(rows)
    assert times[0].segments[1] == ("queue", 0.5, 1.0)
    assert tl.peak_in_flight(times) == 3


def test_timeline_names_the_bottleneck():
    queued = [ledger_row(i, 0, 0.1, 8.0, 9.0, 9.1) for i in range(4)]
    assert "fal's queue" in tl.timeline_summary(queued)
    waiting = [ledger_row(i, 0, 6.0 + i, 6.5 + i, 7.0 + i, 7.1 + i) for i in range(4)]
    assert "concurrency (1) was the limit" in tl.timeline_summary(waiting, concurrency=1)
    running = [ledger_row(i, 0, 0.1, 0.2, 9.0, 9.1) for i in range(4)]
    assert "run time dominates" in tl.timeline_summary(running)
    assert tl.timeline_svg([]) == "<div>no jobs with timing data</div>"


def test_tables_escape():
    html = g.table_html([{"a": EVIL}], ["a"])
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "a" in g.table_text([{"a": "x"}], ["a"])
