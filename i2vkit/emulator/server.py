"""The :class:`Emulator`: one aiohttp server on one port, on its own thread and event loop.

It assembles the parts (auth, storage, clip cache, queue, routes) around one shared
:class:`~i2vkit.emulator.runtime.Runtime`, owns their lifecycle (socket, storage folder,
thread, loop, thread pool) and offers the thread-safe methods tests and tools call
(``configure``, ``stats``, ``reset_stats``, ``job``, ``advance_clock``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from .auth import Auth
from .billing import billing_routes
from .clips import ClipCache
from .history import history_routes
from .knobs import DEFAULT_KNOBS, coerce_knobs, knobs_view
from .queue import JobQueue
from .routes import Ingress, Route, build_app, control_routes
from .runtime import Clock, Runtime, Stats
from .storage import Storage

__all__ = ["Emulator", "Plugin"]

T = TypeVar("T")

Plugin = Callable[["Emulator"], Iterable[Route]]
"""The extension hook: given the emulator (not yet serving), return extra routes to serve.
Pass plugins as ``Emulator(plugins=[...])`` or ``main(argv, plugins=[...])``."""


class Emulator:
    """The fal emulator. ``with Emulator(port=0, **knobs) as emu: emu.url``.

    ``key``: the one ``id:secret`` accepted (default: any ``id:secret``).
    ``host``: bind address (127.0.0.1 by default; loopback only).
    ``storage_dir``: where uploads and clips live on disk (default: a fresh
    temporary folder removed on exit; a given folder is kept).
    ``public_url``: base URL written into returned URLs (default: the Host the
    client used). ``plugins``: the extension hook, callables that get this emulator and
    return extra :class:`~i2vkit.emulator.routes.Route` values to serve before fal's own
    (``counted=False`` keeps a route out of the stats and away from injected faults).
    Other keyword arguments are knobs, see :data:`~i2vkit.emulator.knobs.KNOBS`.
    """

    def __init__(
        self,
        port: int = 0,
        key: str | None = None,
        *,
        host: str = "127.0.0.1",
        storage_dir: str | os.PathLike | None = None,
        public_url: str | None = None,
        access_log: bool = False,
        plugins: Iterable[Plugin] = (),
        **knobs: Any,
    ) -> None:
        self.runtime = Runtime(
            knobs={**DEFAULT_KNOBS, **coerce_knobs(knobs)},
            host=host,
            port=port,
            public_url=public_url.rstrip("/") if public_url else None,
        )
        self.auth = Auth(key, self.runtime.knobs, self.runtime.clock)
        self.storage = Storage(self.runtime, self.auth)
        self.queue = JobQueue(self.runtime, self.auth, self.storage, ClipCache(self.runtime))
        self.ingress = Ingress(self.runtime)
        self._plugins = list(plugins)
        self._access_log = access_log
        self._storage_arg = storage_dir
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._sock: socket.socket | None = None
        self._started = False

    # ------------------------------------------------------------ what others read

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234`` (no trailing slash)."""
        return self.runtime.url

    @property
    def host(self) -> str:
        return self.runtime.host

    @property
    def port(self) -> int:
        return self.runtime.port

    @property
    def key(self) -> str | None:
        return self.auth.key

    @property
    def public_url(self) -> str | None:
        return self.runtime.public_url

    @property
    def storage_dir(self) -> Path | None:
        return self.runtime.storage_dir

    @property
    def knobs(self) -> dict[str, Any]:
        """The live knobs (read them; change them with :meth:`configure`)."""
        return self.runtime.knobs

    @property
    def clock(self) -> Clock:
        return self.runtime.clock

    # ------------------------------------------------------------ lifecycle

    def start(self) -> Emulator:
        if self._started:
            return self
        rt = self.runtime
        if self._storage_arg is None:
            rt.storage_dir = Path(tempfile.mkdtemp(prefix="i2vkit-emulator-"))
        else:
            rt.storage_dir = Path(self._storage_arg)
            rt.storage_dir.mkdir(parents=True, exist_ok=True)
        for sub in ("files", "clips", "parts"):
            (rt.storage_dir / sub).mkdir(exist_ok=True)
        self._sock = self._bind()
        rt.port = self._sock.getsockname()[1]
        rt.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=2, thread_name_prefix="i2vkit-emulator"
        )
        ready = threading.Event()
        errors: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._thread_main, args=(ready, errors), name="i2vkit-emulator", daemon=True
        )
        self._thread.start()
        ready.wait()
        if errors:
            raise errors[0]
        self._started = True
        return self

    def _bind(self) -> socket.socket:
        host = self.runtime.host
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        if os.name != "nt":  # on Windows SO_REUSEADDR lets another process steal the port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, self.runtime.port))
        sock.listen(1024)
        sock.setblocking(False)
        return sock

    def _routes(self) -> list[Route]:
        """Control routes, plugin routes, storage, the request history, then the queue's
        catch-alls."""
        extra = [route for plugin in self._plugins for route in plugin(self)]
        own = [
            *self.storage.routes(),
            *history_routes(self.runtime, self.queue, self.auth),
            *billing_routes(self.runtime, self.queue, self.auth),
        ]
        return [*control_routes(self), *extra, *own, *self.queue.routes()]

    def _thread_main(self, ready: threading.Event, errors: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = self.runtime.clock.loop = loop
        try:
            self.ingress.started()
            app = build_app(self.ingress, self._routes())
            kwargs: dict[str, Any] = {"handle_signals": False, "shutdown_timeout": 0.25}
            if not self._access_log:
                kwargs["access_log"] = None
            self._runner = web.AppRunner(app, **kwargs)
            loop.run_until_complete(self._runner.setup())
            site = web.SockSite(self._runner, self._sock)  # type: ignore[arg-type]
            loop.run_until_complete(site.start())
        except BaseException as exc:  # pragma: no cover - startup failure
            errors.append(exc)
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._shutdown())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _shutdown(self) -> None:
        self.queue.stop_all()
        if self._runner is not None:
            with contextlib.suppress(Exception):
                await self._runner.cleanup()

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        assert self._loop is not None and self._thread is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if self.runtime.executor is not None:
            self.runtime.executor.shutdown(wait=True, cancel_futures=True)
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        if self._storage_arg is None and self.runtime.storage_dir is not None:
            shutil.rmtree(self.runtime.storage_dir, ignore_errors=True)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Emulator:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    # ------------------------------------------------------------ thread-safe API

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the emulator's loop (all state lives there); directly when
        not started or already on the loop (a route handler)."""
        if not self._started or self._loop is None or threading.current_thread() is self._thread:
            return fn(*args)

        async def run() -> T:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=30)

    def configure(self, **knobs: Any) -> dict[str, Any]:
        """Change knobs at run time (thread-safe). Returns all knobs."""
        return self._call(self.apply_knobs, coerce_knobs(knobs))

    def apply_knobs(self, coerced: dict[str, Any]) -> dict[str, Any]:
        """Apply already validated knobs (on the loop) and tell each part what changed."""
        self.runtime.knobs.update(coerced)
        for part in (self.storage, self.ingress, self.queue):
            part.knobs_changed(coerced)
        return knobs_view(self.runtime.knobs)

    def stats(self) -> dict[str, Any]:
        """A snapshot of the counters (the same JSON as ``GET /_emulator/stats``)."""
        return self._call(self._stats_snapshot)

    def _stats_snapshot(self) -> dict[str, Any]:
        return {
            **self.runtime.stats.snapshot(),
            **self.queue.summary(),
            "files": len(self.storage.files),
        }

    def reset_stats(self) -> None:
        """Zero the counters (jobs and files stay)."""
        self._call(self._reset_stats)

    def _reset_stats(self) -> None:
        self.runtime.stats = Stats(max_concurrency=self.queue.running)

    def job(self, request_id: str) -> dict[str, Any] | None:
        """Debug view of one job (state, timings on the loop clock, error)."""
        return self._call(self._job_view, request_id)

    def _job_view(self, request_id: str) -> dict[str, Any] | None:
        job = self.queue.jobs.get(request_id)
        return None if job is None else job.view()

    def jobs(self) -> list[dict[str, Any]]:
        """Debug views of every job, in submit order."""
        return self._call(lambda: [job.view() for job in self.queue.jobs.values()])

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator's expiry clock forward (file, result and token
        expiry; job timers are not affected). For tests of TTLs without waiting."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        self._call(self.runtime.clock.advance, float(seconds))
