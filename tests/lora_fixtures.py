"""Build real PEFT LoRA adapters for tests, with PEFT itself, so tests compare against the reference.

``make_peft_adapter(base, out)`` wraps the tiny checkpoint at ``base`` with ``get_peft_model``, gives
every ``lora_B`` random non-zero values (PEFT initialises B to zero, which would make an adapter a
no-op and every parity test pass trivially) and saves it with ``save_pretrained``.
``live_peft_model(base, adapter)`` loads a saved adapter back into PEFT, for its ``scaling`` and
logits. ``make_lmi_archive(out, {name: folder})`` packs adapters in the SageMaker LMI layout
(``adapters/<name>/...`` inside a ``.tar.gz``).

Example::

    >>> adapter = make_peft_adapter(tiny_llama, tmp_path / "a", r=4, targets=("q_proj",))  # doctest: +SKIP
"""

from __future__ import annotations

import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM

__all__ = ["live_peft_model", "lora_modules", "make_lmi_archive", "make_peft_adapter"]


def make_peft_adapter(
    base_path: Path,
    out: Path,
    *,
    r: int = 8,
    alpha: float = 16,
    targets: Sequence[str] = ("q_proj", "v_proj"),
    rslora: bool = False,
    rank_pattern: Mapping[str, int] | None = None,
    alpha_pattern: Mapping[str, float] | None = None,
    seed: int = 0,
) -> Path:
    """Save a PEFT LoRA adapter for the checkpoint at ``base_path`` to ``out`` and return ``out``."""
    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        target_modules=list(targets),
        use_rslora=rslora,
        rank_pattern=dict(rank_pattern or {}),
        alpha_pattern=dict(alpha_pattern or {}),
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(base, config)
    _randomise_lora_b(model, seed)
    model.save_pretrained(out)
    return Path(out)


def live_peft_model(base_path: Path, adapter_path: Path) -> PeftModel:
    """Load ``adapter_path`` onto its base with PEFT, the reference our loader must agree with."""
    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    return PeftModel.from_pretrained(base, adapter_path).eval()


def lora_modules(model: PeftModel) -> dict[str, torch.nn.Module]:
    """PEFT's LoRA layers by module name relative to the base model (``model.layers.0.self_attn.q_proj``)."""
    prefix = "base_model.model."
    return {
        name.removeprefix(prefix): module
        for name, module in model.named_modules()
        if hasattr(module, "lora_A") and hasattr(module, "scaling")
    }


def make_lmi_archive(out: Path, adapters: Mapping[str, Path]) -> Path:
    """Pack each adapter folder as ``adapters/<name>/`` in the ``.tar.gz`` ``out`` (SageMaker LMI layout)."""
    with tarfile.open(out, "w:gz") as tar:
        for name, folder in adapters.items():
            tar.add(folder, arcname=f"adapters/{name}")
    return out


def _randomise_lora_b(model: torch.nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if ".lora_B." in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)


def greedy_tokens_and_logprobs(
    engine: Any, prompts: list[list[int]], max_tokens: int, adapter: str | None | list[str | None]
) -> list[tuple[list[int], list[float]]]:
    """Each prompt's greedy tokens and their logprobs, decoded together in one engine (``LLMEngine``):
    what two engines that must agree (packed or quantized against plain) are compared on. ``adapter``:
    one for every prompt, or one per prompt."""
    from plinth.engine import SamplingParams

    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True, logprobs=0)
    adapters = adapter if isinstance(adapter, list) else [adapter] * len(prompts)
    ids = [engine.add_request(p, params, adapter=a) for p, a in zip(prompts, adapters, strict=True)]
    got: dict[str, tuple[list[int], list[float]]] = {i: ([], []) for i in ids}
    while engine.has_unfinished():
        for out in engine.step():
            got[out.request_id][0].extend(out.new_token_ids)
            got[out.request_id][1].extend(lp.logprob for lp in out.new_logprobs or [])
    return [got[i] for i in ids]
