"""API keys survive secret rotations: their hashes have their own secret, with
fallbacks, and keys from before that secret existed keep working (through HTTP)."""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.views.debug import SafeExceptionReporterFilter
from rest_framework.test import APIClient

from leadlex.models import ApiKey, hash_key
from tests.conftest import basic_auth, make_key

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def status_with(raw_key: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client.get("/v1/contacts").status_code


def assert_invalid_key(raw_key: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    response = client.get("/v1/contacts")
    assert response.status_code == 401, response.content
    assert response.json()["error"]["code"] == "invalid_key"


def test_rotating_the_django_secret_key_keeps_api_keys_working(workspace, settings):
    # As the profile is configured: generated in the data dir (embedded), or the
    # variable .ci/run sets as a production deployment should (see README).
    assert settings.LEADLEX_API_KEY_HASH_SECRET, "the profile under test has no API key hash secret"
    _, raw = make_key(workspace)
    assert status_with(raw) == 200
    settings.SECRET_KEY = "a-brand-new-django-secret-key-" + "x" * 30
    settings.SECRET_KEY_FALLBACKS = []
    assert status_with(raw) == 200
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=basic_auth(raw))
    assert client.get("/v1/contacts").status_code == 200


def test_a_rotated_hash_secret_works_while_the_old_one_is_a_fallback_and_not_after(workspace, settings):
    settings.LEADLEX_API_KEY_HASH_SECRET = "hash-secret-one-" + "1" * 30
    settings.LEADLEX_API_KEY_HASH_SECRET_FALLBACKS = []
    used_key, used_raw = make_key(workspace)
    idle_key, idle_raw = make_key(workspace)

    settings.LEADLEX_API_KEY_HASH_SECRET = "hash-secret-two-" + "2" * 30
    settings.LEADLEX_API_KEY_HASH_SECRET_FALLBACKS = ["hash-secret-one-" + "1" * 30]
    assert status_with(used_raw) == 200
    # Seen under the fallback, so now hashed with the current secret.
    assert ApiKey.objects.get(pk=used_key.pk).key_hash == hash_key(used_raw, secret="hash-secret-two-" + "2" * 30)
    assert ApiKey.objects.get(pk=idle_key.pk).key_hash == idle_key.key_hash

    settings.LEADLEX_API_KEY_HASH_SECRET_FALLBACKS = []
    assert status_with(used_raw) == 200
    assert_invalid_key(idle_raw)  # not used while the old secret was a fallback


def test_a_key_hashed_before_the_hash_secret_existed_still_works_and_moves_to_it(workspace, settings):
    """Before the upgrade, key hashes were keyed with SECRET_KEY."""
    settings.LEADLEX_API_KEY_HASH_SECRET = "the-new-hash-secret-" + "h" * 30
    raw = ApiKey.generate()
    key = ApiKey(
        workspace=workspace,
        scopes=["read:contacts"],
        lookup=raw[:12],
        key_hash=hmac.new(settings.SECRET_KEY.encode(), raw.encode(), hashlib.sha256).hexdigest(),
    )
    key.save()
    assert status_with(raw) == 200
    assert ApiKey.objects.get(pk=key.pk).key_hash == hash_key(raw, secret="the-new-hash-secret-" + "h" * 30)
    settings.SECRET_KEY = "rotated-after-the-upgrade-" + "r" * 30
    assert status_with(raw) == 200


def test_without_the_setting_keys_hang_on_the_secret_key_and_honour_its_fallbacks(workspace, settings):
    """Production before LEADLEX_API_KEY_HASH_SECRET is set: Django's own rotation
    list works, and a system check says what to do."""
    settings.LEADLEX_API_KEY_HASH_SECRET = ""
    settings.LEADLEX_API_KEY_HASH_SECRET_FALLBACKS = []
    old = settings.SECRET_KEY
    _, used_raw = make_key(workspace)
    _, idle_raw = make_key(workspace)

    settings.SECRET_KEY = "rotated-django-secret-key-" + "k" * 30
    settings.SECRET_KEY_FALLBACKS = [old]
    assert status_with(used_raw) == 200
    settings.SECRET_KEY_FALLBACKS = []
    assert status_with(used_raw) == 200  # re-hashed on its use above
    assert_invalid_key(idle_raw)

    err = io.StringIO()
    call_command("check", stdout=io.StringIO(), stderr=err)
    assert "leadlex.W001" in err.getvalue() and "LEADLEX_API_KEY_HASH_SECRET" in err.getvalue()
    settings.LEADLEX_API_KEY_HASH_SECRET = "now-set-" + "s" * 30
    err = io.StringIO()
    call_command("check", stdout=io.StringIO(), stderr=err)
    assert "leadlex.W001" not in err.getvalue()


def test_a_wrong_key_is_refused_whatever_the_fallbacks(workspace, settings):
    settings.LEADLEX_API_KEY_HASH_SECRET_FALLBACKS = ["old-one-" + "o" * 30, "older-one-" + "p" * 30]
    _, raw = make_key(workspace)
    assert status_with(raw) == 200
    assert_invalid_key(raw[:-4] + ("AAAA" if not raw.endswith("AAAA") else "BBBB"))


def test_fallbacks_cost_hashes_on_the_one_row_the_prefix_finds_not_a_scan(workspace, settings):
    settings.LEADLEX_API_KEY_HASH_SECRET = "oldest-" + "o" * 30
    for _ in range(20):
        make_key(workspace)
    _, raw = make_key(workspace)
    settings.LEADLEX_API_KEY_HASH_SECRET = "newest-" + "n" * 30
    settings.LEADLEX_API_KEY_HASH_SECRET_FALLBACKS = ["newer-" + "m" * 30, "new-" + "l" * 30, "oldest-" + "o" * 30]
    with CaptureQueriesContext(connection) as queries:
        assert status_with(raw) == 200
    key_reads = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith("SELECT") and "leadlex_apikey" in q["sql"].split("FROM", 1)[1][:40]
    ]
    assert len(key_reads) == 1 and "lookup" in key_reads[0] and "LIMIT 1" in key_reads[0]


def test_the_hash_secrets_never_show_in_error_reports(settings):
    settings.LEADLEX_API_KEY_HASH_SECRET = "very-secret-hash-secret-" + "z" * 30
    settings.LEADLEX_API_KEY_HASH_SECRET_FALLBACKS = ["very-secret-old-one-" + "y" * 30]
    safe = SafeExceptionReporterFilter().get_safe_settings()
    assert "very-secret" not in repr(safe["LEADLEX_API_KEY_HASH_SECRET"])
    assert "very-secret" not in repr(safe["LEADLEX_API_KEY_HASH_SECRET_FALLBACKS"])


def test_the_embedded_profile_generates_one_hash_secret_of_its_own(tmp_path):
    """Four processes starting at once on a fresh data dir (web and worker do) agree
    on one generated secret, kept in the data dir, readable by its owner only, and
    not the SECRET_KEY."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "DATABASE_URL",
            "REDIS_URL",
            "CELERY_BROKER_URL",
            "AWS_STORAGE_BUCKET_NAME",
            "DJANGO_SECRET_KEY",
            "LEADLEX_API_KEY_HASH_SECRET",
            "LEADLEX_SQLITE_PATH",
        )
    }
    env.update(LEADLEX_DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="config.settings")
    code = "import config.settings as s; print(s.LEADLEX_API_KEY_HASH_SECRET, s.SECRET_KEY)"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=60)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    hash_secrets = {out[0] for out in outputs}
    assert len(hash_secrets) == 1
    (hash_secret,) = hash_secrets
    path = tmp_path / "api_key_hash_secret"
    assert path.read_text().strip() == hash_secret and len(hash_secret) >= 50
    assert path.stat().st_mode & 0o777 == 0o600
    assert hash_secret != outputs[0][1]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".api_key_hash_secret")) == []
