"""docker-compose.yml and the Dockerfile, checked by reading them (no Docker engine
here): every LeadLex service is configured only through variables the settings
read, the infrastructure agrees with those variables, and every command points
at code that exists."""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict = COMPOSE["services"]
APP_SERVICES = sorted(name for name, svc in SERVICES.items() if "build" in svc)
_ENV_CALL = re.compile(r"env_(?:str|bool|int|list|optional)\(\s*[\"']([A-Z0-9_]+)[\"']")


def variables_read_by_the_code() -> set[str]:
    names: set[str] = set()
    for package in ("config", "leadlex", "contacts", "exports", "imports"):
        for path in (ROOT / package).rglob("*.py"):
            names |= set(_ENV_CALL.findall(path.read_text()))
    return names


def env_of(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def command_of(service: str) -> list[str]:
    command = SERVICES[service].get("command")
    if command is None:
        return []
    if isinstance(command, str):
        return shlex.split(command)
    if command[:2] == ["/bin/sh", "-c"]:
        return shlex.split(command[2].replace("&&", " && "))
    return list(command)


def test_the_stack_has_every_piece():
    assert {"postgres", "redis", "minio", "createbucket", "migrate", "web", "worker", "beat"} <= set(SERVICES)
    assert set(APP_SERVICES) == {"migrate", "web", "worker", "beat"}


def test_the_code_reads_its_environment_only_through_the_env_helper():
    names = variables_read_by_the_code()
    assert {"DATABASE_URL", "REDIS_URL", "AWS_STORAGE_BUCKET_NAME", "DJANGO_SECRET_KEY"} <= names
    for package in ("config", "leadlex", "contacts", "exports", "imports"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name == "env.py" and path.parent.name == "leadlex":
                continue
            text = path.read_text()
            assert "os.environ.get(" not in text and "os.getenv(" not in text, path


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_services_set_only_variables_the_settings_read(service):
    env = env_of(service)
    unknown = set(env) - variables_read_by_the_code()
    assert not unknown, f"{service} sets variables nothing reads: {sorted(unknown)}"
    # The production profile: PostgreSQL, Redis and S3 all switched on.
    assert {"DATABASE_URL", "REDIS_URL", "AWS_STORAGE_BUCKET_NAME", "AWS_S3_ENDPOINT_URL", "DJANGO_SECRET_KEY"} <= set(
        env
    )


def test_the_infrastructure_matches_the_apps_variables():
    env = env_of("web")
    db = urlsplit(env["DATABASE_URL"])
    pg = env_of("postgres")
    assert db.hostname == "postgres" and db.port == 5432
    assert (db.username, db.password, db.path.lstrip("/")) == (
        pg["POSTGRES_USER"],
        pg["POSTGRES_PASSWORD"],
        pg["POSTGRES_DB"],
    )
    assert urlsplit(env["REDIS_URL"]).hostname == "redis"
    minio = env_of("minio")
    assert urlsplit(env["AWS_S3_ENDPOINT_URL"]).hostname == "minio"
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == (
        minio["MINIO_ROOT_USER"],
        minio["MINIO_ROOT_PASSWORD"],
    )
    script = " ".join(SERVICES["createbucket"]["command"])
    assert f"local/{env['AWS_STORAGE_BUCKET_NAME']}" in script
    assert f"{minio['MINIO_ROOT_USER']} {minio['MINIO_ROOT_PASSWORD']}" in script
    assert "anonymous set none" in script  # the bucket stays private
    assert all(env_of(s) == env for s in APP_SERVICES)  # one configuration for all processes


def test_every_dependency_names_a_service_and_apps_wait_for_migrations():
    for name, service in SERVICES.items():
        for dependency in service.get("depends_on") or {}:
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
    for name in ("web", "worker", "beat"):
        assert SERVICES[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert SERVICES["web"]["depends_on"]["createbucket"]["condition"] == "service_completed_successfully"


def _module_attr(spec: str) -> object:
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr or "app")


def assert_gunicorn_command(command: list[str]) -> None:
    """The product's server configuration (config/gunicorn.py) and a WSGI app that exists."""
    args = command[command.index("gunicorn") + 1 :]
    assert args[:2] == ["-c", "python:config.gunicorn"], args
    assert importlib.import_module("config.gunicorn").worker_class
    assert callable(_module_attr(args[2]))  # config.wsgi:application


def test_commands_point_at_code_that_exists():
    from django.core.management import get_commands

    web = command_of("web")
    assert "gunicorn" in web
    assert_gunicorn_command(web)
    assert "collectstatic" in web and "collectstatic" in get_commands()
    for name, role in (("worker", "worker"), ("beat", "beat")):
        command = command_of(name)
        assert command[:3] == ["celery", "-A", "config"] and command[3] == role
        from celery import Celery

        assert isinstance(importlib.import_module("config.celery").app, Celery)
    migrate = command_of("migrate")
    assert migrate[:2] == ["python", "manage.py"] and (ROOT / "manage.py").exists()
    assert migrate[2] in get_commands()


def test_the_beat_schedule_names_registered_tasks():
    from django.conf import settings

    from config.celery import app

    app.loader.import_default_modules()
    registered = set(app.tasks)  # finalizes the app (autodiscovery) before the schedule is read
    schedule = dict(settings.CELERY_BEAT_SCHEDULE)
    assert "leadlex-webhook-sweep" in schedule
    for entry in schedule.values():
        assert entry["task"] in registered, entry["task"]


def test_the_dockerfile_copies_what_exists_and_runs_the_web_server():
    text = (ROOT / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11" in text
    for line in text.splitlines():
        if line.startswith("COPY "):
            *sources, _dest = line.split()[1:]
            for source in sources:
                assert (ROOT / source).exists(), source
    cmd = re.search(r"^CMD (\[.*\])$", text, re.M).group(1)
    import json

    command = json.loads(cmd)
    assert command[0] == "gunicorn"
    assert_gunicorn_command(command)
    for package in ("config", "leadlex", "contacts", "exports", "imports", "templates"):
        assert f"COPY {package} ./{package}" in text, package


def test_the_dockerfile_takes_its_dependencies_from_pyproject_alone():
    """The image's dependency set is `pip install .` of pyproject.toml -- the same
    install .ci/run's production check builds and starts -- never a hand list, a
    requirements file or the test extra, so the two cannot drift apart."""
    text = (ROOT / "Dockerfile").read_text()
    pieces = re.split(r"&&|\n", text.replace("\\\n", " "))
    installs = [
        shlex.split(piece)[2:]
        for piece in (p.strip().removeprefix("RUN ").strip() for p in pieces)
        if piece.startswith("pip install")
    ]
    assert installs, "the Dockerfile installs nothing with pip"
    for args in installs:
        assert args in (["."], ["--no-deps", "."]), f"pip install {' '.join(args)}"
    assert not (ROOT / "requirements.txt").exists()
    assert "COPY pyproject.toml" in text


def _healthcheck(service: str) -> list[str]:
    test = SERVICES[service]["healthcheck"]["test"]
    assert test[0] in ("CMD", "CMD-SHELL"), test
    return list(test[1:]) if test[0] == "CMD" else ["/bin/sh", "-c", test[1]]


def test_web_is_healthy_when_readyz_answers_on_its_own_port():
    from django.urls import resolve

    command = " ".join(_healthcheck("web"))
    url = re.search(r"https?://[^'\" ]+", command).group(0)
    parts = urlsplit(url)
    assert parts.port == 8000 and "--bind 0.0.0.0:8000" in " ".join(command_of("web"))
    assert parts.hostname in env_of("web")["DJANGO_ALLOWED_HOSTS"].split(",")  # else Django answers 400
    assert resolve(parts.path).url_name == "readyz"
    assert command.startswith("python -c")  # python:3.11-slim has no curl


def test_the_worker_is_healthy_when_it_answers_a_ping():
    command = _healthcheck("worker")[-1]
    assert command.startswith("celery -A config inspect ping") and "celery@$$HOSTNAME" in command
