"""send_done_email: the owner gets a link that stays valid because it leads through
LeadLex to a freshly signed download, never a presigned URL in the e-mail."""

from __future__ import annotations

import gzip
import re
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.test import Client

from exports.close.ids import export_id_parse
from exports.models import ExportJob
from tests.conftest import make_key
from tests.exports.close.helpers import SEED_REQUEST, lower_keys, run, start
from tests.support.files import download

pytestmark = pytest.mark.django_db


def email_link(message: mail.EmailMessage) -> str:
    links = re.findall(r"https?://\S+", message.body)
    assert len(links) == 1, message.body
    return links[0]


def follow(link: str) -> tuple[int, str]:
    parts = urlsplit(link)
    response = Client().get(f"{parts.path}?{parts.query}")  # no credentials: the token is the authority
    return response.status_code, response.get("Location", "")


def test_the_owner_gets_an_email_whose_link_redirects_to_a_fresh_download(world, owner, settings):
    settings.LEADLEX_PUBLIC_URL = "https://leadlex.example"
    export = start(owner.client, {**SEED_REQUEST, "send_done_email": True})
    assert mail.outbox == []
    run(export)

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [owner.api_key.owner_email]
    assert "ready" in message.subject
    link = email_link(message)
    assert link.startswith(f"https://leadlex.example/v1/export/{export['id']}/download?token=")
    # Never a presigned URL (local signed file or S3 signature) in the e-mail, text or HTML.
    html = message.alternatives[0][0]
    for body in (message.body, html):
        assert "/files/" not in body and "X-Amz-Signature" not in body and "Signature=" not in body
    assert link.replace("&", "&amp;") in html or link in html

    status, location = follow(link)
    assert status == 302
    assert "/files/" in location or "X-Amz-Signature" in location
    code, headers, raw = download(location)
    assert code == 200 and lower_keys(headers)["content-encoding"] == "gzip"
    assert b"ACME Inc." in gzip.decompress(raw)


def test_each_click_signs_a_new_url_so_the_link_outlives_the_presigned_one(world, owner, settings):
    export = start(owner.client, {**SEED_REQUEST, "send_done_email": True})
    run(export)
    link = email_link(mail.outbox[0])
    settings.LEADLEX_DOWNLOAD_URL_TTL = 1
    _, first = follow(link)
    import time

    time.sleep(2.1)
    if settings.LEADLEX_STORAGE_BACKEND == "s3":
        assert "X-Amz-Expires=1" in first  # the S3 test server does not enforce expiry itself
    else:
        code, _, _ = download(first)
        assert code == 403  # the presigned URL has expired...
    status, second = follow(link)
    assert status == 302 and second != first  # ...the e-mailed link still works
    code, _, _ = download(second)
    assert code == 200


def test_no_email_when_send_done_email_is_false(world, owner):
    run(start(owner.client, SEED_REQUEST))
    assert mail.outbox == []


def test_send_done_email_defaults_to_true_as_in_close(world, owner):
    body = {k: v for k, v in SEED_REQUEST.items() if k != "send_done_email"}
    export = start(owner.client, body)
    assert export["send_done_email"] is True
    run(export)
    assert len(mail.outbox) == 1


def test_a_key_without_owner_email_sends_nothing(world, workspace):
    from rest_framework.test import APIClient

    _, raw = make_key(workspace, owner_email="")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    run(start(client, {**SEED_REQUEST, "send_done_email": True}))
    assert mail.outbox == []


def test_a_forged_or_foreign_token_is_404(world, owner):
    first = start(owner.client, {**SEED_REQUEST, "send_done_email": True})
    second = start(owner.client, {**SEED_REQUEST, "send_done_email": True})
    run(first)
    run(second)
    link = email_link(mail.outbox[0])
    token = link.split("token=")[1]
    assert follow(f"/v1/export/{first['id']}/download?token={token[:-2]}xx")[0] == 404
    assert follow(f"/v1/export/{second['id']}/download?token={token}")[0] == 404  # a token names one export
    assert follow(f"/v1/export/{first['id']}/download")[0] == 401


def test_the_link_of_an_expired_export_says_so(world, owner):
    export = start(owner.client, {**SEED_REQUEST, "send_done_email": True})
    run(export)
    ExportJob.objects.filter(pk=export_id_parse(export["id"])).update(status="expired")
    assert follow(email_link(mail.outbox[0]))[0] == 410


def test_a_key_of_the_workspace_may_use_the_download_url_too(world, owner, stranger):
    export = start(owner.client, SEED_REQUEST)
    assert owner.client.get(f"/v1/export/{export['id']}/download").status_code == 409  # not ready yet
    run(export)
    response = owner.client.get(f"/v1/export/{export['id']}/download")
    assert response.status_code == 302
    assert stranger.client.get(f"/v1/export/{export['id']}/download").status_code == 404
