"""Windows, checked on Linux: file names, file URLs, the data folder, the owner check, renames.

Nothing here runs on Windows; each test states Windows' rule itself (an independent
checker, a path worked out by hand) and holds the pure logic to it for both platforms.
"""

from __future__ import annotations

import ntpath
import os
import re
import socket
import subprocess
import sys
import unicodedata
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath, PureWindowsPath
from urllib.parse import unquote

import httpx
import psutil
import pytest
from helpers import make_images, upload_blob

from i2vkit import config, gallery
from i2vkit.download import download, part_path, video_filename
from i2vkit.errors import RenameBlockedError
from i2vkit.filenames import file_url, safe_component
from i2vkit.images import windows_path_hint
from i2vkit.jobs import JobStatus, owner_alive
from i2vkit.store import Store

# ----------------------------------------------------------------- Windows' naming rules

RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{d}{n}" for d in ("COM", "LPT") for n in "123456789"}


def windows_objections(name: str) -> list[str]:
    """What Windows (or a reader) has against `name` as a file name; [] when nothing.

    Written from Microsoft's "Naming Files, Paths, and Namespaces", not from i2vkit."""
    found = []
    if not name:
        found.append("empty")
    if re.search(r'[<>:"/\\|?*\x00-\x1f]', name):
        found.append("forbidden character")
    if name.endswith((".", " ")):
        found.append("trailing dot or space")
    if name.split(".")[0].rstrip(" ").upper() in RESERVED:
        found.append("reserved device name")
    if len(name.encode("utf-16-le")) // 2 > 255:
        found.append("longer than 255 UTF-16 units")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in name):
        found.append("invisible or undecodable character")
    return found


HOSTILE = [
    "fal-ai/wan-i2v",
    "fal-ai-wan-i2v",  # what the one above would become by cleaning alone
    "fal-ai\\wan-i2v",
    "a:b",
    "a?b",
    "a*b",
    'say "hi"',
    "<tag>",
    "pipe|d",
    "CON",
    "con",
    "nul.mp4",
    "Com1",
    "lpt9.tar.gz",
    "aux ",
    "trailing.",
    "trailing ",
    ".hidden",
    "..",
    ".",
    "",
    " ",
    "tab\there",
    "new\nline",
    "bell\x07",
    "\u202eevil.gpj",
    "zero\u200bwidth",
    "undecodable\udcff",
    "x" * 500,
    "y" * 121,
    "é" * 200,
    "日本語" * 60,
    "Zoë's holiday (2).final",
    "ends-like-a-suffix-0123456789",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_every_safe_name_is_a_valid_windows_file_name(text):
    name = safe_component(text)
    assert windows_objections(name) == [], f"{text!r} -> {name!r}"
    assert len(name) <= 120 and not name.startswith((".", "-", " "))


def test_two_different_inputs_never_share_a_name_and_valid_names_stay(tmp_path):
    names = {text: safe_component(text) for text in HOSTILE}
    assert len(set(names.values())) == len(HOSTILE), names
    # written as real files side by side: as many files as inputs
    for name in names.values():
        (tmp_path / name).write_bytes(b"x")
    assert len(list(tmp_path.iterdir())) == len(HOSTILE)
    for plain in ("wan", "kling-1.6", "Zoë's holiday (2).final", "beach at dawn"):
        assert safe_component(plain) == plain


def test_video_and_part_names_are_valid_on_windows_for_any_model():
    when = datetime(2026, 11, 25, 14, 15, tzinfo=UTC)
    seen = set()
    for model in HOSTILE:
        name = video_filename(12, model, when)
        assert windows_objections(name) == [], f"{model!r} -> {name!r}"
        assert windows_objections(part_path(Path(name)).name) == []
        assert name.startswith("12_") and name.endswith(".mp4") and len(name) <= 120
        seen.add(name)
    assert len(seen) == len(HOSTILE)  # "fal-ai/wan-i2v" and "fal-ai-wan-i2v" differ too
    assert video_filename(1, "wan", when) == "1_wan_20261125T141500Z.mp4"


# ------------------------------------------------------------------------- file URLs

ZOE = PureWindowsPath(r"C:\Users\Zoë")


def resolves_back(url: str, base: PureWindowsPath) -> PureWindowsPath:
    """Where a browser would find a relative `url` from a page in `base` (independent of i2vkit)."""
    return PureWindowsPath(ntpath.normpath(ntpath.join(str(base), *map(unquote, url.split("/")))))


@pytest.mark.parametrize(
    ("path", "base", "url"),
    [
        (ZOE / r"clips\1_wan.mp4", ZOE / "notebooks", "../clips/1_wan.mp4"),
        (ZOE / r"notebooks\out\1_wan.mp4", ZOE / "notebooks", "out/1_wan.mp4"),
        (ZOE / r"clips\1_wan.mp4", ZOE, "clips/1_wan.mp4"),
        # Windows compares names without case
        (
            ZOE / r"clips\1_wan.mp4",
            PureWindowsPath(r"c:\users\ZOË\Notebooks"),
            "../clips/1_wan.mp4",
        ),
        (ZOE / r"my clips\#1 50%.mp4", ZOE, "my%20clips/%231%2050%25.mp4"),
        (ZOE / r"Zoë\café.mp4", ZOE, "Zo%C3%AB/caf%C3%A9.mp4"),
        (
            PureWindowsPath(r"\\nas\share\clips\1_wan.mp4"),
            PureWindowsPath(r"\\nas\share\notebooks"),
            "../clips/1_wan.mp4",
        ),
    ],
)
def test_relative_urls_from_windows_paths(path, base, url):
    assert file_url(path, base) == url
    assert resolves_back(url, base) == path


@pytest.mark.parametrize(
    ("path", "base", "url"),
    [
        (ZOE / r"clips\1_wan.mp4", None, "file:///C:/Users/Zo%C3%AB/clips/1_wan.mp4"),
        # another drive: no relative URL exists
        (PureWindowsPath(r"D:\clips\1 wan.mp4"), ZOE, "file:///D:/clips/1%20wan.mp4"),
        (PureWindowsPath(r"\\nas\share\1_wan.mp4"), None, "file://nas/share/1_wan.mp4"),
    ],
)
def test_absolute_urls_from_windows_paths(path, base, url):
    assert file_url(path, base) == url


def test_posix_paths_and_the_gallery_use_the_same_urls(tmp_path):
    clips, notebooks = tmp_path / "clips", tmp_path / "notebooks"
    clips.mkdir()
    notebooks.mkdir()
    video = clips / "Zoë #1: take?.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    expected = "../clips/Zo%C3%AB%20%231%3A%20take%3F.mp4"
    assert file_url(PurePosixPath("/h/z/clips/Zoë #1: take?.mp4"), PurePosixPath("/h/z/nb")) == (
        expected
    )
    assert gallery.relative_url(video, notebooks) == expected
    linker = gallery.VideoLinker(notebooks, root=tmp_path)
    assert linker.source(video).url == expected


def test_the_wsl_path_hint_is_for_linux_only():
    assert "/mnt/c/Users/Zoë/pics" in windows_path_hint(r"C:\Users\Zoë\pics", "linux")
    assert windows_path_hint(r"C:\Users\Zoë\pics", "win32") is None
    assert windows_path_hint(r"\\nas\pics", "win32") is None
    assert windows_path_hint(r"C:\Users\Zoë\pics", "darwin") is None


# ------------------------------------------------------------------------ data folder


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    return tmp_path


def test_linux_keeps_the_xdg_place(home, monkeypatch):
    assert config.default_db_path("linux") == home / ".local/share/i2vkit/i2vkit.db"
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "xdg"))
    assert config.default_db_path("linux") == home / "xdg/i2vkit/i2vkit.db"


def test_macos_uses_application_support(home):
    assert config.default_db_path("darwin") == home / "Library/Application Support/i2vkit/i2vkit.db"


def local_appdata(monkeypatch, folder: str) -> None:
    """Stand in for the Win32 known-folder call (SHGetKnownFolderPath) that Linux lacks."""
    import platformdirs.windows

    monkeypatch.setattr(platformdirs.windows, "get_win_folder", lambda csidl: folder)


def test_windows_uses_local_appdata(home, monkeypatch):
    local_appdata(monkeypatch, r"C:\Users\Zoë\AppData\Local")
    got = PureWindowsPath(str(config.default_db_path("win32")))
    assert got == PureWindowsPath(r"C:\Users\Zoë\AppData\Local\i2vkit\i2vkit.db")


@pytest.mark.parametrize("platform", ["win32", "darwin"])
def test_a_ledger_at_the_old_place_stays_in_use_until_the_new_place_has_one(
    home, monkeypatch, platform
):
    local_appdata(monkeypatch, str(home / "AppData" / "Local"))
    new = config.default_db_path(platform)
    old = home / ".local/share/i2vkit/i2vkit.db"
    assert new != old
    Store(old).close()  # a real ledger written by an earlier version
    assert config.default_db_path(platform) == old
    Store(new).close()
    assert config.default_db_path(platform) == new


# ---------------------------------------------------------------------- owner check

CHILD = (
    "import sys; from i2vkit.jobs import process_owner; "
    "print(process_owner(), flush=True); sys.stdin.read()"
)


@pytest.fixture
def child():
    """Another process (its own owner string, printed by i2vkit), alive until stdin closes."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    owner = proc.stdout.readline().strip()
    yield proc, owner
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_checking_a_live_foreign_owner_leaves_it_running(child):
    proc, owner = child
    host, pid, _nonce, _start = owner.split(":")
    assert host == socket.gethostname() and int(pid) == proc.pid
    for _ in range(3):
        assert owner_alive(owner) is True
    assert proc.poll() is None
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0  # ended on its own, not by a signal from the check


def test_a_dead_owner_is_dead_and_a_reused_pid_is_not_the_owner(child):
    proc, owner = child
    host, pid, nonce, start = owner.split(":")
    older = f"{host}:{pid}:{nonce}:{float(start) - 3600:.2f}"  # same pid, another process
    assert owner_alive(older) is False
    assert owner_alive(f"{host}:{pid}:{nonce}") is True  # an owner from before start times
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0
    assert not psutil.pid_exists(proc.pid)
    assert owner_alive(owner) is False
    assert owner_alive(f"{host}:{pid}:{nonce}") is False


def test_an_exited_but_unreaped_owner_is_dead(child):
    proc, owner = child
    proc.stdin.close()
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # POSIX, in the test only
    assert psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE
    assert owner_alive(owner) is False


@pytest.mark.parametrize("owner", [None, "", "proc-a", "otherhost:1:abcd:1.00", "h:x:y"])
def test_owners_that_are_not_a_live_process_here(owner):
    assert owner_alive(owner) is False


# ------------------------------------------------------------------- files in use


def fetch(url, dest, **kwargs) -> int:
    import asyncio

    async def go():
        async with httpx.AsyncClient() as client:
            return await download(client, url, dest, **kwargs)

    return asyncio.run(go())


def test_a_blocked_final_name_keeps_the_whole_download_and_the_next_try_only_renames(
    emulator, tmp_path
):
    data = bytes(range(256)) * 2048
    url = upload_blob(emulator, data)
    dest = tmp_path / "1_wan_20261125T000000Z.mp4"
    dest.mkdir()  # a non-empty folder where the file should go: the rename fails for real
    (dest / "in-use").write_bytes(b"x")
    with pytest.raises(RenameBlockedError) as caught:
        fetch(url, dest)
    message = str(caught.value)
    assert dest.name in message and "run the same command again" in message
    assert caught.value.size == len(data)
    assert part_path(dest).read_bytes() == data  # kept whole, not thrown away
    served = emulator.stats()["download_bytes"]

    (dest / "in-use").unlink()
    dest.rmdir()  # the player let go of it
    assert fetch(url, dest, size=len(data)) == len(data)
    assert dest.read_bytes() == data and not part_path(dest).exists()
    assert emulator.stats()["download_bytes"] == served  # renamed, not downloaded again


# The first run, in its own process: `os.replace` answers for the finished video what
# Windows answers while a player holds the file open (PermissionError, winerror 32).
FIRST_RUN = """
import errno, os, sys
from pathlib import Path
from i2vkit.config import Settings
from i2vkit.engine import run_batch
from i2vkit.planning import BatchRequest

key, out, db, url, pics = sys.argv[1:]
real_replace = os.replace

def player_holds_it(src, dst, *args, **kwargs):
    if Path(dst).parent == Path(out) and str(src).endswith(".part"):
        raise PermissionError(errno.EACCES, "The process cannot access the file", str(dst))
    return real_replace(src, dst, *args, **kwargs)

os.replace = player_holds_it
settings = Settings(fal_key=key, download_dir=Path(out), db_path=Path(db), fal_url=url)
result = run_batch(BatchRequest(images_dir=Path(pics), prompts=["a prompt"]), settings)
print(result.batch_id)
sys.exit(0 if result.ok else 1)
"""


def test_a_batch_whose_video_is_in_use_finishes_on_the_next_run(emulator, settings, tmp_path):
    from i2vkit.engine import run_batch
    from i2vkit.planning import BatchRequest

    make_images(tmp_path / "pics", 1)
    out = settings.download_dir
    argv = [settings.fal_key, out, settings.db_path, emulator.url, tmp_path / "pics"]
    first = subprocess.run(
        [sys.executable, "-c", FIRST_RUN, *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert first.returncode == 1, first.stderr[-2000:]  # not done: the video is not in place
    batch_id = first.stdout.strip()
    with Store(settings.db_path) as store:
        (job,) = store.jobs(batch_id)
    assert job["status"] == JobStatus.COMPLETED
    assert "another program has it open" in job["error"]
    part = part_path(Path(job["local_file"]))
    assert part.stat().st_size == job["video_size"] > 0
    kept = part.read_bytes()
    served = emulator.stats()["download_bytes"]

    second = run_batch(BatchRequest(images_dir=tmp_path / "pics", prompts=["a prompt"]), settings)
    assert second.ok and second.batch_id == batch_id, second.jobs
    assert [str(v) for v in second.videos] == [job["local_file"]]
    assert second.videos[0].read_bytes() == kept and not part.exists()
    assert emulator.stats()["download_bytes"] == served  # renamed, not downloaded again
    with Store(settings.db_path) as store:
        assert store.job(job["id"])["status"] == JobStatus.DOWNLOADED


def test_an_ended_run_of_this_process_no_longer_owns_its_jobs():
    """A notebook kernel runs batch after batch: an earlier run's owner is not alive."""
    from i2vkit.jobs import process_owner, retire_owner

    owner = process_owner()
    assert owner_alive(owner) is True
    retire_owner(owner)
    assert owner_alive(owner) is False
    assert owner_alive(process_owner()) is True
