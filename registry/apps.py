from django.apps import AppConfig
from django.conf import settings


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Registry"

    def ready(self) -> None:
        from registry import checks  # noqa: F401 - registers the system checks
        from registry.events import signals, wakeups
        from registry.mirror import routing  # noqa: F401 - connects its cache's invalidation to Upstream rows

        signals.connect()  # access rules changed: audit rows
        wakeups.connect()  # webhooks changed: idle delivery workers wake

        if settings.CROW_STORAGE == "s3":
            # The store is built by the first request that needs it (registry.storage.blob_store); its
            # module imports boto3 and botocore (~11 MiB, 0.1 s): now, where a server that preloads shares
            # them between its workers, and not in a worker's first request. The filesystem store never
            # imports them.
            from registry.storage import s3  # noqa: F401
