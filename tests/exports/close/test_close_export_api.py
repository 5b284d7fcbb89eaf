"""POST /v1/export/lead/, /v1/export/opportunity/, GET /v1/export/ and /{id}/ through
HTTP, with jobs run in-process by the engine (the worker path has its own test)."""

from __future__ import annotations

import re
import sys

import pytest
from django.db.models import F
from rest_framework.test import APIClient

from exports.close.ids import export_id_parse
from exports.engine import export_job_cancel
from exports.models import ExportJob
from leadlex.models import SCOPE_READ_CONTACTS
from tests.conftest import basic_auth, keyed_client
from tests.exports.close.helpers import (
    SEED_LEAD_FIELDS,
    SEED_REQUEST,
    SEED_RESPONSE_KEYS,
    export_and_read,
    fetch,
    run,
    start,
)

pytestmark = pytest.mark.django_db


def job_of(export: dict) -> ExportJob:
    return ExportJob.objects.get(pk=export_id_parse(export["id"]))


# --- The documented example ---------------------------------------------------------------------
def test_the_seed_example_request_gives_the_seed_response_shape(world, owner):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=basic_auth(owner.raw_key))  # Close's dialect: key as user, no password
    response = client.post("/v1/export/lead/", SEED_REQUEST, format="json")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == SEED_RESPONSE_KEYS | {"request_id"}  # the one LeadLex addition
    assert re.fullmatch(r"expo_[0-9a-f]{32}", body["id"])
    assert body["status"] == "created"
    assert body["n_docs"] is None and body["n_docs_processed"] == 0 and body["download_url"] is None
    assert body["s_query"] == SEED_REQUEST["s_query"] and body["sort"] == SEED_REQUEST["sort"]
    assert (body["format"], body["type"], body["date_format"]) == ("csv", "leads", "iso8601")
    assert body["results_limit"] is None and body["send_done_email"] is False
    assert body["organization_id"] == str(world.workspace.id)
    assert body["created_by"] == body["updated_by"] == f"key_{owner.api_key.id.hex}"
    # Every default lead field Close documents, plus the nested opportunities.
    assert body["fields"] == sorted([*SEED_LEAD_FIELDS, "opportunities"])
    for stamp in ("date_created", "date_updated"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", body[stamp])


def test_the_seed_example_exports_the_matching_lead_as_gzipped_csv(world, owner):
    rows = export_and_read(owner.client, SEED_REQUEST)
    assert [r["name"] for r in rows] == ["ACME Inc."]
    row = rows[0]
    assert row["id"] == str(world.companies["acme"].id)
    assert row["date_created"] == "2024-01-10T12:00:00+00:00"  # iso8601: no microseconds, with offset
    assert row["contacts"] == "Wile E. Coyote <wile@acme.example>; Road Runner <beep@acme.example>"
    assert row["opportunities"] == "Won 5,000.00 USD (100%); Active 10.00 USD (20%)"
    assert row["custom.tier"] == "gold" and row["custom.seats"] == "12" and row["custom.vip"] == "true"
    assert row["addresses"] == "Paris, FR"


def test_status_and_counts_after_the_run(world, owner):
    export = start(owner.client, {**SEED_REQUEST, "s_query": None})
    run(export)
    detail = owner.client.get(f"/v1/export/{export['id']}/").json()
    assert detail["status"] == "done"
    assert detail["n_docs"] == detail["n_docs_processed"] == 4
    assert detail["download_url"]


# --- Types x formats x date formats -----------------------------------------------------------
DATETIME_PATTERNS = {
    "original": r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d",
    "iso8601": r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d",
    "excel": r"\d{4}-\d\d-\d\d (0\d|1[0-2]):\d\d:\d\d (AM|PM)",
}
JSON_DATETIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00"
EXPECTED_ROWS = {"leads": 4, "contacts": 4, "lead_opps": 3}


@pytest.mark.parametrize("date_format", ["original", "iso8601", "excel"])
@pytest.mark.parametrize("fmt", ["csv", "json", "ndjson"])
@pytest.mark.parametrize("export_type", ["leads", "contacts", "lead_opps"])
def test_every_type_format_and_date_format(world, owner, export_type, fmt, date_format):
    rows = export_and_read(owner.client, {"type": export_type, "format": fmt, "date_format": date_format})
    assert len(rows) == EXPECTED_ROWS[export_type]
    for row in rows:
        pattern = DATETIME_PATTERNS[date_format] if fmt == "csv" else JSON_DATETIME  # date_format is CSV-only
        assert re.fullmatch(pattern, row["date_created"]), row["date_created"]
    if export_type == "leads":
        acme = next(r for r in rows if r["name"] == "ACME Inc.")
        if fmt != "csv":
            assert [c["name"] for c in acme["contacts"]] == ["Wile E. Coyote", "Road Runner"]
            assert acme["contacts"][0]["emails"] == [
                {"email": "wile@acme.example", "type": "office"},
                {"email": "genius@desert.example", "type": "office"},
            ]
            assert [o["status_type"] for o in acme["opportunities"]] == ["won", "active"]
            assert acme["addresses"] == [{"city": "Paris", "country": "FR"}]
            assert acme["custom"] == {"tier": "gold", "seats": 12, "vip": True, "region": "EMEA"}
            assert "activities" not in acme
    elif export_type == "contacts":
        wile = next(r for r in rows if r["name"] == "Wile E. Coyote")
        assert wile["lead_name"] == "ACME Inc."
        if fmt == "csv":
            assert wile["emails"] == "wile@acme.example; genius@desert.example"
            assert wile["lead_custom.tier"] == "gold" and wile["custom.score"] == "7"
            assert re.fullmatch(DATETIME_PATTERNS[date_format], wile["lead_date_created"])
        else:
            assert wile["lead_custom"]["tier"] == "gold" and wile["tags"] == ["vip"]
    else:
        won = next(r for r in rows if r["status_type"] == "won")
        assert won["lead_name"] == "ACME Inc." and won["contact_name"] == "Wile E. Coyote"
        assert won["date_won"] == "2024-03-01"  # a date stays YYYY-MM-DD in every format
        assert str(won["value"]) == "500000"


def test_excel_dates_are_utc_with_a_12_hour_clock(world, owner):
    world.workspace.timezone = "America/New_York"
    world.workspace.save()
    rows = export_and_read(
        owner.client, {"type": "leads", "format": "csv", "date_format": "excel", "fields": ["name", "date_created"]}
    )
    globex = next(r for r in rows if r["name"] == "Globex Corporation")
    assert globex["date_created"] == "2024-03-05 11:30:00 PM"
    rows = export_and_read(
        owner.client, {"type": "leads", "format": "csv", "date_format": "original", "fields": ["name", "date_created"]}
    )
    globex = next(r for r in rows if r["name"] == "Globex Corporation")
    assert globex["date_created"] == "2024-03-05 18:30:00.000000-05:00"  # original: workspace zone, microseconds


def test_json_is_one_valid_array_document_even_when_empty(world, owner):
    rows = export_and_read(owner.client, {"type": "leads", "format": "json", "s_query": {"type": "or", "queries": []}})
    assert rows == []
    rows = export_and_read(
        owner.client, {"type": "contacts", "format": "csv", "s_query": {"type": "or", "queries": []}}
    )
    assert rows == []


def test_json_spans_many_batches_as_one_document(world, owner, settings):
    settings.LEADLEX_CLOSE_EXPORT_BATCH = 1
    rows = export_and_read(owner.client, {"type": "contacts", "format": "json"})
    assert len(rows) == 4


# --- fields, include_activities, include_smart_fields ------------------------------------------
def test_fields_narrow_every_type(world, owner):
    rows = export_and_read(owner.client, {"type": "leads", "format": "json", "fields": ["id", "name", "custom.tier"]})
    assert all(set(r) == {"id", "name", "custom"} for r in rows)
    assert next(r for r in rows if r["name"] == "ACME Inc.")["custom"] == {"tier": "gold"}
    rows = export_and_read(owner.client, {"type": "contacts", "format": "csv", "fields": ["name", "lead_name"]})
    assert list(rows[0]) == ["name", "lead_name"]
    rows = export_and_read(
        owner.client, {"type": "lead_opps", "format": "ndjson", "fields": ["value", "lead_custom.tier"]}
    )
    assert {r["value"] for r in rows} == {500_000, 1_000, 90_000}


def test_include_activities_nests_them_in_json_leads(world, owner):
    rows = export_and_read(owner.client, {"type": "leads", "format": "json", "include_activities": True})
    acme = next(r for r in rows if r["name"] == "ACME Inc.")
    assert [(a["_type"], a["note"]) for a in acme["activities"]] == [
        ("Call", "Discussed anvils"),
        ("Note", "Follow up"),
    ]
    assert next(r for r in rows if r["name"] == "Initech")["activities"] == []


def test_include_smart_fields_are_computed_counts(world, owner):
    rows = export_and_read(owner.client, {"type": "leads", "format": "json", "include_smart_fields": True})
    acme = next(r for r in rows if r["name"] == "ACME Inc.")
    assert (acme["num_contacts"], acme["num_opportunities"], acme["num_activities"], acme["num_emails"]) == (2, 2, 2, 0)
    assert acme["last_activity_date"] == "2024-03-12T09:00:00.000000+00:00"
    initech = next(r for r in rows if r["name"] == "Initech")
    assert (initech["num_contacts"], initech["last_activity_date"]) == (0, None)
    rows = export_and_read(
        owner.client, {"type": "contacts", "format": "csv", "include_smart_fields": True, "date_format": "iso8601"}
    )
    hank = next(r for r in rows if r["name"] == "Hank Scorpio")
    assert hank["lead_num_emails"] == "1" and hank["lead_last_activity_date"] == "2024-03-20T09:00:00+00:00"


# --- Sort, limit, has_related --------------------------------------------------------------------
def test_sort_and_results_limit(world, owner):
    body = {
        "type": "leads",
        "format": "csv",
        "fields": ["name"],
        "results_limit": 3,
        "sort": [
            {"direction": "desc", "field": {"type": "regular_field", "field_name": "status"}},
            {"direction": "asc", "field": {"type": "regular_field", "field_name": "name"}},
        ],
    }
    assert [r["name"] for r in export_and_read(owner.client, body)] == [
        "Café Crème Ltd",
        "ACME Inc.",
        "Globex Corporation",
    ]
    detail = owner.client.get("/v1/export/").json()["data"][0]
    assert detail["n_docs"] == 3 and detail["results_limit"] == 3


def test_results_limit_counts_leads_for_the_contacts_type(world, owner):
    body = {
        "type": "contacts",
        "format": "ndjson",
        "results_limit": 1,
        "sort": [{"field": {"type": "regular_field", "field_name": "name"}}],
    }
    assert [r["name"] for r in export_and_read(owner.client, body)] == ["Wile E. Coyote", "Road Runner"]


def test_has_related_in_an_export_query(world, owner):
    body = {
        "type": "leads",
        "format": "ndjson",
        "fields": ["name"],
        "s_query": {
            "type": "has_related",
            "this_object_type": "lead",
            "related_object_type": "opportunity",
            "related_query": {
                "type": "field_condition",
                "field": {"type": "regular_field", "field_name": "value"},
                "condition": {"type": "number_range", "gte": 50_000},
            },
        },
    }
    assert {r["name"] for r in export_and_read(owner.client, body)} == {"ACME Inc.", "Globex Corporation"}


def test_relative_dates_are_frozen_when_the_export_is_requested(world, owner):
    export = start(
        owner.client,
        {
            "type": "leads",
            "format": "json",
            "s_query": {
                "type": "field_condition",
                "field": {"type": "regular_field", "field_name": "date_created"},
                "condition": {
                    "type": "moment_range",
                    "on_or_after": {"type": "offset", "direction": "past", "offset": {"days": 1}},
                },
            },
        },
    )
    assert job_of(export).parameters["now"] and job_of(export).parameters["tz"] == "UTC"


# --- Errors -------------------------------------------------------------------------------------
BAD_REQUESTS = [
    (
        {
            **SEED_REQUEST,
            "s_query": {
                "type": "and",
                "queries": [
                    {"type": "object_type", "object_type": "lead"},
                    {
                        "type": "field_condition",
                        "field": {"type": "regular_field", "field_name": "name"},
                        "condition": {"type": "text", "mode": "fuzzy", "value": "x"},
                    },
                ],
            },
        },
        'queries[1].condition.mode: unknown mode "fuzzy"',
        {"parameter": "s_query", "path": "queries[1].condition.mode"},
    ),
    (
        {
            **SEED_REQUEST,
            "s_query": {
                "type": "field_condition",
                "field": {"type": "regular_field", "field_name": "nope"},
                "condition": {"type": "exists"},
            },
        },
        "field.field_name: unknown lead field 'nope'",
        {"parameter": "s_query", "path": "field.field_name"},
    ),
    (
        {**SEED_REQUEST, "sort": [{"direction": "sideways", "field": {"type": "regular_field", "field_name": "name"}}]},
        "sort[0].direction: unknown direction 'sideways'",
        {"parameter": "sort", "path": "sort[0].direction"},
    ),
    ({**SEED_REQUEST, "results_limit": -1}, "results_limit: expected a whole number", None),
    ({**SEED_REQUEST, "format": "xlsx"}, "format: ", {"field": "format"}),
    ({**SEED_REQUEST, "type": "people"}, "type: ", {"field": "type"}),
    ({**SEED_REQUEST, "date_format": "us"}, "date_format: ", {"field": "date_format"}),
    ({**SEED_REQUEST, "fields": ["name", "shoe_size"]}, "fields: Unknown field 'shoe_size'", {"field": "fields"}),
    ({**SEED_REQUEST, "send_done_email": "yes"}, "send_done_email: ", {"field": "send_done_email"}),
    ({**SEED_REQUEST, "colour": "blue"}, "colour: Unknown parameter.", {"field": "colour"}),
    ({"type": "leads"}, "format: ", {"field": "format"}),
]


@pytest.mark.parametrize(("body", "message", "details"), BAD_REQUESTS)
def test_invalid_requests_answer_400_naming_the_bad_part(owner, body, message, details):
    response = owner.client.post("/v1/export/lead/", body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"].startswith(message), error["message"]
    if details:
        assert error["details"] == details
    assert not ExportJob.objects.exists()


def test_a_too_deep_s_query_is_a_400(owner):
    tree: dict = {"type": "match_all"}
    for _ in range(40):
        tree = {"type": "not", "query": tree}
    response = owner.client.post("/v1/export/lead/", {**SEED_REQUEST, "s_query": tree}, format="json")
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["error"]["message"]


def test_absurdly_nested_json_is_a_400_not_a_500(owner):
    depth = sys.getrecursionlimit() + 100
    raw = '{"type": "leads", "format": "csv", "s_query": ' + "[" * depth + "]" * depth + "}"
    response = owner.client.post("/v1/export/lead/", raw, content_type="application/json")
    assert response.status_code == 400


def test_a_body_that_is_not_an_object_is_a_400(owner):
    response = owner.client.post("/v1/export/lead/", [1, 2], format="json")
    assert response.status_code == 400


# --- Auth and isolation ------------------------------------------------------------------------
def test_a_read_only_key_may_export_and_anonymous_may_not(world, reader, anon):
    assert reader.client.post("/v1/export/lead/", SEED_REQUEST, format="json").status_code == 200
    response = anon.post("/v1/export/lead/", SEED_REQUEST, format="json")
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_key"


def test_another_workspace_sees_none_of_the_exports_nor_their_rows(world, other_world, owner, stranger):
    export = start(owner.client, {"type": "contacts", "format": "ndjson"})
    assert stranger.client.get(f"/v1/export/{export['id']}/").status_code == 404
    assert stranger.client.get(f"/v1/export/{export['id']}/download").status_code == 404
    assert stranger.client.get("/v1/export/").json() == {"has_more": False, "data": []}
    # The stranger's own export of the same query holds only its own workspace's rows.
    rows = export_and_read(stranger.client, {"type": "contacts", "format": "ndjson", "fields": ["id"]})
    assert {r["id"] for r in rows} == {str(c.id) for c in other_world.contacts.values()}


def test_unknown_and_malformed_ids_are_404(owner):
    for export_id in ("expo_" + "0" * 32, "expo_nothex", "12345", ExportJob().pk.hex):
        assert owner.client.get(f"/v1/export/{export_id}/").status_code == 404


def test_the_leadlex_dialect_jobs_are_not_listed_here(world, owner):
    ExportJob.objects.create(workspace=world.workspace, kind="contacts", format="ndjson", parameters={})
    assert owner.client.get("/v1/export/").json()["data"] == []


# --- Listing ---------------------------------------------------------------------------------------
def test_list_is_newest_first_and_paged_close_style(world, owner):
    ids = [start(owner.client, {**SEED_REQUEST, "format": fmt})["id"] for fmt in ("csv", "json", "ndjson")]
    page = owner.client.get("/v1/export/", {"_limit": 2}).json()
    assert page["has_more"] is True and [e["id"] for e in page["data"]] == ids[::-1][:2]
    page = owner.client.get("/v1/export/", {"_skip": 2, "_limit": 2}).json()
    assert page["has_more"] is False and [e["id"] for e in page["data"]] == [ids[0]]
    assert owner.client.get("/v1/export/", {"_limit": 1000}).status_code == 400
    assert owner.client.get("/v1/export/", {"_skip": "x"}).status_code == 400


# --- Status mapping ------------------------------------------------------------------------------
def test_statuses_map_to_closes(world, owner):
    export = start(owner.client, SEED_REQUEST)
    job = job_of(export)

    def status() -> dict:
        return owner.client.get(f"/v1/export/{export['id']}/").json()

    assert status()["status"] == "created"
    ExportJob.objects.filter(pk=job.pk).update(status="processing", processed_count=0)
    assert status()["status"] == "started"
    ExportJob.objects.filter(pk=job.pk).update(processed_count=F("processed_count") + 5)
    assert status()["status"] == "in_progress" and status()["n_docs_processed"] == 5
    ExportJob.objects.filter(pk=job.pk).update(status="failed", error="Export failed: boom")
    assert (status()["status"], status()["error"]) == ("error", "Export failed: boom")
    ExportJob.objects.filter(pk=job.pk).update(status="expired")
    assert (status()["status"], status()["download_url"]) == ("done", None)


def test_a_cancelled_export_is_an_error(world, owner):
    export = start(owner.client, SEED_REQUEST)
    export_job_cancel(job=job_of(export))
    assert owner.client.get(f"/v1/export/{export['id']}/").json()["status"] == "error"


# --- POST /export/opportunity/ ---------------------------------------------------------------------
def test_opportunity_export_filters(world, owner):
    def values(params: dict) -> set[int]:
        rows = export_and_read(owner.client, {"format": "ndjson", "params": params}, endpoint="opportunity")
        return {r["value"] for r in rows}

    assert values({}) == {500_000, 1_000, 90_000}
    assert values({"status_type": "won"}) == {500_000}
    assert values({"status": ["won", "lost"]}) == {500_000, 90_000}
    assert values({"value__gte": 50_000, "value__lt": 100_000}) == {90_000}
    assert values({"confidence__gte": 20}) == {500_000, 1_000}
    assert values({"date_won__gte": "2024-03-01", "date_won__lte": "2024-03-01"}) == {500_000}
    assert values({"date_created__gte": "2024-02-11"}) == set()
    assert values({"lead_id": str(world.companies["globex"].id)}) == {90_000}
    assert values({"contact_id": [str(world.contacts["wile"].id)]}) == {500_000}


def test_opportunity_export_object_and_csv(world, owner):
    export = start(
        owner.client, {"format": "csv", "status_type": "won", "date_format": "excel"}, endpoint="opportunity"
    )
    assert export["type"] == "lead_opps" and export["params"] == {"status": ["won"]} and export["s_query"] is None
    run(export)
    _, data = fetch(owner.client, export)
    assert b"Wile E. Coyote" in data and b"Globex" not in data


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"status_type": "maybe"}, "params.status_type: unknown status 'maybe'"),
        ({"value__gte": "lots"}, "params.value__gte: expected a number"),
        ({"date_won__gte": "yesterday"}, "params.date_won__gte: expected a date"),
        ({"lead_id": "lead_123"}, "params.lead_id: not a valid id"),
        ({"owner": "me"}, "params.owner: unknown filter"),
    ],
)
def test_opportunity_filter_errors_are_400(owner, params, message):
    response = owner.client.post("/v1/export/opportunity/", {"format": "csv", "params": params}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(message)


def test_a_key_without_read_scope_cannot_export(world):
    writer_only = keyed_client(world.workspace, ("write:contacts",))
    response = writer_only.client.post("/v1/export/lead/", SEED_REQUEST, format="json")
    assert response.status_code == 403
    assert SCOPE_READ_CONTACTS in response.json()["error"]["message"]
