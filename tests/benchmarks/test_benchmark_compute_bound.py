"""``benchmarks/compute_bound.py``: its FLOP counts against torch's own counter, and the script end to end."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from benchmark_scripts import BENCHMARKS, load
from torch.utils.flop_counter import FlopCounterMode

from plinth.engine.model_config import ModelConfig

compute_bound = load("compute_bound")


def test_prefill_and_decode_flops_match_torchs_count_of_the_hf_model(
    tiny_checkpoint_factory: Callable[[str], Path],
) -> None:
    """transformers' eager forward (the LM head on the last position only), counted by FlopCounterMode.
    Eager attention computes the whole score matrix and masks its upper half, where the engine's counts
    the causal half, so that difference is added to ours before comparing."""
    from transformers import AutoModelForCausalLM

    path = tiny_checkpoint_factory("llama")
    flops = compute_bound.Flops(ModelConfig.from_pretrained(path))
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager").eval()
    length = 12
    ids = torch.randint(16, model.config.vocab_size, (1, length))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(ids, logits_to_keep=1)
    masked_half = length * length - length * (length + 1) / 2
    expected = flops.prefill(1, length) + flops.attention(masked_half)
    assert counter.get_total_flops() == pytest.approx(expected, rel=1e-9)

    with torch.no_grad():  # one decode token over a cache of `length`: context length + 1
        cache = model(ids, use_cache=True).cache
        with FlopCounterMode(display=False) as counter:
            model(ids[:, :1], cache=cache, use_cache=True)
    assert counter.get_total_flops() == pytest.approx(flops.decode_step(1, length + 1), rel=1e-9)


@pytest.mark.timeout(300)
def test_script_prints_each_phase_and_the_targets_share(
    tiny_checkpoint_factory: Callable[[str], Path], tmp_path: Path
) -> None:
    model = tiny_checkpoint_factory("llama")
    cmd = [sys.executable, str(BENCHMARKS / "compute_bound.py"), "--model", str(model), "--dtype", "float32",
           "--streams", "3", "--input-len", "8", "--output-len", "4", "--steps", "3", "--gemm-size", "256",
           "--target", "50"]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=280, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    peak = float(re.search(r"float32 GEMM 256², best of 5: ([\d.]+) GFLOP/s", run.stdout).group(1))
    for phase, rows in (("prefill 3 × 8", 24), ("decode step, 3 streams", 3)):
        row = re.search(
            rf"^\| {phase} \| {rows} \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", run.stdout, re.M
        )
        assert row, f"no row for {phase!r} in:\n{run.stdout}"
        ms, gflop, rate, share = map(float, row.groups())
        assert ms > 0 and gflop > 0
        assert rate == pytest.approx(gflop / (ms / 1000), rel=0.02)
        assert share == pytest.approx(rate / peak, rel=0.05, abs=0.006)
    wave = re.search(r"at the measured phases ([\d.]+) s, ([\d.]+) tok/s", run.stdout)
    assert wave and float(wave.group(2)) == pytest.approx(3 * 4 / float(wave.group(1)), rel=0.05)
    target = re.search(
        r"target 50.0 tok/s: ([\d.]+) GFLOP/s end to end = ([\d.]+) of the GEMM rate", run.stdout
    )
    assert target and float(target.group(2)) == pytest.approx(
        float(target.group(1)) / peak, rel=0.05, abs=0.006
    )
