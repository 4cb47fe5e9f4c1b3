"""fal's image-to-video endpoints: schemas, prices, status and names, from fal's own metadata.

* :mod:`.core`: the :class:`Catalogue` (entries by endpoint id, the name table) and the
  snapshot shipped in the package (``snapshot.json``, built by :mod:`.build`);
* :mod:`.schema`: options checked against an endpoint's input schema;
* :mod:`.pricing`: one video's cost under an endpoint's price rule;
* :mod:`.openapi`: catalogue entries to and from fal's Platform API answers;
* :mod:`.stored`: the copy read from fal's Platform API and kept in the ledger, refreshed
  when older than a week.

:func:`active` is the catalogue this process uses (the snapshot until a plan or
``i2vkit models`` loads the ledger's copy with :func:`use`).
"""

from __future__ import annotations

from .core import Catalogue, snapshot

_active: Catalogue | None = None


def active() -> Catalogue:
    """The catalogue names and prices are resolved against in this process."""
    global _active
    if _active is None:
        _active = snapshot()
    return _active


def use(catalogue: Catalogue | None) -> Catalogue:
    """Make ``catalogue`` (None: the snapshot) the one :func:`active` returns."""
    global _active
    _active = catalogue or snapshot()
    return _active


__all__ = ["Catalogue", "active", "snapshot", "use"]
