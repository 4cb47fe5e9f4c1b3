"""The fal emulator as its own process, plus one read-only route for the benchmark.

Same as ``python -m i2vkit.emulator`` (same flags; the first stdout line is the
base URL), with ``GET /_bench/jobs`` added: every job's submit/start/finish time
on the wall clock (``time.time()``), so the benchmark can measure how long after
a job *really* completed its video landed on disk. The route is answered before
the emulator's own middleware, so it never counts as a request in the stats.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from i2vkit import emulator as _emulator  # noqa: E402


class BenchEmulator(_emulator.Emulator):
    @web.middleware
    async def _middleware(self, request: web.Request, handler) -> web.StreamResponse:
        if request.path == "/_bench/jobs":
            offset = time.time() - self._loop.time()  # loop clock -> wall clock

            def wall(t: float | None) -> float | None:
                return None if t is None else t + offset

            jobs = {
                j.id: {
                    "state": j.state,
                    "submitted": wall(j.submitted_at),
                    "started": wall(j.started_at),
                    "finished": wall(j.finished_at),
                    "error": j.error,
                }
                for j in self._jobs.values()
            }
            return web.json_response(jobs)
        return await super()._middleware(request, handler)


def main() -> int:
    _emulator.Emulator = BenchEmulator  # main() builds whatever Emulator names
    return _emulator.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
