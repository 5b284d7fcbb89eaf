"""Schemathesis against the app's own OpenAPI document, in-process through the WSGI app.

Every operation of ``/v1/openapi.json`` is called with generated requests (valid
and invalid ones) under a real API key holding every scope. Two promises:

- no request, however odd, makes the API answer a 5xx;
- every answer is one the document lists (status code), in the shape it
  documents (response schema), with the headers it marks required.

Path ids are those of real objects made for each case (a fresh contact for
``/v1/contacts/{contact_id}`` …), so that generated bodies reach the code behind
the 404; every fourth case keeps the generated id and exercises the 404 path.
Bounded and derandomized: the same cases on every run, well under a minute.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from config.wsgi import application
from contacts.models import Activity, Company, Contact, ContactList, Opportunity
from leadlex.models import WebhookEndpoint, Workspace
from tests.conftest import make_key

# Fuzzing: random requests, valid and invalid (negative mode), a few per operation.
FUZZ_EXAMPLES = 6


def _configured(loaded: Any, *, phases: list[str]) -> Any:
    loaded.config.phases.update(phases=phases)
    loaded.config.generation.update(max_examples=FUZZ_EXAMPLES, deterministic=True, database="none")
    # Methods an operation does not have (TRACE…) answer 405 whatever the body: not worth their share of the time.
    loaded.config.phases.coverage.unexpected_methods = set()
    return loaded


# The document as the server serves it, fetched once (generating it takes seconds) for both runs.
covered = schemathesis.openapi.from_wsgi("/v1/openapi.json", application, config=SchemathesisConfig())
fuzzed = schemathesis.openapi.from_dict(copy.deepcopy(covered.raw_schema), config=SchemathesisConfig())
fuzzed.app, fuzzed.location = application, covered.location
# Coverage: the schema's own examples, then every boundary and every invalid variant it defines, once
# (deterministic), under the conformance checks.
_configured(covered, phases=["examples", "coverage"])
# Fuzzing: random valid and invalid requests on top; the examples already ran above.
_configured(fuzzed, phases=["fuzzing"])

HYPOTHESIS = settings(
    max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
CONFORMANCE_CHECKS = [
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
    response_headers_conformance,
]


def _contact(workspace: Workspace) -> str:
    return str(
        Contact.objects.create(
            workspace=workspace, full_name="Ada Lovelace", email=f"ada-{uuid.uuid4().hex[:8]}@example.com"
        ).pk
    )


def _export_job(workspace: Workspace, *, kind: str, prefix: str = "") -> str:
    from exports.models import ExportJob

    job = ExportJob.objects.create(workspace=workspace, kind=kind, format="csv" if prefix else "ndjson")
    return prefix + (job.pk.hex if prefix else str(job.pk))


def _import_job(workspace: Workspace) -> str:
    from imports.models import ImportJob

    return ImportJob.objects.create(workspace=workspace, source=ImportJob.Source.ROWS).public_id


MAKERS: dict[str, Callable[[Workspace], str]] = {
    "contact_id": _contact,
    "list_id": lambda ws: str(ContactList.objects.create(workspace=ws, name=f"list-{uuid.uuid4().hex[:8]}").pk),
    "company_id": lambda ws: str(Company.objects.create(workspace=ws, name="Initech").pk),
    "opportunity_id": lambda ws: str(Opportunity.objects.create(workspace=ws).pk),
    "activity_id": lambda ws: str(Activity.objects.create(workspace=ws, type="note").pk),
    "endpoint_id": lambda ws: str(
        WebhookEndpoint.objects.create(workspace=ws, url="https://example.com/hook", events=["import.completed"]).pk
    ),
    "job_id": _import_job,
}


def _export_id(workspace: Workspace, path: str) -> str:
    if path.startswith("/v1/contacts/exports/"):
        return _export_job(workspace, kind="contacts")
    from exports.models import LEAD_KINDS

    return _export_job(workspace, kind=LEAD_KINDS["leads"], prefix="expo_")


@dataclass
class Fuzzing:
    workspace: Workspace
    raw_key: str
    cases: itertools.count = field(default_factory=itertools.count)

    def prepare(self, case: Any) -> dict[str, str]:
        """Real ids in the path for three cases in four; the headers to send."""
        if next(self.cases) % 4:
            for name in case.path_parameters or {}:
                if name == "export_id":
                    case.path_parameters[name] = _export_id(self.workspace, case.path)
                elif name in MAKERS:
                    case.path_parameters[name] = MAKERS[name](self.workspace)
        return {"Authorization": f"Bearer {self.raw_key}"}


@pytest.fixture
def fuzzing(db, settings, storage_ready: None) -> Iterator[Fuzzing]:
    # The limits are the rate-limit tests' business; here they would turn most cases into 429s.
    settings.LEADLEX_RATE_LIMITS = {group: "1000000/minute" for group in settings.LEADLEX_RATE_LIMITS}
    if settings.LEADLEX_RATELIMIT_STORE == "sqlite":
        # Still counted and answered with X-RateLimit-* headers, but in memory: the file
        # store commits (and syncs) once per request, the largest single cost of this run.
        settings.LEADLEX_RATELIMIT_SQLITE_PATH = ":memory:"
    workspace = Workspace.objects.create(name=f"Fuzz {uuid.uuid4().hex[:6]}", timezone="UTC")
    _key, raw = make_key(workspace)
    # The WSGI handler closes "old" connections when a request starts and ends; inside
    # the test's transaction that would close it. Django's test client does the same.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield Fuzzing(workspace=workspace, raw_key=raw)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@fuzzed.parametrize()
@HYPOTHESIS
def test_no_generated_request_makes_an_operation_answer_5xx(case: Any, fuzzing: Fuzzing) -> None:
    case.call_and_validate(headers=fuzzing.prepare(case), checks=[not_a_server_error])


@covered.parametrize()
@HYPOTHESIS
def test_every_answer_is_documented_status_shape_and_headers(case: Any, fuzzing: Fuzzing) -> None:
    case.call_and_validate(headers=fuzzing.prepare(case), checks=[not_a_server_error, *CONFORMANCE_CHECKS])
