"""The admin's import flow in a real browser (Debian's chromium, driven by Playwright)
against the live server and a real worker: log in, upload what Excel writes on Windows in
Germany (Windows-1252, semicolons), check the decoded preview and the proposed mapping,
start the import and watch the job reach "completed"."""

from __future__ import annotations

import shutil

import pytest
from django.contrib.auth.models import User

from contacts.models import Contact
from imports.models import ImportJob
from leadlex.models import Workspace
from tests.conftest import running_in_ci

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

ROWS = 700  # more than the 500 a request imports itself: a queued job, watched to the end


def excel_file() -> bytes:
    lines = ["Name;E-Mail-Adresse;Telefon;Firma;Position"]
    lines.append("Jürgen Müller;juergen@example.de;+49 30 1234567;Bäckerei Groß;Inhaber")
    lines += [
        f"Zoë Größer {i};zoe{i}@example.de;+49 30 {i:07d};Straße & Söhne {i % 7};Verkäuferin" for i in range(ROWS - 1)
    ]
    return ("\r\n".join(lines) + "\r\n").encode("cp1252")


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        if running_in_ci():
            pytest.fail("chromium is not installed (.ci/run installs it with apt-get)")
        pytest.skip("chromium is not installed")
    return path


@pytest.fixture
def browser(chromium, monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls
    # (no coroutine involved) are safe, which Django cannot tell.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        # --no-sandbox: the sandbox needs user namespaces, which a container run as root lacks.
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


def test_staff_import_a_windows_1252_semicolon_file_in_the_browser_and_watch_it_complete(
    server, browser, celery_worker
):
    from playwright.sync_api import expect

    workspace = Workspace.objects.create(name="Messe")
    User.objects.create_superuser("staff", "staff@example.com", "correct horse battery")
    page = browser.new_page()
    page.set_default_timeout(30_000)

    page.goto(f"{server.url}/admin/login/?next=/admin/imports/importjob/upload/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", "correct horse battery")
    page.click("input[type=submit]")
    expect(page.locator("#id_file")).to_be_visible()

    page.select_option("#id_workspace", label=workspace.name)
    page.set_input_files("#id_file", files=[{"name": "kontakte.csv", "mimeType": "text/csv", "buffer": excel_file()}])
    page.fill("#id_tags", "messe")
    page.click("input[type=submit][value^='Next']")

    # The mapping step: read as Windows-1252 with semicolons, rows decoded, fields proposed.
    expect(page.locator("#leadlex-dialect")).to_contain_text("Read as windows-1252")
    expect(page.locator("#leadlex-dialect")).to_contain_text("semicolon")
    expect(page.get_by_role("cell", name="Jürgen Müller", exact=True)).to_be_visible()
    expect(page.get_by_role("cell", name="Bäckerei Groß", exact=True)).to_be_visible()
    assert "\ufffd" not in page.content()
    proposed = {
        name: page.locator(f"select[name=col_{index}]").input_value()
        for index, name in enumerate(["Name", "E-Mail-Adresse", "Telefon", "Firma", "Position"])
    }
    assert proposed == {
        "Name": "full_name",
        "E-Mail-Adresse": "email",
        "Telefon": "phone",
        "Firma": "company_name",
        "Position": "job_title",
    }
    page.select_option("select[name=col_4]", "custom.position")  # staff change one choice
    page.click("input[type=submit][value='Start import']")

    # The job's page: queued or running, then completed (the page is reloaded to watch it).
    expect(page.locator("body")).to_contain_text("imp_")
    job = ImportJob.objects.get(workspace=workspace)
    for _ in range(120):
        if "Completed" in page.locator(".field-status").inner_text():
            break
        page.wait_for_timeout(500)
        page.reload()
    expect(page.locator(".field-status")).to_contain_text("Completed")
    expect(page.locator(".field-progress_bar")).to_contain_text("100%")
    job.refresh_from_db()
    assert (job.status, job.created_count, job.error_count) == ("completed", ROWS, 0)
    assert job.params["encoding"] == "cp1252" and job.params["delimiter"] == ";"
    assert job.upload is not None and job.upload.status == "expired"  # its file went once it was imported
    juergen = Contact.objects.get(workspace=workspace, email="juergen@example.de")
    assert (juergen.full_name, juergen.company_name, juergen.custom) == (
        "Jürgen Müller",
        "Bäckerei Groß",
        {"position": "Inhaber"},
    )
    assert set(juergen.tags.values_list("name", flat=True)) == {"messe"}
