"""Whether the database has every migration applied: commands that read or write the registry's
tables say "run migrate first" instead of failing on a missing table with a raw traceback."""

from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor


def unapplied(database: str = DEFAULT_DB_ALIAS) -> list[str]:
    """The migrations (``app.name``) this code has and the database has not applied."""
    executor = MigrationExecutor(connections[database])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _backwards in plan]


def require_migrated(command: str, database: str = DEFAULT_DB_ALIAS) -> None:
    """Raise ``CommandError`` naming the way out if ``database`` lacks migrations."""
    missing = unapplied(database)
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise CommandError(
            f"{command}: the database lacks {len(missing)} migration(s) ({shown}): "
            "run `python manage.py migrate` first"
        )
