"""Query strings the API cannot take are a 400 at the door, never a 500 (a NUL in a
filter was one on PostgreSQL) and never a silently changed value (invalid UTF-8
became U+FFFD)."""

from __future__ import annotations

import pytest

from tests.exports.factories import make_contacts
from tests.leadlex.test_error_envelope import assert_envelope

pytestmark = pytest.mark.django_db

HOSTILE = ["%00", "a%00b", "%ED%A0%80", "%FF", "9" * 30, "-1", "2020-13-45", "%F0%9F%98%80", "x" * 5000]
QUERIES = [
    "/v1/contacts?email={}",
    "/v1/contacts?cursor={}",
    "/v1/contacts?limit={}",
    "/v1/contacts?tag={}",
    "/v1/contacts?phone={}",
    "/v1/contacts?list_id={}",
    "/v1/contacts/export?created_after={}",
    "/v1/contacts/export?tag={}",
    "/v1/contacts/export?cursor={}",
    "/v1/contacts/export?list_id={}",
    "/v1/contacts/export?fields={}",
    "/v1/lists?cursor={}",
    "/v1/companies?cursor={}",
    "/v1/export/?cursor={}",
    "/v1/contacts/{}",
    "/v1/import/contacts/{}",
    "/v1/export/{}/",
    "/v1/contacts/exports/{}",
    "/v1/companies?limit={}",
    "/v1/contacts/{}/comet_tokens",
    "/v1/export/{}/download?token=abc",
    "/v1/webhooks/{}",
    "/v1/contacts?{}=1",
]


@pytest.mark.parametrize("query", QUERIES)
def test_no_hostile_query_value_is_a_server_error(owner, query):
    make_contacts(owner.workspace, 2)
    for value in HOSTILE:
        response = owner.client.get(query.format(value))
        assert response.status_code < 500, (query, value, response.content)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("/v1/contacts/export?tag=%00", "tag"),
        ("/v1/contacts?email=a%00b%40example.com", "email"),
        ("/v1/contacts?tag%00=x", "tag\x00"),
    ],
)
def test_a_nul_in_a_query_parameter_is_refused_naming_it(owner, query, field):
    error = assert_envelope(owner.client.get(query), 400, "validation_error")
    assert error["details"] == {"field": field}


def test_a_percent_escape_that_is_not_utf8_is_refused_not_replaced(owner):
    error = assert_envelope(owner.client.get("/v1/contacts?email=j%FCrgen%40example.com"), 400, "validation_error")
    assert error["details"] == {"field": "email"} and "UTF-8" in error["message"]


def test_utf8_query_values_are_read_as_sent(owner):
    owner.client.post(
        "/v1/contacts", {"full_name": "Jürgen", "email": "jurgen@example.com", "tags": ["müller"]}, format="json"
    )
    response = owner.client.get("/v1/contacts?tag=m%C3%BCller")
    assert response.status_code == 200
    assert [c["full_name"] for c in response.json()["data"]] == ["Jürgen"]
