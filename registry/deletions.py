"""Content management: deleting a tag, a manifest with every tag on it, a blob's link, a repository.

The /v2/ API and the admin both delete through these functions, so each
delete is recorded in the audit log (``registry.events.audit``) in its own
transaction, whoever asked.

A manifest that an index in its repository references may be deleted: the
index then names it as absent (``registry.sparse``), as if the index had been
pushed without it, instead of silently losing the reference. So gc, verify
and the admin know the child is missing, and pushing it again links it back.
"""

from django.db import transaction

from registry.db import blobs
from registry.events import audit
from registry.events.models import DELETE_BLOB, DELETE_MANIFEST, DELETE_REPOSITORY, DELETE_TAG
from registry.models import AbsentReference, Manifest, ManifestChild, Repository, Tag


def delete_tag(name: str, tag: str) -> bool:
    """Untag ``tag`` in repository ``name`` (the manifest stays); False if there was no such tag."""
    with transaction.atomic():
        found = Tag.objects.filter(repository__name=name, name=tag).values_list("id", "manifest__digest")
        found = found.first()
        if found is None or not Tag.objects.filter(id=found[0]).delete()[0]:
            return False
        audit.record(DELETE_TAG, repository=name, reference=tag, digest=found[1])
    return True


def delete_manifest(name: str, digest: str) -> bool:
    """Delete manifest ``digest`` of repository ``name`` and its tags; False if there was no such manifest."""
    with transaction.atomic():
        manifest_id = Manifest.objects.filter(repository__name=name, digest=digest).values_list(
            "id", flat=True
        )
        manifest_id = manifest_id.first()
        if manifest_id is None:
            return False
        parents = ManifestChild.objects.filter(child_id=manifest_id).values_list("parent_id", flat=True)
        AbsentReference.objects.bulk_create(
            [
                AbsentReference(manifest_id=parent, digest=digest, kind=AbsentReference.MANIFEST)
                for parent in parents
            ],
            ignore_conflicts=True,
        )
        Manifest.objects.filter(id=manifest_id).delete()
        audit.record(DELETE_MANIFEST, repository=name, digest=digest)
    return True


def delete_blob(name: str, digest: str) -> bool:
    """Hide blob ``digest`` from repository ``name`` (gc frees its bytes); False if it was not there."""
    with transaction.atomic():
        if not blobs.unlink(name, digest):
            return False
        audit.record(DELETE_BLOB, repository=name, digest=digest)
    return True


def delete_repository(name: str) -> bool:
    """Delete repository ``name`` with its tags, manifests and blob links; False if there was none."""
    with transaction.atomic():
        deleted, _ = Repository.objects.filter(name=name).delete()
        if not deleted:
            return False
        audit.record(DELETE_REPOSITORY, repository=name)
    return True
