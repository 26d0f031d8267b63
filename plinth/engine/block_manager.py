"""Fixed-size KV cache blocks with reference counts and hash-matched prefix reuse.

A *full* block is identified by a hash of its tokens chained with the previous block's hash, so equal
prefixes (a shared system prompt, earlier turns of a chat) map to the same blocks. A block whose last
user finished goes back to the free list but keeps its hash until it is reused for other tokens, so
a later request with the same prefix still finds it (the free list is LRU: oldest freed reused first).

The CPU cache is a memory map whose pages become resident as they are first written
(``model_runner.zeroed``), so which block a sequence gets decides the server's memory as well as its
prefix hits. ``reuse_freed_first=False`` (the ``keep`` policy) hands out never-used blocks while any
are left: every finished request's blocks stay cached until the whole cache has been written, and
resident memory grows to the cache's size (4.4 MB a request for SmolLM2 at 192 tokens, up to the
306 MB that 64 sequences of 208 tokens take). ``True`` (``lean``) reuses freed blocks first: the
resident cache stays at the most blocks ever in use at once, and a prefix nobody used since is evicted
sooner (one in use, or used again, moves to the back of the list).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from plinth.engine.sequence import Sequence


@dataclass(slots=True)
class Block:
    block_id: int
    ref_count: int = 0
    hash: int | None = None
    token_ids: tuple[int, ...] = ()


RECOMPUTED = 2  # prompt tokens computed again after a full prefix-cache hit (allocate)


class BlockManager:
    """Allocates cache blocks to sequences; the invariant is ``ref_count == users of the block``."""

    def __init__(
        self,
        num_blocks: int,
        block_size: int,
        enable_prefix_caching: bool = True,
        reuse_freed_first: bool = False,
    ) -> None:
        self.block_size = block_size
        self.blocks = [Block(i) for i in range(num_blocks)]
        self.free: OrderedDict[int, None] = OrderedDict()  # freed blocks, least recently freed first
        self.never_used = num_blocks  # blocks[-never_used:] have not been handed out yet
        self.cached: dict[int, int] = {}  # block hash -> block id
        self.prefix_caching = enable_prefix_caching
        self.reuse_freed_first = reuse_freed_first

    @property
    def num_free_blocks(self) -> int:
        return len(self.free) + self.never_used

    @property
    def num_used_blocks(self) -> int:
        return len(self.blocks) - self.num_free_blocks

    def blocks_needed(self, num_tokens: int) -> int:
        return (num_tokens + self.block_size - 1) // self.block_size

    def allocate(self, seq: Sequence) -> bool:
        """Give a waiting sequence blocks for all its tokens, reusing cached prefix blocks.

        Returns False (allocating nothing) when the cache cannot hold it now.
        """
        assert not seq.block_table
        hits = self._prefix_hits(seq.token_ids)
        fresh = self.blocks_needed(seq.num_tokens) - len(hits)
        reclaimable = sum(1 for b in hits if self.blocks[b].ref_count == 0)
        if fresh > self.num_free_blocks - reclaimable:
            return False
        for block_id in hits:
            self._take(block_id)
        seq.block_table = hits + [self._take(self._pop_free(), reset=True) for _ in range(fresh)]
        # The last token's logits are needed to sample, and the last two tokens are recomputed: on a CPU
        # a prompt's rows attend as a block from two rows on, and a row alone rounds differently
        # (csrc/decode_attention.cpp, kMinRun), so with one the same prompt, sent again, got other
        # bits for its last position than it did the first time, and a greedy reply changed.
        seq.num_computed = max(0, min(len(hits) * self.block_size, seq.num_tokens - RECOMPUTED))
        seq.num_cached_tokens = seq.num_computed
        return True

    def can_append(self, seq: Sequence, num_new: int) -> bool:
        return self.blocks_needed(seq.num_computed + num_new) - len(seq.block_table) <= self.num_free_blocks

    def append(self, seq: Sequence, num_new: int) -> None:
        """Make sure the blocks for the next ``num_new`` tokens exist (decode grows one block at a time)."""
        while len(seq.block_table) < self.blocks_needed(seq.num_computed + num_new):
            seq.block_table.append(self._take(self._pop_free(), reset=True))

    def free_sequence(self, seq: Sequence) -> None:
        for block_id in reversed(seq.block_table):
            block = self.blocks[block_id]
            block.ref_count -= 1
            assert block.ref_count >= 0
            if block.ref_count == 0:
                self.free[block_id] = None
        seq.block_table = []
        seq.num_computed = 0

    def register_full_blocks(self, seq: Sequence) -> None:
        """Publish the hashes of blocks whose K/V is now fully computed, for later requests to reuse."""
        if not self.prefix_caching:
            return
        prev: int | None = None
        for i in range(seq.num_computed // self.block_size):
            block = self.blocks[seq.block_table[i]]
            if block.hash is None:
                tokens = tuple(seq.token_ids[i * self.block_size : (i + 1) * self.block_size])
                block.hash, block.token_ids = hash((prev, tokens)), tokens
                self.cached.setdefault(block.hash, block.block_id)
            prev = block.hash

    def _prefix_hits(self, token_ids: list[int]) -> list[int]:
        if not self.prefix_caching:
            return []
        hits: list[int] = []
        prev: int | None = None
        for start in range(0, len(token_ids) - self.block_size + 1, self.block_size):
            tokens = tuple(token_ids[start : start + self.block_size])
            prev = hash((prev, tokens))
            block_id = self.cached.get(prev)
            if block_id is None or self.blocks[block_id].token_ids != tokens:
                break
            hits.append(block_id)
        return hits

    def _pop_free(self) -> int:
        """A never-used block or the least recently freed one, in the policy's order (``_take`` removes a
        freed block from the free list)."""
        if self.free and (self.reuse_freed_first or not self.never_used):
            return next(iter(self.free))
        assert self.never_used, "allocate and append check num_free_blocks first"
        self.never_used -= 1
        return len(self.blocks) - 1 - self.never_used

    def _take(self, block_id: int, reset: bool = False) -> int:
        block = self.blocks[block_id]
        if block.ref_count == 0:
            self.free.pop(block_id, None)  # absent for a block never used
        if reset and block.hash is not None:
            if self.cached.get(block.hash) == block_id:
                del self.cached[block.hash]
            block.hash, block.token_ids = None, ()
        block.ref_count += 1
        return block_id
