"""Saved mappings: /v1/import/mappings, and imports that name one (mapping_preset)."""

from __future__ import annotations

import pytest

from contacts.models import Contact
from imports.models import ImportJob

pytestmark = pytest.mark.django_db

URL = "/v1/import/mappings"
IMPORT = "/v1/import/contacts"
EXPORT_FILE = "Name;E-Mail-Adresse;Firma\r\nJürgen Müller;juergen@example.de;Groß GmbH\r\n"
MAPPING = {"Name": "full_name", "E-Mail-Adresse": "email", "Firma": "company_name"}


def test_a_saved_mapping_is_listed_fetched_used_by_name_and_deleted(owner) -> None:
    response = owner.client.post(URL, {"name": "CRM export (DE)", "mapping": MAPPING}, format="json")
    assert response.status_code == 201, response.content
    saved = response.json()["data"]
    assert (saved["name"], saved["mapping"]) == ("CRM export (DE)", MAPPING)
    assert owner.client.get(URL).json()["data"] == [saved]
    assert owner.client.get(f"{URL}/{saved['id']}").json()["data"] == saved

    # A file body names it in the query, a JSON body in the body.
    body = EXPORT_FILE.encode("cp1252")
    response = owner.client.post(f"{IMPORT}?mapping_preset=CRM export (DE)", data=body, content_type="text/csv")
    assert response.status_code == 200, response.content
    response = owner.client.post(
        IMPORT,
        {"csv": EXPORT_FILE.replace("juergen", "j2"), "mapping_preset": "CRM export (DE)"},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert set(Contact.objects.values_list("email", flat=True)) == {"juergen@example.de", "j2@example.de"}
    job = ImportJob.objects.earliest("created_at")
    assert (job.params["mapping_preset"], job.params["mapping"]) == ("CRM export (DE)", MAPPING)

    assert owner.client.delete(f"{URL}/{saved['id']}").status_code == 204
    assert owner.client.get(URL).json()["data"] == []
    response = owner.client.post(f"{IMPORT}?mapping_preset=CRM export (DE)", data=body, content_type="text/csv")
    assert response.status_code == 400 and response.json()["error"]["details"]["field"] == "mapping_preset"


def test_bad_mappings_duplicates_and_mixing_are_refused(owner) -> None:
    assert owner.client.post(URL, {"name": "a", "mapping": MAPPING}, format="json").status_code == 201
    again = owner.client.post(URL, {"name": "a", "mapping": MAPPING}, format="json")
    assert again.status_code == 400 and again.json()["error"]["details"]["field"] == "name"
    bad = owner.client.post(URL, {"name": "b", "mapping": {"Name": "shoe_size"}}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] == "mapping"
    both = owner.client.post(IMPORT, {"csv": EXPORT_FILE, "mapping": MAPPING, "mapping_preset": "a"}, format="json")
    assert both.status_code == 400, both.content
    rows = owner.client.post(IMPORT, {"rows": [{"email": "x@example.com"}], "mapping_preset": "a"}, format="json")
    assert rows.status_code == 400 and rows.json()["error"]["details"]["field"] == "mapping_preset"


def test_a_workspace_sees_only_its_own_mappings(owner, stranger) -> None:
    saved = owner.client.post(URL, {"name": "mine", "mapping": MAPPING}, format="json").json()["data"]
    assert stranger.client.get(URL).json()["data"] == []
    assert stranger.client.get(f"{URL}/{saved['id']}").status_code == 404
    assert stranger.client.delete(f"{URL}/{saved['id']}").status_code == 404
    response = stranger.client.post(f"{IMPORT}?mapping_preset=mine", data=EXPORT_FILE.encode(), content_type="text/csv")
    assert response.status_code == 400 and "no mapping named 'mine'" in response.json()["error"]["message"]


def test_a_read_only_key_lists_but_cannot_save(owner, reader) -> None:
    assert reader.client.get(URL).status_code == 200
    assert reader.client.post(URL, {"name": "x", "mapping": MAPPING}, format="json").status_code == 403


def test_the_admin_mapping_step_offers_the_workspaces_saved_mappings(owner, client) -> None:
    import io

    from django.contrib.auth.models import User

    owner.client.post(
        URL, {"name": "CRM export (DE)", "mapping": {"Name": "full_name", "Firma": "custom.firm"}}, format="json"
    )
    client.force_login(User.objects.create_superuser("admin", "admin@example.com", "pw-123456789"))
    response = client.post(
        "/admin/imports/importjob/upload/",
        {"workspace": owner.workspace.pk, "file": io.BytesIO(EXPORT_FILE.encode("cp1252")), "has_header": "on"},
    )
    mapping_url = response["Location"]
    assert "CRM export (DE)" in client.get(mapping_url).content.decode()
    page = client.get(mapping_url, {"preset": "CRM export (DE)"}).content.decode()
    assert 'value="custom.firm"' in page and "from the saved mapping" in page
    assert "not in the saved mapping" in page  # E-Mail-Adresse: the preset does not name it
