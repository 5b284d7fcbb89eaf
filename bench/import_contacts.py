"""Benchmark: bulk contact import through the API as a queued job, against psql baselines.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/lx_bench REDIS_URL=redis://127.0.0.1:6379/9 \\
    DJANGO_SECRET_KEY=bench .venv/bin/python bench/import_contacts.py --rows 100000 --rows 1000000

For each size N, on one generated CSV file (full_name, email, phone, job_title,
company_name, created_at; ~2% bad rows: a broken address or phone):

- baseline "insert": ``psql \\copy`` of the file into an empty plain table;
- baseline "upsert": ``\\copy`` into a temporary stage + one ``INSERT … ON CONFLICT
  (email) DO UPDATE`` into a table that already holds half of the rows;
- LeadLex "insert": ``POST /v1/import/contacts`` (text/csv) into an empty workspace,
  timed from the request to the job's "completed" (a real gunicorn + Celery worker);
- LeadLex "upsert": the same file with ``update_existing=true`` into a workspace that
  already holds half of the rows (a 50% update mix), validation included.

It also reports the worker's peak RSS (VmHWM of the pool process; a fresh worker per
size), so the growth from 100k to 1M rows can be read off. The server runs with
LEADLEX_MAX_BODY_BYTES raised (a million-row CSV is ~90 MB, over the API's 20 MB).
PostgreSQL only: the baselines are psql.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from procs import child_pids, free_port, peak_rss_mb  # noqa: E402 - bench/ is the script's own folder


def generate(path: Path, n: int, seed: int = 7) -> int:
    """Write N rows; returns the number of deliberately bad rows."""
    rng = random.Random(seed)
    first = ["Ada", "Bob", "Chloé", "Dmitri", "Eve", "Fatima", "Grace", "Hiro", "Ines", "José"]
    last = ["Lovelace", "Smith", "Dupont", "Ivanov", "Adams", "Khan", "Hopper", "Tanaka", "Ruiz", "Müller"]
    titles = ["CEO", "CTO", "Engineer", "Sales, EMEA", 'Head of "Growth"', "Designer"]
    bad = 0
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write("full_name,email,phone,job_title,company_name,created_at\r\n")
        for i in range(n):
            name = f"{rng.choice(first)} {rng.choice(last)}"
            email = f"person{i}@company{i % 5000}.example.com"
            phone = f"+1415{i % 10_000_000:07d}"
            if rng.random() < 0.02:
                bad += 1
                if rng.random() < 0.5:
                    email = f"person{i}-at-nowhere"
                else:
                    phone = "12"
            title = rng.choice(titles)
            title = f'"{title.replace(chr(34), chr(34) * 2)}"' if ("," in title or '"' in title) else title
            fh.write(f"{name},{email},{phone},{title},Company {i % 5000},2023-0{1 + i % 9}-1{i % 10}T12:00:00Z\r\n")
    return bad


def psql(database_url: str, script: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        ["psql", database_url, "-v", "ON_ERROR_STOP=1", "-q", "-c", script], check=True, stdout=subprocess.DEVNULL
    )
    return time.perf_counter() - started


def psql_script(database_url: str, script: str) -> float:
    """Run a multi-statement psql script (one transaction, psql meta-commands allowed); its seconds."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as fh:
        fh.write(script)
    try:
        started = time.perf_counter()
        subprocess.run(
            ["psql", database_url, "-v", "ON_ERROR_STOP=1", "-q", "-f", fh.name], check=True, stdout=subprocess.DEVNULL
        )
        return time.perf_counter() - started
    finally:
        os.unlink(fh.name)


def baseline_insert(database_url: str, path: Path) -> float:
    psql(
        database_url,
        "DROP TABLE IF EXISTS bench_copy_insert; CREATE TABLE bench_copy_insert (full_name text, "
        "email text, phone text, job_title text, company_name text, created_at timestamptz)",
    )
    seconds = psql(database_url, f"\\copy bench_copy_insert FROM '{path}' WITH (FORMAT csv, HEADER true)")
    psql(database_url, "DROP TABLE bench_copy_insert")
    return seconds


def baseline_insert_schema(database_url: str, path: Path) -> float:
    """Not a target, a ceiling: \\copy into a table with the real contacts table's
    columns and every index it has (unique lower(email), trigram indexes...)."""
    psql(
        database_url,
        "DROP TABLE IF EXISTS bench_copy_schema; "
        "CREATE TABLE bench_copy_schema (LIKE contacts_contact INCLUDING ALL); "
        "ALTER TABLE bench_copy_schema ALTER COLUMN id SET DEFAULT gen_random_uuid(), "
        "ALTER COLUMN workspace_id SET DEFAULT gen_random_uuid(), "
        "ALTER COLUMN linkedin_url SET DEFAULT '', ALTER COLUMN custom SET DEFAULT '{}', "
        "ALTER COLUMN updated_at SET DEFAULT now()",
    )
    seconds = psql(
        database_url,
        f"\\copy bench_copy_schema (full_name, email, phone, job_title, company_name, "
        f"created_at) FROM '{path}' WITH (FORMAT csv, HEADER true)",
    )
    psql(database_url, "DROP TABLE bench_copy_schema")
    return seconds


def baseline_upsert(database_url: str, path: Path, half: Path) -> float:
    psql(
        database_url,
        "DROP TABLE IF EXISTS bench_upsert; CREATE TABLE bench_upsert (email text PRIMARY KEY, "
        "full_name text, phone text, job_title text, company_name text, created_at timestamptz)",
    )
    psql(
        database_url,
        f"\\copy bench_upsert (full_name, email, phone, job_title, company_name, created_at) "
        f"FROM '{half}' WITH (FORMAT csv, HEADER true)",
    )
    script = (
        "BEGIN;\n"
        "CREATE TEMP TABLE stage (LIKE bench_upsert) ON COMMIT DROP;\n"
        f"\\copy stage (full_name, email, phone, job_title, company_name, created_at) FROM '{path}' "
        "WITH (FORMAT csv, HEADER true)\n"
        "INSERT INTO bench_upsert SELECT * FROM stage ON CONFLICT (email) DO UPDATE SET "
        "full_name = EXCLUDED.full_name, phone = EXCLUDED.phone, job_title = EXCLUDED.job_title, "
        "company_name = EXCLUDED.company_name, created_at = EXCLUDED.created_at;\n"
        "COMMIT;\n"
    )
    seconds = psql_script(database_url, script)
    psql(database_url, "DROP TABLE bench_upsert")
    return seconds


def baseline_upsert_schema(database_url: str, path: Path, half: Path) -> float:
    """Not a target, a ceiling: the upsert baseline's COPY + one INSERT … ON CONFLICT
    DO UPDATE, into a table with the contacts table's columns and every index it has,
    holding half the rows."""
    psql(
        database_url,
        "DROP TABLE IF EXISTS bench_upsert_schema; "
        "CREATE TABLE bench_upsert_schema (LIKE contacts_contact INCLUDING ALL); "
        "ALTER TABLE bench_upsert_schema ALTER COLUMN id SET DEFAULT gen_random_uuid(), "
        "ALTER COLUMN workspace_id SET DEFAULT '00000000-0000-0000-0000-000000000001', "
        "ALTER COLUMN linkedin_url SET DEFAULT '', ALTER COLUMN custom SET DEFAULT '{}', "
        "ALTER COLUMN updated_at SET DEFAULT now()",
    )
    psql(
        database_url,
        f"\\copy bench_upsert_schema (full_name, email, phone, job_title, company_name, created_at) "
        f"FROM '{half}' WITH (FORMAT csv, HEADER true)",
    )
    psql(database_url, "VACUUM ANALYZE bench_upsert_schema")
    script = (
        "BEGIN;\n"
        "CREATE TEMP TABLE stage (full_name text, email text, phone text, job_title text, company_name text, "
        "created_at timestamptz) ON COMMIT DROP;\n"
        f"\\copy stage FROM '{path}' WITH (FORMAT csv, HEADER true)\n"
        "INSERT INTO bench_upsert_schema (full_name, email, phone, job_title, company_name, created_at) "
        "SELECT * FROM stage ON CONFLICT (lower(email::text), workspace_id) WHERE email IS NOT NULL DO UPDATE SET "
        "full_name = EXCLUDED.full_name, phone = EXCLUDED.phone, job_title = EXCLUDED.job_title, "
        "company_name = EXCLUDED.company_name, created_at = EXCLUDED.created_at, updated_at = now();\n"
        "COMMIT;\n"
    )
    seconds = psql_script(database_url, script)
    psql(database_url, "DROP TABLE bench_upsert_schema")
    return seconds


def half_file(path: Path) -> Path:
    """Every other row: the contacts that already exist in the upsert runs."""
    out = path.with_name(path.stem + "-half.csv")
    with open(path, encoding="utf-8", newline="") as src, open(out, "w", encoding="utf-8", newline="") as dst:
        dst.write(src.readline())
        # Rows are one line each (no multi-line fields in the generated file).
        for index, line in enumerate(src):
            if index % 2 == 0:
                dst.write(line)
    return out


class Stack:
    """A gunicorn web process and a Celery worker (concurrency 1) on the bench database."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.port = free_port()
        # Each child inherits its own copy of its log's descriptor; the parent's closes at once.
        with open(log_dir / "web.log", "ab") as web_log:
            self.web = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "config.wsgi:application",
                    "-b",
                    f"127.0.0.1:{self.port}",
                    "-w",
                    "1",
                    "--timeout",
                    "600",
                ],
                cwd=ROOT,
                env=env,
                stdout=web_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.worker_log = log_dir / "worker.log"
        with open(self.worker_log, "ab") as worker_log:
            self.worker = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "config",
                    "worker",
                    "--loglevel=WARNING",
                    "--concurrency=1",
                    "--pool=prefork",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                ],
                cwd=ROOT,
                env=env,
                stdout=worker_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.3)
        time.sleep(3)  # the worker connects to the broker

    def worker_peak_rss_mb(self) -> float:
        """VmHWM of the worker's pool processes (where imports run), not of their own
        children (the import's parser process)."""
        return peak_rss_mb([self.worker.pid, *child_pids(self.worker.pid)])

    def stop(self) -> None:
        import signal

        for proc in (self.web, self.worker):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGKILL)


def bench_django(workdir: Path, **extra: str) -> dict[str, str]:
    """Django set up in this process on the bench database (migrated), files and data under
    ``workdir``; the environment the web server and worker run with (rate limits lifted)."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "LEADLEX_DATA_DIR": str(workdir / "data"),
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", "bench-secret"),
        "LEADLEX_LOG_LEVEL": "WARNING",
        "LEADLEX_RATE_LIMITS": "import_contacts=100000/minute,default=100000/minute",
        **extra,
    }
    os.environ.update({k: env[k] for k in ("LEADLEX_DATA_DIR", "DJANGO_SECRET_KEY")})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return env


def bench_key(workspace: Any) -> str:
    """A new key with every scope for ``workspace``; the raw key."""
    from leadlex.models import ALL_SCOPES, ApiKey

    raw = ApiKey.generate()
    key = ApiKey(workspace=workspace, scopes=list(ALL_SCOPES), name="bench")
    key.set_key(raw)
    key.save()
    return raw


def api_import(port: int, key: str, path: Path, *, update_existing: bool) -> tuple[float, dict]:
    import http.client
    import json

    query = urllib.parse.urlencode({"update_existing": "true" if update_existing else "false"})
    body = path.read_bytes()
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request(
        "POST",
        f"/v1/import/contacts?{query}",
        body=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "text/csv"},
    )
    response = conn.getresponse()
    data = json.loads(response.read())
    if response.status not in (200, 202):
        raise SystemExit(f"import refused: {response.status} {data}")
    job_id = data["data"]["job_id"]
    while True:
        conn.request("GET", f"/v1/import/contacts/{job_id}", headers={"Authorization": f"Bearer {key}"})
        status = json.loads(conn.getresponse().read())["data"]
        if status["status"] in ("completed", "failed"):
            return time.perf_counter() - started, status
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, action="append", help="rows per run (repeatable); default 100000")
    parser.add_argument("--insert-only", action="store_true", help="skip the upsert runs (halves the time of a 1M run)")
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "leadlex-import-bench"))
    args = parser.parse_args()
    sizes = args.rows or [100_000]
    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        raise SystemExit("DATABASE_URL must point at a PostgreSQL database for the benchmark")
    workdir = Path(args.workdir)
    env = bench_django(workdir, LEADLEX_MAX_BODY_BYTES=str(512 * 1024 * 1024))
    from leadlex.models import Workspace

    results = []
    for n in sizes:
        path = workdir / f"contacts-{n}.csv"
        bad = generate(path, n)
        half = half_file(path)
        print(f"{n:,} rows ({bad:,} bad), {path.stat().st_size / 1e6:.1f} MB", flush=True)
        base_insert = baseline_insert(database_url, path)
        base_upsert = float("nan") if args.insert_only else baseline_upsert(database_url, path, half)
        base_schema = baseline_insert_schema(database_url, path)
        base_upsert_schema = float("nan") if args.insert_only else baseline_upsert_schema(database_url, path, half)
        print(
            f"  baselines: insert {base_insert:.1f}s, upsert {base_upsert:.1f}s; into a copy of the contacts "
            f"table with its indexes: insert {base_schema:.1f}s, upsert {base_upsert_schema:.1f}s",
            flush=True,
        )

        keys = {}
        for label in ("insert", "upsert", "upsert-seed"):
            Workspace.objects.filter(name=f"bench-{label}-{n}").delete()
        for label in ("insert", "upsert"):
            keys[label] = bench_key(Workspace.objects.create(name=f"bench-{label}-{n}"))

        stack = Stack(env, workdir)
        try:
            rss_before = stack.worker_peak_rss_mb()
            ours_insert, insert_status = api_import(stack.port, keys["insert"], path, update_existing=False)
            rss_after_insert = stack.worker_peak_rss_mb()
            if args.insert_only:
                ours_upsert, upsert_status = (
                    float("nan"),
                    {"status": "completed", "created_count": 0, "updated_count": 0},
                )
            else:
                api_import(stack.port, keys["upsert"], half, update_existing=False)  # seed: half the rows exist
                ours_upsert, upsert_status = api_import(stack.port, keys["upsert"], path, update_existing=True)
            rss_peak = stack.worker_peak_rss_mb()
        finally:
            stack.stop()
        for label, status in (("insert", insert_status), ("upsert", upsert_status)):
            if status["status"] != "completed":
                raise SystemExit(f"{label} import failed: {status}")
        results.append(
            {
                "rows": n,
                "bad": bad,
                "base_insert": base_insert,
                "base_upsert": base_upsert,
                "base_schema": base_schema,
                "base_upsert_schema": base_upsert_schema,
                "ours_insert": ours_insert,
                "ours_upsert": ours_upsert,
                "insert": insert_status,
                "upsert": upsert_status,
                "rss_start": rss_before,
                "rss_insert": rss_after_insert,
                "rss_peak": rss_peak,
            }
        )
        r = results[-1]
        print(
            f"  leadlex: insert {ours_insert:.1f}s ({n / ours_insert:,.0f} rows/s, "
            f"{base_insert / ours_insert:.1%} of baseline), upsert {ours_upsert:.1f}s "
            f"({n / ours_upsert:,.0f} rows/s, {base_upsert / ours_upsert:.1%} of baseline); "
            f"counts insert {insert_status['created_count']}/{insert_status['error_count']} err, "
            f"upsert {upsert_status['created_count']} created {upsert_status['updated_count']} updated; "
            f"worker peak RSS {rss_peak:.0f} MB",
            flush=True,
        )

    print(
        "\n| rows | bad rows | psql \\copy insert | \\copy into contacts-shaped table | LeadLex insert | ratio | "
        "COPY+ON CONFLICT upsert | the same into contacts-shaped table | LeadLex upsert (50% updates) | ratio | "
        "worker peak RSS |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        n = r["rows"]
        print(
            f"| {n:,} | {r['bad']:,} | {n / r['base_insert']:,.0f} rows/s | {n / r['base_schema']:,.0f} rows/s | "
            f"{n / r['ours_insert']:,.0f} rows/s | "
            f"{r['base_insert'] / r['ours_insert']:.1%} | {n / r['base_upsert']:,.0f} rows/s | "
            f"{n / r['base_upsert_schema']:,.0f} rows/s | "
            f"{n / r['ours_upsert']:,.0f} rows/s | {r['base_upsert'] / r['ours_upsert']:.1%} | "
            f"{r['rss_peak']:.0f} MB |"
        )


if __name__ == "__main__":
    main()
