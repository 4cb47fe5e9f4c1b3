"""The catalogue read from fal's Platform API, kept in the ledger with when it was read.

Why in the ledger: it is per backend (fal, or an ``I2VKIT_FAL_URL``), survives between
runs, and is already where a batch's facts live. A copy older than :data:`MAX_AGE` is
read again when a workspace with a key is opened (:mod:`i2vkit.workspace`, before any
planning); a refresh that fails (no network, a 5xx, a key without rights) leaves the
stored copy, or the snapshot, in use and says so in ONE line: a batch never stops
because prices could not be re-read. Planning itself never reaches out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from ..backend import backend_for
from ..blocking import run_blocking
from ..config import Settings
from ..errors import (
    BackendUnreachable,
    ConfigError,
    FalAuthError,
    FalError,
    FalLockedError,
    FalTransientError,
    I2vkitError,
    NotFal,
)
from ..store import Store
from ..timestamps import parse_timestamp
from . import pricing, use
from .core import Catalogue, defaults, snapshot
from .openapi import merge, new_entry

MAX_AGE = timedelta(days=7)


def _now() -> datetime:
    return datetime.now(UTC)


def load(store: Store, backend: str) -> tuple[Catalogue | None, datetime | None]:
    """The stored copy for ``backend`` and when it was read, or (None, None)."""
    row = store.catalogue_copy(backend)
    if row is None:
        return None, None
    read_at = parse_timestamp(row["read_at"])
    if read_at is None:  # a copy whose date cannot be read is no copy to trust
        return None, None
    origin = f"fal's Platform API, read {read_at:%Y-%m-%d %H:%M} UTC"
    return Catalogue(json.loads(row["data"]), origin), read_at


def save(store: Store, backend: str, catalogue: Catalogue, read_at: datetime) -> None:
    store.save_catalogue(backend, read_at.isoformat(), json.dumps(catalogue.data))


async def fetch(settings: Settings, base: Catalogue) -> Catalogue:
    """``base`` updated from fal's ``/models`` (with OpenAPI) and ``/models/pricing``, plus
    the image-to-video endpoints fal lists that ``base`` does not have (see
    :func:`.openapi.new_entry`). A listing fal refuses only skips the discovery."""
    from ..platform import PlatformClient  # httpx and fal's hosts: only when reading fal

    ids = [e["endpoint_id"] for e in base.entries]
    async with PlatformClient(backend_for(settings), settings.fal_key) as client:
        models = {m["endpoint_id"]: m for m in await client.models(ids)}
        try:
            listed = await client.listing()
        except FalError:
            listed = []
        found = {
            m["endpoint_id"]: m
            for m in listed
            if isinstance(m.get("endpoint_id"), str) and m["endpoint_id"] not in base.by_id
        }
        prices = {p["endpoint_id"]: p for p in await client.pricing(ids + list(found))}
    read_at = _now().isoformat()
    entries = [
        merge(e, models.get(e["endpoint_id"]), prices.get(e["endpoint_id"]), read_at)
        for e in base.entries
    ]
    names = dict(base.names)
    added = []
    for eid, model in found.items():
        entry = new_entry(model, prices.get(eid), read_at, base.families, names)
        if entry is not None:
            entries.append(entry)
            names[entry["name"]] = eid
            added.append(f"{entry['name']} ({eid})" if entry["name"] != eid else eid)
    origin = f"fal's Platform API, read {read_at[:16]} UTC"
    if added:
        origin += f"; new on fal: {', '.join(added)}"
    fresh = base.with_entries(entries, origin)
    fresh.data["names"] = names
    return fresh


#: Why the catalogue was not read, when there is no key to read it with.
NO_KEY = "FAL_KEY is not set, and fal's Platform API answers only with a key"
#: What to do about it, for the error of ``--refresh`` and the plan-time note alike.
SET_KEY = "set FAL_KEY (in the environment or .env), then run `i2vkit models --refresh`"


def refresh(settings: Settings, store: Store) -> Catalogue:
    """Read the catalogue from fal now and store it; raises what went wrong, and which
    copy stays in use (with its date).

    No key is checked here, before any request: sent without one, fal's answer is a
    401, which reads as a key that was rejected (issue 13) when there is no key at all.
    A 401 or 403 stays a key or account error (exit 3); anything else that keeps the
    list from being read (no connection, a 5xx, an answer that is not fal's) is
    :class:`BackendUnreachable` or :class:`NotFal` (exit 4).
    """
    if not settings.fal_key:
        raise ConfigError(f"Cannot read the model catalogue: {NO_KEY}. To read it, {SET_KEY}.")
    try:
        return _read_and_save(settings, store)
    except FalError as exc:
        kept = f"The catalogue in use is unchanged: {use_stored(settings, store).origin}."
        raise type(exc)(f"{exc} {kept}", status_code=exc.status_code) from None


def _read_and_save(settings: Settings, store: Store) -> Catalogue:
    """fal's catalogue, read now and stored; a failure says what failed and where, as a
    key or account error (401, 403), or as no answer / not fal's answer (exit 4)."""
    try:
        fresh = run_blocking(fetch(settings, snapshot()))
    except FalError as exc:
        from ..fal import platform_url  # loaded by fetch already

        kind: type[FalError] = NotFal
        if isinstance(exc, FalAuthError | FalLockedError):
            kind = type(exc)
        elif isinstance(exc, FalTransientError):  # no connection, or 5xx after retries
            kind = BackendUnreachable
        where = platform_url(backend_for(settings))
        detail = str(exc).rstrip(".")
        raise kind(
            f"could not refresh the model catalogue from {where}: {detail}.",
            status_code=exc.status_code,
        ) from None
    label = backend_for(settings).label
    save(store, label, fresh, _now())
    return use(with_billed(fresh, store.price_overrides(label)))


def refresh_if_stale(settings: Settings, store: Store) -> str | None:
    """Read the catalogue from fal again when the stored copy is over a week old.

    Returns one line for the user (what was done, or why not and which copy is used),
    or None when nothing was due. No stored copy means the snapshot is in use until
    ``i2vkit models --refresh``; a failed refresh keeps the stored copy.
    """
    if settings.demo:
        return None
    stored, read_at = load(store, backend_for(settings).label)
    if stored is None or read_at is None or _now() - read_at < MAX_AGE:
        return None
    if not settings.fal_key:  # only a workspace with a key reads again
        use_stored(settings, store)
        return (
            f"note: the model catalogue was not refreshed ({NO_KEY}); using {stored.origin}. "
            f"To refresh it, {SET_KEY}."
        )
    try:
        fresh = _read_and_save(settings, store)
    except (I2vkitError, OSError) as exc:
        use_stored(settings, store)
        reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        return (
            f"note: {reason} The plan goes on with the copy it has (over a week old): "
            f"{stored.origin}."
        )
    return f"note: the model catalogue was a week old; read again: {fresh.origin}."


def use_stored(settings: Settings, store: Store) -> Catalogue:
    """The stored copy for this backend (no network), else the snapshot, with the prices
    fal billed where they differ from it (`i2vkit cost`); made active."""
    if settings.demo:
        return use(None)
    label = backend_for(settings).label
    stored = load(store, label)[0] or snapshot()
    return use(with_billed(stored, store.price_overrides(label)))


def with_billed(cat: Catalogue, overrides: Sequence[Mapping[str, Any]]) -> Catalogue:
    """``cat`` with each overridden endpoint's price rule rescaled to the unit price fal
    billed (marked ``billed``: `i2vkit models` says so)."""
    by_id = {o["endpoint_id"]: o for o in overrides}
    if not by_id.keys() & cat.by_id.keys():
        return cat
    entries = []
    for entry in cat.entries:
        found, rule = by_id.get(entry["endpoint_id"]), entry.get("price")
        if found and rule:
            new = pricing.rescaled(rule, float(found["unit_price"]), defaults(entry))
            new["billed"] = str(found["read_at"])[:16]
            entry = {**entry, "price": new}
        entries.append(entry)
    return cat.with_entries(entries, f"{cat.origin}; prices fal billed for {len(by_id)} model(s)")
