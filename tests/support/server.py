"""A real multi-process web server (gunicorn) on the test database, for tests whose
promise is about several processes (rate limits) or the server's own log lines."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from django.conf import settings

from tests.support.worker import ROOT, stop_process_group, worker_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebServer:
    def __init__(self, workers: int = 3, extra_env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.log_path = Path(settings.DATA_DIR) / f"gunicorn-{self.port}-{os.getpid()}.log"
        env = worker_env()
        env.update(extra_env or {})
        # The child inherits its own copy of the log's descriptor; the parent's closes at once.
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(
                # The product's own server configuration, as ./bin/leadlex and the Dockerfile use it.
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "-c",
                    "python:config.gunicorn",
                    "config.wsgi:application",
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--workers",
                    str(workers),
                    "--log-level",
                    "info",
                ],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.url = f"http://127.0.0.1:{self.port}"
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}:\n{self.log()}")
            try:
                requests.get(self.url + "/v1/nope", timeout=10)
                # All workers booted, so that requests are spread over processes.
                if self.log().count("Booting worker") >= 1:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_process_group(self.proc)
