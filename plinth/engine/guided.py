"""Constrained decoding, as the engine sees it: a per-request matcher and one batched logits mask.

The engine knows no text, JSON or regexes. A request asks for constrained output by putting a
:class:`Grammar` in ``SamplingParams.grammar``: a compiled, immutable, shareable object (built above the
engine, by :mod:`plinth.llm.grammar`) that hands each sequence a fresh :class:`TokenMatcher`. Each step
the sampler asks every matcher of the batch for its allowed next tokens as a packed bitmask (one bit per
vocabulary id, 32 per ``int32`` word, little-endian within a word, as llguidance and xgrammar write
them) and applies them all with one ``masked_fill``; unconstrained rows keep their values. The
scheduler feeds every sampled token back (``accept_token``) and finishes a request with ``"stop"`` as
soon as its matcher ``is_terminated`` (the grammar is complete: EOS accepted, or nothing more can
follow).

>>> bitmask = torch.zeros(1, 1, dtype=torch.int32)
>>> bitmask[0, 0] = 0b101  # ids 0 and 2 allowed
>>> unpack_bitmask(bitmask, 4).tolist()
[[True, False, True, False]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch

__all__ = ["Grammar", "TokenMatcher", "allocate_bitmask", "mask_grammar", "unpack_bitmask"]


@runtime_checkable
class TokenMatcher(Protocol):
    """One sequence's position in a grammar; owned by the sequence's sampling state."""

    def fill_bitmask(self, bitmask: torch.Tensor, row: int) -> None:
        """Write the allowed next tokens into ``bitmask[row]`` (CPU ``int32``, ``ceil(vocab/32)`` words)."""
        ...

    def accept_token(self, token_id: int) -> bool:
        """Advance past ``token_id``; False when the grammar does not allow it (the request fails)."""
        ...

    def is_terminated(self) -> bool:
        """True once the output is complete: no token but EOS may follow, or EOS was accepted."""
        ...


@runtime_checkable
class Grammar(Protocol):
    """A compiled constraint, shared by every request that uses it (and cached by whoever compiles it)."""

    def new_matcher(self) -> TokenMatcher:
        """A matcher at the grammar's start, for one sequence."""
        ...


class _HasMatcher(Protocol):
    matcher: TokenMatcher | None


def allocate_bitmask(rows: int, vocab: int) -> torch.Tensor:
    """A CPU ``int32`` bitmask of ``rows`` x ``ceil(vocab / 32)`` words, every token allowed."""
    return torch.full((rows, (vocab + 31) // 32), -1, dtype=torch.int32)


_BITS = torch.arange(32, dtype=torch.int32)


def unpack_bitmask(bitmask: torch.Tensor, vocab: int) -> torch.Tensor:
    """``[R, words]`` int32 bits -> ``[R, vocab]`` bool, on ``bitmask``'s device."""
    bits = (bitmask.unsqueeze(-1) >> _BITS.to(bitmask.device)) & 1
    return bits.view(bitmask.shape[0], -1)[:, :vocab].bool()


def mask_grammar(logits: torch.Tensor, states: Sequence[_HasMatcher]) -> torch.Tensor:
    """``-inf`` on the tokens each constrained row's grammar forbids; returns a new tensor (or ``logits``
    itself when no row is constrained). The masks are filled on the CPU, copied once, and applied with
    one ``masked_fill`` over the batch: unconstrained rows keep an all-ones mask, so their values are
    untouched (cheaper than gathering and scattering the constrained rows, an ``index_put`` that ran
    200x slower than this on a loaded CPU)."""
    if all(s.matcher is None for s in states):
        return logits
    vocab = logits.shape[1]
    bitmask = allocate_bitmask(len(states), vocab)
    for row, state in enumerate(states):
        if state.matcher is not None:
            state.matcher.fill_bitmask(bitmask, row)
    allowed = unpack_bitmask(bitmask.to(logits.device, non_blocking=True), vocab)
    return logits.masked_fill(~allowed, float("-inf"))
