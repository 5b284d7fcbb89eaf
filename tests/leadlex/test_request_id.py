"""X-Request-ID: echoed when sane, replaced otherwise, and on the request's log line."""

from __future__ import annotations

import logging
import re

import pytest
from django.conf import settings

FORMAT = settings.LOGGING["formatters"]["plain"]["format"]


def test_a_sane_client_id_is_echoed(owner):
    response = owner.client.get("/v1/webhooks", HTTP_X_REQUEST_ID="client-abc_123.x:y/z")
    assert response["X-Request-ID"] == "client-abc_123.x:y/z"
    assert owner.client.get("/v1/webhooks", HTTP_X_REQUEST_ID="a" * 128)["X-Request-ID"] == "a" * 128


@pytest.mark.parametrize("bad", ["a" * 129, "has space", "tab\there", "ünïcode", "line\nbreak", "", "\x7f"])
def test_an_insane_client_id_is_replaced_by_a_new_one(owner, bad):
    response = owner.client.get("/v1/webhooks", HTTP_X_REQUEST_ID=bad)
    assert response["X-Request-ID"] != bad
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


def test_without_a_client_id_every_response_gets_a_unique_one(owner, anon):
    ids = {owner.client.get("/v1/webhooks")["X-Request-ID"] for _ in range(5)}
    ids.add(anon.get("/v1/webhooks")["X-Request-ID"])  # errors too
    ids.add(anon.get("/v1/no-such-thing")["X-Request-ID"])
    assert len(ids) == 7


def test_the_request_id_is_on_the_log_line_of_the_request(owner, caplog):
    caplog.set_level(logging.INFO, logger="leadlex.request")
    owner.client.get("/v1/webhooks", HTTP_X_REQUEST_ID="trace-me-42")
    lines = [logging.Formatter(FORMAT).format(r) for r in caplog.records if r.name == "leadlex.request"]
    assert any("request_id=trace-me-42" in line and "GET /v1/webhooks 200" in line for line in lines), lines


def test_an_unexpected_error_is_logged_with_the_request_id_and_answered_500_in_the_envelope(owner, caplog, monkeypatch):
    def explode(**kwargs):
        raise RuntimeError("kaboom")

    monkeypatch.setattr("leadlex.webhooks.webhook_endpoint_list", explode)
    from leadlex.middleware import RequestIdLogFilter

    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(RequestIdLogFilter())  # as the configured console handler does
    response = owner.client.get("/v1/webhooks", HTTP_X_REQUEST_ID="err-7")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert response["X-Request-ID"] == "err-7"
    assert "kaboom" not in response.content.decode()
    error_lines = [logging.Formatter(FORMAT).format(r) for r in caplog.records if r.levelno >= logging.ERROR]
    assert error_lines and all("request_id=err-7" in line for line in error_lines), error_lines
