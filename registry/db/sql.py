"""Statements built from the models' ``_meta``, and the ways to run one.

Every table and column name in ``registry.db`` comes from here: ``Names``
spells a model's columns (``db_column`` included) and ``Insert`` writes every
concrete column of a row, filling what the caller does not give from the
field's own default (``get_default()``: ``timezone.now`` for ``created``, ``0``
for an offset). A field added to a model is in the next statement built, with
its default, instead of a hand-written list that breaks at run time
(``tests/test_db_statements.py`` holds the statements to that).

Values are prepared for the database by their model field (a UUID is ``uuid``
on PostgreSQL and hex text on SQLite, a JSON value ``jsonb`` or text). The
statements are built once per process and portable between PostgreSQL and
SQLite; with ``CROW_DB_PREPARE`` psycopg prepares the ones run often.
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.db import connection, models
from django.db.models import Field


def quoted(name: str) -> str:
    return connection.ops.quote_name(name)


def field(model: type[models.Model], name: str) -> Field:
    return model._meta.get_field(name)  # type: ignore[return-value]


def prepared(model: type[models.Model], name: str, value: Any) -> Any:
    """``value`` as field ``name`` of ``model`` sends it to the database."""
    return field(model, name).get_db_prep_value(value, connection)


class Names:
    """A model's table and columns as SQL: ``Names(Manifest, "m").digest`` is ``m."digest"``;
    ``str()`` is the table with its alias, for ``FROM`` and ``JOIN``; ``of(...)`` a column list."""

    def __init__(self, model: type[models.Model], alias: str = "") -> None:
        self._model = model
        self._alias = alias

    def __str__(self) -> str:
        table = quoted(self._model._meta.db_table)
        return f"{table} {self._alias}" if self._alias else table

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        column = quoted(field(self._model, name).column)
        return f"{self._alias}.{column}" if self._alias else column

    def of(self, *names: str) -> str:
        return ", ".join(getattr(self, name) for name in names)


def unique_fields(model: type[models.Model], constraint: str) -> tuple[str, ...]:
    """The fields of a unique field or ``UniqueConstraint`` (by name), for ``ON CONFLICT (...)``."""
    for rule in model._meta.constraints:
        if isinstance(rule, models.UniqueConstraint) and rule.name == constraint:
            return tuple(rule.fields)
    if not field(model, constraint).unique:
        raise LookupError(f"{model.__name__} has no unique field or constraint {constraint}")
    return (constraint,)


def ignore_conflict(model: type[models.Model], constraint: str) -> str:
    return f"ON CONFLICT ({Names(model).of(*unique_fields(model, constraint))}) DO NOTHING"


class Insert:
    """An INSERT of a whole row of ``model``: every concrete column but a primary key the database
    numbers, in field order; what the caller does not give takes the field's default."""

    def __init__(self, model: type[models.Model]) -> None:
        self.model = model
        self.fields = [
            each
            for each in model._meta.concrete_fields
            if not (each.primary_key and isinstance(each, models.AutoField))
        ]
        self.table = Names(model)
        self.columns = ", ".join(quoted(each.column) for each in self.fields)

    def values(self, rows: int = 1) -> str:
        """``INSERT ... VALUES (%s, ...), ...`` for ``rows`` rows."""
        row = "(" + ", ".join(self._placeholders({})) + ")"
        return f"INSERT INTO {self.table} ({self.columns}) VALUES " + ", ".join([row] * rows)

    def select(self, computed: Mapping[str, str], source: str) -> str:
        """``INSERT ... SELECT``: columns ``computed`` (by attname) from ``source`` (its ``FROM ...``)."""
        values = ", ".join(self._placeholders(computed))
        return f"INSERT INTO {self.table} ({self.columns}) SELECT {values} {source}"

    def update_others(self, constraint: str) -> str:
        """``ON CONFLICT (...) DO UPDATE``: the row replaces every column outside the constraint."""
        keys = unique_fields(self.model, constraint)
        others = [quoted(each.column) for each in self.fields if each.name not in keys]
        sets = ", ".join(f"{column} = EXCLUDED.{column}" for column in others)
        conflict = Names(self.model).of(*keys)
        return f"ON CONFLICT ({conflict}) DO UPDATE SET {sets}"

    def row(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Every column's value by attname: ``given``, else the field's default (evaluated once)."""
        row = {}
        for each in self.fields:
            if each.attname in given:
                row[each.attname] = given[each.attname]
            elif each.has_default() or each.null:
                row[each.attname] = each.get_default()
            else:
                raise TypeError(f"{self.model.__name__}.{each.name} has no default and was not given")
        return row

    def params(self, rows: Iterable[Mapping[str, Any]], computed: Iterable[str] = ()) -> list[Any]:
        """The rows' values, prepared, in column order (but the ``computed`` ones)."""
        skip = set(computed)
        return [
            each.get_db_prep_save(row[each.attname], connection)
            for row in rows
            for each in self.fields
            if each.attname not in skip
        ]

    def select_params(self, given: Mapping[str, Any], computed: Mapping[str, Sequence[Any]]) -> list[Any]:
        """The parameters of ``select(...)`` for one row: each column's value (``given``, else its
        default), prepared, or the parameters of its ``computed`` expression, in column order."""
        values = iter(self.params([self.row({**dict.fromkeys(computed), **given})], computed=computed))
        params: list[Any] = []
        for each in self.fields:
            params += computed[each.attname] if each.attname in computed else [next(values)]
        return params

    def _placeholders(self, computed: Mapping[str, str]) -> list[str]:
        return [computed.get(each.attname, "%s") for each in self.fields]


def placeholders(count: int) -> str:
    return ", ".join(["%s"] * count)


def one(sql: str, params: Sequence[Any]) -> tuple | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def rows(sql: str, params: Sequence[Any]) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def rowcount(sql: str, params: Sequence[Any]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
