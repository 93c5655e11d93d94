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
