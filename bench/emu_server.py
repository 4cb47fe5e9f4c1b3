"""The fal emulator as its own process, plus one read-only route for the benchmark.

Same as ``python -m i2vkit.emulator`` (same flags; the first stdout line is the
base URL), with ``GET /_bench/jobs`` added through the emulator's plugin hook: every
job's submit/start/finish time on the wall clock (``time.time()``), so the benchmark can
measure how long after a job *really* completed its video landed on disk. The route is
a control route (``counted=False``), so it never counts as a request in the stats.
"""

from __future__ import annotations

import sys
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from i2vkit.emulator import Emulator, Route, main  # noqa: E402


def bench_routes(emu: Emulator) -> list[Route]:
    """The plugin: ``GET /_bench/jobs`` -> ``{request_id: {state, submitted, started,
    finished, error}}`` with times on the wall clock."""

    async def jobs(request: web.Request) -> web.Response:
        wall = emu.clock.to_wall
        return web.json_response(
            {
                j["request_id"]: {
                    "state": j["state"],
                    "submitted": wall(j["submitted_at"]),
                    "started": wall(j["started_at"]),
                    "finished": wall(j["finished_at"]),
                    "error": j["error"],
                }
                for j in emu.jobs()
            }
        )

    return [Route("GET", "/_bench/jobs", jobs, counted=False)]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], plugins=[bench_routes]))
