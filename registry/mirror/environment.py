"""Upstreams from the environment (``CROW_UPSTREAMS``), written into the ``Upstream`` table at start.

The environment wins for the prefixes it names: their rows take its values
(URL, credentials, trust period, patterns, unused days), are enabled, and are
marked ``from_environment`` (read-only in the admin and the API, where an edit
would be undone at the next start). A row the environment no longer names is
disabled and handed over to the admin (``from_environment`` cleared): its
mirrored repositories stay until an operator deletes the upstream. Rows
created in the admin or the API are left alone.
"""

from dataclasses import dataclass, field

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q

from registry import patterns
from registry.mirror.models import Upstream, validate_prefix

VARIABLE = "CROW_UPSTREAMS"


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)  # no longer in the environment: disabled

    def summary(self) -> str:
        """``Upstreams from CROW_UPSTREAMS: docker.io created, ghcr.io unchanged``, or '' for none."""
        parts = [
            f"{prefix} {what}"
            for what, prefixes in (
                ("created", self.created),
                ("updated", self.updated),
                ("unchanged", self.unchanged),
                ("no longer listed: disabled, now managed in the admin", self.released),
            )
            for prefix in prefixes
        ]
        return f"Upstreams from {VARIABLE}: {', '.join(parts)}" if parts else ""


def validate(configured: dict[str, dict]) -> None:
    """What the model checks and ``crow.env`` cannot (the name grammar, patterns), naming the variable."""
    for prefix, fields in configured.items():
        try:
            validate_prefix(prefix)
            patterns.validate_list(fields["repositories"])
        except ValidationError as exc:
            raise ImproperlyConfigured(f"{VARIABLE}: {prefix}: {' '.join(exc.messages)}") from None


def sync(configured: dict[str, dict]) -> SyncReport:
    """Make the table agree with ``configured`` (``settings.CROW_UPSTREAMS``: prefix -> field values)."""
    validate(configured)
    report = SyncReport()
    with transaction.atomic():
        rows = Upstream.objects.select_for_update().filter(
            Q(prefix__in=configured) | Q(from_environment=True)
        )
        existing = {row.prefix: row for row in rows}
        for prefix, fields in configured.items():
            wanted = {**fields, "enabled": True, "from_environment": True}
            row = existing.get(prefix)
            if row is None:
                _create(prefix, wanted)
                report.created.append(prefix)
            elif _differs(row, wanted):
                _save(row, wanted)
                report.updated.append(prefix)
            else:
                report.unchanged.append(prefix)
        report.released = sorted(prefix for prefix in existing if prefix not in configured)
        for prefix in report.released:
            _save(existing[prefix], {"from_environment": False, "enabled": False})
    return report


def _create(prefix: str, wanted: dict) -> None:
    """A new row; a replica starting at the same moment may have written it first: then it is theirs."""
    try:
        with transaction.atomic():
            Upstream.objects.create(prefix=prefix, **wanted)
    except IntegrityError:
        _save(Upstream.objects.select_for_update().get(prefix=prefix), wanted)


def _save(row: Upstream, values: dict) -> None:
    """Saved, not updated in bulk: the signals that tell the routing's caches (``registry.mirror``) fire."""
    for name, value in values.items():
        setattr(row, name, value)
    row.save(update_fields=list(values))


def _differs(row: Upstream, wanted: dict) -> bool:
    return any(getattr(row, name) != value for name, value in wanted.items())
