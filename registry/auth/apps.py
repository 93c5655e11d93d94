import logging

from django.apps import AppConfig
from django.conf import settings

log = logging.getLogger("registry.auth")


class AuthConfig(AppConfig):
    name = "registry.auth"
    label = "registry_auth"
    verbose_name = "Registry access"

    def ready(self) -> None:
        from registry.auth import checks  # noqa: F401 - registers the system checks

        if settings.CROW_AUTH_DISABLED:
            # Every server process says it once, so nobody runs an open registry unknowingly.
            log.warning("CROW_AUTH_DISABLED is set: anyone may pull, push and delete anything")
        else:
            # Nearly every request carries a token to verify: import jwt and cryptography now, where a
            # server that preloads shares them between its workers, and not in a worker's first request.
            # An open registry never needs them (credentials.from_request imports them when it does).
            from registry.auth import tokens  # noqa: F401
