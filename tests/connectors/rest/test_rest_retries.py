"""Retries (429 + Retry-After, 503), exhaustion, non-JSON answers and the rate limit, against the
real test server. Timing checks are loose lower bounds (the server counts the attempts)."""

from __future__ import annotations

import email.utils
import random
import time
from typing import Any

import pytest
from rest_server import Api

from openfuse_connectors.builtin.rest import RestConfig, RestExtractor
from openfuse_connectors.builtin.rest.client import backoff_delay, parse_retry_after
from openfuse_connectors.builtin.rest.errors import RestResponseError, RestRetriesExhaustedError
from openfuse_connectors.builtin.rest.ratelimit import TokenBucket
from openfuse_connectors.errors import FatalError, RetriableError
from openfuse_connectors.spec import StreamSpec


def extractor(api: Api, path: str, resource: dict[str, Any] | None = None, **config: Any) -> RestExtractor:
    cfg = {
        "base_url": api.base_url,
        "backoff_base": 0.01,
        "backoff_max": 0.05,
        "resources": [{"name": "r", "path": path, "record_selector": "data", **(resource or {})}],
        **config,
    }
    return RestExtractor(RestConfig.model_validate(cfg))


def ids(ex: RestExtractor) -> list[int]:
    return [r["id"] for b in ex.read(StreamSpec(name="r"), None) for r in b.to_pylist()]


def test_429_waits_for_retry_after_then_succeeds(api: Api) -> None:
    ex = extractor(api, "/flaky/429", max_retries=3)
    started = time.monotonic()
    ex.check()
    elapsed = time.monotonic() - started
    assert api.state.hits["/flaky/429"] == 2
    assert elapsed >= 0.9  # Retry-After: 1
    times = api.state.times["/flaky/429"]
    assert times[1] - times[0] >= 0.9


def test_503_is_retried_with_backoff_then_succeeds(api: Api) -> None:
    ex = extractor(api, "/flaky/503", {"schema": {"id": "int64", "name": "string"}}, max_retries=3)
    assert ids(ex) == [1, 2, 3]
    assert api.state.hits["/flaky/503"] == 3


def test_retries_run_out_with_a_retriable_error_naming_url_status_and_attempts(api: Api) -> None:
    ex = extractor(api, "/always/503", max_retries=2)
    with pytest.raises(RestRetriesExhaustedError) as ei:
        ex.check()
    err = ei.value
    assert isinstance(err, RetriableError)
    assert (err.status, err.attempts) == (503, 3)
    assert api.state.hits["/always/503"] == 3
    assert f"{api.base_url}/always/503" in str(err) and "attempts=3" in str(err) and "503" in str(err)


def test_connection_errors_are_retried_then_reported(api: Api) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ex = RestExtractor(
        RestConfig.model_validate(
            {
                "base_url": f"http://127.0.0.1:{port}",
                "max_retries": 1,
                "backoff_base": 0.01,
                "resources": [{"name": "r", "path": "/x"}],
            }
        )
    )
    with pytest.raises(RestRetriesExhaustedError, match=r"ConnectError") as ei:
        ex.check()
    assert ei.value.status is None and ei.value.attempts == 2


def test_a_retry_after_longer_than_allowed_fails_at_once(api: Api) -> None:
    ex = extractor(api, "/flaky/429", max_retries=3, max_retry_after=0.5)
    with pytest.raises(RestRetriesExhaustedError, match=r"asks to wait 1s \(Retry-After\)"):
        ex.check()
    assert api.state.hits["/flaky/429"] == 1


def test_html_instead_of_json_fails_with_url_content_type_and_body_start(api: Api) -> None:
    ex = extractor(api, "/html", {"schema": {"id": "int64"}})
    with pytest.raises(RestResponseError) as ei:
        list(ex.read(StreamSpec(name="r"), None))
    err = ei.value
    msg = str(err)
    assert isinstance(err, FatalError)
    assert f"{api.base_url}/html" in msg and "text/html" in msg and "not JSON" in msg
    assert err.body is not None and err.body.startswith("<!DOCTYPE html>") and len(err.body) == 200


def test_rate_limit_keeps_requests_per_second_under_the_limit(api: Api) -> None:
    rate = 20.0
    ex = extractor(
        api,
        "/pages/page_number",
        {"paginator": {"type": "page_number", "page_size_param": "per_page", "page_size": 2}},
        rate_limit=rate,
    )
    assert ids(ex) == list(range(1, 24))
    times = api.state.times["/pages/page_number"]
    assert len(times) == 13  # the schema sample + 12 pages
    observed = (len(times) - 1) / (times[-1] - times[0])
    assert observed <= rate * 1.1, observed


def test_retry_after_parses_seconds_and_http_dates() -> None:
    now = time.time()
    assert parse_retry_after("7") == 7.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert 28 <= (parse_retry_after(date, now=now) or 0) <= 31
    assert parse_retry_after(email.utils.formatdate(now - 60, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_backoff_is_full_jitter_capped() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(n, 0.5, 4.0, rng) for n in range(10) for _ in range(50)]
    assert all(0 <= d <= 4.0 for d in delays)
    assert all(backoff_delay(0, 0.5, 4.0, rng) <= 0.5 for _ in range(50))
    assert max(delays) > 3.0  # reaches the cap, not a fixed sequence


def test_token_bucket_spaces_callers_by_the_rate() -> None:
    clock = [0.0]
    waits: list[float] = []

    def sleep(s: float) -> None:
        waits.append(s)
        clock[0] += s

    bucket = TokenBucket(10, burst=2, clock=lambda: clock[0], sleep=sleep)
    for _ in range(6):
        bucket.acquire()
    assert waits == pytest.approx([0.1, 0.1, 0.1, 0.1])  # two free in the burst, then 1/rate each
