"""The confirmation before spending: the spend cap kept, and a question above a threshold.

Every path that submits (bulk, retry, the exported script, the notebook) asks here, so
the rule is written once. The threshold is the plan's (``--confirm-above``,
``I2VKIT_CONFIRM_ABOVE``, the form's field; US$ 5 by default, 0 asks every time).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import IO

from .backend import Backend
from .errors import SpendCapError
from .exits import EXIT_INPUT, EXIT_INTERRUPTED
from .money import plural, usd
from .planning.cost import CostBreakdown
from .planning.plan import Plan
from .planning.request import DEFAULT_CONFIRM_ABOVE


def is_interactive(stream: IO[str] | None) -> bool:
    try:
        return stream is not None and not stream.closed and stream.isatty()
    except (ValueError, OSError):
        return False


def terminal_answer(question: str) -> str:
    """``input(question)`` for the CLI's question, with a Ctrl-C heard however it lands.

    input() looks for a signal only when its read is interrupted: a Ctrl-C arriving
    between the prompt and the read (quick fingers, or a busy machine) is taken by Python
    and the read then waits for a line that never comes. Polling the terminal gives
    Python a moment to raise the KeyboardInterrupt every fifth of a second."""
    import select

    if os.name == "nt" or not sys.stdin.isatty():
        return input(question)
    sys.stdout.write(question)
    sys.stdout.flush()
    while not select.select([sys.stdin], [], [], 0.2)[0]:
        pass
    line = sys.stdin.readline()
    if not line:  # Ctrl-D
        raise EOFError
    return line.rstrip("\n")


def confirm_spend(
    plan: Plan,
    backend: Backend,
    *,
    yes: bool = False,
    cost: CostBreakdown | None = None,
    interactive: bool | None = None,
    ask: Callable[[str], str] = input,
    say: Callable[[str], None] = print,
    balance: Callable[[], float | None] | None = None,
) -> int | None:
    """Keep the spend cap, and ask before a run adds more than ``plan.confirm_above`` US$
    on a billed backend (0: whenever it submits anything).

    Only what THIS run adds counts (``cost``, read from the plan's ledger when not
    given): re-running a finished batch adds nothing and never asks. An endpoint whose
    price is unknown always asks: "unknown" is not "free". Returns None to go on, or
    the exit code to stop with before anything is uploaded: EXIT_INPUT over the cap
    (``--yes`` does not lift a cap), when nobody can answer (stdin is not a terminal
    and no ``--yes``: a script or CI job must say it wants to spend), and when the
    answer is not yes (``n``, an empty line, end of input), so ``i2vkit bulk ... &&
    next`` does not carry on; EXIT_INTERRUPTED for Ctrl-C at the question. The built-in
    emulator (demo mode) is never billed, so it never asks.
    ``interactive`` overrides the terminal check (a Jupyter kernel can answer
    ``input()`` although its stdin is no terminal). ``balance`` reads the account's credit
    balance (None: the key may not read it): a run that needs confirmation shows it, and
    one whose estimate is above it is refused (EXIT_INPUT), ``--yes`` or not: fal would
    lock the account midway and leave the batch half done.
    """
    if not backend.billed:
        return None
    cost = cost or plan.cost
    assert cost is not None, "a plan from plan_batch or plan_retry has its cost"
    try:
        plan.check_spend_cap(cost)
    except SpendCapError as exc:
        say(str(exc))
        return EXIT_INPUT
    amount, above = cost.this_run, plan.confirm_above
    if cost.new_jobs == 0 or (amount is not None and above > 0 and amount <= above):
        return None
    if balance is not None and over_balance(amount, balance(), say):
        return EXIT_INPUT
    if yes:
        return None
    jobs = plural(cost.new_jobs, "job")
    if amount is None:
        what = f"This run submits {jobs} to {plan.unknown_endpoints()}, whose price is unknown,"
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
    except EOFError:  # Ctrl-D, or stdin closed while asking
        answer = ""
    except KeyboardInterrupt:
        say("\nInterrupted at the question. Nothing submitted.")
        return EXIT_INTERRUPTED
    if answer not in ("y", "yes"):
        say("Nothing submitted.")
        return EXIT_INPUT
    return None


def over_balance(amount: float | None, left: float | None, say: Callable[[str], None]) -> bool:
    """Show the balance (when known); True when the run's estimate is above it."""
    if left is None:
        return False
    say(f"fal balance: {usd(left)} left on the account")
    if amount is None or amount <= left + 1e-9:
        return False
    say(
        f"This run may add an estimated {usd(amount)}, more than the {usd(left)} left on the "
        "fal account: fal would lock the account midway and leave the batch half done. "
        "Nothing was uploaded or submitted: top up on the Billing page of your fal dashboard, "
        "or run fewer jobs (--max-cost keeps a run under an amount)."
    )
    return True


def cost_lines(plan: Plan, backend: Backend) -> list[str]:
    """What a run adds and what its batch spent before, and the spend cap on a billed
    backend: the lines `i2vkit bulk`, `i2vkit retry` and the exported script print."""
    lines = [f"cost: {plan.cost.describe()}"] if plan.cost is not None else []
    if plan.max_cost is not None and backend.billed:
        lines.append(f"spend cap: {usd(plan.max_cost)} for this run (--max-cost / I2VKIT_MAX_COST)")
    if plan.confirm_above != DEFAULT_CONFIRM_ABOVE and backend.billed:
        above = f"above {usd(plan.confirm_above)}" if plan.confirm_above else "every time"
        lines.append(f"confirmation: asks {above} (--confirm-above / I2VKIT_CONFIRM_ABOVE)")
    return lines
