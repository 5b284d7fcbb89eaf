"""Benchmark: the import's row validation alone (``imports.validation.validate_row``),
on the rows of bench/import_contacts.py's generated CSV, plus a mix with harder input.

    .venv/bin/python bench/validate_rows.py --rows 100000

Validation runs in the import's parser child, ahead of the writes; this isolates its
CPU cost per row (no database: ``validate_row`` is pure): process CPU time, best of
``--repeat`` runs, so that other processes on the machine do not count.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("LEADLEX_DATA_DIR", str(Path(tempfile.gettempdir()) / "leadlex-validate-bench"))

import django  # noqa: E402 - settings first

django.setup()

from import_contacts import generate  # noqa: E402 - bench/ is the script's own folder

import contacts.validation as contacts_validation  # noqa: E402 - after django.setup()
from imports.validation import validate_row  # noqa: E402 - after django.setup()


def mixed_rows(n: int, seed: int = 11) -> list[dict[str, str]]:
    """Rows a CRM export has besides the plain case: national phone notations, mixed
    case, IDN domains in either spelling, a few thousand company domains."""
    rng = random.Random(seed)
    domains = ["gmail.com", "Example.COM", "bücher.de", "xn--bcher-kva.de", "sub.mail.co.uk"]
    rows = []
    for i in range(n):
        domain = rng.choice(domains) if rng.random() < 0.5 else f"firm{rng.randrange(5_000)}.com"
        phone = rng.choice(
            [
                f"+1415{i % 10_000_000:07d}",
                f"(415) 555-{i % 10_000:04d}",
                f"+44 20 7946 {i % 10_000:04d}",
                f"+33 1 {i % 100:02d} {i % 97:02d} 00 00",
            ]
        )
        rows.append({"full_name": f"Person {i}", "email": f"Person.{i}@{domain}", "phone": phone})
    return rows


def distinct_domain_rows(n: int) -> list[dict[str, str]]:
    """The worst case for a per-domain cache: every row has a domain of its own."""
    return [
        {"full_name": f"Person {i}", "email": f"person{i}@company{i}.example.com", "phone": f"+1415{i:07d}"}
        for i in range(n)
    ]


def timed(rows: list[dict[str, str]], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        # Each import starts with cold caches (its parser is a fresh child process).
        cached = getattr(contacts_validation, "_phone_rules", None)  # per calling code
        if cached is not None:
            cached.cache_clear()
        start = time.process_time()
        for number, row in enumerate(rows, start=1):
            validate_row(number, row, tz=dt.UTC)
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    path = Path(tempfile.gettempdir()) / f"leadlex-validate-bench-{args.rows}.csv"
    generate(path, args.rows)
    with open(path, encoding="utf-8", newline="") as fh:
        bench_rows = [{k: v for k, v in row.items() if v} for row in csv.DictReader(fh)]
    cases = (
        ("import bench CSV", bench_rows),
        ("mixed notations", mixed_rows(args.rows)),
        ("a domain per row", distinct_domain_rows(args.rows)),
    )
    for name, rows in cases:
        seconds = timed(rows, args.repeat)
        print(f"{name:>18}: {len(rows):,} rows in {seconds:.2f} s CPU = {seconds / len(rows) * 1e6:.1f} µs/row")


if __name__ == "__main__":
    main()
