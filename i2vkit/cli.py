"""The `i2vkit` command: a plain CLI over the library.

Exit codes: 0 every job has its video; 1 some jobs failed (the summary says which
and why); 2 bad input or settings (nothing submitted); 3 the batch was stopped
(401 bad key, 403 locked account); 130 interrupted with Ctrl-C (resume with the
same command).
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import threading

from . import __version__
from .batch import DEFAULT_CONCURRENCY, BatchConfig, Progress, plan_batch, run_batch
from .config import Settings, load_settings, redact
from .errors import ConfigError, I2vkitError, InputError, StoreError

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_STOPPED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
ASK_ABOVE_USD = 5.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="i2vkit", description="Batch image-to-video on fal.ai (or the built-in emulator)."
    )
    parser.add_argument("--version", action="version", version=f"i2vkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    bulk = sub.add_parser("bulk", help="run (or resume) a batch: every image x every prompt")
    bulk.add_argument("prompts_file", help="text file, one prompt per line (# comments ok)")
    bulk.add_argument("--images-dir", required=True, help="folder of jpg/jpeg/png/webp images")
    bulk.add_argument(
        "--model", default="wan", help="short name (see `i2vkit models`) or fal endpoint id"
    )
    bulk.add_argument(
        "--output-dir", default=None, help="where videos go (default AUTO_DOWNLOAD_DIR)"
    )
    bulk.add_argument("--one-to-one", action="store_true", help="pair image i with prompt i")
    bulk.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help=f"jobs kept submitted and unfinished at once (default {DEFAULT_CONCURRENCY})",
    )
    bulk.add_argument("--recursive", action="store_true", help="also scan sub-folders")
    bulk.add_argument(
        "--option",
        "-o",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model option, e.g. -o duration=10 (repeatable)",
    )
    bulk.add_argument(
        "--dry-run", action="store_true", help="print the plan and cost; submit nothing"
    )
    bulk.add_argument(
        "--yes",
        "-y",
        action="store_true",
        help=f"do not ask before spending over ${ASK_ABOVE_USD:.0f}",
    )
    bulk.add_argument("--no-progress", action="store_true", help="no progress bars")

    status = sub.add_parser("status", help="list batches, or the jobs of one batch")
    status.add_argument("batch", nargs="?", help="batch id (a prefix is enough)")

    retry = sub.add_parser("retry", help="submit the failed jobs of a batch again")
    retry.add_argument("batch", help="batch id (a prefix is enough)")
    retry.add_argument("--yes", "-y", action="store_true")

    sub.add_parser("models", help="list the known models and their prices")
    sub.add_parser(
        "emulator", help="run the local fal emulator (i2vkit emulator --help)", add_help=False
    )
    return parser


def parse_options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--option {item!r} is not KEY=VALUE, e.g. --option duration=10.")
        options[key.strip()] = value.strip()
    return options


class Bars:
    """tqdm bars for the terminal, fed by the engine's progress callback."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bars: dict[str, object] = {}
        self.lock = threading.Lock()

    def __call__(self, p: Progress) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        with self.lock:
            for name, value, total in [
                ("uploads", p.uploaded, p.uploads_total),
                ("submitted", p.submitted, p.total),
                ("downloaded", p.downloaded, p.total),
                ("failed", p.failed, p.total),
            ]:
                bar = self.bars.get(name)
                if bar is None:
                    bar = self.bars[name] = tqdm(
                        total=total,
                        desc=f"{name:>10}",
                        unit="job",
                        position=len(self.bars),
                        leave=True,
                        file=sys.stderr,
                    )
                bar.total = total
                bar.n = value
                bar.refresh()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def cmd_bulk(args: argparse.Namespace, settings: Settings) -> int:
    config = BatchConfig(
        images_dir=args.images_dir,
        prompts_file=args.prompts_file,
        model=args.model,
        options=parse_options(args.option),
        pairing="one_to_one" if args.one_to_one else "all",
        output_dir=args.output_dir,
        concurrency=args.concurrency,
        recursive=args.recursive,
    )
    plan = plan_batch(config, settings)
    if settings.demo:
        from .backend import DEMO_BANNER

        print(DEMO_BANNER)
    print(plan.describe())
    if args.dry_run:
        print("dry run: nothing uploaded or submitted.")
        return EXIT_OK
    cost = plan.estimated_cost or 0.0
    if not settings.demo and cost > ASK_ABOVE_USD and not args.yes:
        if not sys.stdin.isatty():
            print(f"This batch may cost ${cost:,.2f}. Re-run with --yes to confirm.")
            return EXIT_INPUT
        answer = input(f"Spend about ${cost:,.2f} on fal? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            print("Nothing submitted.")
            return EXIT_OK
    bars = Bars(enabled=not args.no_progress and sys.stderr.isatty())
    try:
        result = asyncio.run(run_batch(plan, settings, progress=bars))
    except KeyboardInterrupt:
        result = None
    finally:
        bars.close()
    if result is not None:
        print(result.summary())
        if result.fatal:
            return EXIT_STOPPED
    if result is None or result.interrupted:
        print("Interrupted: jobs already submitted are kept in the ledger. Resume with:")
        print("  " + shlex.join(["i2vkit", *sys.argv[1:]]))
        return EXIT_INTERRUPTED
    return EXIT_OK if result.ok else EXIT_FAILED


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from .store import Store

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
        for j in store.jobs(batch["id"]):
            where = j["local_file"] or j["error"] or j["request_id"] or ""
            print(
                f"{j['id']:>6} {j['status']:<11} {j['image_path'].rsplit('/', 1)[-1]:<24} "
                f"{j['prompt'][:30]:<30} {where}"
            )
    return EXIT_OK


def cmd_retry(args: argparse.Namespace, settings: Settings) -> int:
    from .batch import retry_batch

    result = retry_batch(args.batch, settings)
    print(result.summary())
    if result.fatal:
        return EXIT_STOPPED
    return EXIT_OK if result.ok else EXIT_FAILED


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    from .models import list_models

    for m in list_models():
        price = m.pricing.describe() if m.pricing else "price unknown"
        print(f"{m.name:<12} {m.endpoint_id:<52} {price}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["emulator"]:
        from . import emulator

        return emulator.main(argv[1:])
    args = build_parser().parse_args(argv)
    key = None
    try:
        settings = load_settings()
        key = settings.fal_key
        handler = {
            "bulk": cmd_bulk,
            "status": cmd_status,
            "retry": cmd_retry,
            "models": cmd_models,
        }[args.command]
        return handler(args, settings)
    except (ConfigError, InputError, StoreError) as exc:
        print(f"error: {redact(str(exc), key)}", file=sys.stderr)
        return EXIT_INPUT
    except I2vkitError as exc:
        print(f"error: {redact(str(exc), key)}", file=sys.stderr)
        return EXIT_STOPPED
