"""The notebook form keeps its values in the ledger (notebook/memory.py): a new form on the
same notebook folder and ledger (Run All, a new kernel) shows what the user set; the
environment still wins; Reset forgets. Every labelled widget carries its help."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from i2vkit import notebook as nbk
from i2vkit.errors import InputError
from i2vkit.planning import FIELDS
from i2vkit.planning.vary import parse_vary

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture
def widgets_on(monkeypatch, tmp_path):
    from i2vkit.notebook import display, form, preview

    for f in FIELDS:
        monkeypatch.delenv(f.env, raising=False)
    monkeypatch.delenv("AUTO_DOWNLOAD_DIR", raising=False)
    monkeypatch.setenv("I2VKIT_DB", str(tmp_path / "ledger.db"))
    for module in (nbk, display, form, preview):
        for name in ("in_kernel", "widgets_available"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, lambda: True)


def change_everything(form) -> None:
    form.w["family"].value = "kling"
    versions = [value for _, value in form.w["model"].options]
    form.w["model"].value = versions[1]
    enum = next(f for f in form.model_options.fields.values() if f.kind == "enum")
    enum.widget.value = next(v for _, v in enum.widget.options if v != enum.widget.value)
    form.w["compare"].value = ["ltx"]
    fps = form.compare_options[0][2].fields["fps"].vary  # ltx's fps, varied over 24 and 48
    fps.switch.value = True
    for check in fps.checks:
        check.value = check.description.split()[0] in ("24", "48")
    form.w["takes"].value = 3
    form.w["pairing"].value = "one_to_one"
    form.w["prompts"].value = "one\ntwo"  # typing switches the source to the typed text
    form.flush()


def test_a_new_form_shows_what_the_user_set_and_reset_forgets_it(widgets_on, monkeypatch):
    form = nbk.BatchForm(base=NOTEBOOKS)
    start = form.values()
    change_everything(form)
    changed = form.values()
    assert changed != start and changed["options"], changed
    assert changed["vary"] == {"ltx:fps": ["24", "48"]} and not form.w["vary"].value, changed

    again = nbk.BatchForm(base=NOTEBOOKS)  # Run All, or a restarted kernel
    assert again.values() == changed
    assert again.request() == form.request()
    assert again.compare_options[0][2].fields["fps"].vary.values() == ["24", "48"]

    monkeypatch.setenv("I2VKIT_TAKES", "5")  # a variable set for this session wins
    assert nbk.BatchForm(base=NOTEBOOKS).values()["takes"] == 5
    monkeypatch.delenv("I2VKIT_TAKES")

    again.reset()
    assert again.values() == start
    assert nbk.BatchForm(base=NOTEBOOKS).values() == start  # forgotten in the ledger too


def test_another_ledger_or_folder_starts_from_the_defaults(widgets_on, monkeypatch, tmp_path):
    form = nbk.BatchForm(base=NOTEBOOKS)
    start = form.values()
    change_everything(form)
    monkeypatch.setenv("I2VKIT_DB", str(tmp_path / "other.db"))
    assert nbk.BatchForm(base=NOTEBOOKS).values() == start


def test_every_label_has_its_help(widgets_on):
    """ipywidgets 8 shows a labelled widget's tooltip nowhere: the label carries it."""
    import ipywidgets as w

    form = nbk.BatchForm(base=NOTEBOOKS)
    form.w["compare"].value = ["ltx"]
    seen = []

    def walk(widget) -> None:
        for child in getattr(widget, "children", ()):
            walk(child)
        label = getattr(widget, "description", "")
        if label and not isinstance(widget, w.Button | w.ToggleButton):
            seen.append(label)
            help_text = re.search(r"title='([^']*)'", label)
            assert help_text and help_text.group(1).strip(), f"no help on {label!r}"

    walk(form.widget)
    texts = {re.sub(r"<[^>]+>", "", label) for label in seen}
    assert {f.label for f in FIELDS if f.label and f.name != "model"} <= texts | {"Version"}
    assert {"Model family", "Version", "Compare with"} <= texts


@pytest.mark.parametrize(
    "given, ticked, typed",
    [
        (
            "duration=5,10 cfg_scale=0.5,0.7",
            {"duration": ["5", "10"], "cfg_scale": ["0.5", "0.7"]},
            "",
        ),
        ("duration=5,99", {}, "duration=5,99"),  # 99 is no kling duration: shown as typed
        ("wan:duration=5,10", {}, "wan:duration=5,10"),  # not a model of the batch
    ],
)
def test_i2vkit_vary_ticks_the_vary_switches(widgets_on, monkeypatch, given, ticked, typed):
    """I2VKIT_VARY (and --vary in the script) fills the option widgets' *vary* switches it
    fits, their own widgets greyed out; the rest stays text in *More to vary*, where the
    plan says what is wrong with it. The request is the one the variable means."""
    monkeypatch.setenv("I2VKIT_MODEL", "kling")
    monkeypatch.setenv("I2VKIT_VARY", given)
    form = nbk.BatchForm(base=NOTEBOOKS)
    fields = form.model_options.fields
    shown = {n: f.vary.values() for n, f in fields.items() if f.vary and f.vary.values()}
    assert shown == ticked and form.w["vary"].value == typed
    assert all(fields[n].widget.disabled for n in ticked)
    assert form.request().vary == parse_vary(given)  # as `--vary` and the variable mean it


def test_a_field_with_a_few_values_is_a_dropdown_of_them(widgets_on, monkeypatch):
    """Queue priority and model fallbacks take one of a few words: the form offers those
    words (not a text box to type them in), and what is picked is what the CLI's flag
    would send. A value from the environment outside the list is kept, for the request to
    refuse in the CLI's words, not dropped."""
    import ipywidgets as w

    choices = [f for f in FIELDS if f.kind == "choice" and f.label]
    assert {f.name for f in choices} >= {"priority", "fallbacks"}
    form = nbk.BatchForm(base=NOTEBOOKS)
    for f in choices:
        widget = form.w[f.name]
        assert isinstance(widget, w.Dropdown), (f.name, type(widget))
        assert list(widget.options) == list(f.choices) and widget.value == f.default
    form.w["priority"].value = "low"
    form.w["fallbacks"].value = "off"
    request = form.request()
    assert (request.priority, request.fallbacks) == ("low", "off")

    monkeypatch.setenv("I2VKIT_PRIORITY", "urgent")
    odd = nbk.BatchForm(base=NOTEBOOKS)
    assert odd.w["priority"].value == "urgent"
    with pytest.raises(InputError, match="urgent.*use one of normal, low"):
        odd.request()
