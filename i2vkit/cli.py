"""The `i2vkit` command: a plain CLI over the library."""

from __future__ import annotations

import argparse
import sys

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="i2vkit", description="Batch image-to-video on fal.ai (or the built-in emulator)."
    )
    parser.add_argument("--version", action="version", version=f"i2vkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    emu = sub.add_parser(
        "emulator",
        help="run the local fal emulator",
        add_help=False,
        description="Run the local fal emulator (see `i2vkit emulator --help`).",
    )
    emu.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["emulator"]:
        from . import emulator

        return emulator.main(argv[1:])
    args = build_parser().parse_args(argv)
    raise SystemExit(f"unknown command {args.command}")
