"""Gunicorn settings for CRoW, from the environment (see ``.env.example``).

gthread workers: the main thread of each worker heartbeats to the arbiter
while request threads stream blobs, so a long upload or download is never
mistaken for a hung worker and killed by ``timeout``.
"""

from crow import env

wsgi_app = "crow.wsgi:application"

bind = [env.string("CROW_BIND", "") or f"127.0.0.1:{env.integer('PORT', 5000, minimum=1)}"]
worker_class = "gthread"
workers = env.integer("CROW_WORKERS", 3, minimum=1)
threads = env.integer("CROW_THREADS", 4, minimum=1)
# Only a worker whose main loop stops heartbeating for this long is restarted.
timeout = 30
graceful_timeout = 30
keepalive = 5

# One line per request on stdout; CROW_ACCESS_LOG=0 saves its cost (see .env.example).
accesslog = "-" if env.boolean("CROW_ACCESS_LOG", default=True) else None
errorlog = "-"
loglevel = env.string("CROW_LOG_LEVEL", "info").lower()

# Gunicorn's control socket defaults to one path per user: several servers on
# one machine (tests, `make run`) would fight over it, and CRoW does not use it.
control_socket_disable = True
