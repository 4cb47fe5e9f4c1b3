"""Turn images and prompts into the list of jobs a batch will run.

Pairing is where a typo becomes a bill: 50 images x 40 prompts is 2,000 paid
videos. So the order is fixed and documented (image-major, so each image's
videos finish together), and one-to-one pairing with unequal counts fails
before anything is submitted instead of silently dropping the extras.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .errors import InputError
from .images import ImageFile, ScanResult

Pairing = Literal["all", "one_to_one"]

_MODES: dict[str, Pairing] = {
    "all": "all",
    "all_combinations": "all",
    "one_to_one": "one_to_one",
}
ACCEPTED_MODES: tuple[str, ...] = ("all", "all_combinations", "one_to_one", "one-to-one")


@dataclass(frozen=True)
class Pair:
    """One job to run: an image with a prompt. Indexes are 0-based."""

    index: int  # position in the batch
    image: ImageFile
    prompt: str
    prompt_index: int  # position in the prompts list


def normalize_pairing(mode: str) -> Pairing:
    """Map the spellings users type ("one-to-one", "All Combinations") to a canonical mode."""
    key = str(mode).strip().lower().replace("-", "_").replace(" ", "_")
    try:
        return _MODES[key]
    except KeyError:
        raise InputError(
            f"Unknown pairing mode {mode!r}. Use one of: {', '.join(ACCEPTED_MODES)} "
            "('all' runs every image with every prompt; 'one_to_one' pairs the first "
            "image with the first prompt, and so on)."
        ) from None


def pair(
    images: Sequence[ImageFile] | ScanResult,
    prompts: Sequence[str],
    mode: str = "all",
) -> list[Pair]:
    """Build the job list.

    ``all``: every image with every prompt, image-major (img1 x p1, img1 x p2, ...,
    img2 x p1, ...), so 5 images x 6 prompts = 30 jobs. ``one_to_one``: image *i*
    with prompt *i*; the counts must be equal. Raises :class:`InputError` on empty
    inputs, unequal one-to-one counts or an unknown mode.
    """
    canonical = normalize_pairing(mode)
    image_list = list(images.images if isinstance(images, ScanResult) else images)
    prompt_list = list(prompts)
    if not image_list:
        raise InputError(
            "No images to pair: the image list is empty. Scan a folder that holds images."
        )
    if not prompt_list:
        raise InputError("No prompts to pair: the prompt list is empty. Write one prompt per line.")

    if canonical == "one_to_one":
        n_img, n_pr = len(image_list), len(prompt_list)
        if n_img != n_pr:
            diff = abs(n_img - n_pr)
            fix = (
                f"Add {diff} prompt(s) or remove {diff} image(s)"
                if n_img > n_pr
                else f"Remove {diff} prompt(s) or add {diff} image(s)"
            )
            raise InputError(
                "one-to-one pairing needs as many prompts as images: "
                f"{n_img} image{'s' if n_img != 1 else ''}, {n_pr} prompt{'s' if n_pr != 1 else ''}. "
                f"{fix}, or run every image with every prompt: drop --one-to-one (in the "
                "notebook form: choose 'all combinations')."
            )
        return [
            Pair(index=i, image=img, prompt=prompt, prompt_index=i)
            for i, (img, prompt) in enumerate(zip(image_list, prompt_list, strict=True))
        ]

    pairs: list[Pair] = []
    for img in image_list:
        for p_index, prompt in enumerate(prompt_list):
            pairs.append(Pair(index=len(pairs), image=img, prompt=prompt, prompt_index=p_index))
    return pairs
