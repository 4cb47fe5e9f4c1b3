"""Files: fal's upload paths, the CDN that serves them, and how long they live.

Three ways in, as fal has them: the CDN v3 upload (``POST /files/upload`` with a Bearer
token), its multipart variant (``POST /files/upload/multipart``, ``PUT`` each part,
``POST .../complete``) and the legacy REST path (``POST /storage/upload/initiate``, then a
``PUT`` of the signed URL). One way out: ``GET``/``HEAD /files/{id}/{name}`` with single
byte ranges. Files expire by their lifecycle header or the ``file_ttl`` knob, and the
``drop_downloads`` knob cuts downloads off mid-body. The queue reads its input images
from here too (:meth:`Storage.resolve`).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import mimetypes
import os
import random
import re
import secrets
import urllib.parse
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from .auth import Auth
from .routes import Route
from .runtime import Runtime
from .wire import invalid_json, json_response, lifecycle_seconds, rand_id

__all__ = ["Storage", "StoredFile", "parse_range"]

CHUNK = 1024 * 1024
_MULTIPART = re.compile(r"^([^/]+)/([^/]+)/multipart/([^/]+)/(\d+|complete)$")
_NOT_FOUND = {"detail": "Not Found"}


@dataclass(eq=False)
class StoredFile:
    fid: str
    name: str
    path: Path
    content_type: str
    size: int
    created: float  # expiry clock
    expires_at: float | None = None  # expiry clock, from a lifecycle header
    shared: bool = False  # the path belongs to the clip cache: never delete


def safe_name(name: str | None, content_type: str) -> str:
    """A file name safe in a URL and on disk; from the content type when there is none."""
    if name:
        name = os.path.basename(name.replace("\\", "/"))
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or ""
    if not name:
        ext = mimetypes.guess_extension((content_type or "").split(";")[0].strip()) or ".bin"
        name = "upload" + ext
    return name[:200]


def parse_range(header: str, size: int) -> tuple[int, int] | None | str:
    """Single byte range -> (start, end) inclusive; None when unsatisfiable;
    "invalid" when malformed or multi-range (then the whole file is served)."""
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not m or (not m.group(1) and not m.group(2)):
        return "invalid"
    a, b = m.group(1), m.group(2)
    if a:
        start = int(a)
        end = min(int(b), size - 1) if b else size - 1
        if b and int(b) < start:
            return "invalid"
        if start >= size:
            return None
        return start, end
    suffix = int(b)
    if suffix == 0 or size == 0:
        return None
    return max(0, size - suffix), size - 1


def _hashing_copy(chunks: Any, out: Any, hashes: list[Any]) -> int:
    size = 0
    for chunk in chunks:
        out.write(chunk)
        for h in hashes:
            h.update(chunk)
        size += len(chunk)
    return size


def concat_files(paths: list[Path], dest: Path) -> tuple[int, str]:
    """Join multipart parts into ``dest``; returns (size, sha256 hex)."""
    sha = hashlib.sha256()
    size = 0
    with open(dest, "wb") as out:
        for p in paths:
            with open(p, "rb") as f:
                size += _hashing_copy(iter(functools.partial(f.read, CHUNK), b""), out, [sha])
    return size, sha.hexdigest()


class Storage:
    """Stored files, pending uploads and the storage/CDN routes."""

    def __init__(self, runtime: Runtime, auth: Auth) -> None:
        self._rt = runtime
        self._auth = auth
        self.files: dict[str, StoredFile] = {}
        self._multipart: dict[str, dict[str, Any]] = {}
        self._signed: dict[str, dict[str, Any]] = {}
        self._drop_rng = random.Random()
        self.knobs_changed({"seed"})

    def routes(self) -> list[Route]:
        return [
            Route("POST", "/storage/auth/token", self._h_token),
            Route("POST", "/storage/upload/initiate", self._h_initiate),
            Route("PUT", "/storage/upload/signed/{uid}", self._h_signed_put),
            Route("POST", "/files/upload", self._h_upload),
            Route("POST", "/files/upload/multipart", self._h_multipart_create),
            Route("GET", "/files/{tail:.+}", self._h_file_get),  # also HEAD
            Route("PUT", "/files/{tail:.+}", self._h_multipart_part),
            Route("POST", "/files/{tail:.+}", self._h_multipart_complete),
        ]

    def knobs_changed(self, names: Any) -> None:
        if "seed" in names:
            self._drop_rng = random.Random(f"{self._rt.knobs['seed']}:drop")

    # ------------------------------------------------------------ the file table

    def add(
        self,
        fid: str,
        name: str,
        path: Path,
        content_type: str,
        size: int,
        ttl: float | None,
        *,
        shared: bool = False,
    ) -> StoredFile:
        now = self._rt.clock.now()
        sf = StoredFile(
            fid=fid,
            name=name,
            path=path,
            content_type=content_type,
            size=size,
            created=now,
            expires_at=(now + ttl) if ttl else None,
            shared=shared,
        )
        self.files[fid] = sf
        return sf

    def lookup(self, fid: str, name: str | None = None) -> StoredFile | None:
        """The live file ``fid`` (named ``name``, if given); an expired one is deleted."""
        sf = self.files.get(fid)
        if sf is None or (name is not None and name != sf.name):
            return None
        now = self._rt.clock.now()
        ttl = self._rt.knobs["file_ttl"]
        expired = (sf.expires_at is not None and now >= sf.expires_at) or (
            ttl is not None and now >= sf.created + ttl
        )
        if expired:
            del self.files[fid]
            if not sf.shared:
                sf.path.unlink(missing_ok=True)
            return None
        return sf

    def resolve(self, url: str, base: str) -> StoredFile | None:
        """The live file behind ``url`` if it is one of this emulator's file URLs (as seen
        by a client that used ``base``); None for anything else."""
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not self._rt.is_own_url(parsed, base):
            return None
        segs = parsed.path.split("/")
        if len(segs) != 4 or segs[1] != "files":
            return None
        return self.lookup(segs[2], urllib.parse.unquote(segs[3]))

    def _file_url(self, request: web.Request, fid: str, name: str) -> str:
        return f"{self._rt.base(request)}/files/{fid}/{name}"

    async def _receive_to(
        self, request: web.Request, path: Path, *, md5: bool = False
    ) -> tuple[int, str, str | None]:
        """Stream the request body to ``path``. Returns (size, sha256 hex, md5 hex)."""
        hashes = [hashlib.sha256()] + ([hashlib.md5()] if md5 else [])
        size = 0
        with open(path, "wb") as f:
            async for chunk in request.content.iter_chunked(CHUNK):
                size += _hashing_copy([chunk], f, hashes)
        return size, hashes[0].hexdigest(), (hashes[1].hexdigest() if md5 else None)

    def _store_upload(
        self, fid: str, name: str, path: Path, ct: str, size: int, digest: str, ttl: float | None
    ) -> None:
        self.add(fid, name, path, ct, size, ttl)
        self._rt.stats.count_upload(size, digest)

    # ------------------------------------------------------------ CDN v3

    async def _h_token(self, request: web.Request) -> web.Response:
        self._rt.stats.token_requests += 1
        if err := self._auth.key_or_locked_error(request):
            return err
        storage_type = request.query.get("storage_type", "fal-cdn-v3")
        if storage_type != "fal-cdn-v3":
            return json_response(400, {"detail": f"Unsupported storage type: {storage_type}"})
        token, ttl = self._auth.issue_token()
        expires_at = datetime.now(UTC) + timedelta(seconds=ttl)
        return json_response(
            200,
            {
                "token": token,
                "token_type": "Bearer",
                "base_url": self._rt.base(request),
                "expires_at": expires_at.isoformat(),
            },
        )

    def _upload_meta(self, request: web.Request) -> tuple[str, str, float | None]:
        ct = request.headers.get("Content-Type", "application/octet-stream")
        name = safe_name(request.headers.get("X-Fal-File-Name"), ct)
        return ct, name, lifecycle_seconds(request, "X-Fal-Object-Lifecycle")

    async def _h_upload(self, request: web.Request) -> web.Response:
        if err := self._auth.token_or_locked_error(request):
            return err
        ct, name, ttl = self._upload_meta(request)
        fid = rand_id()
        path = self._rt.path("files", fid)
        try:
            size, digest, _ = await self._receive_to(request, path)
        except (ConnectionError, asyncio.CancelledError):
            path.unlink(missing_ok=True)
            raise
        self._store_upload(fid, name, path, ct, size, digest, ttl)
        return json_response(200, {"access_url": self._file_url(request, fid, name)})

    async def _h_multipart_create(self, request: web.Request) -> web.Response:
        if err := self._auth.token_or_locked_error(request):
            return err
        ct, name, ttl = self._upload_meta(request)
        fid = rand_id()
        upload_id = uuid.uuid4().hex
        self._multipart[upload_id] = {
            "fid": fid,
            "name": name,
            "content_type": ct,
            "ttl": ttl,
            "parts": {},
        }
        return json_response(
            200, {"access_url": self._file_url(request, fid, name), "uploadId": upload_id}
        )

    def _multipart_target(
        self, request: web.Request, *, complete: bool
    ) -> web.Response | tuple[str, str, dict[str, Any]]:
        """(upload id, part number or "complete", the pending upload) for a part PUT or a
        complete POST, or the error response to send."""
        m = _MULTIPART.match(request.match_info["tail"])
        if not m or (m.group(4) == "complete") != complete:
            return json_response(404, _NOT_FOUND)
        if err := self._auth.token_error(request):
            return err
        fid, _name, upload_id, part = m.groups()
        mp = self._multipart.get(upload_id)
        if mp is None or mp["fid"] != fid:
            return json_response(404, {"detail": "Upload not found"})
        return upload_id, part, mp

    async def _h_multipart_part(self, request: web.Request) -> web.Response:
        target = self._multipart_target(request, complete=False)
        if isinstance(target, web.Response):
            return target
        upload_id, part, mp = target
        n = int(part)
        if n < 1 or n > 10000:
            return json_response(400, {"detail": "partNumber must be within 1..10000"})
        path = self._rt.path("parts", f"{upload_id}.{n}")
        size, _digest, md5 = await self._receive_to(request, path, md5=True)
        etag = f'"{md5}"'
        mp["parts"][n] = {"path": path, "size": size, "etag": etag}
        self._rt.stats.multipart_parts += 1
        return web.Response(status=200, headers={"ETag": etag})

    async def _h_multipart_complete(self, request: web.Request) -> web.Response:
        target = self._multipart_target(request, complete=True)
        if isinstance(target, web.Response):
            return target
        upload_id, _, mp = target
        fid = mp["fid"]
        try:
            body = await request.json()
            order = []
            for p in body["parts"]:
                n = int(p["partNumber"])
                have = mp["parts"].get(n)
                if have is None:
                    return json_response(400, {"detail": f"Part {n} was not uploaded"})
                if str(p.get("etag", "")).strip('"') != have["etag"].strip('"'):
                    return json_response(400, {"detail": f"ETag mismatch for part {n}"})
                order.append(n)
        except (ValueError, KeyError, TypeError):
            return json_response(
                400, {"detail": "Body must be {'parts': [{'partNumber', 'etag'}]}"}
            )
        if not order:
            return json_response(400, {"detail": "No parts listed"})
        order.sort()
        dest = self._rt.path("files", fid)
        paths = [mp["parts"][n]["path"] for n in order]
        size, digest = await self._rt.in_thread(concat_files, paths, dest)
        for p in mp["parts"].values():
            p["path"].unlink(missing_ok=True)
        del self._multipart[upload_id]
        self._store_upload(fid, mp["name"], dest, mp["content_type"], size, digest, mp["ttl"])
        self._rt.stats.multipart_uploads += 1
        return json_response(200, {"access_url": self._file_url(request, fid, mp["name"])})

    # ------------------------------------------------------------ legacy signed-URL path

    async def _h_initiate(self, request: web.Request) -> web.Response:
        if err := self._auth.key_or_locked_error(request):
            return err
        try:
            body = await request.json()
            file_name = body.get("file_name") or "upload.bin"
            ct = body.get("content_type") or "application/octet-stream"
        except (ValueError, AttributeError):
            return invalid_json()
        name = safe_name(str(file_name), str(ct))
        ttl = lifecycle_seconds(
            request, "X-Fal-Object-Lifecycle-Preference", "X-Fal-Object-Lifecycle"
        )
        uid = uuid.uuid4().hex
        sig = secrets.token_hex(16)
        fid = rand_id()
        self._signed[uid] = {"sig": sig, "fid": fid, "name": name, "content_type": ct, "ttl": ttl}
        base = self._rt.base(request)
        return json_response(
            200,
            {
                "upload_url": f"{base}/storage/upload/signed/{uid}?X-Goog-Signature={sig}",
                "file_url": f"{base}/files/{fid}/{name}",
            },
        )

    async def _h_signed_put(self, request: web.Request) -> web.Response:
        uid = request.match_info["uid"]
        info = self._signed.get(uid)
        if info is None or not secrets.compare_digest(
            request.query.get("X-Goog-Signature", ""), info["sig"]
        ):
            return web.Response(
                status=403,
                text="<?xml version='1.0' encoding='UTF-8'?><Error><Code>SignatureDoesNotMatch"
                "</Code></Error>",
                content_type="application/xml",
            )
        path = self._rt.path("files", info["fid"])
        size, digest, _ = await self._receive_to(request, path)
        ct = request.headers.get("Content-Type") or info["content_type"]
        self._store_upload(info["fid"], info["name"], path, ct, size, digest, info["ttl"])
        del self._signed[uid]
        return web.Response(status=200)

    # ------------------------------------------------------------ downloads

    def _should_drop(self) -> bool:
        d = self._rt.knobs["drop_downloads"]
        if isinstance(d, float):
            return d > 0 and self._drop_rng.random() < d
        if d > 0:
            self._rt.knobs["drop_downloads"] = d - 1
            return True
        return False

    async def _h_file_get(self, request: web.Request) -> web.StreamResponse:
        parts = request.match_info["tail"].split("/")
        sf = self.lookup(parts[0], parts[1] if len(parts) == 2 else None)
        if sf is None or len(parts) != 2:
            return json_response(404, {"detail": "File not found"})
        size = sf.size
        start, end = 0, size - 1
        status = 200
        headers = {
            "Content-Type": sf.content_type,
            "Accept-Ranges": "bytes",
            "ETag": f'"{sf.fid}"',
            "Cache-Control": "public, max-age=604800",
        }
        if rng := request.headers.get("Range"):
            parsed = parse_range(rng, size)
            if parsed is None:
                headers["Content-Range"] = f"bytes */{size}"
                return web.Response(status=416, headers=headers)
            if isinstance(parsed, tuple):  # else "invalid": ignored, the whole file is served
                start, end = parsed
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = max(0, end - start + 1)
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_length = length
        if request.method == "HEAD":
            await resp.prepare(request)
            return resp
        drop = self._should_drop()
        await resp.prepare(request)
        stats = self._rt.stats
        try:
            sent = await self._send(resp, sf.path, start, length // 2 if drop else length)
            if drop:
                stats.downloads_dropped += 1
                if request.transport is not None:
                    request.transport.close()
                return resp
            await resp.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            stats.downloads_aborted += 1
            raise
        stats.downloads += 1
        stats.download_bytes += sent
        return resp

    @staticmethod
    async def _send(resp: web.StreamResponse, path: Path, start: int, limit: int) -> int:
        sent = 0
        with open(path, "rb") as f:
            f.seek(start)
            while sent < limit:
                chunk = f.read(min(CHUNK, limit - sent))
                if not chunk:
                    break
                await resp.write(chunk)
                sent += len(chunk)
        return sent
