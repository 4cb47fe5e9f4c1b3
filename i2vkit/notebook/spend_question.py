"""The CLI's spend question, asked with two buttons: what every notebook button that
submits (Retry, a clip's Again) shows before spending.

The rule is :func:`~i2vkit.spending.confirm_spend`, the one `i2vkit bulk`, `retry` and
`again` apply: never on the built-in emulator, never past the spend cap (its own
words), a refusal over the account's balance, and above the plan's threshold a question.
A button cannot answer ``input()``, so the rule is run once to learn whether it asks and
what, and once more with the answer the user clicked. ``I2VKIT_YES=1`` answers yes, as
``--yes`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import gallery as g
from ..spending import confirm_spend
from .display import env_flag

if TYPE_CHECKING:
    from ..planning import Plan
    from ..workspace import Workspace

Go = Callable[[], None]
Stop = Callable[[str], None]  # why nothing was submitted, as HTML


class SpendQuestion:
    """A question and *Yes, spend it* / *No* buttons, hidden until the rule asks."""

    def __init__(self) -> None:
        import ipywidgets as w

        self.question = w.HTML()
        self.yes = w.Button(description="Yes, spend it", button_style="danger")
        self.no = w.Button(description="No")
        self.yes.on_click(lambda _b: self.answer(True))
        self.no.on_click(lambda _b: self.answer(False))
        self.widget = w.HBox([self.question, self.yes, self.no], layout={"display": "none"})
        self._pending: tuple[Plan, Workspace, Go, Stop] | None = None

    @property
    def asking(self) -> bool:
        return self._pending is not None

    def check(self, plan: Plan, ws: Workspace, go: Go, stop: Stop) -> None:
        """Apply the rule to ``plan``: ``go()`` when it lets the run go on, ``stop(why)``
        when it refuses (the spend cap, the balance), or show its question and wait."""
        asked: list[str] = []
        said: list[str] = []

        def ask(question: str) -> str:
            asked.append(question)
            return ""  # not answered yet: the buttons will

        code = confirm_spend(
            plan,
            ws.backend,
            yes=env_flag("I2VKIT_YES"),
            interactive=True,
            ask=ask,
            say=said.append,
            balance=_balance(ws),
        )
        if asked:
            question = asked[0].strip().removesuffix("[y/N]").strip()
            shown = [*(line for line in said if line != "Nothing submitted."), question]
            self.question.value = "<br>".join(f"<b>{g.esc(line)}</b>" for line in shown)
            self.widget.layout.display = ""
            self._pending = (plan, ws, go, stop)
        elif code is None:
            go()
        else:
            stop(f"<span style='color:#c62828'>{g.esc(' '.join(said))}</span>")

    def answer(self, yes: bool) -> None:
        """The user's answer: run (the rule applied again, answered yes), or stop."""
        self.widget.layout.display = "none"
        pending, self._pending = self._pending, None
        if pending is None:
            return
        plan, ws, go, stop = pending
        if not yes:
            stop("Nothing submitted.")
            return
        said: list[str] = []
        code = confirm_spend(
            plan, ws.backend, interactive=True, ask=lambda _q: "y", say=said.append
        )
        if code is None:
            go()
        else:
            stop(g.esc(" ".join(said)))

    def cancel(self) -> None:
        """Forget a question left unanswered (the plan it was about changed)."""
        self._pending = None
        self.widget.layout.display = "none"


def _balance(ws: Workspace) -> Callable[[], Any]:
    def read() -> float | None:
        from ..bill import read_balance

        return read_balance(ws.settings)

    return read
