"""Triggers that announce, on PostgreSQL, every change to what a pull is answered with.

Whatever changes or deletes a tag, a manifest, a blob, a blob's link into a
repository or a repository (the API, the admin, garbage collection, a restore,
a hand-written statement) sends ``NOTIFY crow_changes, '<repository name>'``
in its own transaction, once per repository and transaction; a ``TRUNCATE``
sends ``''`` (everything). Server processes that cache pulls (``crow.fastpath``)
listen and forget what changed. Inserts announce nothing: a cache never holds
an answer that did not exist. SQLite has no ``NOTIFY`` (nothing is cached there).

The SQL is spelled here, frozen, with the tables and columns of the models as
this migration sees them; ``registry.db.notices`` names the channel.
"""

from django.db import migrations

CHANNEL = "crow_changes"

# For each table: how the names of the repositories its changed rows belong to are found,
# from the transition table ``changed``.
_NAMES = {
    "Repository": "SELECT DISTINCT {name} FROM changed",
    "Tag": "SELECT DISTINCT r.{name} FROM {repository} r JOIN changed c ON r.{id} = c.{repository_id}",
    "Manifest": "SELECT DISTINCT r.{name} FROM {repository} r JOIN changed c ON r.{id} = c.{repository_id}",
    "RepositoryBlob": (
        "SELECT DISTINCT r.{name} FROM {repository} r JOIN changed c ON r.{id} = c.{repository_id}"
    ),
    "Blob": (
        "SELECT DISTINCT r.{name} FROM {repository} r JOIN {link} l ON l.{repository_id} = r.{id} "
        "JOIN changed c ON c.{id} = l.{blob_id}"
    ),
}


def _statements(apps, schema_editor) -> list[str]:
    quote = schema_editor.quote_name
    repository = apps.get_model("registry", "Repository")._meta
    link = apps.get_model("registry", "RepositoryBlob")._meta
    names = {
        "repository": quote(repository.db_table),
        "link": quote(link.db_table),
        "name": quote(repository.get_field("name").column),
        "id": quote(repository.pk.column),
        "repository_id": quote(link.get_field("repository").column),
        "blob_id": quote(link.get_field("blob").column),
    }
    statements = [
        f"CREATE OR REPLACE FUNCTION crow_notify_everything() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN PERFORM pg_notify('{CHANNEL}', ''); RETURN NULL; END $$"
    ]
    for model, names_sql in _NAMES.items():
        table = quote(apps.get_model("registry", model)._meta.db_table)
        function = f"crow_notify_{model.lower()}"
        select = names_sql.format(**names)
        statements.append(
            f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN PERFORM pg_notify('{CHANNEL}', changed_names.name) "
            f"FROM ({select}) AS changed_names(name); "
            f"RETURN NULL; END $$"
        )
        # PostgreSQL allows a transition table on a trigger of one event only: one per event.
        for event in ("UPDATE", "DELETE"):
            statements.append(
                f"CREATE TRIGGER {function}_{event.lower()} AFTER {event} ON {table} "
                f"REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
            )
        statements.append(
            f"CREATE TRIGGER {function}_truncate AFTER TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION crow_notify_everything()"
        )
    return statements


def install(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in _statements(apps, schema_editor):
        schema_editor.execute(statement)


def uninstall(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    quote = schema_editor.quote_name
    for model in _NAMES:
        table = quote(apps.get_model("registry", model)._meta.db_table)
        function = f"crow_notify_{model.lower()}"
        for event in ("update", "delete", "truncate"):
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {function}_{event} ON {table}")
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {function}()")
    schema_editor.execute("DROP FUNCTION IF EXISTS crow_notify_everything()")


class Migration(migrations.Migration):
    dependencies = [("registry", "0003_absentreference")]

    operations = [migrations.RunPython(install, uninstall, elidable=False)]
