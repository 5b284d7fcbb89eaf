"""The job runtime (leadlex/jobs.py): claim, lease, checkpoint, the one retry rule,
the sweeper, failure kinds; and what both engines get from it."""

from __future__ import annotations

import ast
import logging
import threading
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from celery.exceptions import Retry
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from exports.models import ExportJob
from imports.models import ImportJob
from leadlex import storage
from leadlex.jobs import FailureKind, JobRuntime, LeaseLost, is_transient, job_task_run, retry_countdown
from leadlex.middleware import RequestIdLogFilter, current_request_id, request_id_scope
from leadlex.prefetch import RenderThreads, fork_prefetch, thread_prefetch
from tests.conftest import is_postgres

ROOT = Path(__file__).resolve().parents[2]


class Recorder:
    """What a job kind's hooks saw."""

    def __init__(self) -> None:
        self.dispatched: list[str] = []
        self.failed: list[str] = []
        self.cleaned: list[str] = []


@pytest.fixture
def hooks() -> Recorder:
    return Recorder()


@pytest.fixture
def runtime(hooks) -> JobRuntime:
    # Any model with the job fields will do; ExportJob rows are at hand.
    return JobRuntime(
        model=ExportJob,
        label="test-job",
        dispatch=hooks.dispatched.append,
        stale_seconds=lambda: 60,
        max_attempts=lambda: 3,
        user_errors=(ValueError,),
        system_message=lambda exc: f"Broke: {type(exc).__name__}",
        on_failed=lambda job: hooks.failed.append(str(job.pk)),
        after_failed=lambda job: hooks.cleaned.append(str(job.pk)),
    )


def new_job(workspace, **fields) -> ExportJob:
    return ExportJob.objects.create(workspace=workspace, kind="contacts", format="csv", **fields)


def go_stale(job: ExportJob, *, seconds: int = 120) -> None:
    ExportJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=seconds))


# --- claim and lease -------------------------------------------------------------------
def test_a_claimed_job_is_not_claimed_again_while_its_run_beats(db, workspace, runtime):
    job = new_job(workspace)
    lease = runtime.claim(job.pk)
    assert lease is not None and lease.attempt == 1
    assert runtime.claim(job.pk) is None
    job.refresh_from_db()
    assert job.status == "processing" and job.lease_token == lease.token and job.started_at


def test_a_run_whose_job_was_taken_over_loses_its_lease_and_can_no_longer_write(db, workspace, runtime):
    job = new_job(workspace)
    dead = runtime.claim(job.pk)
    go_stale(job)  # its worker died: no heartbeat for two minutes
    alive = runtime.claim(job.pk)
    assert alive is not None and alive.token != dead.token and alive.attempt == 2

    with pytest.raises(LeaseLost):
        dead.beat(processed_count=999)
    assert dead.complete(row_count=999) is False
    dead.release(OperationalError("late"))  # a stale run giving the job back changes nothing
    with pytest.raises(LeaseLost), transaction.atomic():
        dead.lock()
    job.refresh_from_db()
    assert (job.status, job.processed_count, job.lease_token, job.error) == ("processing", 0, alive.token, "")

    alive.beat(processed_count=10)
    assert alive.complete(row_count=10) is True
    job.refresh_from_db()
    assert (job.status, job.row_count, job.lease_token) == ("completed", 10, "")


def test_a_checkpoint_commits_with_its_batch_or_not_at_all(db, workspace, runtime):
    job = new_job(workspace)
    lease = runtime.claim(job.pk)
    with transaction.atomic():
        lease.lock("processed_count")
        lease.checkpoint(processed_count=5, checkpoint={"cursor": 5})
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        lease.lock()
        lease.checkpoint(processed_count=10, checkpoint={"cursor": 10})
        raise ZeroDivisionError  # the batch failed: its checkpoint goes with it
    job.refresh_from_db()
    assert (job.processed_count, job.checkpoint) == (5, {"cursor": 5})


# --- failure kinds ------------------------------------------------------------------------
def test_failure_kinds_keep_the_stored_values_the_api_shows():
    assert [k.value for k in FailureKind] == ["user", "transient", "system"]
    assert ExportJob._meta.get_field("error_kind").choices == ImportJob._meta.get_field("error_kind").choices


@pytest.mark.parametrize(
    ("error", "status", "kind", "message"),
    [
        (ValueError("column 'x' is unknown"), "failed", "user", "column 'x' is unknown"),
        (KeyError("bug"), "failed", "system", "Broke: KeyError"),
        (OperationalError("server closed the connection"), "queued", "transient", "OperationalError: server closed"),
    ],
)
def test_a_failed_run_is_recorded_by_the_kind_of_its_error(db, workspace, runtime, hooks, error, status, kind, message):
    job = new_job(workspace)

    def body(lease):
        lease.beat(processed_count=3)
        raise error

    if kind == "transient":
        with pytest.raises(OperationalError):
            runtime.run(job.pk, body)
    else:
        assert runtime.run(job.pk, body).status == "failed"
    job.refresh_from_db()
    assert (job.status, job.error_kind) == (status, kind) and job.error.startswith(message)
    assert job.lease_token == ""
    assert hooks.failed == hooks.cleaned == ([str(job.pk)] if status == "failed" else [])


def test_storage_errors_are_transient_only_when_trying_again_can_help():
    def s3_error(code: str) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": code}}, "PutObject")

    for exc in (
        s3_error("SlowDown"),
        s3_error("503"),
        s3_error("InternalError"),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:9"),
        ConnectionClosedError(endpoint_url="http://127.0.0.1:9"),
    ):
        assert storage.is_transient(exc) and is_transient(exc), exc
    for exc in (s3_error("NoSuchKey"), s3_error("AccessDenied"), NoCredentialsError(), FileNotFoundError("x")):
        assert not storage.is_transient(exc) and not is_transient(exc), exc
    assert is_transient(OperationalError("gone")) and is_transient(InterfaceError("closed"))
    assert is_transient(ConnectionResetError()) and is_transient(TimeoutError())
    assert not is_transient(IntegrityError("duplicate")) and not is_transient(ValueError("bad"))


# --- the one retry-exhaustion rule ------------------------------------------------------------
def test_a_job_gets_at_most_max_attempts_runs_then_fails_with_its_last_error(db, workspace, runtime, hooks):
    job = new_job(workspace)
    calls = []

    def body(lease):
        calls.append(lease.attempt)
        raise OperationalError("database unavailable")

    for _ in range(3):
        with pytest.raises(OperationalError):
            runtime.run(job.pk, body)
    job.refresh_from_db()
    assert (job.status, job.attempts, job.error_kind) == ("queued", 3, "transient")

    assert runtime.run(job.pk, body).status == "failed"  # the fourth claim fails it instead of running it
    assert calls == [1, 2, 3]
    job.refresh_from_db()
    assert job.status == "failed" and job.error_kind == "transient"
    assert job.error == "Gave up after 3 attempts. Last error: OperationalError: database unavailable"
    assert hooks.failed == [str(job.pk)]


@pytest.mark.django_db(transaction=True)  # the task body closes and reopens connections
def test_the_task_backs_off_and_leaves_the_job_to_the_sweeper_once_retries_run_out(workspace, runtime):
    job = new_job(workspace, request_id="req-7")
    seen = []

    def run(job_id):
        seen.append(current_request_id())
        raise ConnectionError("broker of bad news")

    class FakeTask:
        def __init__(self, retries):
            self.request = SimpleNamespace(retries=retries)
            self.countdowns = []

        def retry(self, *, exc, countdown):
            self.countdowns.append(countdown)
            return Retry(exc=exc, when=countdown)

    for retries in range(3):
        task = FakeTask(retries)
        with pytest.raises(Retry):
            job_task_run(task, runtime=runtime, job_id=str(job.pk), run=run)
        assert task.countdowns == [retry_countdown(retries)] == [5 * 2**retries]
    task = FakeTask(3)
    assert job_task_run(task, runtime=runtime, job_id=str(job.pk), run=run) == "queued"
    assert task.countdowns == []
    assert seen == ["req-7"] * 4  # the job's request id, read from its row
    assert retry_countdown(20) == 300

    def bug(job_id):
        raise KeyError("not transient")

    with pytest.raises(KeyError):  # not retried: the run has recorded it on the job
        job_task_run(FakeTask(0), runtime=runtime, job_id=str(job.pk), run=bug)


def test_an_import_that_keeps_hitting_transient_errors_fails_after_its_attempts(owner, settings, monkeypatch):
    from imports import engine
    from imports.serializers import ImportInput, import_params_clean
    from imports.services import import_request

    settings.LEADLEX_IMPORT_MAX_ATTEMPTS = 2  # read per use, not at import
    job = import_request(
        workspace=owner.workspace,
        data=ImportInput(rows=[{"email": f"p{i}@acme.com"} for i in range(3)]),
        params=import_params_clean(),
        force_queue=True,
        enqueue=False,
    )

    def unreachable(key):
        raise EndpointConnectionError(endpoint_url="http://s3.invalid")

    monkeypatch.setattr(engine.storage, "open_reader", unreachable)
    for _ in range(2):
        with pytest.raises(EndpointConnectionError):
            engine.import_job_run(job_id=job.id)
        job.refresh_from_db()
        assert (job.status, job.error_kind) == ("queued", "transient")
    failed = engine.import_job_run(job_id=job.id)
    assert (failed.status, failed.error_kind, failed.attempts) == ("failed", "transient", 3)
    assert failed.error == "The import was interrupted 2 times and was given up."


# --- the sweeper ----------------------------------------------------------------------------
def test_the_sweeper_requeues_a_job_whose_worker_died_and_dispatches_it_after_commit(
    db, workspace, runtime, hooks, django_capture_on_commit_callbacks
):
    died = new_job(workspace)
    dead = runtime.claim(died.pk)
    go_stale(died)
    lost = new_job(workspace, created_at=timezone.now() - timedelta(minutes=5))  # queued; its task never came
    busy = new_job(workspace)
    runtime.claim(busy.pk)  # fresh heartbeat: left alone
    out_of_attempts = new_job(workspace, status="processing", attempts=3, heartbeat_at=timezone.now())
    go_stale(out_of_attempts)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        swept = runtime.sweep()
        assert hooks.dispatched == []  # not before the requeue commits
    assert sorted(map(str, swept.requeued)) == sorted([str(died.pk), str(lost.pk)])
    assert swept.failed == [out_of_attempts.pk] and hooks.cleaned == [str(out_of_attempts.pk)]
    for callback in callbacks:
        callback()
    assert sorted(hooks.dispatched) == sorted([str(died.pk), str(lost.pk)])

    died.refresh_from_db()
    assert (died.status, died.lease_token) == ("queued", "")
    with pytest.raises(LeaseLost):
        dead.beat(processed_count=1)  # the dead worker, were it to wake up
    assert runtime.claim(died.pk).attempt == 2  # the re-dispatched run resumes it
    assert ExportJob.objects.get(pk=busy.pk).status == "processing"
    out_of_attempts.refresh_from_db()
    assert out_of_attempts.status == "failed" and out_of_attempts.error.startswith("Gave up after 3 attempts")


def test_a_job_that_cannot_resume_is_failed_by_the_sweeper_not_requeued(db, workspace, hooks):
    runtime = JobRuntime(
        model=ExportJob,
        label="test-job",
        dispatch=hooks.dispatched.append,
        stale_seconds=lambda: 60,
        max_attempts=lambda: 3,
        resumable=lambda job: bool(job.storage_key),
        abandoned_message="Its input is gone.",
    )
    job = new_job(workspace)
    runtime.claim(job.pk)
    go_stale(job)
    swept = runtime.sweep()
    job.refresh_from_db()
    assert (swept.requeued, swept.failed) == ([], [job.pk])
    assert (job.status, job.error, job.error_kind) == ("failed", "Its input is gone.", "system")


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not is_postgres(), reason="SQLite has no row locks to skip")
def test_two_sweepers_never_handle_one_job(workspace, runtime):
    job = new_job(workspace)
    runtime.claim(job.pk)
    go_stale(job)
    locked, release = threading.Event(), threading.Event()

    def other_sweeper() -> None:
        try:
            with transaction.atomic():
                list(ExportJob.objects.select_for_update().filter(pk=job.pk))
                locked.set()
                release.wait(30)
        finally:
            connection.close()

    thread = threading.Thread(target=other_sweeper)
    thread.start()
    try:
        assert locked.wait(30)
        assert runtime.sweep().requeued == []  # skipped, not waited for
    finally:
        release.set()
        thread.join()
    assert runtime.sweep().requeued == [job.pk]


# --- prefetchers -----------------------------------------------------------------------------
class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.addFilter(RequestIdLogFilter())
        self.request_ids: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.request_ids.append(record.request_id)  # type: ignore[attr-defined]  # set by the request-id log filter


def test_prefetch_threads_log_with_the_request_id_of_the_job_that_started_them():
    log = logging.getLogger("tests.prefetch")
    log.setLevel(logging.INFO)
    handler = Captured()
    log.addHandler(handler)

    def produce():
        for i in range(3):
            log.info("prepared batch %d", i)
            yield i

    def render(i):
        log.info("rendered batch %d", i)
        return current_request_id()

    try:
        with request_id_scope("job-req-42"):
            assert list(thread_prefetch(produce())) == [0, 1, 2]
            with RenderThreads(2, ahead=3) as pool:
                for i in range(3):
                    pool.submit(render, i)
                assert [pool.next_result() for _ in range(3)] == ["job-req-42"] * 3
            assert list(fork_prefetch(lambda: iter([current_request_id()]))) == ["job-req-42"]
    finally:
        log.removeHandler(handler)
    assert handler.request_ids == ["job-req-42"] * 6
    assert current_request_id() == ""


def test_a_prefetch_producer_error_is_raised_in_the_consumer_and_keeps_its_kind():
    def broken():
        yield 1
        raise OperationalError("connection lost")

    with pytest.raises(OperationalError):
        list(thread_prefetch(broken()))
    with pytest.raises(OperationalError):
        list(fork_prefetch(broken))


# --- wiring ------------------------------------------------------------------------------------
def test_every_periodic_task_is_listed_in_settings_and_nowhere_else(settings):
    from celery import current_app

    current_app.loader.import_default_modules()
    assert set(current_app.tasks)  # finalized: the apps' task modules are loaded
    schedule = settings.CELERY_BEAT_SCHEDULE
    assert {e["task"] for e in schedule.values()} == {
        "leadlex.webhook_sweep",
        "exports.sweep_stale",
        "exports.sweep_expired",
        "imports.import_jobs_sweep",
    }
    assert dict(current_app.conf.beat_schedule) == dict(schedule)


def test_no_app_reaches_for_the_celery_app_module_or_schedules_its_own_periodic_tasks():
    """Tasks find the app through shared_task; the schedule is read where it is
    declared, in settings, and no app adds to it at start-up."""
    for app in ("leadlex", "contacts", "exports", "imports"):
        for path in (ROOT / app).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom):
                    assert not (node.module or "").startswith("config"), path
                elif isinstance(node, ast.Import):
                    assert not any(a.name.startswith("config") for a in node.names), path
                elif isinstance(node, ast.Attribute):
                    attr = node.attr
                    assert attr not in ("CELERY_BEAT_SCHEDULE", "add_periodic_task", "on_after_finalize"), path


def test_import_settings_are_read_per_use_and_progress_reports_rows_and_total(owner, settings):
    from imports.engine import import_job_run
    from imports.serializers import ImportInput, import_params_clean
    from imports.services import import_request

    settings.LEADLEX_IMPORT_BATCH_SIZE = 2
    job = import_request(
        workspace=owner.workspace,
        data=ImportInput(rows=[{"email": f"p{i}@acme.com"} for i in range(5)]),
        params=import_params_clean(),
        force_queue=True,
        enqueue=False,
    )
    seen: list[tuple[int, int | None]] = []
    done = import_job_run(job_id=job.id, progress=lambda rows, total: seen.append((rows, total)))
    assert done.status == "completed" and done.created_count == 5
    assert seen == [(2, 5), (4, 5), (5, 5)]
