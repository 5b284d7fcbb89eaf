"""LeadLex settings: one module, two profiles chosen by the environment.

No variable set gives the *embedded* profile (SQLite, local-disk files, a
file-system Celery broker, a SQLite rate-limit store), all under
``LEADLEX_DATA_DIR``. ``DATABASE_URL``, ``REDIS_URL`` / ``CELERY_BROKER_URL``
and ``AWS_STORAGE_BUCKET_NAME`` switch each piece to PostgreSQL, Redis and S3.
"""

from __future__ import annotations

from pathlib import Path

import environ

from leadlex.env import env_bool, env_int, env_list, env_optional, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
# Under pytest (which sets PYTEST_VERSION) the default moves aside, so a test run
# never shares its broker queue or files with a running development instance.
_default_data_dir = BASE_DIR / "var" / ("test" if env_optional("PYTEST_VERSION") else "")
DATA_DIR = Path(env_str("LEADLEX_DATA_DIR", str(_default_data_dir))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

DATABASE_URL = env_optional("DATABASE_URL")
REDIS_URL = env_optional("REDIS_URL")
S3_BUCKET = env_optional("AWS_STORAGE_BUCKET_NAME")
LEADLEX_PROFILE = "production" if DATABASE_URL else "embedded"

DEBUG = env_bool("DJANGO_DEBUG", LEADLEX_PROFILE == "embedded")
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if LEADLEX_PROFILE == "production":
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DATABASE_URL is set")
    # The embedded profile keeps a generated secret beside its data so that signed
    # download links survive a restart and nobody ships a well-known key.
    _secret_file = DATA_DIR / "secret_key"
    if not _secret_file.exists():
        import secrets

        _secret_file.write_text(secrets.token_urlsafe(50))
        _secret_file.chmod(0o600)
    SECRET_KEY = _secret_file.read_text().strip()
# Django's own rotation list (sessions, signed values): the old key goes here for a while.
SECRET_KEY_FALLBACKS = env_list("DJANGO_SECRET_KEY_FALLBACKS", [])


def _generated_secret(path: Path) -> str:
    """A random secret kept in the data dir. Created by a hard link from a complete
    temporary file, so a web process and a worker starting together agree on it."""
    if not path.exists():
        import os
        import secrets
        import tempfile

        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(50))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    return path.read_text().strip()


# API keys are stored as HMACs under their own secret, so that rotating
# DJANGO_SECRET_KEY does not invalidate every key. Unset in production, keys are
# hashed with SECRET_KEY as before this setting existed (a system check warns);
# keys made before it are still verified under SECRET_KEY/SECRET_KEY_FALLBACKS and
# re-hashed on their next use. See README, "API keys and secrets".
LEADLEX_API_KEY_HASH_SECRET = env_str("LEADLEX_API_KEY_HASH_SECRET", "")
if not LEADLEX_API_KEY_HASH_SECRET and LEADLEX_PROFILE == "embedded":
    LEADLEX_API_KEY_HASH_SECRET = _generated_secret(DATA_DIR / "api_key_hash_secret")
LEADLEX_API_KEY_HASH_SECRET_FALLBACKS = env_list("LEADLEX_API_KEY_HASH_SECRET_FALLBACKS", [])

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])
LEADLEX_PUBLIC_URL = env_str("LEADLEX_PUBLIC_URL", "http://localhost:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc assets, pinned and served from /static/
    "leadlex",
    "contacts",
    "exports",
    "imports",
]

MIDDLEWARE = [
    "leadlex.gateway.ApiPathAliasMiddleware",
    "leadlex.middleware.RequestIdMiddleware",
    "leadlex.middleware.ApiErrorPageMiddleware",
    "leadlex.gateway.ApiQueryGuardMiddleware",
    "leadlex.middleware.BodySizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Serves /static/ (the admin's CSS/JS) from gunicorn in every profile.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
if DATABASE_URL:
    DATABASES = {"default": environ.Env.db_url_config(DATABASE_URL)}
    DATABASES["default"].setdefault("CONN_MAX_AGE", env_int("DATABASE_CONN_MAX_AGE", 60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            # LEADLEX_SQLITE_PATH lets a test's worker process open the test database.
            "NAME": env_str("LEADLEX_SQLITE_PATH", str(DATA_DIR / "leadlex.sqlite3")),
            # WAL lets the web process read while a worker writes; IMMEDIATE makes
            # writers queue on the lock instead of failing with "database is locked"
            # when a read transaction tries to upgrade.
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            },
            # A file, not :memory:, so that a real worker process in the tests can
            # open the same test database.
            "TEST": {"NAME": str(DATA_DIR / "test_leadlex.sqlite3")},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache ----------------------------------------------------------------------
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery ---------------------------------------------------------------------
CELERY_BROKER_URL = env_optional("CELERY_BROKER_URL") or REDIS_URL or "filesystem://"
if CELERY_BROKER_URL == "filesystem://":
    # kombu's file-system transport with an atomic publish (leadlex/broker.py says why).
    CELERY_BROKER_TRANSPORT = "leadlex.broker:Transport"
    _broker_dir = DATA_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # Without this kombu keeps its exchange bindings in ./control of the cwd.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    # A task that is not acknowledged within this time is delivered again: it must
    # be longer than the longest task's hard time limit.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 7200)}
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Every periodic task, in one place (celery beat).
CELERY_BEAT_SCHEDULE: dict = {
    # Re-dispatches webhook deliveries whose next attempt is due (retries, lost tasks).
    "leadlex-webhook-sweep": {"task": "leadlex.webhook_sweep", "schedule": 30.0},
    # The job runtime's sweepers (leadlex.jobs): requeue jobs whose worker died,
    # re-dispatch lost tasks, fail jobs out of attempts.
    "exports-sweep-stale": {"task": "exports.sweep_stale", "schedule": 60.0},
    "imports-stale-job-sweep": {"task": "imports.import_jobs_sweep", "schedule": 60.0},
    # Export files past their retention are deleted and their jobs marked expired.
    "exports-sweep-expired": {"task": "exports.sweep_expired", "schedule": 3600.0},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")

# --- Storage --------------------------------------------------------------------
# LeadLex's own files (export files, import payloads, error reports) live in Django's
# "default" storage, used only through leadlex/storage.py: local disk with signed links
# served by Django in the embedded profile; the bucket, through django-storages' S3
# backend (which reads the AWS_* settings below), when AWS_STORAGE_BUCKET_NAME is set.
# STORAGES follows LEADLEX_STORAGE_BACKEND, the profile's choice; storage.backend()
# answers from STORAGES itself (what a test overrides).
LEADLEX_STORAGE_BACKEND = "s3" if S3_BUCKET else "local"
LEADLEX_FILES_DIR = DATA_DIR / "files"
STORAGES = {
    "default": {
        "BACKEND": {"s3": "leadlex.storage.S3FileStorage", "local": "leadlex.storage.LocalFileStorage"}[
            LEADLEX_STORAGE_BACKEND
        ]
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
AWS_STORAGE_BUCKET_NAME = S3_BUCKET
AWS_S3_ENDPOINT_URL = env_optional("AWS_S3_ENDPOINT_URL")
AWS_S3_REGION_NAME = env_str("AWS_S3_REGION_NAME", "us-east-1")
AWS_ACCESS_KEY_ID = env_optional("AWS_ACCESS_KEY_ID")
AWS_SECRET_ACCESS_KEY = env_optional("AWS_SECRET_ACCESS_KEY")
AWS_DEFAULT_ACL = None  # the bucket stays private: every download is a presigned GET
AWS_QUERYSTRING_AUTH = True
LEADLEX_DOWNLOAD_URL_TTL = env_int("LEADLEX_DOWNLOAD_URL_TTL", 15 * 60)
AWS_QUERYSTRING_EXPIRE = LEADLEX_DOWNLOAD_URL_TTL
LEADLEX_EXPORT_RETENTION_DAYS = env_int("LEADLEX_EXPORT_RETENTION_DAYS", 7)

# --- API ------------------------------------------------------------------------
LEADLEX_WEBHOOKS_ALLOW_PRIVATE = env_bool("LEADLEX_WEBHOOKS_ALLOW_PRIVATE", LEADLEX_PROFILE == "embedded")
# The paths published client examples send requests to (the hosted gateway's; Close's /api/v1/): served as /v1/.
LEADLEX_API_PATH_ALIASES = env_list("LEADLEX_API_PATH_ALIASES", ["/functions/v1/api-gateway/v1/", "/api/v1/"])
# One webhook POST: connect and read timeouts (seconds). An attempt is cut off at
# their sum, and a claimed delivery is leased for that plus the margin; a killed
# worker's delivery is sent again once its lease is over (docs/webhooks.md).
LEADLEX_WEBHOOK_CONNECT_TIMEOUT = env_int("LEADLEX_WEBHOOK_CONNECT_TIMEOUT", 5)
LEADLEX_WEBHOOK_READ_TIMEOUT = env_int("LEADLEX_WEBHOOK_READ_TIMEOUT", 10)
LEADLEX_WEBHOOK_LEASE_MARGIN = env_int("LEADLEX_WEBHOOK_LEASE_MARGIN", 10)
if min(LEADLEX_WEBHOOK_CONNECT_TIMEOUT, LEADLEX_WEBHOOK_READ_TIMEOUT) < 1 or LEADLEX_WEBHOOK_LEASE_MARGIN < 2:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        "LEADLEX_WEBHOOK_CONNECT_TIMEOUT and _READ_TIMEOUT must be >= 1 second, "
        "LEADLEX_WEBHOOK_LEASE_MARGIN >= 2 seconds"
    )
LEADLEX_MAX_BODY_BYTES = env_int("LEADLEX_MAX_BODY_BYTES", 20 * 1024 * 1024)
# Rate limits per workspace and endpoint group: "N/second|minute|hour|day".
# LEADLEX_RATE_LIMITS="default=600/minute,contacts_export=10/hour" overrides any of them.
LEADLEX_RATE_LIMITS = {
    "contacts_export": "10/hour",
    "contacts_exports_create": "5/minute",
    "contacts_exports_status": "30/minute",
    "import_contacts": "60/minute",
    "default": "600/minute",
}
for _item in env_list("LEADLEX_RATE_LIMITS", []):
    _group, _, _rate = _item.partition("=")
    LEADLEX_RATE_LIMITS[_group.strip()] = _rate.strip()
LEADLEX_RATELIMIT_STORE = "redis" if REDIS_URL else "sqlite"
LEADLEX_RATELIMIT_SQLITE_PATH = DATA_DIR / "ratelimit.sqlite3"

# Django's own limit on form fields; the API limit above is enforced by middleware.
DATA_UPLOAD_MAX_MEMORY_SIZE = LEADLEX_MAX_BODY_BYTES + 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["leadlex.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["leadlex.permissions.WorkspaceScopePermission"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["leadlex.parsers.JSONBodyParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "leadlex.negotiation.JsonAlwaysNegotiation",
    # ``format`` is a body/query parameter of the Close dialect, never a renderer switch.
    "URL_FORMAT_OVERRIDE": None,
    "EXCEPTION_HANDLER": "leadlex.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "leadlex.schema.LeadlexAutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "LeadLex API",
    "DESCRIPTION": "Contacts, companies, lists, bulk imports and exports.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Docstrings are notes for maintainers; what users read is in extend_schema.
    "DISABLE_DOCSTRING_DESCRIPTIONS": True,
    # The docs pages load their assets from this server (no CDN, versions pinned by the package).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Swagger UI would otherwise send the schema to validator.swagger.io for its badge.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    # The health probes (plain views) and the path aliases (servers) join the document here.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "leadlex.schema.document_health_and_aliases",
    ],
    # Stable names for choice sets (a generated client's enum classes are named after them).
    "ENUM_NAME_OVERRIDES": {
        "ActivityTypeEnum": "contacts.models.Activity.Type",
        "CloseExportTypeEnum": "exports.close.render.TYPES",
        "ZeroOrOneEnum": [(0, 0), (1, 1)],
    },
}

# --- Email ----------------------------------------------------------------------
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if env_optional("EMAIL_HOST")
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "LeadLex <no-reply@leadlex.local>")

# --- I18N / static ----------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "leadlex.middleware.RequestIdLogFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [request_id=%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": env_str("LEADLEX_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
