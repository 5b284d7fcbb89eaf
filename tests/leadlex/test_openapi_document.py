"""What /v1/openapi.json promises a client, operation by operation: a summary for
users, the error responses with the one Error shape, the request-id and
rate-limit headers, and bodies where the API takes them."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from django.conf import settings as django_settings
from django.test import Client

from tests.conftest import KeyedClient

METHODS = ("get", "post", "put", "patch", "delete")
ERROR_REF = {"$ref": "#/components/schemas/Error"}
HEALTH_PATHS = ("/healthz", "/readyz")


@pytest.fixture(scope="module")
def document(django_db_blocker) -> dict[str, Any]:
    with django_db_blocker.unblock():
        response = Client().get("/v1/openapi.json")
    assert response.status_code == 200
    return response.json()


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def test_the_error_component_is_the_contracts_envelope(document: dict[str, Any]) -> None:
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    inner = error["properties"]["error"]
    assert set(inner["properties"]) == {"code", "message", "details"} and inner["required"] == ["code", "message"]


def test_every_operation_has_a_summary_for_users_and_no_maintainer_notes(document: dict[str, Any]) -> None:
    for method, path, operation in _operations(document):
        assert operation.get("summary"), f"{method} {path} has no summary"
        text = operation.get("summary", "") + operation.get("description", "")
        for note in ("rate_limit_group", "required_scope", "``", "Views set", "thin view"):
            assert note not in text, f"{method} {path} shows a maintainer's note: {text!r}"
    descriptions = [op.get("description", "") for _m, _p, op in _operations(document)]
    assert len(set(descriptions)) > len(descriptions) // 3  # not one docstring repeated everywhere


def test_every_operation_documents_its_errors_with_the_error_schema(document: dict[str, Any]) -> None:
    for method, path, operation in _operations(document):
        responses = operation["responses"]
        errors = {code for code in responses if code >= "400"}
        if path in HEALTH_PATHS:
            assert errors == ({"503"} if path == "/readyz" else set()), (path, errors)
        else:
            assert errors, f"{method} {path} documents no error"
        for code in errors:
            assert responses[code]["content"]["application/json"]["schema"] == ERROR_REF, (method, path, code)
        if (
            path != "/v1/export/{export_id}/download" and path not in HEALTH_PATHS
        ):  # the e-mailed link: its token is its key
            assert {"401", "403", "429"} <= errors, (method, path, errors)
        if "{" in path:
            assert "404" in errors, (method, path)
        if "requestBody" in operation:
            assert {"400", "413", "415"} <= errors, (method, path)


def test_specific_errors_are_where_the_seeds_and_the_contract_put_them(document: dict[str, Any]) -> None:
    paths = document["paths"]
    assert "422" in paths["/v1/contacts/exports"]["post"]["responses"]
    assert "409" in paths["/v1/import/contacts"]["post"]["responses"]
    assert "404" in paths["/v1/contacts/merge"]["post"]["responses"]
    assert {"302", "401", "404", "409", "410"} <= set(paths["/v1/export/{export_id}/download"]["get"]["responses"])


def test_every_response_documents_the_request_id_and_rate_limit_headers(document: dict[str, Any]) -> None:
    for method, path, operation in _operations(document):
        for code, response in operation["responses"].items():
            headers = response["headers"]
            assert headers["X-Request-ID"]["required"] is True, (method, path, code)
            if path in HEALTH_PATHS or path == "/v1/export/{export_id}/download" or code in ("401", "403"):
                continue  # not rate-limited / refused before the limit is counted
            rate = {name: headers[name] for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")}
            assert all(h["schema"] == {"type": "integer"} for h in rate.values())
            assert all(h["required"] is (code < "300" or code == "429") for h in rate.values()), (method, path, code)
        assert operation["responses"].get("429", {"headers": {"Retry-After": {}}})["headers"]["Retry-After"] is not None


def test_either_key_scheme_authenticates_an_operation(document: dict[str, Any]) -> None:
    # Two requirement objects mean "either"; one naming both would mean "both at once".
    assert document["paths"]["/v1/contacts"]["get"]["security"] == [{"ApiKeyBearer": []}, {"ApiKeyBasic": []}]


def test_removing_contacts_from_a_list_is_documented_as_it_behaves(document: dict[str, Any]) -> None:
    operation = document["paths"]["/v1/lists/{list_id}/contacts"]["delete"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/ListMembership"}
    assert "contact_ids" in document["components"]["schemas"]["ListMembership"]["properties"]
    assert "204" not in operation["responses"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ListMembershipResultEnvelope"
    }


def test_a_blank_url_is_a_documented_answer(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for schema, field in (("Contact", "linkedin_url"), ("Company", "url")):
        assert "format" not in schemas[schema]["properties"][field], (schema, field)


def _resolved(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with the document's components beside it, so that its $refs resolve."""
    return {**schema, "components": document["components"]}


@pytest.mark.django_db
def test_the_health_probes_are_documented_with_no_security_and_their_real_answers(
    document: dict[str, Any], storage_ready: None
) -> None:
    client = Client()
    for path, live_keys in (("/healthz", {"status"}), ("/readyz", {"status", "checks"})):
        operation = document["paths"][path]["get"]
        assert operation["security"] == [], path  # no key; an empty list overrides any default
        assert operation["summary"] and operation["description"], path
        assert operation["servers"] == [{"url": "/"}]  # at the root, whatever prefix serves /v1/
        assert "429" not in operation["responses"] and "401" not in operation["responses"]
        assert "X-RateLimit-Limit" not in operation["responses"]["200"]["headers"]
        response = client.get(path)
        assert response.status_code == 200, response.content
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        jsonschema.validate(response.json(), _resolved(document, schema))
        assert set(response.json()) == live_keys
    # The probe's own "not ready" answer is the documented 503.
    not_ready = {"error": {"code": "not_ready", "message": "Not ready: broker did not answer.", "details": {}}}
    ready_503 = document["paths"]["/readyz"]["get"]["responses"]["503"]["content"]["application/json"]["schema"]
    jsonschema.validate(not_ready, _resolved(document, ready_503))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {"status": "ok", "checks": {"database": {"status": "up"}}},
            _resolved(
                document,
                document["paths"]["/readyz"]["get"]["responses"]["200"]["content"]["application/json"]["schema"],
            ),
        )


def test_each_path_alias_is_a_server_of_the_document_that_serves_the_api(
    document: dict[str, Any], owner: KeyedClient
) -> None:
    urls = [server["url"] for server in document["servers"]]
    assert urls[0] == "/"  # the first server is what tools use by default: the paths as written
    assert urls[1:] == [alias.removesuffix("/v1/") for alias in django_settings.LEADLEX_API_PATH_ALIASES]
    for url in urls:
        response = owner.client.get(url.rstrip("/") + "/v1/contacts")
        assert response.status_code == 200, (url, response.content)
    for alias in django_settings.LEADLEX_API_PATH_ALIASES:
        assert f"`{alias}`" in document["info"]["description"]


@pytest.mark.django_db
def test_the_servers_follow_the_alias_setting(settings) -> None:
    settings.LEADLEX_API_PATH_ALIASES = ["/gateway/v1/", "/legacy/"]
    document = Client().get("/v1/openapi.json").json()
    # "/legacy/" stands for "/v1/" itself: no server URL can say that, the description does.
    assert [server["url"] for server in document["servers"]] == ["/", "/gateway"]
    assert "`/legacy/`" in document["info"]["description"]
