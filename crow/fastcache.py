"""The fast path's answers, per worker process: bounded in bytes, dropped by repository name.

Keys are ``(kind, name, reference)``: a manifest by tag or digest, a blob by
digest. Each entry is a ready answer (headers and, for a manifest, its bytes).
``drop(name)`` forgets a repository's entries when a change notice names it
(``crow.notices``); ``flush()`` forgets everything.

``generation`` counts drops and flushes. A request that missed reads its
answer from the database and caches it only if no drop or flush happened
meanwhile (``store(..., generation)``): a read that raced a change serves what
it read, as Django would have, but never keeps it.
"""

from collections import OrderedDict
from dataclasses import dataclass

# What a cached answer costs beyond its body and header bytes: the entry, its key, the dict slots.
ENTRY_OVERHEAD = 400

Key = tuple[str, str, str]
Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class Answer:
    """A 200 as Django gives it: ``headers`` for GET and HEAD alike, ``body`` for GET only.

    ``media_type`` is the manifest's (for the ``Accept`` check); ``path`` the blob's file, when
    the store has one (filesystem), for ``http.response.pathsend``.
    """

    headers: Headers
    body: bytes = b""
    media_type: str = ""
    path: str = ""

    @property
    def cost(self) -> int:
        return (
            ENTRY_OVERHEAD + len(self.body) + len(self.path) + sum(len(k) + len(v) for k, v in self.headers)
        )


class Cache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.generation = 0
        self._entries: OrderedDict[Key, Answer] = OrderedDict()
        self._by_name: dict[str, set[Key]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key) -> Answer | None:
        answer = self._entries.get(key)
        if answer is not None:
            self._entries.move_to_end(key)
        return answer

    def store(self, key: Key, answer: Answer, generation: int) -> bool:
        """Keep ``answer`` unless something was dropped since ``generation`` was read, or it is too big."""
        if generation != self.generation or answer.cost > self.max_bytes:
            return False
        self._forget(key)
        self._entries[key] = answer
        self._by_name.setdefault(key[1], set()).add(key)
        self.size += answer.cost
        while self.size > self.max_bytes:
            self._forget(next(iter(self._entries)))
        return True

    def drop(self, name: str) -> None:
        self.generation += 1
        for key in self._by_name.pop(name, ()):
            answer = self._entries.pop(key, None)
            if answer is not None:
                self.size -= answer.cost

    def flush(self) -> None:
        self.generation += 1
        self._entries.clear()
        self._by_name.clear()
        self.size = 0

    def _forget(self, key: Key) -> None:
        answer = self._entries.pop(key, None)
        if answer is None:
            return
        self.size -= answer.cost
        keys = self._by_name.get(key[1])
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_name[key[1]]
