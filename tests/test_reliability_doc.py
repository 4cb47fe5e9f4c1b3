"""docs/reliability.md names a test for every fault, bad input and threat: each must exist,
in the file named, and assert something (directly or through a helper that asserts)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "reliability.md"
REF = re.compile(r"`(tests/test_\w+\.py)::(test_\w+)`")
ASSERTING_HELPERS = {"refused", "nothing_sent", "assert_one_playable_video_per_job"}


def functions_in(path: Path) -> dict[str, ast.FunctionDef]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def asserts(fn: ast.FunctionDef) -> bool:
    for node in ast.walk(fn):
        if isinstance(node, ast.Assert):
            return True
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name in ASSERTING_HELPERS or name == "raises":
                return True
    return False


def test_every_test_named_in_reliability_doc_exists_and_asserts():
    refs = REF.findall(DOC.read_text(encoding="utf-8"))
    assert len(refs) >= 35, f"only {len(refs)} test references in {DOC}"
    rows = [line for line in DOC.read_text(encoding="utf-8").splitlines() if line.startswith("| ")]
    table_rows = [r for r in rows if not r.startswith(("| Fault", "| Bad input", "| Threat"))]
    assert all(REF.search(r) for r in table_rows), "a table row names no test"
    cache: dict[str, dict[str, ast.FunctionDef]] = {}
    for file, name in refs:
        path = ROOT / file
        assert path.exists(), f"{file} (named in {DOC.name}) does not exist"
        functions = cache.setdefault(file, functions_in(path))
        assert name in functions, f"{file}::{name} (named in {DOC.name}) does not exist"
        assert asserts(functions[name]), f"{file}::{name} asserts nothing"
