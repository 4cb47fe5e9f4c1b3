"""JupyterLab for the browser tests: a temp Jupyter root holding a copy of ``notebooks/`` and
``data/``, and a server on 127.0.0.1 (random port and token) with its own ledger, settings
and Jupyter state, stopped with its kernels when the test is done.

One copy for every browser test (test_browser.py's ``lab`` fixture, test_browser_form.py's
servers): the root, the environment and the command line are written here once.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SERVER_START_S = 90  # JupyterLab start on a slow 2-core CI box

# JupyterLab user settings for a quiet, deterministic UI: every cell stays in the DOM
# (no windowing), and no news/update toasts cover the screenshots.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


# Nothing from the caller's environment reaches the notebook's settings or form defaults
# (a key would send it to the real fal.ai; I2VKIT_PLAIN would turn the widgets off).
def foreign_setting(name: str) -> bool:
    return name.startswith(("FAL_", "I2VKIT_")) or name in (
        "AUTO_DOWNLOAD_DIR",
        "UPLOAD_CACHE_ENABLED",
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_notebook(path: Path) -> None:
    """Strip outputs and execution counts, so every prompt must come from this run."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    path.write_text(json.dumps(nb, indent=1) + "\n", encoding="utf-8")


def prepare_root(
    base: Path, fresh: tuple[str, ...], replace: Mapping[str, Path] | None = None
) -> Path:
    """``base/i2vkit`` (it reads like a checkout in the screenshots) with the notebooks and
    the sample data; ``replace`` puts another file at a notebook's place, and the notebooks
    ``fresh`` names lose their outputs. JupyterLab's settings go in ``base/lab-settings``."""
    root = base / "i2vkit"
    shutil.copytree(
        REPO / "notebooks",
        root / "notebooks",
        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "downloads", "*.py"),
    )
    shutil.copytree(REPO / "data", root / "data", ignore=shutil.ignore_patterns("__pycache__"))
    for notebook, source in (replace or {}).items():
        shutil.copyfile(source, root / notebook)
    for notebook in fresh:
        fresh_notebook(root / notebook)
    for plugin, values in LAB_SETTINGS.items():
        target = base / "lab-settings" / plugin
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values), encoding="utf-8")
    (root / ".env").write_text("# shadows any .env above the temp root\n", encoding="utf-8")
    return root


@contextlib.contextmanager
def serve(
    base: Path,
    log_path: Path,
    *,
    extra_env: Mapping[str, str] | None = None,
    app_defaults: bool = False,
) -> Iterator[dict]:
    """JupyterLab over ``base/i2vkit`` (see :func:`prepare_root`), its ledger
    ``base/ledger.db``; ``extra_env`` for the kernels (an emulator's URL and key). With
    ``app_defaults`` it reads the JupyterLab defaults the package installs
    (``jupyter/overrides.d``, see pyproject's data-files). A second server on the same
    ``base`` serves the same files (a server restart)."""
    root = base / "i2vkit"
    app_settings = base / "app-settings"
    if app_defaults:
        (app_settings / "overrides.d").mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "jupyter" / "overrides.d" / "i2vkit.json", app_settings / "overrides.d")
    env = {k: v for k, v in os.environ.items() if not foreign_setting(k)}
    env.update(
        # Demo mode (no key unless extra_env gives one), with a temp ledger. AUTO_DOWNLOAD_DIR
        # stays unset, so the form uses its default, `downloads` next to the notebook: under
        # the Jupyter root, where the gallery links the videos by relative URL.
        I2VKIT_DB=str(base / "ledger.db"),
        I2VKIT_JUPYTER_ROOT=str(root),
        # This checkout's package, even if another copy is installed.
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p),
        # Nothing from the user's Jupyter/IPython state; nothing written to it.
        JUPYTER_CONFIG_DIR=str(base / "jupyter-config"),
        JUPYTER_RUNTIME_DIR=str(base / "jupyter-runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(base / "lab-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(base / "lab-workspaces"),
        IPYTHONDIR=str(base / "ipython"),
        PYDEVD_DISABLE_FILE_VALIDATION="1",
        **(extra_env or {}),
    )
    token, port = secrets.token_hex(16), free_port()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter",
                "lab",
                "--no-browser",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={token}",
                f"--ServerApp.root_dir={root}",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                *([f"--LabApp.app_settings_dir={app_settings}"] if app_defaults else []),
                *(["--ServerApp.allow_root=True"] if os.geteuid() == 0 else []),
            ],
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the kernels go down with it
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for_server(proc, url, token, log_path)
            yield {"url": url, "token": token, "root": root, "log": log_path, "ledger": base}
        finally:
            stop_process_group(proc)


NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 is local


def wait_for_server(proc: subprocess.Popen, url: str, token: str, log_path: Path) -> None:
    """Poll /api/status (which needs the token) until it answers, the server dies, or time is up."""
    deadline = time.monotonic() + SERVER_START_S
    request = urllib.request.Request(
        f"{url}/api/status", headers={"Authorization": f"token {token}"}
    )
    last = "no answer yet"
    while time.monotonic() < deadline:
        try:
            with NO_PROXY.open(request, timeout=5) as answer:
                if answer.status == 200:
                    json.load(answer)
                    return
                last = f"HTTP {answer.status}"
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError) as exc:
            last = repr(exc)
        # Wait a little between polls, returning at once if the server exits.
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.25)
        if proc.returncode is not None:
            break
    tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
    state = f"exited with {proc.returncode}" if proc.returncode is not None else "still starting"
    pytest.fail(
        f"JupyterLab at {url} did not answer /api/status within {SERVER_START_S}s "
        f"({state}; last: {last}). Log tail:\n{tail}",
        pytrace=False,
    )


def stop_process_group(proc: subprocess.Popen) -> None:
    """SIGTERM (Jupyter shuts its kernels down), then SIGKILL whatever is left of the group."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
