"""The ``contacts`` export kind (the LeadLex dialect): NDJSON or CSV rows of contacts.

Two renderers produce the same records:

* generic (any database): keyset batches from ``selectors.contact_export_batches``
  rendered in Python (orjson / ``writers.csv_row``);
* PostgreSQL fast path: one query per batch in which the database renders every
  line (``string_agg`` of JSON built from ``to_json`` pieces, or of CSV lines with
  the same quoting and formula policy) and returns the batch as one ``bytea`` plus
  the keyset position of its last row. Python only moves bytes.

Both are compared record by record in tests/exports/leadlex/test_fast_path_parity.py.
Parameters (``ExportJob.parameters``): the ``ContactFilter`` keys plus ``fields``
(list), ``include_comet_tokens`` and ``include_all_emails`` (bool).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from django.db import connection, transaction

from contacts.models import Contact
from exports import conf
from exports.engine import ExportBatch, ExportKindSpec, register_export_kind
from exports.leadlex.selectors import (
    ContactBatch,
    ContactFilter,
    contact_export_batches,
    contact_export_boundary,
    contact_export_count,
    contact_export_queryset,
    cursor_encode,
)
from exports.models import ExportJob
from exports.writers import CSV_SAFE_RE, csv_header, csv_row, format_timestamp, jsonb_text
from leadlex.prefetch import RenderThreads

KIND = "contacts"

# The contract's sync CSV default, and everything a contact has for NDJSON.
CSV_DEFAULT_FIELDS = (
    "id",
    "full_name",
    "email",
    "phone",
    "job_title",
    "company_name",
    "linkedin_url",
    "tags",
    "created_at",
)
NDJSON_DEFAULT_FIELDS = (
    "id",
    "full_name",
    "email",
    "phone",
    "job_title",
    "company_name",
    "linkedin_url",
    "tags",
    "lists",
    "custom",
    "created_at",
    "updated_at",
)
EXTRA_FIELDS = ("comet_tokens", "emails")


@dataclass(frozen=True)
class Field:
    name: str
    # Generic path: the JSON value of a row (row dict, batch) and its CSV cell text.
    value: Callable[[dict[str, Any], ContactBatch], Any]
    cell: Callable[[Any], str]
    # Fast path: SQL of the JSON text, and of the CSV cell text (NULL = empty cell).
    sql_json: str
    sql_text: str
    # What the CSV cell can hold, so the SQL skips checks that can never match:
    # "plain" (UUIDs, timestamps: no quoting, no formula), "list" (commas: quoting
    # only), "text" (anything: formula policy and quoting).
    csv_kind: str = "text"


def _ts_sql(col: str) -> str:
    # Same text as writers.format_timestamp: UTC, Z, microseconds only when non-zero.
    return (
        f"(to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') || "
        f"CASE WHEN mod(date_part('microseconds', {col})::bigint, 1000000) <> 0 "
        f"THEN to_char({col} AT TIME ZONE 'UTC', '.US') ELSE '' END || 'Z')"
    )


def _str_json(expr: str) -> str:
    return f"COALESCE(to_json({expr})::text, 'null')"


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _joined(value: list[str]) -> str:
    return ",".join(value)


_TAGS_FROM = "FROM contacts_contacttag ct JOIN contacts_tag t ON t.id = ct.tag_id WHERE ct.contact_id = c.id"
_LISTS_FROM = "FROM contacts_listmembership lm WHERE lm.contact_id = c.id"
_OTHER_EMAILS = (
    "FROM contacts_contactemail e WHERE e.contact_id = c.id AND (c.email IS NULL OR lower(e.email) <> lower(c.email))"
)
_RECENT_TOKENS = (
    "FROM (SELECT x.token, x.seen_at, x.id FROM contacts_comettoken x WHERE x.contact_id = c.id "
    "ORDER BY x.seen_at DESC, x.id DESC LIMIT 5) k"
)


def _company_name(row: dict[str, Any], batch: ContactBatch) -> str:
    return row["company__name"] if row["company_id"] and row["company__name"] is not None else row["company_name"]


def _emails(row: dict[str, Any], batch: ContactBatch) -> list[str]:
    primary = row["email"]
    others = [e for e in batch.emails.get(row["id"], []) if primary is None or e.lower() != primary.lower()]
    return ([primary] if primary is not None else []) + others


def _comet_tokens(row: dict[str, Any], batch: ContactBatch) -> list[dict[str, Any]]:
    return [{"token": t, "seen_at": format_timestamp(s)} for t, s in batch.comet_tokens.get(row["id"], [])]


def _plain(name: str) -> Field:
    return Field(name, lambda r, b: r[name], _text, _str_json(f"c.{name}"), f"c.{name}")


FIELDS: dict[str, Field] = {
    f.name: f
    for f in [
        Field("id", lambda r, b: str(r["id"]), _text, "('\"' || c.id::text || '\"')", "c.id::text", "plain"),
        _plain("full_name"),
        _plain("email"),
        _plain("phone"),
        _plain("job_title"),
        Field(
            "company_name",
            _company_name,
            _text,
            _str_json(
                "CASE WHEN c.company_id IS NOT NULL AND co.name IS NOT NULL THEN co.name ELSE c.company_name END"
            ),
            "CASE WHEN c.company_id IS NOT NULL AND co.name IS NOT NULL THEN co.name ELSE c.company_name END",
        ),
        _plain("linkedin_url"),
        Field(
            "tags",
            lambda r, b: b.tags.get(r["id"], []),
            _joined,
            f"COALESCE((SELECT '[' || string_agg(to_json(t.name)::text, ',' ORDER BY t.name COLLATE \"C\") || ']' "
            f"{_TAGS_FROM}), '[]')",
            f"(SELECT string_agg(t.name, ',' ORDER BY t.name COLLATE \"C\") {_TAGS_FROM})",
        ),
        Field(
            "lists",
            lambda r, b: b.lists.get(r["id"], []),
            _joined,
            f"COALESCE((SELECT '[' || string_agg('\"' || lm.contact_list_id::text || '\"', ',' "
            f"ORDER BY lm.contact_list_id) || ']' {_LISTS_FROM}), '[]')",
            f"(SELECT string_agg(lm.contact_list_id::text, ',' ORDER BY lm.contact_list_id) {_LISTS_FROM})",
            "list",
        ),
        Field(
            "custom",
            lambda r, b: r["custom"] if r["custom"] is not None else {},
            jsonb_text,
            "COALESCE(c.custom::text, '{}')",
            "COALESCE(c.custom::text, '{}')",
        ),
        Field(
            "created_at",
            lambda r, b: format_timestamp(r["created_at"]),
            _text,
            f"('\"' || {_ts_sql('c.created_at')} || '\"')",
            _ts_sql("c.created_at"),
            "plain",
        ),
        Field(
            "updated_at",
            lambda r, b: format_timestamp(r["updated_at"]),
            _text,
            f"('\"' || {_ts_sql('c.updated_at')} || '\"')",
            _ts_sql("c.updated_at"),
            "plain",
        ),
        Field(
            "emails",
            _emails,
            _joined,
            f"('[' || concat_ws(',', to_json(c.email)::text, "
            f"(SELECT string_agg(to_json(e.email)::text, ',' ORDER BY e.created_at, e.id) {_OTHER_EMAILS})) || ']')",
            f"NULLIF(concat_ws(',', c.email, (SELECT string_agg(e.email, ',' ORDER BY e.created_at, e.id) "
            f"{_OTHER_EMAILS})), '')",
        ),
        Field(
            "comet_tokens",
            _comet_tokens,
            lambda v: ",".join(t["token"] for t in v),
            f"COALESCE((SELECT '[' || string_agg('{{\"token\":' || to_json(k.token)::text || "
            f'\',"seen_at":"\' || '
            f"{_ts_sql('k.seen_at')} || '\"}}', ',' ORDER BY k.seen_at DESC, k.id DESC) || ']' "
            f"{_RECENT_TOKENS}), '[]')",
            f"(SELECT string_agg(k.token, ',' ORDER BY k.seen_at DESC, k.id DESC) {_RECENT_TOKENS})",
        ),
    ]
}
ALL_FIELDS = tuple(FIELDS)


def export_fields(job: ExportJob) -> list[str]:
    """The job's columns: explicit ``fields``, or the format's default plus the
    ``include_*`` extras."""
    params = job.parameters or {}
    if params.get("fields"):
        return list(params["fields"])
    fields = list(CSV_DEFAULT_FIELDS if job.format == ExportJob.Format.CSV else NDJSON_DEFAULT_FIELDS)
    if params.get("include_comet_tokens"):
        fields.append("comet_tokens")
    if params.get("include_all_emails"):
        fields.append("emails")
    return fields


# --- Generic renderer -----------------------------------------------------------------
def _render_generic(job: ExportJob, fields: list[str], batch: ContactBatch) -> bytes:
    spec = [FIELDS[name] for name in fields]
    if job.format == ExportJob.Format.CSV:
        return "".join(csv_row([f.cell(f.value(row, batch)) for f in spec]) for row in batch.rows).encode()
    return b"".join(orjson.dumps({f.name: f.value(row, batch) for f in spec}) + b"\n" for row in batch.rows)


def _iter_generic(job: ExportJob, after: Any, fields: list[str], filters: ContactFilter) -> Iterator[ExportBatch]:
    need = frozenset(fields)
    for batch in contact_export_batches(job=job, filters=filters, after=after, batch_size=conf.batch_size(), need=need):
        last = batch.rows[-1]
        yield ExportBatch(
            data=_render_generic(job, fields, batch),
            rows=len(batch.rows),
            cursor=cursor_encode(last["created_at"], last["id"]),
        )


# --- PostgreSQL renderer ----------------------------------------------------------------
_CONTACT_COLUMNS = tuple(f.attname for f in Contact._meta.concrete_fields)


def _batch_sql(job: ExportJob, fields: list[str], keys_sql: str) -> tuple[str, list[Any]]:
    """SQL rendering one line per key row; returns (sql, params placed before the keys' params)."""
    joins = f"FROM ({keys_sql}) c LEFT JOIN contacts_company co ON co.id = c.company_id"
    if job.format != ExportJob.Format.CSV:
        pieces = []
        for i, name in enumerate(fields):
            key = orjson.dumps(name).decode()
            pieces.append(f"'{'{' if i == 0 else ','}{key}:' || {FIELDS[name].sql_json}")
        line = "(" + " || ".join(pieces) + " || '}' || chr(10))"
        return f"SELECT c.created_at, c.id, {line} AS line {joins}", []
    # CSV in three steps, mirroring writers.csv_row: the cell text (f_i), the formula
    # policy (n_i), then RFC 4180 quoting and the CRLF. Plain string tests (ascii,
    # strpos) instead of regular expressions where they say the same: they are the
    # bulk of the work per row. Only a cell whose first character is dangerous
    # meets the (cached) "number or phone" regex, passed as a parameter.
    kinds = [FIELDS[name].csv_kind for name in fields]
    raw = ", ".join(f"COALESCE({FIELDS[name].sql_text}, '') AS f{i}" for i, name in enumerate(fields))
    neutral: list[str] = []
    params: list[Any] = []
    for i, kind in enumerate(kinds):
        if kind == "text":
            # ascii() of the first character ('' gives 0): cheaper than comparing left(f, 1).
            neutral.append(
                f"CASE WHEN ascii(f{i}) IN (61, 43, 45, 64, 9, 13) "  # = + - @ TAB CR
                f"THEN CASE WHEN f{i} ~ %s THEN f{i} ELSE '''' || f{i} END ELSE f{i} END AS n{i}"
            )
            params.append(CSV_SAFE_RE)
        else:
            neutral.append(f"f{i} AS n{i}")
    quoted = []
    for i, kind in enumerate(kinds):
        if kind == "plain":
            quoted.append(f"n{i}")
        else:
            quoted.append(
                f"CASE WHEN strpos(n{i}, '\"') > 0 OR strpos(n{i}, ',') > 0 OR strpos(n{i}, chr(10)) > 0 "
                f"OR strpos(n{i}, chr(13)) > 0 THEN '\"' || replace(n{i}, '\"', '\"\"') || '\"' "
                f"ELSE n{i} END"
            )
    line = " || ',' || ".join(quoted)
    if len(fields) == 1:  # a lone empty cell is written "" (see writers.csv_row)
        line = f"CASE WHEN n0 = '' THEN '\"\"' ELSE {line} END"
    # OFFSET 0 keeps each step a separate subquery: flattened, the planner would
    # evaluate every cell expression (tag subqueries included) once per reference.
    sql = (
        f"SELECT created_at, id, ({line}) || chr(13) || chr(10) AS line FROM ("
        f"SELECT created_at, id, {', '.join(neutral)} FROM ("
        f"SELECT c.created_at, c.id, {raw} {joins} OFFSET 0) a OFFSET 0) b"
    )
    return sql, params


def _render_range(
    job: ExportJob, fields: list[str], filters: ContactFilter, after: Any, limit: int
) -> tuple[bytes, int, Any]:
    """One batch rendered by the database: the lines of (at most ``limit``) rows
    strictly after ``after`` (and up to ``filters.until``), their count, and the
    keyset position of the last one."""
    # The batch's whole rows, not just their keys: joining keys back to
    # contacts_contact lets a planner with stale statistics (a table bulk-loaded
    # moments ago, not yet analysed) pick a nested loop over a sequential scan,
    # which turns one batch into minutes.
    keys = contact_export_queryset(workspace=job.workspace_id, filters=filters, after=after).values(*_CONTACT_COLUMNS)[
        :limit
    ]
    keys_sql, keys_params = keys.query.sql_with_params()
    lines_sql, line_params = _batch_sql(job, fields, keys_sql)
    sql = (
        "SELECT convert_to(string_agg(s.line, '' ORDER BY s.created_at, s.id), 'UTF8'), count(*), "
        "(array_agg(s.created_at ORDER BY s.created_at DESC, s.id DESC))[1], "
        "(array_agg(s.id ORDER BY s.created_at DESC, s.id DESC))[1] "
        f"FROM ({lines_sql}) s"
    )
    # JIT compilation costs tens of milliseconds per batch and the planner's
    # estimate for the correlated subqueries always asks for it: off, for this
    # statement only.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(sql, [*line_params, *keys_params])
        data, n, last_created, last_id = cursor.fetchone()
    if not n:
        return b"", 0, None
    return bytes(data), n, cursor_encode(last_created, last_id)


def _iter_postgres(job: ExportJob, after: Any, fields: list[str], filters: ContactFilter) -> Iterator[ExportBatch]:
    size = conf.batch_size()
    threads = conf.render_threads()
    if threads > 1 and not connection.in_atomic_block:
        yield from _iter_postgres_threads(job, after, fields, filters, size, threads)
        return
    while True:
        data, n, last = _render_range(job, fields, filters, after, size)
        if not n:
            return
        after = last
        yield ExportBatch(data=data, rows=n, cursor=after)
        if n < size:
            return


def _iter_postgres_threads(
    job: ExportJob, after: Any, fields: list[str], filters: ContactFilter, size: int, threads: int
) -> Iterator[ExportBatch]:
    """The same batches, rendered ahead on ``threads`` connections of their own while
    the engine compresses and uploads: the caller's connection cuts the rows into
    ranges of ``size`` (the key of every ``size``-th row, an index-only scan), and
    each range becomes one render call."""
    # A range can hold more rows than when it was cut (rows created meanwhile with
    # an old created_at); past this many the batch ends early at its last row, and
    # the ranges cut after it are cut again from there.
    limit = size * 4
    with RenderThreads(threads, ahead=threads + 1, name="export-render") as pool:
        cut_to, cutting = after, True
        while True:
            while cutting and not pool.full:
                rest = dataclasses.replace(filters, start_after=cut_to or filters.start_after)
                end = contact_export_boundary(workspace=job.workspace_id, filters=rest, limit=size)
                ranged = dataclasses.replace(filters, until=end) if end is not None else filters
                pool.submit(_render_range_for, job, fields, ranged, cut_to, limit, end)
                if end is None:
                    cutting = False
                cut_to = end
            if not pool.pending:
                return
            data, n, last, end = pool.next_result()
            if n >= limit:
                pool.discard()
                cut_to, cutting = last, True
            elif end is not None:
                last = end
            elif not n:
                return
            if n:
                yield ExportBatch(data=data, rows=n, cursor=last)


def _render_range_for(
    job: ExportJob, fields: list[str], filters: ContactFilter, after: Any, limit: int, end: Any
) -> tuple[bytes, int, Any, Any]:
    return (*_render_range(job, fields, filters, after, limit), end)


# --- The spec ---------------------------------------------------------------------------
def _iter_batches(job: ExportJob, after: Any) -> Iterator[ExportBatch]:
    fields = export_fields(job)
    unknown = [f for f in fields if f not in FIELDS]
    if unknown:
        from exports.engine import ExportUserError

        raise ExportUserError(f"Unknown fields: {', '.join(unknown)}")
    filters = ContactFilter.from_parameters(job.parameters or {})
    if connection.vendor == "postgresql" and conf.sql_fast_path():
        return _iter_postgres(job, after, fields, filters)
    return _iter_generic(job, after, fields, filters)


def _header(job: ExportJob) -> bytes:
    return csv_header(export_fields(job)) if job.format == ExportJob.Format.CSV else b""


def _count(job: ExportJob) -> int:
    return contact_export_count(workspace=job.workspace_id, filters=ContactFilter.from_parameters(job.parameters or {}))


def _content_type(job: ExportJob) -> str:
    return "text/csv; charset=utf-8" if job.format == ExportJob.Format.CSV else "application/x-ndjson"


def _filename(job: ExportJob) -> str:
    return f"contacts-export-{str(job.pk)[:8]}.{'csv' if job.format == ExportJob.Format.CSV else 'ndjson'}.gz"


SPEC = ExportKindSpec(
    iter_batches=_iter_batches, content_type=_content_type, filename=_filename, header=_header, count=_count
)


def register() -> None:
    register_export_kind(KIND, SPEC)
