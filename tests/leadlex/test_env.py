"""The env helper is strict: a typo stops the process instead of meaning "off"."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from leadlex.env import env_bool, env_int, env_list, env_optional, env_str
from tests.support.worker import ROOT


@pytest.mark.parametrize(
    "raw, value",
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        (" on ", True),
        ("0", False),
        ("false", False),
        ("Off", False),
        ("", False),
    ],
)
def test_booleans_parse_strictly(monkeypatch, raw, value):
    monkeypatch.setenv("LEADLEX_X", raw)
    assert env_bool("LEADLEX_X", False) is value


@pytest.mark.parametrize("raw", ["yess", "yes", "no", "2", "enabled", "tru"])
def test_anything_else_is_a_configuration_error(monkeypatch, raw):
    monkeypatch.setenv("LEADLEX_X", raw)
    with pytest.raises(ImproperlyConfigured, match="LEADLEX_X"):
        env_bool("LEADLEX_X", False)


def test_defaults_apply_when_unset(monkeypatch):
    monkeypatch.delenv("LEADLEX_X", raising=False)
    assert env_bool("LEADLEX_X", True) is True
    assert env_int("LEADLEX_X", 7) == 7
    assert env_list("LEADLEX_X", ["a"]) == ["a"]
    assert env_str("LEADLEX_X", "d") == "d"
    assert env_optional("LEADLEX_X") is None


def test_integers_and_lists(monkeypatch):
    monkeypatch.setenv("LEADLEX_X", " 42 ")
    assert env_int("LEADLEX_X", 0) == 42
    monkeypatch.setenv("LEADLEX_X", "4x2")
    with pytest.raises(ImproperlyConfigured, match="integer"):
        env_int("LEADLEX_X", 0)
    monkeypatch.setenv("LEADLEX_X", "a, b,,c ")
    assert env_list("LEADLEX_X", []) == ["a", "b", "c"]


@pytest.mark.parametrize(
    "name, value",
    [("LEADLEX_WEBHOOKS_ALLOW_PRIVATE", "yess"), ("LEADLEX_MAX_BODY_BYTES", "20MB"), ("DJANGO_DEBUG", "maybe")],
)
def test_a_bad_value_stops_the_process_at_start_up(name, value, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "LEADLEX_DATA_DIR": str(tmp_path), name: value}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and name in result.stderr


def test_a_good_environment_starts(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "LEADLEX_DATA_DIR": str(tmp_path), "LEADLEX_WEBHOOKS_ALLOW_PRIVATE": "false"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
