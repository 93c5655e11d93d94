"""``python -m crow.start``: the container's command, from a fresh volume to a serving registry.

In order:

1. The state directories (``CROW_VAR_DIR``, the blob root on the filesystem, the SQLite file's
   folder) must be writable by this process: a host directory mounted on ``/app/var`` that the
   image's user (uid 10001) cannot write ends here with one line naming the path, the uid and
   the gid, and an exit status of 1, not a traceback from deep inside SQLite.
2. The system checks (``manage.py check``): an error (``crow.E001``, no secret key with
   PostgreSQL) stops it with its hint. Then ``migrate --noinput``, unless ``CROW_MIGRATE=0``: in
   a fleet, run migrations once (compose.yaml's ``migrate`` service) and the replicas with it off.
3. ``ensure_admin``: the first administrator from ``CROW_ADMIN_USER`` / ``CROW_ADMIN_PASSWORD``;
   ``sync_upstreams``: the pull-through cache's upstreams from ``CROW_UPSTREAMS``.
4. ``exec python -m crow.serve``: the server replaces this process (PID 1 in a container), so
   the container's SIGTERM reaches granian, which lets in-flight requests finish.
"""

import os
import sys
import tempfile
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError

SERVE = [sys.executable, "-m", "crow.serve"]


class NotWritable(Exception):
    """A directory the registry keeps its state in cannot be written by this process."""


def state_directories() -> list[Path]:
    """The directories the server writes to, from the settings (importing them creates var/ for SQLite)."""
    from django.conf import settings

    directories = [Path(settings.VAR_DIR)]
    if settings.CROW_STORAGE == "filesystem":
        directories.append(Path(settings.CROW_BLOB_ROOT))
    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        directories.append(Path(database["NAME"]).parent)
    return list(dict.fromkeys(directories))


def check_writable(directory: Path) -> None:
    """Create ``directory`` if needed and a file in it: what the server will do, tried before it does."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise NotWritable(_not_writable(directory, exc.strerror or str(exc))) from None


def check_writable_file(path: Path) -> None:
    """An existing file (the SQLite database) must be writable too: a root-owned one is not."""
    if path.exists() and not os.access(path, os.W_OK):
        raise NotWritable(_not_writable(path, "Permission denied"))


def _not_writable(directory: Path, reason: str) -> str:
    uid, gid = os.getuid(), os.getgid()
    return (
        f"crow: {directory} is not writable by uid {uid} gid {gid} ({reason}). "
        f"Give that user the directory (on the host: chown -R {uid}:{gid} DIR for the directory "
        f"mounted there), or run the container as the directory's owner (--user UID:GID)."
    )


def prepare() -> None:
    """Steps 1 to 3: check the state directories and the configuration, migrate, create the first admin,
    write the upstreams."""
    import django
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    try:
        settings.VAR_DIR  # noqa: B018 - loads the settings, which create var/ for SQLite
    except PermissionError as exc:
        raise NotWritable(_not_writable(Path(exc.filename or "?"), exc.strerror or str(exc))) from None
    for directory in state_directories():
        check_writable(directory)
    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        check_writable_file(Path(database["NAME"]))
    django.setup()
    # The system checks, once (call_command skips them in what follows): errors stop the start here,
    # with their ids and hints; warnings are printed and the start goes on.
    call_command("check")
    if settings.CROW_MIGRATE:
        call_command("migrate", interactive=False, verbosity=1)
    call_command("ensure_admin")
    call_command("sync_upstreams")
    connections.close_all()  # the server opens its own; none is inherited across exec


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crow.settings")
    try:
        prepare()
    except (NotWritable, ImproperlyConfigured, CommandError) as exc:
        raise SystemExit(str(exc)) from None
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(SERVE[0], SERVE)


if __name__ == "__main__":
    main()
