"""Settings: each bad value names the variable and what it accepts; the key never shows."""

from pathlib import Path

import pytest

from i2vkit.backend import backend_for
from i2vkit.config import load_settings, redact
from i2vkit.errors import ConfigError


def test_defaults_without_env(tmp_path):
    s = load_settings({}, env_file=tmp_path / "missing.env")
    assert s.fal_key is None
    assert s.download_dir == Path("downloads")
    assert s.upload_cache_enabled is True
    assert s.fal_url is None
    backend = backend_for(s)
    assert s.demo and backend.label == "emulator" and not backend.billed


@pytest.mark.parametrize(
    "value,expected",
    [("true", True), ("1", True), ("yes", True), ("FALSE", False), ("0", False), ("no", False)],
)
def test_upload_cache_enabled_words(tmp_path, value, expected):
    s = load_settings({"UPLOAD_CACHE_ENABLED": value}, env_file=tmp_path / "none")
    assert s.upload_cache_enabled is expected


def test_bad_bool_names_variable_and_values(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_settings({"UPLOAD_CACHE_ENABLED": "maybe"}, env_file=tmp_path / "none")
    assert "UPLOAD_CACHE_ENABLED" in str(err.value)
    assert "true, false, 1, 0, yes, no" in str(err.value)


@pytest.mark.parametrize("value", ["localhost:8000", "ftp://x", "http://"])
def test_bad_fal_url(tmp_path, value):
    with pytest.raises(ConfigError, match="I2VKIT_FAL_URL"):
        load_settings({"I2VKIT_FAL_URL": value}, env_file=tmp_path / "none")


def test_fal_url_sets_backend_and_strips_slash(tmp_path):
    s = load_settings({"I2VKIT_FAL_URL": "http://127.0.0.1:9/"}, env_file=tmp_path / "none")
    assert s.fal_url == "http://127.0.0.1:9"
    backend = backend_for(s)
    assert backend.label == "http://127.0.0.1:9" and backend.url_scope == "http://127.0.0.1:9"
    assert not s.demo
    # a fal-compatible URL may be a proxy of fal: never assumed free
    assert backend.billed


def test_real_fal_is_billed_and_scoped_to_fal(tmp_path):
    backend = backend_for(load_settings({"FAL_KEY": "id:secret"}, env_file=tmp_path / "none"))
    assert (backend.label, backend.url_scope, backend.billed) == ("fal", "fal", True)


def test_key_with_whitespace_is_rejected_without_echoing_it(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_settings({"FAL_KEY": "abc:def secret123"}, env_file=tmp_path / "none")
    assert "secret123" not in str(err.value)
    assert "FAL_KEY" in str(err.value)


def test_dotenv_file_and_env_precedence(tmp_path):
    env = tmp_path / ".env"
    env.write_text(
        "\ufeffFAL_KEY=id:fromfile\r\nAUTO_DOWNLOAD_DIR=videos\r\nUPLOAD_CACHE_ENABLED=no\r\n",
        encoding="utf-8",
    )
    s = load_settings({"AUTO_DOWNLOAD_DIR": "fromenv"}, env_file=env)
    assert s.fal_key == "id:fromfile"
    assert s.download_dir == Path("fromenv")
    assert s.upload_cache_enabled is False
    assert "fromfile" not in repr(s)


def test_malformed_dotenv_line_names_file_and_line(tmp_path):
    env = tmp_path / ".env"
    env.write_text("AUTO_DOWNLOAD_DIR=videos\nthis is not a setting\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings({}, env_file=env)
    assert str(env) in str(err.value)
    assert "line 2" in str(err.value)


def test_key_id_and_secret_pair(tmp_path):
    s = load_settings({"FAL_KEY_ID": "abc", "FAL_KEY_SECRET": "xyz"}, env_file=tmp_path / "none")
    assert s.fal_key == "abc:xyz"


def test_redact_removes_key_and_secret():
    key = "keyid123:supersecret456"
    text = f"Authorization: Key {key} and the secret alone supersecret456"
    out = redact(text, key)
    assert key not in out and "supersecret456" not in out


# -- keys that cannot work, and the spend cap (issue 14, item 6 and --max-cost) -----------


def test_key_without_colon_is_refused_without_echoing_it(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_settings({"FAL_KEY": "justonelongtoken42"}, env_file=tmp_path / "none")
    message = str(err.value)
    assert "FAL_KEY" in message and "<id>:<secret>" in message
    assert "justonelongtoken42" not in message
    for half_missing in ("id:", ":secret"):
        with pytest.raises(ConfigError):
            load_settings({"FAL_KEY": half_missing}, env_file=tmp_path / "none")


@pytest.mark.parametrize(
    "given, missing",
    [({"FAL_KEY_ID": "abc123"}, "FAL_KEY_SECRET"), ({"FAL_KEY_SECRET": "xyz789"}, "FAL_KEY_ID")],
)
def test_half_a_key_pair_is_an_error_not_demo_mode(tmp_path, given, missing):
    with pytest.raises(ConfigError) as err:
        load_settings(given, env_file=tmp_path / "none")
    message = str(err.value)
    assert f"{missing} is not" in message
    assert not any(value in message for value in given.values())


def test_max_cost_from_the_environment(tmp_path):
    def cap(value):
        return load_settings({"I2VKIT_MAX_COST": value}, env_file=tmp_path / "none").max_cost

    assert cap("5") == 5.0 and cap("$12.50") == 12.5 and cap("0") == 0.0
    assert cap("none") is None and load_settings({}, env_file=tmp_path / "none").max_cost is None
    for bad in ("five", "-1", "nan", "inf"):
        with pytest.raises(ConfigError) as err:
            cap(bad)
        assert "I2VKIT_MAX_COST" in str(err.value) and "US$" in str(err.value)


@pytest.mark.parametrize(
    "word,expected",
    [("true", True), (" YES ", True), ("y", True), ("On", True), ("1", True),
     ("false", False), ("No", False), ("n", False), ("OFF", False), ("0", False),
     ("", None), ("maybe", None), ("2", None)],
)  # fmt: skip
def test_one_yes_no_reading(word, expected):
    from i2vkit.config import parse_bool, yes_no

    assert yes_no(word) is expected
    if expected is None:
        with pytest.raises(ConfigError, match=r"I2VKIT_X=.* is not a yes/no value"):
            parse_bool("I2VKIT_X", word)
    else:
        assert parse_bool("I2VKIT_X", word) is expected


@pytest.mark.parametrize(
    "value,plain", [("1", True), ("yes", True), ("0", False), ("false", False)]
)
def test_i2vkit_plain_0_means_no(monkeypatch, value, plain):
    """I2VKIT_PLAIN=0 once forced the text fallback like =1 (any non-empty text did)."""
    import sys
    import types

    from i2vkit.notebook import display

    shell = types.SimpleNamespace(kernel=object())
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    monkeypatch.setenv("I2VKIT_PLAIN", value)
    assert display.in_kernel() is not plain
    monkeypatch.delenv("I2VKIT_PLAIN")
    assert display.in_kernel() is True
