"""The one job runtime: how every background job (an export, an import, …) is
claimed, leased, heartbeated, checkpointed, retried, swept and failed.

A job is a model row with these fields (``ExportJob`` and ``ImportJob`` have them)::

    status        "queued" | "processing" | "completed" | "failed" (a kind may add more)
    lease_token   the token of the run that holds the job; "" when nobody does
    attempts      how many runs have claimed it
    heartbeat_at  renewed by every write the holding run makes
    started_at, completed_at, created_at
    error, error_kind   the message the user sees and its FailureKind

States and guarantees::

    queued ──claim──▶ processing ──complete──▶ completed
      ▲                  │  │
      │ release          │  └──fail (user / system error, or out of attempts)──▶ failed
      │ (transient)      │
      └──────────────────┘  sweep: a run whose heartbeat went stale (its worker died)

* **Claim**: one conditional UPDATE moves a queued job (or a processing one whose
  heartbeat is stale) to processing under a fresh lease token; if no row changed,
  another run has it and this one does nothing. Running a task twice is harmless.
* **Lease and heartbeat**: every write of the run (progress, checkpoint, the final
  update) is conditional on its token and renews ``heartbeat_at``. A run whose job
  was cancelled or taken over gets ``LeaseLost`` at its next write and stops, so it
  can never write over the new owner's progress.
* **Checkpoint**: a kind records where to resume in the same transaction as the
  work it covers (``Lease.lock`` + ``Lease.checkpoint``), or in the same short UPDATE
  that renews the heartbeat; a run killed at any point resumes from the last one.
* **Retry**: a transient error (``is_transient``) gives the job back (queued, with
  its checkpoint) and the task retries it with backoff; every retry is a new claim.
* **One retry-exhaustion rule**: a job gets at most ``max_attempts`` runs. The claim
  that would start one more fails it instead, and so does the sweeper for a job whose
  last allowed run died; both say why, with the last error's kind.
* **Sweep**: a periodic task locks stale rows with ``select_for_update(skip_locked=True)``,
  puts them back to queued and dispatches their ids; a job that cannot resume (or is
  out of attempts) is failed.
* **Failure kinds**: ``FailureKind`` — user (the job's own input makes it
  impossible), transient (given up after retries), system (a bug or lasting fault).

A job kind plugs in with a ``JobRuntime`` (its model, how to dispatch its task, its
settings, its messages and hooks), a body ``(lease) -> status`` run by
``JobRuntime.run``, a task that calls ``job_task_run`` and a sweep task in
``CELERY_BEAT_SCHEDULE``; it writes no claim, lease, retry or sweep code of its own.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import InterfaceError, OperationalError, close_old_connections, models, reset_queries, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from leadlex import storage
from leadlex.middleware import request_id_scope

logger = logging.getLogger("leadlex.jobs")

QUEUED = "queued"
PROCESSING = "processing"
COMPLETED = "completed"
FAILED = "failed"
SKIPPED = "skipped"  # what a run reports when it did not get the job

# Progress callbacks of every job kind: rows done so far, rows expected (None: unknown).
Progress = Callable[[int, int | None], None]


class FailureKind(models.TextChoices):
    USER = "user", "user error"
    TRANSIENT = "transient", "transient error"
    SYSTEM = "system", "system error"


class LeaseLost(Exception):
    """The job was cancelled or taken over by another run while this one held it."""


# A database that went away or did not answer in time; the storage module answers
# for storage errors.
_TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    ConnectionError,
    TimeoutError,
)


def is_transient(exc: BaseException) -> bool:
    """Worth running the job again for: the database or the storage service was
    briefly unreachable. Everything else fails the job."""
    return isinstance(exc, _TRANSIENT_DB_ERRORS) or storage.is_transient(exc)


def retry_countdown(retries: int) -> int:
    """Seconds before the next retry of a task that hit a transient error: exponential
    backoff with a cap, so a long outage costs a few messages, not a storm."""
    return min(300, 5 * 2**retries)


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _exhausted(job: Any, runs: int) -> str:
    return f"Gave up after {runs} attempts. Last error: {job.error}".strip()


@dataclass(frozen=True)
class RunResult:
    status: str  # the job's status after the run, or SKIPPED
    claimed: bool = False  # this run held the job (it may have lost it since)
    lease_lost: bool = False


@dataclass(frozen=True)
class Swept:
    requeued: list[Any] = field(default_factory=list)  # ids put back to queued and dispatched
    failed: list[Any] = field(default_factory=list)  # ids failed: out of attempts, or not resumable


@dataclass(frozen=True)
class JobRuntime:
    """The lifecycle of one job model. Settings are callables, read on each use."""

    model: type[models.Model]
    label: str  # "export", "import": the first word of the log lines
    dispatch: Callable[[str], None]  # send the run task for a job id (called after commit)
    stale_seconds: Callable[[], int]  # a processing job without a heartbeat for this long is taken over
    max_attempts: Callable[[], int]  # runs (claims) of one job before it is failed for good
    user_errors: tuple[type[BaseException], ...] = ()  # failures that are the job's input's fault
    user_message: Callable[[BaseException], str] = str
    system_message: Callable[[BaseException], str] = _error_text
    exhausted_message: Callable[[Any, int], str] = _exhausted  # (job, runs so far)
    # A stale job the sweeper cannot run again (e.g. its input is gone) is failed with this.
    resumable: Callable[[Any], bool] = lambda job: True
    abandoned_message: str = "The job was interrupted and cannot be resumed."
    on_failed: Callable[[Any], None] | None = None  # inside the failing transaction (e.g. a webhook row)
    after_failed: Callable[[Any], None] | None = None  # after it committed (e.g. storage clean-up)
    display_id: Callable[[Any], str] = str  # how log lines name a job

    # --- plumbing ------------------------------------------------------------------
    def rows(self) -> models.QuerySet[Any]:
        """The kind's job rows."""
        return self.model._default_manager.all()

    def enqueue(self, job_id: Any) -> None:
        """Dispatch the job's task once the current transaction commits (a worker must
        never look for a row that is not there yet)."""
        transaction.on_commit(lambda: self.dispatch(str(job_id)))

    def request_id(self, job_id: Any) -> str | None:
        # Read from the row, not the message: a retry, a sweep or an admin retry
        # re-dispatches the same job, and its lines still name the request that made it.
        return self.rows().filter(pk=job_id).values_list("request_id", flat=True).first()

    # --- claim and run ---------------------------------------------------------------
    def claim(self, job_id: Any) -> Lease | None:
        """queued (or stale processing) → processing under a new lease; None when
        another run holds the job, it has ended, or it just ran out of attempts."""
        token = uuid.uuid4().hex
        now = timezone.now()
        stale_before = now - timedelta(seconds=self.stale_seconds())
        claimed = (
            self.rows()
            .filter(pk=job_id)
            .filter(
                Q(status=QUEUED)
                | Q(status=PROCESSING, heartbeat_at__lt=stale_before)
                | Q(status=PROCESSING, heartbeat_at__isnull=True)
            )
            .update(
                status=PROCESSING,
                lease_token=token,
                heartbeat_at=now,
                attempts=F("attempts") + 1,
                started_at=Coalesce(F("started_at"), now),
            )
        )  # the last error stays until the job completes: it explains a retry
        if not claimed:
            return None
        job = self.rows().get(pk=job_id)
        if job.attempts > self.max_attempts():
            self.fail(
                job_id=job_id,
                error=self.exhausted_message(job, job.attempts - 1),
                kind=job.error_kind or FailureKind.SYSTEM,
                token=token,
            )
            return None
        return Lease(self, job_id, token, job.attempts)

    def run(self, job_id: Any, body: Callable[[Lease], str]) -> RunResult:
        """Claim the job and run ``body`` under the lease. A transient error gives the
        job back and propagates (the task retries); any other error fails the job."""
        lease = self.claim(job_id)
        if lease is None:
            status = self.rows().filter(pk=job_id).values_list("status", flat=True).first()
            return RunResult(FAILED if status == FAILED else SKIPPED)
        try:
            status = body(lease)
        except LeaseLost:
            logger.info("%s %s: lease lost (cancelled or taken over); stopping", self.label, self.display_id(job_id))
            current = self.rows().filter(pk=job_id).values_list("status", flat=True).first()
            return RunResult(current or SKIPPED, claimed=True, lease_lost=True)
        except Exception as exc:
            if lease.record_failure(exc) == FailureKind.TRANSIENT:
                raise
            return RunResult(FAILED, claimed=True)
        return RunResult(status, claimed=True)

    # --- ending ------------------------------------------------------------------------
    def fail(self, *, job_id: Any, error: str, kind: str, token: str | None = None) -> bool:
        """Mark a job failed, from any unfinished state or only under ``token``."""
        job = self._fail_row(job_id=job_id, error=error, kind=kind, token=token)
        if job is not None and self.after_failed is not None:
            self.after_failed(job)  # after the commit: it may be slow I/O
        return job is not None

    def _fail_row(self, *, job_id: Any, error: str, kind: str, token: str | None) -> Any:
        qs = self.rows().filter(pk=job_id, status__in=[QUEUED, PROCESSING])
        if token is not None:
            qs = qs.filter(lease_token=token)
        # The status and its hook's rows (a webhook delivery) commit together: a
        # worker that dies in between must not leave a failed job whose event was
        # never recorded.
        with transaction.atomic():
            changed = qs.update(
                status=FAILED, error=error[:2000], error_kind=kind, completed_at=timezone.now(), lease_token=""
            )
            if not changed:
                return None
            job = self.rows().get(pk=job_id)
            if self.on_failed is not None:
                self.on_failed(job)
        return job

    # --- the sweeper ------------------------------------------------------------------
    def sweep(self, *, stale_after: timedelta | None = None, limit: int = 100) -> Swept:
        """Requeue jobs whose run stopped beating (its worker was killed) and re-dispatch
        queued jobs whose task was lost; fail those out of attempts or not resumable.
        Locks and skips, so two sweepers never handle one job."""
        now = timezone.now()
        cutoff = now - (stale_after if stale_after is not None else timedelta(seconds=self.stale_seconds()))
        swept = Swept()
        failed_jobs: list[Any] = []
        with transaction.atomic():
            stale = list(
                self.rows()
                .select_for_update(skip_locked=True)
                .filter(
                    Q(status=PROCESSING, heartbeat_at__lt=cutoff)
                    | Q(status=QUEUED, heartbeat_at__lt=cutoff)
                    | Q(status=QUEUED, heartbeat_at__isnull=True, created_at__lt=cutoff)
                )
                .order_by("created_at")[:limit]
            )
            max_attempts = self.max_attempts()
            for job in stale:
                if job.status == PROCESSING and not self.resumable(job):
                    failed = self._fail_row(
                        job_id=job.pk, error=self.abandoned_message, kind=FailureKind.SYSTEM, token=None
                    )
                elif job.status == PROCESSING and job.attempts >= max_attempts:
                    # Its last allowed run died: one more claim would only fail it.
                    failed = self._fail_row(
                        job_id=job.pk,
                        error=self.exhausted_message(job, job.attempts),
                        kind=job.error_kind or FailureKind.SYSTEM,
                        token=None,
                    )
                else:
                    swept.requeued.append(job.pk)
                    continue
                if failed is not None:
                    failed_jobs.append(failed)
                    swept.failed.append(job.pk)
            if swept.requeued:
                # Back to queued (keeping the checkpoint) so that exactly one claim wins.
                self.rows().filter(pk__in=swept.requeued).update(status=QUEUED, lease_token="", heartbeat_at=now)
                for job_id in swept.requeued:
                    self.enqueue(job_id)
        if self.after_failed is not None:
            for job in failed_jobs:
                self.after_failed(job)
        return swept


@dataclass(frozen=True)
class Lease:
    """The right of one run to write a job. Every write is conditional on it."""

    runtime: JobRuntime
    job_id: Any
    token: str
    attempt: int

    def _held(self) -> models.QuerySet[Any]:
        return self.runtime.rows().filter(pk=self.job_id, status=PROCESSING, lease_token=self.token)

    def beat(self, **fields: Any) -> None:
        """Write ``fields`` (progress, a checkpoint) and renew the heartbeat; raises
        ``LeaseLost`` when the job is no longer this run's."""
        fields["heartbeat_at"] = timezone.now()
        if not self._held().update(**fields):
            raise LeaseLost()
        # With DEBUG on (the embedded profile) Django keeps every query's SQL until a
        # request starts; a job is no request, and its batches' SQL would pile up for the
        # whole run (hundreds of MB for a million rows). Each write of the run lets it go.
        reset_queries()

    def lock(self, *fields: str) -> dict[str, Any]:
        """Inside the batch's transaction, before its work: lock the job row while this
        run holds it (raises ``LeaseLost`` otherwise) and return ``fields`` of it. The
        batch's checkpoint then commits with the batch, or neither does."""
        if not transaction.get_connection().in_atomic_block:
            raise RuntimeError("Lease.lock() belongs inside the batch's transaction")
        row = self._held().select_for_update().values("pk", *fields).first()
        if row is None:
            raise LeaseLost()
        return row

    def checkpoint(self, **fields: Any) -> None:
        """Record where a resumed run picks up, in the same transaction as the work
        it covers (after ``lock``)."""
        if not transaction.get_connection().in_atomic_block:
            raise RuntimeError("Lease.checkpoint() belongs inside the batch's transaction")
        self.beat(**fields)

    def complete(self, **fields: Any) -> bool:
        """processing → completed under this lease (the caller's transaction also
        holds the completion's side effects); False when the lease was lost."""
        now = timezone.now()
        return bool(
            self._held().update(
                status=COMPLETED,
                completed_at=now,
                heartbeat_at=now,
                lease_token="",
                error="",
                error_kind="",
                **fields,
            )
        )

    def release(self, exc: BaseException) -> None:
        """Give the job back after a transient error, with its checkpoint; the task's
        retry (or the sweeper) claims it again."""
        self._held().update(
            status=QUEUED, lease_token="", error=_error_text(exc)[:2000], error_kind=FailureKind.TRANSIENT
        )

    def fail(self, error: str, kind: str) -> bool:
        return self.runtime.fail(job_id=self.job_id, error=error, kind=kind, token=self.token)

    def record_failure(self, exc: BaseException, *, retryable: bool = True) -> FailureKind:
        """Record ``exc`` on the job by its kind: transient → back to queued (when the
        job can be retried), the job's input's fault → failed as a user error,
        anything else → failed as a system error (and logged with its traceback)."""
        runtime = self.runtime
        if retryable and is_transient(exc):
            self.release(exc)
            return FailureKind.TRANSIENT
        if isinstance(exc, runtime.user_errors):
            self.fail(runtime.user_message(exc), FailureKind.USER)
            return FailureKind.USER
        logger.error("%s %s failed", runtime.label, runtime.display_id(self.job_id), exc_info=exc)
        self.fail(runtime.system_message(exc), FailureKind.SYSTEM)
        return FailureKind.SYSTEM


def job_task_run(task: Any, *, runtime: JobRuntime, job_id: str, run: Callable[[str], str]) -> str:
    """The body of every job's Celery task: fresh connections, the job's request id on
    every log line, ``run(job_id)`` (a service that claims and runs the job), and the
    one retry rule for transient errors: back off and retry; each retry is a new claim,
    so ``max_attempts`` bounds them. Errors that keep coming before the job could even
    be claimed (the database is down) stop after as many retries and leave the job
    queued for the sweeper. The task needs ``bind=True`` and ``max_retries=None``."""
    close_old_connections()  # a long-lived worker may hold a connection the server dropped
    name = f"{runtime.label} {runtime.display_id(job_id)}"
    try:
        with request_id_scope(runtime.request_id(job_id)):
            logger.info("%s: running", name)
            try:
                status = run(job_id)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                retries = task.request.retries
                if retries >= runtime.max_attempts():
                    logger.warning("%s: %s after %d retries; left to the sweeper", name, type(exc).__name__, retries)
                    return QUEUED
                countdown = retry_countdown(retries)
                logger.warning("%s: %s; retrying in %ds", name, type(exc).__name__, countdown)
                raise task.retry(exc=exc, countdown=countdown) from exc
            logger.info("%s: %s", name, status)
            return status
    finally:
        close_old_connections()
