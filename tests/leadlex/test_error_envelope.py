"""Every /v1 error answers in the contract's envelope, with a request id."""

from __future__ import annotations

import json
import re
import uuid

import pytest

pytestmark = pytest.mark.django_db


def assert_envelope(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert set(body["error"]) <= {"code", "message", "details"}
    assert response["X-Request-ID"]
    return body["error"]


def test_malformed_json_is_a_validation_error(owner):
    response = owner.client.generic("POST", "/v1/contacts", '{"full_name": "x",', content_type="application/json")
    error = assert_envelope(response, 400, "validation_error")
    assert "Malformed" in error["message"]


def test_a_body_that_is_not_an_object_is_a_validation_error(owner):
    for path in ("/v1/contacts", "/v1/companies", "/v1/lists", "/v1/contacts/merge"):
        response = owner.client.post(path, ["not", "an", "object"], format="json")
        assert_envelope(response, 400, "validation_error")


@pytest.mark.parametrize(
    "path, body",
    [
        ("/v1/contacts", {"full_name": "A", "fullname": "typo", "shoe_size": 44}),
        ("/v1/companies", {"name": "A", "website": "x"}),
        ("/v1/lists", {"name": "A", "color": "red"}),
        ("/v1/opportunities", {"amount": 5}),
        ("/v1/activities", {"type": "note", "subject": "x"}),
    ],
)
def test_unknown_fields_are_named_in_the_error(owner, path, body):
    error = assert_envelope(owner.client.post(path, body, format="json"), 400, "validation_error")
    known = {"full_name", "name", "type"}
    for field in set(body) - known:
        assert field in error["details"]["fields"], error
    assert any(field in error["message"] for field in set(body) - known)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"full_name": ["A"]}, "full_name"),
        ({"full_name": "A", "tags": "vip"}, None),  # a comma-separated string is accepted
        ({"full_name": "A", "tags": 5}, "tags"),
        ({"full_name": "A", "custom": "x"}, "custom"),
        ({"full_name": "A", "created_at": 1700000000}, "created_at"),
        ({"full_name": "A", "company_id": 12}, "company_id"),
        ({"full_name": "A", "email": 5}, "email"),
        ({"full_name": "A", "lists": {"a": 1}}, "lists"),
        ({"full_name": True}, "full_name"),
    ],
)
def test_wrong_types_are_validation_errors_naming_the_field(owner, body, field):
    response = owner.client.post("/v1/contacts", body, format="json")
    if field is None:
        assert response.status_code == 201
        return
    error = assert_envelope(response, 400, "validation_error")
    assert field in error["details"]["fields"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"full_name": "x" * 301}, "full_name"),
        ({"full_name": "A", "job_title": "x" * 301}, "job_title"),
        ({"full_name": "A", "email": "a" * 250 + "@example.com"}, "email"),
        ({"full_name": "A", "linkedin_url": "https://linkedin.com/" + "a" * 1000}, "linkedin_url"),
        ({"full_name": "A", "tags": ["x" * 101]}, "tags"),
        ({"full_name": "A", "custom": {"blob": "x" * 70_000}}, "custom"),
        ({"full_name": "A", "phone": "1" * 80}, "phone"),
    ],
)
def test_oversized_values_are_validation_errors(owner, body, field):
    error = assert_envelope(owner.client.post("/v1/contacts", body, format="json"), 400, "validation_error")
    assert field in error["details"]["fields"]


def test_an_oversized_body_is_413_before_it_is_read(owner, settings):
    settings.LEADLEX_MAX_BODY_BYTES = 1000
    response = owner.client.post("/v1/contacts", {"full_name": "x" * 2000}, format="json")
    error = assert_envelope(response, 413, "payload_too_large")
    assert "1000" in error["message"]


@pytest.mark.parametrize(
    "method, path",
    [
        ("put", "/v1/contacts"),
        ("delete", "/v1/contacts"),
        ("put", f"/v1/contacts/{uuid.uuid4()}"),
        ("get", "/v1/contacts/merge"),
        ("patch", "/v1/lists"),
        ("put", "/v1/companies"),
        ("delete", "/v1/activities"),
    ],
)
def test_an_unsupported_method_is_405_in_the_envelope_with_allow(owner, method, path):
    response = getattr(owner.client, method)(path, {}, format="json")
    assert_envelope(response, 405, "method_not_allowed")
    assert response["Allow"]


def test_a_form_encoded_body_is_415_in_the_envelope(owner):
    response = owner.client.post("/v1/contacts", "full_name=A", content_type="application/x-www-form-urlencoded")
    assert_envelope(response, 415, "unsupported_media_type")


def test_an_unknown_path_is_404_in_the_envelope_even_with_debug_on(owner, settings):
    """The embedded profile runs with DEBUG on: Django's HTML debug page must not
    reach an API client."""
    settings.DEBUG = True
    assert_envelope(owner.client.get("/v1/nothing-here"), 404, "not_found")
    assert_envelope(owner.client.get("/v1/contacts/exports/"), 404, "not_found")
    outside = owner.client.get("/nothing-here")  # not the API: left as Django answers
    assert outside.status_code == 404 and outside["Content-Type"].startswith("text/html")
    docs = owner.client.get("/v1/docs/")
    assert docs.status_code == 200 and docs["Content-Type"].startswith("text/html")


def test_an_unknown_path_and_a_malformed_id_are_404_in_the_envelope(owner):
    assert_envelope(owner.client.get("/v1/nothing-here"), 404, "not_found")
    assert_envelope(owner.client.get("/v1/companies/12"), 404, "not_found")
    assert_envelope(owner.client.get(f"/v1/companies/{uuid.uuid4()}"), 404, "not_found")


def test_a_rate_limited_request_is_429_with_retry_after_and_headers(owner, settings):
    settings.LEADLEX_RATE_LIMITS = {**settings.LEADLEX_RATE_LIMITS, "default": "2/minute"}
    for remaining in ("1", "0"):
        ok = owner.client.get("/v1/contacts")
        assert ok.status_code == 200 and ok["X-RateLimit-Remaining"] == remaining
    response = owner.client.get("/v1/contacts")
    assert_envelope(response, 429, "rate_limited")
    assert int(response["Retry-After"]) >= 1
    assert response["X-RateLimit-Limit"] == "2" and response["X-RateLimit-Remaining"] == "0"


def test_errors_echo_the_clients_request_id_or_make_one(owner, anon):
    for client, call in [
        (owner.client, lambda c, **h: c.post("/v1/contacts", {"bogus": 1}, format="json", **h)),
        (anon, lambda c, **h: c.get("/v1/contacts", **h)),
        (owner.client, lambda c, **h: c.put("/v1/contacts", {}, format="json", **h)),
    ]:
        assert call(client, HTTP_X_REQUEST_ID="req-123")["X-Request-ID"] == "req-123"
        assert re.fullmatch(r"[0-9a-f]{32}", call(client)["X-Request-ID"])


def test_a_validation_error_never_becomes_a_500(owner):
    """A grab-bag of hostile bodies: every one answers 4xx in the envelope."""
    bodies = [
        None,
        0,
        "str",
        [],
        {"": 1},
        {"full_name": None},
        {"email": None, "phone": None},
        {"full_name": "A", "custom": {"1": [1]}},
        {"full_name": "\x00"},
        {"full_name": "A", "tags": ["a\x00"]},
        {"full_name": "A", "custom": {"k": "v\x00"}},
        {"full_name": "A", "created_at": "9999-99-99"},
    ]
    for body in bodies:
        response = owner.client.generic("POST", "/v1/contacts", json.dumps(body), content_type="application/json")
        assert response.status_code < 500, (body, response.content)


def test_nul_characters_are_refused_everywhere_as_postgresql_cannot_store_them(owner):
    for path, body in [
        ("/v1/contacts", {"full_name": "a\x00b"}),
        ("/v1/companies", {"name": "a\x00b"}),
        ("/v1/companies", {"name": "A", "custom": {"k": "\x00"}}),
        ("/v1/companies", {"name": "A", "addresses": [{"city": "\x00"}]}),
        ("/v1/lists", {"name": "\x00"}),
        ("/v1/activities", {"type": "note", "body": "\x00"}),
    ]:
        assert_envelope(owner.client.post(path, body, format="json"), 400, "validation_error")
