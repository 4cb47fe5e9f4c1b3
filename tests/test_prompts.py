"""Prompt files as people really save them."""

from __future__ import annotations

from pathlib import Path

import pytest

from i2vkit.errors import InputError
from i2vkit.prompts import check_prompt_lengths, parse_prompts, read_prompts


def test_bom_crlf_comments_blanks(tmp_path: Path) -> None:
    f = tmp_path / "prompts.txt"
    f.write_bytes(
        b"\xef\xbb\xbf# my prompts\r\n"
        b"  a cat walks slowly  \r\n"
        b"\r\n"
        b"   # indented comment\r\n"
        b"camera pans left, caf\xc3\xa9 lights\r\n"
        b"\t\r\n"
        b"zoom in # not a comment\r\n"
    )
    assert read_prompts(f) == [
        "a cat walks slowly",
        "camera pans left, café lights",
        "zoom in # not a comment",
    ]


def test_cr_only_and_mixed_endings() -> None:
    assert parse_prompts("one\rtwo\nthree\r\nfour") == ["one", "two", "three", "four"]


def test_no_split_on_exotic_separators() -> None:
    assert parse_prompts("a\x0cb\u2028c\nd") == ["a\x0cb\u2028c", "d"]


def test_bom_in_text() -> None:
    assert parse_prompts("\ufeffhello") == ["hello"]


def test_not_utf8(tmp_path: Path) -> None:
    f = tmp_path / "latin1.txt"
    f.write_bytes("first\ncaf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(InputError) as err:
        read_prompts(f)
    msg = str(err.value)
    assert str(f) in msg
    assert "line 2" in msg and "offset 9" in msg and "0xe9" in msg
    assert "UTF-8" in msg


def test_utf16(tmp_path: Path) -> None:
    f = tmp_path / "u16.txt"
    f.write_bytes("hello\n".encode("utf-16"))
    with pytest.raises(InputError, match="UTF-16"):
        read_prompts(f)


@pytest.mark.parametrize(
    "content", [b"", b"\n\n  \r\n", b"# only\n  # comments\n", b"\xef\xbb\xbf"]
)
def test_empty_or_only_comments(tmp_path: Path, content: bytes) -> None:
    f = tmp_path / "p.txt"
    f.write_bytes(content)
    with pytest.raises(InputError, match="No prompts found") as err:
        read_prompts(f)
    assert str(f) in str(err.value)
    assert "one prompt per line" in str(err.value)


def test_missing(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="Prompts file not found"):
        read_prompts(tmp_path / "missing.txt")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a folder"):
        read_prompts(tmp_path)


def test_windows_path(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="/mnt/c/Users/me/prompts.txt"):
        read_prompts(r"C:\Users\me\prompts.txt")


def test_check_prompt_lengths() -> None:
    check_prompt_lengths(["short", "x" * 10], 10, "kling")
    with pytest.raises(InputError) as err:
        check_prompt_lengths(["ok", "x" * 11, "fine", "y" * 30], 10, "kling")
    msg = str(err.value)
    assert "#2 (11 chars)" in msg and "#4 (30 chars)" in msg
    assert "#1" not in msg and "#3" not in msg
    assert "kling" in msg and "10" in msg
