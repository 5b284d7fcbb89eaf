"""Benchmark: a file of millions of rows sent through POST /v1/uploads and imported by
upload_id, end to end, with the worker's memory watched as it goes.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/lx_bench REDIS_URL=redis://127.0.0.1:6379/9 \\
    DJANGO_SECRET_KEY=bench .venv/bin/python bench/import_upload.py --rows 10000000

One generated CSV (full_name, email, phone, job_title, company_name, created_at) of
realistic rows: accented names, values with quotes and commas, empty cells, ~1% bad rows
(a broken address or phone), every 50th row with the phone of an earlier row (it
updates that contact) and every 1,000th with the address of an earlier row (an in-file
duplicate). A real gunicorn and one Celery worker (concurrency 1) on the bench database,
files on local disk (the embedded profile's storage; LEADLEX_DATA_DIR under --workdir).
The table holds another workspace's contacts and was analyzed before the run: the fresh
workspace starts with statistics that do not know it, as a new customer's first import does.

- upload: ``POST /v1/uploads`` (in parts), each part PUT from the file as it is read,
  ``/complete``; against the baseline ``cp`` of the file onto the same disk;
- import: ``POST /v1/import/contacts {"upload_id": …}`` to "completed", against the
  baseline ``psql \\copy`` of the file into a plain table, both in this run;
- memory: the worker's resident set (VmRSS of the pool process and of the import's
  parser child, which it forks) sampled every 2 s, read off at 1M rows and at the end:
  the growth between the two is what "flat" means.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from import_contacts import Stack, bench_django, bench_key, psql  # noqa: E402 - bench/ is the script's own folder
from procs import child_pids  # noqa: E402

FIRST = ["Ada", "Björn", "Chloé", "Dmitri", "Éva", "Fatima", "Grace", "Hiro", "Inés", "José", "Łukasz", "Zoë"]
LAST = ["Lovelace", "Smith", "Dupont", "Ivanov", "Nuñez", "Khan", "Hopper", "Tanaka", "Müller", "Dvořák", "Øster"]
TITLES = ["CEO", "CTO", "Engineer", "Sales, EMEA", 'Head of "Growth"', "Designer", "", "Directeur général"]


def generate(path: Path, n: int, seed: int = 11) -> dict[str, int]:
    """Write N rows; what is awkward about them, counted."""
    rng = random.Random(seed)
    counts = {"bad": 0, "shared_phone": 0, "duplicate_email": 0}
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write("full_name,email,phone,job_title,company_name,created_at\r\n")
        buffer = []
        for i in range(n):
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            email = f"person{i}@company{i % 20000}.example.com"
            phone = f"+1415{i % 10_000_000:07d}"
            if i and i % 50 == 0:
                phone = f"+1415{rng.randrange(i) % 10_000_000:07d}"
                counts["shared_phone"] += 1
            if i and i % 1000 == 0:
                email = f"person{rng.randrange(i)}@company{rng.randrange(20000)}.example.com"
                counts["duplicate_email"] += 1
            if rng.random() < 0.01:
                counts["bad"] += 1
                if rng.random() < 0.5:
                    email = f"person{i}-at-nowhere"
                else:
                    phone = "12"
            title = rng.choice(TITLES)
            title = f'"{title.replace(chr(34), chr(34) * 2)}"' if ("," in title or '"' in title) else title
            company = f'"Société {i % 5000}, Inc."' if i % 7 == 0 else f"Company {i % 5000}"
            buffer.append(f"{name},{email},{phone},{title},{company},2023-0{1 + i % 9}-1{i % 10}T12:00:00Z\r\n")
            if len(buffer) >= 10000:
                fh.write("".join(buffer))
                buffer.clear()
        fh.write("".join(buffer))
    return counts


def baseline_copy(database_url: str, path: Path) -> float:
    psql(
        database_url,
        "DROP TABLE IF EXISTS bench_upload_copy; CREATE TABLE bench_upload_copy (full_name text, "
        "email text, phone text, job_title text, company_name text, created_at timestamptz)",
    )
    seconds = psql(database_url, f"\\copy bench_upload_copy FROM '{path}' WITH (FORMAT csv, HEADER true)")
    psql(database_url, "DROP TABLE bench_upload_copy")
    return seconds


def stale_statistics(database_url: str, rows: int) -> None:
    """Another workspace of ``rows`` contacts, and an ANALYZE that sees only it: the
    statistics the import's fresh workspace starts with (absent from them)."""
    psql(
        database_url,
        "DELETE FROM contacts_contact WHERE workspace_id IN "
        "(SELECT id FROM leadlex_workspace WHERE name = 'bench-other'); "
        "DELETE FROM leadlex_workspace WHERE name = 'bench-other'",
    )
    from leadlex.models import Workspace

    other = Workspace.objects.create(name="bench-other")
    psql(
        database_url,
        "INSERT INTO contacts_contact (id, workspace_id, full_name, email, phone, job_title, company_name, "
        "linkedin_url, custom, created_at, updated_at) "
        f"SELECT gen_random_uuid(), '{other.pk}', 'Other ' || n, 'other' || n || '@example.org', "
        f"'+1212' || lpad(n::text, 7, '0'), '', '', '', '{{}}', now(), now() FROM generate_series(1, {rows}) n; "
        "ANALYZE contacts_contact",
    )


def baseline_cp(path: Path, workdir: Path) -> float:
    target = workdir / "cp-baseline.csv"
    started = time.perf_counter()
    shutil.copyfile(path, target)
    with open(target, "rb") as fh:
        os.fsync(fh.fileno())
    seconds = time.perf_counter() - started
    target.unlink()
    return seconds


def request(port: int, key: str, method: str, path: str, body: dict | None = None) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    headers = {"Authorization": f"Bearer {key}"}
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=payload, headers=headers)
    response = conn.getresponse()
    data = json.loads(response.read() or b"{}")
    if response.status >= 300:
        raise SystemExit(f"{method} {path}: {response.status} {data}")
    return data["data"]


def upload(port: int, key: str, path: Path) -> tuple[float, str, int]:
    size = path.stat().st_size
    started = time.perf_counter()
    created = request(port, key, "POST", "/v1/uploads", {"file_name": path.name, "size": size, "multipart": True})
    with open(path, "rb") as fh:
        for part in created["parts"]:
            url = urlsplit(part["url"])
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=600)
            conn.putrequest("PUT", url.path + (f"?{url.query}" if url.query else ""))
            conn.putheader("Content-Length", str(part["size"]))
            conn.endheaders()
            left = part["size"]
            while left:
                chunk = fh.read(min(left, 1024 * 1024))
                conn.send(chunk)
                left -= len(chunk)
            answer = conn.getresponse()
            answer.read()
            if answer.status != 200:
                raise SystemExit(f"part {part['part_number']}: {answer.status}")
    done = request(port, key, "POST", f"/v1/uploads/{created['upload_id']}/complete")
    return time.perf_counter() - started, done["upload_id"], len(created["parts"])


def rss_mb(pids: list[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out[pid] = int(line.split()[1]) / 1024
        except FileNotFoundError:
            pass
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "leadlex-upload-bench"))
    parser.add_argument("--keep-file", action="store_true", help="reuse the generated file of a previous run")
    parser.add_argument(
        "--other-rows", type=int, default=200_000, help="contacts of another workspace, analyzed before the run"
    )
    args = parser.parse_args()
    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        raise SystemExit("DATABASE_URL must point at a PostgreSQL database for the benchmark")
    workdir = Path(args.workdir)
    env = bench_django(workdir)
    from leadlex.models import Workspace

    n = args.rows
    path = workdir / f"upload-{n}.csv"
    if not (args.keep_file and path.exists()):
        started = time.perf_counter()
        counts = generate(path, n)
        print(f"generated {n:,} rows in {time.perf_counter() - started:.0f}s: {counts}", flush=True)
    size = path.stat().st_size
    print(f"{path}: {size / 1e6:,.0f} MB", flush=True)
    base_cp = baseline_cp(path, workdir)
    base_copy = baseline_copy(database_url, path)
    print(f"baselines: cp {base_cp:.1f}s, psql \\copy {base_copy:.1f}s ({n / base_copy:,.0f} rows/s)", flush=True)

    name = f"bench-upload-{n}"
    Workspace.objects.filter(name=name).delete()
    stale_statistics(database_url, args.other_rows)
    raw = bench_key(Workspace.objects.create(name=name))

    stack = Stack(env, workdir)
    samples: list[tuple[float, int, float, float, int | None]] = []
    try:
        up_seconds, upload_id, parts = upload(stack.port, raw, path)
        print(f"upload: {up_seconds:.1f}s in {parts} parts ({size / up_seconds / 1e6:,.0f} MB/s)", flush=True)
        started = time.perf_counter()
        job = request(stack.port, raw, "POST", "/v1/import/contacts", {"upload_id": upload_id})
        job_id = job["job_id"]
        last_print = 0.0
        while True:
            status = request(stack.port, raw, "GET", f"/v1/import/contacts/{job_id}")
            pool = child_pids(stack.worker.pid)
            rss = rss_mb(pool + [c for p in pool for c in child_pids(p)])
            pool_rss = max((rss.get(p, 0.0) for p in pool), default=0.0)
            child_rss = max((v for p, v in rss.items() if p not in pool), default=0.0)
            elapsed = time.perf_counter() - started
            samples.append((elapsed, status["processed_rows"], pool_rss, child_rss, status["progress_percent"]))
            if elapsed - last_print > 60:
                last_print = elapsed
                print(
                    f"  {elapsed:,.0f}s: {status['processed_rows']:,} rows ({status['progress_percent']}%), "
                    f"worker {pool_rss:.0f} MB, parser {child_rss:.0f} MB",
                    flush=True,
                )
            if status["status"] in ("completed", "failed"):
                break
            time.sleep(2)
        seconds = time.perf_counter() - started
    finally:
        stack.stop()
    if status["status"] != "completed":
        raise SystemExit(f"import failed: {status}")

    def at(rows: int) -> tuple[float, float]:
        """The largest RSS seen (worker, parser) up to the sample that first passed ``rows``."""
        worker = parser_ = 0.0
        for _elapsed, done, pool_rss, child_rss, _pct in samples:
            worker, parser_ = max(worker, pool_rss), max(parser_, child_rss)
            if done >= rows:
                break
        return worker, parser_

    w1, p1 = at(1_000_000)
    wn, pn = at(n)
    print(
        f"import: {seconds:,.0f}s ({n / seconds:,.0f} rows/s, {base_copy / seconds:.1%} of \\copy); "
        f"{status['created_count']:,} created, {status['updated_count']:,} updated, "
        f"{status['error_count']:,} errors; total_rows {status['total_rows']:,}"
    )
    print(f"worker RSS at 1M rows {w1:.0f} MB, at {n / 1e6:.0f}M {wn:.0f} MB (growth {wn - w1:+.0f} MB)")
    print(f"parser RSS at 1M rows {p1:.0f} MB, at {n / 1e6:.0f}M {pn:.0f} MB (growth {pn - p1:+.0f} MB)")
    print(
        "\n| rows | file | upload | cp | import | rows/s | \\copy | ratio | worker RSS 1M → end | parser RSS 1M → end |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {n:,} | {size / 1e9:.2f} GB | {up_seconds:.0f} s | {base_cp:.0f} s | {seconds:,.0f} s | "
        f"{n / seconds:,.0f} | {base_copy:.0f} s | {base_copy / seconds:.1%} | {w1:.0f} → {wn:.0f} MB | "
        f"{p1:.0f} → {pn:.0f} MB |"
    )
    (workdir / "samples.json").write_text(json.dumps(samples))


if __name__ == "__main__":
    main()
