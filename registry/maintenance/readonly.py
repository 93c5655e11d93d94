"""Read-only mode: pulls keep working, pushes, deletes and uploads are refused, for a maintenance.

The mode is on when ``CROW_READ_ONLY=1`` is in this process's environment
(forced: only a restart without it ends it) or when an administrator switched
it on at run time (``manage.py read_only on``, the admin's "Read-only mode"
page, ``PUT /api/read-only/``): the switch is one database row
(``ReadOnlySwitch``) so that every replica obeys it.

Each process reads the row at most once every ``REFRESH`` seconds, and only
where the mode matters (a /v2/ request that could write, an admin page's
banner and delete buttons, /readyz, /metrics, the commands): a change reaches
every replica within that time on any database, with no query per request.
PostgreSQL's change notices (``crow.notices``) live on the fast path's event
loop, which only reads; a second listening connection per worker for the few
requests that write was not worth it. The process that switches sees its
change at once.

Refused writes answer 405 ``UNSUPPORTED``. The reference registry in its
read-only mode answers 405 too (Debian's docker-registry 2.8.2: its write
handlers are not registered, so a push meets a plain-text "Method not allowed"
with ``Allow: GET, HEAD``); CRoW keeps the status and the ``Allow`` header and
answers the spec's JSON error saying why. ``DENIED`` (403) would tell a client
its credentials lack a permission, and docker and podman then suggest logging
in again, which cannot help; a 405 is not retried either.
"""

import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from registry import errors, metrics
from registry.errors import RegistryError
from registry.events import audit
from registry.events.models import READ_ONLY_OFF, READ_ONLY_ON
from registry.maintenance.models import SWITCH_ID, ReadOnlySwitch

# Seconds a process trusts the switch's row it read.
REFRESH = 1.0
MESSAGE = (
    "the registry is read-only for maintenance: pulls work, pushes and deletes are refused until it ends"
)
ENVIRONMENT = "CROW_READ_ONLY=1 in the server's environment"


@dataclass(frozen=True)
class State:
    switched: bool  # the database's switch
    forced: bool  # CROW_READ_ONLY in this process's environment
    changed_by: str = ""
    changed: datetime | None = None

    @property
    def on(self) -> bool:
        return self.switched or self.forced

    def describe(self) -> str:
        """One line for the admin, the command and /readyz: whether, and by what."""
        if not self.on:
            return "read-write"
        causes = [ENVIRONMENT] if self.forced else []
        if self.switched:
            when = f" at {self.changed:%Y-%m-%d %H:%M:%S %Z}" if self.changed else ""
            causes.append(f"switched on by {self.changed_by or 'someone'}{when}")
        return f"read-only ({'; '.join(causes)})"


class ReadOnly(RegistryError):
    """A write refused because the registry is read-only: 405 ``UNSUPPORTED`` (see the module), with
    the methods that still work where it was asked (``allow``, for the ``Allow`` header)."""

    def __init__(self, allow: str = "GET, HEAD") -> None:
        super().__init__(errors.UNSUPPORTED, MESSAGE, headers={"Allow": allow})


# (monotonic time read, row's state) of this process; None until read or after ``forget``.
_cached: tuple[float, bool, str, datetime | None] | None = None


def state() -> State:
    """The mode now, as this process knows it (the row at most ``REFRESH`` seconds old)."""
    global _cached
    cached = _cached
    if cached is None or time.monotonic() - cached[0] >= REFRESH:
        row = ReadOnlySwitch.objects.filter(id=SWITCH_ID).values_list("on", "changed_by", "changed").first()
        cached = _cached = (time.monotonic(), *(row or (False, "", None)))
    current = State(
        switched=cached[1], forced=settings.CROW_READ_ONLY, changed_by=cached[2], changed=cached[3]
    )
    metrics.read_only.set(1 if current.on else 0)
    return current


def is_on() -> bool:
    return state().on


def check_writable(allow: str = "GET, HEAD") -> None:
    """Raise ``ReadOnly`` if the registry is read-only now; ``allow``: what still works there."""
    if is_on():
        raise ReadOnly(allow)


def refusal(command: str) -> str | None:
    """Why ``manage.py command`` should not run now (the registry is read-only), or None."""
    current = state()
    if not current.on:
        return None
    return (
        f"the registry is {current.describe()}: {command} changes registry content, which a maintenance"
        f" must not see change under it; end the read-only mode first, or run {command} --force"
    )


def switch(on: bool) -> State:
    """Turn the switch on or off as the current audit actor (recorded); the state after.

    The environment's ``CROW_READ_ONLY`` is not changed: with it set, the mode stays on.
    """
    actor = audit.current()
    with transaction.atomic():
        ReadOnlySwitch.objects.update_or_create(
            id=SWITCH_ID, defaults={"on": on, "changed_by": actor.name, "changed": timezone.now()}
        )
        audit.record(READ_ONLY_ON if on else READ_ONLY_OFF, actor)
    forget()
    return state()


def forget() -> None:
    """Read the row again at the next ``state()`` (tests, and after this process switched)."""
    global _cached
    _cached = None
