"""Wire-level tests of the fal emulator: status codes, JSON keys and headers.

Waiting for a job polls its status endpoint in a bounded loop; TTLs are tested
with ``advance_clock`` or zero TTLs, never by sleeping.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import time
from datetime import datetime

import httpx
import pytest
from PIL import Image

from i2vkit.emulator import LOCKED_DETAIL, Emulator, EmulatorProcess, main
from i2vkit.emulator.clips import output_size, probe

KEY = {"Authorization": "Key test-id:test-secret"}
WAN = "fal-ai/wan-i2v"
KLING = "fal-ai/kling-video/v1.6/standard/image-to-video"


def make_image(w: int = 320, h: int = 180, color=(30, 140, 200), fmt: str = "PNG") -> bytes:
    img = Image.new("RGB", (w, h), color)
    for x in range(0, w, 16):
        img.putpixel((x, h // 2), (255, 255, 255))
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


@pytest.fixture
def emu():
    with Emulator(port=0, job_seconds=0) as e:
        yield e


@pytest.fixture
def client(emu):
    with httpx.Client(base_url=emu.url, headers=KEY, timeout=30) as c:
        yield c


def token(client: httpx.Client) -> str:
    r = client.post("/storage/auth/token?storage_type=fal-cdn-v3", json={})
    assert r.status_code == 200, r.text
    return r.json()["token"]


def upload(client: httpx.Client, data: bytes, name: str = "img.png", ct: str = "image/png", **h):
    r = client.post(
        "/files/upload",
        content=data,
        headers={
            "Authorization": f"Bearer {token(client)}",
            "Content-Type": ct,
            "X-Fal-File-Name": name,
            **h,
        },
    )
    assert r.status_code == 200, r.text
    return r.json()["access_url"]


def submit(client: httpx.Client, body: dict, endpoint: str = WAN) -> dict:
    r = client.post(f"/{endpoint}", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def wait_done(client: httpx.Client, status_url: str, *, logs: bool = False) -> dict:
    """Poll the status endpoint (bounded) until COMPLETED."""
    for _ in range(3000):
        r = client.get(status_url, params={"logs": "1" if logs else "0"})
        if r.status_code == 200:
            body = r.json()
            assert body["status"] == "COMPLETED"
            return body
        assert r.status_code == 202, r.text
        time.sleep(0.01)  # poll interval, not synchronisation
    raise AssertionError("job did not complete")


# ----------------------------------------------------------------------------- auth


def test_auth_missing_malformed_and_wrong_key():
    with Emulator(key="right-id:right-secret", job_seconds=0) as emu:
        with httpx.Client(base_url=emu.url, timeout=30) as c:
            body = {"prompt": "p", "image_url": "data:,x"}
            for headers in (
                {},
                {"Authorization": "Key nocolon"},
                {"Authorization": "Key id:"},
                {"Authorization": "Bearer abc"},
                {"Authorization": "Key wrong-id:wrong-secret"},
            ):
                r = c.post(f"/{WAN}", json=body, headers=headers)
                assert r.status_code == 401, headers
                assert isinstance(r.json()["detail"], str)
                r = c.post("/storage/auth/token?storage_type=fal-cdn-v3", json={}, headers=headers)
                assert r.status_code == 401
            r = c.post(f"/{WAN}", json=body, headers={"Authorization": "Key right-id:right-secret"})
            assert r.status_code == 200
            rid = r.json()["request_id"]
            r = c.get(f"/fal-ai/wan-i2v/requests/{rid}/status")
            assert r.status_code == 401
            r = c.get(f"/fal-ai/wan-i2v/requests/{rid}")
            assert r.status_code == 401
            r = c.put(f"/fal-ai/wan-i2v/requests/{rid}/cancel")
            assert r.status_code == 401
        stats = emu.stats()
        assert stats["responses"]["401"] == 13
        assert stats["submits"]["total"] == 1


def test_any_id_secret_accepted_without_key(client):
    r = client.post(f"/{WAN}", json={"prompt": "p", "image_url": "data:,x"})
    assert r.status_code == 200
    r = client.post(
        f"/{WAN}",
        json={"prompt": "p", "image_url": "data:,x"},
        headers={"Authorization": "Key a:b"},
    )
    assert r.status_code == 200


# ----------------------------------------------------------------------------- storage


def test_token_shape(emu, client):
    r = client.post("/storage/auth/token?storage_type=fal-cdn-v3", json={})
    assert r.status_code == 200
    body = r.json()
    assert set(body) >= {"token", "token_type", "base_url", "expires_at"}
    assert body["token_type"] == "Bearer"
    assert body["base_url"] == emu.url
    expires = datetime.fromisoformat(body["expires_at"])
    assert expires.tzinfo is not None
    assert body["expires_at"].endswith("+00:00")
    assert emu.stats()["token_requests"] == 1


def test_upload_needs_cdn_token(client):
    data = make_image()
    for auth in (None, "Key test-id:test-secret", "Bearer not-a-token"):
        headers = {"Content-Type": "image/png"}
        if auth:
            headers["Authorization"] = auth
        r = httpx.post(client.base_url.join("/files/upload"), content=data, headers=headers)
        assert r.status_code == 401


def test_upload_download_and_ranges(emu, client):
    data = os.urandom(100_000)
    url = upload(client, data, name="clip one.bin", ct="application/octet-stream")
    assert url.startswith(emu.url + "/files/")
    assert url.endswith("/clip_one.bin")
    r = httpx.get(url)
    assert r.status_code == 200
    assert r.content == data
    assert r.headers["content-length"] == str(len(data))
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["accept-ranges"] == "bytes"

    r = httpx.get(url, headers={"Range": "bytes=1000-1999"})
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes 1000-1999/{len(data)}"
    assert r.headers["content-length"] == "1000"
    assert r.content == data[1000:2000]

    r = httpx.get(url, headers={"Range": "bytes=99000-"})
    assert r.status_code == 206
    assert r.content == data[99000:]
    r = httpx.get(url, headers={"Range": "bytes=-10"})
    assert r.status_code == 206
    assert r.content == data[-10:]
    assert r.headers["content-range"] == f"bytes {len(data) - 10}-{len(data) - 1}/{len(data)}"
    r = httpx.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{len(data)}"

    r = httpx.head(url)
    assert r.status_code == 200
    assert r.headers["content-length"] == str(len(data))

    assert httpx.get(emu.url + "/files/nope/clip_one.bin").status_code == 404
    stats = emu.stats()
    assert stats["uploads"] == 1
    assert stats["upload_hashes"] == {hashlib.sha256(data).hexdigest(): 1}
    assert stats["downloads"] == 4
    assert stats["download_bytes"] == len(data) + 1000 + 1000 + 10


def test_multipart_upload_on_the_wire(emu, client):
    tok = token(client)
    auth = {"Authorization": f"Bearer {tok}"}
    r = client.post(
        "/files/upload/multipart",
        headers={**auth, "Content-Type": "video/mp4", "X-Fal-File-Name": "big.mp4"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    access_url, upload_id = body["access_url"], body["uploadId"]
    assert access_url.startswith(emu.url + "/files/") and access_url.endswith("/big.mp4")
    chunks = [os.urandom(300_000), os.urandom(300_000), os.urandom(1234)]
    parts = []
    # upload out of order, like fal_client's thread pool may
    for n in (2, 1, 3):
        r = httpx.put(
            f"{access_url}/multipart/{upload_id}/{n}",
            content=chunks[n - 1],
            headers={**auth, "Content-Type": "video/mp4", "Accept-Encoding": "identity"},
        )
        assert r.status_code == 200
        assert r.headers["etag"]
        parts.append({"partNumber": n, "etag": r.headers["etag"]})
    assert httpx.get(access_url).status_code == 404  # not complete yet
    bad = [dict(p, etag='"0000"') if p["partNumber"] == 1 else p for p in parts]
    r = httpx.post(
        f"{access_url}/multipart/{upload_id}/complete", json={"parts": bad}, headers=auth
    )
    assert r.status_code == 400
    r = httpx.post(
        f"{access_url}/multipart/{upload_id}/complete", json={"parts": parts}, headers=auth
    )
    assert r.status_code == 200
    r = httpx.get(access_url)
    assert r.status_code == 200
    assert r.content == b"".join(chunks)
    assert r.headers["content-type"] == "video/mp4"
    stats = emu.stats()
    assert stats["multipart_uploads"] == 1
    assert stats["uploads"] == 1
    assert hashlib.sha256(b"".join(chunks)).hexdigest() in stats["upload_hashes"]
    # parts need the token too
    r = httpx.put(f"{access_url}/multipart/{upload_id}/4", content=b"x")
    assert r.status_code == 401


def test_legacy_initiate_and_signed_put(emu, client):
    r = client.post(
        "/storage/upload/initiate?storage_type=gcs",
        json={"file_name": "a.png", "content_type": "image/png"},
    )
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"upload_url", "file_url"}
    data = make_image()
    bad = body["upload_url"].split("?")[0] + "?X-Goog-Signature=nope"
    assert httpx.put(bad, content=data).status_code == 403
    r = httpx.put(body["upload_url"], content=data, headers={"Content-Type": "image/png"})
    assert r.status_code == 200
    r = httpx.get(body["file_url"])
    assert r.status_code == 200 and r.content == data
    assert r.headers["content-type"] == "image/png"
    assert emu.stats()["uploads"] == 1
    r = httpx.post(
        emu.url + "/storage/upload/initiate?storage_type=gcs", json={"file_name": "a.png"}
    )
    assert r.status_code == 401


# ----------------------------------------------------------------------------- knobs


def test_locked_answers_403_on_submits_and_storage(emu, client):
    tok = token(client)
    emu.configure(locked=True)
    responses = [
        client.post(f"/{WAN}", json={"prompt": "p", "image_url": "data:,x"}),
        client.post("/storage/auth/token?storage_type=fal-cdn-v3", json={}),
        client.post(
            "/storage/upload/initiate?storage_type=gcs",
            json={"file_name": "a.png", "content_type": "image/png"},
        ),
        client.post(
            "/files/upload",
            content=b"x",
            headers={"Authorization": f"Bearer {tok}", "Content-Type": "image/png"},
        ),
    ]
    for r in responses:
        assert r.status_code == 403
        assert r.json() == {"detail": LOCKED_DETAIL}
        assert "Exhausted balance" in r.json()["detail"]
    emu.configure(locked=False)
    assert client.post(f"/{WAN}", json={"prompt": "p", "image_url": "data:,x"}).status_code == 200
    assert emu.stats()["responses"]["403"] == 4


@pytest.mark.parametrize(
    ("body", "loc", "type_"),
    [
        ({"image_url": "data:,x"}, ["body", "prompt"], "value_error.missing"),
        ({"prompt": "p"}, ["body", "image_url"], "value_error.missing"),
        ({"prompt": 3, "image_url": "data:,x"}, ["body", "prompt"], "type_error.str"),
        ({"prompt": "p", "image_url": ["x"]}, ["body", "image_url"], "type_error.str"),
    ],
)
def test_validation_422(emu, client, body, loc, type_):
    r = client.post(f"/{WAN}", json=body)
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert isinstance(detail, list) and len(detail) == 1
    assert detail[0]["loc"] == loc
    assert detail[0]["type"] == type_
    assert "msg" in detail[0]
    if type_ == "value_error.missing":
        assert detail[0]["msg"] == "field required"
    stats = emu.stats()
    assert stats["responses"]["422"] == 1
    assert stats["jobs"]["total"] == 0


def test_validation_reports_every_missing_field(client):
    r = client.post(f"/{KLING}", json={})
    assert r.status_code == 422
    assert [d["loc"] for d in r.json()["detail"]] == [["body", "prompt"], ["body", "image_url"]]


def test_rate_limit_429_with_retry_after(emu, client):
    emu.configure(rate_limit=0.001)  # one request, then a token per 1000 s
    assert client.get("/fal-ai/wan-i2v/requests/x/status").status_code == 404
    r = client.post(f"/{WAN}", json={"prompt": "p", "image_url": "data:,x"})
    assert r.status_code == 429
    assert r.json() == {"detail": "Rate limit exceeded"}
    retry_after = r.headers["retry-after"]
    assert retry_after.isdigit() and int(retry_after) >= 1
    r = client.post("/storage/auth/token?storage_type=fal-cdn-v3", json={})
    assert r.status_code == 429
    emu.configure(rate_limit=None)
    assert client.post(f"/{WAN}", json={"prompt": "p", "image_url": "data:,x"}).status_code == 200
    stats = emu.stats()
    assert stats["responses"]["429"] == 2
    assert stats["rate_limited"] == 2
    assert stats["submits"]["total"] == 1  # rejected before reaching the handler


def test_fail_next_ingress_burst(emu, client):
    emu.configure(fail_next=2, fail_status=503)
    for _ in range(2):
        r = client.post(f"/{WAN}", json={"prompt": "p", "image_url": "data:,x"})
        assert r.status_code == 503
        assert "nginx" in r.text
        assert "x-fal-request-id" not in r.headers
    r = client.post(f"/{WAN}", json={"prompt": "p", "image_url": "data:,x"})
    assert r.status_code == 200
    assert "x-fal-request-id" in r.headers
    stats = emu.stats()
    assert stats["injected_failures"] == 2
    assert stats["responses"]["503"] == 2


# ----------------------------------------------------------------------------- jobs


def test_job_lifecycle_on_the_wire(emu, client):
    url = upload(client, make_image())
    emu.configure(concurrency=1, job_seconds=1000)
    first = submit(client, {"prompt": "p", "image_url": url}, KLING)
    assert set(first) >= {
        "request_id",
        "response_url",
        "status_url",
        "cancel_url",
        "queue_position",
        "status",
    }
    rid = first["request_id"]
    base = f"{emu.url}/fal-ai/kling-video/requests/{rid}"  # owner/alias only
    assert first["response_url"] == base
    assert first["status_url"] == base + "/status"
    assert first["cancel_url"] == base + "/cancel"
    assert first["status"] == "IN_QUEUE"
    second = submit(client, {"prompt": "p", "image_url": url}, KLING)
    assert second["queue_position"] == 0

    # IN_PROGRESS: 202 and a logs key, null unless asked for
    for flag in ("false", "0"):
        r = client.get(first["status_url"], params={"logs": flag})
        assert r.status_code == 202
        assert r.json()["status"] == "IN_PROGRESS"
        assert r.json()["logs"] is None
    for flag in ("true", "1"):
        r = client.get(first["status_url"], params={"logs": flag})
        assert r.status_code == 202
        logs = r.json()["logs"]
        assert isinstance(logs, list) and logs
        assert set(logs[0]) == {"message", "level", "source", "timestamp"}
    # IN_QUEUE: 202 with queue_position
    r = client.get(second["status_url"])
    assert r.status_code == 202
    assert r.json()["status"] == "IN_QUEUE"
    assert r.json()["queue_position"] == 0
    # result before completion
    r = client.get(first["response_url"])
    assert r.status_code == 400
    assert r.json()["status"] == "IN_PROGRESS"

    # abort the running job: the queued one starts and (job_seconds=0 now) completes
    emu.configure(job_seconds=0, cancel_running=True)
    assert client.put(first["cancel_url"]).status_code == 202
    assert wait_done(client, first["status_url"])["error_type"] == "request_cancelled"
    done = wait_done(client, second["status_url"], logs=True)
    assert done["error"] is None and done["error_type"] is None
    assert "inference_time" in done["metrics"]
    assert isinstance(done["logs"], list)
    r = client.get(second["response_url"])
    assert r.status_code == 200
    result = r.json()
    assert set(result) == {"video", "seed"}
    assert set(result["video"]) == {"url", "content_type", "file_name", "file_size"}
    assert result["video"]["content_type"] == "video/mp4"
    assert isinstance(result["seed"], int)
    stats = emu.stats()
    assert stats["submits"]["by_endpoint"] == {KLING: 2}
    assert stats["status_requests"]["by_request"][rid] >= 5
    assert stats["result_requests"]["by_request"][rid] == 1


def test_unknown_ids_and_apps(client):
    assert client.get("/fal-ai/wan-i2v/requests/nope/status").status_code == 404
    assert client.get("/fal-ai/wan-i2v/requests/nope").status_code == 404
    r = client.put("/fal-ai/wan-i2v/requests/nope/cancel")
    assert r.status_code == 404 and r.json() == {"status": "NOT_FOUND"}
    assert client.post("/just-one-segment", json={"prompt": "p"}).status_code == 404
    job = submit(client, {"prompt": "p", "image_url": "data:,x"})
    # a request id is only found under its own app
    assert client.get(f"/fal-ai/other/requests/{job['request_id']}/status").status_code == 404


def test_seed_echoed(client):
    job = submit(client, {"prompt": "p", "image_url": "data:,x", "seed": 1234})
    wait_done(client, job["status_url"])
    assert client.get(job["response_url"]).status_code == 422  # "x" is not an image
    url = upload(client, make_image())
    job = submit(client, {"prompt": "p", "image_url": url, "seed": 1234})
    wait_done(client, job["status_url"])
    assert client.get(job["response_url"]).json()["seed"] == 1234


@pytest.mark.parametrize(("w", "h"), [(640, 360), (300, 500), (256, 256), (1000, 333)])
def test_video_is_h264_with_the_image_aspect(emu, client, tmp_path, w, h):
    url = upload(client, make_image(w, h, fmt="JPEG"), name="in.jpg", ct="image/jpeg")
    job = submit(client, {"prompt": "p", "image_url": url})
    wait_done(client, job["status_url"])
    video = client.get(job["response_url"]).json()["video"]
    r = httpx.get(video["url"])
    assert r.status_code == 200
    assert r.headers["content-type"] == "video/mp4"
    assert len(r.content) == video["file_size"]
    path = tmp_path / "out.mp4"
    path.write_bytes(r.content)
    info = probe(path)
    assert info["codec"] == "h264"
    assert info["duration"] >= 1.0
    assert info["pix_fmt"] == "yuv420p"
    assert info["width"] % 2 == 0 and info["height"] % 2 == 0
    assert max(info["width"], info["height"]) <= 256
    assert (info["width"], info["height"]) == output_size(w, h)
    # aspect ratio within the rounding to even sizes
    ratio = (info["width"] / info["height"]) / (w / h)
    assert abs(ratio - 1) <= 1.5 / min(info["width"], info["height"])


def test_encodes_once_per_distinct_image(emu, client):
    a = upload(client, make_image(color=(1, 2, 3)))
    b = upload(client, make_image(color=(200, 2, 3)))
    a_again = upload(client, make_image(color=(1, 2, 3)), name="copy.png")  # same bytes
    data_uri = "data:image/png;base64," + base64.b64encode(make_image(color=(1, 2, 3))).decode()
    jobs = [submit(client, {"prompt": str(i), "image_url": u}) for i, u in enumerate([a, b] * 5)]
    jobs += [submit(client, {"prompt": "x", "image_url": u}) for u in (a_again, data_uri)]
    urls = set()
    for job in jobs:
        assert wait_done(client, job["status_url"])["error"] is None
        urls.add(client.get(job["response_url"]).json()["video"]["url"])
    assert len(urls) == len(jobs)  # every job gets its own URL
    assert emu.stats()["encodes"] == 2


def _job_error(client, body, endpoint=WAN):
    job = submit(client, body, endpoint)
    status = wait_done(client, job["status_url"])
    return status, client.get(job["response_url"])


def test_foreign_image_url_is_a_download_error(client):
    status, r = _job_error(client, {"prompt": "p", "image_url": "https://example.com/cat.png"})
    assert status["status"] == "COMPLETED"
    assert status["error_type"] == "file_download_error"
    assert status["error"]
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail[0]["loc"] == ["body", "image_url"]
    assert detail[0]["type"] == "file_download_error"
    assert detail[0]["input"] == "https://example.com/cat.png"


def test_not_an_image_is_an_image_load_error(client):
    url = upload(client, b"this is not an image", name="x.png")
    for image_url in (url, "data:image/png;base64," + base64.b64encode(b"nope").decode()):
        status, r = _job_error(client, {"prompt": "p", "image_url": image_url})
        assert status["error_type"] == "image_load_error"
        assert r.status_code == 422
        assert r.json()["detail"][0]["type"] == "image_load_error"
        assert r.json()["detail"][0]["loc"] == ["body", "image_url"]


def test_expired_own_file_is_a_download_error(emu, client):
    url = upload(client, make_image())
    emu.configure(file_ttl=0)
    assert httpx.get(url).status_code == 404
    emu.configure(file_ttl=None)
    status, r = _job_error(client, {"prompt": "p", "image_url": url})
    assert status["error_type"] == "file_download_error"
    assert r.status_code == 422


@pytest.mark.parametrize(
    ("kind", "code", "error_type"),
    [
        ("validation", 422, "content_policy_violation"),
        ("runner", 503, "runner_disconnected"),
        ("timeout", 504, "request_timeout"),
        ("internal", 500, "internal_server_error"),
    ],
)
def test_fail_rate_completes_with_error(emu, client, kind, code, error_type):
    emu.configure(fail_rate=1.0, fail_kind=kind)
    status, r = _job_error(client, {"prompt": "p", "image_url": "data:,x"})
    assert status["status"] == "COMPLETED"
    assert status["error_type"] == error_type
    assert status["error"]
    assert r.status_code == code
    body = r.json()
    if code == 422:
        assert body["detail"][0]["type"] == error_type
    else:
        assert body["error_type"] == error_type
        assert isinstance(body["detail"], str)
        assert r.headers["x-fal-error-type"] == error_type
        assert "x-fal-request-id" in r.headers  # not an ingress error: not retried
    assert emu.stats()["jobs"]["failed"] == 1


def _failure_pattern(seed: int) -> list[bool]:
    with (
        Emulator(job_seconds=0, fail_rate=0.5, seed=seed) as emu,
        httpx.Client(base_url=emu.url, headers=KEY, timeout=30) as c,
    ):
        url = upload(c, make_image())
        jobs = [submit(c, {"prompt": "p", "image_url": url}) for _ in range(16)]
        return [wait_done(c, j["status_url"])["error"] is not None for j in jobs]


def test_fail_rate_is_deterministic_given_the_seed():
    first = _failure_pattern(7)
    assert first == _failure_pattern(7)
    assert any(first) and not all(first)
    assert first != _failure_pattern(8)


def test_concurrency_queue_positions_fall(emu, client):
    emu.configure(concurrency=1, job_seconds=1000)
    jobs = [submit(client, {"prompt": str(i), "image_url": "data:,x"}) for i in range(4)]
    assert [j["queue_position"] for j in jobs] == [0, 0, 1, 2]

    def position(job):
        r = client.get(job["status_url"])
        assert r.status_code == 202
        return r.json()["status"], r.json().get("queue_position")

    assert position(jobs[0])[0] == "IN_PROGRESS"
    assert position(jobs[3]) == ("IN_QUEUE", 2)
    r = client.put(jobs[1]["cancel_url"])  # leave the queue
    assert r.status_code == 202 and r.json() == {"status": "OK"}
    assert position(jobs[2]) == ("IN_QUEUE", 0)
    assert position(jobs[3]) == ("IN_QUEUE", 1)
    emu.configure(concurrency=2)  # one more slot: the head of the queue starts
    assert position(jobs[2])[0] == "IN_PROGRESS"
    assert position(jobs[3]) == ("IN_QUEUE", 0)
    stats = emu.stats()
    assert stats["max_concurrency"] == 2
    assert stats["in_progress"] == 2 and stats["in_queue"] == 1


def test_concurrency_never_exceeded_and_positions_never_rise(emu, client):
    emu.configure(concurrency=3, job_seconds=1000, cancel_running=True)
    jobs = [submit(client, {"prompt": str(i), "image_url": "data:,x"}) for i in range(12)]
    assert [j["queue_position"] for j in jobs] == [0, 0, 0, *range(9)]
    last = jobs[-1]

    def last_status() -> tuple[str, int | None]:
        body = client.get(last["status_url"]).json()
        return body["status"], body.get("queue_position")

    # Free one slot at a time (abort the oldest running job): the queue moves up by exactly
    # one, so the last job must pass through every position from 8 down to 0, then start.
    seen = [last_status()[1]]
    for k in range(9):
        assert client.put(jobs[k]["cancel_url"]).status_code == 202
        want = ("IN_QUEUE", 7 - k) if k < 8 else ("IN_PROGRESS", None)
        deadline = time.monotonic() + 30
        while (now := last_status()) != want:
            assert now[0] == "IN_QUEUE" and now[1] == seen[-1], f"after cancel {k}: {now}"
            assert time.monotonic() < deadline, f"after cancel {k}: still {now}, want {want}"
            time.sleep(0.005)  # poll interval
        seen.append(now[1])
        stats = emu.stats()
        assert stats["in_progress"] == 3 and stats["max_concurrency"] == 3
    assert seen == [*range(8, -1, -1), None]
    for job in jobs[9:]:
        assert client.put(job["cancel_url"]).status_code == 202
    for job in jobs:
        assert wait_done(client, job["status_url"])["error_type"] == "request_cancelled"
    assert emu.stats()["max_concurrency"] == 3


def test_cancel(emu, client):
    emu.configure(concurrency=1, job_seconds=1000)
    running = submit(client, {"prompt": "a", "image_url": "data:,x"})
    queued = submit(client, {"prompt": "b", "image_url": "data:,x"})
    r = client.put(queued["cancel_url"])
    assert r.status_code == 202 and r.json() == {"status": "OK"}
    r = client.get(queued["status_url"])
    assert r.status_code == 200
    assert r.json()["status"] == "COMPLETED"
    assert r.json()["error_type"] == "request_cancelled"
    r = client.get(queued["response_url"])
    assert r.status_code == 400 and r.json()["error_type"] == "request_cancelled"
    r = client.put(queued["cancel_url"])
    assert r.status_code == 400 and r.json() == {"status": "ALREADY_COMPLETED"}
    # a running job keeps running unless cancel_running is set
    r = client.put(running["cancel_url"])
    assert r.status_code == 202
    assert client.get(running["status_url"]).json()["status"] == "IN_PROGRESS"
    assert client.put(running["cancel_url"]).status_code == 202  # asked twice
    emu.configure(cancel_running=True)
    assert client.put(running["cancel_url"]).status_code == 202
    assert wait_done(client, running["status_url"])["error_type"] == "request_cancelled"
    r = client.get(running["response_url"])
    assert r.status_code == 400 and r.json()["error_type"] == "request_cancelled"
    stats = emu.stats()
    assert stats["cancels"]["total"] == 5
    assert stats["jobs"]["cancelled"] == 2


def test_drop_downloads_then_resume_with_range(emu, client):
    data = os.urandom(400_000)
    url = upload(client, data, name="v.bin", ct="application/octet-stream")
    emu.configure(drop_downloads=1)  # the next download is cut off
    received = bytearray()
    with pytest.raises(httpx.RemoteProtocolError), httpx.stream("GET", url) as r:
        assert r.status_code == 200
        assert r.headers["content-length"] == str(len(data))
        for chunk in r.iter_raw():
            received += chunk
    assert 0 < len(received) < len(data)
    assert bytes(received) == data[: len(received)]
    r = httpx.get(url, headers={"Range": f"bytes={len(received)}-"})
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes {len(received)}-{len(data) - 1}/{len(data)}"
    assert bytes(received) + r.content == data
    stats = emu.stats()
    assert stats["downloads_dropped"] == 1
    assert stats["downloads"] == 1


def test_drop_downloads_fraction(emu, client):
    url = upload(client, os.urandom(10_000), name="v.bin", ct="application/octet-stream")
    emu.configure(drop_downloads=1.0)
    for _ in range(3):
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(url)
    emu.configure(drop_downloads=0.0)
    assert httpx.get(url).status_code == 200
    assert emu.stats()["downloads_dropped"] == 3


def test_file_ttl_and_lifecycle_header(emu, client):
    keep = upload(client, b"keep", name="keep.txt", ct="text/plain")
    short = upload(
        client,
        b"short",
        name="short.txt",
        ct="text/plain",
        **{"X-Fal-Object-Lifecycle": json.dumps({"expiration_duration_seconds": 60})},
    )
    assert httpx.get(short).status_code == 200
    emu.advance_clock(61)
    assert httpx.get(short).status_code == 404
    assert httpx.get(keep).status_code == 200
    emu.configure(file_ttl=3600)
    assert httpx.get(keep).status_code == 200
    emu.advance_clock(3600)
    assert httpx.get(keep).status_code == 404


def test_result_ttl(emu, client):
    url = upload(client, make_image())
    job = submit(client, {"prompt": "p", "image_url": url})
    wait_done(client, job["status_url"])
    assert client.get(job["response_url"]).status_code == 200
    emu.advance_clock(3500)  # fal keeps small results 1 h
    assert client.get(job["response_url"]).status_code == 200
    emu.advance_clock(101)
    assert client.get(job["response_url"]).status_code == 404
    assert client.get(job["status_url"]).json()["status"] == "COMPLETED"
    emu.configure(result_ttl=0)
    job = submit(client, {"prompt": "p", "image_url": url})
    wait_done(client, job["status_url"])
    assert client.get(job["response_url"]).status_code == 404


def test_video_size(emu, client, tmp_path):
    emu.configure(video_size=3_000_000)
    url = upload(client, make_image())
    job = submit(client, {"prompt": "p", "image_url": url})
    wait_done(client, job["status_url"])
    video = client.get(job["response_url"]).json()["video"]
    assert video["file_size"] == 3_000_000
    path = tmp_path / "big.mp4"
    with httpx.stream("GET", video["url"]) as r:
        assert r.headers["content-length"] == "3000000"
        with open(path, "wb") as f:
            for chunk in r.iter_bytes():
                f.write(chunk)
    assert path.stat().st_size == 3_000_000
    info = probe(path)  # still a valid mp4
    assert info["codec"] == "h264" and info["duration"] >= 1.0


# ----------------------------------------------------------------------------- control API


def test_control_endpoints(emu, client):
    r = httpx.post(emu.url + "/_emulator/config", json={"concurrency": 5, "job_seconds": [1, 2]})
    assert r.status_code == 200
    assert r.json()["concurrency"] == 5 and r.json()["job_seconds"] == [1.0, 2.0]
    assert httpx.get(emu.url + "/_emulator/config").json()["concurrency"] == 5
    r = httpx.post(emu.url + "/_emulator/config", json={"no_such_knob": 1})
    assert r.status_code == 400
    r = httpx.post(emu.url + "/_emulator/config", json={"fail_rate": 2})
    assert r.status_code == 400
    client.post(f"/{WAN}", json={})
    stats = httpx.get(emu.url + "/_emulator/stats").json()  # no auth needed
    assert stats["responses"]["422"] == 1
    assert httpx.post(emu.url + "/_emulator/reset").status_code == 200
    stats = httpx.get(emu.url + "/_emulator/stats").json()
    assert stats["responses"]["422"] == 0 and stats["requests"] == 0
    with pytest.raises(ValueError):
        emu.configure(fail_kind="bogus")


def test_cli_subprocess_prints_url_and_serves():
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "i2vkit.emulator",
            "--port",
            "0",
            "--key",
            "k:s",
            "--job-seconds",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(url + "/_emulator/stats", timeout=10).status_code == 200
        r = httpx.post(url + f"/{WAN}", json={"prompt": "p"}, headers=KEY, timeout=10)
        assert r.status_code == 401
        r = httpx.post(
            url + f"/{WAN}",
            json={"prompt": "p"},
            headers={"Authorization": "Key k:s"},
            timeout=10,
        )
        assert r.status_code == 422
        r = httpx.post(url + "/_emulator/config", json={"locked": True}, timeout=10)
        assert r.json()["locked"] is True
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0


def test_main_rejects_bad_key(capsys):
    assert main(["--key", "no-colon"]) == 2
    assert "ID:SECRET" in capsys.readouterr().err


def test_start_timeout_header_fails_a_job_still_queued(emu, client):
    emu.configure(concurrency=1, job_seconds=1000)
    submit(client, {"prompt": "blocker", "image_url": "data:,x"})
    r = client.post(
        f"/{WAN}",
        json={"prompt": "p", "image_url": "data:,x"},
        headers={"X-Fal-Request-Timeout": "0.05"},
    )
    job = r.json()
    status = wait_done(client, job["status_url"])
    assert status["error_type"] == "request_timeout"
    r = client.get(job["response_url"])
    assert r.status_code == 504
    assert r.headers["x-fal-request-timeout-type"] == "user"
    assert r.json()["error_type"] == "request_timeout"


def test_emulator_process_is_controlled_over_http():
    with EmulatorProcess(key="k:s", job_seconds=[0, 0], concurrency=2) as emu:
        assert emu.url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=emu.url, headers={"Authorization": "Key k:s"}) as c:
            job = submit(c, {"prompt": "p", "image_url": "data:,x"})
            wait_done(c, job["status_url"])
            emu.advance_clock(1)
            emu.configure(locked=True)
            assert c.post(f"/{WAN}", json={"prompt": "p", "image_url": "x"}).status_code == 403
        stats = emu.stats()
        assert stats["submits"]["total"] == 1 and stats["responses"]["403"] == 1
        emu.reset_stats()
        assert emu.stats()["requests"] == 0
        with pytest.raises(ValueError):
            emu.configure(no_such_knob=1)


def test_output_lifecycle_preference_on_submit(emu, client):
    url = upload(client, make_image())
    r = client.post(
        f"/{WAN}",
        json={"prompt": "p", "image_url": url},
        headers={
            "X-Fal-Object-Lifecycle-Preference": json.dumps({"expiration_duration_seconds": 60})
        },
    )
    job = r.json()
    wait_done(client, job["status_url"])
    video_url = client.get(job["response_url"]).json()["video"]["url"]
    assert httpx.head(video_url).status_code == 200
    emu.advance_clock(61)
    assert httpx.get(video_url).status_code == 404
    assert httpx.get(url).status_code == 200  # the input keeps fal's default retention
