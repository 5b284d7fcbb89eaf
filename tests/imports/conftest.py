"""Fixtures of the import tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def import_queue(settings) -> str:
    """A private queue for this test's import jobs (see tests.support.worker.QueueWorker)."""
    import uuid

    settings.LEADLEX_IMPORT_QUEUE = f"imports-test-{uuid.uuid4().hex[:8]}"
    return settings.LEADLEX_IMPORT_QUEUE
