"""The Stop button beside the progress bars: it stops a run the way the kernel's stop button
does, with a KeyboardInterrupt in the kernel's main thread, where ``run_batch`` waits (and
then cancels what waits at fal, as Ctrl-C does in the CLI).

While a cell runs, ipykernel 7 hands widget clicks to the main thread only once the cell
has ended, so a plain ``on_click`` would fire too late. But ipykernel first looks at every
comm message on its shell-channel thread, asking the comm which subshell the message goes
to (``_reply_subshell_for``). The button's comm answers that question as before and, for a
click during a run, interrupts the main thread right there. A kernel that does not ask
would deliver the click after the cell: there the button is not shown (the kernel's stop
button stops a run the same way).
"""

from __future__ import annotations

import _thread
from collections.abc import Callable
from typing import Any

from ..blocking import waiting

STOP_LABEL = "Stop"
STOP_WAITING_LABEL = "Stop waiting"


def is_click(data: Any) -> bool:
    """A Button's click as the frontend sends it: ``{"method": "custom", "content":
    {"event": "click"}}``."""
    if not isinstance(data, dict) or data.get("method") != "custom":
        return False
    content = data.get("content")
    return isinstance(content, dict) and content.get("event") == "click"


class StopButton:
    """A Stop button, enabled while a run goes (:meth:`running`)."""

    def __init__(self, interrupt: Callable[[], None] = _thread.interrupt_main):
        import ipywidgets as w

        self.interrupt = interrupt
        self.active = False
        self.button = w.Button(
            description=STOP_LABEL,
            button_style="danger",
            icon="stop",
            disabled=True,
            tooltip="stop the run as Ctrl-C does: cancel what waits in fal's queue",
        )
        self.hooked = self._hook()
        if not self.hooked:  # its clicks would come after the run: not shown
            self.button.layout.display = "none"

    def _hook(self) -> bool:
        """Watch the button's comm messages on the kernel's shell-channel thread."""
        comm = getattr(self.button, "comm", None)
        route = getattr(comm, "_reply_subshell_for", None)
        if comm is None or route is None:
            return False

        def routed(data: Any, default: Any) -> Any:
            if is_click(data):
                self.stop()
            return route(data, default)

        comm._reply_subshell_for = routed
        return True

    def follow(self, state: str) -> None:
        """Follow the run's state: Stop while it runs, "Stop waiting" while it cancels at fal
        (a second stop, as a second Ctrl-C), disabled once it ended."""
        active = state in ("running", "stopping")
        label = STOP_WAITING_LABEL if state == "stopping" else STOP_LABEL
        if (active, label) == (self.active, self.button.description):
            return
        self.active = active
        self.button.disabled = not active
        self.button.description = label

    def stop(self) -> None:
        if self.active and waiting():  # only while run_batch waits in the main thread
            self.interrupt()
