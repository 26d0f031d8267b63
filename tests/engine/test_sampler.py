"""Sampler numerics against hand-computed references on tiny vocabularies (CPU, fast)."""

from __future__ import annotations

import math

import pytest
import torch

from plinth.engine.sampler import Sampler, SamplingState, apply_penalties
from plinth.engine.sampling_params import SamplingParams

EOS = 3


def state(prompt: list[int] | None = None, output: list[int] | None = None, **kw: object) -> SamplingState:
    s = SamplingState.create(SamplingParams(**kw), prompt or [0], (EOS,))  # type: ignore[arg-type]
    s.output_token_ids.extend(output or [])
    return s


def draw_counts(row: list[float], n: int, **kw: object) -> torch.Tensor:
    """Empirical distribution of ``n`` unseeded draws from one logits row (one batched call)."""
    logits = torch.tensor([row]).repeat(n, 1)
    ids, _ = Sampler()(logits, [state(**kw) for _ in range(n)])
    return torch.bincount(torch.tensor(ids), minlength=len(row)).float() / n


def test_create_builds_stop_ids_and_generator() -> None:
    s = SamplingState.create(SamplingParams(stop_token_ids=(9, EOS), seed=5), [1], (EOS,))
    assert s.stop_ids == (EOS, 9) and s.generator is not None and s.output_token_ids == []
    quiet = SamplingState.create(SamplingParams(ignore_eos=True), [1], (EOS,))
    assert quiet.stop_ids == () and quiet.generator is None


def test_greedy_is_argmax_and_fast_path_has_no_logprobs() -> None:
    logits = torch.randn(6, 50, generator=torch.Generator().manual_seed(0))
    ids, logprobs = Sampler()(logits, [state(temperature=0.0) for _ in range(6)])
    assert ids == logits.argmax(-1).tolist() and logprobs == [None] * 6


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_greedy_takes_the_first_of_tied_maxima_as_argmax_does(dtype: torch.dtype) -> None:
    logits = torch.zeros(4, 49152, dtype=dtype)
    for row, columns in enumerate([[5, 9], [0, 49151], [30000, 30001, 40000], [77]]):
        logits[row, columns] = 2.0
    logits[3, 100] = float("nan")  # NaN wins, as in argmax
    ids, _ = Sampler()(logits, [state(temperature=0.0) for _ in range(4)])
    assert ids == [5, 0, 30000, 100] == logits.argmax(-1).tolist()


def test_repetition_penalty_matches_hand_reference() -> None:
    logits = torch.tensor([[2.0, -1.0, 0.5, 3.0, 1.0]])
    s = state(prompt=[0], output=[1, 1, 2], repetition_penalty=2.0)
    # seen = {0, 1, 2}: positives halved, negatives doubled; 3 and 4 untouched.
    expected = torch.tensor([[1.0, -2.0, 0.25, 3.0, 1.0]])
    torch.testing.assert_close(apply_penalties(logits, [s]), expected)


def test_presence_and_frequency_penalties_use_output_only() -> None:
    logits = torch.tensor([[2.0, -1.0, 0.5, 3.0, 1.0]])
    s = state(prompt=[0, 4], output=[1, 1, 2], presence_penalty=0.5, frequency_penalty=0.25)
    # token 1: -1 - 0.5 - 2*0.25; token 2: 0.5 - 0.5 - 0.25; prompt-only tokens 0, 4 untouched.
    expected = torch.tensor([[2.0, -2.0, -0.25, 3.0, 1.0]])
    torch.testing.assert_close(apply_penalties(logits, [s]), expected)


def test_penalties_are_per_row_and_leave_input_intact() -> None:
    logits = torch.tensor([[2.0, -1.0, 0.5, 3.0], [2.0, -1.0, 0.5, 3.0]])
    before = logits.clone()
    rows = [state(output=[3], frequency_penalty=2.0), state(output=[3])]
    out = apply_penalties(logits, rows)
    torch.testing.assert_close(out, torch.tensor([[2.0, -1.0, 0.5, 1.0], [2.0, -1.0, 0.5, 3.0]]))
    torch.testing.assert_close(logits, before)
    ids, _ = Sampler()(logits[:1], [state(output=[3], frequency_penalty=2.0, temperature=0.0)])
    assert ids == [0]  # the penalty flips the greedy choice from 3 to 0


def test_min_tokens_masks_stop_ids_until_met() -> None:
    logits = torch.tensor([[0.0, 1.0, 0.5, 5.0, 0.2]])  # EOS (3) is the argmax
    s = state(temperature=0.0, min_tokens=2, stop_token_ids=(1,))
    assert Sampler()(logits, [s])[0] == [2]  # EOS and stop id 1 both masked
    s.output_token_ids.extend([0, 0])
    assert Sampler()(logits, [s])[0] == [EOS]


def test_top_k_1_equals_greedy() -> None:
    logits = torch.randn(8, 40, generator=torch.Generator().manual_seed(1))
    ids, _ = Sampler()(logits, [state(temperature=1.5, top_k=1) for _ in range(8)])
    assert ids == logits.argmax(-1).tolist()


def test_tiny_top_p_keeps_only_top_token() -> None:
    logits = torch.randn(8, 40, generator=torch.Generator().manual_seed(2))
    ids, _ = Sampler()(logits, [state(temperature=2.0, top_p=1e-6) for _ in range(8)])
    assert ids == logits.argmax(-1).tolist()


def test_min_p_drops_unlikely_tokens_only() -> None:
    probs = [0.5, 0.3, 0.15, 0.05]  # min_p=0.5 keeps p >= 0.25: tokens 0 and 1
    freq = draw_counts([math.log(p) for p in probs], 4000, min_p=0.5)
    assert freq[2:].sum() == 0
    assert abs(freq[0].item() - 0.625) < 0.05  # renormalised 0.5 / 0.8


def test_top_k_and_top_p_truncate_the_distribution() -> None:
    row = [math.log(p) for p in (0.4, 0.3, 0.2, 0.1)]
    assert draw_counts(row, 2000, top_k=2)[2:].sum() == 0
    nucleus = draw_counts(row, 2000, top_p=0.65)  # 0.4 < 0.65 <= 0.7: tokens 0 and 1
    assert nucleus[2:].sum() == 0 and nucleus[1] > 0.3
    # top-p sees the top-k renormalised probs (.44, .33, .22): token 2 starts at .78 >= .75, so it goes.
    both = draw_counts(row, 2000, top_k=3, top_p=0.75)
    assert both[2:].sum() == 0 and both[1] > 0.3


def test_unseeded_distribution_matches_softmax() -> None:
    row, temperature, n = [1.0, 0.2, -0.5, 2.0, 0.0], 0.7, 20_000
    freq = draw_counts(row, n, temperature=temperature)
    expected = torch.softmax(torch.tensor(row) / temperature, dim=0)
    # Binomial std is <= sqrt(0.25 / 20000) ~ 0.0035, so 0.015 is > 4 sigma per token.
    assert (freq - expected).abs().max() < 0.015


def test_seeded_request_is_batch_independent() -> None:
    gen = torch.Generator().manual_seed(3)
    steps = [torch.randn(5, 64, generator=gen) for _ in range(20)]

    def run(batched: bool) -> list[int]:
        seeded = state(seed=1234, temperature=0.9, top_p=0.9)
        others = [state(temperature=0.0), state(top_k=5), state(seed=7, min_p=0.1), state(logprobs=2)]
        tokens = []
        for logits in steps:
            batch = [others[0], seeded, *others[1:]] if batched else [seeded]
            ids, _ = Sampler()(logits if batched else logits[1:2], batch)
            token = ids[1] if batched else ids[0]
            seeded.output_token_ids.append(token)
            tokens.append(token)
        return tokens

    alone = run(batched=False)
    assert alone == run(batched=True)
    assert len(set(alone)) > 5  # actually sampling, not collapsing to a constant


def test_mixed_batch_keeps_greedy_rows_exact() -> None:
    logits = torch.randn(4, 30, generator=torch.Generator().manual_seed(4))
    batch = [state(temperature=0.0), state(top_k=3), state(temperature=0.0), state(top_p=0.5, seed=1)]
    ids, _ = Sampler()(logits, batch)
    assert ids[0] == logits[0].argmax() and ids[2] == logits[2].argmax()
    assert ids[1] in logits[1].topk(3).indices.tolist()


@pytest.mark.parametrize("n", [0, 3])
def test_logprobs_are_raw_log_softmax_with_sorted_top_n(n: int) -> None:
    logits = torch.randn(2, 30, generator=torch.Generator().manual_seed(5))
    batch = [state(logprobs=n, temperature=1.3, repetition_penalty=1.5, output=[1]), state()]
    ids, logprobs = Sampler()(logits, batch)
    reference = torch.log_softmax(logits[0], dim=-1)
    entry = logprobs[0]
    assert entry is not None and logprobs[1] is None and entry.token_id == ids[0]
    assert entry.logprob == pytest.approx(reference[ids[0]].item(), abs=1e-6)
    assert list(entry.top) == reference.topk(n).indices.tolist()
    values = list(entry.top.values())
    assert values == sorted(values, reverse=True)
    torch.testing.assert_close(torch.tensor(values), reference.topk(n).values)


def test_bfloat16_logits() -> None:
    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(6)).bfloat16()
    argmax = logits.float().argmax(-1).tolist()
    assert Sampler()(logits, [state(temperature=0.0) for _ in range(3)])[0] == argmax
    ids, logprobs = Sampler()(logits, [state(temperature=0.0, logprobs=1), state(top_k=1), state(seed=0)])
    assert ids[:2] == argmax[:2] and 0 <= ids[2] < 50
    assert logprobs[0] is not None and math.isfinite(logprobs[0].logprob)
