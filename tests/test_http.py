"""The one HTTP policy, tested directly: budget, Retry-After, transient decision, error
mapping and the retry loop. Pure logic: no server needed (httpx.Response objects are built
by hand, exactly as httpx builds them from the wire)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest

from i2vkit import http
from i2vkit.errors import (
    FalAuthError,
    FalError,
    FalLockedError,
    FalTransientError,
    FalValidationError,
)
from i2vkit.http import RequestBudget, Verdict, _Retry, fal_error, parse_retry_after, verdict

KEY = "keyid:very-secret-part-123"


def answer(status: int, body=None, headers=None, text: str | None = None) -> httpx.Response:
    request = httpx.Request("GET", "http://127.0.0.1/x")
    if text is not None:
        return httpx.Response(status, text=text, headers=headers, request=request)
    return httpx.Response(status, json=body, headers=headers, request=request)


# -- the request budget -------------------------------------------------------------------


def test_budget_spaces_requests_beyond_the_burst_at_its_rate():
    async def go():
        budget = RequestBudget(rate=50, burst=2)
        for _ in range(6):
            await budget.acquire()
        return list(budget.sent)

    sent = asyncio.run(go())
    assert len(sent) == 6
    # the burst goes at once; the 4 after it need a token each, 1/50 s apart at least
    assert sent[-1] - sent[1] >= 4 / 50 - 1e-3


def test_throttle_halves_what_was_really_sent_once_per_episode():
    async def go():
        budget = RequestBudget(rate=100)  # burst 20: ten requests go out at once
        for _ in range(10):
            await budget.acquire()
        return budget

    budget = asyncio.run(go())
    budget.throttle(retry_after=30)
    # halved from the 10/s really sent in the last second, not from the 100/s cap
    assert budget.rate == 5
    assert budget.tokens == 0 and budget.paused_until > time.monotonic() + 25
    budget.throttle(retry_after=30)  # a second 429 of the same episode (already in flight)
    assert budget.rate == 5 and budget.throttled == 2


def test_a_new_episode_halves_again_down_to_the_floor():
    budget = RequestBudget(rate=8, min_rate=0.5)
    budget.sent.clear()  # nothing sent in the last second: halve from 1/s
    budget.throttle(retry_after=0)  # the pause is over at once: the next 429 is a new episode
    assert budget.rate == 0.5
    budget.throttle(retry_after=0)
    assert budget.rate == 0.5  # never below min_rate


def test_relax_wins_the_rate_back_gradually_up_to_the_cap():
    budget = RequestBudget(rate=100)
    budget.rate = 10
    budget.relax()
    assert budget.rate == 10.25  # at least 0.25/s per success
    budget.rate = 80
    budget.relax()
    assert budget.rate == pytest.approx(80.8)  # 1% per success
    budget.rate = 99.9
    budget.relax()
    assert budget.rate == 100  # never above the configured rate


def test_acquire_waits_out_the_pause():
    async def go():
        budget = RequestBudget(rate=100, min_rate=100)  # only the pause, no slower rate
        budget.throttle(retry_after=0.05)
        paused_until = budget.paused_until
        await budget.acquire()
        return paused_until, budget.sent[-1]

    paused_until, sent_at = asyncio.run(go())
    assert sent_at >= paused_until


# -- Retry-After ---------------------------------------------------------------------------


def test_retry_after_seconds_and_http_dates():
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after("-3") == 0.0
    when = datetime(2026, 11, 25, 12, 0, 30, tzinfo=UTC)
    header = format_datetime(when, usegmt=True)  # "Wed, 25 Nov 2026 12:00:30 GMT"
    assert parse_retry_after(header, now=when.timestamp() - 30) == pytest.approx(30.0)
    assert parse_retry_after(header, now=when.timestamp() + 60) == 0.0  # already past


@pytest.mark.parametrize("garbage", [None, "", "   ", "soon", "Wed, 99 Foo 2026", "1e999x"])
def test_retry_after_garbage_is_none(garbage):
    assert parse_retry_after(garbage) is None


def test_retry_after_is_read_from_the_response_header():
    assert http.retry_after_seconds(answer(429, {}, {"Retry-After": "7"})) == 7.0
    assert http.retry_after_seconds(answer(429, {})) is None


# -- is it transient -----------------------------------------------------------------------


def test_verdict_on_answers():
    fal_had_it = {"x-fal-request-id": "abc"}
    assert verdict(answer(200, {})) is Verdict.DONE
    assert verdict(answer(202, {})) is Verdict.DONE
    for code in (408, 409, 500, 502, 503, 504):
        assert verdict(answer(code, text="nginx")) is Verdict.RETRY
        # an ingress error never reached fal: even a submit may try again
        assert verdict(answer(code, text="nginx"), idempotent=False) is Verdict.RETRY
        # fal itself answered: a submit may have queued a paid job, so it is final
        assert verdict(answer(code, {}, fal_had_it), idempotent=False) is Verdict.FINAL
        assert verdict(answer(code, {}, fal_had_it)) is Verdict.RETRY
        # a failed job's result is a 5xx: that answer is the job's error
        assert verdict(answer(code, {}), retry_server_errors=False) is Verdict.FINAL
    # a 429 means fal turned the request away: always worth another try
    assert verdict(answer(429, {}, fal_had_it), idempotent=False) is Verdict.RETRY
    for code in (400, 401, 403, 404, 410, 422):
        assert verdict(answer(code, {})) is Verdict.FINAL


def test_verdict_on_transport_errors():
    request = httpx.Request("POST", "http://127.0.0.1/x")
    for nothing_sent in (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout):
        exc = nothing_sent("refused", request=request)
        assert verdict(exc) is Verdict.RETRY
        assert verdict(exc, idempotent=False) is Verdict.RETRY
    for after_sending in (httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ReadError):
        exc = after_sending("dropped", request=request)
        assert verdict(exc) is Verdict.RETRY
        assert verdict(exc, idempotent=False) is Verdict.AMBIGUOUS
    assert verdict(ValueError("not http")) is Verdict.FINAL


# -- fal's errors --------------------------------------------------------------------------


def test_401_is_a_rejected_key():
    error = fal_error(answer(401, {"detail": "No user found"}), "submit", KEY)
    assert type(error) is FalAuthError and error.status_code == 401
    assert "FAL_KEY was rejected" in str(error)


def test_403_locked_is_the_balance_and_other_403s_are_permissions():
    locked = fal_error(
        answer(403, {"detail": "User is locked. Reason: Exhausted balance."}), "upload", KEY
    )
    assert type(locked) is FalLockedError and locked.error_type == "user_locked"
    assert "Billing page of your fal dashboard" in str(locked)
    other = fal_error(answer(403, {"detail": "Forbidden for this app"}), "upload", KEY)
    assert type(other) is FalAuthError and other.status_code == 403
    assert "Forbidden for this app" in str(other) and "may use this model" in str(other)


def test_422_lists_every_problem_with_where_it_is():
    body = {
        "detail": [
            {"loc": ["body", "image_url"], "msg": "could not download", "type": "file_download"},
            {"loc": ["body", "prompt"], "msg": "too long", "type": "value_error"},
        ]
    }
    error = fal_error(answer(422, body), "submit", KEY)
    assert type(error) is FalValidationError and error.error_type == "file_download"
    assert str(error) == ("fal rejected the input: image_url: could not download; prompt: too long")


def test_5xx_is_transient_with_falls_error_type_and_others_are_plain():
    error = fal_error(
        answer(503, {"detail": "Runner disconnected"}, {"x-fal-error-type": "runner_disconnected"}),
        "result",
        KEY,
    )
    assert type(error) is FalTransientError and error.status_code == 503
    assert error.error_type == "runner_disconnected" and "Runner disconnected" in str(error)
    plain = fal_error(answer(418, text="teapot"), "status", KEY)
    assert type(plain) is FalError and "HTTP 418 teapot" in str(plain)


def test_error_messages_never_carry_the_key():
    for code in (401, 403, 422, 500, 418):
        body = {"detail": f"bad header Key {KEY} (secret very-secret-part-123)"}
        assert "very-secret-part-123" not in str(fal_error(answer(code, body), "submit", KEY))


# -- the retry loop ------------------------------------------------------------------------


@pytest.fixture
def quick_backoff(monkeypatch):
    monkeypatch.setattr(http, "BACKOFF_FIRST", 0.001)


def run_loop(outcomes, **kwargs):
    """Run `retrying` over a scripted list of outcomes (an exception to raise or a value)."""
    calls = []
    given_up = []

    async def attempt():
        outcome = outcomes[len(calls)]
        calls.append(outcome)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def give_up(last: _Retry) -> Exception:
        given_up.append(last)
        return RuntimeError(f"gave up: {last}")

    async def go():
        return await http.retrying(attempt, give_up=give_up, **kwargs)

    try:
        result = asyncio.run(go())
    except RuntimeError as exc:
        result = exc
    return result, len(calls), given_up


def test_loop_retries_transient_failures_then_returns(quick_backoff):
    request = httpx.Request("GET", "http://127.0.0.1/x")
    outcomes = [_Retry("HTTP 503"), httpx.ReadError("cut", request=request), "video"]
    result, calls, given_up = run_loop(outcomes, attempts=3)
    assert result == "video" and calls == 3 and given_up == []


def test_loop_gives_up_after_its_attempts_with_the_last_reason(quick_backoff):
    result, calls, given_up = run_loop([_Retry("first"), _Retry("second"), "late"], attempts=2)
    assert calls == 2 and str(result) == "gave up: second"


def test_loop_does_not_repeat_an_ambiguous_submit(quick_backoff):
    request = httpx.Request("POST", "http://127.0.0.1/x")
    outcomes = [httpx.ReadTimeout("no answer", request=request), "second POST"]
    result, calls, given_up = run_loop(outcomes, idempotent=False)
    assert calls == 1 and given_up[0].ambiguous
    assert isinstance(result, RuntimeError)
    # an error before anything was sent is safe to repeat, even for a submit
    refused = httpx.ConnectError("refused", request=request)
    assert run_loop([refused, "accepted"], idempotent=False)[:2] == ("accepted", 2)


def test_loop_lets_other_errors_through_untouched(quick_backoff):
    with pytest.raises(FalLockedError):
        run_loop([FalLockedError("locked"), "never"])


def test_429s_pause_the_budget_instead_of_spending_attempts(quick_backoff):
    too_many = _Retry("HTTP 429", response=answer(429, {}, {"Retry-After": "0"}))
    budget = RequestBudget(rate=1000, min_rate=1000)  # keep the test fast: pauses only
    result, calls, _ = run_loop([too_many] * 5 + ["ok"], attempts=2, budget=budget)
    assert result == "ok" and calls == 6
    assert budget.throttled == 5


def test_only_a_success_wins_rate_back(quick_backoff):
    budget = RequestBudget(rate=100)
    budget.rate = 10
    run_loop([_Retry("HTTP 503")] * 2, attempts=2, budget=budget)
    assert budget.rate == 10  # ran out of retries: no success, no rate back
    run_loop(["ok"], budget=budget)
    assert budget.rate > 10
