"""An admin-facing proxy of ``ExportJob`` for the Close-style kinds (no table of
its own). Imported at the end of ``exports/models.py`` so that Django registers it
with the ``exports`` app."""

from __future__ import annotations

from django.db import models

from exports.models import ExportJob

LEAD_KINDS = {"leads": "close_leads", "contacts": "close_contacts", "lead_opps": "close_lead_opps"}
OPPORTUNITY_KIND = "close_opportunities"
CLOSE_KINDS = (*LEAD_KINDS.values(), OPPORTUNITY_KIND)


class CloseExportManager(models.Manager):
    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().filter(kind__in=CLOSE_KINDS)


class CloseExport(ExportJob):
    objects = CloseExportManager()

    class Meta:
        proxy = True
        app_label = "exports"
        verbose_name = "Close-style export"
        verbose_name_plural = "Close-style exports"
