"""What a request pays to sign a download link on the gevent web workers.

``GET /v1/contacts/exports/{id}`` of a completed job signs a fresh presigned S3 URL
on every read. Under gunicorn's gevent worker each request runs in a greenlet of its
own, and django-storages' ``S3Storage`` keeps its boto3 session in a
``threading.local`` (per greenlet once gevent has patched ``threading``), so every
request builds a boto3 session and client. ``leadlex.storage.S3FileStorage`` shares
one client per process. This script measures both through a live gunicorn (the
product's own config, one worker) on the embedded database with S3 settings:

* ``stock``: ``S3FileStorage`` with ``S3Storage``'s connection handling put back
  (``DJANGO_SETTINGS_MODULE=bench.stock_s3_settings``);
* ``shared``: LeadLex as configured.

Signing needs no S3 server: the endpoint is never called. Run from the project root::

    LEADLEX_DATA_DIR=/tmp/lx-presign .venv/bin/python bench/storage_presign.py --requests 200 --concurrency 8

Prints a Markdown table (latency per request, requests/s) to stdout.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402 - after the project root is importable
from storages.backends.s3 import S3Storage  # noqa: E402 - as above

from bench.procs import free_port  # noqa: E402 - as above
from leadlex.storage import S3FileStorage  # noqa: E402 - as above

OFFLINE_S3 = {
    "AWS_STORAGE_BUCKET_NAME": "lx-presign",
    "AWS_S3_ENDPOINT_URL": "http://127.0.0.1:9",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
}
# The product's own server configuration (gevent workers), as ./bin/leadlex starts it.
GUNICORN = [sys.executable, "-m", "gunicorn", "-c", "python:config.gunicorn", "config.wsgi:application"]


class StockConnectionS3Storage(S3FileStorage):
    """S3FileStorage with django-storages' per-thread session and cached bucket back."""

    connection = S3Storage.connection
    bucket = S3Storage.bucket


def bench_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")}
    env.update(OFFLINE_S3)
    env.setdefault("LEADLEX_DATA_DIR", "/tmp/lx-presign")
    env["LEADLEX_RATE_LIMITS"] = "default=1000000/minute,contacts_exports_status=1000000/minute"
    env["PYTHONPATH"] = str(ROOT)
    return env


def seed(env: dict[str, str]) -> tuple[str, str]:
    """A workspace, a key and a completed export job; returns (key, job id)."""
    script = """
import django; django.setup()
from django.core.management import call_command
from django.utils import timezone
from exports.models import ExportJob
from leadlex.models import ApiKey, Workspace
call_command("migrate", verbosity=0)
ws = Workspace.objects.create(name=f"presign bench {timezone.now().isoformat()}", timezone="UTC")
raw = ApiKey.generate()
key = ApiKey(workspace=ws, scopes=["read:contacts"], owner_email="bench@example.com")
key.set_key(raw)
key.save()
job = ExportJob.objects.create(workspace=ws, kind="contacts", format="ndjson", status=ExportJob.Status.COMPLETED,
    storage_key="exports/presign-bench.ndjson.gz", total_count=1, processed_count=1, row_count=1,
    completed_at=timezone.now())
print(raw, job.pk)
"""
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        check=True,
    )
    raw, job_id = out.stdout.split()[-2:]
    return raw, job_id


def run(variant: str, env: dict[str, str], raw: str, job_id: str, n: int, concurrency: int) -> dict[str, float]:
    port = free_port()
    settings_module = "bench.stock_s3_settings" if variant == "stock" else "config.settings"
    log = open(Path(env["LEADLEX_DATA_DIR"]) / f"gunicorn-{variant}.log", "wb")  # noqa: SIM115  closed below
    proc = subprocess.Popen(
        [*GUNICORN, "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": settings_module},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/v1/contacts/exports/{job_id}"
    headers = {"Authorization": f"Bearer {raw}"}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(url, headers=headers, timeout=10).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"gunicorn ({variant}) did not answer")
            time.sleep(0.2)
        for _ in range(5):  # warm: imports, first client, database connection set-up
            requests.get(url, headers=headers, timeout=30)

        def one(_: int) -> float:
            with requests.Session() as s:  # a new connection per request, as separate clients make
                started = time.perf_counter()
                response = s.get(url, headers=headers, timeout=60)
                elapsed = time.perf_counter() - started
            assert response.status_code == 200 and "X-Amz-Signature=" in response.json()["download_url"]
            return elapsed

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            latencies = sorted(pool.map(one, range(n)))
        wall = time.perf_counter() - started
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
    return {
        "p50_ms": statistics.median(latencies) * 1000,
        "p95_ms": latencies[int(len(latencies) * 0.95) - 1] * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000,
        "rps": n / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    env = bench_env()
    Path(env["LEADLEX_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    raw, job_id = seed(env)
    print(f"{args.requests} requests, {args.concurrency} at a time, gunicorn 1 gevent worker\n")
    print("| storage | p50 ms | p95 ms | mean ms | requests/s |")
    print("|---|---:|---:|---:|---:|")
    for variant in ("stock", "shared"):
        r = run(variant, env, raw, job_id, args.requests, args.concurrency)
        print(
            f"| {variant} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['mean_ms']:.1f} | {r['rps']:.1f} |", flush=True
        )


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    main()
