"""Memory stays flat however many rows stream: the peak Python allocation while
streaming 10x more rows grows by far less than the rows themselves would take."""

from __future__ import annotations

import tracemalloc
from datetime import timedelta

import pytest

from tests.exports.factories import make_contacts

pytestmark = pytest.mark.django_db


def _peak_while_streaming(client) -> tuple[int, int]:
    response = client.get("/v1/contacts/export?limit=50000&fields=id,full_name,email,tags,custom,created_at")
    tracemalloc.start()
    size = 0
    for chunk in response.streaming_content:
        size += len(chunk)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, size


def test_streaming_ten_times_the_rows_does_not_take_ten_times_the_memory(owner, settings) -> None:
    settings.LEADLEX_EXPORT_BATCH_SIZE = 500
    make_contacts(owner.workspace, 2_000, custom={"plan": "gold", "note": "x" * 100})
    small_peak, small_size = _peak_while_streaming(owner.client)
    make_contacts(
        owner.workspace,
        18_000,
        start=owner.workspace.created_at + timedelta(days=400),
        custom={"plan": "gold", "note": "x" * 100},
    )
    big_peak, big_size = _peak_while_streaming(owner.client)
    assert big_size > 9 * small_size
    # The bytes of 18,000 more rows (~4 MB) never sit in memory at once: the peak is a
    # batch or two, whatever the total.
    assert big_peak - small_peak < 1_000_000, (small_peak, big_peak)
