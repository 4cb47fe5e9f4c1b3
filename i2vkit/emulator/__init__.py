"""A local fal.ai emulator that speaks fal's real wire protocol.

One aiohttp server on one port answers what fal spreads over three hosts:

* REST (``rest.fal.ai``): ``POST /storage/auth/token`` and the legacy
  ``POST /storage/upload/initiate`` (+ ``PUT`` of the signed URL);
* CDN (``v3.fal.media``): ``POST /files/upload``, the multipart upload and
  ``GET /files/...`` with Range;
* queue (``queue.fal.run``): ``POST /{endpoint_id}``, ``GET
  /{owner}/{alias}/requests/{id}[/status]`` and ``PUT .../cancel``.

Jobs turn the submitted image into a small, real H.264 mp4, encoded once per distinct
image. Knobs inject the failures a real batch meets (locked account, 429s, 5xx bursts,
failing jobs, dropped downloads, expiring files and results, limited concurrency). It
proves our side of the protocol; it does not render generative video.

Use it in-process (point fal_client at ``emu.url`` with :mod:`i2vkit.fal`)::

    with Emulator(port=0, job_seconds=0) as emu:
        emu.url, emu.stats(), emu.configure(fail_rate=0.5)

or as a process: ``i2vkit emulator --port 8765`` / ``python -m i2vkit.emulator``
(the first stdout line is the base URL), or :class:`EmulatorProcess` from Python.

Extension hook: ``Emulator(plugins=[fn])`` / ``main(argv, plugins=[fn])``, where
``fn(emulator)`` returns extra :class:`Route` values, served before fal's routes;
``counted=False`` keeps a route out of the stats (bench/emu_server.py uses this).

The modules, one job each: :mod:`.knobs` (the knob table), :mod:`.routes` (route table,
ingress middleware, control endpoints), :mod:`.auth` (keys, tokens, locked account),
:mod:`.storage` (uploads, CDN, ranges), :mod:`.queue` (jobs and their lifecycle),
:mod:`.clips` (mp4 synthesis), :mod:`.runtime` (shared state), :mod:`.wire` (shared
response shapes), :mod:`.server` (the :class:`Emulator`), :mod:`.process` (child process
and HTTP client), :mod:`.cli` (the command line).
"""

from .auth import LOCKED_DETAIL
from .cli import build_parser, main
from .knobs import DEFAULT_KNOBS, FAIL_KINDS, KNOBS
from .process import EmulatorClient, EmulatorProcess
from .routes import Route
from .server import Emulator, Plugin

__all__ = [
    "DEFAULT_KNOBS",
    "FAIL_KINDS",
    "KNOBS",
    "LOCKED_DETAIL",
    "Emulator",
    "EmulatorClient",
    "EmulatorProcess",
    "Plugin",
    "Route",
    "build_parser",
    "main",
]
