"""The `i2vkit` command: a plain CLI over the library. Nothing imports this module.

The batch flags come from the request table (:mod:`i2vkit.flags`), the confirmation
before spending from :mod:`i2vkit.spending`, progress from :mod:`i2vkit.reporters`, and
the exit codes from :mod:`i2vkit.exits`: the exported notebook script uses the same
modules, so the two command lines cannot drift apart.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import __version__
from .blocking import keep_ctrl_c
from .config import Settings, load_settings
from .errors import I2vkitError, InputError
from .exits import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    exit_code,
    print_resume,
    report_error,
)
from .flags import (
    ENVIRONMENT_HELP,
    add_again_arguments,
    add_batch_arguments,
    add_spend_arguments,
    again_values,
    request_from_args,
    spend_values,
)
from .money import plural

if TYPE_CHECKING:
    from .planning import Plan
    from .workspace import Workspace

# Each command imports what it needs when it runs: `i2vkit status` or `i2vkit cancel` from a
# second terminal starts in a fraction of a second, without the engine, the emulator or the
# report loaded.

BATCH_HELP = "the batch: its --batch name, its id, or a prefix of its id"


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
    _batch_commands(sub)
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
    report.add_argument("batch", help=BATCH_HELP)
    report.add_argument(
        "--out",
        metavar="DIR",
        help="folder to write (default: reports/BATCH inside the batch's output folder); "
        "one holding another batch's report is refused",
    )
    report.add_argument(
        "--replace",
        action="store_true",
        help="first remove what an earlier report wrote in --out (only that), whatever its batch",
    )
    info = sub.add_parser(
        "info", help="how a video i2vkit downloaded was made, read from the file alone"
    )
    info.add_argument("video", help="an mp4 i2vkit downloaded (its tags, else its NAME.json)")
    info.add_argument("--json", action="store_true", help="the recipe as JSON")
    again = sub.add_parser(
        "again",
        help="make another clip like VIDEO: the same endpoint, arguments and source image, "
        "a new seed (unless -o seed=N), as a new batch",
    )
    again.add_argument("video", help="an mp4 i2vkit downloaded (it carries its recipe)")
    add_again_arguments(again)
    cost = sub.add_parser(
        "cost",
        help="what fal billed a batch against i2vkit's estimates, per model (needs an admin "
        "key); a model fal billed at another price is priced at it from then on",
    )
    cost.add_argument("batch", nargs="?", help=BATCH_HELP + " (default: the latest batch)")
    sub.add_parser(
        "emulator", help="run the local fal emulator (i2vkit emulator --help)", add_help=False
    )
    return parser


def _batch_commands(sub: Any) -> None:
    """The commands that take a batch (its name, its id or an id prefix)."""

    status = sub.add_parser("status", help="where the ledger is; its batches, or one batch's jobs")
    status.add_argument("batch", nargs="?", help=BATCH_HELP)

    retry = sub.add_parser("retry", help="submit the failed jobs of a batch again")
    retry.add_argument("batch", help=BATCH_HELP)
    add_spend_arguments(retry)

    cancel = sub.add_parser(
        "cancel",
        help="stop a batch: cancel its requests waiting in fal's queue (not billed) and its "
        "jobs not yet submitted; running ones finish and download",
    )
    cancel.add_argument("batch", help=BATCH_HELP)
    cancel.add_argument(
        "--running", action="store_true", help="cancel running requests too (fal may bill them)"
    )

    keep = sub.add_parser("keep", help="mark jobs of a batch as keepers (recorded in the ledger)")
    keep.add_argument("batch", help=BATCH_HELP)
    keep.add_argument("jobs", nargs="+", metavar="JOB", help="job ids (`i2vkit status BATCH`)")
    keep.add_argument("--undo", action="store_true", help="no longer keepers")

    export = sub.add_parser("export", help="copy a batch's keepers to a folder, readably named")
    export.add_argument("batch", help=BATCH_HELP)
    export.add_argument(
        "--keepers",
        required=True,
        metavar="DIR",
        help="folder for the keepers' videos (hard-linked when on the same disk, else copied; "
        "nothing is overwritten)",
    )


def run_and_report(
    plan: Plan,
    ws: Workspace,
    *,
    yes: bool,
    dry_run: bool = False,
    show_progress: bool = True,
    resume: Sequence[str] = (),
) -> int:
    """Show the plan, confirm the spend, run it with progress, print the summary and
    return the exit code: what `i2vkit bulk` and `i2vkit retry` do once their plan exists."""
    from .backend import DEMO_BANNER
    from .bill import read_balance
    from .engine import run_batch
    from .reporters import progress_reporter
    from .spending import confirm_spend, cost_lines, terminal_answer

    if not ws.backend.billed:
        print(DEMO_BANNER)
    print(plan.describe())
    print("\n".join(cost_lines(plan, ws.backend)))
    if dry_run:
        print("dry run: nothing uploaded or submitted.")
        return EXIT_OK
    stop = confirm_spend(
        plan, ws.backend, yes=yes, ask=terminal_answer, balance=lambda: read_balance(ws.settings)
    )
    if stop is not None:
        return stop
    sys.stdout.flush()
    reporter = progress_reporter(show_progress)
    result = None
    try:
        result = run_batch(plan, ws.settings, progress=reporter)  # a retry plan runs like any
    except KeyboardInterrupt as exc:  # stopped before the run could settle (stop.py)
        result = getattr(exc, "result", None)
    finally:
        reporter.close()
    if result is not None:
        print(result.summary())
    code = EXIT_INTERRUPTED if result is None else exit_code(result)
    if code == EXIT_INTERRUPTED:
        print_resume(resume)
    return code


def cmd_bulk(args: argparse.Namespace, settings: Settings) -> int:
    from .planning import plan_batch, write_shots
    from .workspace import Workspace

    request, run = request_from_args(args)
    if request.shots is None and not (
        (request.prompts_file or request.prompts) and request.images_dir
    ):
        raise InputError(
            "i2vkit bulk needs a prompts file and --images-dir FOLDER "
            "(`i2vkit bulk prompts.txt --images-dir pics`), or a shot list: --shots FILE."
        )
    if request.shots is not None and (args.positional or args.images_dir or args.prompts_file):
        raise InputError(
            "--shots names each row's image and prompt: drop the prompts file and "
            "--images-dir (or drop --shots)."
        )
    with Workspace.open(settings, tell=True) as ws:
        only_shown = bool(run["dry_run"] or run["write_shots"])
        plan = plan_batch(request, ws, defer_checks=not only_shown)
        if run["write_shots"]:
            print(plan.describe())
            path = write_shots(plan, run["write_shots"])
            print(
                f"shot list written: {path} ({plural(len(plan.jobs), 'job')}); edit it, then run "
                f"`i2vkit bulk --shots {path}`. Nothing uploaded or submitted."
            )
            return EXIT_OK
        return run_and_report(
            plan,
            ws,
            yes=run["yes"],
            dry_run=run["dry_run"],
            show_progress=not run["no_progress"],
            resume=["i2vkit", *sys.argv[1:]],
        )


def cmd_retry(args: argparse.Namespace, settings: Settings) -> int:
    from .planning import plan_retry
    from .workspace import Workspace

    spend = spend_values(args)
    with Workspace.open(settings, tell=True) as ws:
        plan = plan_retry(
            args.batch, ws, max_cost=spend["max_cost"], confirm_above=spend["confirm_above"]
        )
        return run_and_report(
            plan,
            ws,
            yes=bool(spend["yes"]),
            show_progress=not spend["no_progress"],
            resume=["i2vkit", *sys.argv[1:]],
        )


def cmd_again(args: argparse.Namespace, settings: Settings) -> int:
    """The job a clip's recipe describes, as a new batch: planned, priced, confirmed."""
    from .planning.again import plan_again
    from .provenance import recipe_from_file
    from .workspace import Workspace

    recipe = recipe_from_file(args.video)
    request, run = again_values(args)
    with Workspace.open(settings, tell=True) as ws:
        plan = plan_again(recipe, ws, request)
        return run_and_report(
            plan,
            ws,
            yes=run["yes"],
            dry_run=run["dry_run"],
            show_progress=not run["no_progress"],
            resume=["i2vkit", "retry", plan.batch.name or plan.batch_id],
        )


def cmd_cost(args: argparse.Namespace, settings: Settings) -> int:
    """The batch's bill beside its estimates; estimates only when the key may not read it."""
    from .bill import read_bill
    from .workspace import Workspace

    with Workspace.open(settings, tell=True) as ws:
        ref = args.batch
        if ref is None:
            batches = ws.store.list_batches()
            if not batches:
                print(f"no batches yet in {settings.db_path}")
                return EXIT_OK
            ref = batches[0]["id"]
        print(read_bill(ws.store, ref, settings).describe())
    return EXIT_OK


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from .status import job_lines, money_line
    from .store import Store

    print(f"ledger: {settings.db_path}")
    with Store(settings.db_path) as store:
        if not args.batch:
            rows = store.list_batches()
            if not rows:
                print("no batches yet")
            for b in rows:
                named = f" ({b['name']})" if b.get("name") else ""
                print(
                    f"{b['id']}{named}  {b['created_at'][:19]}  {b['model']:<10} {b['backend']:<9} "
                    f"jobs={b['job_count']} done={b['done'] or 0} failed={b['failed'] or 0} "
                    f"open={b['open'] or 0}  -> {b['output_dir']}"
                )
            return EXIT_OK
        batch = store.get_batch(args.batch)
        if batch is None:
            print(f"no batch {args.batch!r}; `i2vkit status` lists them.")
            return EXIT_INPUT
        named = f" ({batch['name']})" if batch.get("name") else ""
        jobs = store.jobs(batch["id"])
        print(f"batch {batch['id']}{named}; {money_line(jobs)}")
        for line in job_lines(jobs):
            print(line)
    return EXIT_OK


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    """The catalogue table, one model's options, or (``--refresh``) a read from fal."""
    from .catalogue import stored
    from .catalogue.show import model_detail, models_table
    from .models import get_model
    from .store import Store

    if args.refresh:
        if settings.demo:
            raise InputError(
                "`i2vkit models --refresh` reads fal's Platform API with your key: set FAL_KEY "
                "(or I2VKIT_FAL_URL). Without one, the catalogue shipped with i2vkit is used."
            )
        with Store(settings.db_path) as store:
            cat = stored.refresh(settings, store)
        print(f"read {plural(len(cat.entries), 'model')} from {cat.origin}; kept in the ledger.")
    else:
        with Store(settings.db_path) as store:
            cat = stored.use_stored(settings, store)
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
        index = write_report(
            store, batch["id"], args.out, key=settings.fal_key, replace=args.replace
        )
        print(report_summary(index, store, batch["id"]))
    return EXIT_OK


def cmd_info(args: argparse.Namespace, settings: Settings) -> int:
    """A clip's recipe from its tags (or sidecar): no ledger needed."""
    import json

    from .provenance import describe, recipe_from_file

    recipe = recipe_from_file(args.video)
    print(json.dumps(recipe, ensure_ascii=False, indent=2) if args.json else describe(recipe))
    return EXIT_OK


COMMANDS = {
    "info": cmd_info,
    "cost": cmd_cost,
    "again": cmd_again,
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
    keep_ctrl_c()
    try:
        code = _run(argv)
        sys.stdout.flush()  # a closed pipe shows up here, not at exit with a traceback
        return code
    except KeyboardInterrupt:  # before a batch ran (or outside one): nothing left at fal
        print("Interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `i2vkit status | head -1`: the reader left. Say nothing more, and keep Python from
        # failing again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _run(argv: list[str]) -> int:
    if argv[:1] == ["emulator"]:
        from .emulator import main as emulator_main

        return emulator_main(argv[1:])
    args = build_parser().parse_args(argv)
    key = None
    try:
        settings = load_settings()
        key = settings.fal_key
        return COMMANDS[args.command](args, settings)
    except I2vkitError as exc:
        return report_error(exc, key)
