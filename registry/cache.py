"""In-memory caches for the manifest read path, kept honest by the shared change counter."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

from storage.generation import Generation

K = TypeVar("K")
V = TypeVar("V")


class GenerationCache(Generic[K, V]):
    """An LRU map whose entries are dropped whenever the change counter moves.

    A reader takes `stamp()` before it queries the database and passes it to `put()`: if the
    counter moved in between, the value may be stale and is not kept.
    """

    def __init__(self, generation: Generation, max_entries: int) -> None:
        self._generation = generation
        self._max_entries = max_entries
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._stamp = generation.value

    def stamp(self) -> int:
        current = self._generation.value
        if current != self._stamp:
            self._entries.clear()
            self._stamp = current
        return current

    def get(self, key: K) -> V | None:
        self.stamp()
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V, stamp: int) -> None:
        if stamp != self.stamp():
            return
        self._entries[key] = value
        if len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
