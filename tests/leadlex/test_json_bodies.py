"""One parser for every JSON body: what no endpoint can process or no database can
store is a 400 validation_error naming the field, never a 500."""

from __future__ import annotations

import json

import pytest

from contacts.models import Contact
from tests.leadlex.test_error_envelope import assert_envelope

pytestmark = pytest.mark.django_db


def post_raw(client, path: str, body: str | bytes, method: str = "POST", content_type: str = "application/json"):
    return client.generic(method, path, body, content_type=content_type)


# Every operation that takes a JSON body, on objects that exist (so only the body can be wrong).
JSON_OPERATIONS = [
    ("POST", "/v1/contacts"),
    ("PATCH", "/v1/contacts/{contact}"),
    ("POST", "/v1/contacts/merge"),
    ("POST", "/v1/contacts/{contact}/comet_tokens"),
    ("POST", "/v1/lists"),
    ("POST", "/v1/lists/{list}/contacts"),
    ("DELETE", "/v1/lists/{list}/contacts"),
    ("POST", "/v1/companies"),
    ("PATCH", "/v1/companies/{company}"),
    ("POST", "/v1/opportunities"),
    ("PATCH", "/v1/opportunities/{opportunity}"),
    ("POST", "/v1/activities"),
    ("POST", "/v1/webhooks"),
    ("POST", "/v1/contacts/exports"),
    ("POST", "/v1/export/lead/"),
    ("POST", "/v1/export/opportunity/"),
    ("POST", "/v1/import/contacts"),
]


@pytest.fixture
def objects(owner) -> dict[str, str]:
    """One of each kind of object, made through the API."""

    def made(path: str, body: dict) -> str:
        response = owner.client.post(path, body, format="json")
        assert response.status_code == 201, response.content
        data = response.json()
        return (data.get("data") or data)["id"]

    company = made("/v1/companies", {"name": "Acme"})
    contact = made("/v1/contacts", {"full_name": "Jane", "email": "jane@example.com", "company_id": company})
    return {
        "contact": contact,
        "company": company,
        "list": made("/v1/lists", {"name": "L"}),
        "opportunity": made("/v1/opportunities", {"company_id": company, "status": "active", "value": 1}),
        "activity": made("/v1/activities", {"type": "note", "company_id": company, "body": "hi"}),
    }


@pytest.mark.parametrize("body", ["42", "null", "true", '"text"', "[]", "[{}]", "1.5"])
def test_an_import_body_that_is_not_an_object_is_a_validation_error(owner, body):
    error = assert_envelope(post_raw(owner.client, "/v1/import/contacts", body), 400, "validation_error")
    assert "must be a JSON object" in error["message"]
    assert error["details"] == {"field": "$"}


@pytest.mark.parametrize(("method", "path"), JSON_OPERATIONS)
def test_no_endpoint_takes_a_non_object_or_pathologically_nested_body(owner, objects, method, path):
    path = path.format(**objects)
    status = 422 if path == "/v1/contacts/exports" else 400  # the async export answers 422 for bad parameters
    for body in ["42", "null", "true", "[1, 2]"]:
        assert_envelope(post_raw(owner.client, path, body, method), status, "validation_error")
    deep = "[" * 100_000 + "]" * 100_000  # past orjson's own limit: refused as unreadable, a 400 everywhere
    error = assert_envelope(post_raw(owner.client, path, deep, method), 400, "validation_error")
    assert "nested too deeply" in error["message"]


def test_a_body_just_past_the_depth_limit_names_where_it_is_too_deep(owner):
    from leadlex.parsers import MAX_DEPTH

    value: object = "x"
    for _ in range(MAX_DEPTH):
        value = {"k": value}
    error = assert_envelope(
        post_raw(owner.client, "/v1/contacts", json.dumps({"full_name": "A", "custom": value})), 400, "validation_error"
    )
    assert error["details"]["field"].startswith("custom.k.k")
    assert "nested too deeply" in error["message"]


def test_a_lone_surrogate_is_refused_naming_the_field(owner):
    # Sent with ensure_ascii escapes, as json.dumps does by default: "\ud800" is six ASCII characters.
    body = json.dumps({"full_name": "lone \ud800 surrogate", "email": "lone@example.com"})
    assert "\\ud800" in body
    error = assert_envelope(post_raw(owner.client, "/v1/contacts", body), 400, "validation_error")
    assert error["details"] == {"field": "full_name"}
    assert "surrogate" in error["message"]
    assert not Contact.objects.exists()


def test_a_lone_surrogate_deep_in_a_body_is_named_by_its_path(owner):
    body = json.dumps(
        {"rows": [{"full_name": "Ok", "email": "ok@example.com"}, {"full_name": "B", "custom": {"note \udfff": "x"}}]}
    )
    error = assert_envelope(post_raw(owner.client, "/v1/import/contacts", body), 400, "validation_error")
    assert error["details"] == {"field": 'rows[1].custom["note \\udfff"]'}
    assert not Contact.objects.exists()


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/contacts", {"full_name": "a\x00b"}, "full_name"),
        ("/v1/contacts", {"full_name": "A", "tags": ["ok", "a\x00"]}, "tags[1]"),
        ("/v1/contacts", {"full_name": "A", "custom": {"k\x00": "v"}}, 'custom["k\\u0000"]'),
        ("/v1/companies", {"name": "A", "addresses": [{"city": "\x00"}]}, "addresses[0].city"),
        ("/v1/webhooks", {"url": "http://example.com/\x00", "events": ["import.completed"]}, "url"),
    ],
)
def test_a_nul_character_is_refused_naming_the_field(owner, path, body, field):
    error = assert_envelope(owner.client.post(path, body, format="json"), 400, "validation_error")
    assert error["details"]["field"] == field
    assert "NUL" in error["message"]


def test_a_nul_in_one_import_row_is_that_rows_error_and_the_good_rows_are_imported(owner):
    body = {
        "rows": [
            {"full_name": "Jane", "email": "jane@example.com"},
            {"full_name": "Bad\x00Name", "email": "bad@example.com"},
            {"full_name": "Bob", "email": "bob@example.com"},
        ]
    }
    response = owner.client.post("/v1/import/contacts", body, format="json")
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["created_count"] == 2
    assert [(e["row"], e["field"]) for e in data["errors"]] == [(2, "full_name")]
    assert sorted(Contact.objects.values_list("email", flat=True)) == ["bob@example.com", "jane@example.com"]


def test_a_nul_in_an_ndjson_import_line_is_that_rows_error(owner):
    lines = [
        json.dumps({"full_name": "Jane", "email": "jane@example.com"}),
        json.dumps({"full_name": "X", "email": "x@example.com", "job_title": "a\x00"}),
    ]
    response = post_raw(owner.client, "/v1/import/contacts", "\n".join(lines), content_type="application/x-ndjson")
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["created_count"] == 1 and [e["row"] for e in data["errors"]] == [2]


def test_an_ndjson_line_nested_too_deeply_is_refused_naming_the_line(owner):
    lines = [json.dumps({"full_name": "Jane"}), "[" * 5000 + "]" * 5000]
    error = assert_envelope(
        post_raw(owner.client, "/v1/import/contacts", "\n".join(lines), content_type="application/x-ndjson"),
        400,
        "validation_error",
    )
    assert error["message"].startswith("line 2:")


@pytest.mark.parametrize("number", [10**19, 2**63])
def test_a_number_no_column_can_hold_is_refused_naming_the_field(owner, objects, number):
    body = f'{{"company_id": "{objects["company"]}", "status": "active", "value": {number}, "currency": "USD"}}'
    error = assert_envelope(post_raw(owner.client, "/v1/opportunities", body), 400, "validation_error")
    assert error["details"] == {"field": "value"}


def test_a_number_past_64_bits_is_refused_by_the_serializer(owner, objects):
    body = f'{{"company_id": "{objects["company"]}", "status": "active", "value": {10**30}}}'
    error = assert_envelope(post_raw(owner.client, "/v1/opportunities", body), 400, "validation_error")
    assert "value" in error["details"]["fields"]


def test_a_json_body_declared_in_another_charset_is_read_in_it(owner):
    body = json.dumps({"full_name": "Jürgen Müller", "email": "jm@example.com"}, ensure_ascii=False)
    response = post_raw(
        owner.client, "/v1/contacts", body.encode("latin-1"), content_type="application/json; charset=ISO-8859-1"
    )
    assert response.status_code == 201, response.content
    assert Contact.objects.get().full_name == "Jürgen Müller"


def test_invalid_utf8_and_unknown_charsets_are_validation_errors(owner):
    error = assert_envelope(
        post_raw(owner.client, "/v1/contacts", b'{"full_name": "J\xfcrgen"}'), 400, "validation_error"
    )
    assert "UTF-8" in error["message"]
    assert_envelope(
        post_raw(owner.client, "/v1/contacts", b"{}", content_type="application/json; charset=klingon"),
        400,
        "validation_error",
    )


def test_a_utf8_byte_order_mark_before_the_document_is_accepted(owner):
    body = b"\xef\xbb\xbf" + json.dumps({"full_name": "Bom", "email": "bom@example.com"}).encode()
    assert post_raw(owner.client, "/v1/contacts", body).status_code == 201


def test_a_nul_in_one_csv_cell_is_that_rows_error(owner):
    csv_text = "full_name,email,custom.note\nJane,jane@example.com,ok\nBad,bad@example.com,a\x00b\n"
    response = owner.client.post("/v1/import/contacts", {"csv": csv_text}, format="json")
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["created_count"] == 1
    assert [(e["row"], e["field"], e["code"]) for e in data["errors"]] == [(3, "custom", "invalid_value")]
