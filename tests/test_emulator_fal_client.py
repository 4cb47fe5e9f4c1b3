"""The installed fal_client, pointed at the emulator, gets what it expects.

fal_client's module constants are pointed at the emulator by
``i2vkit.fal_client_hosts.fal_client_pointed_at``, which restores them, so these tests
prove the emulator answers the real client's requests: uploads (CDN v3 and the legacy
signed-URL path), submit, status with and without logs, result, cancel, errors and
retries.
"""

from __future__ import annotations

import asyncio
import io
import time

import fal_client
import fal_client.client as fc
import httpx
import pytest
from PIL import Image

from i2vkit.emulator import Emulator
from i2vkit.emulator.clips import probe
from i2vkit.fal_client_hosts import fal_client_pointed_at

KEY = "test-id:test-secret"
KLING = "fal-ai/kling-video/v1.6/standard/image-to-video"
WAN = "fal-ai/wan-i2v"


HOSTS = ("QUEUE_URL_FORMAT", "RUN_URL_FORMAT", "REST_URL", "CDN_URL")


@pytest.fixture
def emu():
    with Emulator(port=0, job_seconds=0) as e:
        yield e


@pytest.fixture
def fal(emu):
    """fal_client's module constants pointed at the emulator, restored afterwards."""
    before = [getattr(fc, name) for name in HOSTS]
    with fal_client_pointed_at(emu.url):
        assert emu.url == fc.REST_URL
        yield emu
    assert before == [getattr(fc, name) for name in HOSTS]


@pytest.fixture
def image_path(tmp_path):
    path = tmp_path / "photo.jpg"
    img = Image.new("RGB", (480, 270), (200, 80, 40))
    img.paste((20, 20, 220), (100, 50, 300, 200))
    img.save(path, "JPEG")
    return path


def wait_completed(handle, *, with_logs: bool = False):
    """Poll handle.status() (bounded) until Completed."""
    for _ in range(3000):
        status = handle.status(with_logs=with_logs)
        if isinstance(status, fal_client.Completed):
            return status
        time.sleep(0.01)  # poll interval
    raise AssertionError("job did not complete")


def test_sync_client_full_flow(fal, image_path, tmp_path):
    client = fal_client.SyncClient(key=KEY)
    url = client.upload_file(image_path)
    assert url.startswith(fal.url + "/files/") and url.endswith("/photo.jpg")
    assert httpx.get(url).content == image_path.read_bytes()

    fal.configure(concurrency=1, job_seconds=1000)
    blocker = client.submit(KLING, {"prompt": "warm up", "image_url": url})
    handle = client.submit(KLING, {"prompt": "a slow pan", "image_url": url})
    assert isinstance(handle, fal_client.SyncRequestHandle)
    assert handle.status_url == f"{fal.url}/fal-ai/kling-video/requests/{handle.request_id}/status"
    queued = handle.status()
    assert isinstance(queued, fal_client.Queued) and queued.position == 0
    running = blocker.status()
    assert isinstance(running, fal_client.InProgress) and running.logs is None
    running = blocker.status(with_logs=True)
    assert isinstance(running, fal_client.InProgress) and running.logs

    fal.configure(job_seconds=0, cancel_running=True)
    blocker.cancel()  # frees the slot
    done = wait_completed(handle, with_logs=True)
    assert done.error is None and done.error_type is None
    assert "inference_time" in done.metrics
    assert isinstance(done.logs, list) and done.logs
    assert wait_completed(handle).logs is None

    result = handle.get()
    assert set(result) == {"video", "seed"}
    video = result["video"]
    assert video["content_type"] == "video/mp4"
    # the client API that rebuilds URLs from the endpoint id reaches the same job
    assert client.result(KLING, handle.request_id) == result
    assert isinstance(client.status(KLING, handle.request_id), fal_client.Completed)
    with pytest.raises(fal_client.FalClientHTTPError) as exc:
        client.cancel(KLING, handle.request_id)
    assert exc.value.status_code == 400

    path = tmp_path / "out.mp4"
    path.write_bytes(httpx.get(video["url"]).content)
    assert path.stat().st_size == video["file_size"]
    info = probe(path)
    assert info["codec"] == "h264" and info["duration"] >= 1.0
    assert abs(info["width"] / info["height"] - 480 / 270) < 0.05

    stats = fal.stats()
    assert stats["token_requests"] == 1
    assert stats["uploads"] == 1
    assert stats["submits"]["by_endpoint"] == {KLING: 2}
    assert stats["result_requests"]["by_request"][handle.request_id] == 2


def test_sync_subscribe_with_callbacks(fal, image_path):
    client = fal_client.SyncClient(key=KEY)
    url = client.upload_file(image_path)
    seen_ids, updates = [], []
    result = client.subscribe(
        WAN,
        {"prompt": "p", "image_url": url, "seed": 42},
        with_logs=True,
        on_enqueue=seen_ids.append,
        on_queue_update=updates.append,
    )
    assert result["seed"] == 42
    assert len(seen_ids) == 1
    assert isinstance(updates[-1], fal_client.Completed)


def test_async_client_full_flow(fal, image_path):
    async def flow():
        client = fal_client.AsyncClient(key=KEY)
        url = await client.upload_file(image_path)
        assert url.startswith(fal.url + "/files/")
        handle = await client.submit(WAN, {"prompt": "p", "image_url": url})
        assert isinstance(handle, fal_client.AsyncRequestHandle)
        status = await handle.status(with_logs=True)
        assert isinstance(status, fal_client.Queued | fal_client.InProgress | fal_client.Completed)
        result = await handle.get()
        assert result["video"]["content_type"] == "video/mp4"
        done = await handle.status(with_logs=True)
        assert isinstance(done, fal_client.Completed) and done.logs
        assert await client.result(WAN, handle.request_id) == result

        fal.configure(concurrency=1, job_seconds=1000)
        first = await client.submit(WAN, {"prompt": "a", "image_url": url})
        second = await client.submit(WAN, {"prompt": "b", "image_url": url})
        await second.cancel()  # queued: leaves the queue
        cancelled = await second.status()
        assert isinstance(cancelled, fal_client.Completed)
        assert cancelled.error_type == "request_cancelled"
        with pytest.raises(fal_client.FalClientHTTPError):
            await second.get()
        await first.cancel()  # running: accepted, the emulated app keeps going
        assert isinstance(await first.status(), fal_client.InProgress)
        return url

    asyncio.run(flow())
    stats = fal.stats()
    assert stats["uploads"] == 1
    assert stats["cancels"]["total"] == 2


def test_legacy_storage_upload_path(fal, image_path):
    client = fal_client.SyncClient(key=KEY)
    url = client.upload_file(image_path, repository="fal")
    assert httpx.get(url).content == image_path.read_bytes()

    async def async_upload():
        return await fal_client.AsyncClient(key=KEY).upload_file(image_path, repository="fal")

    url2 = asyncio.run(async_upload())
    assert url2 != url
    assert httpx.get(url2).content == image_path.read_bytes()
    stats = fal.stats()
    assert stats["token_requests"] == 0  # the CDN token flow was not used
    assert stats["uploads"] == 2
    assert list(stats["upload_hashes"].values()) == [2]


def test_upload_bytes_and_image(fal):
    client = fal_client.SyncClient(key=KEY)
    url = client.upload(b"hello", "text/plain", file_name="hello.txt")
    r = httpx.get(url)
    assert r.text == "hello" and r.headers["content-type"] == "text/plain"
    url = client.upload_image(Image.new("RGB", (64, 48), (1, 2, 3)))
    r = httpx.get(url)
    assert r.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(r.content)).size == (64, 48)


def test_upload_lifecycle_expiry(fal, image_path):
    client = fal_client.SyncClient(key=KEY)
    url = client.upload_file(image_path, lifecycle=fc.StorageSettings(expires_in="1h"))
    keep = client.upload_file(image_path)
    fal.advance_clock(3601)
    assert httpx.get(url).status_code == 404
    assert httpx.get(keep).status_code == 200
    # a job on the expired file completes with fal's download error
    handle = client.submit(WAN, {"prompt": "p", "image_url": url})
    status = wait_completed(handle)
    assert status.error_type == "file_download_error"
    with pytest.raises(fal_client.FalClientHTTPError) as exc:
        handle.get()
    assert exc.value.status_code == 422
    assert exc.value.message[0]["type"] == "file_download_error"


@pytest.mark.parametrize(
    ("kind", "code", "error_type"),
    [("validation", 422, "content_policy_violation"), ("runner", 503, "runner_disconnected")],
)
def test_failed_job_raises_with_fal_error(fal, image_path, kind, code, error_type):
    client = fal_client.SyncClient(key=KEY)
    url = client.upload_file(image_path)
    fal.configure(fail_rate=1.0, fail_kind=kind)
    handle = client.submit(WAN, {"prompt": "p", "image_url": url})
    status = wait_completed(handle)
    assert status.error and status.error_type == error_type
    with pytest.raises(fal_client.FalClientHTTPError) as exc:
        handle.get()
    assert exc.value.status_code == code
    assert exc.value.error_type == error_type or exc.value.message[0]["type"] == error_type
    # a job error is not an ingress error: the result was fetched exactly once
    assert fal.stats()["result_requests"]["by_request"][handle.request_id] == 1


def test_validation_error_at_submit(fal):
    client = fal_client.SyncClient(key=KEY)
    with pytest.raises(fal_client.FalClientHTTPError) as exc:
        client.submit(WAN, {"prompt": "no image"})
    assert exc.value.status_code == 422
    assert exc.value.message[0]["loc"] == ["body", "image_url"]
    assert fal.stats()["responses"]["422"] == 1


def test_locked_and_bad_key_are_not_retried(fal):
    fal.configure(locked=True)
    client = fal_client.SyncClient(key=KEY)
    with pytest.raises(fal_client.FalClientHTTPError) as exc:
        client.submit(WAN, {"prompt": "p", "image_url": "data:,x"})
    assert exc.value.status_code == 403
    assert "User is locked" in exc.value.message
    fal.configure(locked=False)
    with pytest.raises(fal_client.FalClientHTTPError) as exc:
        fal_client.SyncClient(key="no-secret").submit(WAN, {"prompt": "p", "image_url": "x"})
    assert exc.value.status_code == 401
    stats = fal.stats()
    assert stats["responses"]["403"] == 1 and stats["responses"]["401"] == 1
    assert stats["requests"] == 2  # one POST each: neither was retried


@pytest.mark.parametrize("status", [503, 429])
def test_fal_client_retries_through_bursts(fal, image_path, status, monkeypatch):
    monkeypatch.setattr(fc, "BASE_DELAY", 0.01)  # the sync client's backoff base
    client = fal_client.SyncClient(key=KEY)
    url = client.upload_file(image_path)
    fal.configure(fail_next=3, fail_status=status)
    handle = client.submit(WAN, {"prompt": "p", "image_url": url})
    result = handle.get()
    assert result["video"]["url"]
    stats = fal.stats()
    assert stats["injected_failures"] == 3
    assert stats["responses"][str(status)] == 3
    assert stats["submits"]["total"] == 1


def test_rate_limit_is_survived_by_the_client(fal, image_path, monkeypatch):
    client = fal_client.SyncClient(key=KEY)
    url = client.upload_file(image_path)
    # One token, refilled only after 1000 s: the submit takes it, the status call gets a 429.
    fal.configure(rate_limit=0.001, rate_burst=1)
    retries = []

    def lift_the_limit_then_retry(*args, **kwargs):
        """fal_client decided to retry: record it and let the retry through at once."""
        retries.append(fal.stats()["rate_limited"])
        fal.configure(rate_limit=None)
        return 0.0

    monkeypatch.setattr(fc, "_get_retry_delay", lift_the_limit_then_retry)
    handle = client.submit(WAN, {"prompt": "p", "image_url": url})
    handle.status()  # 429, retried by fal_client
    assert retries == [1]  # the retry followed the emulator's 429
    assert handle.get()["video"]["url"]
    stats = fal.stats()
    assert stats["rate_limited"] == 1 and stats["responses"]["429"] == 1
    assert stats["status_requests"]["total"] >= 1 and stats["submits"]["total"] == 1


def test_fal_client_multipart_upload(fal, tmp_path, monkeypatch):
    """fal_client's own multipart code path, with its threshold and chunk size
    shrunk so the test moves ~1.5 MB instead of >100 MiB."""
    monkeypatch.setattr(fc, "MULTIPART_THRESHOLD", 1024 * 1024)
    monkeypatch.setattr(fc, "MULTIPART_CHUNK_SIZE", 256 * 1024)
    data = bytes(range(256)) * 6000  # 1.5 MB: 6 parts
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    client = fal_client.SyncClient(key=KEY)
    url_file = client.upload_file(path)
    url_bytes = client.upload(data, "application/octet-stream", file_name="b.bin")

    async def async_upload():
        return await fal_client.AsyncClient(key=KEY).upload_file(path)

    url_async = asyncio.run(async_upload())
    for url in (url_file, url_bytes, url_async):
        r = httpx.get(url)
        assert r.status_code == 200 and r.content == data
    stats = fal.stats()
    assert stats["multipart_uploads"] == 3
    assert stats["multipart_parts"] == 18
    assert list(stats["upload_hashes"].values()) == [3]
