"""The text side of a checkpoint: tokenizer and chat template (GGUF metadata, tokenizer files or
chat_template.jinja) through one loader, and the checkpoint's sampling defaults in LocalModel."""

from __future__ import annotations

import json
import shutil

import pytest
from gguf_fixtures import write_gguf

from plinth.engine.model_config import ModelConfig
from plinth.llm import ChatOptions, LocalModel
from plinth.llm.tokenizer import load_tokenizer

TEXTS = [
    "Hello world, this is a test.",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "Ünïcödé, 中文 and emoji 🎉 with  double  spaces\nand lines",
]
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there!"}]


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def arch(request):
    return request.param


@pytest.fixture(scope="module")
def gguf_path(arch, tiny_checkpoint_factory, tmp_path_factory):
    return write_gguf(tiny_checkpoint_factory(arch), tmp_path_factory.mktemp("text") / f"{arch}.gguf", "Q8_0")


@pytest.fixture(scope="module")
def hf_tokenizer(arch, tiny_checkpoint_factory):
    return load_tokenizer(tiny_checkpoint_factory(arch))


def test_gguf_tokenizer_encodes_like_the_checkpoint_tokenizer(gguf_path, hf_tokenizer):
    ours = load_tokenizer(gguf_path)
    for text in TEXTS:
        ids = ours.encode(text, add_special_tokens=False)
        assert ids == hf_tokenizer.encode(text, add_special_tokens=False), text
        assert ours.decode(ids, skip_special_tokens=True) == hf_tokenizer.decode(
            ids, skip_special_tokens=True
        )


def test_gguf_tokenizer_has_special_tokens_and_chat_template(gguf_path, hf_tokenizer):
    ours = load_tokenizer(gguf_path)
    assert ours.eos_token == "<|im_end|>"
    assert ours.convert_tokens_to_ids("<|im_end|>") == 2
    assert ours.encode("<|im_end|>", add_special_tokens=False) == [2]  # one special token, not split
    rendered = ours.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    assert rendered == hf_tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    assert rendered.endswith("<|im_start|>assistant\n")


def test_chat_template_jinja_file_is_used(tiny_checkpoint_factory, tmp_path):
    folder = shutil.copytree(tiny_checkpoint_factory("qwen2"), tmp_path / "jinja")
    config = json.loads((folder / "tokenizer_config.json").read_text())
    del config["chat_template"]
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    (folder / "chat_template.jinja").write_text(
        "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}"
    )
    assert (
        load_tokenizer(folder).apply_chat_template(MESSAGES, tokenize=False)
        == "[system] Be brief.\n[user] Hi there!\n"
    )


def test_chat_template_is_sandboxed(hf_tokenizer):
    evil = "{{ messages.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(Exception, match="unsafe|not safely|access"):
        hf_tokenizer.apply_chat_template(MESSAGES, chat_template=evil, tokenize=False)


def _model(defaults) -> LocalModel:
    return LocalModel(engine=None, tokenizer=None, name="m", max_model_len=4096, defaults=defaults)


def test_generation_config_defaults_apply_when_the_request_sets_none(tiny_checkpoint_factory, tmp_path):
    folder = shutil.copytree(tiny_checkpoint_factory("qwen2"), tmp_path / "gen")
    generation = {"eos_token_id": [2, 0], "do_sample": True, "temperature": 0.6, "top_p": 0.9, "top_k": 40,
                  "repetition_penalty": 1.1, "max_new_tokens": 77}  # fmt: skip
    (folder / "generation_config.json").write_text(json.dumps(generation))
    model = _model(ModelConfig.from_pretrained(folder).generation_defaults)
    params = model.sampling_params(None, prompt_len=10)
    assert (params.temperature, params.top_p, params.top_k) == (0.6, 0.9, 40)
    assert (params.repetition_penalty, params.max_tokens) == (1.1, 77)
    asked = model.sampling_params(ChatOptions(temperature=0.2, top_p=0.5, max_tokens=5), prompt_len=10)
    assert (asked.temperature, asked.top_p, asked.max_tokens, asked.top_k) == (0.2, 0.5, 5, 40)


def test_greedy_generation_config_keeps_engine_sampling_defaults(tiny_checkpoint_factory, tmp_path):
    folder = shutil.copytree(tiny_checkpoint_factory("qwen2"), tmp_path / "greedy")
    generation = {"do_sample": False, "temperature": 0.6, "repetition_penalty": 1.2}
    (folder / "generation_config.json").write_text(json.dumps(generation))
    params = _model(ModelConfig.from_pretrained(folder).generation_defaults).sampling_params(None, 10)
    assert (params.temperature, params.top_k, params.repetition_penalty) == (1.0, 0, 1.2)


def test_gguf_sampling_metadata_are_defaults(tiny_checkpoint_factory, tmp_path):
    sampling = {"temp": 0.25, "top_k": 7, "top_p": 0.75, "penalty_repeat": 1.5}
    path = write_gguf(tiny_checkpoint_factory("llama"), tmp_path / "s.gguf", sampling=sampling)
    params = _model(ModelConfig.from_pretrained(path).generation_defaults).sampling_params(None, 10)
    assert (params.temperature, params.top_k, params.top_p, params.repetition_penalty) == (0.25, 7, 0.75, 1.5)
