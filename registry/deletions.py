"""Content management: deleting a tag, or a manifest with every tag on it.

A manifest that an index in its repository references may be deleted: the
index then names it as absent (``registry.sparse``), as if the index had been
pushed without it, instead of silently losing the reference. So gc, verify
and the admin know the child is missing, and pushing it again links it back.
"""

from django.db import transaction

from registry.models import AbsentReference, Manifest, ManifestChild, Tag


def delete_tag(name: str, tag: str) -> bool:
    """Untag ``tag`` in repository ``name`` (the manifest stays); False if there was no such tag."""
    deleted, _ = Tag.objects.filter(repository__name=name, name=tag).delete()
    return bool(deleted)


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
    return True
