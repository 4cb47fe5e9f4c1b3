"""The `i2vkit` command, and the one argument schema the exported notebook script shares.

Exit codes (the same from `i2vkit bulk` and from `python 01_generate.py`):
0 every job has its video; 1 some jobs failed (the summary says which and why);
2 bad input or settings, spending not confirmed, or over the spend cap (nothing
submitted); 3 the batch was stopped (401 bad key, 403 locked account); 4 the backend
cannot be reached (nothing uploaded or submitted); 130 interrupted with Ctrl-C (resume
with the same command).

Everything a batch command line needs is written here once: the flags
(:func:`add_batch_arguments`), ``-o KEY=VALUE`` parsing (:func:`parse_options`), the
spec they describe (:func:`spec_from_args`), the confirmation before spending
(:func:`confirm_spend`), progress on a terminal or in a log (:func:`progress_reporter`),
and the exit codes (:func:`exit_code`, :func:`error_exit_code`). The notebook's form
calls these in its script mode, so the two command lines cannot drift apart.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any, Protocol

from . import __version__
from .config import Settings, load_settings, parse_max_cost, redact
from .errors import BackendUnreachable, ConfigError, I2vkitError, InputError, StoreError

if TYPE_CHECKING:
    from .backend import Backend
    from .engine import BatchResult, Progress
    from .plan import BatchSpec, CostBreakdown, Plan

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_STOPPED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_UNREACHABLE = 4  # no connection to fal / I2VKIT_FAL_URL; nothing sent, nothing failed
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a C tool killed by `| head` returns
ASK_ABOVE_USD = 5.0
PROGRESS_EVERY_SECONDS = 5.0  # progress lines when stderr is a log, not a terminal

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
  I2VKIT_MAX_COST    spend cap in US$ per run (as --max-cost)

exit codes:
  0 every job has its video   1 some jobs failed or are not finished
  2 bad input or settings, spending not confirmed, or over --max-cost (nothing sent)
  3 stopped by fal (key rejected, account locked)
  4 fal / I2VKIT_FAL_URL cannot be reached (nothing uploaded, nothing marked failed)
  130 interrupted (run the same command again to resume)
"""


# ------------------------------------------------------------------ the schema


def add_batch_arguments(parser: argparse.ArgumentParser, *, script: bool = False) -> None:
    """Add the flags of one batch to ``parser``: `i2vkit bulk`'s, and the exported script's.

    With ``script=True`` (the 01_generate notebook exported to a script) nothing is
    required, because the notebook's form fills what is not given from ``I2VKIT_*``
    environment variables and then from its defaults; it also takes ``--prompts-file``
    and ``--prompts TEXT`` (the form's two prompt sources). Defaults are then ``None``
    so the form can tell "not given" from "given".
    """
    from .plan import DEFAULT_CONCURRENCY

    def default(value: Any) -> Any:
        return None if script else value

    if script:
        parser.add_argument(
            "prompts_file", nargs="?", help="text file, one prompt per line (# comments ok)"
        )
        parser.add_argument(
            "--prompts-file", dest="prompts_path", help="the same, as a flag [I2VKIT_PROMPTS_FILE]"
        )
        parser.add_argument(
            "--prompts", help="prompts as text, one per line, instead of a file [I2VKIT_PROMPTS]"
        )
    else:
        parser.add_argument(
            "prompts_file",
            nargs="?",
            help="text file, one prompt per line (# comments ok); not with --shots",
        )
    tag = (lambda env: f" [{env}]") if script else (lambda env: "")
    parser.add_argument(
        "--images-dir",
        help="folder of jpg/jpeg/png/webp images (needed unless --shots)"
        + tag("I2VKIT_IMAGES_DIR"),
    )
    parser.add_argument(
        "--shots",
        default=None,
        metavar="FILE",
        help="a shot list (CSV or JSONL): one job per row with columns image, prompt and "
        "optionally model, end_image, takes, name and model options" + tag("I2VKIT_SHOTS"),
    )
    parser.add_argument(
        "--model",
        default=default("wan"),
        help="short name (see `i2vkit models`) or fal endpoint id (default wan); several, "
        "comma-separated (--model kling,veo), run every job on each" + tag("I2VKIT_MODEL"),
    )
    parser.add_argument(
        "--takes",
        type=int,
        default=default(1),
        metavar="N",
        help="N takes of every job, with distinct seeds where the model takes a seed "
        "(default 1); a larger N later adds only the missing takes" + tag("I2VKIT_TAKES"),
    )
    parser.add_argument(
        "--output-dir",
        default=None,
        help="where videos go (default AUTO_DOWNLOAD_DIR)" + tag("I2VKIT_OUTPUT_DIR"),
    )
    parser.add_argument("--one-to-one", action="store_true", help="pair image i with prompt i")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=default(DEFAULT_CONCURRENCY),
        help=f"jobs kept submitted and unfinished at once (default {DEFAULT_CONCURRENCY})"
        + tag("I2VKIT_CONCURRENCY"),
    )
    parser.add_argument("--recursive", action="store_true", help="also scan sub-folders")
    parser.add_argument(
        "--option",
        "-o",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model option, e.g. -o duration=10 (repeatable); with several models it goes "
        "to those that have it, -o kling:duration=10 to one" + tag("I2VKIT_OPTIONS"),
    )
    parser.add_argument(
        "--end-image",
        default=None,
        metavar="PATH",
        help="last frame for every video (models with an end-image field; see `i2vkit models`)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the plan and cost; submit nothing"
    )
    parser.add_argument(
        "--write-shots",
        default=None,
        metavar="FILE",
        help="write the plan as a shot list (CSV) to edit and run with --shots; "
        "submits nothing (implies --dry-run)",
    )
    add_spend_arguments(parser)


def add_spend_arguments(parser: argparse.ArgumentParser) -> None:
    """--yes, --max-cost and --no-progress: every command that submits jobs takes them."""
    parser.add_argument(
        "--max-cost",
        metavar="USD",
        default=None,
        help="spend cap: refuse a run whose estimate this run adds is above USD, and stop "
        "submitting before crossing it (none: no cap) [I2VKIT_MAX_COST]",
    )
    parser.add_argument(
        "--yes",
        "-y",
        action="store_true",
        help=f"do not ask before spending over US$ {ASK_ABOVE_USD:.0f} on a billed backend",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bars (or, when stderr is not a terminal, no progress lines)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="i2vkit",
        description="Batch image-to-video on fal.ai (or the built-in emulator).",
        epilog=ENVIRONMENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"i2vkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    bulk = sub.add_parser(
        "bulk",
        help="run (or resume) a batch: every image x every prompt",
        epilog=ENVIRONMENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_batch_arguments(bulk)

    status = sub.add_parser("status", help="where the ledger is; its batches, or one batch's jobs")
    status.add_argument("batch", nargs="?", help="batch id (a prefix is enough)")

    retry = sub.add_parser("retry", help="submit the failed jobs of a batch again")
    retry.add_argument("batch", help="batch id (a prefix is enough)")
    add_spend_arguments(retry)

    cancel = sub.add_parser(
        "cancel",
        help="stop a batch: cancel its requests waiting in fal's queue (not billed) and its "
        "jobs not yet submitted; running ones finish and download",
    )
    cancel.add_argument("batch", help="batch id (a prefix is enough)")
    cancel.add_argument(
        "--running", action="store_true", help="cancel running requests too (fal may bill them)"
    )

    keep = sub.add_parser("keep", help="mark jobs of a batch as keepers (recorded in the ledger)")
    keep.add_argument("batch", help="batch id (a prefix is enough)")
    keep.add_argument("jobs", nargs="+", metavar="JOB", help="job ids (`i2vkit status BATCH`)")
    keep.add_argument("--undo", action="store_true", help="no longer keepers")

    export = sub.add_parser("export", help="copy a batch's keepers to a folder, readably named")
    export.add_argument("batch", help="batch id (a prefix is enough)")
    export.add_argument(
        "--keepers",
        required=True,
        metavar="DIR",
        help="folder for the keepers' videos (hard-linked when on the same disk, else copied; "
        "nothing is overwritten)",
    )

    models = sub.add_parser(
        "models", help="the image-to-video models on fal: prices, status, each one's options"
    )
    models.add_argument("name", nargs="?", help="a model name or endpoint id: list its options")
    models.add_argument(
        "--refresh",
        action="store_true",
        help="read the catalogue from fal's Platform API now (needs FAL_KEY) and keep it",
    )
    report = sub.add_parser(
        "report",
        help="write a batch's report: a folder (index.html, the videos, jobs.csv) that opens "
        "from disk with no server and no network",
    )
    report.add_argument("batch", help="batch id (a prefix is enough)")
    report.add_argument(
        "--out", metavar="DIR", help="folder to write (default ./i2vkit-report-BATCH)"
    )
    sub.add_parser(
        "emulator", help="run the local fal emulator (i2vkit emulator --help)", add_help=False
    )
    return parser


def build_script_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The exported notebook script's command line: `i2vkit bulk`'s flags, all optional."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run the 01_generate notebook's batch without Jupyter. It takes the flags "
        "of `i2vkit bulk`; each can also be an environment variable (in brackets), and what "
        "is given neither way falls back to the notebook's defaults (the sample data).",
        epilog=ENVIRONMENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_batch_arguments(parser, script=True)
    return parser


def parse_options(pairs: Sequence[str] | str | None) -> dict[str, str]:
    """``["duration=10", "seed=3"]`` (the repeated ``-o``) -> ``{"duration": "10", ...}``.

    A single string is split like a shell would (the notebook form's options field and
    ``I2VKIT_OPTIONS`` hold ``duration=10 seed=3``). Values stay strings; the model's
    option table converts and checks them when the batch is planned.
    """
    if not pairs:
        return {}
    items = shlex.split(pairs) if isinstance(pairs, str) else list(pairs)
    options: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--option {item!r} is not KEY=VALUE, e.g. --option duration=10.")
        options[key.strip()] = value.strip()
    return options


def format_options(options: dict[str, Any]) -> str:
    """Options as the user types them (``duration=10 seed=3``), not as a Python dict."""
    return " ".join(shlex.quote(f"{k}={v}") for k, v in options.items())


def spec_from_args(args: argparse.Namespace) -> BatchSpec:
    """The batch the parsed flags describe (the form fills script defaults in first)."""
    from .plan import BatchSpec

    spec = BatchSpec(
        images_dir=args.images_dir,
        shots=getattr(args, "shots", None),
        prompts_file=args.prompts_file,
        prompts=getattr(args, "prompts", None),
        model=args.model,
        options=parse_options(args.option),
        pairing="one_to_one" if args.one_to_one else "all",
        output_dir=args.output_dir,
        recursive=bool(args.recursive),
    )
    if args.concurrency is not None:
        spec.concurrency = args.concurrency
    if getattr(args, "takes", None) is not None:
        spec.takes = args.takes
    if getattr(args, "end_image", None):
        from .models import END_IMAGE_OPTION

        spec.options[END_IMAGE_OPTION] = args.end_image
    max_cost = getattr(args, "max_cost", None)
    if max_cost not in (None, ""):
        from .plan import NO_CAP

        cap = parse_max_cost("--max-cost", str(max_cost))
        spec.max_cost = NO_CAP if cap is None else cap
    return spec


# ------------------------------------------------------------ spending and codes


def is_interactive(stream: IO[str] | None) -> bool:
    try:
        return stream is not None and not stream.closed and stream.isatty()
    except (ValueError, OSError):
        return False


def confirm_spend(
    plan: Plan,
    backend: Backend,
    *,
    yes: bool = False,
    cost: CostBreakdown | None = None,
    interactive: bool | None = None,
    ask: Callable[[str], str] = input,
    say: Callable[[str], None] = print,
) -> int | None:
    """Keep the spend cap, and ask before a run adds more than US$ 5 on a billed backend.

    Only what THIS run adds counts (``cost``, read from the plan's ledger when not
    given): re-running a finished batch adds nothing and never asks. An endpoint whose
    price is unknown always asks: "unknown" is not "free". Returns None to go on, or
    the exit code to stop with before anything is uploaded: EXIT_INPUT over the cap
    (``--yes`` does not lift a cap) or when nobody can answer (stdin is not a terminal
    and no ``--yes``: a script or CI job must say it wants to spend), EXIT_OK when the
    user said no. The built-in emulator (demo mode) is never billed, so it never asks.
    ``interactive`` overrides the terminal check (a Jupyter kernel can answer
    ``input()`` although its stdin is no terminal).
    """
    from .plan import SpendCapError, check_spend_cap, ledger_cost, unknown_endpoints, usd

    if not backend.billed:
        return None
    cost = cost or ledger_cost(plan, backend.label)
    try:
        check_spend_cap(plan, cost)
    except SpendCapError as exc:
        say(str(exc))
        return EXIT_INPUT
    amount = cost.this_run
    if yes or cost.new_jobs == 0 or (amount is not None and amount <= ASK_ABOVE_USD):
        return None
    jobs = f"{cost.new_jobs} job{'s' if cost.new_jobs != 1 else ''}"
    if amount is None:
        what = f"This run submits {jobs} to {unknown_endpoints(plan)}, whose price is unknown,"
        question = f"Submit {jobs} at an unknown price on {backend.describe()}? [y/N] "
    else:
        what = f"This run may add {usd(amount)} ({jobs})"
        question = f"Spend about {usd(amount)} on {backend.describe()}? [y/N] "
    if interactive is None:
        interactive = is_interactive(sys.stdin)
    if not interactive:
        say(f"{what} on {backend.describe()}. Nothing was submitted: re-run with --yes to confirm.")
        return EXIT_INPUT
    try:
        answer = ask(question).strip().lower()
    except EOFError:
        answer = ""
    if answer not in ("y", "yes"):
        say("Nothing submitted.")
        return EXIT_OK
    return None


def exit_code(result: BatchResult) -> int:
    """The exit code of a finished (or stopped, or interrupted) batch."""
    if result.fatal:
        return EXIT_STOPPED
    if result.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if result.ok else EXIT_FAILED


def error_exit_code(exc: BaseException) -> int:
    """Bad input or settings is 2 (nothing submitted); any other i2vkit error stopped a batch."""
    if isinstance(exc, ConfigError | InputError | StoreError):
        return EXIT_INPUT
    if isinstance(exc, BackendUnreachable):
        return EXIT_UNREACHABLE
    return EXIT_STOPPED


def report_error(exc: BaseException, key: str | None = None) -> int:
    """Print an i2vkit error as one line (the key redacted) and return its exit code."""
    print(f"error: {redact(str(exc), key)}", file=sys.stderr)
    return error_exit_code(exc)


def print_resume(command: Sequence[str]) -> None:
    print("Interrupted: jobs already submitted are kept in the ledger. Resume with:")
    print("  " + shlex.join(command))


def install_script_hooks(resume: Sequence[str]) -> None:
    """In the exported script, end an i2vkit error or a Ctrl-C the way `i2vkit bulk` does:
    one line (no traceback) and the same exit code, or the resume command and 130."""
    if getattr(sys.excepthook, "_i2vkit", False):
        return
    previous = sys.excepthook

    def hook(kind, value, tb):  # type: ignore[no-untyped-def]
        if isinstance(value, KeyboardInterrupt):
            print_resume(resume)
            sys.stdout.flush()
            os._exit(EXIT_INTERRUPTED)
        if isinstance(value, I2vkitError):
            try:
                key = load_settings().fal_key
            except I2vkitError:
                key = None
            code = report_error(value, key)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        previous(kind, value, tb)

    hook._i2vkit = True  # type: ignore[attr-defined]
    sys.excepthook = hook


# -------------------------------------------------------------------- progress


class Reporter(Protocol):
    def __call__(self, p: Progress) -> None: ...
    def close(self) -> None: ...


def progress_line(p: Progress) -> str:
    return (
        f"uploaded {p.uploaded}/{p.uploads_total}  submitted {p.submitted}/{p.total}  "
        f"running {p.running}  downloaded {p.downloaded}/{p.total}  failed {p.failed}"
        + (f"  ({p.message})" if p.message else "")
    )


class ProgressLines:
    """One plain line at the first update, then at most one every ``interval`` seconds,
    and the last state when every job is finished (or on close): for logs and pipes, where tqdm's redrawn bars would be
    either invisible or a wall of carriage returns."""

    def __init__(self, stream: IO[str] | None = None, interval: float = PROGRESS_EVERY_SECONDS):
        self.stream = stream
        self.interval = interval
        self.last: Progress | None = None
        self._printed = ""
        self._printed_at: float | None = None
        self._lock = threading.Lock()

    def _print(self, line: str) -> None:
        print(line, file=self.stream or sys.stderr, flush=True)
        self._printed, self._printed_at = line, time.monotonic()

    def __call__(self, p: Progress) -> None:
        if not (p.total or p.uploads_total):
            return  # nothing counted yet: a line of zeros says nothing
        with self._lock:
            self.last = p
            line = progress_line(p)
            finished = p.total > 0 and p.downloaded + p.failed >= p.total
            due = self._printed_at is None or time.monotonic() - self._printed_at >= self.interval
            if (due or finished) and line != self._printed:
                self._print(line)

    def close(self) -> None:
        with self._lock:
            if self.last is not None and progress_line(self.last) != self._printed:
                self._print(progress_line(self.last))


class TerminalBars:
    """tqdm bars on an interactive stderr, fed by the engine's progress callback."""

    ROWS = [  # label, value field, total field, unit
        ("uploads", "uploaded", "uploads_total", "image"),
        ("submitted", "submitted", "total", "job"),
        ("downloaded", "downloaded", "total", "job"),
        ("failed", "failed", "total", "job"),
    ]

    def __init__(self, stream: IO[str] | None = None):
        self.stream = stream
        self.bars: dict[str, Any] = {}
        self.lock = threading.Lock()

    def __call__(self, p: Progress) -> None:
        from tqdm import tqdm

        with self.lock:
            for name, value, total, unit in self.ROWS:
                bar = self.bars.get(name)
                if bar is None:
                    bar = self.bars[name] = tqdm(
                        total=getattr(p, total),
                        desc=f"{name:>10}",
                        unit=unit,
                        position=len(self.bars),
                        leave=True,
                        file=self.stream or sys.stderr,
                    )
                bar.total = getattr(p, total)
                bar.n = getattr(p, value)
                bar.refresh()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


class NoProgress:
    def __call__(self, p: Progress) -> None:
        pass

    def close(self) -> None:
        pass


def progress_reporter(enabled: bool = True, stream: IO[str] | None = None) -> Reporter:
    """Bars on a terminal, a line every few seconds in a log or pipe, nothing if disabled."""
    stream = stream or sys.stderr
    if not enabled:
        return NoProgress()
    return TerminalBars(stream) if is_interactive(stream) else ProgressLines(stream)


# -------------------------------------------------------------------- commands


def run_and_report(
    plan: Plan,
    settings: Settings,
    *,
    yes: bool,
    dry_run: bool = False,
    show_progress: bool = True,
    resume: Sequence[str] = (),
) -> int:
    """Show the plan, confirm the spend, run it with progress, print the summary and
    return the exit code: what `i2vkit bulk` and `i2vkit retry` do once their plan exists."""
    from .backend import DEMO_BANNER, backend_for
    from .engine import run_batch
    from .plan import ledger_cost, usd

    backend = backend_for(settings)
    if not backend.billed:
        print(DEMO_BANNER)
    print(plan.describe())
    cost = ledger_cost(plan, backend.label)
    print(f"cost: {cost.describe()}")
    if plan.spec.max_cost is not None and backend.billed:
        print(f"spend cap: {usd(plan.spec.max_cost)} for this run (--max-cost / I2VKIT_MAX_COST)")
    if dry_run:
        print("dry run: nothing uploaded or submitted.")
        return EXIT_OK
    stop = confirm_spend(plan, backend, yes=yes, cost=cost)
    if stop is not None:
        return stop
    sys.stdout.flush()
    reporter = progress_reporter(show_progress)
    result = None
    try:
        result = run_batch(plan, settings, progress=reporter)  # a retry plan runs like any
    except KeyboardInterrupt:
        pass
    finally:
        reporter.close()
    if result is not None:
        print(result.summary())
    code = EXIT_INTERRUPTED if result is None else exit_code(result)
    if code == EXIT_INTERRUPTED:
        print_resume(resume)
    return code


def cmd_bulk(args: argparse.Namespace, settings: Settings) -> int:
    from .plan import plan_batch

    if not args.shots and not (args.prompts_file and args.images_dir):
        raise InputError(
            "i2vkit bulk needs a prompts file and --images-dir FOLDER "
            "(`i2vkit bulk prompts.txt --images-dir pics`), or a shot list: --shots FILE."
        )
    if args.shots and (args.prompts_file or args.images_dir):
        raise InputError(
            "--shots names each row's image and prompt: drop the prompts file and "
            "--images-dir (or drop --shots)."
        )
    plan = plan_batch(spec_from_args(args), settings)
    if args.write_shots:
        from .shots import write_shots

        print(plan.describe())
        path = write_shots(plan, args.write_shots)
        print(
            f"shot list written: {path} ({len(plan.jobs)} jobs); edit it, then run "
            f"`i2vkit bulk --shots {path}`. Nothing uploaded or submitted."
        )
        return EXIT_OK
    return run_and_report(
        plan,
        settings,
        yes=args.yes,
        dry_run=args.dry_run,
        show_progress=not args.no_progress,
        resume=["i2vkit", *sys.argv[1:]],
    )


def cmd_retry(args: argparse.Namespace, settings: Settings) -> int:
    import dataclasses

    from .plan import plan_retry

    if args.max_cost not in (None, ""):
        cap = parse_max_cost("--max-cost", args.max_cost)
        settings = dataclasses.replace(settings, max_cost=cap)
    plan = plan_retry(args.batch, settings)
    return run_and_report(
        plan,
        settings,
        yes=args.yes,
        show_progress=not args.no_progress,
        resume=["i2vkit", *sys.argv[1:]],
    )


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from .status import job_lines
    from .store import Store

    print(f"ledger: {settings.db_path}")
    with Store(settings.db_path) as store:
        if not args.batch:
            rows = store.list_batches()
            if not rows:
                print("no batches yet")
            for b in rows:
                print(
                    f"{b['id']}  {b['created_at'][:19]}  {b['model']:<10} {b['backend']:<9} "
                    f"jobs={b['job_count']} done={b['done'] or 0} failed={b['failed'] or 0} "
                    f"open={b['open'] or 0}  -> {b['output_dir']}"
                )
            return EXIT_OK
        batch = store.get_batch(args.batch)
        if batch is None:
            print(f"no batch {args.batch!r}; `i2vkit status` lists them.")
            return EXIT_INPUT
        for line in job_lines(store.jobs(batch["id"])):
            print(line)
    return EXIT_OK


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    """The catalogue table, one model's options, or (``--refresh``) a read from fal."""
    from .catalogue import stored
    from .catalogue.show import model_detail, models_table
    from .models import get_model

    if args.refresh:
        if settings.demo:
            raise InputError(
                "`i2vkit models --refresh` reads fal's Platform API with your key: set FAL_KEY "
                "(or I2VKIT_FAL_URL). Without one, the catalogue shipped with i2vkit is used."
            )
        cat = stored.refresh(settings)
        print(f"read {len(cat.entries)} models from {cat.origin}; kept in the ledger.")
    else:
        cat = stored.use_stored(settings)
    if args.name:
        print(model_detail(get_model(args.name), cat))
    elif not args.refresh:
        print(models_table(cat))
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace, settings: Settings) -> int:
    """Cancel what a batch has waiting on fal; the same bulk command later resubmits it."""
    from .engine.cancel import cancel_batch

    report = cancel_batch(args.batch, settings, running=args.running)
    print(report.summary())
    return EXIT_FAILED if report.errors else EXIT_OK


def cmd_keep(args: argparse.Namespace, settings: Settings) -> int:
    from .keepers import mark
    from .store import Store

    with Store(settings.db_path) as store:
        ids = mark(store, args.batch, args.jobs, keep=not args.undo)
    what = "no longer keepers" if args.undo else "keepers"
    print(f"job(s) {', '.join(map(str, ids))} of batch {args.batch}: {what}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from .keepers import export
    from .store import Store

    with Store(settings.db_path) as store:
        report = export(store, args.batch, args.keepers)
    print(report.summary())
    return EXIT_FAILED if report.missing else EXIT_OK  # some keeper has no video


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    """The batch's report folder (i2vkit.report.write_report)."""
    from .report import report_summary, write_report
    from .store import Store

    with Store(settings.db_path) as store:
        batch = store.get_batch(args.batch)
        if batch is None:
            raise InputError(
                f"No batch {args.batch!r} in {settings.db_path}; `i2vkit status` lists them."
            )
        index = write_report(store, batch["id"], args.out, key=settings.fal_key)
        print(report_summary(index, store, batch["id"]))
    return EXIT_OK


COMMANDS = {
    "report": cmd_report,
    "keep": cmd_keep,
    "export": cmd_export,
    "bulk": cmd_bulk,
    "status": cmd_status,
    "retry": cmd_retry,
    "models": cmd_models,
    "cancel": cmd_cancel,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        code = _run(argv)
        sys.stdout.flush()  # a closed pipe shows up here, not at exit with a traceback
        return code
    except BrokenPipeError:
        # `i2vkit status | head -1`: the reader left. Say nothing more, and keep Python from
        # failing again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _run(argv: list[str]) -> int:
    if argv[:1] == ["emulator"]:
        from . import emulator

        return emulator.main(argv[1:])
    args = build_parser().parse_args(argv)
    key = None
    try:
        settings = load_settings()
        key = settings.fal_key
        return COMMANDS[args.command](args, settings)
    except I2vkitError as exc:
        return report_error(exc, key)
