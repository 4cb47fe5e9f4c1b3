"""Security: the key never leaks (output, logs, exceptions, the ledger, the wire to anyone but
fal), names from outside cannot place files outside the output folder, only http(s) video
URLs are followed, an endless download is capped, the emulator listens on loopback only."""

from __future__ import annotations

import ast
import asyncio
import io
import re
import socket
import sqlite3
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import psutil
import pytest
from clitools import bulk_args, cli_env, ledger, leftovers, run_cli, videos, write_prompts
from helpers import make_images
from PIL import Image

from i2vkit.config import Settings
from i2vkit.download import download, part_path, video_filename
from i2vkit.emulator import Emulator
from i2vkit.emulator.clips import synthesize_clip
from i2vkit.errors import DownloadError, I2vkitError

SENTINEL_ID = "sentinelid"
SENTINEL_SECRET = "S3NT1NEL-secret-9f8e7d6c5b4a"
SENTINEL = f"{SENTINEL_ID}:{SENTINEL_SECRET}"
# the whole key and its secret half must never show; the public id half alone is not secret
SECRETS = (SENTINEL, SENTINEL_SECRET)

DEBUG_CLI = [
    sys.executable,
    "-c",
    "import logging, sys; logging.basicConfig(level=logging.DEBUG, stream=sys.stderr); "
    "from i2vkit.cli import main; sys.exit(main(sys.argv[1:]))",
]


def debug_cli(args: list[str]) -> list[str]:
    """The same command as `python -m i2vkit ...`, with every library logger at DEBUG."""
    assert args[1:3] == ["-m", "i2vkit"]
    return DEBUG_CLI + args[3:]


def clip_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 30)).save(buf, format="PNG")
    return synthesize_clip(buf.getvalue())


class Recorder(ThreadingHTTPServer):
    """A foreign web server (not fal) that records every request's headers."""

    daemon_threads = True

    def __init__(self, body: bytes):
        self.body = body
        self.seen: list[dict[str, str]] = []
        super().__init__(("127.0.0.1", 0), RecorderHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class RecorderHandler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.server.seen.append({"path": self.path, **dict(self.headers.items())})
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()
        self.wfile.write(self.server.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def foreign_host():
    server = Recorder(clip_bytes())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def everything_in_sqlite(db: Path) -> str:
    """Every table, every row, every column of the ledger as text."""
    conn = sqlite3.connect(db)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


def test_fal_key_never_appears_in_output_logs_ledger_or_files(tmp_path, foreign_host):
    """A batch with a sentinel key, DEBUG logging of every library, failing jobs, 5xx, 429s, a
    malformed result and a video on a foreign host; then `status`, `retry`, and a run with
    the key rejected. Neither the key nor its secret half appears in stdout, stderr (all the
    logs), any table of the ledger, the raw ledger files, any file name or file under the
    work folder; and the foreign host never receives it."""
    make_images(tmp_path / "pics", 3)
    prompts = write_prompts(tmp_path / "prompts.txt", 3)
    outputs: list[str] = []
    with Emulator(port=0, key=SENTINEL, job_seconds=(0.05, 0.2), seed=11) as emu:
        emu.configure(
            fail_rate=0.3,
            rate_limit=30,
            fail_next=3,
            result_override=[{"seed": 1}, {"video": {"url": foreign_host.url + "/v.mp4"}}],
        )
        env = cli_env(tmp_path, emu.url, key=SENTINEL)
        first = run_cli(debug_cli(bulk_args(prompts, tmp_path / "pics")), env, tmp_path)
        outputs += [first.stdout, first.stderr]
        assert first.returncode == 1, first.stdout + first.stderr  # some jobs failed
        assert "DEBUG" in first.stderr  # the libraries really logged at DEBUG
        batch = ledger(tmp_path / "ledger.db", "SELECT id FROM batches")[0][0]
        status = run_cli(
            debug_cli([sys.executable, "-m", "i2vkit", "status", batch]), env, tmp_path
        )
        emu.configure(fail_rate=0.0)
        retry = run_cli(debug_cli([sys.executable, "-m", "i2vkit", "retry", batch]), env, tmp_path)
        outputs += [status.stdout, status.stderr, retry.stdout, retry.stderr]
        assert retry.returncode == 0, retry.stdout + retry.stderr
    assert foreign_host.seen, "the foreign video host was never asked"
    # the key is rejected: the error message must not repeat it
    with Emulator(port=0, key="otherid:other-secret-123456") as strict:
        env = cli_env(tmp_path, strict.url, key=SENTINEL)
        rejected = run_cli(debug_cli(bulk_args(prompts, tmp_path / "pics")), env, tmp_path)
    assert rejected.returncode == 3 and "rejected" in rejected.stdout + rejected.stderr
    outputs += [rejected.stdout, rejected.stderr]

    haystacks = {f"output {i}": text for i, text in enumerate(outputs)}
    haystacks["ledger tables"] = everything_in_sqlite(tmp_path / "ledger.db")
    haystacks["foreign host headers"] = repr(foreign_host.seen)
    for path in tmp_path.rglob("*"):
        haystacks[f"name {path}"] = str(path)
        if path.is_file():
            haystacks[f"file {path}"] = path.read_bytes().decode("latin-1")
    assert any("ledger.db-wal" in k or k.endswith("ledger.db") for k in haystacks)
    for where, text in haystacks.items():
        for secret in SECRETS:
            assert secret not in text, f"the key leaked into {where}"


def test_key_is_not_sent_to_a_foreign_video_host(tmp_path, foreign_host):
    """fal's result may point the video anywhere; that host gets a plain GET, not our key."""
    make_images(tmp_path / "pics", 1)
    prompts = write_prompts(tmp_path / "prompts.txt", 2)
    with Emulator(port=0, key=SENTINEL, job_seconds=0) as emu:
        emu.configure(result_override=[{"video": {"url": foreign_host.url + "/clip.mp4"}}])
        env = cli_env(tmp_path, emu.url, key=SENTINEL)
        out = run_cli(bulk_args(prompts, tmp_path / "pics"), env, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert len(videos(tmp_path / "videos")) == 2
    [request] = foreign_host.seen
    assert request["path"] == "/clip.mp4"
    for name, value in request.items():
        assert SENTINEL_SECRET not in value, f"header {name} carried the key to a foreign host"
    assert "Authorization" not in request and "authorization" not in request


def test_exceptions_and_settings_repr_never_show_the_key(tmp_path):
    """The library's own exceptions (a rejected key, a locked account), formatted with their
    whole traceback and chained causes, and Settings' repr."""
    import traceback

    from i2vkit.engine import run_batch
    from i2vkit.planning import BatchRequest

    make_images(tmp_path / "pics", 1)
    seen = []
    for knobs in ({"key": "otherid:other-secret-123456"}, {"key": SENTINEL, "locked": True}):
        with Emulator(port=0, **knobs) as emu:
            settings = Settings(
                fal_key=SENTINEL,
                download_dir=tmp_path / "videos",
                db_path=tmp_path / "ledger.db",
                fal_url=emu.url,
            )
            assert SENTINEL_SECRET not in repr(settings) + str(settings)
            with pytest.raises(I2vkitError) as caught:
                run_batch(
                    BatchRequest(images_dir=tmp_path / "pics", prompts=["a prompt"]), settings
                )
        text = "".join(traceback.format_exception(caught.value))
        seen.append(text)
        for secret in SECRETS:
            assert secret not in text and secret not in repr(caught.value)
    assert "rejected" in seen[0] and "top up" in seen[1].lower()
    for secret in SECRETS:
        assert secret not in everything_in_sqlite(tmp_path / "ledger.db")


# ----------------------------------------------------------------------------- file names


HOSTILE_NAMES = [
    "../../x",
    "../../../../etc/cron.d/x",
    "/etc/passwd",
    "..",
    ".",
    "",
    "a/../../b",
    "..\\..\\x",
    "x\x00y",
    ".hidden",
    "~/x",
    "fal-ai/wan-i2v",
    "\u202eevil",
    "a" * 500,
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_model_name_cannot_place_a_file_outside_the_output_folder(tmp_path, name):
    out = tmp_path / "videos"
    out.mkdir()
    filename = video_filename(7, name)
    for path in (out / filename, part_path(out / filename)):
        assert path.resolve().parent == out.resolve(), f"{name!r} -> {path}"
    assert "/" not in filename and "\\" not in filename and "\x00" not in filename
    assert not filename.startswith(".")  # a finished video is never a hidden file
    assert filename.startswith("7_") and filename.endswith(".mp4") and len(filename) < 120


def test_cli_refuses_a_model_name_that_climbs_out(tmp_path, emulator):
    make_images(tmp_path / "pics", 1)
    prompts = write_prompts(tmp_path / "prompts.txt", 1)
    env = cli_env(tmp_path, emulator.url)
    for model in ("../../x", "fal-ai/../../x", "/etc/passwd", "fal-ai\\..\\x"):
        out = run_cli(bulk_args(prompts, tmp_path / "pics", model=model), env, tmp_path)
        assert out.returncode == 2, out.stdout + out.stderr
        assert "not a valid fal endpoint id" in out.stderr or "Unknown model" in out.stderr
    assert emulator.stats()["submits"]["total"] == 0
    assert emulator.stats()["uploads"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pics", "prompts.txt"]


def test_generic_endpoint_id_files_stay_in_the_output_folder(tmp_path, emulator):
    """An endpoint id outside the registry (with '/' and '.') still lands inside --output-dir."""
    make_images(tmp_path / "pics", 1)
    prompts = write_prompts(tmp_path / "prompts.txt", 2)
    env = cli_env(tmp_path, emulator.url)
    out = run_cli(
        bulk_args(prompts, tmp_path / "pics", model="some-owner/some.model/v1.5"), env, tmp_path
    )
    assert out.returncode == 0, out.stdout + out.stderr
    files = videos(tmp_path / "videos")
    assert len(files) == 2
    for f in files:
        assert f.parent == tmp_path / "videos"
        assert "_some-owner-some.model-v1.5-" in f.name
    assert {p.name for p in tmp_path.iterdir()} <= {
        "ledger.db",
        "ledger.db-shm",
        "ledger.db-wal",
        "pics",
        "prompts.txt",
        "videos",
    }


# ----------------------------------------------------------------------------- URLs and caps


def test_only_http_video_urls_are_followed(tmp_path, emulator):
    """Results whose video URL is file://, ftp://, data:, a relative path or javascript: fail
    that job with a clear message (nothing read from disk, nothing written); the rest of the
    batch completes."""
    bad = [
        "file:///etc/passwd",
        "ftp://127.0.0.1/video.mp4",
        "data:video/mp4;base64,AAAA",
        "/etc/passwd",
        "javascript:alert(1)",
    ]
    make_images(tmp_path / "pics", 2)
    prompts = write_prompts(tmp_path / "prompts.txt", 4)
    emulator.configure(result_override=[{"video": {"url": u}} for u in bad])
    env = cli_env(tmp_path, emulator.url)
    out = run_cli(bulk_args(prompts, tmp_path / "pics"), env, tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    rows = ledger(tmp_path / "ledger.db", "SELECT status, error, video_url FROM jobs")
    failed = [r for r in rows if r[0] == "failed"]
    assert len(failed) == len(bad) and len(rows) - len(failed) == 3
    for _, error, _ in failed:
        assert "only http(s)" in error, error
    assert {r[0] for r in rows if r not in failed} == {"downloaded"}
    assert len(videos(tmp_path / "videos")) == 3 and not leftovers(tmp_path / "videos")
    for f in (tmp_path / "videos").iterdir():
        assert b"root:" not in f.read_bytes()
    assert out.stdout.count("FAILED job") == len(bad)
    assert "only http(s)" in out.stdout


class EndlessHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Transfer-Encoding", "chunked")  # no length: it never ends
        self.end_headers()
        chunk = b"\0" * 65536
        try:
            while True:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


def test_size_cap_stops_an_endless_download(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), EndlessHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    dest = tmp_path / "1_wan_20260101T000000Z.mp4"

    async def go():
        async with httpx.AsyncClient() as client:
            await download(
                client, f"http://127.0.0.1:{server.server_address[1]}/v", dest, max_bytes=3_000_000
            )

    try:
        with pytest.raises(DownloadError, match="cap"):
            asyncio.run(go())
    finally:
        server.shutdown()
        server.server_close()
    assert not dest.exists() and not part_path(dest).exists()
    assert isinstance(DownloadError("x"), I2vkitError)


# ----------------------------------------------------------------------------- the emulator


def test_emulator_binds_to_loopback_only_by_default():
    with Emulator(port=0) as emu:
        assert emu.host == "127.0.0.1" and emu.url.startswith("http://127.0.0.1:")
        mine = [
            c
            for c in psutil.Process().net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == emu.port
        ]
        assert mine and {c.laddr.ip for c in mine} == {"127.0.0.1"}
    # the `i2vkit emulator` command, run as a user would, listens on 127.0.0.1 only too
    proc = subprocess.Popen(
        [sys.executable, "-m", "i2vkit", "emulator", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        port = int(url.rsplit(":", 1)[1])
        listening = [
            c
            for c in psutil.Process(proc.pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        ]
        assert listening and {(c.laddr.ip, c.laddr.port) for c in listening} == {
            ("127.0.0.1", port)
        }
        # reachable on loopback, and not on any other address of this machine
        assert httpx.get(url + "/_emulator/health").status_code == 200
        for addr in other_local_addresses():
            with pytest.raises(OSError):
                socket.create_connection((addr, port), timeout=2).close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def other_local_addresses() -> list[str]:
    return [
        a.address
        for addrs in psutil.net_if_addrs().values()
        for a in addrs
        if a.family == socket.AF_INET and not a.address.startswith("127.")
    ]


#: fal's service hosts the package talks to (not pointers for a reader) and XML's namespace
SERVICE_URL = re.compile(
    r"(https://)?(queue\.fal\.run|rest\.fal\.ai|v3\.fal\.media|api\.fal\.ai/v1|fal\.run/)"
    r"|http://www\.w3\.org/2000/svg"
)
CITATION = re.compile(
    r"https?://(?!127\.0\.0\.1|localhost)[^\s'\"`]+"
    r"|(?<![\w.])(?:[\w-]+\.)*(?:fal\.ai|github\.com|readthedocs\.io|pypi\.org)/\S+"
)


def test_what_the_package_prints_cites_nothing_outside_the_repository():
    """Messages say where to act in words ("the Keys page of your fal dashboard"), not with
    addresses outside the repository; only the service's own hosts are written down. The
    emulator is left out: it answers with fal's own bodies, word for word."""
    package = Path(__file__).resolve().parents[1] / "i2vkit"
    found = []
    for path in sorted(package.rglob("*.py")):
        if "emulator" in path.relative_to(package).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for match in CITATION.finditer(node.value):
                    if not SERVICE_URL.match(match.group()) and "..." not in match.group():
                        found.append(f"{path.name}:{node.lineno}: {match.group()}")
    assert not found, found
