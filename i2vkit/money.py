"""Money as i2vkit shows it: one formatter, one way to add prices that may be unknown."""

from __future__ import annotations

from collections.abc import Iterable


def usd(amount: float | None, digits: int = 2) -> str:
    """``US$ 3.60`` (never a bare ``$``: JupyterLab typesets text between two dollars as
    math), or "price unknown": an unknown price is never shown as free."""
    return "price unknown" if amount is None else f"US$ {amount:,.{digits}f}"


def rate(amount: float) -> str:
    """A published rate as fal writes it, shortest form: ``US$ 0.14``, ``US$ 0.0035``."""
    return f"US$ {amount:g}"


def sum_costs(costs: Iterable[float | None]) -> float | None:
    """The sum, or None when any price is unknown ("unknown" is never "free")."""
    total = 0.0
    for c in costs:
        if c is None:
            return None
        total += c
    return round(total, 4)


def usd_difference(billed: float | None, estimated: float | None) -> str | None:
    """``+US$ 0.16`` or ``-US$ 0.16``: what fal billed above or below the estimate; None
    when either is unknown."""
    if billed is None or estimated is None:
        return None
    diff = round(billed - estimated, 4)
    return f"{'+' if diff >= 0 else '-'}{usd(abs(diff))}"


def plural(n: int, word: str) -> str:
    """``1 prompt``, ``3 prompts``: counts as a person writes them."""
    return f"{n} {word}{'' if n == 1 else 's'}"
