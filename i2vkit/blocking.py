"""Running the async engine from plain code: scripts, the CLI, and notebook cells."""

from __future__ import annotations

import _thread
import asyncio
import signal
import sys
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from .errors import BatchInterrupted

T = TypeVar("T")


def _run_here(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, where every Ctrl-C cancels the coroutine's task: the first stops the
    batch (it then cancels what waits at fal), a second stops that waiting (stop.py).
    asyncio's own handler would raise KeyboardInterrupt anywhere on the second one.
    A task that ends cancelled comes out as a KeyboardInterrupt."""

    async def main() -> T:
        loop, task = asyncio.get_running_loop(), asyncio.current_task()
        if task is None or threading.current_thread() is not threading.main_thread():
            return await coro

        def on_sigint(_signum: int, _frame: object) -> None:  # as asyncio's, minus the raise
            loop.call_soon_threadsafe(task.cancel)

        previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            return await coro
        finally:
            signal.signal(signal.SIGINT, previous)

    try:
        return asyncio.run(main())
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to the end from plain code, also under a running notebook loop.

    A kernel's loop is already running, so asyncio.run() would refuse; instead of
    patching the loop (nest_asyncio, archived), the coroutine gets its own loop on a
    worker thread while the caller waits. Interrupting the caller (Ctrl-C, the
    kernel's stop button) cancels the batch there, and the caller waits until the
    batch has finished cancelling (a submit POST already on the wire has recorded its
    request_id) before the KeyboardInterrupt goes on: however early or late the
    interrupt lands, even while the worker is still starting.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_here(coro)
    box: dict[str, Any] = {}
    ready, done = threading.Event(), threading.Event()

    async def main() -> T:
        box["loop"], box["task"] = asyncio.get_running_loop(), asyncio.current_task()
        ready.set()
        return await coro

    def worker() -> None:
        try:
            box["result"] = asyncio.run(main())
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc
        finally:
            ready.set()
            done.set()

    thread = threading.Thread(target=worker, name="i2vkit-batch", daemon=True)
    _WAITING.append(thread)
    try:
        try:
            thread.start()
            # Wait on an Event, not Thread.join(): an interrupted join() marks a live thread
            # as stopped on Python 3.11 (the bpo-45274 clean-up releases the thread's lock).
            # In short waits: an interrupt another thread raises here (the notebook's Stop
            # button, _thread.interrupt_main) lands between two of them.
            while not done.wait(0.2):
                pass
        except KeyboardInterrupt:
            _wind_down(box, ready, done)  # raises BatchInterrupted
    finally:
        _WAITING.remove(thread)
    if "error" in box:
        raise box["error"]
    return box["result"]


#: The batches the main thread waits for (a Stop button interrupts only while one runs).
_WAITING: list[threading.Thread] = []


def waiting() -> bool:
    """Is the caller's thread waiting for a batch on a worker thread right now?"""
    return bool(_WAITING)


def _wind_down(box: dict[str, Any], ready: threading.Event, done: threading.Event) -> None:
    """After an interrupt: cancel the batch's task, once per interrupt (a second one stops
    its waiting for fal's answers), until it ends; then raise with its summary."""
    presses, cancelled = 1, 0
    while not done.is_set():  # let the batch wind down; a second stop hurries it
        try:
            if cancelled < presses and ready.wait(0.1) and "task" in box:
                box["loop"].call_soon_threadsafe(box["task"].cancel)
                cancelled += 1
            done.wait(0.1)
        except KeyboardInterrupt:
            presses += 1
    raise BatchInterrupted(box.get("result")) from None


def keep_ctrl_c() -> None:
    """Never lose a Ctrl-C (the CLI and the exported script install this).

    Python raises KeyboardInterrupt wherever the main thread is; raised inside a callback
    Python runs for itself (a weakref's, a finalizer; every import's module lock has one),
    it is printed as "Exception ignored ... Traceback" and dropped, and the batch ran on
    as if nobody had pressed anything (1 run of `test_interrupts` in about 30). Such an
    interrupt is sent again, silently, from a helper thread once the hook has returned: sent
    from inside the hook it would be raised there, and dropped again.
    """
    previous = sys.unraisablehook
    if getattr(previous, "_i2vkit", False):
        return
    inside = threading.Event()

    def send_again() -> None:
        while inside.is_set():  # the main thread is still in the hook
            time.sleep(0.005)
        _thread.interrupt_main()  # a new Ctrl-C: the handler in place then decides

    def hook(unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            previous(unraisable)
            return
        inside.set()
        try:
            threading.Thread(target=send_again, name="i2vkit-ctrl-c", daemon=True).start()
        except RuntimeError:  # no new thread at interpreter shutdown: the process is ending
            pass
        finally:
            inside.clear()

    hook._i2vkit = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook
