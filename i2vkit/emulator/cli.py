"""``i2vkit emulator`` / ``python -m i2vkit.emulator``: serve the emulator until stopped.

The first stdout line is the base URL (scripts and :class:`EmulatorProcess` read it); the
rest goes to stderr. SIGINT and SIGTERM (where the platform has it) stop it cleanly with
exit status 0; nothing here needs POSIX-only calls.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Iterable
from typing import Any

from .knobs import add_knob_arguments, knobs_from_args
from .server import Emulator, Plugin

__all__ = ["DEFAULT_CLI_PORT", "build_parser", "main"]

DEFAULT_CLI_PORT = 8765


def build_parser(prog: str = "i2vkit emulator") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Run a local fal.ai emulator (queue, storage and CDN on one port). "
        "Prints its base URL on the first line of stdout and serves until Ctrl-C.",
    )
    p.add_argument(
        "--port", type=int, default=DEFAULT_CLI_PORT, help="port (0 picks a free one; default 8765)"
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--key", help="the one ID:SECRET key accepted (default: any ID:SECRET)")
    p.add_argument("--storage-dir", help="keep uploads and clips here (default: a temp dir)")
    p.add_argument("--public-url", help="base URL to put into returned URLs")
    p.add_argument("--access-log", action="store_true", help="log every request to stderr")
    add_knob_arguments(p)
    return p


def _wait_for_stop_signal() -> None:
    """Block until SIGINT/SIGTERM (or Ctrl-C); signal.signal works on every platform, but
    only in the main thread, and Windows has no SIGTERM to hook in some builds."""
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:  # noqa: ARG001
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for name in ("SIGINT", "SIGTERM", "SIGBREAK"):
            if (sig := getattr(signal, name, None)) is not None:
                signal.signal(sig, on_signal)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass


def main(argv: list[str] | None = None, *, plugins: Iterable[Plugin] = ()) -> int:
    """``i2vkit emulator [--port N] [--host H] [--key ID:SECRET] [knobs...]``.

    ``plugins`` are passed to :class:`Emulator` (see its extension hook); a script that
    serves extra routes calls ``main(sys.argv[1:], plugins=[...])``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        emu = Emulator(
            port=args.port,
            key=args.key,
            host=args.host,
            storage_dir=args.storage_dir,
            public_url=args.public_url,
            access_log=args.access_log,
            plugins=plugins,
            **knobs_from_args(args),
        )
        emu.start()
    except (ValueError, OSError) as exc:
        print(f"i2vkit emulator: {exc}", file=sys.stderr, flush=True)
        return 2
    print(emu.url, flush=True)
    print(
        f"fal emulator serving on {emu.url} (storage {emu.storage_dir}); Ctrl-C to stop",
        file=sys.stderr,
        flush=True,
    )
    try:
        _wait_for_stop_signal()
    finally:
        emu.stop()
    return 0
