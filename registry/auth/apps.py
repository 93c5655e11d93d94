from django.apps import AppConfig
from django.conf import settings


class AuthConfig(AppConfig):
    name = "registry.auth"
    label = "registry_auth"
    verbose_name = "Registry access"

    def ready(self) -> None:
        from registry.auth import checks  # noqa: F401 - registers the system checks

        # An open registry is said once per command by the system check crow_auth.W001, and once
        # per server start by crow.serve (which runs no checks); not here too, which made every
        # command say it twice.
        if not settings.CROW_AUTH_DISABLED:
            # Nearly every request carries a token to verify: import jwt and cryptography now, where a
            # server that preloads shares them between its workers, and not in a worker's first request.
            # An open registry never needs them (credentials.from_request imports them when it does).
            from registry.auth import tokens  # noqa: F401
