"""A host that answers, but not as fal does: stop before any upload, say what it answered.

I2VKIT_FAL_URL points at a plain web server on 127.0.0.1 (Python's own http.server): a
static file server (POST: 501), an API that answers 404 in JSON to everything, a page
that answers 200 in HTML to everything, and one that answers 200 with JSON that is not
fal's. Each must end the run with exit 4, one error line naming the URL and what it
answered, nothing recorded as failed, and no word of a retry being billed again.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from clitools import bulk_args, cli_env, ledger, run_cli, write_prompts
from helpers import make_images

from i2vkit.engine.progress import JobResult, retry_words


class Answering(http.server.BaseHTTPRequestHandler):
    """Answers every request with the class's status, content type and body."""

    status, kind, body = 200, "text/html", b""
    seen: list[tuple[str, str]]

    def answer(self) -> None:
        self.seen.append((self.command, self.path))
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        self.send_response(self.status)
        self.send_header("content-type", self.kind)
        self.send_header("content-length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    do_GET = do_POST = do_PUT = answer

    def log_message(self, *args: object) -> None:
        pass


class Static(http.server.SimpleHTTPRequestHandler):
    seen: list[tuple[str, str]]

    def send_response(self, code: int, message: str | None = None) -> None:
        self.seen.append((self.command, self.path))
        super().send_response(code, message)

    def log_message(self, *args: object) -> None:
        pass


def handler(kind: str, folder: Path) -> type[http.server.BaseHTTPRequestHandler]:
    seen: list[tuple[str, str]] = []
    if kind == "static":
        return type("S", (Static,), {"seen": seen, "directory": str(folder)})
    page = b"<html><head><title>Welcome to nginx!</title></head><body><h1>Welcome to nginx!</h1></body></html>"
    answers = {
        "json 404": (404, "application/json", b'{"detail": "Not Found"}'),
        "html 200": (200, "text/html; charset=utf-8", page),
        "other json": (200, "application/json", json.dumps({"ok": True}).encode()),
    }
    status, content_type, body = answers[kind]
    return type(
        "A", (Answering,), {"seen": seen, "status": status, "kind": content_type, "body": body}
    )


@contextmanager
def plain_server(kind: str, folder: Path) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    cls = handler(kind, folder)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), cls)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", cls.seen  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


WHAT_IT_SAID = {
    "static": "HTTP 501 Error response Error code: 501 Message: Unsupported method ('POST')",
    "json 404": "HTTP 404 Not Found",
    "html 200": "Welcome to nginx!",
    "other json": '{"ok": true}',
}


@pytest.mark.parametrize("kind", list(WHAT_IT_SAID))
def test_a_host_that_is_not_fal_stops_before_any_upload(kind, tmp_path):
    make_images(tmp_path / "pics", 3)
    args = bulk_args(write_prompts(tmp_path / "p.txt", 2), tmp_path / "pics")
    with plain_server(kind, tmp_path) as (url, seen):
        out = run_cli(args, cli_env(tmp_path, url), tmp_path, stdin=subprocess.DEVNULL)
    text = out.stdout + out.stderr
    assert out.returncode == 4, text
    [error] = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert url in error and "not as fal does" in error, error
    assert WHAT_IT_SAID[kind] in error, error
    assert "no job was marked failed" in error
    assert "billed again" not in text and "FAILED" not in text and "Traceback" not in text
    assert [path for _method, path in seen if "storage/auth/token" not in path] == []
    assert all(method == "POST" for method, _path in seen), seen
    db = tmp_path / "ledger.db"
    if db.exists():
        assert ledger(db, "SELECT count(*) FROM jobs WHERE status = 'failed'") == [(0,)]


def job(n: int, request_id: str | None) -> JobResult:
    return JobResult(n, "a.png", "p", "failed", None, "boom", request_id)


def test_the_retry_hint_speaks_of_billing_only_for_jobs_fal_received():
    never = retry_words([job(1, None), job(2, None)])
    assert "billed again" not in never and "none of them reached fal" in never
    some = retry_words([job(1, "req-1"), job(2, None)])
    assert "the 1 fal may have billed are billed again" in some
    assert "billed again" in retry_words([job(1, "req-1")])
    failed_at_fal = dataclasses.replace(job(1, "req-1"), may_be_billed=False)  # a 5xx
    assert "billed again" not in retry_words([failed_at_fal])
