# syntax=docker/dockerfile:1
# The bot as a container: `docker compose up` (compose.yaml) runs it next to PostgreSQL.
# Stage 1 installs into a virtualenv exactly what requirements.lock pins, every file checked against its hash
# (as `make` does), then the project itself without resolving anything further; stage 2 copies only that
# virtualenv and manifest.yml (for `setup slack`) into a slim image that runs as an unprivileged user.
# Python 3.11: the version the lock is compiled for (`make lock`), so its markers resolve the same way.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements.lock ./
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY storage ./storage
# No build isolation: the build backend (setuptools, wheel) comes from the lock too, hash-checked.
RUN /opt/venv/bin/pip install --no-deps --no-build-isolation .

FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=3000 \
    EXPORT_DIR=/var/lib/privacy-bot/exports \
    SPOOL_DIR=/var/lib/privacy-bot/spool
RUN groupadd --system --gid 10001 bot \
 && useradd --system --uid 10001 --gid bot --home-dir /app --shell /usr/sbin/nologin bot \
 && mkdir -p /app /var/lib/privacy-bot/exports /var/lib/privacy-bot/spool \
 && chown -R bot:bot /var/lib/privacy-bot
COPY --from=build /opt/venv /opt/venv
COPY manifest.yml /app/manifest.yml
WORKDIR /app
USER 10001:10001
EXPOSE 3000
# The spool keeps webhook deliveries that arrived while the database did not answer: it must outlive the container.
VOLUME ["/var/lib/privacy-bot/exports", "/var/lib/privacy-bot/spool"]
# /healthz answers 200 while the database answers, or while deliveries can still go to the spool ("degraded");
# 503 when neither (no curl in the slim image).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(0 if urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '3000')}/healthz\", timeout=4).status == 200 else 1)"]
# Migrate before serving: a new image upgrades the schema first (idempotent; several replicas may race
# harmlessly on PostgreSQL, as `release: python -m bot migrate` does on Procfile hosts).
CMD ["sh", "-c", "python -m bot migrate && exec python -m bot serve"]
