"""Plinth's engine on GGUF files against transformers' own GGUF loader, per architecture and type.

Each tiny random checkpoint (tests/conftest.py) is converted to GGUF the way llama.cpp does
(tests/gguf_fixtures.py), then loaded twice: by Plinth (``EngineConfig(model=<file>.gguf)``) and by
``AutoModelForCausalLM.from_pretrained(folder, gguf_file=...)``, which dequantizes and unpermutes with
its own code. transformers' qwen3 GGUF mapping does not read ``attention.key_length`` (it assumes
head_dim 128), so Qwen3 is compared instead with the Hugging Face model whose matrices went through
gguf-py's quantize -> dequantize round trip (no GGUF file, no permutation involved).
Tolerance: float32 logits within 1e-4 absolute (as tests/test_engine_parity.py: both compute in
float32 on identical dequantized weights; the difference is summation order).
"""

from __future__ import annotations

import shutil

import pytest
import torch
from gguf import GGMLQuantizationType, quants
from gguf_fixtures import K_QUANTS, write_gguf
from transformers import AutoConfig, AutoModelForCausalLM

from plinth.engine import EngineConfig, LLMEngine, SamplingParams
from plinth.engine.attention import AttentionMetadata, SeqSpan

LOGIT_ATOL = 1e-4
CASES = [
    *[(arch, "F32") for arch in ("llama", "mistral", "qwen2", "qwen3")],
    *[("llama", q) for q in ("F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1")],
    ("mistral", "Q4_1"),
    ("qwen2", "Q8_0"),
    ("qwen3", "Q4_0"),
]


def prefill_logits(engine: LLMEngine, prompt: list[int]) -> torch.Tensor:
    """All-position logits from one prefill through the paged cache."""
    runner = engine.runner
    blocks = list(range(-(-len(prompt) // runner.block_size)))
    meta = AttentionMetadata.build([SeqSpan(blocks, 0, len(prompt))], runner.block_size, runner.device)
    with torch.inference_mode():
        hidden = runner.model(torch.tensor(prompt), torch.arange(len(prompt)), runner.kv_caches, meta)
        return runner.model.compute_logits(hidden).float()


def transformers_gguf_model(path):
    return AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()


def round_trip_model(hf_dir, qtype: str):
    """The HF model with each matrix quantized and dequantized by gguf-py, as the GGUF stores it."""
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    kind = GGMLQuantizationType[qtype]
    with torch.no_grad():
        for param in model.parameters():
            if param.ndim == 2 and qtype != "F32":
                stored = quants.quantize(param.numpy(), kind)
                param.copy_(torch.from_numpy(quants.dequantize(stored, kind)))
    return model


def greedy(model, prompt: list[int], steps: int) -> list[int]:
    ids = list(prompt)
    with torch.inference_mode():
        for _ in range(steps):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    return ids[len(prompt) :]


def prompt_ids(n: int, seed: int, vocab: int = 1800) -> list[int]:
    return torch.randint(3, vocab, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def assert_parity(path, reference) -> None:
    engine = LLMEngine(EngineConfig(model=str(path), dtype="float32"))
    prompt = prompt_ids(29, seed=3)
    with torch.inference_mode():
        theirs = reference(torch.tensor([prompt])).logits[0].float()
    torch.testing.assert_close(prefill_logits(engine, prompt), theirs, atol=LOGIT_ATOL, rtol=0)
    params = SamplingParams(max_tokens=12, temperature=0.0, ignore_eos=True)
    assert engine.generate([prompt], params)[0] == greedy(reference, prompt, 12)


@pytest.mark.parametrize(("arch", "qtype"), CASES)
def test_gguf_logits_match_transformers_gguf_loader(arch, qtype, tiny_checkpoint_factory, tmp_path):
    hf_dir = tiny_checkpoint_factory(arch)
    path = write_gguf(hf_dir, tmp_path / f"{arch}-{qtype}.gguf", qtype)
    reference = round_trip_model(hf_dir, qtype) if arch == "qwen3" else transformers_gguf_model(path)
    assert_parity(path, reference)


@pytest.fixture(scope="module")
def wide_llama(tiny_checkpoint_factory, tmp_path_factory):
    """A llama checkpoint 256 wide: K-quant rows are made of 256-value super-blocks."""
    out = tmp_path_factory.mktemp("wide-llama")
    tiny = tiny_checkpoint_factory("llama")
    config = AutoConfig.from_pretrained(tiny)
    config.hidden_size, config.intermediate_size, config.head_dim = 256, 512, 64
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config, dtype=torch.float32).save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        shutil.copy(tiny / name, out)
    return out


@pytest.mark.parametrize("qtype", K_QUANTS)
def test_k_quant_gguf_matches_transformers_gguf_loader(qtype, wide_llama, tmp_path):
    path = write_gguf(wide_llama, tmp_path / f"wide-{qtype}.gguf", qtype)
    assert_parity(path, transformers_gguf_model(path))
