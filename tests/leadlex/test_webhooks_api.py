"""The webhook endpoint registry: /v1/webhooks."""

from __future__ import annotations

import pytest

from leadlex.models import WebhookEndpoint
from tests.support.clock import wait_for_a_fresh_window

PUBLIC_URL = "http://93.184.215.14/hooks"  # a literal public address: no DNS needed


@pytest.fixture
def strict(settings):
    settings.LEADLEX_WEBHOOKS_ALLOW_PRIVATE = False
    return settings


def test_it_registers_an_endpoint_and_shows_the_secret_only_once(owner, strict):
    response = owner.client.post("/v1/webhooks", {"url": PUBLIC_URL, "events": ["export.completed"]}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["url"] == PUBLIC_URL and body["events"] == ["export.completed"] and body["is_active"] is True
    assert body["secret"].startswith("whsec_") and len(body["secret"]) > 30
    assert WebhookEndpoint.objects.get(pk=body["id"]).secret == body["secret"]

    listed = owner.client.get("/v1/webhooks").json()["data"]
    assert [e["id"] for e in listed] == [body["id"]]
    assert "secret" not in listed[0]
    assert "secret" not in owner.client.get(f"/v1/webhooks/{body['id']}").json()
    assert body["secret"] not in owner.client.get("/v1/webhooks").content.decode()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:8000/hook",
        "http://10.1.2.3/",
        "http://192.168.0.10/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://0177.0.0.1/",
        "http://0/",
        "http://100.64.0.1/",
    ],
)
def test_it_refuses_urls_that_reach_private_addresses(owner, strict, url):
    response = owner.client.post("/v1/webhooks", {"url": url, "events": ["export.completed"]}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"]["reason"] == "private_address"
    assert not WebhookEndpoint.objects.exists()


def test_private_urls_are_accepted_when_the_setting_allows_them(owner, settings):
    settings.LEADLEX_WEBHOOKS_ALLOW_PRIVATE = True
    response = owner.client.post(
        "/v1/webhooks", {"url": "http://127.0.0.1:9/hook", "events": ["import.completed"]}, format="json"
    )
    assert response.status_code == 201


@pytest.mark.parametrize(
    "body, field",
    [
        ({"url": PUBLIC_URL, "events": ["export.exploded"]}, "events"),
        ({"url": PUBLIC_URL, "events": []}, "events"),
        ({"url": PUBLIC_URL}, "events"),
        ({"url": PUBLIC_URL, "events": "export.completed"}, "events"),
        ({"events": ["export.completed"]}, "url"),
        ({"url": "ftp://example.com/x", "events": ["export.completed"]}, "url"),
        ({"url": "http://user:pw@93.184.215.14/", "events": ["export.completed"]}, "url"),
        ({"url": PUBLIC_URL, "events": ["export.completed"], "colour": "red"}, "colour"),
    ],
)
def test_bad_bodies_answer_400_in_the_envelope(owner, strict, body, field):
    response = owner.client.post("/v1/webhooks", body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in str(error)


def test_a_json_list_body_is_a_validation_error(owner, strict):
    response = owner.client.post("/v1/webhooks", [1, 2], format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def test_delete_removes_the_endpoint(owner, strict):
    endpoint_id = owner.client.post(
        "/v1/webhooks", {"url": PUBLIC_URL, "events": ["export.failed"]}, format="json"
    ).json()["id"]
    assert owner.client.delete(f"/v1/webhooks/{endpoint_id}").status_code == 204
    assert owner.client.get("/v1/webhooks").json()["data"] == []
    assert owner.client.delete(f"/v1/webhooks/{endpoint_id}").status_code == 404


def test_a_read_only_key_can_list_but_not_register(reader, strict):
    assert reader.client.get("/v1/webhooks").status_code == 200
    response = reader.client.post("/v1/webhooks", {"url": PUBLIC_URL, "events": ["export.failed"]}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_permissions"


def test_without_a_key_it_answers_401(anon):
    response = anon.get("/v1/webhooks")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_key"


def test_another_workspaces_endpoints_are_invisible(owner, stranger, strict):
    endpoint_id = owner.client.post(
        "/v1/webhooks", {"url": PUBLIC_URL, "events": ["export.failed"]}, format="json"
    ).json()["id"]
    assert stranger.client.get("/v1/webhooks").json()["data"] == []
    for response in (
        stranger.client.get(f"/v1/webhooks/{endpoint_id}"),
        stranger.client.delete(f"/v1/webhooks/{endpoint_id}"),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert WebhookEndpoint.objects.filter(pk=endpoint_id).exists()
    assert owner.client.get("/v1/webhooks/not-a-uuid").status_code == 404


def test_a_workspace_holds_at_most_twenty_endpoints(owner, strict):
    for _ in range(20):
        assert (
            owner.client.post(
                "/v1/webhooks", {"url": PUBLIC_URL, "events": ["export.failed"]}, format="json"
            ).status_code
            == 201
        )
    response = owner.client.post("/v1/webhooks", {"url": PUBLIC_URL, "events": ["export.failed"]}, format="json")
    assert response.status_code == 400


def test_responses_carry_rate_limit_headers_and_429_after_the_limit(owner, settings):
    settings.LEADLEX_RATE_LIMITS = {**settings.LEADLEX_RATE_LIMITS, "default": "3/minute"}
    wait_for_a_fresh_window()  # the four requests in one minute's window
    for expected_remaining in ("2", "1", "0"):
        response = owner.client.get("/v1/webhooks")
        assert response.status_code == 200
        assert response["X-RateLimit-Limit"] == "3"
        assert response["X-RateLimit-Remaining"] == expected_remaining
    response = owner.client.get("/v1/webhooks")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert response["X-RateLimit-Remaining"] == "0"
    assert 1 <= int(response["Retry-After"]) <= 60
    assert int(response["X-RateLimit-Reset"]) % 60 == 0
