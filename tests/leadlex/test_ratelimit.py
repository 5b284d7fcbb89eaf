"""Rate limits: exact across OS processes, with the headers of the contract.

The store is the profile's own: SQLite in the embedded profile, Redis in production.
"""

from __future__ import annotations

import multiprocessing
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.conf import settings

from leadlex.ratelimit import parse_rate, rate_limit_hit
from tests.conftest import make_key
from tests.support.ratelimit_child import hammer
from tests.support.server import WebServer


def test_the_counter_is_exact_across_processes(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    processes, hits = 4, 15
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    workspace_id = str(uuid.uuid4())
    workers = [
        ctx.Process(target=hammer, args=(str(tmp_path / "rl.sqlite3"), workspace_id, "25/hour", hits, barrier, results))
        for _ in range(processes)
    ]
    for w in workers:
        w.start()
    allowed = [results.get(timeout=60) for _ in workers]
    for w in workers:
        w.join(timeout=30)
        assert w.exitcode == 0
    assert sum(allowed) == 25  # 60 hits at a limit of 25: exactly 25 pass, whatever the interleaving
    assert ("redis" if settings.REDIS_URL else "sqlite") == settings.LEADLEX_RATELIMIT_STORE


@pytest.mark.django_db(transaction=True)
def test_a_real_multi_process_server_lets_exactly_the_limit_through(workspace):
    limit, requests_sent = 7, 40
    _, raw = make_key(workspace)
    _, other_raw = make_key(workspace.__class__.objects.create(name="Other"))
    server = WebServer(workers=3, extra_env={"LEADLEX_RATE_LIMITS": f"default={limit}/hour"})
    try:

        def get(_: int) -> requests.Response:
            return requests.get(server.url + "/v1/webhooks", headers={"Authorization": f"Bearer {raw}"}, timeout=30)

        with ThreadPoolExecutor(max_workers=12) as pool:
            responses = list(pool.map(get, range(requests_sent)))
        codes = sorted(r.status_code for r in responses)
        assert codes.count(200) == limit and codes.count(429) == requests_sent - limit, codes
        for r in responses:
            assert r.headers["X-RateLimit-Limit"] == str(limit)
            assert int(r.headers["X-RateLimit-Reset"]) % 3600 == 0
        remaining = sorted(int(r.headers["X-RateLimit-Remaining"]) for r in responses if r.status_code == 200)
        assert remaining == list(range(limit))  # each success saw a distinct count
        limited = next(r for r in responses if r.status_code == 429)
        assert limited.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(limited.headers["Retry-After"]) <= 3600
        # Per workspace: another workspace still has its whole budget.
        other = requests.get(server.url + "/v1/webhooks", headers={"Authorization": f"Bearer {other_raw}"}, timeout=30)
        assert other.status_code == 200 and other.headers["X-RateLimit-Remaining"] == str(limit - 1)
        # Several worker processes really answered.
        assert (
            len(
                {
                    line.split("[")[2].split("]")[0]
                    for line in server.log().splitlines()
                    if "Booting worker with pid" in line
                }
            )
            >= 2
        )
    finally:
        server.stop()


def test_limits_are_per_group(workspace, settings):
    settings.LEADLEX_RATE_LIMITS = {"default": "2/minute", "contacts_export": "1/hour"}
    ws = str(workspace.pk)
    assert [rate_limit_hit(workspace_id=ws, group="contacts_export").allowed for _ in range(2)] == [True, False]
    assert [rate_limit_hit(workspace_id=ws, group="default").allowed for _ in range(3)] == [True, True, False]
    # An unknown group falls back to the default limit.
    assert rate_limit_hit(workspace_id=ws, group="something_new").limit == 2


def test_a_new_window_starts_from_zero(workspace, settings):
    settings.LEADLEX_RATE_LIMITS = {"default": "1/minute"}
    ws = str(workspace.pk)
    first = rate_limit_hit(workspace_id=ws, group="default", now=1_800_000_000)
    second = rate_limit_hit(workspace_id=ws, group="default", now=1_800_000_030)
    third = rate_limit_hit(workspace_id=ws, group="default", now=1_800_000_060)
    assert (first.allowed, second.allowed, third.allowed) == (True, False, True)
    assert first.reset == 1_800_000_060 and third.reset == 1_800_000_120
    assert second.headers()["X-RateLimit-Remaining"] == "0" and "Retry-After" in second.headers()


@pytest.mark.parametrize(
    "text, limit, period",
    [("10/hour", 10, 3600), ("5/minute", 5, 60), ("600/minutes", 600, 60), ("1/second", 1, 1), ("3/day", 3, 86400)],
)
def test_rates_parse(text, limit, period):
    rate = parse_rate(text)
    assert (rate.limit, rate.period) == (limit, period)


@pytest.mark.parametrize("text", ["10", "ten/hour", "10/fortnight", "-1/hour", ""])
def test_bad_rates_are_configuration_errors(text):
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured):
        parse_rate(text)
