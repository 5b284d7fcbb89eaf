"""The embedded profile's file-system broker does not lose a message published while
a consumer polls its queue (kombu's own transport wrote the file after creating it
under its final name, so a reader could take it empty)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = 1500

# A consumer in its own process, polling as fast as it can through the app's broker
# connection: it reports how many distinct messages it got and how many reads failed.
CONSUMER = """
import json, sys, time
import django
django.setup()
from config.celery import app
queue_name, expected = sys.argv[1], int(sys.argv[2])
got, errors = set(), 0
with app.connection_for_read() as conn:
    queue = conn.SimpleQueue(queue_name)
    print("polling", flush=True)
    deadline = time.monotonic() + 30
    while len(got) < expected and time.monotonic() < deadline:
        try:
            message = queue.get(block=False)
        except queue.Empty:
            continue
        except Exception:
            errors += 1
            continue
        got.add(message.payload["n"])
        message.ack()
print(json.dumps({"got": len(got), "errors": errors}), flush=True)
"""


@pytest.mark.skipif(not settings.CELERY_BROKER_URL.startswith("filesystem://"), reason="the embedded profile's broker")
def test_no_message_is_lost_when_published_while_a_consumer_polls() -> None:
    from config.celery import app

    queue_name = f"race-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "LEADLEX_DATA_DIR": str(settings.DATA_DIR)}
    consumer = subprocess.Popen(
        [sys.executable, "-c", CONSUMER, queue_name, str(MESSAGES)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert consumer.stdout is not None
        assert consumer.stdout.readline().strip() == "polling", consumer.stderr.read() if consumer.stderr else ""
        with app.connection_for_write() as conn:
            queue = conn.SimpleQueue(queue_name)
            for n in range(MESSAGES):
                queue.put({"n": n})
        out, err = consumer.communicate(timeout=90)
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait()
        with app.connection_for_write() as conn:
            conn.SimpleQueue(queue_name).clear()
    assert json.loads(out.strip().splitlines()[-1]) == {"got": MESSAGES, "errors": 0}, err[-2000:]
