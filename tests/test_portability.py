"""The package runs on Windows too: no POSIX-only module or call outside a guarded branch.

An AST scan of every module of i2vkit. A POSIX-only import or call is allowed only
inside a branch that runs on POSIX alone (``if sys.platform != "win32":``,
``if os.name == "posix":``, ``if hasattr(signal, "SIGKILL"):`` ...) or an import inside
``try: ... except ImportError``. ``os.kill`` is refused everywhere: with signal 0 (the
liveness idiom) it terminates the process on Windows, and i2vkit never needs it.
The tests themselves may use POSIX calls; the product may not.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import i2vkit

PACKAGE = Path(i2vkit.__file__).parent

POSIX_MODULES = {
    "fcntl", "resource", "termios", "tty", "pty", "pwd", "grp", "posix", "crypt",
    "syslog", "spwd", "nis", "curses", "readline",
}  # fmt: skip
POSIX_OS = {
    "fork", "forkpty", "killpg", "setsid", "setpgrp", "getpgid", "setpgid", "getuid",
    "geteuid", "getgid", "getegid", "chown", "lchown", "mkfifo", "sysconf", "getloadavg",
    "WNOHANG", "O_NONBLOCK", "nice", "pipe2", "wait3", "wait4", "waitid",
}  # fmt: skip
POSIX_SIGNAL = {
    "SIGKILL", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGCHLD", "SIGPIPE",
    "SIGSTOP", "SIGCONT", "SIGTSTP", "alarm", "setitimer", "getitimer", "pause",
    "siginterrupt", "pthread_kill", "pthread_sigmask", "sigwait",
}  # fmt: skip
POSIX_METHODS = {"add_signal_handler", "remove_signal_handler"}
POSIX_KEYWORDS = {"preexec_fn", "start_new_session"}


def _is_platform_test(test: ast.expr) -> bool:
    """Does an `if` test look at the platform (sys.platform, os.name, hasattr(...))?"""
    for node in ast.walk(test):
        if isinstance(node, ast.Attribute) and ast.unparse(node) in ("sys.platform", "os.name"):
            return True
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "hasattr":
            return True
    return False


def _posix_when(test: ast.expr) -> bool:
    """Is the platform test true on POSIX? (``== "win32"``, ``!= "posix"``: no; else yes)"""
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return not _posix_when(test.operand)
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        value = test.comparators[0]
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            equal = isinstance(test.ops[0], ast.Eq | ast.In)
            windows = value.value in ("win32", "nt", "cygwin")
            return equal != windows
    return True


def _in_branch(child: ast.AST, parent: ast.If | ast.IfExp, posix_branch: bool) -> bool:
    branch = parent.body if posix_branch else parent.orelse
    return child is branch or (isinstance(branch, list) and child in branch)


def _guarded(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    child, parent = node, parents.get(node)
    while parent is not None:
        if (
            isinstance(parent, ast.If | ast.IfExp)
            and _is_platform_test(parent.test)
            and _in_branch(child, parent, _posix_when(parent.test))
        ):
            return True
        if isinstance(parent, ast.Try) and child in parent.body:
            caught = {ast.unparse(h.type) for h in parent.handlers if h.type is not None}
            if caught & {"ImportError", "ModuleNotFoundError", "(ImportError, AttributeError)"}:
                return True
        child, parent = parent, parents.get(parent)
    return False


def posix_only_uses(source: str, filename: str = "<source>") -> list[str]:
    """Every POSIX-only import or call in `source` outside a guarded branch, as 'line: what'."""
    tree = ast.parse(source, filename)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []

    def flag(node: ast.AST, what: str, *, always: bool = False) -> None:
        if always or not _guarded(node, parents):
            found.append(f"{filename}:{node.lineno}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in POSIX_MODULES:
                    flag(node, f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in POSIX_MODULES:
                flag(node, f"from {node.module} import ...")
            if node.module == "os":
                for alias in node.names:
                    if alias.name == "kill":
                        flag(node, "from os import kill", always=True)
                    elif alias.name in POSIX_OS:
                        flag(node, f"from os import {alias.name}")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            owner, attr = node.value.id, node.attr
            if owner == "os" and attr == "kill":
                flag(node, "os.kill (signal 0 terminates the process on Windows)", always=True)
            elif owner == "os" and attr in POSIX_OS:
                flag(node, f"os.{attr}")
            elif owner == "signal" and attr in POSIX_SIGNAL:
                flag(node, f"signal.{attr}")
        if isinstance(node, ast.Attribute) and node.attr in POSIX_METHODS:
            flag(node, f".{node.attr}()")
        if isinstance(node, ast.keyword) and node.arg in POSIX_KEYWORDS:
            flag(node.value, f"{node.arg}=")
    return found


def test_the_package_uses_nothing_posix_only_outside_a_guarded_branch():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 20  # the scan really reads the package
    found = []
    for path in modules:
        found += posix_only_uses(path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE)))
    assert found == [], "\n".join(found)


@pytest.mark.parametrize(
    "source",
    [
        "import os\nos.kill(pid, 0)",
        "import os, sys\nif sys.platform != 'win32':\n    os.kill(pid, 0)",  # even guarded
        "from os import kill",
        "import fcntl",
        "import resource",
        "from termios import tcgetattr",
        "import os\nos.fork()",
        "import signal\nproc.send_signal(signal.SIGKILL)",
        "loop.add_signal_handler(signal.SIGINT, stop)",
        "subprocess.Popen(argv, preexec_fn=os.setsid)",
        "import sys\nif sys.platform == 'win32':\n    pass\nimport fcntl",
        "import sys\nif sys.platform == 'win32':\n    import fcntl",  # the wrong branch
        "import os\nif os.name != 'posix':\n    os.setsid()",
    ],
)
def test_the_scan_catches_posix_only_code(source):
    assert posix_only_uses(source) != []


@pytest.mark.parametrize(
    "source",
    [
        "import sys\nif sys.platform != 'win32':\n    import fcntl",
        "import os\nif os.name == 'posix':\n    loop.add_signal_handler(2, stop)",
        "import sys\nif sys.platform == 'win32':\n    pass\nelse:\n    import resource",
        "import signal\nif hasattr(signal, 'SIGKILL'):\n    x = signal.SIGKILL",
        "try:\n    import fcntl\nexcept ImportError:\n    fcntl = None",
        "import signal\nsig = getattr(signal, 'SIGKILL', signal.SIGTERM)",
        "proc.kill()\nproc.terminate()",
    ],
)
def test_the_scan_lets_portable_and_guarded_code_pass(source):
    assert posix_only_uses(source) == []
