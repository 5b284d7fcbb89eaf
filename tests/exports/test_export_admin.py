"""The export admin as staff see it: one list of both dialects' jobs, downloads
signed at click time, and the export actions on contacts and workspaces."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from exports.close.ids import export_public_id
from exports.close.services import close_export_request
from exports.engine import export_job_create, export_job_run
from exports.models import ExportJob
from tests.exports.factories import make_contacts
from tests.support.files import csv_records, download, job_file_text, ndjson_records

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/exports/exportjob/"
# What a URL that downloads by itself contains: S3's presigned query (SigV4 or V2), or
# the local backend's signed /files/ path.
SIGNED_URL_MARKERS = ("X-Amz-Signature", "Signature=", "/files/")


def _completed_contacts_job(workspace, fmt="csv") -> ExportJob:
    job = export_job_create(workspace=workspace, kind="contacts", format=fmt, parameters={}, enqueue=False)
    export_job_run(job_id=job.pk)
    return ExportJob.objects.get(pk=job.pk)


def _completed_close_job(workspace) -> ExportJob:
    job = close_export_request(workspace=workspace, endpoint="lead", data={"type": "leads", "format": "json"})
    export_job_run(job_id=job.pk)
    return ExportJob.objects.get(pk=job.pk)


def _staff(client, *permissions: str):
    user = get_user_model().objects.create_user("clerk", "clerk@example.com", "pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=permissions))
    client.force_login(user)
    return client


def test_one_list_shows_both_dialects_and_the_dialect_filter_narrows_it(admin_client, owner) -> None:
    make_contacts(owner.workspace, 2)
    leadlex = _completed_contacts_job(owner.workspace)
    close = _completed_close_job(owner.workspace)
    page = admin_client.get(CHANGELIST).content.decode()
    assert str(leadlex.pk) in page and export_public_id(close) in page
    assert "Start a Close-style export" in page
    close_only = admin_client.get(CHANGELIST + "?dialect=close").content.decode()
    assert export_public_id(close) in close_only and str(leadlex.pk) not in close_only
    leadlex_only = admin_client.get(CHANGELIST + "?dialect=leadlex").content.decode()
    assert str(leadlex.pk) in leadlex_only and close.pk.hex not in leadlex_only


def test_the_list_page_costs_the_same_number_of_queries_for_2_jobs_as_for_12(admin_client, owner) -> None:
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(CHANGELIST).status_code == 200
        return len(captured)

    make_contacts(owner.workspace, 2)
    _completed_contacts_job(owner.workspace)
    _completed_close_job(owner.workspace)
    few = queries()
    for _ in range(5):
        _completed_contacts_job(owner.workspace, fmt="ndjson")
        _completed_close_job(owner.workspace)
    assert ExportJob.objects.count() == 12
    assert queries() == few


def test_a_close_job_change_page_shows_its_public_id_status_and_parameters(admin_client, owner) -> None:
    job = _completed_close_job(owner.workspace)
    page = admin_client.get(reverse("admin:exports_exportjob_change", args=[job.pk])).content.decode()
    assert export_public_id(job) in page and "Close" in page
    assert "&quot;type&quot;: &quot;leads&quot;" in page  # the parameters, readable
    assert reverse("admin:exports_exportjob_download", args=[job.pk]) in page


def test_no_admin_page_contains_a_url_that_downloads_by_itself(admin_client, owner) -> None:
    make_contacts(owner.workspace, 2)
    jobs = [_completed_contacts_job(owner.workspace), _completed_close_job(owner.workspace)]
    pages = [CHANGELIST, CHANGELIST + "?dialect=close", reverse("admin:exports_exportjob_close_start")]
    pages += [reverse("admin:exports_exportjob_change", args=[job.pk]) for job in jobs]
    for url in pages:
        page = admin_client.get(url).content.decode()
        assert not [marker for marker in SIGNED_URL_MARKERS if marker in page], url
    for job in jobs:  # while a click on the link gets one, signed then
        signed = admin_client.get(reverse("admin:exports_exportjob_download", args=[job.pk]))["Location"]
        assert any(marker in signed for marker in SIGNED_URL_MARKERS)
        assert download(signed)[0] == 200


def test_the_download_needs_the_view_permission_on_export_jobs(client, owner) -> None:
    job = _completed_contacts_job(owner.workspace)
    url = reverse("admin:exports_exportjob_download", args=[job.pk])
    assert _staff(client).get(url).status_code == 403
    client.logout()
    get_user_model().objects.filter(username="clerk").delete()
    assert _staff(client, "view_exportjob").get(url).status_code == 302


def test_a_close_id_finds_its_job(admin_client, owner) -> None:
    job = _completed_close_job(owner.workspace)
    other = _completed_close_job(owner.workspace)
    page = admin_client.get(CHANGELIST + f"?q={export_public_id(job)}").content.decode()
    assert reverse("admin:exports_exportjob_change", args=[job.pk]) in page
    assert reverse("admin:exports_exportjob_change", args=[other.pk]) not in page


def test_the_job_list_shows_status_progress_counts_and_size_in_a_fixed_number_of_queries(
    admin_client, owner, django_assert_max_num_queries
) -> None:
    make_contacts(owner.workspace, 4)
    done = export_job_create(workspace=owner.workspace, kind="contacts", format="csv", parameters={}, enqueue=False)
    export_job_run(job_id=done.pk)
    for _ in range(5):
        job = export_job_create(
            workspace=owner.workspace, kind="contacts", format="ndjson", parameters={}, enqueue=False
        )
        ExportJob.objects.filter(pk=job.pk).update(
            total_count=200, processed_count=50, status=ExportJob.Status.PROCESSING
        )
    with django_assert_max_num_queries(12):
        response = admin_client.get(CHANGELIST)
    page = response.content.decode()
    assert response.status_code == 200
    assert page.count('<progress value="25" max="100"') == 5 and '<progress value="100"' in page
    assert "50 / 200" in page and "4 / 4" in page
    detail = admin_client.get(reverse("admin:exports_exportjob_change", args=[done.pk])).content.decode()
    assert reverse("admin:exports_exportjob_download", args=[done.pk]) in detail


def test_the_download_link_redirects_to_a_freshly_signed_url(admin_client, owner) -> None:
    make_contacts(owner.workspace, 2)
    job = export_job_create(workspace=owner.workspace, kind="contacts", format="csv", parameters={}, enqueue=False)
    export_job_run(job_id=job.pk)
    response = admin_client.get(reverse("admin:exports_exportjob_download", args=[job.pk]))
    assert response.status_code == 302
    status, headers, _ = download(response["Location"])
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert len(csv_records(job_file_text(ExportJob.objects.get(pk=job.pk)))) == 3


def test_a_job_without_a_file_has_no_download(admin_client, owner) -> None:
    job = export_job_create(workspace=owner.workspace, kind="contacts", format="csv", parameters={}, enqueue=False)
    response = admin_client.get(reverse("admin:exports_exportjob_download", args=[job.pk]))
    assert response.status_code == 302 and response["Location"].endswith(f"/{job.pk}/change/")


def test_export_selected_contacts_queues_one_job_of_just_those_and_shows_it(admin_client, owner, stranger) -> None:
    mine = make_contacts(owner.workspace, 5)
    chosen = [mine[1], mine[3]]
    response = admin_client.post(
        "/admin/contacts/contact/",
        {"action": "export_selected_contacts_ndjson", "_selected_action": [str(c.pk) for c in chosen]},
    )
    job = ExportJob.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "admin:exports_exportjob_change", args=[job.pk]
    )
    assert job.status == ExportJob.Status.QUEUED and job.format == "ndjson" and job.workspace == owner.workspace
    export_job_run(job_id=job.pk)
    records = ndjson_records(job_file_text(ExportJob.objects.get(pk=job.pk)))
    assert [r["id"] for r in records] == [str(c.pk) for c in chosen]


def test_export_all_contacts_queues_one_job_per_selected_workspace(admin_client, owner, stranger) -> None:
    make_contacts(owner.workspace, 3)
    make_contacts(stranger.workspace, 2)
    response = admin_client.post(
        "/admin/leadlex/workspace/",
        {
            "action": "export_all_contacts_csv",
            "_selected_action": [str(owner.workspace.pk), str(stranger.workspace.pk)],
        },
    )
    assert response.status_code == 302
    jobs = {j.workspace_id: j for j in ExportJob.objects.all()}
    assert set(jobs) == {owner.workspace.pk, stranger.workspace.pk}
    for ws, expected in ((owner.workspace, 3), (stranger.workspace, 2)):
        export_job_run(job_id=jobs[ws.pk].pk)
        assert len(csv_records(job_file_text(ExportJob.objects.get(pk=jobs[ws.pk].pk)))) == expected + 1


def test_cancel_and_retry_actions_report_what_they_changed(admin_client, owner) -> None:
    job = export_job_create(workspace=owner.workspace, kind="contacts", format="csv", parameters={}, enqueue=False)
    response = admin_client.post(CHANGELIST, {"action": "cancel_jobs", "_selected_action": [str(job.pk)]}, follow=True)
    assert "Cancelled 1 export job(s)." in response.content.decode()
    response = admin_client.post(CHANGELIST, {"action": "cancel_jobs", "_selected_action": [str(job.pk)]}, follow=True)
    assert "Cancelled 0 export job(s)." in response.content.decode()
    response = admin_client.post(CHANGELIST, {"action": "retry_jobs", "_selected_action": [str(job.pk)]}, follow=True)
    assert "Queued 1 export job(s) again." in response.content.decode()
    assert ExportJob.objects.get(pk=job.pk).status == ExportJob.Status.QUEUED


def test_non_staff_cannot_see_export_jobs(client, owner) -> None:
    assert client.get(CHANGELIST).status_code == 302  # to the login page


def test_searching_jobs_by_id_or_workspace_name_never_errors(admin_client, owner) -> None:
    job = export_job_create(workspace=owner.workspace, kind="contacts", format="csv", parameters={}, enqueue=False)
    assert str(job.pk) in admin_client.get(CHANGELIST + f"?q={job.pk}").content.decode()
    assert str(job.pk) in admin_client.get(CHANGELIST + "?q=Acme").content.decode()
    assert admin_client.get(CHANGELIST + "?q=not-a-uuid").status_code == 200
