"""The API documentation's own example requests, verbatim, against a live server.

Each curl line below is copied from the published documentation as it stands: method,
URL (host and path), headers, body. Only the host is pointed at the test run's
server and the placeholder key replaced by a real one; the path stays as written
(the hosted gateway's ``/functions/v1/api-gateway/v1/`` and Close's ``/api/v1/``
are served as ``/v1/``). A documented example that fails is the first thing a new user
sees.
"""

from __future__ import annotations

import csv
import io
import shlex
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from contacts.models import Contact
from leadlex.models import Workspace
from tests.conftest import make_key
from tests.exports.factories import make_contacts

pytestmark = pytest.mark.django_db(transaction=True)

PLACEHOLDER_KEYS = ("wbk_your_api_key_here", "<CLOSE_API_KEY>")

SEED_000_REQUEST = """curl --request GET \\
  --url https://api.example.com/v1/contacts/export"""

SEED_000_EXAMPLE = """curl "https://data.leadlex.com/functions/v1/api-gateway/v1/contacts/export?limit=5000" \\
  -H "Authorization: Bearer wbk_your_api_key_here" \\
  -H "Accept: text/csv" \\
  -o contacts.csv"""

SEED_002_EXAMPLE = """curl -X POST https://api.close.com/api/v1/export/lead/ \\
 -H "Content-Type: application/json" \\
 -u "<CLOSE_API_KEY>:" \\
 -d '{
 "date_format": "iso8601",
 "format": "csv",
 "results_limit": null,
 "s_query": {
 "queries": [
 {
 "object_type": "lead",
 "type": "object_type"
 },
 {
 "condition": {
 "mode": "full_words",
 "type": "text",
 "value": "ACME Inc."
 },
 "field": {
 "field_name": "name",
 "object_type": "lead",
 "type": "regular_field"
 },
 "type": "field_condition"
 }
 ],
 "type": "and"
 },
 "send_done_email": false,
 "sort": [
 {
 "direction": "desc",
 "field": {
 "field_name": "date_created",
 "object_type": "lead",
 "type": "regular_field"
 }
 }
 ],
 "type": "leads"
}'"""

SEED_003_REQUEST = """curl --request POST \\
  --url https://api.example.com/v1/import/contacts \\
  --header 'Content-Type: application/json' \\
  --data '
{
  "rows": [
    {}
  ],
  "csv": "<string>",
  "has_header": true,
  "mapping": {},
  "update_existing": true,
  "tags": [
    {}
  ]
}
'"""

SEED_003_EXAMPLE = """curl -X POST \\
  https://data.leadlex.com/functions/v1/api-gateway/v1/import/contacts \\
  -H "Authorization: Bearer wbk_your_api_key_here" \\
  -H "Content-Type: application/json" \\
  -d '{
    "rows": [
      { "full_name": "Jane Doe", "email": "jane@acme.com" },
      { "full_name": "Bob Smith", "email": "bob@beta.com" }
    ]
  }'"""


@dataclass
class Curl:
    method: str = "GET"
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    data: str | None = None
    user: str | None = None
    output: str | None = None

    @classmethod
    def parse(cls, line: str) -> Curl:
        """The curl options the documented examples use; anything else is a test bug, not ignored."""
        words = shlex.split(line.replace("\\\n", " "))
        assert words[0] == "curl"
        curl, it = cls(), iter(words[1:])
        for word in it:
            if word in ("-X", "--request"):
                curl.method = next(it)
            elif word == "--url":
                curl.url = next(it)
            elif word in ("-H", "--header"):
                name, _, value = next(it).partition(":")
                curl.headers[name.strip()] = value.strip()
            elif word in ("-d", "--data"):
                curl.data = next(it)
                if curl.method == "GET":
                    curl.method = "POST"  # what curl does with -d
            elif word == "-u":
                curl.user = next(it)
            elif word == "-o":
                curl.output = next(it)
            elif word.startswith("-"):
                raise AssertionError(f"curl option {word} is not handled")
            else:
                curl.url = word
        return curl

    def send(self, base_url: str, key: str) -> requests.Response:
        parts = urlsplit(self.url)
        url = urlunsplit(urlsplit(base_url)[:2] + parts[2:])
        headers = {name: value.replace(PLACEHOLDER_KEYS[0], key) for name, value in self.headers.items()}
        auth = None
        if self.user is not None:
            user, _, password = self.user.replace(PLACEHOLDER_KEYS[1], key).partition(":")
            auth = (user, password)
        return requests.request(
            self.method, url, headers=headers, data=self.data.encode() if self.data else None, auth=auth, timeout=60
        )


@pytest.fixture
def key() -> str:
    _, raw = make_key(Workspace.objects.create(name="Seeds", timezone="UTC"))
    return raw


def assert_api_headers(response: requests.Response) -> None:
    for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "X-Request-ID"):
        assert name in response.headers, name


def test_seed_000_request_without_a_key_is_refused_in_the_envelope(server, key):
    response = Curl.parse(SEED_000_REQUEST).send(server.url, key)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_key"
    assert response.headers["X-Request-ID"]


def test_seed_000_example_downloads_the_csv(server, key):
    workspace = Workspace.objects.get(name="Seeds")
    make_contacts(workspace, 3)
    curl = Curl.parse(SEED_000_EXAMPLE)
    assert curl.headers["Accept"] == "text/csv" and curl.output == "contacts.csv"
    response = curl.send(server.url, key)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == 'attachment; filename="contacts-export.csv"'
    assert_api_headers(response)
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8"))))
    assert rows[0] == [
        "id",
        "full_name",
        "email",
        "phone",
        "job_title",
        "company_name",
        "linkedin_url",
        "tags",
        "created_at",
    ]
    assert len(rows) == 4


def test_seed_001_example_values_queue_an_export(server, key):
    # The async export's documentation shows no curl line; its examples are the two dates.
    response = requests.post(
        server.url + "/v1/contacts/exports",
        headers={"Authorization": f"Bearer {key}"},
        json={"start_date": "2024-01-15 00:00:00", "end_date": "2024-01-15 23:59:59"},
        timeout=60,
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued" and set(body) == {"id", "status"}
    assert_api_headers(response)
    status = requests.get(
        server.url + f"/v1/contacts/exports/{body['id']}", headers={"Authorization": f"Bearer {key}"}, timeout=60
    )
    assert status.status_code == 200 and status.json()["id"] == body["id"]


def test_seed_002_example_creates_a_close_lead_export(server, key):
    response = Curl.parse(SEED_002_EXAMPLE).send(server.url, key)
    assert response.status_code == 200, response.text
    body = response.json()
    documented = {
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
        "results_limit",
        "s_query",
        "send_done_email",
        "sort",
        "status",
        "type",
        "updated_by",
    }
    assert documented <= set(body), documented - set(body)
    assert body["id"].startswith("expo_")
    assert body["status"] == "created" and body["format"] == "csv" and body["type"] == "leads"
    assert body["date_format"] == "iso8601" and body["send_done_email"] is False
    assert body["s_query"]["queries"][1]["condition"]["value"] == "ACME Inc."
    assert body["download_url"] is None and body["n_docs_processed"] == 0


def test_seed_003_request_without_a_key_is_refused_in_the_envelope(server, key):
    response = Curl.parse(SEED_003_REQUEST).send(server.url, key)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_key"


def test_seed_003_request_with_a_key_explains_its_placeholder_body(server, key):
    curl = Curl.parse(SEED_003_REQUEST)
    curl.headers["Authorization"] = f"Bearer {key}"
    response = curl.send(server.url, key)
    assert response.status_code == 400  # rows and csv both given: the documented 400 case
    assert response.json()["error"]["code"] == "validation_error"


def test_seed_003_example_imports_its_two_rows(server, key):
    response = Curl.parse(SEED_003_EXAMPLE).send(server.url, key)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["status"] == "completed" and data["job_id"].startswith("imp_")
    assert (data["created_count"], data["updated_count"], data["skipped_count"], data["errors"]) == (2, 0, 0, [])
    assert_api_headers(response)
    assert sorted(Contact.objects.values_list("email", flat=True)) == ["bob@beta.com", "jane@acme.com"]
