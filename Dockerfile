# CRoW in a container: granian (python -m crow.serve) on port 5000.
# Without configuration it runs the embedded default, SQLite and blobs under the
# /app/var volume; set DATABASE_URL, CROW_SECRET_KEY etc. (see .env.example) for production.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CROW_BIND=0.0.0.0:5000

WORKDIR /app

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
RUN useradd --system --user-group --uid 10001 --home-dir /app crow \
    && mkdir -p /app/var \
    && python manage.py collectstatic --noinput --verbosity 0 \
    && chown -R crow:crow /app/var

USER crow
EXPOSE 5000
VOLUME /app/var

# Migrations are idempotent and quick: applying them at start keeps the embedded
# database and a fresh PostgreSQL usable without a separate step.
CMD ["sh", "-c", "python manage.py migrate --noinput && exec python -m crow.serve"]
