"""Upstream registries and what CRoW knows of the repositories it mirrors from them."""

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Count, Max
from django.utils import timezone

from registry import patterns, references

DEFAULT_TAG_TRUST_SECONDS = 600


def validate_prefix(value: str) -> None:
    """A prefix is the first part(s) of a repository name: ``docker.io``, ``ghcr.io``, ``mirrors/quay``."""
    if not references.is_name(value):
        raise ValidationError(f"{value!r} is not a repository name prefix (lowercase, e.g. docker.io)")


class UpstreamQuerySet(models.QuerySet):
    def with_mirrored(self) -> "UpstreamQuerySet":
        """Each with ``mirrored_count`` (its mirrored repositories) and ``last_sync`` (their latest sync)."""
        return self.annotate(
            mirrored_count=Count("repositories_mirrored"), last_sync=Max("repositories_mirrored__last_synced")
        )


class Upstream(models.Model):
    """A registry mirrored under ``prefix``: ``prefix/NAME`` in CRoW is ``NAME`` at ``url``."""

    prefix = models.CharField(max_length=255, unique=True, validators=[validate_prefix])
    url = models.URLField(help_text="The upstream's base URL, e.g. https://registry-1.docker.io")
    username = models.CharField(max_length=255, blank=True, default="")
    password = models.CharField(max_length=1024, blank=True, default="", help_text="A password or a token")
    tag_trust_seconds = models.PositiveIntegerField(
        default=DEFAULT_TAG_TRUST_SECONDS,
        help_text="How long a tag fetched from the upstream is served before it is checked again",
    )
    repositories = models.CharField(
        max_length=1024,
        default=patterns.EVERYTHING,
        validators=[patterns.validate_list],
        help_text="Upstream repositories that may be mirrored: names or patterns (library/*)",
    )
    unused_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="gc removes mirrored images not pulled for this many days (empty: never)",
    )
    enabled = models.BooleanField(default=True)
    # Written from CROW_UPSTREAMS at start (registry.mirror.environment): read-only in the admin and the API.
    from_environment = models.BooleanField(default=False, editable=False)
    created = models.DateTimeField(default=timezone.now)

    objects = UpstreamQuerySet.as_manager()

    class Meta:
        ordering = ["prefix"]

    def __str__(self) -> str:
        return f"{self.prefix} → {self.url}"

    @property
    def auth_kind(self) -> str:
        """How CRoW signs in to it, never the secret: ``anonymous``, ``alice (password)``, ``token``."""
        if self.username:
            return f"{self.username} (password)" if self.password else f"{self.username} (no password)"
        return "token" if self.password else "anonymous"


class MirroredRepository(models.Model):
    """A local repository filled from an upstream: when it was last pulled and last synced."""

    repository = models.OneToOneField("registry.Repository", on_delete=models.CASCADE, primary_key=True)
    upstream = models.ForeignKey(Upstream, on_delete=models.CASCADE, related_name="repositories_mirrored")
    last_pulled = models.DateTimeField(null=True, blank=True)
    last_synced = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "mirrored repositories"

    def __str__(self) -> str:
        return f"{self.repository_id} from {self.upstream_id}"


class CheckedTag(models.Model):
    """When a mirrored tag was last fetched or confirmed at its upstream (its trust period starts then)."""

    repository = models.ForeignKey("registry.Repository", on_delete=models.CASCADE, related_name="+")
    tag = models.CharField(max_length=128)
    checked = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            # Also the index of a tag GET's trust check (repository, tag).
            models.UniqueConstraint(fields=["repository", "tag"], name="unique_checked_tag"),
        ]

    def __str__(self) -> str:
        return f"{self.repository_id}:{self.tag} checked {self.checked}"


class BlobFetch(models.Model):
    """A blob being downloaded from an upstream: the claim that makes it one download, whoever asks.

    The request that inserts the row downloads; others wait for the blob to
    appear. ``claimed_until`` is a lease its downloader renews while bytes
    flow: a downloader that died frees the digest for another one.
    """

    digest = models.CharField(max_length=135, unique=True)
    claim = models.UUIDField()
    claimed_until = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.digest} until {self.claimed_until}"
