"""Write random-weight checkpoints in Hugging Face format, fully offline.

Contract: ``init_random(arch, size, out)`` produces a directory that ``transformers`` loads as is
(``config.json``, ``generation_config.json``, ``tokenizer.json``, ``tokenizer_config.json`` with a
ChatML chat template, and ``model.safetensors`` unless the size is only used with dummy weights).
``config.json`` carries ``"plinth_random_weights": true`` so every layer above can label the model.

The weights are made by ``transformers`` itself (``from_config`` under a fixed seed, then
``save_pretrained``) so tensor names and shapes are by construction what the hub would ship. The
tokenizer is a byte-level BPE trained on a corpus shipped with the package, deterministically, so any
unicode string round-trips and the same seed gives byte-identical checkpoints.

Example::

    >>> path = init_random("llama", "tiny", Path("/tmp/llama-tiny"))  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from plinth.engine.presets import (
    BOS_TOKEN_ID,
    EOS_TOKEN_ID,
    PAD_TOKEN_ID,
    RANDOM_TOKENIZER_VOCAB,
    SPECIAL_TOKENS,
    preset,
)

__all__ = ["CHAT_TEMPLATE", "init_random", "train_tokenizer"]

CORPUS_PATH = Path(__file__).with_name("tokenizer_corpus.txt")
WEIGHTED_SIZES = ("tiny", "small")  # larger sizes are benchmarked with --load-format dummy

CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

_WEIGHT_FILE_GLOBS = ("model.safetensors", "model.safetensors.index.json", "model-*-of-*.safetensors")


def init_random(arch: str, size: str, out: Path, seed: int = 0, write_weights: bool | None = None) -> Path:
    """Write a random-weight ``arch``/``size`` checkpoint to ``out`` and return ``out``.

    ``write_weights=None`` writes ``model.safetensors`` for tiny and small only; 1b/7b get config and
    tokenizer, for the engine's ``--load-format dummy``. Weight files left in ``out`` by an earlier
    run are removed first, so the directory never pairs a new config with stale tensors.
    """
    config = preset(arch, size)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _remove_weight_files(out)
    if write_weights is None:
        write_weights = size in WEIGHTED_SIZES
    if write_weights:
        _write_weights(config, out, seed)  # first: save_pretrained writes its own config.json
    labels = {"plinth_random_weights": True, "plinth_preset": f"{arch}-{size}", "plinth_seed": seed}
    _write_json(out / "config.json", {**config, "dtype": config["torch_dtype"], **labels})
    _write_json(out / "generation_config.json", _generation_config())
    _write_tokenizer(out, config["vocab_size"], config["max_position_embeddings"])
    (out / "README.md").write_text(_readme(arch, size, seed), encoding="utf-8")
    return out


def train_tokenizer(vocab_size: int) -> Tokenizer:
    """Train the byte-level BPE on the shipped corpus (cached; a new object per call).

    Byte-level pre-tokenizer and decoder mean every unicode string round-trips even though the
    corpus is small. ``min_frequency=2`` keeps merges that generalise, so training stops before a
    large target; the special tokens get ids 0, 1, 2 (see presets).
    """
    return Tokenizer.from_str(_trained_tokenizer_json(vocab_size))


@functools.lru_cache(maxsize=8)
def _trained_tokenizer_json(vocab_size: int) -> str:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS_PATH.read_text(encoding="utf-8").split("\n\n"), trainer)
    for token_id, token in enumerate(SPECIAL_TOKENS):
        assert tokenizer.token_to_id(token) == token_id, "special token ids must match presets"
    return tokenizer.to_str()


def _write_weights(config: dict[str, Any], out: Path, seed: int) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM  # heavy import, only when needed

    hf_config = AutoConfig.for_model(**config)
    dtype = getattr(torch, config["torch_dtype"])
    with torch.random.fork_rng(devices=[]):  # do not disturb the caller's RNG stream
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(hf_config, dtype=dtype)
    model.save_pretrained(out)


def _write_tokenizer(out: Path, vocab_size: int, max_length: int) -> None:
    tokenizer = train_tokenizer(vocab_size)
    assert tokenizer.get_vocab_size() <= vocab_size
    if vocab_size == RANDOM_TOKENIZER_VOCAB:
        assert tokenizer.get_vocab_size() == vocab_size, "update presets.RANDOM_TOKENIZER_VOCAB"
    tokenizer.save(str(out / "tokenizer.json"))
    special = {
        str(i): {"content": t, "lstrip": False, "rstrip": False, "normalized": False,
                 "single_word": False, "special": True}
        for i, t in enumerate(SPECIAL_TOKENS)
    }  # fmt: skip
    _write_json(
        out / "tokenizer_config.json",
        {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "added_tokens_decoder": special,
            "bos_token": None,
            "eos_token": SPECIAL_TOKENS[EOS_TOKEN_ID],
            "pad_token": SPECIAL_TOKENS[PAD_TOKEN_ID],
            "unk_token": None,
            "add_bos_token": False,
            "add_eos_token": False,
            "clean_up_tokenization_spaces": False,  # otherwise decode(" .") != " ."
            "model_max_length": max_length,
            "chat_template": CHAT_TEMPLATE,
        },
    )


def _generation_config() -> dict[str, Any]:
    # Stop on the end of a chat turn and on end-of-text, as Qwen's instruct checkpoints do.
    return {
        "bos_token_id": BOS_TOKEN_ID,
        "eos_token_id": [EOS_TOKEN_ID, BOS_TOKEN_ID],
        "pad_token_id": PAD_TOKEN_ID,
    }


def _remove_weight_files(out: Path) -> None:
    for pattern in _WEIGHT_FILE_GLOBS:
        for stale in out.glob(pattern):
            stale.unlink()


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _readme(arch: str, size: str, seed: int) -> str:
    return (
        f"# Random-weight checkpoint: {arch}-{size} (seed {seed})\n\n"
        "Written by `plinth model init-random`. The weights are RANDOM: this model produces\n"
        "meaningless text. It exists to exercise loading, batching, LoRA and serving offline.\n"
        '`config.json` is labelled `"plinth_random_weights": true`. The tokenizer is a small\n'
        "byte-level BPE trained on a corpus shipped with Plinth; its chat template is ChatML.\n"
        "If there is no `model.safetensors`, use it with `--load-format dummy`.\n"
    )
