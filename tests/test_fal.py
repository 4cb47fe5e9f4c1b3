"""FalConnection over real HTTP on 127.0.0.1: the emulator, or a tiny server started here
for what the emulator cannot do (a connection dropped right after a submit was sent)."""

from __future__ import annotations

import asyncio
import os

import fal_client.client as fal_client_module
import httpx
import pytest
from helpers import TEST_KEY, make_images

from i2vkit import cli
from i2vkit.backend import URL, Backend
from i2vkit.errors import FalAuthError, FalLockedError, FalTransientError
from i2vkit.fal import FalConnection
from i2vkit.fal_client_hosts import FAL_CLIENT_HOSTS, fal_client_pointed_at
from i2vkit.http import ATTEMPTS
from i2vkit.store import Store
from i2vkit.uploads import Uploader


def connect(url: str, key: str | None = TEST_KEY) -> FalConnection:
    return FalConnection(Backend(URL, url), key)


def fal_client_hosts() -> dict[str, str]:
    return {name: getattr(fal_client_module, name) for name in FAL_CLIENT_HOSTS}


# -- fal_client is left as it was found ---------------------------------------------------


def test_a_demo_run_leaves_fal_client_hosts_as_they_were(tmp_path, monkeypatch):
    """The user's own fal_client calls in the same kernel still go where they went before
    a demo batch (which runs against an emulator on a port that is gone afterwards)."""
    for name in ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET", "I2VKIT_FAL_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("I2VKIT_DB", str(tmp_path / "ledger.db"))
    monkeypatch.chdir(tmp_path)  # no .env from the repository
    make_images(tmp_path / "pics", 2)
    (tmp_path / "prompts.txt").write_text("a slow zoom\n", encoding="utf-8")
    before = fal_client_hosts()
    code = cli.main(
        [
            "bulk",
            str(tmp_path / "prompts.txt"),
            "--images-dir",
            str(tmp_path / "pics"),
            "--model",
            "wan",
            "--output-dir",
            str(tmp_path / "videos"),
            "--yes",
            "--no-progress",
        ]
    )
    assert code == 0
    assert len(list((tmp_path / "videos").glob("*.mp4"))) == 2  # the demo really ran
    assert fal_client_hosts() == before
    assert "127.0.0.1" not in fal_client_module.QUEUE_URL_FORMAT


def test_pointing_fal_client_is_scoped_and_restored_on_errors():
    before = fal_client_hosts()
    with pytest.raises(RuntimeError), fal_client_pointed_at("http://127.0.0.1:9/"):
        assert fal_client_module.QUEUE_URL_FORMAT == "http://127.0.0.1:9/"
        assert fal_client_module.REST_URL == fal_client_module.CDN_URL == "http://127.0.0.1:9"
        raise RuntimeError("the block failed")
    assert fal_client_hosts() == before


# -- the queue -----------------------------------------------------------------------------


def test_ingress_errors_on_submit_are_retried_without_paying_twice(emulator, monkeypatch):
    monkeypatch.setattr("i2vkit.http.BACKOFF_FIRST", 0.001)
    emulator.configure(fail_next=2, fail_status=503)  # nginx bodies, no x-fal-request-id

    async def go():
        async with connect(emulator.url) as fal:
            answer = await fal.submit("fal-ai/wan-i2v", {"prompt": "p", "image_url": "x"})
            return answer, fal.requests["submit"]

    answer, sent = asyncio.run(go())
    assert isinstance(answer["request_id"], str) and sent == 3
    assert emulator.stats()["submits"]["total"] == 1


class Hangup:
    """A server on 127.0.0.1 that reads each request and closes the connection unanswered,
    as a proxy that crashed mid-request would."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(head.split(b"\r\n", 1)[0])
        writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()


def test_a_submit_cut_off_after_sending_is_not_repeated(monkeypatch):
    monkeypatch.setattr("i2vkit.http.BACKOFF_FIRST", 0.001)
    hangup = Hangup()

    async def go():
        async with hangup as url, connect(url) as fal:
            with pytest.raises(FalTransientError, match="may or may not have it"):
                await fal.submit("fal-ai/wan-i2v", {"prompt": "p"})
            submits = len(hangup.requests)
            # the same failure on a status poll is harmless to repeat
            with pytest.raises(FalTransientError, match="could not reach fal"):
                await fal.status(f"{url}/fal-ai/wan-i2v/requests/r1/status")
            return submits, hangup.requests[submits:]

    submits, polls = asyncio.run(go())
    assert submits == 1
    assert len(polls) == ATTEMPTS and all(p.startswith(b"GET ") for p in polls)


# -- uploads -------------------------------------------------------------------------------


def upload(url: str, paths, key: str | None = TEST_KEY, tmp_db=None):
    async def go():
        with Store(tmp_db) as store:
            async with connect(url, key) as fal:
                return await Uploader(store, fal, cache_enabled=False).upload_all(paths)

    return asyncio.run(go())


def test_a_locked_account_stops_uploads_and_a_wrong_key_too(emulator, tmp_path):
    paths = make_images(tmp_path / "pics", 2)
    emulator.configure(locked=True)
    with pytest.raises(ExceptionGroup) as caught:
        upload(emulator.url, paths, tmp_db=tmp_path / "l.db")
    assert caught.group_contains(FalLockedError)
    emulator.configure(locked=False)
    with pytest.raises(ExceptionGroup) as caught:
        upload(emulator.url, paths, key="otherid:not-the-key-0000", tmp_db=tmp_path / "l.db")
    assert caught.group_contains(FalAuthError)
    assert emulator.stats()["uploads"] == 0


def test_check_key_stops_a_wrong_key_and_its_token_serves_the_uploads(emulator, tmp_path):
    [path] = make_images(tmp_path / "pics", 1)

    async def go(key):
        async with connect(emulator.url, key) as fal:
            await fal.check_key()
            return await fal.upload_file(path, 3600)

    with pytest.raises(FalAuthError):
        asyncio.run(go("otherid:not-the-key-0000"))
    url = asyncio.run(go(TEST_KEY))
    assert httpx.get(url).content == path.read_bytes()
    assert emulator.stats()["token_requests"] == 2  # one per check_key, none per upload


def test_an_expired_cdn_token_is_renewed(emulator, tmp_path):
    first, second = make_images(tmp_path / "pics", 2)

    async def go():
        async with connect(emulator.url) as fal:
            urls = [await fal.upload_file(first, None)]
            emulator.advance_clock(2 * 3600)  # past the token's hour, by the emulator's clock
            urls.append(await fal.upload_file(second, None))
            return urls

    urls = asyncio.run(go())
    assert [httpx.get(u).content for u in urls] == [first.read_bytes(), second.read_bytes()]
    stats = emulator.stats()
    assert stats["token_requests"] == 2 and stats["uploads"] == 2


def test_upload_lifetime_reaches_the_cdn(emulator, tmp_path):
    [path] = make_images(tmp_path / "pics", 1)

    async def go():
        async with connect(emulator.url) as fal:
            return await fal.upload_file(path, 600)

    url = asyncio.run(go())
    assert httpx.get(url).status_code == 200
    emulator.advance_clock(601)
    assert httpx.get(url).status_code == 404


def test_large_files_go_up_in_parts(emulator, tmp_path, monkeypatch):
    monkeypatch.setattr("i2vkit.fal.MULTIPART_THRESHOLD", 10_000)
    monkeypatch.setattr("i2vkit.fal.MULTIPART_CHUNK", 4096)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(10_001))

    async def go():
        async with connect(emulator.url) as fal:
            return await fal.upload_file(big, None)

    url = asyncio.run(go())
    assert httpx.get(url).content == big.read_bytes()
    stats = emulator.stats()
    assert stats["multipart_uploads"] == 1 and stats["multipart_parts"] == 3
