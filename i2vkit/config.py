"""Settings from the environment and a `.env` file.

Real environment variables win over `.env` (python-dotenv with override=False),
so CI and notebooks can point the tool somewhere else without editing files.
Every bad value raises :class:`ConfigError` naming the variable and what it accepts.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values, find_dotenv
from dotenv.parser import parse_stream

from .errors import ConfigError

TRUE_WORDS = {"true", "1", "yes", "y", "on"}
FALSE_WORDS = {"false", "0", "no", "n", "off"}


def default_db_path(platform: str = sys.platform) -> Path:
    """One ledger per user, so the upload cache is shared by every project and notebook.

    It lives where the platform keeps an app's data (platformdirs): ``$XDG_DATA_HOME/i2vkit``
    or ``~/.local/share/i2vkit`` on Linux, ``%LOCALAPPDATA%\\i2vkit`` on Windows and
    ``~/Library/Application Support/i2vkit`` on macOS. Earlier versions used the Linux place
    on every platform: a ledger found there stays in use while the new place has none, so
    an upgrade loses no batch and no cached upload. `platform` takes ``sys.platform``'s
    values, so each platform's choice can be checked on any machine.
    """
    from platformdirs.api import PlatformDirsABC
    from platformdirs.macos import MacOS
    from platformdirs.unix import Unix
    from platformdirs.windows import Windows

    kinds: dict[str, Callable[..., PlatformDirsABC]] = {"win32": Windows, "darwin": MacOS}
    dirs = kinds.get(platform, Unix)(appname="i2vkit", appauthor=False)
    new = Path(dirs.user_data_dir) / "i2vkit.db"
    old_base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    old = Path(old_base) / "i2vkit" / "i2vkit.db"
    return old if old.is_file() and not new.exists() else new


@dataclass(frozen=True)
class Settings:
    """Everything i2vkit reads from the environment, already validated."""

    fal_key: str | None = field(default=None, repr=False)
    download_dir: Path = Path("downloads")
    upload_cache_enabled: bool = True
    db_path: Path = field(default_factory=default_db_path)
    fal_url: str | None = None
    env_file: Path | None = None
    max_cost: float | None = None  # US$ this run may add at most (I2VKIT_MAX_COST); None: no cap
    sidecars: bool = True  # a NAME.json recipe beside each video (I2VKIT_SIDECARS)

    @property
    def demo(self) -> bool:
        """Neither a key nor a fal URL: run against the built-in emulator (backend.py)."""
        return not self.fal_key and not self.fal_url

    def __repr__(self) -> str:  # the key never shows, not even masked
        key = "set" if self.fal_key else "unset"
        return (
            f"Settings(fal_key=<{key}>, download_dir={str(self.download_dir)!r}, "
            f"upload_cache_enabled={self.upload_cache_enabled}, db_path={str(self.db_path)!r}, "
            f"fal_url={self.fal_url!r}, max_cost={self.max_cost!r}, sidecars={self.sidecars})"
        )


def yes_no(value: str) -> bool | None:
    """The one reading of a yes/no word (any case, spaces around): True, False, or None when
    ``value`` is neither (the caller decides: :func:`parse_bool` refuses it)."""
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def parse_bool(name: str, value: str) -> bool:
    """A setting's yes/no value; anything else is a ConfigError naming the setting."""
    answer = yes_no(value)
    if answer is not None:
        return answer
    raise ConfigError(
        f"{name}={value!r} is not a yes/no value. Use one of: true, false, 1, 0, yes, no."
    )


def parse_fal_url(name: str, value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"{name}={value!r} is not a base URL. Use http(s)://host[:port], e.g. "
            f"http://127.0.0.1:8765 for `i2vkit emulator`, or unset it to use fal.ai."
        )
    return value.strip().rstrip("/")


NO_CAP_WORDS = {"none", "off", "no"}


def parse_max_cost(name: str, value: str) -> float | None:
    """A spend cap in US$ (``5``, ``12.50``, ``$20``); ``none``/``off`` means no cap."""
    word = value.strip().lower().lstrip("$").replace(",", "")
    if word in NO_CAP_WORDS:
        return None
    try:
        cap = float(word)
    except ValueError:
        cap = -1.0
    if not cap >= 0 or cap == float("inf"):  # also refuses nan
        raise ConfigError(
            f"{name}={value!r} is not an amount in US$. Use a number such as 5 or 12.50 (the "
            "most this run may add), or none for no cap."
        )
    return cap


def read_fal_key(get: Callable[[str], str | None]) -> str | None:
    """FAL_KEY, or FAL_KEY_ID and FAL_KEY_SECRET together, checked for fal's ``<id>:<secret>``
    shape. A half-set pair or a key without its colon is an error, not demo mode: silently
    running the free emulator (or sending a key fal will reject) hides the mistake."""
    key = get("FAL_KEY")
    key_id, secret = get("FAL_KEY_ID"), get("FAL_KEY_SECRET")
    if key is None and (key_id or secret):
        if not (key_id and secret):
            missing, present = (
                ("FAL_KEY_SECRET", "FAL_KEY_ID") if key_id else ("FAL_KEY_ID", "FAL_KEY_SECRET")
            )
            raise ConfigError(
                f"{present} is set but {missing} is not: set both (the two halves of a key "
                "from the Keys page of your fal dashboard), or set FAL_KEY=<id>:<secret> instead."
            )
        key = f"{key_id}:{secret}"
    if key is None:
        return None
    if key != key.strip() or any(c.isspace() for c in key):
        raise ConfigError(
            "FAL_KEY contains white space. Copy the key again from the Keys page of your fal "
            "dashboard (it looks like <id>:<secret>)."
        )
    key_id, colon, secret = key.partition(":")
    if not (colon and key_id and secret):
        raise ConfigError(
            "FAL_KEY is not a fal key: a key has two parts joined by a colon, <id>:<secret>. "
            "Copy the whole key again from the Keys page of your fal dashboard (the value is "
            "not shown here)."
        )
    return key


def check_dotenv(path: Path) -> None:
    """python-dotenv only logs malformed lines; we stop, because a skipped line is a lost setting."""
    with open(path, encoding="utf-8-sig") as stream:
        for binding in parse_stream(stream):
            if binding.error:
                line = binding.original.line
                raise ConfigError(
                    f"{path}: line {line} is not KEY=value ({binding.original.string.strip()[:40]!r}). "
                    "Fix or remove that line; quote values that contain spaces or '#'."
                )


def load_dotenv_values(env_file: str | os.PathLike | None) -> tuple[dict[str, str], Path | None]:
    if env_file is None:
        found = find_dotenv(usecwd=True)
        env_file = found or None
    if env_file is None:
        return {}, None
    path = Path(env_file)
    if not path.is_file():
        return {}, None
    check_dotenv(path)
    values = {k: v for k, v in dotenv_values(path, encoding="utf-8-sig").items() if v is not None}
    return values, path


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: str | os.PathLike | None = None
) -> Settings:
    """Read settings; `environ` defaults to os.environ and wins over the `.env` file."""
    file_values, path = load_dotenv_values(env_file)
    env = {**file_values, **(os.environ if environ is None else environ)}

    def get(name: str) -> str | None:
        value = env.get(name)
        return value if value not in (None, "") else None

    key = read_fal_key(get)
    cache = get("UPLOAD_CACHE_ENABLED")
    max_cost = get("I2VKIT_MAX_COST")
    fal_url = get("I2VKIT_FAL_URL")
    db = get("I2VKIT_DB")
    sidecars = get("I2VKIT_SIDECARS")
    return Settings(
        fal_key=key,
        download_dir=Path(get("AUTO_DOWNLOAD_DIR") or "downloads").expanduser(),
        upload_cache_enabled=True if cache is None else parse_bool("UPLOAD_CACHE_ENABLED", cache),
        db_path=Path(db).expanduser() if db else default_db_path(),
        fal_url=parse_fal_url("I2VKIT_FAL_URL", fal_url) if fal_url else None,
        env_file=path,
        max_cost=parse_max_cost("I2VKIT_MAX_COST", max_cost) if max_cost else None,
        sidecars=True if sidecars is None else parse_bool("I2VKIT_SIDECARS", sidecars),
    )


def redact(text: str, key: str | None) -> str:
    """Remove a key (and its secret half) from any text before it is shown or stored."""
    if not key:
        return text
    for secret in {key, *key.split(":")[1:]}:
        if len(secret) >= 6:
            text = text.replace(secret, "***")
    return text
