"""Rows and worker settings the import tests share."""

from __future__ import annotations

# Small batches, so that a few hundred rows make several checkpoints; test receivers on 127.0.0.1.
WORKER_ENV = {"LEADLEX_WEBHOOKS_ALLOW_PRIVATE": "1", "LEADLEX_IMPORT_BATCH_SIZE": "50"}


def import_rows(n: int, *, start: int = 0, domain: str = "example.com") -> list[dict]:
    return [
        {"full_name": f"Person {i}", "email": f"person{i}@{domain}", "phone": f"+1415555{i % 10000:04d}"}
        for i in range(start, start + n)
    ]
