"""run_blocking: the blocking entry point works in scripts and under a running (kernel) loop."""

from __future__ import annotations

import asyncio
import os
import signal
import threading

import pytest

from i2vkit.blocking import run_blocking


async def answer() -> int:
    await asyncio.sleep(0)
    return 42


def test_plain_script():
    assert run_blocking(answer()) == 42


def test_under_a_running_loop_like_a_notebook_cell():
    async def cell():
        return run_blocking(answer())

    assert asyncio.run(cell()) == 42


def test_errors_come_back_to_the_caller():
    async def boom():
        raise ValueError("bad input")

    async def cell():
        return run_blocking(boom())

    with pytest.raises(ValueError, match="bad input"):
        asyncio.run(cell())


def test_interrupt_cancels_the_batch_on_its_worker_thread():
    started, cancelled = threading.Event(), threading.Event()

    async def slow_batch():
        started.set()
        try:
            await asyncio.Event().wait()  # runs until cancelled
        except asyncio.CancelledError:
            cancelled.set()
            raise

    def press_ctrl_c():
        started.wait(30)
        os.kill(os.getpid(), signal.SIGINT)

    async def cell():
        threading.Thread(target=press_ctrl_c, daemon=True).start()
        run_blocking(slow_batch())

    # a bare loop, like ipykernel's, where SIGINT raises KeyboardInterrupt in the cell
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(cell())
    finally:
        loop.close()
    assert cancelled.is_set()
