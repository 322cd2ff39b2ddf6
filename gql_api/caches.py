"""Caches bounded by the bytes they hold, not only by their number of entries.

An entry count alone lets a client choose the size of each entry: a thousand distinct
16 KB queries parse into half a gigabyte of syntax trees. Each entry here is charged
what it holds (``deep_size``), and the least recently used go first past the budget.
"""

from __future__ import annotations

import gc
import sys
from collections import OrderedDict
from collections.abc import Hashable
from types import BuiltinFunctionType, FunctionType, ModuleType
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Shared by every entry (classes, functions, modules): never charged to one of them.
_SHARED = (type, ModuleType, FunctionType, BuiltinFunctionType)


def deep_size(*roots: object) -> int:
    """The bytes of ``roots`` and of every object they reach, each counted once."""
    seen: set[int] = set()
    stack = list(roots)
    total = 0
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, _SHARED):
            continue
        seen.add(id(item))
        total += -(-sys.getsizeof(item) // 16) * 16  # the allocator hands out 16-byte blocks
        stack.extend(gc.get_referents(item))
    return total


class ByteBoundedCache(Generic[K, V]):
    """Least recently used out first, once the entries hold over ``max_bytes``."""

    def __init__(self, max_bytes: int, max_entries: int | None = None) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._bytes = 0

    @property
    def bytes(self) -> int:
        """What the entries held now were charged, in all."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: K, value: V, size: int) -> bool:
        """Keep ``value``, charged ``size`` bytes; an entry larger than the whole budget
        is not kept (False). Older entries go until the rest fits."""
        self.discard(key)
        if size > self.max_bytes:
            return False
        self._entries[key] = (value, size)
        self._bytes += size
        while self._bytes > self.max_bytes or (
            self.max_entries is not None and len(self._entries) > self.max_entries
        ):
            _, (_, freed) = self._entries.popitem(last=False)
            self._bytes -= freed
        return True

    def discard(self, key: K) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry[1]
