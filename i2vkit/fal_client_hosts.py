"""Stock fal_client pointed at another host: the one place that touches its globals.

A batch never does this (:class:`~i2vkit.fal.FalConnection` has its own clients, so a
demo run in a notebook leaves the user's own fal_client calls going to fal). The
benchmark, which compares stock fal_client with i2vkit, and the tests that check the
emulator against fal_client point fal_client at the emulator explicitly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import fal_client.client as fal_client_module

from .fal import FAL_CDN_URL, FAL_QUEUE_URL, FAL_REST_URL

__all__ = ["FAL_CLIENT_HOSTS", "fal_client_pointed_at", "point_fal_client_at"]

FAL_CLIENT_HOSTS = ("QUEUE_URL_FORMAT", "RUN_URL_FORMAT", "REST_URL", "CDN_URL")


def point_fal_client_at(base_url: str | None) -> dict[str, str]:
    """Point stock fal_client's hosts at one base URL (None: fal's own); returns what they
    were. Process-wide: for scripts such as the benchmark; code that must leave things as
    it found them uses :func:`fal_client_pointed_at`."""
    before = {name: getattr(fal_client_module, name) for name in FAL_CLIENT_HOSTS}
    if base_url is None:
        hosts = {
            "QUEUE_URL_FORMAT": FAL_QUEUE_URL + "/",
            "RUN_URL_FORMAT": "https://fal.run/",
            "REST_URL": FAL_REST_URL,
            "CDN_URL": FAL_CDN_URL,
        }
    else:
        base = base_url.rstrip("/")
        hosts = {"QUEUE_URL_FORMAT": base + "/", "RUN_URL_FORMAT": base + "/"}
        hosts |= {"REST_URL": base, "CDN_URL": base}
    for name, value in hosts.items():
        setattr(fal_client_module, name, value)
    return before


@contextlib.contextmanager
def fal_client_pointed_at(base_url: str | None) -> Iterator[None]:
    """Stock fal_client talks to `base_url` inside the block, and to whatever it talked to
    before once the block ends (also on errors)."""
    before = point_fal_client_at(base_url)
    try:
        yield
    finally:
        for name, value in before.items():
            setattr(fal_client_module, name, value)
