"""X-Request-ID: echoed when sane, replaced otherwise, and on the request's log line."""

from __future__ import annotations

import logging
import re

import pytest
from django.conf import settings

FORMAT = settings.LOGGING["formatters"]["plain"]["format"]


def test_a_sane_client_id_is_echoed(owner):
    response = owner.client.get("/v1/webhooks", HTTP_X_REQUEST_ID="client-abc_123.x:y/z")
    assert response["X-Request-ID"] == "client-abc_123.x:y/z"
    assert owner.client.get("/v1/webhooks", HTTP_X_REQUEST_ID="a" * 128)["X-Request-ID"] == "a" * 128


@pytest.mark.parametrize("bad", ["a" * 129, "has space", "tab\there", "ünïcode", "line\nbreak", "", "\x7f"])
def test_an_insane_client_id_is_replaced_by_a_new_one(owner, bad):
    response = owner.client.get("/v1/webhooks", HTTP_X_REQUEST_ID=bad)
    assert response["X-Request-ID"] != bad
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


def test_without_a_client_id_every_response_gets_a_unique_one(owner, anon):
    ids = {owner.client.get("/v1/webhooks")["X-Request-ID"] for _ in range(5)}
    ids.add(anon.get("/v1/webhooks")["X-Request-ID"])  # errors too
    ids.add(anon.get("/v1/no-such-thing")["X-Request-ID"])
    assert len(ids) == 7


def test_the_request_id_is_on_the_log_line_of_the_request(owner, caplog):
    caplog.set_level(logging.INFO, logger="leadlex.request")
    owner.client.get("/v1/webhooks", HTTP_X_REQUEST_ID="trace-me-42")
    lines = [logging.Formatter(FORMAT).format(r) for r in caplog.records if r.name == "leadlex.request"]
    assert any("request_id=trace-me-42" in line and "GET /v1/webhooks 200" in line for line in lines), lines


def test_an_unexpected_error_is_logged_with_the_request_id_and_answered_500_in_the_envelope(owner, caplog, monkeypatch):
    def explode(**kwargs):
        raise RuntimeError("kaboom")

    monkeypatch.setattr("leadlex.webhooks.webhook_endpoint_list", explode)
    from leadlex.middleware import RequestIdLogFilter

    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(RequestIdLogFilter())  # as the configured console handler does
    response = owner.client.get("/v1/webhooks", HTTP_X_REQUEST_ID="err-7")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert response["X-Request-ID"] == "err-7"
    assert "kaboom" not in response.content.decode()
    error_lines = [logging.Formatter(FORMAT).format(r) for r in caplog.records if r.levelno >= logging.ERROR]
    assert error_lines and all("request_id=err-7" in line for line in error_lines), error_lines


# --- Celery's own lines about a job's task -------------------------------------------------
# The worker writes "Task <name>[<task id>] received" (main process) and "… succeeded in …"
# (pool process) around the task body; they name the task id, not the job, so they are
# matched by task name in the log of a worker that runs this test's tasks only.
CELERY_LINE = re.compile(
    r"^\S+ \S+ [A-Z]+ \S+ \[request_id=(?P<rid>[^\]]*)\] Task (?P<name>[\w.]+)\[(?P<task>[0-9a-f-]+)\] (?P<what>\w+)"
)


def _celery_lines(log: str, name: str) -> dict[str, list[tuple[str, str]]]:
    """task id → [(what, request_id)] for Celery's lines about tasks named ``name``."""
    found: dict[str, list[tuple[str, str]]] = {}
    for line in log.splitlines():
        match = CELERY_LINE.match(line)
        if match and match["name"] == name:
            found.setdefault(match["task"], []).append((match["what"], match["rid"]))
    return found


@pytest.fixture
def own_worker(settings):
    """A worker on two queues of this test's own: export runs and import runs go there."""
    import uuid

    from tests.support.worker import WorkerProcess, tasks_routed_to

    export_queue, import_queue = (f"{kind}-reqid-{uuid.uuid4().hex[:8]}" for kind in ("exports", "imports"))
    settings.LEADLEX_IMPORT_QUEUE = import_queue
    with tasks_routed_to("exports.export_job_run", export_queue):
        worker = WorkerProcess(
            "celery-lines", queues=f"{export_queue},{import_queue}", hostname=f"celery-lines-{uuid.uuid4().hex[:6]}"
        )
        try:
            yield worker, export_queue
        finally:
            worker.stop()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_celerys_received_and_succeeded_lines_of_a_jobs_task_carry_the_request_id(owner, own_worker) -> None:
    import uuid

    from exports.tasks import export_jobs_sweep_stale_task
    from imports.models import ImportJob
    from tests.exports.factories import make_contacts
    from tests.support.imports import import_rows
    from tests.support.worker import wait_for, wait_job

    worker, export_queue = own_worker
    make_contacts(owner.workspace, 3)
    export = owner.client.post(
        "/v1/contacts/exports",
        {"start_date": "2026-01-01 00:00:00", "end_date": "2026-12-31 23:59:59"},
        format="json",
        HTTP_X_REQUEST_ID="export-req-1",
    )
    assert export.status_code == 202, export.content
    assert wait_job(uuid.UUID(export.json()["id"])).status == "completed", worker.log()[-3000:]
    imported = owner.client.post(
        "/v1/import/contacts", {"rows": import_rows(520)}, format="json", HTTP_X_REQUEST_ID="import-req-2"
    )
    assert imported.status_code == 202, imported.content
    job_id = uuid.UUID(imported.json()["data"]["job_id"].removeprefix("imp_"))
    wait_for(lambda: ImportJob.objects.get(id=job_id).is_finished, timeout=120, message="the import to finish")
    # A task no request started, after those: its lines must not inherit their ids.
    export_jobs_sweep_stale_task.apply_async(queue=export_queue)

    def lines() -> dict[str, dict[str, list[tuple[str, str]]]]:
        log = worker.log()
        found = {name: _celery_lines(log, name) for name in ("exports.export_job_run", "imports.import_job_run")}
        found["sweep"] = _celery_lines(log, "exports.sweep_stale")
        return found if all(any(w == "succeeded" for t in f.values() for w, _ in t) for f in found.values()) else {}

    found = wait_for(lines, timeout=60, message="Celery's succeeded lines of all three tasks")
    for name, request_id in (("exports.export_job_run", "export-req-1"), ("imports.import_job_run", "import-req-2")):
        assert len(found[name]) == 1, (name, found[name], worker.log()[-3000:])
        (task_lines,) = found[name].values()
        assert {what for what, _ in task_lines} >= {"received", "succeeded"}, task_lines
        assert all(rid == request_id for _, rid in task_lines), (name, task_lines)
    (sweep_lines,) = found["sweep"].values()
    assert {what for what, _ in sweep_lines} >= {"received", "succeeded"} and all(rid == "-" for _, rid in sweep_lines)
