# CRoW in a container: granian (python -m crow.serve) on port 5000, started by python -m crow.start
# (checks /app/var is writable, migrates unless CROW_MIGRATE=0, creates CROW_ADMIN_USER, writes
# CROW_UPSTREAMS into the upstream table, then serves).
# Without configuration it runs the embedded default, SQLite and blobs under the /app/var volume;
# set DATABASE_URL, CROW_SECRET_KEY etc. (see .env.example and README "Run in production").
#
#   docker build -t crow .
#   docker run -p 5000:5000 -v crow-var:/app/var -e CROW_ADMIN_USER=admin -e CROW_ADMIN_PASSWORD=... crow

# --- builder: the dependencies in a virtualenv (every one ships a wheel: no compiler needed) ---
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --only-binary=:all: -r /tmp/requirements.txt

# --- the image: the virtualenv and the code, no build tools, a user of its own ---
FROM python:3.11-slim

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CROW_BIND=0.0.0.0:5000 \
    CROW_VAR_DIR=/app/var \
    CROW_STATIC_ROOT=/app/static

RUN groupadd --system --gid 10001 crow \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home crow

WORKDIR /app
COPY --from=builder /opt/venv /opt/venv
COPY . .

# The admin's styles are collected here, at build, into /app/static: outside the /app/var volume,
# which would hide them. The code and the styles stay root's, read-only to the server.
RUN python manage.py collectstatic --noinput --verbosity 0 \
    && mkdir -p /app/var \
    && chown 10001:10001 /app/var

USER 10001:10001
EXPOSE 5000
VOLUME /app/var

# 200 (open registry) or 401 (a login is wanted) from /v2/; HTTPS when CROW_TLS_CERT is set.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-m", "crow.healthcheck"]

# crow.start execs the server, which stays PID 1: on SIGTERM granian stops accepting and lets
# in-flight requests finish for CROW_GRACEFUL_TIMEOUT (30s; give `docker stop -t` a bit more).
STOPSIGNAL SIGTERM
CMD ["python", "-m", "crow.start"]
