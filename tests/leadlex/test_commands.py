"""create_workspace and create_api_key, through call_command."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from leadlex.models import ApiKey, Workspace


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_create_workspace_creates_it_with_its_timezone(db):
    out, _ = run("create_workspace", "Initech", "--timezone", "Europe/Paris")
    ws = Workspace.objects.get(name="Initech")
    assert ws.timezone == "Europe/Paris" and ws.is_active
    assert out.strip() == str(ws.pk)


def test_create_workspace_refuses_a_taken_name_and_an_unknown_timezone(db):
    run("create_workspace", "Initech")
    with pytest.raises(CommandError, match="already exists"):
        run("create_workspace", "Initech")
    with pytest.raises(CommandError, match="IANA"):
        run("create_workspace", "Other", "--timezone", "Mars/Olympus")
    with pytest.raises(CommandError, match="empty"):
        run("create_workspace", "  ")
    assert list(Workspace.objects.values_list("name", flat=True)) == ["Initech"]


def test_create_api_key_prints_only_a_key_that_authenticates_with_its_scopes(db):
    run("create_workspace", "Initech")
    out, _ = run(
        "create_api_key",
        "--workspace",
        "Initech",
        "--scopes",
        "read:contacts",
        "--owner-email",
        "ops@example.com",
        "--name",
        "reporting",
    )
    raw = out.strip()
    assert out == raw + "\n" and raw.startswith("wbk_") and len(raw) >= 36
    key = ApiKey.objects.get()
    assert key.scopes == ["read:contacts"] and key.owner_email == "ops@example.com" and key.name == "reporting"
    assert key.workspace.name == "Initech"

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/v1/webhooks").status_code == 200
    denied = client.post("/v1/webhooks", {"url": "http://93.184.215.14/", "events": ["export.failed"]}, format="json")
    assert denied.status_code == 403


def test_create_api_key_with_both_scopes_and_an_expiry(db):
    run("create_workspace", "Initech")
    out, _ = run(
        "create_api_key",
        "--workspace",
        "Initech",
        "--scopes",
        "write:contacts, read:contacts",
        "--expires-in-days",
        "30",
    )
    key = ApiKey.objects.get()
    assert key.scopes == ["read:contacts", "write:contacts"] and key.expires_at is not None
    assert key.matches(out.strip())


@pytest.mark.parametrize(
    "args, message",
    [
        (["--workspace", "Nope", "--scopes", "read:contacts"], "No workspace"),
        (["--workspace", "Initech", "--scopes", "read:contacts,admin:all"], "unknown: admin:all"),
        (["--workspace", "Initech", "--scopes", ","], "non-empty"),
        (["--workspace", "Initech", "--scopes", "read:contacts", "--owner-email", "not-an-email"], "email"),
        (["--workspace", "Initech", "--expires-in-days", "0"], "positive"),
    ],
)
def test_create_api_key_refuses_bad_input_without_creating_a_key(db, args, message):
    run("create_workspace", "Initech")
    with pytest.raises(CommandError, match=message):
        run("create_api_key", *args)
    assert not ApiKey.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_create_api_key_exits_non_zero_from_the_shell():
    import subprocess
    import sys

    from tests.support.worker import ROOT, worker_env

    result = subprocess.run(
        [sys.executable, "manage.py", "create_api_key", "--workspace", "Missing-Workspace-xyz"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=worker_env(),
    )
    assert result.returncode != 0
    assert result.stdout == ""
    assert "No workspace" in result.stderr
