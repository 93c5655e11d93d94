"""What may not be done in a mirrored repository: pushes (uploads, mounts into it, manifest PUTs).

Its content is the upstream's; a push would be served as if the upstream had
it, and overwritten by the next re-validation. Deletes stay allowed to whoever
may delete there (an operator evicting an image: the next pull fetches it
again). Names served through ``CROW_MIRROR_ROOT`` are not refused: they are
local repositories' names too, and a push makes one.
"""

from registry import errors
from registry.errors import RegistryError
from registry.mirror import routing


def refuse_push(name: str) -> None:
    """Raise ``DENIED``, naming the upstream, if repository ``name`` is a mirror."""
    upstream = routing.upstream_of(name)
    if upstream is not None:
        raise RegistryError(
            errors.DENIED,
            f"{name} is a read-only mirror of {upstream.url} (upstream {upstream.prefix}): no pushes",
            detail={"name": name, "upstream": upstream.prefix},
        )
