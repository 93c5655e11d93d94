"""Failed logins, counted per client address and per address and account, in a store every
server process shares (``registry.auth.counters``: the database, or Redis when configured).

- ``CROW_LOGIN_FAILURES`` failures for one account from one address within
  ``CROW_LOGIN_WINDOW`` refuse that account's logins from that address (429
  with ``Retry-After``) until the window ends, even with the right password;
- ``CROW_LOGIN_ADDRESS_FAILURES`` failures from one address, whatever the
  accounts, refuse every login from it: password spraying.

Never per account alone: whoever fails logins for someone else's account,
robot or user, locks out their own address, never the account's owner logging
in from theirs. A window starts with its key's first failure. Keys are hashed:
usernames are client input, and so may an address header be.
"""

import hashlib

from django.conf import settings

from registry import errors
from registry.auth import counters
from registry.errors import RegistryError


def _key(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _limits(address: str, username: str) -> dict[str, int]:
    """Each counter's key and the failures it allows."""
    limits = {_key("address", address): settings.CROW_LOGIN_ADDRESS_FAILURES}
    if username:
        limits[_key("account", address, username)] = settings.CROW_LOGIN_FAILURES
    return limits


def check(address: str, username: str) -> None:
    """Raise TOOMANYREQUESTS if this address, or this account from this address, failed too often lately."""
    limits = _limits(address, username)
    counts = counters.chosen().counts(list(limits))
    if any(counts.get(key, 0) >= limit for key, limit in limits.items()):
        raise RegistryError(
            errors.TOOMANYREQUESTS,
            "too many failed logins, retry later",
            headers={"Retry-After": str(settings.CROW_LOGIN_WINDOW)},
        )


def failed(address: str, username: str) -> None:
    store = counters.chosen()
    for key in _limits(address, username):
        store.add(key, settings.CROW_LOGIN_WINDOW)
