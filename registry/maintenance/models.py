"""The read-only switch: one row that every replica reads (``registry.maintenance.readonly``)."""

from django.db import models

# The one row's primary key.
SWITCH_ID = 1


class ReadOnlySwitch(models.Model):
    """Whether an administrator switched the registry read-only, who did and when.

    ``CROW_READ_ONLY=1`` in a process's environment forces the mode on in that
    process whatever this row says; the row is what changes at run time.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=SWITCH_ID, editable=False)
    on = models.BooleanField(default=False)
    # A username, or "system" for manage.py read_only.
    changed_by = models.CharField(max_length=160, blank=True, default="")
    changed = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "read-only switch"

    def __str__(self) -> str:
        return "read-only" if self.on else "read-write"
