"""The notebook's spending confirmation (issue 13): a plan the spend cap refuses says so, with
the cap, the plan's cost and what to do, in the same words as `i2vkit bulk`; a plan nobody
confirmed still says "not confirmed". In-process, on a real plan, ledger and emulator."""

from __future__ import annotations

import dataclasses

import pytest
from helpers import make_images, plan_in

from i2vkit import notebook as nbk
from i2vkit.backend import backend_for
from i2vkit.exits import EXIT_INPUT
from i2vkit.models import get_model
from i2vkit.notebook import form
from i2vkit.planning import BatchRequest
from i2vkit.spending import confirm_spend
from i2vkit.workspace import Workspace

# what the default model (`wan`, which follows fal) costs a clip, from the catalogue
WAN = get_model(BatchRequest.model).estimate_cost()


@pytest.fixture
def in_a_kernel(monkeypatch):
    """The kernel path of `confirmed` (the script path exits like the CLI): only the question
    "am I in a Jupyter kernel?" is answered yes; planning, the ledger and the backend are real."""
    monkeypatch.setattr(form, "in_kernel", lambda: True)
    monkeypatch.delenv("I2VKIT_YES", raising=False)


def plan_of(tmp_path, settings, images: int, prompts: int):
    make_images(tmp_path / "pics", images)
    spec = BatchRequest(tmp_path / "pics", prompts="\n".join(f"p{i}" for i in range(prompts)))
    return plan_in(spec, settings)  # the default model: US$ WAN a video


def test_a_plan_over_the_spend_cap_says_the_cap_refused_it(
    in_a_kernel, tmp_path, emulator, settings
):
    capped = dataclasses.replace(settings, max_cost=1.0)  # I2VKIT_MAX_COST=1
    plan = plan_of(tmp_path, capped, 2, 2)  # 4 videos: above the US$ 1 cap
    with pytest.raises(nbk.SpendNotConfirmed) as refused:
        nbk.confirmed(plan, Workspace.open(capped), yes=True)  # a yes does not lift a cap
    message = str(refused.value)
    assert "not confirmed" not in message
    assert f"US$ {4 * WAN:.2f}" in message and "spend cap of US$ 1.00" in message
    assert "I2VKIT_MAX_COST" in message and "raise the cap" in message
    said: list[str] = []  # the CLI's words for the same plan: one message, not two
    assert confirm_spend(plan, backend_for(capped), say=said.append) == EXIT_INPUT
    assert message == "\n".join(said)
    assert emulator.stats()["uploads"] == 0 and emulator.stats()["submits"]["total"] == 0


def test_a_plan_nobody_confirmed_still_says_not_confirmed(in_a_kernel, tmp_path, settings):
    plan = plan_of(tmp_path, settings, 4, 4)  # 16 videos: above the US$ 5 that asks
    assert 16 * WAN > 5
    with pytest.raises(nbk.SpendNotConfirmed, match=f"US\\$ {16 * WAN:.2f} was not confirmed"):
        nbk.confirmed(plan, Workspace.open(settings))  # pytest's stdin cannot answer: no
    assert nbk.confirmed(plan, Workspace.open(settings), yes=True) is plan
