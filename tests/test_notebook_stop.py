"""The notebook's stop (issue 22): the kernel's stop button, or the Stop button beside the
bars, mid-run; then the run cell again.

Notebook 01's own cells run in a real kernel against an emulator outside it (a billed
backend: I2VKIT_FAL_URL with a key), whose one account slot keeps most jobs waiting in
fal's queue. The interrupt shows "stopped" (no traceback) on the bars and under the cell;
running the cell again re-attaches the request left running and submits the ones
cancelled while queued: every job runs exactly once at fal, and the cost line equals the
report's.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
from clitools import wait_until, write_prompts
from helpers import TEST_KEY, make_images
from jupyter_client.manager import start_new_kernel

from i2vkit.emulator import Emulator
from i2vkit.models import get_model
from i2vkit.planning import FIELDS, BatchRequest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "01_generate.ipynb"
ISOLATED = ["FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET", "I2VKIT_FAL_URL", "I2VKIT_BATCH"]
ISOLATED += [f.env for f in FIELDS]
MONEY = re.compile(r"batch total: (US\$ [\d.,]+)")
JOBS = 6


def code_cells() -> list[str]:
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


class Kernel:
    """A kernel running cells one by one, collecting each cell's text and error."""

    def __init__(self, env: dict[str, str], cwd: Path):
        self.km, self.kc = start_new_kernel(kernel_name="python3", env=env, cwd=str(cwd))
        self.seen: list[dict] = []  # iopub messages read ahead (while a cell runs)

    def start(self, code: str) -> str:
        return self.kc.execute(code)

    def stop_button(self, msg_id: str, timeout: float = 120) -> str:
        """The comm id of the Stop button the running cell drew (read from iopub)."""
        while True:
            msg = self.kc.get_iopub_msg(timeout=timeout)
            self.seen.append(msg)
            if msg["msg_type"] == "comm_open" and msg["parent_header"].get("msg_id") == msg_id:
                state = msg["content"]["data"].get("state", {})
                if state.get("_model_name") == "ButtonModel" and state.get("description") == "Stop":
                    return msg["content"]["comm_id"]

    def click(self, comm_id: str) -> None:
        """A click as the browser sends it."""
        data = {"method": "custom", "content": {"event": "click"}}
        self.kc.shell_channel.send(
            self.kc.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
        )

    def finish(self, msg_id: str, timeout: float = 180) -> tuple[str, dict | None]:
        """The cell's printed text and its error (ename, evalue, traceback), once it ends."""
        text, error = [], None
        while True:
            msg = self.seen.pop(0) if self.seen else self.kc.get_iopub_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                text.append(content["text"])
            elif kind == "error":
                error = content
            elif kind == "status" and content["execution_state"] == "idle":
                return "".join(text), error

    def run(self, code: str) -> tuple[str, dict | None]:
        return self.finish(self.start(code))

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.mark.parametrize("how", ["kernel stop button", "Stop button"])
def test_stop_mid_run_then_the_run_cell_again(tmp_path, how):
    cells = code_cells()
    setup, run_cell = cells[0], next(c for c in cells if "run_batch(plan" in c)
    make_images(tmp_path / "pics", 2)
    prompts = write_prompts(tmp_path / "prompts.txt", 3)
    db = tmp_path / "ledger.db"
    with Emulator(port=0, key=TEST_KEY, job_seconds=0) as emu:
        emu.configure(concurrency=1, job_seconds=1.5, start_limit=1)  # 1 runs, 5 wait
        env = {k: v for k, v in __import__("os").environ.items() if k not in ISOLATED}
        env.update(
            FAL_KEY=TEST_KEY,
            I2VKIT_FAL_URL=emu.url,
            I2VKIT_DB=str(db),
            AUTO_DOWNLOAD_DIR=str(tmp_path / "videos"),
            I2VKIT_IMAGES_DIR=str(tmp_path / "pics"),
            I2VKIT_PROMPTS_FILE=str(prompts),
            I2VKIT_YES="1",
        )
        kernel = Kernel(env, NOTEBOOK.parent)
        try:
            out, error = kernel.run(setup)
            assert error is None, error
            running = kernel.start(run_cell)

            def one_runs_five_wait() -> bool:
                s = emu.stats()
                return s["in_progress"] == 1 and s["in_queue"] == JOBS - 1

            button = kernel.stop_button(running)
            wait_until(one_runs_five_wait, 120, "1 job running and 5 queued at fal")
            if how == "Stop button":
                kernel.click(button)
            else:
                kernel.km.interrupt_kernel()
            out, error = kernel.finish(running)
            assert error is not None and error["ename"] == "BatchInterrupted", error
            shown = "\n".join(error["traceback"])
            assert "Traceback" not in shown and "File " not in shown, shown
            assert shown.startswith("stopped: ") and "5 cancelled" in shown, shown
            assert "run the cell (or run all) again to resume" in shown.lower(), shown
            bars, error = kernel.run(
                "print(bars.last.state); print(bars.message.value); "
                "print(bars.stop.button.disabled)"
            )
            assert error is None, error
            assert bars.startswith("stopped\nstopped: ") and bars.endswith("True\n"), bars
            assert "5 cancelled" in bars and "1 running at fal" in bars, bars

            emu.configure(start_limit=None, job_seconds=0.2)
            out, error = kernel.run(run_cell + "\nprint(result.summary())")
            assert error is None, error
            report, error = kernel.run(
                "from i2vkit.report import write_report\n"
                "from i2vkit.store import Store\n"
                "with Store(workspace.settings.db_path) as s:\n"
                f"    write_report(s, result.batch_id, {str(tmp_path / 'report')!r})\n"
            )
            assert error is None, error
        finally:
            kernel.close()
        views = emu.jobs()
    started = [json.dumps(j["arguments"], sort_keys=True) for j in views if j["started_at"]]
    assert len(started) == JOBS and len(set(started)) == JOBS  # every job ran once at fal
    assert len(views) == JOBS + 5  # the 5 cancelled while queued were submitted again
    with sqlite3.connect(db) as conn:
        statuses = [r[0] for r in conn.execute("SELECT status FROM jobs")]
    assert statuses == ["downloaded"] * JOBS
    cost = MONEY.search(out)
    assert cost is not None, out
    page = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    assert f"what fal may bill): {cost.group(1)} " in page, (cost.group(1), page[:2000])
    clip = get_model(BatchRequest.model).estimate_cost()  # the default model, from the catalogue
    assert clip is not None and cost.group(1) == f"US$ {JOBS * clip:.2f}"


@pytest.fixture(autouse=True)
def _no_user_env(monkeypatch):
    for name in ISOLATED:
        monkeypatch.delenv(name, raising=False)
