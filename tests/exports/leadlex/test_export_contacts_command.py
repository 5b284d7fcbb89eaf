"""``export_contacts``: the same engine and job row, run in the command's process."""

from __future__ import annotations

import gzip
import io
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command

from exports.models import ExportJob
from tests.exports.factories import make_contacts
from tests.support.files import csv_records, ndjson_records

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("export_contacts", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_it_writes_ndjson_to_a_file_and_prints_the_job_id(owner, tmp_path) -> None:
    contacts = make_contacts(owner.workspace, 4)
    out, err = run("--workspace", "Acme", "--format", "ndjson", "--out", str(tmp_path / "c.ndjson"))
    job = ExportJob.objects.get(pk=out.strip())
    assert job.status == ExportJob.Status.COMPLETED and job.row_count == 4
    records = ndjson_records((tmp_path / "c.ndjson").read_bytes())
    assert [r["id"] for r in records] == [str(c.id) for c in contacts]
    assert "4 contacts" in err and "rows" in err  # summary and the progress bar on stderr


def test_csv_with_a_local_date_range_and_a_gzip_copy(owner, tmp_path) -> None:
    owner.workspace.timezone = "Europe/Berlin"
    owner.workspace.save()
    # 2026-04-15 09:00Z.. at 1 s steps; Berlin is UTC+2 in April.
    contacts = make_contacts(owner.workspace, 5, start=datetime(2026, 4, 15, 9, 0, tzinfo=UTC))
    run(
        "--workspace",
        "Acme",
        "--format",
        "csv",
        "--start",
        "2026-04-15 11:00:01",
        "--end",
        "2026-04-15 11:00:04",
        "--out",
        str(tmp_path / "c.csv.gz"),
        "--no-progress",
    )
    rows = csv_records(gzip.decompress((tmp_path / "c.csv.gz").read_bytes()))
    assert rows[0][0] == "id"
    assert [r[0] for r in rows[1:]] == [str(c.id) for c in contacts[1:4]]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--workspace", "Nope"], "No workspace named"),
        (["--workspace", "Acme", "--start", "someday"], "start"),
        (["--workspace", "Acme", "--start", "2026-05-01", "--end", "2026-04-01"], "--end must be after --start"),
    ],
)
def test_bad_arguments_are_command_errors(owner, args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        run(*args, "--no-progress")
