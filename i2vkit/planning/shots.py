"""Shot lists: a CSV or JSONL file where each row is one shot, planned as one job per row.

A shot list is what people who work for a client or a team keep in a spreadsheet:
``image`` (a path relative to the file, or an http(s) URL), ``prompt``, and optionally
``model``, ``end_image``, ``takes``, ``name`` and any model option as its own column
(``duration``, ``resolution``, ``seed``, ...). Spreadsheets export CSV in their own
ways, so a UTF-8 BOM, ``;`` or tab delimiters and prompts with line breaks in quotes
are all read. Every row is checked before anything is uploaded, and every problem is
reported at once, each naming the file, the row (as the spreadsheet numbers it: the
header is row 1) and the column.

:func:`write_shots` turns a folder x prompts plan into a shot list to edit.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..csvcells import read_cell, safe_cell
from ..errors import InputError, ModelError, ShotListError
from ..images import DEFAULT_MAX_PIXELS, ImageFile, Skipped, Trusted, check_image
from ..models import END_IMAGE_OPTION, ModelSpec, get_model
from ..refs import checked_url, is_data_uri, is_remote, looks_like_url
from ..variables import default_seed, expand_lines, uses_random
from ..workspace import Workspace
from .folder import check_takes, model_status_notes, output_dir_of, trusted_by, with_end_image
from .identity import shot_variant
from .options import model_names, split_end_image, split_options
from .plan import Plan, PlannedJob, expand_takes
from .request import BatchRequest

#: Columns with a meaning of their own; every other column is a model option.
RESERVED = ("image", "prompt", "model", "end_image", "takes", "name")
DELIMITERS = (",", ";", "\t")


@dataclass
class ShotRow:
    """One row as read: where it is (for messages) and its non-empty cells."""

    where: str  # "row 3" (CSV, as a spreadsheet numbers it) or "line 3" (JSONL)
    cells: dict[str, Any]


def read_shots(path: str | os.PathLike) -> list[ShotRow]:
    """The rows of a CSV (``.csv``, ``.tsv``, ``.txt``) or JSONL (``.jsonl``, ``.ndjson``)
    shot list; blank rows are skipped. Raises :class:`InputError` for a file that cannot
    be read at all (missing, not UTF-8, no ``image``/``prompt`` header)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"Shot list {path} does not exist. Pass --shots a CSV or JSONL file.")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"Shot list {path} is not UTF-8 text (byte {exc.start}). In Excel, save it as "
            "'CSV UTF-8 (Comma delimited)'; in other editors choose the UTF-8 encoding."
        ) from None
    except OSError as exc:
        raise InputError(f"Cannot read shot list {path}: {exc.strerror or exc}.") from None
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return _read_jsonl(path, text)
    return _read_csv(path, text)


def _read_jsonl(path: Path, text: str) -> list[ShotRow]:
    rows, problems = [], []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{path.name} line {n}: not JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(value, dict):
            problems.append(f"{path.name} line {n}: a JSON object is needed, not {value!r:.40}")
            continue
        cells = {_column(k): v for k, v in value.items() if v is not None and v != ""}
        rows.append(ShotRow(f"line {n}", cells))
    if problems:
        raise ShotListError(path, problems)
    return rows


def _read_csv(path: Path, text: str) -> list[ShotRow]:
    header_line = next((ln for ln in text.splitlines() if ln.strip()), "")
    delimiter = max(DELIMITERS, key=header_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    records = list(reader)
    while records and not any(c.strip() for c in records[0]):
        records.pop(0)
    if not records:
        raise InputError(f"Shot list {path} is empty: its first row must name the columns.")
    header = [_column(c) for c in records[0]]
    problems = []
    for name in ("image", "prompt"):
        if name not in header:
            problems.append(
                f"{path.name} row 1: no {name!r} column (the first row names the columns: "
                f"image, prompt, and optionally model, end_image, takes, name, options)"
            )
    dupes = sorted({c for c in header if c and header.count(c) > 1})
    if dupes:
        problems.append(f"{path.name} row 1: column(s) {', '.join(dupes)} appear more than once")
    if problems:
        raise ShotListError(path, problems)
    rows = []
    for n, record in enumerate(records[1:], start=2):
        if not any(c.strip() for c in record):
            continue
        if len(record) > len(header) and any(c.strip() for c in record[len(header) :]):
            problems.append(
                f"{path.name} row {n}: {len(record)} cells but {len(header)} columns "
                f"(a {delimiter!r} inside a value must be in double quotes)"
            )
            continue
        cells = {
            h: read_cell(c.strip()) for h, c in zip(header, record, strict=False) if h and c.strip()
        }
        rows.append(ShotRow(f"row {n}", cells))
    if problems:
        raise ShotListError(path, problems)
    return rows


def _column(name: Any) -> str:
    return str(name).strip().lstrip("\ufeff").strip().lower()


# ------------------------------------------------------------------------ planning


def plan_shots(
    request: BatchRequest, ws: Workspace, pins: Mapping[str, ModelSpec] | None = None
) -> Plan:
    """Plan one job per shot-list row (times its takes), checking every row first.

    ``pins``: family names this batch ran on an earlier endpoint (see ``pinning``).

    A row without ``model`` runs on each ``--model``. ``-o`` options apply to every row
    whose model has them; a row's own option columns win. Nothing is uploaded here.
    """
    path = request.path(request.shots)
    assert path is not None
    if request.vary:
        keys = ", ".join(request.vary)
        raise InputError(
            f"--vary {keys} does not apply to a shot list ({path}): a row varies in its own "
            f"cells, e.g. 5|10 in a duration column. Put the values there, or drop --vary."
        )
    rows = read_shots(path)
    if not rows:
        raise InputError(f"Shot list {path} has no rows below its header: add one shot per row.")
    problems: list[str] = []
    models: dict[str, ModelSpec] = {}
    default_models: list[ModelSpec] = []
    for name in model_names(request.model):
        try:
            default_models.append(_known(models, _model(name, pins)))
        except InputError as exc:
            raise InputError(f"--model {name}: {exc}") from None
    reader = _Rows(path, request, default_models, models, trusted_by(ws.store), problems)
    reader.default_seed = default_seed([str(r.cells.get("prompt", "")) for r in rows])
    reader.pins = pins or {}
    jobs = [job for row in rows for job in reader.jobs(row)]
    if problems:
        raise ShotListError(path, problems)
    seen: dict[tuple, int] = {}
    for j in jobs:
        j.occurrence = seen[j.identity] = seen.get(j.identity, -1) + 1
    planned = expand_takes(jobs)
    output_dir = output_dir_of(request, ws)
    ms = [models[e] for e in dict.fromkeys(j.model.endpoint_id for j in planned)]
    local = {j.image_ref: j.image for j in planned if j.image is not None}
    ends = {j.end_image_ref: j.end_image for j in planned if j.end_image is not None}
    return Plan(
        request=request,
        model=ms[0],
        options={},
        images=[i for i in local.values() if i is not None],
        skipped=[],
        prompts=list(dict.fromkeys(j.prompt for j in planned)),
        pairs=[],
        output_dir=output_dir,
        ledger=ws.settings.db_path,
        notes=model_status_notes(ms),
        jobs=planned,
        models=ms,
        model_options=[{} for _ in ms],
        end_images=[e for e in ends.values() if e is not None],
        shots=path,
        prompt_seed=reader.seed,
    )


def _model(name: str | ModelSpec, pins: Mapping[str, ModelSpec] | None) -> ModelSpec:
    """The model a name means, or the endpoint this batch ran it on (``pins``)."""
    if isinstance(name, str) and pins and name.strip().lower() in pins:
        return pins[name.strip().lower()]
    return get_model(name)


def _known(models: dict[str, ModelSpec], m: ModelSpec) -> ModelSpec:
    m.status_note()  # a shut-down endpoint is refused
    return models.setdefault(m.endpoint_id, m)


class _Rows:
    """Reads a shot list's rows into jobs, collecting every problem (file, row, column)."""

    def __init__(
        self,
        path: Path,
        request: BatchRequest,
        default_models: list[ModelSpec],
        models: dict[str, ModelSpec],
        trusted: Trusted,
        problems: list[str],
    ):
        self.path, self.request = path, request
        self.default_models, self.models = default_models, models
        self.trusted, self.problems = trusted, problems
        self.images: dict[str, ImageFile | str] = {}  # path -> checked image, or why not
        self.seed: int | None = None  # of random prompt picks, when a row has one
        self.default_seed = 0  # the seed when none is given: from all the rows' prompts
        self.pins: Mapping[str, ModelSpec] = {}

    def jobs(self, row: ShotRow) -> list[PlannedJob]:
        """The jobs of one row (one per model), or none with its problems added."""
        here = f"{self.path.name} {row.where}"
        before = len(self.problems)

        def problem(column: str | None, text: str) -> None:
            self.problems.append(
                f"{here}, column {column}: {text}" if column else f"{here}: {text}"
            )

        cells = row.cells
        prompt = str(cells.get("prompt", "")).strip()
        if not prompt:
            problem("prompt", "empty; every shot needs a prompt")
        base = self.path.parent
        image_ref, image = self.image(cells.get("image"), base, "image", problem)
        end: tuple[str | None, ImageFile | None] = (None, None)
        if "end_image" in cells:
            end = self.image(cells["end_image"], base, "end_image", problem)
        takes = self.request.takes
        if "takes" in cells:
            try:
                takes = check_takes(cells["takes"], "takes")
            except InputError as exc:
                problem("takes", str(exc).replace("takes must", "must"))
        row_models = self.default_models
        if "model" in cells:
            try:
                row_models = [_known(self.models, _model(str(cells["model"]), self.pins))]
            except InputError as exc:
                problem("model", str(exc))
                row_models = []
        shot = PlannedJob(
            image_ref=image_ref or "",
            image=image,
            prompt=prompt,
            model=row_models[0] if row_models else self.default_models[0],
            options={k: v for k, v in cells.items() if k not in RESERVED},
            take=takes,  # expand_takes makes takes 1..N of it
            end_image_ref=end[0],
            end_image=end[1],
            shot_name=str(cells["name"]).strip() if "name" in cells else None,
            index=int(row.where.split()[-1]),
        )
        try:
            shots = self.expansions(shot)
        except InputError as exc:
            problem("prompt", str(exc).split(": ", 1)[-1])
            shots = []
        jobs = [j for s in shots for m in row_models if (j := self.on_model(s, m, problem))]
        return jobs if len(self.problems) == before and image_ref is not None else []

    def expansions(self, shot: PlannedJob) -> list[PlannedJob]:
        """The row as one shot per combination of its varied cells (``5|10`` in an option
        column) and of its prompt's variables (``{slow|fast}``)."""
        varied = {k: str(v).split("|") for k, v in shot.options.items() if "|" in str(v)}
        seed = self.request.prompt_seed
        if seed is None:
            seed = self.default_seed
        prompts, _ = expand_lines([shot.prompt], self.path.parent, seed, first=shot.index)
        if uses_random([shot.prompt]):
            self.seed = seed
        out = []
        for combo in itertools.product(*(varied.values())):
            values = {k: v.strip() for k, v in zip(varied, combo, strict=True)}
            for e in prompts:
                out.append(
                    dataclasses.replace(
                        shot,
                        prompt=e.text,
                        options={**shot.options, **values},
                        varied=values,
                        words=e.values,
                    )
                )
        return out

    def on_model(self, shot: PlannedJob, m: ModelSpec, problem: Any) -> PlannedJob | None:
        """The row's job on model ``m`` (``shot.options`` holds the row's option cells)."""
        options = _row_options(m, self.request, shot.options, shot.end_image_ref, problem)
        if options is None:
            return None
        if m.prompt_length(shot.prompt) > m.max_prompt_chars:
            unit = "UTF-8 bytes" if m.prompt_unit == "bytes" else "characters"
            problem(
                "prompt",
                f"{m.prompt_length(shot.prompt)} {unit}; {m.name} takes at most "
                f"{m.max_prompt_chars} {unit}",
            )
            return None
        own, end = split_end_image(m, options)
        end_ref, end_image = shot.end_image_ref, shot.end_image
        if end is not None and end != end_ref:  # an end frame from -o end_image_url=...
            base = self.request.path(".") or Path.cwd()
            end_ref, end_image = self.image(end, base, "end_image", problem)
        try:
            cost = m.estimate_cost(own)
        except InputError as exc:
            problem(None, str(exc))
            return None
        return dataclasses.replace(
            shot,
            model=m,
            options=own,
            end_image_ref=end_ref,
            end_image=end_image,
            variant=shot_variant(own, end_ref),
            cost=cost,
        )

    def image(
        self, value: Any, base: Path, column: str, problem: Any
    ) -> tuple[str | None, ImageFile | None]:
        return _image(value, base, self.images, self.trusted, column, problem)


def _row_options(
    m: ModelSpec,
    request: BatchRequest,
    option_cells: dict[str, Any],
    end_ref: str | None,
    problem: Any,
) -> dict[str, Any] | None:
    """A row's options for model ``m``: the ``-o`` ones it has, then the row's own
    columns (each checked alone, so a problem names its column); None on a problem."""
    try:
        given = {k: v for k, v in split_options([m], with_end_image(request))[0].items()}
    except ModelError:
        given = {}
    allowed = m.allowed_options
    if allowed is not None:
        given = {k: v for k, v in given.items() if k in allowed or k == END_IMAGE_OPTION}
    ok = True
    for column, value in option_cells.items():
        try:
            m.validate_options({column: value})
        except ModelError as exc:
            ok = False
            problem(column, _problem_lines(str(exc), m))
            continue
        given[column] = value
    if end_ref is not None:
        if m.end_image_field is None:
            problem("end_image", f"{m.name} ({m.endpoint_id}) takes no end image")
            return None
        given[END_IMAGE_OPTION] = end_ref
    if not ok:
        return None
    try:
        return m.validate_options(given)
    except ModelError as exc:  # what no single column shows: a required option missing
        problem(None, _problem_lines(str(exc), m))
        return None


def _problem_lines(message: str, m: ModelSpec) -> str:
    found = [ln.strip()[2:] for ln in message.splitlines() if ln.strip().startswith("- ")]
    text = "; ".join(found) or message
    return f"{text} (model {m.name}; `i2vkit models {m.name}` lists its options)"


def _image(
    value: Any,
    base: Path,
    images: dict[str, ImageFile | str],
    trusted: Any,
    column: str,
    problem: Any,
) -> tuple[str | None, ImageFile | None]:
    """A cell naming an image: (its absolute path or URL, the checked image or None)."""
    raw = str(value or "").strip()
    if not raw:
        problem(column, "empty; give an image file (relative to the shot list) or a URL")
        return None, None
    if is_data_uri(raw):
        problem(column, "a data: URI; give a file or an http(s) URL")
        return None, None
    if looks_like_url(raw):
        url, why = checked_url(raw)
        if why:
            problem(
                column,
                f"{raw!r} {why}; give an image file (relative to the shot list) "
                "or an http(s) URL fal can fetch",
            )
            return None, None
        return url, None
    path = Path(raw).expanduser()
    path = Path(os.path.normpath(path if path.is_absolute() else base / path))
    key = str(path)
    if key not in images:
        if not path.is_file():
            images[key] = f"no such file {raw!r} (looked for {path})"
        else:
            checked = check_image(path, DEFAULT_MAX_PIXELS, trusted=trusted)
            images[key] = checked.reason if isinstance(checked, Skipped) else checked
    found = images[key]
    if isinstance(found, str):
        problem(column, found)
        return None, None
    return key, found


# ------------------------------------------------------------------------- writing


def write_shots(plan: Plan, path: str | os.PathLike) -> Path:
    """Write a plan (folder x prompts, one or more models) as a shot list to edit: one
    row per image, prompt and model, with its options as columns and its takes. Image
    paths are relative to the new file where they can be. An existing file is never
    overwritten."""
    path = Path(path).expanduser().absolute()
    if path.exists():
        raise InputError(
            f"{path} already exists; pass --write-shots a new file name (an edited shot list "
            "is never overwritten)."
        )
    if not path.parent.is_dir():
        raise InputError(f"Cannot write {path}: folder {path.parent} does not exist.")
    firsts = [j for j in plan.jobs if j.take == 1]
    takes = max((j.take for j in plan.jobs), default=1)
    option_columns = list(dict.fromkeys(k for j in firsts for k in j.options))
    header = ["image", "prompt", "model", *option_columns, "end_image", "takes", "name"]
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for j in firsts:
        cells = [
            _relative(j.image_ref, path.parent),
            j.prompt,
            j.model.name,
            *(_cell(j.options.get(k)) for k in option_columns),
            _relative(j.end_image_ref, path.parent) if j.end_image_ref else "",
            takes,
            j.shot_name or "",
        ]
        writer.writerow([safe_cell(c) for c in cells])  # no cell a spreadsheet would run
    try:
        path.write_text(out.getvalue(), encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise InputError(f"Cannot write {path}: {exc.strerror or exc}.") from None
    return path


def _relative(ref: str, folder: Path) -> str:
    if is_remote(ref):
        return ref
    try:
        return Path(os.path.relpath(ref, folder)).as_posix()
    except ValueError:  # another drive on Windows
        return ref


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)
