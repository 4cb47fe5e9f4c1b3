"""Who may call what: fal's key check, CDN upload tokens and the locked account.

The queue and the REST storage calls want ``Authorization: Key <id>:<secret>``; CDN
uploads want a short-lived ``Bearer`` token that ``POST /storage/auth/token`` issues;
with the ``locked`` knob, submits and storage calls get fal's 403 "User is locked". Each
check returns the error response to send, or None when the request may go on.
"""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web

from .runtime import Clock
from .wire import json_response

__all__ = ["LOCKED_DETAIL", "Auth", "key_shape_ok"]

LOCKED_DETAIL = (
    "User is locked. Reason: Exhausted balance. Top up your balance at fal.ai/dashboard/billing."
)


def key_shape_ok(cred: str) -> bool:
    """``id:secret`` with both parts non-blank."""
    key_id, sep, secret = cred.partition(":")
    return bool(sep and key_id.strip() and secret.strip())


class Auth:
    """The key (None: any well-shaped key is accepted), issued tokens, the locked knob."""

    def __init__(self, key: str | None, knobs: dict[str, Any], clock: Clock) -> None:
        if key is not None and not key_shape_ok(key):
            raise ValueError("key must look like ID:SECRET")
        self.key = key
        self._knobs = knobs
        self._clock = clock
        self._tokens: dict[str, float] = {}  # token -> expiry on clock.wall_now()

    def key_error(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "").strip()
        if not header:
            return json_response(401, {"detail": "Missing authorization header"})
        scheme, _, cred = header.partition(" ")
        cred = cred.strip()
        if scheme.lower() != "key" or not key_shape_ok(cred):
            return json_response(
                401, {"detail": "Invalid authorization header, expected 'Key <id>:<secret>'"}
            )
        if self.key is not None and not secrets.compare_digest(cred, self.key):
            return json_response(401, {"detail": "No user found for Key ID and Secret"})
        return None

    def locked_error(self) -> web.Response | None:
        if self._knobs["locked"]:
            return json_response(403, {"detail": LOCKED_DETAIL})
        return None

    def key_or_locked_error(self, request: web.Request) -> web.Response | None:
        """The checks of every paid call (submits, storage): a valid key, an unlocked account."""
        return self.key_error(request) or self.locked_error()

    def token_or_locked_error(self, request: web.Request) -> web.Response | None:
        return self.token_error(request) or self.locked_error()

    def issue_token(self) -> tuple[str, float]:
        """A new CDN token and its lifetime in seconds (the ``token_ttl`` knob)."""
        token = secrets.token_urlsafe(32)
        ttl = float(self._knobs["token_ttl"])
        self._tokens[token] = self._clock.wall_now() + ttl
        return token, ttl

    def token_error(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "").strip()
        if not header:
            return json_response(401, {"detail": "Missing authorization header"})
        scheme, _, token = header.partition(" ")
        expiry = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if expiry is None:
            return json_response(401, {"detail": "Invalid or missing upload token"})
        if self._clock.wall_now() >= expiry:
            return json_response(401, {"detail": "Upload token expired"})
        return None
