"""``export_contacts --workspace NAME --format ndjson|csv [--start ..] [--end ..] [--out FILE]``

Runs a contact export job in this process (the same engine and job row as the API
and admin) with a progress bar, then copies the file to ``--out`` if given
(uncompressed, unless FILE ends in ``.gz``).
"""

from __future__ import annotations

import gzip
import shutil
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from exports.engine import export_job_run
from exports.leadlex.services import contact_export_start, parse_local_bound
from exports.models import ExportJob
from leadlex import storage
from leadlex.errors import ApiError
from leadlex.models import Workspace


class Command(BaseCommand):
    help = "Export a workspace's contacts (gzipped NDJSON or CSV in storage; optionally copied to a local file)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workspace", required=True, help="Workspace name")
        parser.add_argument("--format", choices=["ndjson", "csv"], default="ndjson")
        parser.add_argument("--start", help="Created at or after (YYYY-MM-DD[ HH:MM:SS], workspace time zone)")
        parser.add_argument("--end", help="Created before (YYYY-MM-DD[ HH:MM:SS], workspace time zone)")
        parser.add_argument("--out", help="Also write the file here (.gz keeps it compressed)")
        parser.add_argument("--include-comet-tokens", action="store_true")
        parser.add_argument("--include-all-emails", action="store_true")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            workspace = Workspace.objects.get(name=opts["workspace"])
        except Workspace.DoesNotExist:
            raise CommandError(f"No workspace named {opts['workspace']!r}") from None
        try:
            start = parse_local_bound(opts["start"], workspace=workspace, field="start") if opts["start"] else None
            end = parse_local_bound(opts["end"], workspace=workspace, field="end") if opts["end"] else None
        except ApiError as exc:
            raise CommandError(exc.message) from None
        if start and end and end <= start:
            raise CommandError("--end must be after --start")
        job = contact_export_start(
            workspace=workspace,
            format=opts["format"],
            start=start,
            end=end,
            include_comet_tokens=opts["include_comet_tokens"],
            include_all_emails=opts["include_all_emails"],
            enqueue=False,
        )
        # The stream under Django's OutputWrapper (a private attribute), which would end each of
        # tqdm's "\r" redraws with a newline.
        stream = getattr(self.stderr, "_out", self.stderr)
        bar = tqdm(total=None, unit="rows", file=stream, disable=opts["no_progress"], desc="export")

        def progress(rows: int, total: int | None) -> None:
            if total is not None and bar.total != total:
                bar.total = total
            bar.n = rows
            bar.refresh()

        status = export_job_run(job_id=job.pk, on_progress=progress)
        bar.close()
        job.refresh_from_db()
        if status != ExportJob.Status.COMPLETED:
            raise CommandError(f"Export {job.pk} {job.status}: {job.error}")
        if opts["out"]:
            self._copy_out(job, opts["out"])
        self.stderr.write(f"{job.row_count} contacts, {job.byte_size} bytes (gzip), sha256 {job.sha256}")
        self.stdout.write(str(job.pk))

    def _copy_out(self, job: ExportJob, path: str) -> None:
        with storage.open_reader(job.storage_key) as source, open(path, "wb") as target:
            if path.endswith(".gz"):
                shutil.copyfileobj(source, target, 1024 * 1024)
            else:
                with gzip.GzipFile(fileobj=source) as plain:  # concatenated members read as one stream
                    shutil.copyfileobj(plain, target, 1024 * 1024)
