"""The batch command line, generated from the request table.

`i2vkit bulk` and the exported 01_generate notebook script take exactly these flags
(:func:`add_batch_arguments`), each with its ``I2VKIT_*`` variable in brackets; what is
given neither way takes the table's default. :func:`request_from_args` turns parsed
flags into the :class:`~i2vkit.planning.BatchRequest` they describe, relative paths read
from the current folder, as every front end does through the same table.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .planning.request import (
    BY_NAME,
    FIELDS,
    BatchRequest,
    Field,
    Given,
    build_request,
    from_environment,
    request_from,
)

ENVIRONMENT_HELP = """\
settings (environment or a .env file in the current folder):
  FAL_KEY            your fal.ai key; without it (and without I2VKIT_FAL_URL) jobs run on
                     the built-in emulator: demo mode, nothing billed
  I2VKIT_FAL_URL     a fal-compatible service instead of fal.ai (treated as billed)
  AUTO_DOWNLOAD_DIR  where videos go unless --output-dir says otherwise
  I2VKIT_DB          the ledger (SQLite) that makes re-runs resume; default i2vkit.db in
                     the platform's data folder: $XDG_DATA_HOME/i2vkit on Linux
                     (XDG_DATA_HOME defaults to ~/.local/share), %LOCALAPPDATA%\\i2vkit on
                     Windows, ~/Library/Application Support/i2vkit on macOS
  every flag of a batch also reads the variable named in brackets after its help

exit codes:
  0 every job has its video   1 some jobs failed or are not finished
  2 bad input or settings, spending not confirmed (answered no, or nobody to ask), or
    over --max-cost (nothing sent)
  3 stopped by fal (key rejected, account locked)
  4 fal / I2VKIT_FAL_URL cannot be reached, or answers but not as fal does (nothing
    uploaded, nothing marked failed)
  130 interrupted (run the same command again to resume)
"""

#: The field the first argument gives (`i2vkit bulk prompts.txt ...`).
POSITIONAL = next(f for f in FIELDS if f.positional)
#: Flags that are a second spelling of a field: ``--one-to-one`` is ``--pairing one_to_one``.
ALIASES = {"--one-to-one": ("pairing", "one_to_one", "pair image i with prompt i")}


def _help(f: Field) -> str:
    default = "" if f.default in (None, False) else f" (default {f.default})"
    return f"{f.help}{default} [{f.env}]"


def add_field(parser: argparse.ArgumentParser, f: Field) -> None:
    """One field as a flag (a bool as a switch; ``-o`` repeatable); never a default here,
    so "not given" stays None and the environment, then the table, fill it.
    ``-o`` and ``--vary`` are repeatable."""
    names = [n for n in (f.short, f.flag) if n]
    if f.kind == "bool":
        parser.add_argument(*names, dest=f.name, action="store_const", const=True, help=_help(f))
        return
    action = "append" if f.kind in ("options", "vary") else "store"
    parser.add_argument(*names, dest=f.name, action=action, metavar=f.metavar, help=_help(f))


def add_batch_arguments(parser: argparse.ArgumentParser, *, run: bool = True) -> None:
    """Every field of the request table as flags (``run``: also --yes, --dry-run, ...)."""
    parser.add_argument(
        "positional",
        nargs="?",
        metavar=POSITIONAL.name.upper(),
        help=f"the same as {POSITIONAL.flag}",
    )
    for f in FIELDS:
        if run or not f.run:
            add_field(parser, f)
    for flag, (_name, _value, text) in ALIASES.items():
        parser.add_argument(flag, action="store_true", help=text)


#: The fields a retry takes: the spend cap, the threshold, --yes and --no-progress.
SPEND_FIELDS = ("max_cost", "confirm_above", "yes", "no_progress")


def add_spend_arguments(parser: argparse.ArgumentParser) -> None:
    for name in SPEND_FIELDS:
        add_field(parser, BY_NAME[name])


#: The fields `i2vkit again VIDEO` takes: how many takes, changed options, where, fal's
#: request options, spending.
AGAIN_FIELDS = (
    "takes",
    "options",
    "output_dir",
    "batch",
    "priority",
    "start_timeout",
    "fallbacks",
    "max_cost",
    "confirm_above",
    "yes",
    "dry_run",
    "no_progress",
)


def add_again_arguments(parser: argparse.ArgumentParser) -> None:
    for name in AGAIN_FIELDS:
        add_field(parser, BY_NAME[name])


def again_values(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> tuple[BatchRequest, dict[str, Any]]:
    """`i2vkit again`'s fields: flags over ``I2VKIT_*`` over the table's defaults."""
    env = from_environment(os.environ if environ is None else environ)
    given = {**env, **given_by_args(args)}
    return build_request({n: given[n] for n in AGAIN_FIELDS if n in given}, base=Path.cwd())


def spend_values(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A retry's spend fields: flags over ``I2VKIT_*`` over the table's defaults."""
    env = from_environment(os.environ if environ is None else environ)
    given = {**env, **given_by_args(args)}
    request, run = build_request({n: given[n] for n in SPEND_FIELDS if n in given})
    return {
        "max_cost": request.max_cost,
        "confirm_above": request.confirm_above,
        "yes": run["yes"],
        "no_progress": run["no_progress"],
    }


def given_by_args(args: argparse.Namespace) -> dict[str, Given]:
    """The fields given on the command line, each with its flag (for messages)."""
    given = {}
    for f in FIELDS:
        value = getattr(args, f.name, None)
        if value is not None:
            given[f.name] = Given(value, f.flag or f.name)
    positional = getattr(args, "positional", None)
    if positional is not None and POSITIONAL.name not in given:
        given[POSITIONAL.name] = Given(positional, POSITIONAL.name.upper())
    for flag, (name, value, _text) in ALIASES.items():
        if getattr(args, flag.lstrip("-").replace("-", "_"), False):
            given[name] = Given(value, flag)
    return given


def request_from_args(
    args: argparse.Namespace,
    environ: Mapping[str, str] | None = None,
    base: str | os.PathLike[str] | None = None,
) -> tuple[BatchRequest, dict[str, Any]]:
    """The request (and run fields) the flags describe, over ``I2VKIT_*``, over defaults;
    relative paths are read from ``base`` (the current folder)."""
    return request_from(given_by_args(args), environ, Path.cwd() if base is None else base)


def batch_parser(
    prog: str | None = None, description: str | None = None
) -> argparse.ArgumentParser:
    """A parser of one batch's flags (the exported notebook script's command line)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=ENVIRONMENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_batch_arguments(parser)
    return parser
