"""The bill: what fal charged a batch, against what i2vkit estimated (`i2vkit cost`); the
billable rule itself (which ledger rows fal may bill) is `billing.py`'s.

Why: i2vkit's costs are estimates from published prices, and fal's prices drift and
disagree between its own pages. fal's Platform API (admin keys only) says what each
request was billed (``/models/billing-events``), what each endpoint cost over a window
(``/models/usage``) and the balance (``/account/billing``). :func:`read_bill` reads the
records of a batch's request ids (where some are missing, fal's records lag: usage per
endpoint over the batch's window less every record there, said to be an aggregate),
compares them per model with the ledger's estimates, writes each request's billed cost
into its clip's tags and sidecar (records only, never usage), and where fal billed a
unit price more than :data:`DRIFT` away from the catalogue's, keeps fal's price in the
ledger (marked "billed") so every later plan prices that model at what fal charges.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .backend import EMULATOR, backend_for
from .blocking import run_blocking
from .catalogue import pricing
from .config import Settings
from .errors import BillingUnavailable, I2vkitError, InputError
from .models import ModelSpec
from .money import plural, sum_costs, usd, usd_difference
from .planning.cost import requests_of
from .planning.options import model_of_row, row_cost, row_options
from .provenance import note_billed
from .rows import BatchRow, JobRow
from .store import Store
from .timestamps import parse_timestamp

BALANCE_TIMEOUT = 5.0
DRIFT = 0.05  # a billed unit price further than this from the catalogue's is taken over
SKEW = timedelta(minutes=1)  # our clock against fal's, either side of a batch's window
ADMIN_KEY = (
    "fal's billing records need an admin key: create one with ADMIN scope on the Keys "
    "page of your fal dashboard (or `fal keys create --scope ADMIN`) and set FAL_KEY to it"
)


@dataclass
class ModelBill:
    """One model of a batch: its requests, estimated and billed, and the unit prices."""

    endpoint_id: str
    name: str
    model: ModelSpec | None
    requests: int = 0  # requests the ledger counts as billed
    estimated: float | None = 0.0
    billed: float | None = None  # None: fal said nothing (yet)
    from_usage: float | None = None  # the part of `billed` read from usage, not records
    usage_covers: list[str] = field(default_factory=list)  # counted, no record: usage has them
    unit_billed: float | None = None
    unit_catalogue: float | None = None
    args: dict[str, Any] = field(default_factory=dict)  # a job's arguments, for the rate
    billed_not_counted: list[str] = field(default_factory=list)  # fal billed, ledger: not
    counted_not_billed: list[str] = field(default_factory=list)  # ledger: billed, fal: no

    @property
    def drift(self) -> float | None:
        """billed unit price / catalogue unit price - 1, when both are known."""
        if not self.unit_billed or not self.unit_catalogue:
            return None
        return self.unit_billed / self.unit_catalogue - 1


@dataclass
class Bill:
    """A batch's bill, per model; ``unavailable`` says why fal's side is missing."""

    batch: BatchRow
    models: list[ModelBill]
    unavailable: str | None = None
    updated: list[str] = field(default_factory=list)  # lines: prices taken over
    usage_window: tuple[datetime, datetime] | None = None  # where usage was read
    moved: int = 0  # videos not where they were downloaded: their recipes not updated
    untouched: list[str] = field(default_factory=list)  # videos whose recipe could not be

    def total(self, attr: str) -> float | None:
        return sum_costs(getattr(m, attr) for m in self.models)

    def describe(self) -> str:
        label = f"{self.batch['name']} [{self.batch['id']}]" if self.batch.get("name") else ""
        head = f"batch {label or self.batch['id']}"
        if self.unavailable:
            lines = [f"{head}: {self.unavailable}.", "Estimates only:"]
            lines += [f"  {m.name:<28} {plural(m.requests, 'request'):>12}  "
                      f"estimated {usd(m.estimated)}" for m in self.models]  # fmt: skip
            lines.append(f"  {'total':<28} {'':>12}  estimated {usd(self.total('estimated'))}")
            return "\n".join(lines)
        lines = [f"{head}: what fal billed, against i2vkit's estimates"]
        lines.append(f"  {'model':<28} {'requests':>9} {'estimated':>12} {'billed':>12} "
                     f"{'difference':>12}")  # fmt: skip
        for m in self.models:
            lines.append(_row(m.name, m.requests, m.estimated, m.billed)
                         + (f"  ({usd(m.from_usage)} from usage)" if m.from_usage else ""))  # fmt: skip
        requests = sum(m.requests for m in self.models)
        lines.append(_row("total", requests, self.total("estimated"), self.total("billed")))
        lines += self._usage_lines()
        for m in self.models:
            billed_at = (m.model.price_rule or {}).get("billed") if m.model else None
            if billed_at:
                lines.append(
                    f"{m.name} is estimated at the price fal billed it (read {billed_at}), "
                    "not the catalogue's"
                )
        for m in self.models:
            if m.billed_not_counted:
                lines.append(
                    f"fal billed {plural(len(m.billed_not_counted), 'request')} of {m.name} the "
                    f"ledger counted as not billed: {', '.join(m.billed_not_counted)}"
                )
            if m.counted_not_billed:
                lines.append(
                    f"the ledger counted {plural(len(m.counted_not_billed), 'request')} of "
                    f"{m.name} that fal has no billing record for (yet): "
                    f"{', '.join(m.counted_not_billed)}"
                )
        if self.moved:
            lines.append(
                f"{plural(self.moved, 'video')} no longer where i2vkit downloaded "
                f"{'it' if self.moved == 1 else 'them'} (moved away): skipped. The others' "
                "tags and sidecars carry what fal billed them."
            )
        lines += [f"billed cost not written into {text}" for text in self.untouched]
        return "\n".join(lines + self.updated)

    def _usage_lines(self) -> list[str]:
        lines = []
        for m in self.models:
            if not m.from_usage or self.usage_window is None:
                continue
            start, end = (t.strftime("%Y-%m-%d %H:%M:%S") for t in self.usage_window)
            said = (
                f"{usd(m.from_usage)} of its billed figure is fal's usage of {m.endpoint_id} "
                f"from {start} to {end} UTC, less the requests recorded there: an aggregate "
                "for the endpoint, not per request (another request of the account without a "
                "record in that window would be in it). `i2vkit cost` later reads the records."
            )
            lines.append(
                f"fal has no billing record yet for {plural(len(m.usage_covers), 'request')} "
                f"of {m.name}: {', '.join(m.usage_covers)}\n"
                + textwrap.fill(
                    said,
                    88,
                    initial_indent="  ",
                    subsequent_indent="  ",
                    break_on_hyphens=False,
                    break_long_words=False,
                )
            )
        return lines


def _row(name: str, requests: int, estimated: float | None, billed: float | None) -> str:
    shown = usd_difference(billed, estimated) or "unknown"
    billed_text = usd(billed) if billed is not None else "no record"
    return f"  {name:<28} {requests:>9} {usd(estimated):>12} {billed_text:>12} {shown:>12}"


def read_bill(store: Store, ref: str, settings: Settings) -> Bill:
    """The batch's bill (see the module's doc). Blocking; reaches fal's Platform API."""
    batch = store.get_batch(ref)
    if batch is None:
        raise InputError(f"No batch {ref!r} in {store.path}; `i2vkit status` lists them.")
    rows = store.jobs(batch["id"])
    bill = Bill(batch, _estimates(rows))
    backend = backend_for(settings)
    if not backend.billed or batch["backend"] == EMULATOR:
        bill.unavailable = "it ran on the built-in emulator, which bills nothing"
        return bill
    if batch["backend"] != backend.label:
        bill.unavailable = (
            f"it ran on {batch['backend']}, and these settings reach {backend.label}; set "
            "FAL_KEY / I2VKIT_FAL_URL as they were to read its bill"
        )
        return bill
    try:
        events, usage = run_blocking(_read(settings, rows, bill))
    except BillingUnavailable as exc:
        bill.unavailable = str(exc) + (f".\n{ADMIN_KEY}" if exc.status_code in (401, 403) else "")
        return bill
    _compare(bill, rows, events, usage)
    records = _records(events)
    store.save_billed(records)
    bill.moved, bill.untouched = _note_in_videos(
        rows, {r["request_id"]: r["billed_usd"] for r in records}
    )
    bill.updated = _take_over(bill, store, backend.label)
    return bill


def _note_in_videos(rows: Sequence[JobRow], billed: dict[str, float]) -> tuple[int, list[str]]:
    """Each downloaded video's tags and sidecar get what fal billed its request. Returns
    how many videos are no longer where they were downloaded (skipped), and the videos
    that could not be rewritten, with why (a bill is never lost over a tag)."""
    moved, failed = 0, []
    for row in rows:
        cost = billed.get(row["request_id"] or "")
        if cost is None or not row["local_file"] or not row["request_id"]:
            continue
        try:
            moved += not note_billed(Path(row["local_file"]), row["request_id"], cost)
        except Exception as exc:  # noqa: BLE001 - av's errors, a full disk, a locked file
            failed.append(f"{row['local_file']}: {exc}")
    return moved, failed


def recorded_bill(store: Store, batch_id: str) -> list[ModelBill]:
    """The batch per model: its estimates, and what fal billed as far as `i2vkit cost` has
    read it into the ledger (``billed`` None: no record read). No network."""
    rows = store.jobs(batch_id)
    models = _estimates(rows)
    billed = store.billed(r["request_id"] for r in rows if r["request_id"])
    for m in models:
        ids = [r["request_id"] for r in rows if r["endpoint_id"] == m.endpoint_id]
        found = [billed[i] for i in ids if i in billed]
        m.billed = round(sum(found), 4) if found else None
    return models


def read_balance(settings: Settings) -> float | None:
    """The account's credit balance in US$, or None when it cannot be read (not an admin
    key, the built-in emulator, fal unreachable): the balance is shown when known, never
    a reason to stop a run by itself."""
    from .platform import PlatformClient

    backend = backend_for(settings)
    if not backend.billed or not settings.fal_key:
        return None

    async def read() -> float | None:
        async with PlatformClient(backend, settings.fal_key, timeout=BALANCE_TIMEOUT) as client:
            return await client.balance()

    try:
        return run_blocking(read())
    except (I2vkitError, OSError):
        return None


def _estimates(rows: Sequence[JobRow]) -> list[ModelBill]:
    """Per endpoint: the requests the ledger counts as billed and their estimated cost."""
    by: dict[str, ModelBill] = {}
    for row in rows:
        try:
            model: ModelSpec | None = model_of_row(row)
        except I2vkitError:
            model = None
        m = by.setdefault(row["endpoint_id"], ModelBill(row["endpoint_id"], row["model"], model))
        n = requests_of(row)
        if not n:
            continue
        m.requests += n
        price = row_cost(row, model) if model is not None else None
        m.estimated = None if price is None or m.estimated is None else m.estimated + price * n
        if model is not None and not m.args:
            m.args = {**model.defaults, **row_options(row, model)[0]}
    for m in by.values():
        m.estimated = None if m.estimated is None else round(m.estimated, 4)
    return list(by.values())


def _window(rows: Sequence[JobRow]) -> tuple[datetime, datetime]:
    """From the batch's first submit to now: where its billing records are."""
    sent = [t for r in rows if (t := parse_timestamp(r["submitted_at"] or r["created_at"]))]
    now = datetime.now(UTC)
    start = min(sent) if sent else now - timedelta(days=1)
    return start - SKEW, now + SKEW


def _usage_window(rows: Sequence[JobRow]) -> tuple[datetime, datetime]:
    """From the batch's first submit to its last request's end (now while one has not
    ended), SKEW either side for clocks: the narrowest window its charges can be in, so
    usage counts as few of the account's other requests as it can."""
    start, end = _window(rows)
    ends = [parse_timestamp(r["completed_at"]) for r in rows if r["request_id"] and requests_of(r)]
    if ends and all(ends):
        end = min(end, max(t for t in ends if t) + SKEW)
    return start, end


async def _read(
    settings: Settings, rows: Sequence[JobRow], bill: Bill
) -> tuple[list[dict[str, Any]], dict[str, tuple[float, float, float | None]]]:
    """The batch's billing events; and for each endpoint some of whose counted requests
    have none, usage over the batch's window as (usage, recorded, unit price): fal's usage
    of the endpoint and the billing records of all its requests in that window."""
    from .platform import PlatformClient

    ids = [r["request_id"] for r in rows if r["request_id"]]
    start, end = _window(rows)
    async with PlatformClient(backend_for(settings), settings.fal_key) as client:
        events = await client.billing_events(start, end, request_ids=ids) if ids else []
        seen = {e.get("request_id") for e in events}
        short = sorted({r["endpoint_id"] for r in rows
                        if r["request_id"] and requests_of(r) and r["request_id"] not in seen})  # fmt: skip
        if not short:
            return events, {}
        bill.usage_window = start, end = _usage_window(rows)
        items = await client.usage(short, start, end)
        recorded = await client.billing_events(start, end, endpoint_ids=short)
    usage: dict[str, tuple[float, float, float | None]] = {}
    for endpoint in short:
        mine = [i for i in items if i.get("endpoint_id") == endpoint]
        total = sum(float(i.get("cost_total", i.get("cost")) or 0) for i in mine)
        there = sum(_cost(e) for e in recorded if e.get("endpoint_id") == endpoint)
        unit = next((float(i["unit_price"]) for i in mine if i.get("unit_price")), None)
        usage[endpoint] = (total, there, unit)
    return events, usage


def _cost(event: dict[str, Any]) -> float:
    total = event.get("cost_total")
    if isinstance(total, int | float):
        return float(total)
    return float(event.get("cost_estimate_nano_usd") or 0) / 1e9


def _compare(
    bill: Bill,
    rows: Sequence[JobRow],
    events: list[dict[str, Any]],
    usage: dict[str, tuple[float, float, float | None]],
) -> None:
    """Fill each model's billed side from the records, and from usage for requests with
    none: usage less every record of the endpoint in the same window is what fal charged
    without a record yet, so no request is counted twice. Lists the mismatches."""
    by_id = {e.get("request_id"): e for e in events}
    for m in bill.models:
        sent = [(r["request_id"], r) for r in rows
                if r["endpoint_id"] == m.endpoint_id and r["request_id"]]  # fmt: skip
        billed = [by_id[i] for i, _ in sent if i in by_id]
        m.billed_not_counted = [i for i, r in sent if i in by_id and not requests_of(r)]
        m.counted_not_billed = [i for i, r in sent if requests_of(r) and i not in by_id]
        if m.model is not None and m.args:
            m.unit_catalogue = pricing.base_rate(m.model.price_rule, m.args)
        prices = [e["unit_price"] for e in billed if isinstance(e.get("unit_price"), int | float)]
        m.unit_billed = prices[0] if prices else None
        total, recorded, unit = usage.get(m.endpoint_id, (0.0, 0.0, None))
        rest = round(total - recorded, 4)
        if m.counted_not_billed and rest > 0:
            m.from_usage, m.usage_covers = rest, m.counted_not_billed
            m.counted_not_billed = []
            m.unit_billed = m.unit_billed or unit
        if billed or m.from_usage:
            m.billed = round(sum(_cost(e) for e in billed) + (m.from_usage or 0), 4)
        else:
            m.billed = None if m.requests else 0.0


def _records(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "request_id": e["request_id"],
            "endpoint_id": e.get("endpoint_id") or "",
            "billed_usd": _cost(e),
            "unit_price": e.get("unit_price"),
            "units": e.get("output_units"),
            "billed_at": e.get("timestamp"),
        }
        for e in events
        if isinstance(e.get("request_id"), str)
    ]


def _take_over(bill: Bill, store: Store, backend: str) -> list[str]:
    """Keep fal's unit price for each model billed more than DRIFT away from the catalogue."""
    lines = []
    for m in bill.models:
        drift = m.drift
        if drift is None or abs(drift) <= DRIFT or m.model is None or not m.unit_billed:
            continue
        rule = m.model.price_rule
        at_defaults = pricing.base_rate(rule, m.model.defaults)
        factor = m.unit_billed / (m.unit_catalogue or m.unit_billed)
        new = (at_defaults or m.unit_billed) * factor
        store.set_price_override(backend, m.endpoint_id, round(new, 6), at_defaults)
        lines.append(
            f"fal billed {m.name} ({m.endpoint_id}) at {usd(m.unit_billed, 4)} "
            f"{pricing.unit_label(rule)}; the catalogue says {usd(m.unit_catalogue, 4)} "
            f"({drift:+.0%}). Its price is now what fal billed (kept in the ledger, marked "
            "billed): the next plan uses it."
        )
    return lines
