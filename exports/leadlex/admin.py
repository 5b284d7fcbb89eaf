"""The LeadLex dialect's admin actions, offered on other apps' admins: "Export selected
contacts" on ``contacts.admin.ContactAdmin`` and "Export all contacts" on the workspace
admin (``leadlex.admin``, which imports no app, so ``ExportsConfig.ready()`` adds them
through ``leadlex.admin.workspace_admin_extend``). Each queues engine jobs and shows
them in the one job admin (``exports.admin.ExportJobAdmin``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from exports.leadlex import services
from exports.models import ExportJob
from leadlex.models import Workspace

AdminAction = Callable[[admin.ModelAdmin, HttpRequest, QuerySet], HttpResponse | None]


def _show_jobs(modeladmin: admin.ModelAdmin, request: HttpRequest, jobs: list[ExportJob]) -> HttpResponse:
    modeladmin.message_user(request, f"Queued {len(jobs)} export job(s).", messages.SUCCESS)
    if len(jobs) == 1:
        return HttpResponseRedirect(reverse("admin:exports_exportjob_change", args=[jobs[0].pk]))
    return HttpResponseRedirect(reverse("admin:exports_exportjob_changelist") + "?status__exact=queued")


def _export_selected(fmt: str) -> AdminAction:
    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        # One job per workspace: a job never mixes two workspaces' contacts.
        by_workspace: dict[Any, list[Any]] = {}
        for workspace_id, pk in queryset.values_list("workspace_id", "pk"):
            by_workspace.setdefault(workspace_id, []).append(pk)
        jobs = [
            services.contact_export_start(
                workspace=Workspace.objects.get(pk=ws), format=fmt, contact_ids=ids, user=request.user
            )
            for ws, ids in by_workspace.items()
        ]
        return _show_jobs(modeladmin, request, jobs)

    action.__name__ = f"export_selected_contacts_{fmt}"
    return admin.action(description=f"Export selected contacts ({fmt.upper()})")(action)


def _export_workspace(fmt: str) -> AdminAction:
    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        jobs = [services.contact_export_start(workspace=ws, format=fmt, user=request.user) for ws in queryset]
        return _show_jobs(modeladmin, request, jobs)

    action.__name__ = f"export_all_contacts_{fmt}"
    return admin.action(description=f"Export all contacts ({fmt.upper()})")(action)


export_selected_contacts_csv = _export_selected("csv")
export_selected_contacts_ndjson = _export_selected("ndjson")
export_all_contacts_csv = _export_workspace("csv")
export_all_contacts_ndjson = _export_workspace("ndjson")
