"""The docs pages (/v1/docs/ Swagger UI, /v1/redoc/) work with no internet: every
asset they reference is a local /static/ file that the server answers."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command
from django.test import Client

ASSET = re.compile(r'(?:src|href)="([^"]+)"')


@pytest.fixture
def collected_static(settings, tmp_path, db):
    """What `bin/leadlex` and the compose file do before serving: collectstatic."""
    settings.STATIC_ROOT = tmp_path / "static"
    call_command("collectstatic", "--noinput", verbosity=0)
    return Client()  # a new handler: WhiteNoise scans STATIC_ROOT when it starts


@pytest.mark.parametrize("page", ["/v1/docs/", "/v1/redoc/"])
def test_a_docs_page_loads_only_local_assets_and_each_is_served(collected_static: Client, page: str) -> None:
    response = collected_static.get(page)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "//" not in re.sub(r"<script>.*?</script>", "", html, flags=re.DOTALL).replace("<!DOCTYPE html>", ""), (
        "an absolute or protocol-relative URL (a CDN, web fonts) in the page"
    )
    assets = ASSET.findall(html)
    assert any(url.endswith(".js") for url in assets)
    for url in assets:
        assert url.startswith("/static/drf_spectacular_sidecar/"), url
        served = collected_static.get(url)
        assert served.status_code == 200, url
        assert b"".join(served.streaming_content if served.streaming else [served.content])


def test_the_swagger_page_reads_the_schema_from_this_server(collected_static: Client) -> None:
    html = collected_static.get("/v1/docs/").content.decode()
    assert '"/v1/openapi.json"' in html
    assert "cdn.jsdelivr" not in html and "@latest" not in html
    assert '"validatorUrl": null' in html  # no badge fetched from validator.swagger.io
