"""Running Close-style exports in-process and reading their files back."""

from __future__ import annotations

import csv
import gzip
import io
import json
from typing import Any

from exports.close.ids import export_id_parse
from exports.engine import export_job_run
from tests.support.files import download

SEED_REQUEST = {
    "date_format": "iso8601",
    "format": "csv",
    "results_limit": None,
    "s_query": {
        "queries": [
            {"object_type": "lead", "type": "object_type"},
            {
                "condition": {"mode": "full_words", "type": "text", "value": "ACME Inc."},
                "field": {"field_name": "name", "object_type": "lead", "type": "regular_field"},
                "type": "field_condition",
            },
        ],
        "type": "and",
    },
    "send_done_email": False,
    "sort": [
        {"direction": "desc", "field": {"field_name": "date_created", "object_type": "lead", "type": "regular_field"}}
    ],
    "type": "leads",
}

SEED_RESPONSE_KEYS = {
    "created_by",
    "date_created",
    "date_format",
    "date_updated",
    "download_url",
    "fields",
    "format",
    "id",
    "n_docs",
    "n_docs_processed",
    "organization_id",
    "results_limit",
    "s_query",
    "send_done_email",
    "sort",
    "status",
    "type",
    "updated_by",
}
SEED_LEAD_FIELDS = [
    "addresses",
    "contacts",
    "created_by",
    "created_by_name",
    "custom",
    "date_created",
    "date_updated",
    "description",
    "display_name",
    "id",
    "name",
    "status_id",
    "status_label",
    "updated_by",
    "updated_by_name",
    "url",
]


def start(client: Any, body: dict[str, Any], endpoint: str = "lead") -> dict[str, Any]:
    response = client.post(f"/v1/export/{endpoint}/", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def run(export: dict[str, Any]) -> None:
    assert export_job_run(job_id=export_id_parse(export["id"])) == "completed"


def fetch(client: Any, export: dict[str, Any]) -> tuple[dict[str, str], bytes]:
    """GET the export, follow its download_url; returns (headers, decompressed body)."""
    detail = client.get(f"/v1/export/{export['id']}/").json()
    assert detail["status"] == "done", detail
    status, headers, raw = download(detail["download_url"])
    assert status == 200
    headers = lower_keys(headers)
    assert headers.get("content-encoding") == "gzip"
    return headers, gzip.decompress(raw)


def lower_keys(headers: dict[str, str]) -> dict[str, str]:
    """S3 servers answer lower-case header names; Django capitalises them."""
    return {k.lower(): v for k, v in headers.items()}


def export_and_read(client: Any, body: dict[str, Any], endpoint: str = "lead") -> Any:
    export = start(client, body, endpoint)
    run(export)
    headers, data = fetch(client, export)
    fmt = body["format"]
    if fmt == "csv":
        assert headers["content-type"].startswith("text/csv")
        return list(csv.DictReader(io.StringIO(data.decode(), newline="")))
    if fmt == "json":
        assert headers["content-type"].startswith("application/json")
        return json.loads(data)
    return [json.loads(line) for line in data.decode().splitlines() if line]
