"""Prompt variables: one prompt line that stands for several prompts.

The grammar is the one people know from image generation (the ``dynamicprompts``
library's, the part of it that a batch of paid videos needs):

- ``{slow|fast}``: every alternative, combined with every other variable of the line
  (``a {slow|fast} push-in at {dawn|dusk}`` is 4 prompts);
- ``__name__``: every line of the wildcard file ``name.txt`` (blank lines and ``#``
  comments ignored), looked up in a ``wildcards`` folder next to the prompts, then
  next to the prompts themselves;
- ``{~a|b|c}``: ONE alternative per prompt, picked at random with a seed (the same seed
  picks the same words, so the same command plans the same prompts);
- ``\\{``, ``\\}``, ``\\|`` and ``\\_``: the character itself; a ``{...}`` without ``|``
  is plain text.

Why our own parser and not the library: see docs/architecture.md ("Prompt variables").
In short, the grid needs to know which value of which variable made each prompt (the
library returns plain strings), and its two runtime dependencies and larger grammar
(weights, ``$$`` counts, Jinja templates) are more than this needs.

Each variable is named by what it looks like in the prompt (``{slow|fast}``,
``__camera__``, ``{~dawn|dusk}``): that name is the grid's axis and the ledger's key.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputError

_WILDCARD = re.compile(r"__([A-Za-z0-9][\w\-/.]*?)__")


@dataclass(frozen=True)
class Variable:
    """One ``{a|b}``, ``{~a|b}`` or ``__name__`` of a prompt line."""

    name: str  # as written in the prompt: the grid's axis name
    values: tuple[str, ...]
    random: bool = False


@dataclass(frozen=True)
class Expanded:
    """One prompt made from a line: its text and the value each variable took."""

    text: str
    values: dict[str, str] = field(default_factory=dict)
    line: int = 0  # the prompt line it came from (0-based, blank/comment lines not counted)


@dataclass(frozen=True)
class Template:
    """A prompt line cut into text pieces and variables (``parts``: str or Variable)."""

    source: str
    parts: tuple[str | Variable, ...]

    @property
    def variables(self) -> list[Variable]:
        return [p for p in self.parts if isinstance(p, Variable)]


def has_variables(prompt: str) -> bool:
    """Whether a prompt holds any variable (a quick check; :func:`parse` is the real one)."""
    return ("{" in prompt and "|" in prompt) or bool(_WILDCARD.search(prompt)) or "\\" in prompt


def parse(line: str, wildcards: WildcardFolder | None = None, *, where: str = "") -> Template:
    """Cut ``line`` into text and variables; an unclosed ``{`` or a missing wildcard file
    is an :class:`InputError` naming ``where`` (the prompt's number)."""
    parts: list[str | Variable] = []
    text: list[str] = []
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and i + 1 < len(line) and line[i + 1] in "{}|_\\":
            text.append(line[i + 1])
            i += 2
            continue
        if ch == "{":
            end = _closing(line, i, where)
            body = line[i + 1 : end]
            if "|" not in body.replace("\\|", ""):
                text.append(line[i : end + 1])  # {word}: plain text
            else:
                parts += ["".join(text)]
                text = []
                parts.append(_group(line[i : end + 1], body, wildcards, where))
            i = end + 1
            continue
        m = _WILDCARD.match(line, i)
        if m:
            parts += ["".join(text)]
            text = []
            values = _wildcard(m.group(1), wildcards, where)
            parts.append(Variable(m.group(0), values))
            i = m.end()
            continue
        text.append(ch)
        i += 1
    parts.append("".join(text))
    return Template(line, tuple(p for p in parts if p != ""))


def _closing(line: str, start: int, where: str) -> int:
    i = start + 1
    while i < len(line):
        if line[i] == "\\":
            i += 2
            continue
        if line[i] == "{":
            raise InputError(
                f"{where}: a '{{' inside another '{{...}}' at character {i + 1}; variables "
                "cannot be nested. Write the combinations as alternatives of one variable, "
                "or write \\{ for a literal brace."
            )
        if line[i] == "}":
            return i
        i += 1
    raise InputError(
        f"{where}: the '{{' at character {start + 1} is never closed; end the variable with "
        "'}' (e.g. {slow|fast}), or write \\{ for a literal brace."
    )


def _group(raw: str, body: str, wildcards: WildcardFolder | None, where: str) -> Variable:
    rand = body.startswith("~")
    if rand:
        body = body[1:]
    values: list[str] = []
    for alt in re.split(r"(?<!\\)\|", body):
        alt = re.sub(r"\\(.)", r"\1", alt).strip()
        m = _WILDCARD.fullmatch(alt)
        values += _wildcard(m.group(1), wildcards, where) if m else [alt]
    return Variable(raw, tuple(dict.fromkeys(values)), rand)


def _wildcard(name: str, wildcards: WildcardFolder | None, where: str) -> tuple[str, ...]:
    if wildcards is None:
        raise InputError(f"{where}: __{name}__ needs a wildcard file, and there is no folder.")
    return wildcards.values(name, where)


class WildcardFolder:
    """Where ``__name__`` files are read from: ``<folder>/wildcards/name.txt``, then
    ``<folder>/name.txt``; each file read once."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._read: dict[str, tuple[str, ...]] = {}

    def values(self, name: str, where: str) -> tuple[str, ...]:
        if name not in self._read:
            self._read[name] = self._load(name, where)
        return self._read[name]

    def _load(self, name: str, where: str) -> tuple[str, ...]:
        from .prompts import read_prompts

        candidates = [self.folder / "wildcards" / f"{name}.txt", self.folder / f"{name}.txt"]
        for path in candidates:
            if path.is_file():
                return tuple(dict.fromkeys(read_prompts(path)))
        looked = " or ".join(str(p) for p in candidates)
        raise InputError(
            f"{where}: no wildcard file for __{name}__ (looked for {looked}). Create it with "
            "one value per line."
        )


def default_seed(lines: list[str]) -> int:
    """The seed random picks use when none is given or recorded: from the prompts' text,
    so the same prompts pick the same words on any machine."""
    digest = hashlib.sha256("\n".join(lines).encode()).digest()
    return int.from_bytes(digest[:4], "big") % 1_000_000 + 1


def expand(template: Template, seed: int, line: int = 0) -> list[Expanded]:
    """Every prompt of one line: every combination of its ``{a|b}`` variables (in order:
    the last variable changes fastest), each with one pick of every ``{~a|b}``."""
    variables = template.variables
    fixed = [v for v in variables if not v.random]
    out = []
    for n, combo in enumerate(itertools.product(*(v.values for v in fixed))):
        chosen = dict(zip((v.name for v in fixed), combo, strict=True))
        for k, v in enumerate(variables):
            if v.random:
                rng = random.Random(f"{seed}\0{line}\0{n}\0{k}\0{v.name}")
                chosen[v.name] = rng.choice(v.values)
        text = "".join(chosen[p.name] if isinstance(p, Variable) else p for p in template.parts)
        values = {v.name: chosen[v.name] for v in variables}  # in the line's order
        out.append(Expanded(" ".join(text.split()), values, line))
    return out


def expand_lines(
    lines: list[str], folder: Path | None, seed: int | None = None, *, first: int = 0
) -> tuple[list[Expanded], int]:
    """Every prompt the lines stand for, and the seed random picks used. ``first``: the
    number of the first line (a shot list's row), so equal lines pick apart."""
    wildcards = WildcardFolder(folder) if folder is not None else None
    used = default_seed(lines) if seed is None else seed
    out: list[Expanded] = []
    for i, line in enumerate(lines, start=first):
        if not has_variables(line):
            out.append(Expanded(line, {}, i))
            continue
        out += expand(parse(line, wildcards, where=f"prompt {i + 1}"), used, i)
    return out, used


def uses_random(lines: list[str]) -> bool:
    """Whether any line picks at random (``{~...}``): only then does the seed matter."""
    return any("{~" in line for line in lines)
