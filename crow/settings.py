"""CRoW settings: every value comes from the environment, read here and only here.

The defaults are the embedded development setup: SQLite and a blob folder
under ``var/``. Production sets ``DATABASE_URL`` (PostgreSQL), a secret key,
``CROW_DEBUG=0`` and ``CROW_ALLOWED_HOSTS``. ``.env.example`` lists every variable.
"""

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from crow import env

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env.string("CROW_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env.boolean("CROW_DEBUG", default=False)
SECRET_KEY = env.secret("CROW_SECRET_KEY", "insecure-development-key-change-me")
ALLOWED_HOSTS = env.path_list("CROW_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env.path_list("CROW_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "registry",
    "registry.auth",
    "crow",  # bounded waits on the database (crow.apps)
]

MIDDLEWARE = [
    "crow.proxies.ForwardedHeaders",  # first: what follows sees the client's scheme, host and address
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "registry.events.middleware.AuditActorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "crow.outages.DatabaseOutageMiddleware",
]

# System checks by id (e.g. crow.W002,crow_auth.W001) that commands no longer print: cron mail stays quiet.
SILENCED_SYSTEM_CHECKS = env.path_list("CROW_SILENCED_SYSTEM_CHECKS", "")

ROOT_URLCONF = "crow.urls"
WSGI_APPLICATION = "crow.wsgi.application"
# /v2/ paths are exact; never redirect "/v2/name/tags/list" to add a slash.
APPEND_SLASH = False

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

DATABASES = {
    "default": dj_database_url.parse(env.string("DATABASE_URL", f"sqlite:///{VAR_DIR / 'crow.sqlite3'}"))
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several server processes share the file: wait for the write lock instead
    # of failing, and take it when a transaction starts so that two writers
    # never deadlock on a lock upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Each thread keeps its connection this long (seconds): opening one costs a request ~5 ms.
    DATABASES["default"]["CONN_MAX_AGE"] = env.integer("CROW_DB_CONN_MAX_AGE", 600, minimum=0)
    # The test database must be a file so that a real server process sees it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
    # SQLite creates the file, not its folder: a fresh checkout has no var/ yet.
    VAR_DIR.mkdir(parents=True, exist_ok=True)
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env.boolean(
    "CROW_DB_PREPARE", default=True
):
    # Parameters bound by the server, and a statement that a connection runs
    # a second time prepared (psycopg's threshold, 5 by default; Django turns
    # it off): PostgreSQL then stops parsing and planning the statements of
    # registry.db and the ORM's repeated queries on every request. Each of a
    # pool's connections prepares for itself: at 5, a fresh server ran a
    # push's statements unprepared for its first few dozen pushes (a manifest
    # PUT's statement costs 0.5-1 ms more so); a statement run once (DDL, a
    # one-off query) is never prepared, so it never takes a cache slot.
    # CROW_DB_PREPARE=0 behind a pooler that cannot keep prepared statements.
    DATABASES["default"].setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=1)
# Seconds to wait for PostgreSQL to accept a connection, and for any one call to it (0: no bound).
CROW_DB_CONNECT_TIMEOUT = env.duration("CROW_DB_CONNECT_TIMEOUT", "5s")
CROW_DB_QUERY_TIMEOUT = env.duration("CROW_DB_QUERY_TIMEOUT", "10s")
# PostgreSQL connections per server process, and how long a request waits for one to be free.
CROW_DB_POOL_SIZE = env.integer("CROW_DB_POOL_SIZE", 8, minimum=1)
CROW_DB_POOL_TIMEOUT = env.duration("CROW_DB_POOL_TIMEOUT", "3s")
if CROW_DB_POOL_TIMEOUT < 1:
    raise ImproperlyConfigured("CROW_DB_POOL_TIMEOUT must be at least 1s: no request gets a connection in 0")
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # The server ends a query or a lock wait past the bound; libpq gives up on a connection attempt,
    # and on a peer that stops acknowledging what it is sent (tcp_user_timeout) or goes silent while
    # idle (keepalives). A peer that acknowledges and never answers is crow.deadlines' watchdog's.
    # Options given in DATABASE_URL (?connect_timeout=...) win.
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    if CROW_DB_CONNECT_TIMEOUT:
        _options.setdefault("connect_timeout", CROW_DB_CONNECT_TIMEOUT)
    if CROW_DB_QUERY_TIMEOUT:
        _bound = f"-c statement_timeout={CROW_DB_QUERY_TIMEOUT}s -c lock_timeout={CROW_DB_QUERY_TIMEOUT}s"
        _options["options"] = f"{_bound} {_options.get('options', '')}".strip()
        _options.setdefault("tcp_user_timeout", CROW_DB_QUERY_TIMEOUT * 1000)
        _options.setdefault("keepalives", 1)
        _options.setdefault("keepalives_idle", 30)
        _options.setdefault("keepalives_interval", 5)
        _options.setdefault("keepalives_count", 3)
    # Connections come from a pool per process (psycopg_pool, through Django): a request takes one at
    # its first query and gives it back when its view is done, or before it waits for a client's
    # bytes (registry.db.connections), so the threads of a process, however many, hold at most
    # CROW_DB_POOL_SIZE connections. A request that finds none free within CROW_DB_POOL_TIMEOUT
    # answers 503 with Retry-After. A connection the server closed is dropped before use (crow.pooled).
    _options["pool"] = {
        "name": "crow",
        "min_size": min(2, CROW_DB_POOL_SIZE),
        "max_size": CROW_DB_POOL_SIZE,
        "timeout": CROW_DB_POOL_TIMEOUT,
        # A connection that failed is retried in the pool's threads with a backoff that doubles from
        # 1 s: after a long outage, minutes would pass before the pool tried again. Give up on it
        # after a second instead: then each request that waits opens one, and the pool is back as
        # soon as the database answers; requests already waiting get a new attempt (crow.pooled).
        "reconnect_timeout": 1,
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Collected by `make run` (collectstatic) and served by WhiteNoise: the admin
# keeps its styles under granian with no web server in front.
STATIC_ROOT = Path(env.string("CROW_STATIC_ROOT", str(VAR_DIR / "static")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Blob storage -----------------------------------------------------------
CROW_STORAGE = env.choice("CROW_STORAGE", "filesystem", ("filesystem", "s3"))
CROW_BLOB_ROOT = Path(env.string("CROW_BLOB_ROOT", str(VAR_DIR / "blobs")))

# --- S3 / R2 blob storage (CROW_STORAGE=s3) ------------------------------------
CROW_S3_BUCKET = env.string("CROW_S3_BUCKET", "")
# e.g. https://<account id>.r2.cloudflarestorage.com; empty for AWS S3.
CROW_S3_ENDPOINT_URL = env.string("CROW_S3_ENDPOINT_URL", "")
CROW_S3_REGION = env.string("CROW_S3_REGION", "auto")
CROW_S3_ACCESS_KEY_ID = env.secret("CROW_S3_ACCESS_KEY_ID")
CROW_S3_SECRET_ACCESS_KEY = env.secret("CROW_S3_SECRET_ACCESS_KEY")
# Keys start with this (e.g. "registry/"), so one bucket can hold other things too.
CROW_S3_PREFIX = env.string("CROW_S3_PREFIX", "")
# Every non-final multipart part has exactly this size (R2's rule); blobs hold at most 10,000 parts.
CROW_S3_PART_SIZE = env.integer("CROW_S3_PART_SIZE", 16 * 1024 * 1024, minimum=5 * 1024 * 1024)
# Blob downloads redirect to the store (true) or are streamed through the server (false).
CROW_S3_REDIRECT = env.boolean("CROW_S3_REDIRECT", default=True)
CROW_S3_PRESIGN_EXPIRY = env.duration("CROW_S3_PRESIGN_EXPIRY", "5m")
# A public host for the bucket (e.g. an R2 custom domain): redirects go there, unsigned.
CROW_S3_PUBLIC_URL = env.string("CROW_S3_PUBLIC_URL", "")

# --- Protocol ------------------------------------------------------------------
# Smallest PATCH chunk clients are asked to send (OCI-Chunk-Min-Length); 0: the store's preference.
CROW_CHUNK_MIN_LENGTH = env.integer("CROW_CHUNK_MIN_LENGTH", 0, minimum=0)
# Bytes read from a request body at a time while streaming a blob.
CROW_STREAM_BUFFER = env.integer("CROW_STREAM_BUFFER", 1024 * 1024, minimum=4096)
# An upload request that stops sending for this long loses its claim on the session.
CROW_UPLOAD_LEASE = env.duration("CROW_UPLOAD_LEASE", "15s")
# Tag list and catalog pages: the size of a page when the client gives no n, and the largest.
CROW_PAGE_SIZE = env.integer("CROW_PAGE_SIZE", 1000, minimum=1)
CROW_MAX_PAGE_SIZE = env.integer("CROW_MAX_PAGE_SIZE", 10000, minimum=1)
CROW_DELETE_ENABLED = env.boolean("CROW_DELETE_ENABLED", default=True)
# Read-only mode, forced on for this process (pulls only); administrators also switch it at run time.
CROW_READ_ONLY = env.boolean("CROW_READ_ONLY", default=False)
# Manifests whose referenced content the repository lacks (registry.sparse): "indexes" accepts an index
# with absent child manifests (one platform copied of several), "all" also image manifests with absent
# config or layers (mirrors, partial copies), "none" refuses both (MANIFEST_BLOB_UNKNOWN).
CROW_SPARSE_MANIFESTS = env.choice("CROW_SPARSE_MANIFESTS", "indexes", ("indexes", "all", "none"))

# --- Garbage collection (manage.py gc) ----------------------------------------------
# What was pushed, linked or stored this recently is never collected: it may belong to a push in flight.
CROW_GC_GRACE_PERIOD = env.duration("CROW_GC_GRACE_PERIOD", "1h")

# --- Pull-through cache (registry.mirror) -------------------------------------------
# Upstream registries mirrored under a prefix: a pull of HOST/docker.io/library/alpine fetches
# library/alpine from the docker.io one on a miss. `python -m crow.start` (manage.py sync_upstreams)
# writes them into the admin's Upstreams, where they are read-only; the admin and the API add others.
# Per upstream, CROW_UPSTREAM_<PREFIX>_USERNAME, _PASSWORD (or _PASSWORD_FILE), _TAG_TRUST,
# _REPOSITORIES and _UNUSED_DAYS, <PREFIX> in capitals with _ for other characters (DOCKER_IO).
CROW_UPSTREAM_TAG_TRUST = env.duration("CROW_UPSTREAM_TAG_TRUST", "10m")
# gc removes mirrored images nobody pulled for this many days (0: never), unless an upstream says otherwise.
CROW_UPSTREAM_UNUSED_DAYS = env.integer("CROW_UPSTREAM_UNUSED_DAYS", 0, minimum=0)
CROW_UPSTREAMS = env.upstreams("CROW_UPSTREAMS", f"{CROW_UPSTREAM_TAG_TRUST}s", CROW_UPSTREAM_UNUSED_DAYS)

# --- Audit log and webhooks (registry.events) --------------------------------------
# gc deletes audit rows (and finished webhook deliveries) older than this many days.
CROW_AUDIT_RETENTION_DAYS = env.integer("CROW_AUDIT_RETENTION_DAYS", 90, minimum=1)
# python -m crow.serve runs the webhook delivery worker as a child process; 0 where it runs apart.
CROW_WEBHOOK_WORKER = env.boolean("CROW_WEBHOOK_WORKER", default=True)
# How long a receiver has to accept a connection and to answer one delivery.
CROW_WEBHOOK_TIMEOUT = env.duration("CROW_WEBHOOK_TIMEOUT", "5s")
# Retries wait 1 s, 2 s, 4 s ... at most this long; a delivery fails for good after
# CROW_WEBHOOK_MAX_ATTEMPTS attempts or once it is CROW_WEBHOOK_MAX_AGE old.
CROW_WEBHOOK_RETRY_MAX = env.duration("CROW_WEBHOOK_RETRY_MAX", "10m")
CROW_WEBHOOK_MAX_ATTEMPTS = env.integer("CROW_WEBHOOK_MAX_ATTEMPTS", 20, minimum=1)
CROW_WEBHOOK_MAX_AGE = env.duration("CROW_WEBHOOK_MAX_AGE", "1d")
# How often an idle worker looks for new events and due deliveries while a webhook is enabled
# (registry.events.wakeups: with none, every 30 s or when one is created).
CROW_WEBHOOK_POLL = env.duration("CROW_WEBHOOK_POLL", "1s")

# --- Fast path (crow.fastpath, under granian on PostgreSQL) ----------------------
# Hot reads answered on the event loop from a per-worker cache kept current by LISTEN/NOTIFY.
CROW_FASTPATH = env.boolean("CROW_FASTPATH", default=True)
# The most bytes of answers (manifests, headers) each worker process keeps.
CROW_FASTPATH_CACHE_BYTES = env.integer("CROW_FASTPATH_CACHE_BYTES", 64 * 1024 * 1024, minimum=0)
# A cached tag is answered only after a NOTIFY round trip on the listening connection (shared by the
# tag reads of the moment): a tag moved on any replica before the request arrived is never served.
# 0: no round trip; a tag moved elsewhere is served until its notice arrives (usually well under 1 ms).
CROW_FASTPATH_FRESH_TAGS = env.boolean("CROW_FASTPATH_FRESH_TAGS", default=True)

# --- Authentication -------------------------------------------------------------
# Open the registry to everyone, anonymous included, to pull, push and delete: local development only.
CROW_AUTH_DISABLED = env.boolean("CROW_AUTH_DISABLED", default=False)
# Public repositories are pullable without credentials (true) or by any authenticated user only (false).
CROW_ANONYMOUS_PULL = env.boolean("CROW_ANONYMOUS_PULL", default=True)
# The token service's name: the "service" of challenges and the "aud" of tokens.
CROW_TOKEN_SERVICE = env.string("CROW_TOKEN_SERVICE", "crow")
CROW_TOKEN_ISSUER = env.string("CROW_TOKEN_ISSUER", "crow")
# The token endpoint's absolute URL in challenges; default: /token on the host the client asked.
CROW_TOKEN_REALM = env.string("CROW_TOKEN_REALM", "")
CROW_TOKEN_TTL = env.duration("CROW_TOKEN_TTL", "5m")
# PEM ECDSA P-256 key that signs tokens, shared by all replicas; without one a key is generated here.
CROW_TOKEN_KEY = env.secret("CROW_TOKEN_KEY")
CROW_TOKEN_KEY_PATH = VAR_DIR / "token-key.pem"
# Failed logins for one account from one address within the window before 429 (never per account alone).
CROW_LOGIN_FAILURES = env.integer("CROW_LOGIN_FAILURES", 10, minimum=1)
CROW_LOGIN_WINDOW = env.duration("CROW_LOGIN_WINDOW", "5m")
# Failed logins from one address, whatever the accounts, within the window before 429.
CROW_LOGIN_ADDRESS_FAILURES = env.integer("CROW_LOGIN_ADDRESS_FAILURES", 5 * CROW_LOGIN_FAILURES, minimum=1)
# Reverse proxies (addresses or CIDRs) whose X-Forwarded-Proto/Host/For are believed (crow.proxies): the
# token realm then names the public https host, and the client's address is the one the proxy saw (for
# login throttling, the audit log, the access log and /metrics' loopback rule alike).
CROW_TRUSTED_PROXIES = env.networks("CROW_TRUSTED_PROXIES")
# The header in which those proxies name the client, if not X-Forwarded-For (e.g. X-Real-IP); believed
# from CROW_TRUSTED_PROXIES only (a system check warns when it is set without them).
CROW_CLIENT_ADDRESS_HEADER = env.string("CROW_CLIENT_ADDRESS_HEADER", "")
# `python -m crow.start` (the container's command) applies migrations before serving; 0 in a fleet,
# where they run once apart (`manage.py migrate`) before the replicas start.
CROW_MIGRATE = env.boolean("CROW_MIGRATE", default=True)
# `manage.py ensure_admin` creates this superuser if it does not exist yet.
CROW_ADMIN_USER = env.string("CROW_ADMIN_USER", "")
CROW_ADMIN_PASSWORD = env.secret("CROW_ADMIN_PASSWORD")

# --- Pull-through cache (registry.mirror) ----------------------------------------------
# An upstream's prefix (e.g. docker.io) served at the root too, as a Docker daemon mirror
# (registry-mirrors): library/alpine, with no local repository of that name, is docker.io/library/alpine.
CROW_MIRROR_ROOT = env.string("CROW_MIRROR_ROOT", "")
# Seconds a process keeps the upstreams it read (changes in the same process, or heard from PostgreSQL's
# notices, apply at once).
CROW_MIRROR_ROUTES_TTL = env.duration("CROW_MIRROR_ROUTES_TTL", "10s")
# Timeouts of requests to upstreams: connecting, and waiting for the next bytes.
CROW_MIRROR_CONNECT_TIMEOUT = env.duration("CROW_MIRROR_CONNECT_TIMEOUT", "5s")
CROW_MIRROR_READ_TIMEOUT = env.duration("CROW_MIRROR_READ_TIMEOUT", "30s")
# Who may make CRoW fetch from an upstream (on a miss): anyone who may pull the name, or only
# authenticated callers (anonymous pulls are then served from what is stored only).
CROW_MIRROR_FETCH = env.choice("CROW_MIRROR_FETCH", "anyone", ("anyone", "authenticated"))
# How long a request waits for another one's download of the same blob before answering 503.
CROW_MIRROR_FETCH_WAIT = env.duration("CROW_MIRROR_FETCH_WAIT", "10m")

# --- Shared cache ------------------------------------------------------------------
# Redis, shared by every server process and replica (e.g. redis://127.0.0.1:6379/0): failed logins are
# counted there. Without it they are counted in the database, and the cache is per-process memory.
CROW_REDIS_URL = env.string("CROW_REDIS_URL", "")
# Prefix of every key in Redis, so that several registries (or tests) can share one server.
CROW_REDIS_KEY_PREFIX = env.string("CROW_REDIS_KEY_PREFIX", "crow")
if CROW_REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CROW_REDIS_URL,
            "KEY_PREFIX": CROW_REDIS_KEY_PREFIX,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Where registry.auth.counters counts failed logins: "cache" (Redis) or "database".
CROW_LOGIN_COUNTERS = "cache" if CROW_REDIS_URL else "database"

# The management API under /api/: a session (the admin's) or a token (Authorization: Token ...).
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: its WWW-Authenticate makes an anonymous API call a 401, not a 403.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "CRoW management API",
    "DESCRIPTION": "Robot accounts, repository visibility and permissions, repositories and tags.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
}

# --- Logs, metrics, health (crow.recording, crow.logformat, crow.monitoring) ----------------------
# plain: lines for a terminal; json: one JSON object per line (time, level, request id, access fields).
CROW_LOG_FORMAT = env.choice("CROW_LOG_FORMAT", "plain", ("plain", "json"))
# One access-log line per request (logger crow.access); /healthz and /readyz only with the second.
CROW_ACCESS_LOG = env.boolean("CROW_ACCESS_LOG", default=True)
CROW_ACCESS_LOG_PROBES = env.boolean("CROW_ACCESS_LOG_PROBES", default=False)
# /metrics for clients other than loopback: with this bearer token; unset, they get 404.
CROW_METRICS_TOKEN = env.secret("CROW_METRICS_TOKEN")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "crow.logformat.RequestIdFilter"}},
    "formatters": {
        "plain": {"()": "crow.logformat.PlainFormatter"},
        "json": {"()": "crow.logformat.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": CROW_LOG_FORMAT,
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": env.string("CROW_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # A 4xx is an answer in this protocol, not a warning: clients HEAD a blob to learn that it is
        # missing before every upload. Server errors (5xx) are still logged, with their traceback.
        "django.request": {"level": "ERROR"},
        # Its own switch (CROW_ACCESS_LOG), whatever the root level.
        "crow.access": {"level": "INFO"},
    },
}
