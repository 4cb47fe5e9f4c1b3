"""Every clip carries how it was made: its recipe in the mp4's own tags and in a sidecar.

Why: a clip copied out of the output folder (to an editor, a client, a drive) leaves the
ledger behind. The recipe (endpoint, fal request id, the exact arguments sent, the source
image's name and sha256, prompt, batch, take, times, cost, i2vkit's version) travels in
the file: remuxed into the container's metadata (no re-encode, the same packets), before
the rename that makes the video visible, so a finished name always has its recipe.

mp4 keeps only the tags ffmpeg's mov muxer knows unless ``movflags=use_metadata_tags``;
with it the whole recipe is one ``i2vkit`` tag (JSON), and the known ``comment`` tag holds
it too, for tools that read only the standard keys. ``NAME.json`` beside the video says
the same (``I2VKIT_SIDECARS=0`` turns sidecars off; the tags stay). Once `i2vkit cost`
learns what fal billed a request, :func:`note_billed` writes it into both.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import __version__
from .errors import InputError
from .refs import image_name, is_remote
from .rows import JobRow

TAG = "i2vkit"
RECIPE_VERSION = 1


def recipe_of(
    job: JobRow,
    *,
    batch_name: str | None = None,
    estimated: float | None = None,
    billed: float | None = None,
    fetched_at: str | None = None,
) -> dict[str, Any]:
    """The recipe of a job's video, from its ledger row (as it was sent to fal)."""
    arguments = json.loads(job["arguments"] or "null")
    image = job["image_path"]
    end = job.get("end_image_path")
    return {
        "recipe": RECIPE_VERSION,
        "i2vkit_version": __version__,
        "endpoint_id": job["endpoint_id"],
        "model": job["model"],
        "request_id": job.get("request_id"),
        "arguments": arguments,
        "seed": job.get("seed"),
        "prompt": job["prompt"],
        "image": {
            "file": image_name(image),
            "path": None if is_remote(image) else image,
            "sha256": job.get("image_hash"),
            "url": job.get("image_url"),
        },
        "end_image": end,
        "options": json.loads(job["options"] or "{}"),
        "batch": {"id": job["batch_id"], "name": batch_name},
        "job_id": job["id"],
        "take": job.get("take") or 1,
        "shot_name": job.get("shot_name"),
        "backend": job.get("backend"),
        "times": {
            "created": job.get("created_at"),
            "submitted": job.get("submitted_at"),
            "started": job.get("started_at"),
            "completed": job.get("completed_at"),
            "fetched": fetched_at,
        },
        "cost": {"estimated_usd": estimated, "billed_usd": billed},
    }


def _encode(recipe: Mapping[str, Any]) -> str:
    return json.dumps(recipe, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def tag_video(path: Path, recipe: Mapping[str, Any]) -> int:
    """Write `recipe` into the mp4 at `path` (see :func:`_remux`); its size. A file already
    carrying the recipe of the same request is left alone (a `.part` tagged before a
    rename that failed)."""
    carried = read_recipe(path)
    if carried is None or carried.get("request_id") != recipe.get("request_id"):
        _remux(path, recipe)
    return path.stat().st_size


def _remux(path: Path, recipe: Mapping[str, Any]) -> None:
    """The mp4 at `path` with `recipe` in its tags, packets copied (no re-encode).

    The remux goes to a hidden file beside it, flushed to disk, then replaces `path`: an
    interruption at any point leaves `path` a whole video, with the old tags or the new.
    """
    import av

    tmp = path.with_name(f".{path.name}.tagging")
    text = _encode(recipe)
    try:
        with av.open(str(path), "r") as src:
            options = {"movflags": "use_metadata_tags"}
            with av.open(str(tmp), "w", format="mp4", options=options) as dst:
                streams = {}
                for stream in src.streams:
                    if stream.type in ("video", "audio"):
                        streams[stream.index] = dst.add_stream_from_template(stream)
                dst.metadata.update({k: v for k, v in src.metadata.items() if k != TAG})
                dst.metadata.update({TAG: text, "comment": text})
                for packet in src.demux(*[src.streams[i] for i in streams]):
                    if packet.dts is None:
                        continue
                    packet.stream = streams[packet.stream.index]
                    dst.mux(packet)
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_recipe(path: str | os.PathLike) -> dict[str, Any] | None:
    """The recipe an mp4's tags carry, or None for a video without one."""
    import av

    try:
        with av.open(str(path), "r") as container:
            tags = dict(container.metadata)
    except (av.FFmpegError, OSError):
        return None
    for key in (TAG, "comment"):
        try:
            value = json.loads(tags.get(key) or "")
        except ValueError:
            continue
        if isinstance(value, dict) and "recipe" in value:
            return value
    return None


def sidecar_path(video: Path) -> Path:
    """``NAME.json`` beside ``NAME.mp4``."""
    return video.with_suffix(".json")


def write_sidecar(video: Path, recipe: Mapping[str, Any]) -> Path:
    """The recipe as ``NAME.json`` beside the video (written whole, then renamed)."""
    dest = sidecar_path(video)
    tmp = dest.with_name(f".{dest.name}.part")
    tmp.write_text(json.dumps(recipe, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, dest)
    return dest


def note_billed(video: Path, request_id: str, billed: float) -> bool:
    """Write what fal billed `request_id` into its video's tags (remuxed, see
    :func:`_remux`) and sidecar, where they do not say it yet. False when the video is not
    there: moved away by its user, or another clip in its place (left alone)."""
    if not video.is_file():
        return False
    carried = read_recipe(video)  # None: a video whose tags could not be written
    if carried is not None:
        if carried.get("request_id") != request_id:
            return False
        if _with_billed(carried, billed):
            _remux(video, carried)
    try:
        recipe = json.loads(sidecar_path(video).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True  # no sidecar (I2VKIT_SIDECARS=0, or removed): the tags say it
    mine = isinstance(recipe, dict) and recipe.get("request_id") == request_id
    if mine and _with_billed(recipe, billed):
        write_sidecar(video, recipe)
    return True


def _with_billed(recipe: dict[str, Any], billed: float) -> bool:
    """Put `billed` into the recipe; False when it said so already."""
    cost = recipe.setdefault("cost", {})
    if cost.get("billed_usd") == billed:
        return False
    cost["billed_usd"] = billed
    return True


def recipe_from_file(video: str | os.PathLike) -> dict[str, Any]:
    """A clip's recipe from the file alone: its tags, else its sidecar; InputError if none."""
    path = Path(video)
    if not path.is_file():
        raise InputError(f"{path}: no such video file.")
    recipe = read_recipe(path)
    if recipe is None and sidecar_path(path).is_file():
        try:
            recipe = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
        except ValueError:
            recipe = None
    if not isinstance(recipe, dict):
        raise InputError(
            f"{path} carries no i2vkit recipe (no tags, no {sidecar_path(path).name}); only "
            "videos i2vkit downloaded have one."
        )
    return recipe


def describe(recipe: Mapping[str, Any]) -> str:
    """The recipe as `i2vkit info` prints it: the readable lines, then the exact arguments."""
    image = recipe.get("image") or {}
    cost = recipe.get("cost") or {}
    times = recipe.get("times") or {}
    batch = recipe.get("batch") or {}

    def money(value: Any) -> str:
        return f"US$ {value:.2f}" if isinstance(value, int | float) else "unknown"

    lines = [
        f"model:      {recipe.get('model')} ({recipe.get('endpoint_id')})",
        f"request id: {recipe.get('request_id')}",
        f"prompt:     {recipe.get('prompt')}",
        f"image:      {image.get('file')} (sha256 {image.get('sha256')})",
        f"image url:  {image.get('url')}",
        f"seed:       {recipe['seed'] if recipe.get('seed') is not None else 'none sent'}",
        f"batch:      {batch.get('name') or batch.get('id')}, job {recipe.get('job_id')}, "
        f"take {recipe.get('take')}",
        f"submitted:  {times.get('submitted')}  completed: {times.get('completed')}",
        f"cost:       estimated {money(cost.get('estimated_usd'))}, "
        f"billed {money(cost.get('billed_usd'))}",
        f"made by:    i2vkit {recipe.get('i2vkit_version')} on {recipe.get('backend')}",
        "arguments sent:",
        json.dumps(recipe.get("arguments"), ensure_ascii=False, indent=2),
    ]
    return "\n".join(lines)
