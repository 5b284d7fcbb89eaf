"""A client generated from the served OpenAPI document by a mainstream generator
(openapi-python-client) builds, imports, and works against the live server: it
lists contacts and runs an import, with the models the document describes."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from leadlex.models import Workspace
from tests.conftest import make_key
from tests.support.server import WebServer

# openapi-python-client has no body type for text/csv; a CSV file is bytes to it.
GENERATOR_CONFIG = {"content_type_overrides": {"text/csv": "application/octet-stream"}, "post_hooks": []}


@pytest.fixture
def server(transactional_db) -> Iterator[WebServer]:
    web = WebServer(workers=1)
    try:
        yield web
    finally:
        web.stop()


def _generate(document: bytes, where: Path) -> str:
    (where / "openapi.json").write_bytes(document)
    (where / "config.json").write_text(json.dumps(GENERATOR_CONFIG))
    generator = Path(sys.executable).with_name("openapi-python-client")
    result = subprocess.run(
        [
            str(generator),
            "generate",
            "--path",
            str(where / "openapi.json"),
            "--config",
            str(where / "config.json"),
            "--meta",
            "none",
            "--output-path",
            str(where / "leadlex_client"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


@pytest.fixture
def generated(server: WebServer, tmp_path: Path) -> Iterator[tuple[Any, str]]:
    """The package generated from the document the live server serves, importable."""
    output = _generate(requests.get(server.url + "/v1/openapi.json", timeout=30).content, tmp_path)
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module("leadlex_client"), output
    finally:
        sys.path.remove(str(tmp_path))
        for name in [name for name in sys.modules if name == "leadlex_client" or name.startswith("leadlex_client.")]:
            del sys.modules[name]


def test_a_generated_client_imports_contacts_and_lists_them_on_the_live_server(
    server: WebServer, generated: tuple[Any, str]
) -> None:
    package, output = generated
    assert "Warning" not in output and "WARNING" not in output, output  # nothing of the document was skipped
    workspace = Workspace.objects.create(name="Generated", timezone="UTC")
    _key, raw_key = make_key(workspace)
    import_contacts = importlib.import_module("leadlex_client.api.import_.import_contacts")
    contacts_list = importlib.import_module("leadlex_client.api.contacts.contacts_list")
    models = importlib.import_module("leadlex_client.models")

    client = package.AuthenticatedClient(base_url=server.url, token=raw_key)
    rows = [
        models.ImportRequestRowsItem.from_dict({"full_name": "Ada Lovelace", "email": "ada@example.com"}),
        models.ImportRequestRowsItem.from_dict(
            {
                "full_name": "Grace Hopper",
                "email": "grace@example.com",
                "linkedin_url": "https://www.linkedin.com/in/grace",
            }
        ),
    ]
    response = import_contacts.sync_detailed(client=client, body=models.ImportRequest(rows=rows, tags=["generated"]))
    assert response.status_code == 200, response.content
    summary = response.parsed.data
    assert (summary.status, summary.created_count, summary.errors) == ("completed", 2, [])
    assert response.headers["X-RateLimit-Limit"] and response.headers["X-Request-ID"]

    page = contacts_list.sync(client=client, tag=["generated"], limit=10)
    assert isinstance(page, models.ContactPage)
    # One import may give both rows the same created_at: the page is then ordered by id.
    assert sorted((c.full_name, c.email, c.linkedin_url) for c in page.data) == [
        ("Ada Lovelace", "ada@example.com", ""),
        ("Grace Hopper", "grace@example.com", "https://www.linkedin.com/in/grace"),
    ]
    assert page.next_cursor is None

    # An error comes back as the documented Error model, not an unparsed body.
    bad = package.AuthenticatedClient(base_url=server.url, token="wbk_" + "x" * 40)
    refused = contacts_list.sync_detailed(client=bad)
    assert refused.status_code == 401
    assert isinstance(refused.parsed, models.Error) and refused.parsed.error.code == "invalid_key"
