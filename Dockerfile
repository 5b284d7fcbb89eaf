# One image for web, worker, beat and one-off commands (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LEADLEX_DATA_DIR=/data

WORKDIR /app

# Dependencies first, so that a code change does not reinstall them. They are
# pyproject.toml's, through `pip install .` (no list of its own here): the install
# .ci/run builds the same way and starts (web, worker) in its production check.
COPY pyproject.toml README.md ./
RUN mkdir -p config leadlex contacts exports imports \
    && pip install . \
    && pip uninstall -y leadlex

COPY manage.py ./
COPY config ./config
COPY leadlex ./leadlex
COPY contacts ./contacts
COPY exports ./exports
COPY imports ./imports
COPY templates ./templates
RUN pip install --no-deps . \
    && useradd --system --create-home --home-dir /home/leadlex leadlex \
    && mkdir -p /data && chown leadlex /data

USER leadlex
EXPOSE 8000
# The web server; compose overrides the command for worker, beat and migrate.
CMD ["gunicorn", "-c", "python:config.gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
