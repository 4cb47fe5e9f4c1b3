"""The emulator in another process, and a client for its ``/_emulator/*`` endpoints.

Benchmarks and tests of a whole CLI run want the emulator out of their process (no
shared GIL, a separate crash domain). :class:`EmulatorProcess` starts
``python -m i2vkit.emulator`` as a child, reads its base URL from the first stdout line
and stops it portably (``terminate()``, which is SIGTERM on POSIX and TerminateProcess on
Windows); :class:`EmulatorClient` offers the same control methods as
:class:`~i2vkit.emulator.Emulator` over HTTP.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import httpx

from .knobs import coerce_knobs

__all__ = ["EmulatorClient", "EmulatorProcess"]


class EmulatorClient:
    """Control an emulator running elsewhere (another process) over its
    ``/_emulator/*`` endpoints: the same ``stats``/``configure``/``reset_stats``/
    ``advance_clock`` methods as :class:`~i2vkit.emulator.Emulator`."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def _post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        r = httpx.post(self.url + path, json=body or {}, timeout=30)
        if r.status_code == 400:
            raise ValueError(r.json().get("detail"))
        r.raise_for_status()
        return r.json()

    def stats(self) -> dict[str, Any]:
        r = httpx.get(self.url + "/_emulator/stats", timeout=30)
        r.raise_for_status()
        return r.json()

    def configure(self, **knobs: Any) -> dict[str, Any]:
        return self._post("/_emulator/config", knobs)

    def reset_stats(self) -> None:
        self._post("/_emulator/reset")

    def advance_clock(self, seconds: float) -> None:
        self._post("/_emulator/advance", {"seconds": seconds})


class EmulatorProcess(EmulatorClient):
    """The emulator in a child process (``python -m i2vkit.emulator``), so that
    benchmarks do not share the GIL with it::

        with EmulatorProcess(key="id:secret", job_seconds=0) as emu:
            emu.url, emu.stats(), emu.configure(locked=True)
    """

    def __init__(
        self,
        port: int = 0,
        key: str | None = None,
        *,
        host: str = "127.0.0.1",
        storage_dir: str | os.PathLike | None = None,
        **knobs: Any,
    ) -> None:
        super().__init__("")
        coerce_knobs(knobs)  # fail here, not in the child
        self._argv = [sys.executable, "-m", "i2vkit.emulator", "--port", str(port), "--host", host]
        if key is not None:
            self._argv += ["--key", key]
        if storage_dir is not None:
            self._argv += ["--storage-dir", str(storage_dir)]
        self._knobs = {k: list(v) if isinstance(v, tuple) else v for k, v in knobs.items()}
        self._proc: subprocess.Popen[str] | None = None

    def start(self) -> EmulatorProcess:
        proc = subprocess.Popen(
            self._argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self._proc = proc
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("http"):
            proc.kill()
            proc.wait()
            raise RuntimeError(f"emulator process did not start (exit {proc.returncode})")
        self.url = line
        if self._knobs:
            self.configure(**self._knobs)
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
