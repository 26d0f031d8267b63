"""``plinth::argmax``, the sampler's argmax on CPU, gives ``torch.argmax``'s index in every case that
index is defined by: ties (the first), NaN (the first NaN wins), infinities, rows that are not a
multiple of 16 long, each float dtype, strided input."""

from __future__ import annotations

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from plinth.engine import native
from plinth.engine.sampler import Sampler, SamplingState
from plinth.engine.sampling_params import SamplingParams

pytestmark = pytest.mark.skipif(not native.has("argmax"), reason="no AVX2/AVX512-BF16: ATen's max serves")

DTYPES = [torch.float32, torch.bfloat16, torch.float16]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("width", [1, 15, 16, 17, 33, 1000, 49152, 49157])
def test_random_rows_match_torch(dtype: torch.dtype, width: int) -> None:
    x = torch.randn(7, width, generator=torch.Generator().manual_seed(width)).to(dtype)
    assert torch.equal(torch.ops.plinth.argmax(x), x.argmax(-1))


@pytest.mark.parametrize("dtype", DTYPES)
def test_ties_nan_and_infinities_match_torch(dtype: torch.dtype) -> None:
    width = 1000  # 62 chunks of 16 and a tail of 8
    x = torch.zeros(10, width, dtype=dtype)
    x[0, [3, 500, 999]] = 1.0  # ties: the first
    x[1, [995, 998]] = 1.0  # ties in the tail only
    x[2, [20, 21]] = float("nan")
    x[2, 5] = float("inf")  # NaN beats inf
    x[3, 999] = float("nan")  # a NaN in the tail beats every earlier value
    x[3, 0] = 5.0
    x[4] = float("-inf")  # all -inf: the first
    x[5, 700] = float("inf")
    x[6] = -1.0
    x[6, 640] = -0.0  # the maximum is -0.0
    x[7] = -1.0
    x[7, 17] = -0.0
    x[7, 18] = 0.0  # -0.0 == 0.0: the first of the two
    x[8, :] = -3.0  # a tie over the whole row
    x[9, 16] = float("nan")  # NaN at a chunk's first lane
    assert torch.ops.plinth.argmax(x).tolist() == x.argmax(-1).tolist()
    assert x.argmax(-1).tolist() == [3, 995, 20, 999, 0, 700, 640, 17, 0, 16]


def test_strided_input_and_no_rows() -> None:
    x = torch.randn(40, 300, generator=torch.Generator().manual_seed(1))
    view = x.t()[:, 5:37]  # not contiguous
    assert torch.equal(torch.ops.plinth.argmax(view), view.argmax(-1))
    assert torch.ops.plinth.argmax(torch.empty(0, 8)).shape == (0,)
    with pytest.raises(RuntimeError, match="2-D CPU tensor"):
        torch.ops.plinth.argmax(torch.randn(8))


def test_the_greedy_sampler_picks_through_the_operator() -> None:
    logits = torch.randn(16, 4096, generator=torch.Generator().manual_seed(2))
    states = [SamplingState.create(SamplingParams(temperature=0.0), [0], ()) for _ in range(16)]
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        ids, _ = Sampler()(logits, states)
    assert ids == logits.argmax(-1).tolist()
    names = {event.name for event in prof.events()}
    assert "plinth::argmax" in names and "aten::max" not in names
