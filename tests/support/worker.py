"""A real Celery worker process for end-to-end tests, pointed at the test database."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection

if TYPE_CHECKING:
    from exports.models import ExportJob

ROOT = Path(__file__).resolve().parents[2]


def worker_env() -> dict[str, str]:
    env = os.environ.copy()
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        env["LEADLEX_SQLITE_PATH"] = str(db["NAME"])
    else:
        user = db.get("USER") or ""
        password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
        auth = f"{user}{password}@" if user else ""
        env["DATABASE_URL"] = f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"
    env["LEADLEX_DATA_DIR"] = str(settings.DATA_DIR)
    env.setdefault("DJANGO_SECRET_KEY", settings.SECRET_KEY)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class WorkerProcess:
    def __init__(
        self,
        name: str = "w1",
        concurrency: int = 1,
        extra_env: dict[str, str] | None = None,
        queues: str | None = None,
        hostname: str | None = None,
    ) -> None:
        """``queues``: "-Q" for the worker (default: the "celery" queue alone), so a test
        can own the worker it kills whatever other workers run."""
        self.log_path = Path(settings.DATA_DIR) / f"worker-{name}-{os.getpid()}.log"
        self.log_path.unlink(missing_ok=True)
        env = worker_env()
        env.update(extra_env or {})
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--loglevel=INFO",
                f"--concurrency={concurrency}",
                "--pool=prefork",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                f"--hostname={hostname or name}@%h",
                *(["-Q", queues] if queues else []),
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_ready()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in self.log():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"celery worker exited with {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.2)
        raise RuntimeError(f"celery worker not ready after {timeout}s:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL the whole process group: the main process and its pool children die
        without acknowledging anything, as in a machine crash."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self._log.close()

    def stop(self) -> None:
        stop_process_group(self.proc)
        self._log.close()


class QueueWorker(WorkerProcess):
    """A real worker that consumes a private queue, so a test decides which worker runs
    its job (and owns the worker it kills) whatever other workers run.
    ``also_default_queue``: consume the default queue too, where a job that a sweeper in
    the worker re-dispatches goes (the worker does not know the test's queue setting)."""

    def __init__(
        self, name: str, queue: str, extra_env: dict[str, str] | None = None, *, also_default_queue: bool = False
    ) -> None:
        queues = f"{queue},celery" if also_default_queue else queue
        super().__init__(name, extra_env=extra_env, queues=queues, hostname=f"{name}-{uuid.uuid4().hex[:6]}")


@contextlib.contextmanager
def tasks_routed_to(task_name: str, queue: str) -> Iterator[None]:
    """While active, ``task_name`` tasks sent from this process go to ``queue``."""
    from config.celery import app

    def use(routes: object) -> None:
        app.conf.task_routes = routes
        app.amqp.flush_routes()
        app.amqp.__dict__.pop("router", None)  # the cached Router keeps the old table

    old = app.conf.task_routes
    use({task_name: {"queue": queue}})
    try:
        yield
    finally:
        use(old)


def stop_process_group(proc: subprocess.Popen) -> None:
    """SIGTERM a process started with ``start_new_session`` and its children; SIGKILL
    what is still there after 20 seconds."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def purge_broker() -> None:
    from config.celery import app

    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("celery")


def wait_for(predicate, timeout: float = 60, interval: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def wait_job(
    job_id: Any, statuses: tuple[str, ...] = ("completed", "failed", "cancelled"), timeout: float = 90
) -> ExportJob:
    from exports.models import ExportJob

    return wait_for(
        lambda: ExportJob.objects.filter(pk=job_id, status__in=statuses).first(),
        timeout=timeout,
        message=f"export {job_id} to reach {statuses}",
    )
