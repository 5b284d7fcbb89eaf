"""The export admin as staff see it, and the export actions on contacts and workspaces."""

from __future__ import annotations

import pytest
from django.urls import reverse

from exports.engine import export_job_create, export_job_run
from exports.models import ExportJob
from tests.exports.factories import make_contacts
from tests.support.files import csv_records, download, job_file_text, ndjson_records

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/exports/exportjob/"


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
