"""The Close-style export kinds on the one export engine (``exports.engine``).

``close_leads`` / ``close_contacts`` / ``close_lead_opps`` come from ``POST
/v1/export/lead/`` (``type`` = leads / contacts / lead_opps), ``close_opportunities``
from ``POST /v1/export/opportunity/``. Each renders CSV, JSON (one array document,
streamed) or NDJSON; the engine gzips, checkpoints and stores.

Cursor: ``{"pos": <root objects consumed>, "last": <id of the last one>}``. Roots
stream in the job's sort order (id as the last key). Without a sort they are
ordered by id alone and a resumed run continues with ``id > last`` (keyset);
with a sort it re-opens the same ordered query at offset ``pos``. Within one run
there is no OFFSET at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

from exports.close import fastpath, render, selectors
from exports.close.ids import export_type, job_fields
from exports.engine import ExportBatch, ExportKindSpec, register_export_kind
from exports.models import CLOSE_KINDS, LEAD_KINDS, OPPORTUNITY_KIND, ExportJob
from exports.writers import csv_header, join_json_items
from leadlex.conf import setting_int

CONTENT_TYPES = {"csv": "text/csv", "json": "application/json", "ndjson": "application/x-ndjson"}


def batch_size() -> int:
    return setting_int("LEADLEX_CLOSE_EXPORT_BATCH", 500)


def _wants_smart(fields: list[str]) -> bool:
    return any(f.removeprefix("lead_") in render.SMART_FIELDS for f in fields)


def _roots(job: ExportJob) -> Any:
    if job.kind == OPPORTUNITY_KIND:
        return selectors.close_opportunity_queryset(workspace=job.workspace_id, params=job.parameters)
    return selectors.close_lead_queryset(workspace=job.workspace_id, params=job.parameters)


def _limit(job: ExportJob) -> int | None:
    return None if job.kind == OPPORTUNITY_KIND else job.parameters.get("results_limit")


# --- Spec callables -------------------------------------------------------------------------
def count(job: ExportJob) -> int:
    roots = _roots(job)
    if job.kind in (OPPORTUNITY_KIND, LEAD_KINDS["leads"]):
        return selectors.lead_count(queryset=roots, limit=_limit(job))
    ids = selectors.limited_ids(roots, _limit(job))
    if job.kind == LEAD_KINDS["contacts"]:
        from contacts.models import Contact

        return Contact.objects.filter(company_id__in=ids).count()
    from contacts.models import Opportunity

    return Opportunity.objects.filter(company_id__in=ids).count()


def _columns(job: ExportJob) -> render.Columns:
    stored = job.parameters.get("_columns") or {}
    return render.Columns(
        export_type(job), job_fields(job), stored.get("custom_keys", []), stored.get("lead_custom_keys", [])
    )


def header(job: ExportJob) -> bytes:
    if job.format == "json":
        return b"["
    if job.format != "csv":
        return b""
    # The CSV header needs every custom key before the first row. Computed once and
    # kept on the job, so that a resumed run writes the same columns.
    fields = job_fields(job)
    ids = selectors.limited_ids(_roots(job), _limit(job))
    stored: dict[str, list[str]] = {}
    kind_type = export_type(job)
    if kind_type == "leads" and "custom" in fields:
        stored["custom_keys"] = selectors.custom_keys(company_ids_subquery=ids)
    if kind_type == "contacts":
        from contacts.models import Contact

        if "custom" in fields:
            contact_ids = Contact.objects.filter(company_id__in=ids).values("id")
            stored["custom_keys"] = selectors.custom_keys(contact_ids_subquery=contact_ids)
    if kind_type in ("contacts", "lead_opps") and "lead_custom" in fields:
        if job.kind == OPPORTUNITY_KIND:
            from contacts.models import Company

            ids = Company.objects.filter(opportunities__in=_roots(job).values("id")).values("id")
        stored["lead_custom_keys"] = selectors.custom_keys(company_ids_subquery=ids)
    job.parameters = {**job.parameters, "_columns": stored}
    ExportJob.objects.filter(pk=job.pk).update(parameters=job.parameters)
    return csv_header(_columns(job).header())


def footer(job: ExportJob) -> bytes:
    return b"]\n" if job.format == "json" else b""


def _rows(job: ExportJob, ids: list[Any], fields: list[str]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    organization_id = str(job.workspace_id)
    kind_type = export_type(job)
    smart = _wants_smart(fields)
    if job.kind == OPPORTUNITY_KIND:
        opps, leads = selectors.opportunity_batch(opportunity_ids=ids, smart=smart)
        for o in opps:
            yield render.opportunity_row(o, leads.get(o["company_id"]), organization_id=organization_id)
        return
    batch = selectors.lead_batch(
        company_ids=ids,
        contacts=kind_type == "contacts" or (kind_type == "leads" and "contacts" in fields),
        opportunities=kind_type == "lead_opps" or (kind_type == "leads" and "opportunities" in fields),
        activities=kind_type == "leads" and "activities" in fields,
        smart=smart,
    )
    for lead in batch.leads:
        if kind_type == "leads":
            yield render.lead_row(lead, organization_id=organization_id)
        elif kind_type == "contacts":
            for c in lead["contacts"]:
                yield render.contact_row(c, lead, organization_id=organization_id)
        else:
            for o in lead["opportunities"]:
                yield render.opportunity_row(o, lead, organization_id=organization_id)


def uses_fast_path(job: ExportJob) -> bool:
    """Whole lead documents built by PostgreSQL: the backup case (leads, JSON or
    NDJSON, every default field). Anything narrower is rendered in Python."""
    return (
        job.kind == LEAD_KINDS["leads"]
        and job.format in ("json", "ndjson")
        and not job.parameters.get("fields")
        and fastpath.enabled()
    )


def iter_batches(job: ExportJob, after: Any) -> Iterator[ExportBatch]:
    pos = int((after or {}).get("pos", 0))
    columns = _columns(job)
    date_format = job.parameters.get("date_format") or "original"
    tz = ZoneInfo(job.parameters.get("tz") or "UTC")
    fast = uses_fast_path(job)
    first = after is None  # only the document's first batch goes without a leading comma
    # Ordered by id alone (no sort given): resume by keyset, exact whatever changed
    # meanwhile; with a sort, by position in the same ordered query.
    by_id = job.kind != OPPORTUNITY_KIND and not job.parameters.get("sort")
    after_id = (after or {}).get("last") if by_id else None
    for ids in selectors.root_id_batches(
        _roots(job), offset=pos, limit=_limit(job), batch_size=batch_size(), after_id=after_id
    ):
        pos += len(ids)
        last = str(ids[-1])
        chunks: list[bytes] = []
        if fast:
            chunks = [
                doc.encode()
                for doc in fastpath.lead_documents(
                    company_ids=ids, activities="activities" in columns.fields, smart=_wants_smart(columns.fields)
                )
            ]
        else:
            for full, raw in _rows(job, ids, columns.fields):
                if job.format == "csv":
                    chunks.append(render.encode_csv(columns.csv_cells(full, raw, date_format, tz)))
                else:
                    chunks.append(render.encode_json(columns.json_object(full)))
        if not chunks:
            continue  # the engine wants no empty batches; the next one carries the cursor on
        if job.format == "json":
            data = join_json_items(chunks, first=first)
        elif job.format == "ndjson":
            data = b"\n".join(chunks) + b"\n"
        else:
            data = b"".join(chunks)
        first = False
        yield ExportBatch(data=data, rows=len(chunks), cursor={"pos": pos, "last": last})


def content_type(job: ExportJob) -> str:
    return CONTENT_TYPES[job.format]


def filename(job: ExportJob) -> str:
    return f"close-{export_type(job).replace('_', '-')}-export.{job.format}"


def on_finished(job: ExportJob) -> None:
    if job.parameters.get("send_done_email"):
        from exports.close.services import close_export_send_done_email

        close_export_send_done_email(job=job)


def register() -> None:
    spec = ExportKindSpec(
        iter_batches=iter_batches,
        content_type=content_type,
        filename=filename,
        header=header,
        footer=footer,
        count=count,
        on_finished=on_finished,
    )
    for kind in CLOSE_KINDS:
        register_export_kind(kind, spec)
