"""Bounds on the database that every process of CRoW (server or command) gets, wired at start-up."""

from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created


class CrowConfig(AppConfig):
    name = "crow"
    verbose_name = "CRoW"

    def ready(self) -> None:
        connection_created.connect(_bound_waits, dispatch_uid="crow.deadlines")
        connection_created.connect(_check_pooled, dispatch_uid="crow.pooled")


def _bound_waits(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    from crow import deadlines

    if connection.vendor == "postgresql" and settings.CROW_DB_QUERY_TIMEOUT:
        deadlines.install(connection, settings.CROW_DB_QUERY_TIMEOUT)


def _check_pooled(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    from crow import pooled

    if connection.vendor == "postgresql":
        pooled.install(connection)
