"""The production install, started as docker-compose.yml starts it, must work.

Called by .ci/run after the two pytest runs, with the production profile's variables
(DATABASE_URL, REDIS_URL, AWS_*) pointing at the throwaway servers. It:

1. builds a virtualenv with ``pip install .`` of the checkout -- not editable, no
   test extra -- as the Dockerfile does (kept between runs in ``--venv`` while
   pyproject.toml and the Python version stay the same; the project itself is
   reinstalled from the checkout every time);
2. runs the compose file's own ``migrate``, ``web`` (collectstatic + gunicorn, bound
   to a free loopback port instead of 0.0.0.0:8000) and ``worker`` commands from it;
3. checks ``/healthz`` and ``/readyz``, then one job end to end: a workspace and a
   key from the management commands, an import, an async export run by the worker,
   the download of its file from S3;
4. stops what it started, by PID, and writes one JUnit test case so .ci/run counts
   the check in its closing line.

Exit status 0 only if every step passed. Standard library and PyYAML only (it runs
under the test venv's Python; the product runs under the plain venv's).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import yaml

ROOT = Path(__file__).resolve().parents[1]
STEP_TIMEOUT = 60.0  # seconds for any one wait (server up, worker ready, job done)


class SmokeFailed(Exception):
    pass


def say(message: str) -> None:
    print(f"[smoke] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(log: Path, lines: int = 20) -> str:
    """The end of a log, for the failure message: the scratch directory is deleted."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- 1. The plain install -------------------------------------------------------------
def install_stamp(python: str) -> str:
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True, check=True
    ).stdout
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + version.encode()).hexdigest()


def pip(venv: Path, *args: str, log: Path) -> None:
    with open(log, "ab") as out:
        rc = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd="/",
        ).returncode
    if rc:
        raise SmokeFailed(f"pip install {' '.join(args)} failed (exit {rc}):\n{tail(log)}")


def build_plain_venv(python: str, venv: Path, log: Path) -> None:
    stamp_file = venv / ".leadlex-plain-install"
    stamp = install_stamp(python)
    if stamp_file.exists() and stamp_file.read_text() == stamp:
        say(f"plain venv {venv}: pyproject.toml unchanged, reinstalling only the project (pip install --no-deps .)")
        pip(venv, "--no-deps", "--force-reinstall", str(ROOT), log=log)
        return
    say(f"plain venv {venv}: building from scratch (pip install . -- no extras, as the Dockerfile does)")
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip(venv, str(ROOT), log=log)
    stamp_file.write_text(stamp)


# --- 2. The compose file's commands ------------------------------------------------------
def compose_commands(port: int) -> dict[str, list[str]]:
    """The migrate, web and worker commands, and the web and worker healthchecks
    (as "web-healthcheck", "worker-healthcheck"), with the web port moved to ``port``."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    commands: dict[str, list[str]] = {}
    for name in ("migrate", "web", "worker"):
        command = services[name]["command"]
        commands[name] = shlex.split(command) if isinstance(command, str) else [str(part) for part in command]
    for name in ("web", "worker"):
        test = (services[name].get("healthcheck") or {}).get("test")
        if not test or test[0] not in ("CMD", "CMD-SHELL"):
            raise SmokeFailed(f"docker-compose.yml: {name} has no CMD or CMD-SHELL healthcheck")
        # CMD-SHELL runs under /bin/sh; "$$" is compose's escape for a literal "$".
        commands[f"{name}-healthcheck"] = (
            list(test[1:]) if test[0] == "CMD" else ["/bin/sh", "-c", test[1].replace("$$", "$")]
        )
    bind = "0.0.0.0:8000"
    if not any(bind in part for part in commands["web"]):
        raise SmokeFailed(f"docker-compose.yml: the web command does not bind {bind}: {commands['web']}")
    commands["web"] = [part.replace(bind, f"127.0.0.1:{port}") for part in commands["web"]]
    commands["web-healthcheck"] = [
        part.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for part in commands["web-healthcheck"]
    ]
    return commands


def product_env(venv: Path, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"  # `python`, `gunicorn`, `celery`: the plain venv's
    env["LEADLEX_DATA_DIR"] = str(data_dir)
    env["PYTHONUNBUFFERED"] = "1"
    env["HOSTNAME"] = socket.gethostname()  # as Docker sets it: the worker healthcheck names its node by it
    for name in ("DATABASE_URL", "REDIS_URL", "AWS_STORAGE_BUCKET_NAME", "DJANGO_SECRET_KEY"):
        if not env.get(name):
            raise SmokeFailed(f"{name} is not set: the check needs the production profile's variables")
    return env


def resolve(argv: list[str], env: dict[str, str]) -> list[str]:
    found = shutil.which(argv[0], path=env["PATH"])
    if not found:
        raise SmokeFailed(f"{argv[0]} not found in the plain venv")
    return [found, *argv[1:]]


def run_once(argv: list[str], env: dict[str, str], log: Path, timeout: float = 120) -> str:
    with open(log, "ab") as err:
        result = subprocess.run(
            resolve(argv, env), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err, timeout=timeout
        )
    if result.returncode:
        raise SmokeFailed(f"`{' '.join(argv)}` failed (exit {result.returncode}):\n{tail(log)}")
    return result.stdout.decode().strip()


class Service:
    """A long-running process in its own session, stopped by its PID (and its group)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log_path = log
        # The child inherits its own copy of the descriptor; the parent's closes at once.
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                resolve(argv, env), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        say(f"{name} started, pid {self.proc.pid}: {' '.join(argv)}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)  # gunicorn and celery: graceful shutdown
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):  # pool children that outlived their parent
            os.killpg(self.proc.pid, signal.SIGKILL)


# --- 3. HTTP ------------------------------------------------------------------------------
def http(
    method: str, url: str, *, key: str | None = None, body: Any = None, timeout: float = 10
) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def expect(status: int, wanted: int, what: str, raw: bytes) -> Any:
    if status != wanted:
        raise SmokeFailed(f"{what}: HTTP {status}, expected {wanted}: {raw[:500]!r}")
    return json.loads(raw) if raw else None


def check_alive(services: list[Service]) -> None:
    for service in services:
        if not service.alive():
            raise SmokeFailed(f"{service.name} exited with {service.proc.returncode}")


def wait_until_ready(base: str, services: list[Service]) -> dict[str, Any]:
    deadline = time.monotonic() + STEP_TIMEOUT
    last = "no answer"
    while time.monotonic() < deadline:
        check_alive(services)  # a worker that dies at start fails the check now, not in a minute
        try:
            status, _, raw = http("GET", base + "/readyz", timeout=5)
            if status == 200:
                return json.loads(raw)
            last = f"HTTP {status}: {raw[:300]!r}"
        except OSError as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.3)
    raise SmokeFailed(f"/readyz did not answer 200 within {STEP_TIMEOUT:.0f}s (last: {last})")


def wait_worker(worker: Service) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT
    while time.monotonic() < deadline:
        check_alive([worker])
        if " ready." in worker.log():
            return
        time.sleep(0.2)
    raise SmokeFailed(f"the Celery worker was not ready within {STEP_TIMEOUT:.0f}s")


def end_to_end(base: str, key: str, worker: Service) -> None:
    emails = [f"smoke-{i}@example.com" for i in range(3)]
    rows = [{"full_name": f"Smoke Test {i}", "email": email} for i, email in enumerate(emails)]
    status, _, raw = http("POST", base + "/v1/import/contacts", key=key, body={"rows": rows})
    data = expect(status, 200, "POST /v1/import/contacts", raw)["data"]
    if data.get("created_count") != len(rows):
        raise SmokeFailed(f"the import created {data.get('created_count')} contacts, expected {len(rows)}: {data}")
    say(f"import: {data['created_count']} contacts created")

    status, _, raw = http(
        "POST",
        base + "/v1/contacts/exports",
        key=key,
        body={"start_date": "2000-01-01 00:00:00", "end_date": "2099-12-31 23:59:59"},
    )
    job_id = expect(status, 202, "POST /v1/contacts/exports", raw)["id"]
    say(f"export {job_id} queued; waiting for the worker")
    deadline = time.monotonic() + STEP_TIMEOUT
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        check_alive([worker])
        status, headers, raw = http("GET", f"{base}/v1/contacts/exports/{job_id}", key=key)
        if status == 429:  # 30 polls a minute are allowed: wait as told
            time.sleep(float(headers.get("Retry-After", "2")))
            continue
        job = expect(status, 200, f"GET /v1/contacts/exports/{job_id}", raw)
        if job["status"] == "completed":
            break
        if job["status"] in ("failed", "expired"):
            raise SmokeFailed(f"the export ended {job['status']}: {job.get('error')}")
        time.sleep(1.0)
    else:
        raise SmokeFailed(f"the export was not completed within {STEP_TIMEOUT:.0f}s: {job}")

    status, _, raw = http("GET", job["download_url"], timeout=30)
    if status != 200:
        raise SmokeFailed(f"downloading the export file: HTTP {status}: {raw[:300]!r}")
    text = gzip.decompress(raw).decode() if raw[:2] == b"\x1f\x8b" else raw.decode()
    got = sorted(json.loads(line)["email"] for line in text.splitlines() if line.strip())
    if got != sorted(emails):
        raise SmokeFailed(f"the export file holds {got}, expected {sorted(emails)}")
    say(f"export completed; its file ({len(raw)} bytes from storage) holds the {len(got)} imported contacts")


# --- 4. The run ------------------------------------------------------------------------------
def smoke(args: argparse.Namespace) -> None:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    venv = Path(args.venv)
    build_plain_venv(args.python, venv, work / "smoke-pip.log")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    commands = compose_commands(port)
    env = product_env(venv, work / "data-smoke")

    say(f"migrate: {' '.join(commands['migrate'])}")
    run_once(commands["migrate"], env, work / "smoke-migrate.log")
    services: list[Service] = []
    try:
        web = Service("web", commands["web"], env, work / "smoke-web.log")
        services.append(web)
        worker = Service("worker", commands["worker"], env, work / "smoke-worker.log")
        services.append(worker)

        ready = wait_until_ready(base, services)
        say(f"/readyz: {json.dumps(ready['checks'])}")
        status, _, raw = http("GET", base + "/healthz")
        expect(status, 200, "GET /healthz", raw)
        wait_worker(worker)
        for name in ("web-healthcheck", "worker-healthcheck"):
            run_once(commands[name], env, work / "smoke-healthcheck.log", timeout=30)
            say(f"docker-compose.yml's {name.replace('-', ' ')} passes")

        manage = ["python", "manage.py"]
        name = f"Smoke {os.getpid()} {int(time.time())}"
        run_once([*manage, "create_workspace", name], env, work / "smoke-manage.log")
        key = run_once(
            [*manage, "create_api_key", "--workspace", name, "--scopes", "read:contacts,write:contacts"],
            env,
            work / "smoke-manage.log",
        )
        if not key.startswith("wbk_"):
            raise SmokeFailed(f"create_api_key printed {key[:20]!r}…, not a key")
        end_to_end(base, key, worker)
    except SmokeFailed:
        for service in services:
            say(f"--- tail of the {service.name} log")
            print(tail(service.log_path, 25), file=sys.stderr)
        raise
    finally:
        for service in reversed(services):
            service.stop()


def write_junit(path: str, seconds: float, failure: str | None) -> None:
    case = (
        f'<testcase classname="ci.production_smoke" name="test_the_plain_install_serves_web_and_worker" '
        f'time="{seconds:.1f}"'
    )
    case += f"><failure message={quoteattr(failure)}/></testcase>" if failure else "/>"
    Path(path).write_text(
        f'<?xml version="1.0" encoding="utf-8"?>\n<testsuites><testsuite name="production-smoke" '
        f'tests="1" failures="{1 if failure else 0}" errors="0" skipped="0">{case}'
        f"</testsuite></testsuites>\n"
    )


def _terminate(signum: int, frame: object) -> None:
    raise SmokeFailed(f"stopped by signal {signum}")  # so that `finally` stops the services


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", required=True, help="the interpreter that makes the plain venv")
    parser.add_argument("--venv", required=True, help="where the plain venv lives (kept between runs)")
    parser.add_argument("--work", required=True, help="a scratch directory for logs and the data dir")
    parser.add_argument("--junit", help="write one JUnit test case here")
    args = parser.parse_args()
    started = time.monotonic()
    failure = None
    try:
        smoke(args)
    except (SmokeFailed, OSError, subprocess.SubprocessError, KeyError, ValueError) as exc:
        failure = f"{type(exc).__name__}: {exc}" if not isinstance(exc, SmokeFailed) else str(exc)
    seconds = time.monotonic() - started
    if args.junit:
        write_junit(args.junit, seconds, failure)
    if failure:
        say(f"FAILED after {seconds:.0f}s: {failure}")
        return 1
    say(f"passed in {seconds:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
