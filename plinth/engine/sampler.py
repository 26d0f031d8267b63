"""Batched next-token sampling: one logits row per running request -> one token id (+ logprobs).

Contract: ``Sampler()(logits, states)`` takes ``logits`` of shape ``[B, V]`` (any float dtype, any
device) for the last position of each request and the requests' :class:`SamplingState`, and returns
``(token_ids, logprobs)``, two lists of length ``B``. It never mutates ``logits`` or the states except
for advancing seeded generators; the engine appends the chosen ids to ``output_token_ids``.

Semantics follow vLLM/OpenAI/HF, all in float32:

0. a request with a grammar (``params.grammar``) gets ``-inf`` on every token its matcher forbids,
   before anything else (so logprobs, top-k and the rest see only allowed tokens, as in vLLM);
1. repetition penalty (HF: over prompt *and* output; positive logits divided, others multiplied),
   then presence/frequency penalties (OpenAI: over output only, ``-= presence*(n>0) + frequency*n``);
2. ``min_tokens``: stop ids get ``-inf`` while the output is shorter than ``min_tokens``;
3. temperature 0 -> argmax; otherwise ``/ temperature``, top-k, top-p, min-p, then an exponential
   race ``argmax(p / Exp(1))`` (an exact draw from ``p``), with the noise of a seeded request drawn
   from its own generator so that its tokens do not depend on what else is in the batch;
4. logprobs come from ``log_softmax`` of the *raw* logits (vLLM's default), top-N sorted descending.

A batch that is all plain greedy (no penalties, min_tokens or logprobs) is one ``argmax`` (after the
grammar mask, when a row has one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from plinth.engine import native
from plinth.engine.guided import TokenMatcher, mask_grammar
from plinth.engine.outputs import TokenLogprob
from plinth.engine.sampling_params import SamplingParams

__all__ = ["Sampler", "SamplingState", "apply_penalties", "mask_min_tokens"]

# Below this temperature logits / T overflows float32 softmax; treat it as greedy (as vLLM does).
_GREEDY_EPS = 1e-5
_TINY = torch.finfo(torch.float32).tiny


@dataclass(slots=True)
class SamplingState:
    """What the sampler needs to know about one running request; owned by the engine's sequence.

    ``stop_ids`` are the eos ids (unless ``ignore_eos``) plus ``params.stop_token_ids``; they are
    masked while ``min_tokens`` is unmet. ``generator`` is a CPU generator seeded from
    ``params.seed`` (``None`` -> the global RNG). ``matcher`` tracks ``params.grammar``, if any.
    """

    params: SamplingParams
    prompt_token_ids: list[int]
    output_token_ids: list[int]
    generator: torch.Generator | None
    stop_ids: tuple[int, ...]
    matcher: TokenMatcher | None = None

    @classmethod
    def create(
        cls, params: SamplingParams, prompt_token_ids: Sequence[int], eos_token_ids: Sequence[int]
    ) -> SamplingState:
        """A fresh state with an empty output.

        >>> SamplingState.create(SamplingParams(stop_token_ids=(7,)), [1, 2], (2,)).stop_ids
        (2, 7)
        """
        eos = () if params.ignore_eos else tuple(eos_token_ids)
        stop_ids = tuple(dict.fromkeys(eos + params.stop_token_ids))
        generator = None
        if params.seed is not None:
            generator = torch.Generator(device="cpu").manual_seed(params.seed)
        matcher = None if params.grammar is None else params.grammar.new_matcher()
        return cls(params, list(prompt_token_ids), [], generator, stop_ids, matcher)

    def accept(self, token_id: int) -> bool:
        """Record a generated token; False when the request's grammar does not allow it."""
        self.output_token_ids.append(token_id)
        return self.matcher is None or self.matcher.accept_token(token_id)

    @property
    def grammar_done(self) -> bool:
        """The grammar is complete: the request ends here (``"stop"``)."""
        return self.matcher is not None and self.matcher.is_terminated()


class Sampler:
    """Picks the next token of every request in a batch; stateless (seeds live in the states)."""

    @torch.inference_mode()
    def __call__(
        self, logits: torch.Tensor, states: list[SamplingState]
    ) -> tuple[list[int], list[TokenLogprob | None]]:
        """``logits``: ``[B, V]`` for the last position of each request, in any float dtype (a greedy
        batch's argmax reads them as they are; anything else runs on a float32 copy) -> ids and logprobs."""
        assert logits.dim() == 2 and logits.shape[0] == len(states), (logits.shape, len(states))
        logits = mask_grammar(logits, states)
        if all(_is_plain_greedy(s) for s in states):
            return _argmax(logits).tolist(), [None] * len(states)
        raw = logits.float()
        processed = mask_min_tokens(apply_penalties(raw, states), states)
        token_ids = _pick(processed, states)
        return token_ids, _logprobs(raw, token_ids, states)


def apply_penalties(logits: torch.Tensor, states: Sequence[SamplingState]) -> torch.Tensor:
    """Repetition, then presence/frequency penalties; returns a new tensor (or ``logits`` if none apply)."""
    rows = [i for i, s in enumerate(states) if _has_penalties(s.params)]
    if not rows:
        return logits
    idx = torch.tensor(rows, device=logits.device)
    penalized = _penalize(logits[idx], [states[i] for i in rows])
    return logits.index_put((idx,), penalized)


def mask_min_tokens(logits: torch.Tensor, states: Sequence[SamplingState]) -> torch.Tensor:
    """``-inf`` on the stop ids of requests still short of ``min_tokens``; returns a new tensor."""
    vocab = logits.shape[1]
    pairs = [(i, t) for i, s in enumerate(states) if _min_tokens_active(s) for t in s.stop_ids if t < vocab]
    if not pairs:
        return logits
    rows, cols = torch.tensor(pairs, device=logits.device).T
    return logits.index_put((rows, cols), torch.tensor(float("-inf"), device=logits.device))


def _penalize(logits: torch.Tensor, states: list[SamplingState]) -> torch.Tensor:
    vocab = logits.shape[1]
    out_counts = _token_counts([s.output_token_ids for s in states], vocab, logits.device)
    prompt_counts = _token_counts([s.prompt_token_ids for s in states], vocab, logits.device)
    rep = _column([s.params.repetition_penalty for s in states], logits)
    scaled = torch.where(logits > 0, logits / rep, logits * rep)
    logits = torch.where((out_counts + prompt_counts) > 0, scaled, logits)
    presence = _column([s.params.presence_penalty for s in states], logits)
    frequency = _column([s.params.frequency_penalty for s in states], logits)
    return logits - frequency * out_counts - presence * (out_counts > 0)


def _token_counts(token_ids: list[list[int]], vocab: int, device: torch.device) -> torch.Tensor:
    """``[len(token_ids), vocab]`` float counts, one scatter_add over a padded batch."""
    width = max(1, max(len(ids) for ids in token_ids))
    padded = [ids + [vocab] * (width - len(ids)) for ids in token_ids]  # pad into a spare bin
    index = torch.tensor(padded, dtype=torch.long, device=device)
    counts = torch.zeros(len(token_ids), vocab + 1, device=device)
    counts.scatter_add_(1, index, torch.ones(index.shape, device=device))
    return counts[:, :vocab]


def _argmax(x: torch.Tensor) -> torch.Tensor:
    """Index of each row's maximum (the first, on ties; NaN counts as the maximum, as ``argmax``'s).

    On a CPU, ``plinth::argmax`` (``csrc/argmax.cpp``): 9-13x sooner than ATen's reduction over 49,152
    float32 logits (16 rows 29 against 330 us, 64 rows 105 against 1,340 us; 2-core Zen 4,
    ``benchmarks/sampler_argmax.py``). Elsewhere ``max(dim=-1).indices``, which gives the same indices
    as ``argmax(dim=-1)`` 3-4x sooner on CPU."""
    if x.device.type == "cpu" and native.has("argmax"):
        return torch.ops.plinth.argmax(x)
    return x.max(dim=-1).indices


def _pick(logits: torch.Tensor, states: list[SamplingState]) -> list[int]:
    """Argmax for greedy rows, a draw for the others, in one pass over the sampled sub-batch."""
    sampled = [i for i, s in enumerate(states) if not _is_greedy(s.params)]
    if len(sampled) == len(states):
        return _sample(logits, states).tolist()
    token_ids = _argmax(logits)
    if sampled:
        idx = torch.tensor(sampled, device=logits.device)
        chosen = _sample(logits[idx], [states[i] for i in sampled])
        token_ids = token_ids.index_put((idx,), chosen)
    return token_ids.tolist()


def _sample(logits: torch.Tensor, states: list[SamplingState]) -> torch.Tensor:
    params = [s.params for s in states]
    logits = _truncate(logits / _column([p.temperature for p in params], logits), params)
    probs = logits.softmax(dim=-1)
    if any(p.min_p > 0.0 for p in params):
        threshold = _column([p.min_p for p in params], probs) * probs.amax(dim=-1, keepdim=True)
        probs = probs.masked_fill(probs < threshold, 0.0)
    return _exponential_race(probs, [s.generator for s in states])


def _truncate(logits: torch.Tensor, params: list[SamplingParams]) -> torch.Tensor:
    """Top-k/top-p on only the rows that ask for it: their sort dominates the sampler's cost."""
    rows = [i for i, p in enumerate(params) if p.top_k > 0 or p.top_p < 1.0]
    if not rows:
        return logits
    idx = torch.tensor(rows, device=logits.device)
    kept = _top_k_top_p(logits[idx], [params[i].top_k for i in rows], [params[i].top_p for i in rows])
    return logits.index_put((idx,), kept)


def _top_k_top_p(logits: torch.Tensor, top_k: list[int], top_p: list[float]) -> torch.Tensor:
    """Mask to ``-inf`` all but the top-k, then the smallest prefix with mass >= top_p.

    One ``topk`` when every row has a top-k (much cheaper than a full-vocabulary sort), else one sort.
    """
    vocab = logits.shape[1]
    width = min(max(top_k), vocab) if all(k > 0 for k in top_k) else vocab
    if width < vocab:
        sorted_logits, order = logits.topk(width, dim=-1)
    else:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
    k = torch.tensor([min(k, width) if k > 0 else width for k in top_k], device=logits.device)
    ranks = torch.arange(width, device=logits.device)
    sorted_logits = sorted_logits.masked_fill(ranks >= k[:, None], float("-inf"))
    sorted_probs = sorted_logits.softmax(dim=-1)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    p = _column(top_p, logits)
    cut = (mass_before >= p) & (p < 1.0)  # p == 1 must not cut on cumsum rounding
    cut[:, 0] = False  # always keep the most likely token
    sorted_logits = sorted_logits.masked_fill(cut, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter_(1, order, sorted_logits)


def _exponential_race(probs: torch.Tensor, generators: list[torch.Generator | None]) -> torch.Tensor:
    """``argmax(p / E)`` with ``E ~ Exp(1)`` is an exact draw from ``p`` (no cumsum, no renormalising).

    ``E = -log(U)``, which is cheaper than ``exponential_`` on CPU. Seeded rows draw their own ``U``
    from their CPU generator, so a seeded request's tokens do not depend on its batch neighbours.
    """
    noise = torch.rand_like(probs)
    for row, generator in enumerate(generators):
        if generator is not None:
            noise[row] = torch.rand(probs.shape[1], generator=generator).to(probs.device)
    noise = noise.log_().neg_().clamp_min_(_TINY)  # U in [0, 1): E in (0, inf]
    return _argmax(probs / noise)


def _logprobs(
    logits: torch.Tensor, token_ids: list[int], states: list[SamplingState]
) -> list[TokenLogprob | None]:
    result: list[TokenLogprob | None] = [None] * len(states)
    rows = [i for i, s in enumerate(states) if s.params.logprobs is not None]
    if not rows:
        return result
    idx = torch.tensor(rows, device=logits.device)
    logp = logits[idx].log_softmax(dim=-1)
    chosen_ids = torch.tensor([token_ids[i] for i in rows], device=logits.device)
    chosen = logp.gather(1, chosen_ids[:, None]).squeeze(1).tolist()
    n = min(max(states[i].params.logprobs or 0 for i in rows), logp.shape[1])
    top_values, top_ids = (t.tolist() for t in logp.topk(n, dim=-1))
    for j, i in enumerate(rows):
        k = states[i].params.logprobs or 0
        top = dict(zip(top_ids[j][:k], top_values[j][:k], strict=True))
        result[i] = TokenLogprob(token_ids[i], chosen[j], top)
    return result


def _column(values: list[float], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32, device=like.device)[:, None]


def _is_greedy(params: SamplingParams) -> bool:
    return params.temperature < _GREEDY_EPS


def _has_penalties(params: SamplingParams) -> bool:
    return (
        params.repetition_penalty != 1.0 or params.presence_penalty != 0.0 or params.frequency_penalty != 0.0
    )


def _min_tokens_active(state: SamplingState) -> bool:
    return bool(state.stop_ids) and len(state.output_token_ids) < state.params.min_tokens


def _is_plain_greedy(state: SamplingState) -> bool:
    p = state.params
    return _is_greedy(p) and p.logprobs is None and not _has_penalties(p) and not _min_tokens_active(state)
