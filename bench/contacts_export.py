"""Benchmark: LeadLex contact exports against PostgreSQL's own COPY baselines.

For each size N it seeds N contacts (a third of them tagged) in a fresh workspace
of the configured PostgreSQL database, then measures in the same run:

  (a) CSV baseline     psql -c "\\copy (select … order by created_at, id) to stdout csv header" | gzip -1
  (b) NDJSON baseline  the same with json_build_object(…) rows
  (c) our sync CSV endpoint over HTTP (gunicorn, following the Link rel=next pages of 50,000)
  (d) our async NDJSON job: POST /v1/contacts/exports → completed file in storage (real Celery worker)
  (e) our async CSV job: the same engine, started as the admin action starts it → completed file

The baselines select the same columns as our files (tags through the same
per-row subquery), so both sides do the same work. Reports rows/s, each ours /
its baseline, and the peak RSS (VmHWM) of the web and worker processes, which are
started afresh for every size so that the figures of 100k and 1M can be compared.

Needs the production profile's environment (DATABASE_URL, DJANGO_SECRET_KEY,
REDIS_URL, AWS_* for S3); run from the project root, e.g.:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/lx_bench DJANGO_SECRET_KEY=bench \\
    REDIS_URL=redis://127.0.0.1:6379/3 AWS_STORAGE_BUCKET_NAME=lx-bench \\
    AWS_S3_ENDPOINT_URL=http://127.0.0.1:5030 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \\
    .venv/bin/python bench/contacts_export.py --sizes 100000,1000000
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from procs import free_port, peak_rss_mb, tree_pids  # noqa: E402 - bench/ is the script's own folder

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# The bench makes more requests than the product's per-workspace limits allow.
os.environ["LEADLEX_RATE_LIMITS"] = (
    "contacts_export=100000/hour,contacts_exports_create=1000/minute,"
    "contacts_exports_status=100000/minute,default=100000/minute"
)

WS_NAME = "bench-contacts-export"


def setup() -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.conf import settings

    if settings.LEADLEX_STORAGE_BACKEND == "s3":
        from botocore.exceptions import ClientError

        from leadlex import storage

        try:
            storage.s3_client().head_bucket(Bucket=settings.AWS_STORAGE_BUCKET_NAME)
        except ClientError:
            storage.s3_client().create_bucket(Bucket=settings.AWS_STORAGE_BUCKET_NAME)


def drop_workspace() -> None:
    """Delete the bench workspace set-based (the ORM's cascade would load every row)."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SELECT id FROM leadlex_workspace WHERE name = %s", [WS_NAME])
        row = cur.fetchone()
        if not row:
            return
        ws = row[0]
        contacts = "SELECT id FROM contacts_contact WHERE workspace_id = %s"
        for table in ("contacts_contacttag", "contacts_listmembership", "contacts_contactemail", "contacts_comettoken"):
            cur.execute(f"DELETE FROM {table} WHERE contact_id IN ({contacts})", [ws])
        cur.execute("DELETE FROM contacts_contact WHERE workspace_id = %s", [ws])
    from leadlex.models import Workspace

    Workspace.objects.filter(pk=ws).delete()  # what is left is small: keys, tags, jobs


def seed(n: int) -> Any:
    """N contacts in a fresh workspace, inserted by the database (seconds, not minutes)."""
    from django.db import connection

    from leadlex.models import Workspace

    drop_workspace()
    ws = Workspace.objects.create(name=WS_NAME, timezone="UTC")
    with connection.cursor() as cur:
        cur.execute(
            """
            INSERT INTO contacts_contact (id, workspace_id, full_name, email, phone, job_title, company_name,
                                          linkedin_url, custom, created_at, updated_at)
            SELECT gen_random_uuid(), %s, 'Person ' || i, 'person' || i || '@example.com',
                   '+1555' || lpad(i::text, 7, '0'), 'Engineer', 'Acme Corp ' || (i %% 1000),
                   'https://linkedin.com/in/person' || i, jsonb_build_object('plan', 'gold', 'seats', i %% 50),
                   timestamptz '2025-01-01' + (i / 3) * interval '1 second',
                   timestamptz '2025-01-01' + (i / 3) * interval '1 second'
            FROM generate_series(1, %s) AS i""",
            [ws.pk, n],
        )
        cur.execute(
            "INSERT INTO contacts_tag (workspace_id, name) VALUES (%s, 'lead'), (%s, 'priority')", [ws.pk, ws.pk]
        )
        cur.execute(
            """
            INSERT INTO contacts_contacttag (contact_id, tag_id)
            SELECT c.id, t.id FROM contacts_contact c JOIN contacts_tag t ON t.workspace_id = c.workspace_id
            WHERE c.workspace_id = %s AND (t.name = 'lead' OR get_byte(uuid_send(c.id), 0) %% 3 = 0)
              AND get_byte(uuid_send(c.id), 1) %% 3 = 0""",
            [ws.pk],
        )
        # As a settled production table would be: statistics and the visibility map
        # (index-only scans) up to date.
        cur.execute("VACUUM ANALYZE contacts_contact")
        cur.execute("VACUUM ANALYZE contacts_contacttag")
    return ws


# --- Baselines ------------------------------------------------------------------------------
TAGS_CSV = (
    "(SELECT string_agg(t.name, ',' ORDER BY t.name) FROM contacts_contacttag ct "
    "JOIN contacts_tag t ON t.id = ct.tag_id WHERE ct.contact_id = c.id)"
)
TAGS_JSON = (
    "(SELECT coalesce(json_agg(t.name ORDER BY t.name), '[]') FROM contacts_contacttag ct "
    "JOIN contacts_tag t ON t.id = ct.tag_id WHERE ct.contact_id = c.id)"
)
LISTS_JSON = (
    "(SELECT coalesce(json_agg(lm.contact_list_id ORDER BY lm.contact_list_id), '[]') "
    "FROM contacts_listmembership lm WHERE lm.contact_id = c.id)"
)


def baseline(kind: str, ws_id: Any) -> dict[str, Any]:
    if kind == "csv":
        select = (
            f"SELECT c.id, c.full_name, c.email, c.phone, c.job_title, c.company_name, c.linkedin_url, "
            f"{TAGS_CSV} AS tags, c.created_at FROM contacts_contact c WHERE c.workspace_id = '{ws_id}' "
            f"ORDER BY c.created_at, c.id"
        )
        copy = f"\\copy ({select}) to stdout csv header"
    else:
        select = (
            f"SELECT json_build_object('id', c.id, 'full_name', c.full_name, 'email', c.email, 'phone', c.phone, "
            f"'job_title', c.job_title, 'company_name', c.company_name, 'linkedin_url', c.linkedin_url, "
            f"'tags', {TAGS_JSON}, 'lists', {LISTS_JSON}, 'custom', c.custom, 'created_at', c.created_at, "
            f"'updated_at', c.updated_at) FROM contacts_contact c WHERE c.workspace_id = '{ws_id}' "
            f"ORDER BY c.created_at, c.id"
        )
        copy = f"\\copy ({select}) to stdout"
    url = os.environ["DATABASE_URL"]
    started = time.perf_counter()
    result = subprocess.run(
        f'psql "{url}" -X -q -c "{copy}" | gzip -1 | wc -c', shell=True, check=True, capture_output=True, text=True
    )
    return {"seconds": time.perf_counter() - started, "bytes": int(result.stdout.strip())}


# --- Our processes ------------------------------------------------------------------------
def start(cmd: list[str], log: Path, ready: str) -> subprocess.Popen:
    with open(log, "wb") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=os.environ.copy(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 60
    while ready not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{cmd[0]} did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.2)
    return proc


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def sync_csv(base: str, key: str) -> dict[str, Any]:
    import requests

    url: str | None = f"{base}/v1/contacts/export?limit=50000"
    rows = size = pages = 0
    started = time.perf_counter()
    with requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {key}"
        while url:
            with http.get(url, stream=True, timeout=600) as response:
                response.raise_for_status()
                for chunk in response.iter_content(1024 * 1024):
                    size += len(chunk)
                    rows += chunk.count(b"\n")
                link = response.headers.get("Link")
            pages += 1
            rows -= 1  # the header row of each page
            url = link[1 : link.index(">")] if link else None
    return {"seconds": time.perf_counter() - started, "rows": rows, "bytes": size, "pages": pages}


def wait_done(job_id: Any) -> Any:
    from exports.models import ExportJob

    while True:
        job = ExportJob.objects.get(pk=job_id)
        if job.status in ("completed", "failed", "cancelled"):
            if job.status != "completed":
                raise RuntimeError(f"export {job_id} {job.status}: {job.error}")
            return job
        time.sleep(0.05)


def async_ndjson(base: str, key: str) -> dict[str, Any]:
    import requests

    started = time.perf_counter()
    response = requests.post(
        f"{base}/v1/contacts/exports",
        json={"start_date": "2000-01-01 00:00:00", "end_date": "2100-01-01 00:00:00"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )
    response.raise_for_status()
    job = wait_done(response.json()["id"])
    return {"seconds": time.perf_counter() - started, "rows": job.row_count, "bytes": job.byte_size, "job": job}


def async_csv(ws: Any) -> dict[str, Any]:
    from exports.leadlex.services import contact_export_start

    started = time.perf_counter()
    job = contact_export_start(workspace=ws, format="csv")  # what the admin action does; enqueued on commit
    job = wait_done(job.pk)
    return {"seconds": time.perf_counter() - started, "rows": job.row_count, "bytes": job.byte_size, "job": job}


def check_file(job: Any, n: int) -> None:
    """The whole file decompresses and holds N rows (a cheap sanity check)."""
    from leadlex import storage

    d = zlib.decompressobj(wbits=31)
    lines = 0
    for chunk in storage.iter_bytes(job.storage_key):
        while chunk:
            lines += d.decompress(chunk).count(b"\n")
            chunk = d.unused_data
            if chunk:
                d = zlib.decompressobj(wbits=31)  # the next gzip member
    expected = n + (1 if job.format == "csv" else 0)
    assert lines == expected, f"{job.format} file has {lines} lines, expected {expected}"


def run_size(n: int, workdir: Path) -> dict[str, Any]:
    from leadlex.models import ApiKey

    t = time.perf_counter()
    ws = seed(n)
    seed_seconds = time.perf_counter() - t
    raw = ApiKey.generate()
    key = ApiKey(workspace=ws, scopes=["read:contacts", "write:contacts"], name="bench")
    key.set_key(raw)
    key.save()

    result: dict[str, Any] = {"rows": n, "seed_seconds": round(seed_seconds, 1)}
    result["csv_baseline"] = baseline("csv", ws.pk)
    result["ndjson_baseline"] = baseline("ndjson", ws.pk)

    port = free_port()
    web = start(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1", "--timeout", "900"],
        workdir / "web.log",
        "Booting worker",
    )
    worker = start(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--concurrency=1",
            "--pool=prefork",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel=INFO",
            f"--hostname=bench-{os.getpid()}@%h",
        ],
        workdir / "worker.log",
        " ready.",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        result["sync_csv"] = sync_csv(base, raw)
        nd = async_ndjson(base, raw)
        cs = async_csv(ws)
        result["web_peak_rss_mb"] = round(peak_rss_mb(tree_pids(web.pid)), 1)
        result["worker_peak_rss_mb"] = round(peak_rss_mb(tree_pids(worker.pid)), 1)
    finally:
        stop(web)
        stop(worker)
    check_file(nd.pop("job"), n)
    check_file(cs.pop("job"), n)
    result["async_ndjson"], result["async_csv"] = nd, cs
    assert result["sync_csv"]["rows"] == n, result["sync_csv"]
    for name in ("csv_baseline", "ndjson_baseline", "sync_csv", "async_ndjson", "async_csv"):
        part = result[name]
        part["rows_per_s"] = round(n / part["seconds"])
        part["seconds"] = round(part["seconds"], 2)
    for ours, base_name in (
        ("sync_csv", "csv_baseline"),
        ("async_csv", "csv_baseline"),
        ("async_ndjson", "ndjson_baseline"),
    ):
        result[ours]["ratio_to_baseline"] = round(result[ours]["rows_per_s"] / result[base_name]["rows_per_s"], 2)
    return result


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| rows | path | seconds | rows/s | vs baseline | gzip MB |", "|---:|---|---:|---:|---:|---:|"]
    labels = {
        "csv_baseline": "(a) psql \\copy CSV \\| gzip -1",
        "ndjson_baseline": "(b) psql \\copy json_build_object \\| gzip -1",
        "sync_csv": "(c) GET /v1/contacts/export (uncompressed)",
        "async_ndjson": "(d) async NDJSON job",
        "async_csv": "(e) async CSV job",
    }
    for r in results:
        for name, label in labels.items():
            p = r[name]
            ratio = p.get("ratio_to_baseline", "")
            mb = "" if name == "sync_csv" else f"{p['bytes'] / 1e6:.1f}"
            lines.append(f"| {r['rows']:,} | {label} | {p['seconds']} | {p['rows_per_s']:,} | {ratio} | {mb} |")
        lines.append(
            f"| {r['rows']:,} | peak RSS web / worker | | | | {r['web_peak_rss_mb']} / {r['worker_peak_rss_mb']} MB |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--json", help="Also write the raw results here")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL"):
        sys.exit("Set DATABASE_URL (PostgreSQL): the baselines are psql \\copy.")
    setup()
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"lx-bench-{os.getpid()}"
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        print(f"--- {n:,} contacts", file=sys.stderr, flush=True)
        results.append(run_size(n, workdir))
        print(json.dumps(results[-1], indent=1), file=sys.stderr, flush=True)
    print(table(results))
    if len(results) > 1:
        grow_web = results[-1]["web_peak_rss_mb"] - results[0]["web_peak_rss_mb"]
        grow_worker = results[-1]["worker_peak_rss_mb"] - results[0]["worker_peak_rss_mb"]
        print(
            f"\npeak RSS growth {results[0]['rows']:,} → {results[-1]['rows']:,}: web {grow_web:+.1f} MB, "
            f"worker {grow_worker:+.1f} MB"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    drop_workspace()


if __name__ == "__main__":
    main()
