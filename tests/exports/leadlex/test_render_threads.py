"""PostgreSQL fast path, rendered ahead on threads with connections of their own
(leadlex/prefetch.py): the same file as one connection rendering batch by batch,
whatever the batch boundaries do, with every thread and connection gone afterwards.

Transactional tests: a render thread's connection cannot see a test transaction."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import OperationalError, connection

from exports.engine import export_job_run
from exports.leadlex import kinds as contact_kind
from exports.leadlex.services import contact_export_start
from exports.models import ExportJob
from leadlex.prefetch import RenderThreads
from tests.conftest import is_postgres
from tests.exports.factories import BASE, make_contacts
from tests.exports.leadlex.test_fast_path_parity import AWKWARD, _awkward_workspace
from tests.support.files import csv_records, job_file_text, ndjson_records

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.postgres,
    pytest.mark.skipif(not is_postgres(), reason="the fast path exists on PostgreSQL only"),
]


@pytest.fixture
def render_connections(monkeypatch):
    """The database connections the render threads used (psycopg objects): each must
    be closed once the export is over. Checked on the objects themselves, not by
    counting server processes, which other tests' workers can open and close."""
    seen: list = []
    real = contact_kind._render_range

    def recording(*args):
        try:
            return real(*args)
        finally:
            if (
                threading.current_thread().name.startswith("export-render-")
                and connection.connection is not None
                and all(c is not connection.connection for c in seen)
            ):
                seen.append(connection.connection)

    monkeypatch.setattr(contact_kind, "_render_range", recording)
    return seen


def _assert_closed(conns: list) -> None:
    assert conns, "no render thread ran a query"
    assert all(c.closed for c in conns), "a render thread's connection was left open"


def _render_threads_alive() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("export-render-")]


@pytest.fixture
def spied_pools(monkeypatch):
    pools: list[RenderThreads] = []

    class Spy(RenderThreads):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            pools.append(self)

    monkeypatch.setattr(contact_kind, "RenderThreads", Spy)
    return pools


def _export(workspace, fmt: str) -> tuple[ExportJob, bytes]:
    job = contact_export_start(
        workspace=workspace, format=fmt, include_comet_tokens=True, include_all_emails=True, enqueue=False
    )
    assert export_job_run(job_id=job.pk) == ExportJob.Status.COMPLETED
    job.refresh_from_db()
    return job, job_file_text(job)


def _workspace_with_ties(workspace) -> None:
    _awkward_workspace(workspace)
    # Many rows share one created_at, so ranges are cut inside a run of equal timestamps.
    make_contacts(workspace, 40, start=BASE + timedelta(days=1), same_time=True)
    make_contacts(workspace, 23, start=BASE + timedelta(days=2))


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
def test_threads_write_the_file_one_connection_writes(
    workspace,
    settings,
    spied_pools,
    render_connections,
    fmt,
) -> None:
    _workspace_with_ties(workspace)
    settings.LEADLEX_EXPORT_BATCH_SIZE = 7

    settings.LEADLEX_EXPORT_RENDER_THREADS = 1
    _, single = _export(workspace, fmt)
    assert not spied_pools

    settings.LEADLEX_EXPORT_RENDER_THREADS = 2
    job, threaded = _export(workspace, fmt)
    assert len(spied_pools) == 1  # the threaded path ran

    assert threaded == single
    assert job.row_count == len(AWKWARD) + 63
    records = csv_records(threaded)[1:] if fmt == "csv" else ndjson_records(threaded)
    assert len(records) == job.row_count
    assert not _render_threads_alive()
    _assert_closed(render_connections)


def test_a_range_grown_since_it_was_cut_is_cut_again(workspace, settings, monkeypatch, spied_pools) -> None:
    """Rows created with an old created_at after a range was cut can make it far
    larger than a batch: the batch stops at its cap and the ranges are cut again
    from its last row, so nothing is skipped or written twice."""
    _workspace_with_ties(workspace)
    settings.LEADLEX_EXPORT_BATCH_SIZE = 3
    settings.LEADLEX_EXPORT_RENDER_THREADS = 1
    _, expected = _export(workspace, "csv")

    real = contact_kind.contact_export_boundary
    cuts = []

    def stale_cut(*, workspace, filters, limit):
        # As if 10x the rows had been created in each range after it was cut.
        cuts.append(limit)
        return real(workspace=workspace, filters=filters, limit=limit * 10)

    monkeypatch.setattr(contact_kind, "contact_export_boundary", stale_cut)
    settings.LEADLEX_EXPORT_RENDER_THREADS = 2
    _, threaded = _export(workspace, "csv")
    assert spied_pools and cuts
    assert threaded == expected


def test_a_render_thread_failure_reaches_the_job_and_stops_the_threads(
    workspace,
    settings,
    monkeypatch,
    render_connections,
) -> None:
    make_contacts(workspace, 60)
    settings.LEADLEX_EXPORT_BATCH_SIZE = 5
    settings.LEADLEX_EXPORT_RENDER_THREADS = 2
    real = contact_kind._render_range
    calls = []

    def flaky(*args):
        calls.append(threading.current_thread().name)
        if len(calls) == 4:
            raise OperationalError("server closed the connection unexpectedly")
        return real(*args)

    monkeypatch.setattr(contact_kind, "_render_range", flaky)
    job = contact_export_start(workspace=workspace, format="csv", enqueue=False)
    with pytest.raises(OperationalError):  # transient: the task retries it
        export_job_run(job_id=job.pk)
    assert all(name.startswith("export-render-") for name in calls)
    assert not _render_threads_alive()
    _assert_closed(render_connections)
    job.refresh_from_db()
    assert job.status == ExportJob.Status.QUEUED and job.error_kind == "transient"

    # The retry resumes from the last checkpoint and the file holds every row once.
    assert export_job_run(job_id=job.pk) == ExportJob.Status.COMPLETED
    job.refresh_from_db()
    rows = csv_records(job_file_text(job))[1:]
    assert len(rows) == 60 and len({r[0] for r in rows}) == 60


def test_sync_csv_endpoint_streams_the_same_bytes_and_stops_its_threads_when_abandoned(
    owner,
    settings,
    spied_pools,
    render_connections,
) -> None:
    make_contacts(owner.workspace, 120)
    settings.LEADLEX_EXPORT_BATCH_SIZE = 10
    settings.LEADLEX_EXPORT_RENDER_THREADS = 1
    single = b"".join(owner.client.get("/v1/contacts/export").streaming_content)
    settings.LEADLEX_EXPORT_RENDER_THREADS = 2
    threaded = b"".join(owner.client.get("/v1/contacts/export").streaming_content)
    assert len(spied_pools) == 1 and threaded == single
    assert len(csv_records(threaded)) == 121

    # A client that goes away after the first batch: the response is closed, and with
    # it the render threads and their connections.
    response = owner.client.get("/v1/contacts/export")
    stream = iter(response.streaming_content)
    next(stream)
    next(stream)
    assert _render_threads_alive()
    response.close()
    assert not _render_threads_alive()
    _assert_closed(render_connections)
