"""``import_contacts FILE --workspace NAME [--mapping JSON|col=field,...] [--no-header]
[--update-existing] [--tags a,b] [--encoding E] [--delimiter D] [--sheet S]``: the same engine
as the API, run in this process with a progress bar. The file is a CSV or TSV (also gzipped
or zipped) or an Excel workbook; a .ndjson/.jsonl file holds one contact object per line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from imports.dialect import encoding_label
from imports.engine import import_job_run
from imports.models import ImportJob
from imports.serializers import ImportInput, import_params_clean
from imports.services import import_request
from imports.uploads import upload_delete, upload_store
from leadlex.errors import ApiError
from leadlex.models import Workspace


def parse_mapping(value: str | None) -> Any:
    if not value:
        return None
    if value.strip().startswith("{"):
        return value
    mapping = {}
    for pair in value.split(","):
        source, sep, target = pair.partition("=")
        if not sep:
            raise CommandError("--mapping: expected JSON or col=field pairs separated by commas")
        mapping[source.strip()] = target.strip()
    return mapping


class Command(BaseCommand):
    help = "Import contacts from a CSV/TSV (also .gz or .zip), an Excel workbook or an NDJSON file into a workspace."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")
        parser.add_argument("--workspace", required=True, help="workspace name")
        parser.add_argument("--mapping", help='JSON {"CSV column": "field"} or "col=field,col=field"')
        parser.add_argument("--no-header", action="store_true", help="the file has no header row (map positions)")
        parser.add_argument("--update-existing", action="store_true")
        parser.add_argument("--tags", default="", help="comma-separated tags for every imported contact")
        parser.add_argument(
            "--encoding", help="the file's encoding (e.g. utf-8, windows-1252); found from its first bytes if not given"
        )
        parser.add_argument("--sheet", help="an Excel workbook's sheet by name (default: the first)")
        parser.add_argument(
            "--delimiter", help="the file's delimiter (, ; | tab); found from its header and first lines if not given"
        )
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        try:
            workspace = Workspace.objects.get(name=options["workspace"])
        except Workspace.DoesNotExist:
            raise CommandError(f"No workspace named {options['workspace']!r}") from None
        upload = None
        try:
            params = import_params_clean(
                update_existing=options["update_existing"],
                tags=options["tags"] or None,
                mapping=parse_mapping(options["mapping"]),
                has_header=not options["no_header"],
                file_name=path.name,
                encoding=options["encoding"],
                delimiter=options["delimiter"] or ("\t" if path.suffix.lower() in (".tsv", ".tab") else None),
                sheet=options["sheet"],
            )
            if path.suffix.lower() in (".ndjson", ".jsonl"):
                rows = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
                data = ImportInput(rows=rows)
            else:
                # A file of any size: copied to storage in chunks as an upload, read from
                # there as it is imported, never held in memory.
                upload = upload_store(workspace=workspace, chunks=_chunks(path), file_name=path.name, single_use=True)
                data = ImportInput(upload_id=upload.public_id)
            job = import_request(workspace=workspace, data=data, params=params, force_queue=True, enqueue=False)
        except ApiError as exc:
            if upload is not None:
                upload_delete(upload=upload)
            raise CommandError(exc.message) from None
        except orjson.JSONDecodeError as exc:
            raise CommandError(f"{path}: not NDJSON ({exc})") from None

        if job.params.get("format") == "xlsx":
            self.stderr.write(
                f"Reading {path.name} as an Excel workbook, sheet {job.params['sheet'] or '(the first)'}."
            )
        elif job.source == ImportJob.Source.CSV:
            packed = f"{job.params['compression']}-compressed " if job.params.get("compression") else ""
            self.stderr.write(
                f"Reading {path.name} as {packed}{encoding_label(job.params['encoding'])}, "
                f"delimiter {job.params['delimiter']!r}."
            )
        # In rows when the file was counted before the run; a larger one in bytes read.
        by_bytes = job.total_rows is None and job.total_bytes is not None
        bar = tqdm(
            total=job.total_bytes if by_bytes else job.total_rows,
            unit="B" if by_bytes else "rows",
            unit_scale=by_bytes,
            disable=options["no_progress"],
            file=getattr(self.stderr, "_out", self.stderr),
        )
        done = 0

        def progress(rows: int, total: int | None) -> None:
            nonlocal done
            now = rows
            if by_bytes:
                now = ImportJob.objects.values_list("processed_bytes", flat=True).get(id=job.id)
                bar.set_postfix_str(f"{rows:,} rows", refresh=False)
            bar.update(now - done)
            done = now

        finished = import_job_run(job_id=job.id, progress=progress)
        bar.close()
        job = finished or ImportJob.objects.get(id=job.id)
        summary = (
            f"{job.public_id} {job.status}: {job.created_count} created, {job.updated_count} updated, "
            f"{job.skipped_count} skipped, {job.error_count} errors"
        )
        if job.status != ImportJob.Status.COMPLETED:
            # Its upload stays until it expires: the admin can retry the job meanwhile.
            raise CommandError(f"{summary}. {job.error}")
        self.stdout.write(summary)
        for error in job.first_errors[:20]:
            self.stdout.write(f"  row {error['row']} {error['field']}: {error['message']}")


def _chunks(path: Path, size: int = 1024 * 1024) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(size):
            yield chunk
