"""Registry metadata: repositories, content-addressed blobs, manifests, tags, uploads.

Blobs are global (one row and one stored object per digest); a repository sees
a blob only through a ``RepositoryBlob`` link, made by a push, a mount or a
manifest that references it. Manifests keep the exact bytes as pushed.

The protocol's own reads and writes (a pull's lookups, a push's statements)
are hand-written SQL in ``registry.db``, one function each, built from these
models' ``_meta``; the managers here hold the ORM queries that have no such
twin (the admin's, the API's, paging).
"""

import re
import uuid

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Count, Expression, Max, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from registry import patterns


def _total(rows: models.QuerySet, group: str, field: str) -> Subquery:
    """A correlated subquery: the sum of ``field`` over ``rows`` (one group), or NULL."""
    return Subquery(rows.order_by().values(group).annotate(total=Sum(field)).values("total")[:1])


def _zero(expression: Expression) -> Coalesce:
    return Coalesce(expression, Value(0), output_field=models.BigIntegerField())


def _usage_subqueries() -> dict[str, Expression]:
    """Stored bytes (unique blobs), tag count and last push of the repository ``OuterRef("pk")``."""
    tags = Tag.objects.filter(repository=OuterRef("pk")).order_by()
    links = RepositoryBlob.objects.filter(repository=OuterRef("pk"))
    return {
        "stored_bytes": _zero(_total(links, "repository", "size")),
        "tag_count": _zero(Subquery(tags.values("repository").annotate(n=Count("pk")).values("n")[:1])),
        # Index used: tag_repository_updated.
        "last_push": Subquery(tags.order_by("-updated").values("updated")[:1]),
    }


USAGE = ("stored_bytes", "tag_count", "last_push")


class RepositoryQuerySet(models.QuerySet["Repository"]):
    def usage(self, ids: list[int], figures: tuple[str, ...] = USAGE) -> dict[int, dict]:
        """``figures`` (stored bytes, tag count, last push) of the repositories ``ids``, in one query.

        Correlated subqueries for a page's rows only: as annotations of the
        page's query they would be computed for every row an OFFSET skips.
        """
        subqueries = _usage_subqueries()
        rows = self.filter(pk__in=ids).annotate(**{f: subqueries[f] for f in figures}).values("pk", *figures)
        return {row.pop("pk"): row for row in rows}

    def sorted_by(self, figures: list[str]) -> "RepositoryQuerySet":
        """Annotated with ``figures`` (of ``USAGE``) to sort every repository by them.

        The first is one join and GROUP BY over the links or the tags (a hash
        aggregate, several times faster than a subquery per repository at 50,000);
        the others, which only break ties, are subqueries: a second join would
        multiply the first one's rows.
        """
        aggregates = {
            "stored_bytes": _zero(Sum("repositoryblob__size")),
            "tag_count": Count("tags"),
            "last_push": Max("tags__updated"),
        }
        subqueries = _usage_subqueries()
        first, *others = figures
        return self.annotate(
            **{first: aggregates[first]}, **{figure: subqueries[figure] for figure in others}
        )

    def having_manifest(self, digest_prefix: str) -> "RepositoryQuerySet":
        """The repositories holding a manifest whose digest starts with ``digest_prefix``."""
        return self.filter(
            pk__in=Manifest.objects.filter(digest__startswith=digest_prefix).values("repository_id")
        )


class Repository(models.Model):
    name = models.CharField(max_length=255, unique=True)
    created = models.DateTimeField(default=timezone.now)
    blobs = models.ManyToManyField("Blob", through="RepositoryBlob", related_name="repositories")

    objects = RepositoryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "repositories"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Blob(models.Model):
    digest = models.CharField(max_length=135, unique=True)
    size = models.BigIntegerField()
    # Where the blob store keeps the bytes (see registry.storage.base).
    key = models.CharField(max_length=512)
    created = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.digest


class RepositoryBlob(models.Model):
    repository = models.ForeignKey(Repository, on_delete=models.CASCADE)
    blob = models.ForeignKey(Blob, on_delete=models.CASCADE)
    created = models.DateTimeField(default=timezone.now)
    # The blob's size, copied by a trigger on insert whatever wrote the row (migration 0005): a blob's
    # size never changes, so a repository's stored bytes sum one table, without a join per link.
    size = models.BigIntegerField(default=0, editable=False)

    class Meta:
        # The unique index also serves "is this blob in this repository" (blob HEAD/GET).
        constraints = [models.UniqueConstraint(fields=["repository", "blob"], name="unique_repository_blob")]
        indexes = [
            # A repository's stored bytes, and the repositories by size (the admin): index-only sums.
            models.Index(fields=["repository", "size"], name="repository_blob_size"),
        ]

    def __str__(self) -> str:
        return f"{self.repository_id} -> {self.blob_id}"


def image_size(manifest: OuterRef) -> Coalesce:
    """The bytes an image pulls: its config and layers, or for an index the sum of its children's."""
    own = _total(ManifestBlob.objects.filter(manifest_id=manifest), "manifest_id", "blob__size")
    children = _total(
        ManifestChild.objects.filter(parent_id=manifest), "parent_id", "child__manifestblob__blob__size"
    )
    return _zero(own) + _zero(children)


class ManifestManager(models.Manager["Manifest"]):
    def with_image_size(self) -> models.QuerySet["Manifest"]:
        return self.get_queryset().annotate(image_size=image_size(OuterRef("pk")))

    def image_sizes(self, ids: list[int]) -> dict[int, int]:
        """The image size of each manifest of ``ids``, in one query: a page's, never the table's."""
        sized = self.filter(pk__in=ids).annotate(image_size=image_size(OuterRef("pk")))
        return dict(sized.values_list("pk", "image_size"))

    def referrers(self, name: str, subject: str, artifact_type: str | None) -> models.QuerySet["Manifest"]:
        found = self.filter(repository__name=name, subject=subject).order_by("digest")
        if artifact_type:
            found = found.filter(artifact_type=artifact_type)
        return found.defer("content")


class Manifest(models.Model):
    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="manifests")
    digest = models.CharField(max_length=135)
    media_type = models.CharField(max_length=255)
    artifact_type = models.CharField(max_length=255, blank=True, default="")
    size = models.BigIntegerField()
    # The exact bytes as pushed: the digest is of these bytes, never re-serialised.
    content = models.BinaryField()
    subject = models.CharField(max_length=135, blank=True, default="")
    annotations = models.JSONField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)
    blobs = models.ManyToManyField(Blob, through="ManifestBlob", related_name="manifests")
    children = models.ManyToManyField(
        "self", through="ManifestChild", symmetrical=False, related_name="parents"
    )

    objects = ManifestManager()

    class Meta:
        constraints = [
            # Also the index of "GET /v2/<name>/manifests/<digest>".
            models.UniqueConstraint(fields=["repository", "digest"], name="unique_repository_manifest"),
        ]
        indexes = [
            # The referrers API: manifests of a repository whose subject is a digest.
            models.Index(
                fields=["repository", "subject"], name="manifest_referrers", condition=~Q(subject="")
            ),
            # The admin's search by digest prefix (LIKE 'sha256:3f2a%'), anywhere: on PostgreSQL the
            # unique index above cannot serve a LIKE unless the column's collation is C.
            models.Index(fields=["digest"], name="manifest_digest_prefix", opclasses=["varchar_pattern_ops"]),
        ]

    def __str__(self) -> str:
        return f"{self.repository.name}@{self.digest}"


class ManifestBlob(models.Model):
    """A blob (config or layer) that a manifest references."""

    manifest = models.ForeignKey(Manifest, on_delete=models.CASCADE)
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["manifest", "blob"], name="unique_manifest_blob")]

    def __str__(self) -> str:
        return f"{self.manifest_id} -> blob {self.blob_id}"


class ManifestChild(models.Model):
    """A manifest that an index (or manifest list) references."""

    parent = models.ForeignKey(Manifest, on_delete=models.CASCADE, related_name="+")
    child = models.ForeignKey(Manifest, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["parent", "child"], name="unique_manifest_child")]

    def __str__(self) -> str:
        return f"{self.parent_id} -> manifest {self.child_id}"


class AbsentReferenceManager(models.Manager["AbsentReference"]):
    def blobs(self) -> models.QuerySet["AbsentReference"]:
        return self.filter(kind=AbsentReference.BLOB)


class AbsentReference(models.Model):
    """Content a manifest references that its repository lacked when it was pushed (``registry.sparse``).

    An absent child manifest becomes a ``ManifestChild`` row when it is pushed
    (and this row goes); an absent blob stays here, and ``gc`` keeps any blob
    whose digest a row names.
    """

    BLOB, MANIFEST = "blob", "manifest"

    manifest = models.ForeignKey(Manifest, on_delete=models.CASCADE, related_name="absent_references")
    digest = models.CharField(max_length=135)
    kind = models.CharField(max_length=8, choices=[(BLOB, "blob"), (MANIFEST, "manifest")])

    objects = AbsentReferenceManager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["manifest", "digest"], name="unique_absent_reference")]
        indexes = [
            # A child manifest's push resolves its parents' rows by digest; gc keeps blobs by digest.
            models.Index(fields=["digest"], name="absent_reference_digest"),
        ]

    def __str__(self) -> str:
        return f"{self.manifest_id} -> absent {self.kind} {self.digest}"


class TagManager(models.Manager["Tag"]):
    def latest(self, n: int) -> models.QuerySet["Tag"]:
        """The ``n`` tags pushed last, anywhere. Index used: tag_updated."""
        return self.select_related("repository", "manifest").order_by("-updated")[:n]

    def page(self, repository: Repository, n: int, last: str | None) -> list[str]:
        names = self.filter(repository=repository).order_by("name").values_list("name", flat=True)
        if last:
            names = names.filter(name__gt=last)
        return list(names[:n])


class Tag(models.Model):
    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=128)
    manifest = models.ForeignKey(Manifest, on_delete=models.CASCADE, related_name="tags")
    updated = models.DateTimeField(default=timezone.now)

    objects = TagManager()

    class Meta:
        constraints = [
            # Also the index of the tags list (ordered by name) and of GET by tag.
            models.UniqueConstraint(fields=["repository", "name"], name="unique_repository_tag"),
        ]
        indexes = [
            # A repository's last push, and its tags sorted by push time (the admin).
            models.Index(fields=["repository", "updated"], name="tag_repository_updated"),
            # The latest pushes anywhere (the admin's dashboard).
            models.Index(fields=["updated"], name="tag_updated"),
        ]

    def __str__(self) -> str:
        return f"{self.repository.name}:{self.name}"


class Upload(models.Model):
    """A blob upload session. All of its state is here, so any server process can take the next chunk.

    A request that appends claims the session first (``claim`` and
    ``claimed_until``) with one conditional UPDATE, streams, then stores the new
    offset and hash state and releases the claim with another. Two requests
    can never write the same session at once, and no database transaction is
    held open while bytes stream in. A claim whose holder died expires.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="uploads")
    offset = models.BigIntegerField(default=0)
    hash_state = models.BinaryField()
    storage_state = models.JSONField(default=dict)
    claim = models.UUIDField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            # purge_uploads: sessions not touched for a while.
            models.Index(fields=["updated"], name="upload_updated"),
        ]

    def __str__(self) -> str:
        return f"{self.repository.name} upload {self.id.hex}"


def validate_regex(value: str) -> None:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValidationError(f"not a regular expression: {exc}") from None


class RetentionRule(models.Model):
    """What ``manage.py gc`` removes by itself in the repositories ``pattern`` covers.

    Of the tags whose name matches ``tag_pattern`` in full, a tag goes when it is
    not among the newest ``keep_latest`` and was last pushed more than
    ``max_age_days`` ago (either limit alone when the other is empty), unless
    ``protected_tags`` of any rule covering the repository matches it.
    ``untagged_after_days`` deletes manifests nothing references after that long.
    ``registry.gc.retention`` applies the rules.
    """

    pattern = models.CharField(
        max_length=257, validators=[patterns.validate], help_text="team/app, team/* or *"
    )
    tag_pattern = models.CharField(
        max_length=255,
        default=".*",
        validators=[validate_regex],
        help_text="regular expression: the tags this rule manages match it in full",
    )
    keep_latest = models.PositiveIntegerField(
        null=True, blank=True, help_text="keep the N most recently pushed matching tags"
    )
    max_age_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="delete matching tags last pushed more than D days ago"
    )
    untagged_after_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="delete manifests no tag or index references after D days"
    )
    protected_tags = models.CharField(
        max_length=255,
        blank=True,
        default="",
        validators=[validate_regex],
        help_text="regular expression: tags matching it in full are never removed (e.g. latest|v\\d+.*)",
    )
    enabled = models.BooleanField(default=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["pattern", "id"]

    def __str__(self) -> str:
        return f"retention for {self.pattern}"

    def clean(self) -> None:
        if self.keep_latest is None and self.max_age_days is None and self.untagged_after_days is None:
            raise ValidationError(
                "give keep latest, max age days or untagged after days: the rule does nothing"
            )


class JobRunManager(models.Manager["JobRun"]):
    def finished(self, job: str, started, *, succeeded: bool, freed_bytes: int = 0) -> None:
        """Count one run of ``job`` (``gc``, ``backup``) that began at ``started``, for ``/metrics``."""
        now = timezone.now()
        with transaction.atomic():
            self.get_or_create(job=job)
            run = self.select_for_update().get(job=job)
            run.runs += 1
            run.last_started = started
            run.last_finished = now
            run.last_freed_bytes = freed_bytes
            if succeeded:
                run.last_success = now
            else:
                run.failures += 1
            run.save()


class JobRun(models.Model):
    """The latest run of each maintenance job, which runs in its own process (``manage.py gc``,
    ``backup``): what the server's ``/metrics`` reports of them (``crow_job_*``). One row per job."""

    job = models.CharField(max_length=32, unique=True)
    runs = models.PositiveBigIntegerField(default=0)
    failures = models.PositiveBigIntegerField(default=0)
    last_started = models.DateTimeField(null=True)
    last_finished = models.DateTimeField(null=True)
    last_success = models.DateTimeField(null=True)
    last_freed_bytes = models.PositiveBigIntegerField(default=0)

    objects = JobRunManager()

    def __str__(self) -> str:
        return self.job


# The audit log and webhooks live in a module of their own, in this app's tables.
from registry.events.models import AuditEvent, Delivery, Webhook  # noqa: E402, F401

# The read-only switch (registry.maintenance), in this app's tables too.
from registry.maintenance.models import ReadOnlySwitch  # noqa: E402, F401

# The pull-through cache's upstreams and mirrored repositories, in this app's tables too.
from registry.mirror.models import MirroredRepository, Upstream  # noqa: E402, F401
