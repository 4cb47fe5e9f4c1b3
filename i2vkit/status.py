"""The job lines of `i2vkit status BATCH`: each job with its model, take and keeper flag.

Why each line names them: in a batch that compares models and takes, one image and prompt
appear on many lines, and the id a user passes to `i2vkit keep` or reads in the comparison
grid is only useful when the line says which model and take it is, and whether it is
already a keeper (the ledger's ``jobs.keeper``, the same flag the notebook's checkboxes
write).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .refs import image_name
from .rows import JobRow

IMAGE_WIDTH = 24
PROMPT_WIDTH = 30
HEADER = ("id", "status", "image", "prompt", "model", "take", "keeper", "file, error or request")


def job_lines(jobs: Sequence[JobRow]) -> list[str]:
    """A header, then one aligned line per ledger job row (in the order given)."""
    width = max([len("model"), *(len(str(j["model"])) for j in jobs)])

    def line(values: Sequence[Any]) -> str:
        id_, status, image, prompt, model, take, keeper, where = values
        return (
            f"{id_:>6} {status:<11} {image[:IMAGE_WIDTH]:<{IMAGE_WIDTH}} "
            f"{prompt[:PROMPT_WIDTH]:<{PROMPT_WIDTH}} {model:<{width}} {take:>4} "
            f"{keeper:<6} {where}"
        ).rstrip()

    out = [line(HEADER)]
    for j in jobs:
        where = j["local_file"] or j["error"] or j["request_id"] or ""
        out.append(
            line(
                (
                    j["id"],
                    j["status"],
                    image_name(j["image_path"]),
                    j["prompt"],
                    str(j["model"]),
                    str(j.get("take") or 1),
                    "yes" if j.get("keeper") else "",
                    where,
                )
            )
        )
    return out


def money_line(jobs: Sequence[JobRow]) -> str:
    """``cost (what fal may bill): US$ 3.20 (8 requests; 12 cancelled while queued not
    billed)``: the batch's money in the words of the run's summary and the report."""
    from .billing import tally
    from .compare import row_cost

    return f"cost (what fal may bill, estimated): {tally(jobs, row_cost).describe()}"
