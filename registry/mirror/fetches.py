"""One download of a blob from an upstream at a time, across processes and replicas: a row claim.

The request that inserts a ``BlobFetch`` row for the digest downloads it;
the others see the row and wait until it is gone (the blob is then stored,
or the download failed and one of them claims it next). A claim is a lease
(``LEASE`` seconds) that the downloader renews while bytes flow, so a
downloader killed mid-way frees the digest within a lease, and an expired
row is taken over. A row, not a PostgreSQL advisory lock: it works the same
on SQLite, holds no database connection for the length of a download, and an
operator can see it.
"""

import time
import uuid
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from registry.db import connections
from registry.mirror.models import BlobFetch

LEASE = 30.0  # seconds
POLL = 0.2  # seconds between a waiter's looks


def claim(digest: str) -> uuid.UUID | None:
    """Claim the download of ``digest``: the claim's id, or None if another request holds it."""
    now = timezone.now()
    BlobFetch.objects.filter(digest=digest, claimed_until__lt=now).delete()
    claim_id = uuid.uuid4()
    try:
        with transaction.atomic():
            BlobFetch.objects.create(
                digest=digest, claim=claim_id, claimed_until=now + timedelta(seconds=LEASE)
            )
    except IntegrityError:
        return None
    return claim_id


def renew(digest: str, claim_id: uuid.UUID) -> bool:
    """Extend the lease; False if it was lost (taken over after it expired)."""
    until = timezone.now() + timedelta(seconds=LEASE)
    return BlobFetch.objects.filter(digest=digest, claim=claim_id).update(claimed_until=until) > 0


def release(digest: str, claim_id: uuid.UUID) -> None:
    BlobFetch.objects.filter(digest=digest, claim=claim_id).delete()


def wait(digest: str, deadline: float) -> bool:
    """Wait until no request holds a live claim on ``digest``; False if ``deadline`` (monotonic) is first."""
    while BlobFetch.objects.filter(digest=digest, claimed_until__gte=timezone.now()).exists():
        if time.monotonic() >= deadline:
            return False
        connections.release()  # no pooled connection held while waiting
        time.sleep(POLL)
    return True
