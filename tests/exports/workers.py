"""A real worker bound to its own queue, so that a test decides which worker runs
its job even while the session's shared worker is up."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Iterator

from django.conf import settings

from tests.support.worker import ROOT, WorkerProcess, worker_env


class QueueWorker(WorkerProcess):
    def __init__(self, name: str, queue: str, extra_env: dict[str, str] | None = None) -> None:  # noqa: D107
        self.log_path = Path(settings.DATA_DIR) / f"worker-{name}-{os.getpid()}.log"
        self.log_path.unlink(missing_ok=True)
        env = worker_env()
        env.update(extra_env or {})
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel=INFO", "--concurrency=1",
             "--pool=prefork", "--without-gossip", "--without-mingle", "--without-heartbeat", "-Q", queue,
             f"--hostname={name}-{uuid.uuid4().hex[:6]}@%h"],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.wait_ready()


@contextlib.contextmanager
def export_runs_routed_to(queue: str) -> Iterator[None]:
    """While active, export run tasks sent from this process go to ``queue``."""
    from config.celery import app

    def use(routes: object) -> None:
        app.conf.task_routes = routes
        app.amqp.flush_routes()
        app.amqp.__dict__.pop("router", None)  # the cached Router keeps the old table

    old = app.conf.task_routes
    use({"exports.export_job_run": {"queue": queue}})
    try:
        yield
    finally:
        use(old)
