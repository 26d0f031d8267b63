"""The tiered adapter cache: compute slots -> host-memory LRU -> disk.

- **disk**: every registered adapter (a validated PEFT folder). Registering loads nothing into the
  compute path.
- **host memory**: up to ``max_cpu_loras`` loaded adapters, least recently used evicted first. A
  background thread loads adapters from disk here *ahead of need* (when a request for them arrives),
  so the engine never waits on disk I/O inside a step.
- **slots**: ``max_loras`` adapters resident in the model's stacked A/B buffers, the ones a step can
  use. A slot is *pinned* while a running request uses it; an unpinned slot is reused LRU.

Adapters are keyed by a *generation key* (``name#n``) so that re-registering a name never serves a
stale copy; unregistering only removes the name: requests already holding it finish normally.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import Counter, OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from plinth.engine.lora.adapter import LoraAdapter, load_adapter
from plinth.engine.lora.layers import LoraContext, LoraLinear
from plinth.engine.model_config import ModelConfig

log = logging.getLogger(__name__)
_generations = itertools.count(1)


class UnknownAdapterError(LookupError):
    """No adapter is registered under this name (the server answers 404)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"adapter {name!r} is not registered")
        self.name = name


@dataclass(slots=True)
class LoraStats:
    registered: int = 0
    resident: int = 0  # in compute slots
    in_memory: int = 0  # in the host-memory tier
    disk_loads: int = 0
    slot_loads: int = 0
    evictions: int = 0  # slot evictions


@dataclass
class _Entry:
    name: str
    path: Path
    key: str = field(default_factory=lambda: f"#{next(_generations)}")


class LoraManager:
    def __init__(self, ctx: LoraContext, model: ModelConfig, max_cpu_loras: int) -> None:
        self.ctx, self.model, self.max_cpu_loras = ctx, model, max_cpu_loras
        self.stats = LoraStats()
        self._lock = threading.Lock()
        self._registry: dict[str, _Entry] = {}  # name -> current entry
        self._entries: dict[str, _Entry] = {}  # key -> entry, also for names since unregistered
        self._memory: OrderedDict[str, LoraAdapter] = OrderedDict()  # key -> adapter, LRU order
        self._loading: dict[str, Future[LoraAdapter]] = {}
        self._slots: list[str | None] = [None] * ctx.num_slots
        self._slot_lru: OrderedDict[int, None] = OrderedDict.fromkeys(range(ctx.num_slots))
        self._pins: Counter[str] = Counter()
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plinth-lora-load")

    # --- registry (any thread) -------------------------------------------------------------------
    def register(self, name: str, path: Path, preload: bool = True) -> LoraAdapter:
        """Validate the adapter (raises AdapterError) and make ``name`` usable; replaces a previous one.
        ``preload=False`` leaves it on disk (the first request loads it): adapters found at start-up
        need no host memory until someone uses them."""
        adapter = load_adapter(path, name, self.model, self.ctx.max_rank)
        entry = _Entry(name, path)
        with self._lock:
            self._registry[name] = self._entries[entry.key] = entry
            if preload:
                self._remember(entry.key, adapter)
            self.stats.registered = len(self._registry)
        return adapter

    def unregister(self, name: str) -> bool:
        with self._lock:
            entry = self._registry.pop(name, None)
            self.stats.registered = len(self._registry)
        return entry is not None

    def is_registered(self, name: str) -> bool:
        return name in self._registry  # one dict lookup: checked on every request's admission path

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._registry)

    def tier(self, name: str) -> str | None:
        """Where ``name``'s weights are now: ``"resident"`` (a compute slot), ``"cached"`` (host memory)
        or ``"disk"``; None when it is not registered. A snapshot for display: slots change under it."""
        with self._lock:
            entry = self._registry.get(name)
            if entry is None:
                return None
            if entry.key in self._slots:
                return "resident"
            return "cached" if entry.key in self._memory else "disk"

    def key_for(self, name: str) -> str:
        """The generation key a new request for ``name`` should hold; prefetches it into memory."""
        with self._lock:
            entry = self._registry.get(name)
            if entry is None:
                raise UnknownAdapterError(name)
        self._ready(entry.key)  # starts loading it from disk if it is not in memory
        return entry.key

    # --- slots (engine thread only) --------------------------------------------------------------
    def acquire(self, key: str) -> int | None:
        """Pin a slot holding ``key``, loading it from memory into a free or LRU slot if needed.

        Returns None when it cannot be had now: still loading from disk, or every slot pinned.
        """
        slot = self._slot_of(key)
        if slot is None:
            adapter = self._ready(key)
            slot = self._free_slot() if adapter is not None else None
            if slot is None or adapter is None:
                return None
            self._fill(slot, key, adapter)
        self._pins[key] += 1
        self._slot_lru.move_to_end(slot)
        return slot

    def release(self, key: str) -> None:
        self._pins[key] -= 1
        assert self._pins[key] >= 0
        if self._pins[key] == 0:
            del self._pins[key]

    def can_acquire(self, key: str) -> bool:
        return self._slot_of(key) is not None or (
            self._ready(key) is not None and self._free_slot() is not None
        )

    def _slot_of(self, key: str) -> int | None:
        try:
            return self._slots.index(key)
        except ValueError:
            return None

    def _free_slot(self) -> int | None:
        for slot in self._slot_lru:  # least recently used first
            if self._slots[slot] is None or self._pins[self._slots[slot]] == 0:  # type: ignore[index]
                return slot
        return None

    def _fill(self, slot: int, key: str, adapter: LoraAdapter) -> None:
        if self._slots[slot] is not None:
            self.stats.evictions += 1
        for layer in self.ctx.layers:
            layer.set_slot(slot, _subs(layer, adapter))
        self._slots[slot] = key
        self.stats.slot_loads += 1
        self.stats.resident = sum(s is not None for s in self._slots)

    def _ready(self, key: str) -> LoraAdapter | None:
        """The adapter if it is in host memory; otherwise start (or check) its load from disk."""
        with self._lock:
            adapter = self._memory.get(key)
            if adapter is not None:
                self._memory.move_to_end(key)
                return adapter
            future = self._loading.get(key)
            if future is None:
                self._loading[key] = self._loader.submit(self._load, self._entries[key])
                return None
        if not future.done():
            return None
        with self._lock:
            self._loading.pop(key, None)
        try:
            adapter = future.result()
        except Exception:  # validated at registration; a file changed or vanished since
            log.exception("could not reload adapter %s", key)
            return None
        with self._lock:
            self._remember(key, adapter)
        return adapter

    # --- host-memory tier ------------------------------------------------------------------------
    def _load(self, entry: _Entry) -> LoraAdapter:
        adapter = load_adapter(entry.path, entry.name, self.model, self.ctx.max_rank)
        self.stats.disk_loads += 1
        return adapter

    def _remember(self, key: str, adapter: LoraAdapter) -> None:
        """Caller holds the lock."""
        self._memory[key] = adapter
        self._memory.move_to_end(key)
        while len(self._memory) > self.max_cpu_loras:
            self._memory.popitem(last=False)
        self.stats.in_memory = len(self._memory)

    def close(self) -> None:
        self._loader.shutdown(wait=False, cancel_futures=True)


def _subs(layer: LoraLinear, adapter: LoraAdapter) -> list[tuple[torch.Tensor, torch.Tensor, float] | None]:
    """The adapter's (A, B, scaling) for each sub-projection of one fused layer (None if untargeted)."""
    found = (adapter.weights.get((layer.layer_index, name)) for name in layer.names)
    return [None if w is None else (w.a, w.b, w.scaling) for w in found]
