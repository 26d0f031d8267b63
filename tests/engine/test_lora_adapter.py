"""PEFT adapter loading: tensors and scaling agree with PEFT itself; every bad adapter fails by name."""

from __future__ import annotations

import dataclasses
import io
import json
import pickle
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from lora_fixtures import live_peft_model, lora_modules, make_lmi_archive, make_peft_adapter
from safetensors.torch import load_file, save_file

from plinth.engine.lora import (
    TARGETS,
    AdapterError,
    LoraAdapter,
    load_adapter,
    resolve_adapter_source,
)
from plinth.engine.model_config import ModelConfig

SAFETENSORS = "adapter_model.safetensors"
Q_A = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
Q_B = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"


@pytest.fixture(scope="module")
def llama(tiny_checkpoint_factory: Callable[[str], Path]) -> Path:
    return tiny_checkpoint_factory("llama")


@pytest.fixture(scope="module")
def llama_config(llama: Path) -> ModelConfig:
    return ModelConfig.from_pretrained(llama)


@pytest.fixture(scope="module")
def good_adapter(llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every target module, rank 4: the adapter the validation tests break one way at a time."""
    return make_peft_adapter(llama, tmp_path_factory.mktemp("good") / "good", r=4, alpha=8, targets=TARGETS)


@pytest.fixture
def bad_copy(good_adapter: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(good_adapter, tmp_path / "bad"))


# --- loading agrees with PEFT ------------------------------------------------------------------------

PARITY_CASES = {
    "plain": ("llama", dict(r=8, alpha=16, targets=TARGETS)),
    "rslora": ("qwen3", dict(r=4, alpha=8, targets=("q_proj", "k_proj", "down_proj"), rslora=True)),
    "patterns": (
        "qwen3",
        dict(
            r=4,
            alpha=8,
            targets=("q_proj", "o_proj", "up_proj", "down_proj"),
            rank_pattern={"o_proj": 2, "layers.1.self_attn.q_proj": 6},
            alpha_pattern={"down_proj": 3, r"layers\.0\.mlp\.up_proj": 5},
        ),
    ),
    # Overlapping patterns: PEFT takes the first match in the order of the *saved* config. PEFT before
    # 0.22 wrote it with sorted keys, so a reload gave layer 1's q_proj alpha 6 (2 while training); later
    # versions keep the order. The loader must agree with whichever PEFT is installed.
    "overlapping alpha patterns": (
        "mistral",
        dict(r=4, alpha=8, alpha_pattern={"q_proj": 2, "layers.1.self_attn.q_proj": 6}),
    ),
}


@pytest.mark.parametrize("case", PARITY_CASES)
def test_load_matches_peft(case: str, tiny_checkpoint_factory: Callable[[str], Path], tmp_path: Path) -> None:
    arch, kwargs = PARITY_CASES[case]
    base = tiny_checkpoint_factory(arch)
    path = make_peft_adapter(base, tmp_path / "adapter", **kwargs)
    adapter = load_adapter(path, "a", ModelConfig.from_pretrained(base), max_rank=16)

    peft_layers = lora_modules(live_peft_model(base, path))
    assert len(peft_layers) == len(adapter.weights) > 0
    saved = load_file(path / SAFETENSORS)
    for module_path, layer in peft_layers.items():
        weights = adapter.weights[_layer_key(module_path)]
        assert weights.scaling == pytest.approx(layer.scaling["default"], rel=1e-12)
        prefix = f"base_model.model.{module_path}"
        assert torch.equal(weights.a, saved[f"{prefix}.lora_A.weight"])
        assert torch.equal(weights.b, saved[f"{prefix}.lora_B.weight"])
        assert torch.equal(weights.b, layer.lora_B["default"].weight)
        assert weights.b.abs().sum() > 0, "fixture must give B non-zero values"
    assert adapter.rank == max(layer.r["default"] for layer in peft_layers.values())
    assert adapter.target_modules == {module for _, module in adapter.weights}
    assert adapter.base_model == str(base)
    assert adapter.num_bytes == sum(t.numel() * 4 for t in saved.values())


def test_pattern_case_really_varies_scaling(
    tiny_checkpoint_factory: Callable[[str], Path], tmp_path: Path
) -> None:
    """Guards the parity test above: the patterns must give modules different ranks and scalings."""
    arch, kwargs = PARITY_CASES["patterns"]
    base = tiny_checkpoint_factory(arch)
    adapter = load_adapter(
        make_peft_adapter(base, tmp_path / "p", **kwargs), "p", ModelConfig.from_pretrained(base), 16
    )
    w = adapter.weights
    assert (w[(0, "o_proj")].a.shape[0], w[(1, "q_proj")].a.shape[0], w[(0, "q_proj")].a.shape[0]) == (
        2,
        6,
        4,
    )
    assert (w[(0, "down_proj")].scaling, w[(0, "up_proj")].scaling, w[(1, "up_proj")].scaling) == (
        0.75,
        1.25,
        2.0,
    )


def test_overlapping_rank_patterns_fail_as_in_peft(
    llama: Path, llama_config: ModelConfig, tmp_path: Path
) -> None:
    """Overlapping rank patterns resolve in the saved config's order. PEFT before 0.22 saved them sorted,
    which put layer 1's pattern first (rank 6) over weights trained at rank 2: PEFT cannot reload such an
    adapter, and neither can we, with the reason named."""
    path = make_peft_adapter(
        llama, tmp_path / "o", r=4, rank_pattern={"q_proj": 2, "layers.1.self_attn.q_proj": 6}
    )
    _edit_config(rank_pattern={"layers.1.self_attn.q_proj": 6, "q_proj": 2})(path)
    with pytest.raises(RuntimeError, match="size mismatch"):
        live_peft_model(llama, path)
    with pytest.raises(AdapterError, match=r"layer 1 q_proj: .*rank 2/2 in the weights but r=6"):
        load_adapter(path, "o", llama_config, max_rank=8)


def test_bf16_tensors_become_float32(bad_copy: Path, llama_config: ModelConfig) -> None:
    _edit_tensors(bad_copy, lambda t: t.update({k: v.to(torch.bfloat16) for k, v in t.items()}))
    adapter = load_adapter(bad_copy, "bf16", llama_config, max_rank=8)
    assert {w.a.dtype for w in adapter.weights.values()} == {torch.float32}


# --- every validation error names the adapter and the problem ------------------------------------------


def _edit_config(**changes: Any) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        config = json.loads((path / "adapter_config.json").read_text())
        (path / "adapter_config.json").write_text(json.dumps({**config, **changes}))

    return edit


def _edit_tensors(path: Path, change: Callable[[dict[str, torch.Tensor]], Any]) -> None:
    tensors = load_file(path / SAFETENSORS)
    change(tensors)
    save_file(tensors, path / SAFETENSORS)


def _tensors(change: Callable[[dict[str, torch.Tensor]], Any]) -> Callable[[Path], None]:
    return lambda path: _edit_tensors(path, change)


def _rename_layer(tensors: dict[str, torch.Tensor]) -> None:
    for key in [k for k in tensors if ".layers.1." in k]:
        tensors[key.replace(".layers.1.", ".layers.7.")] = tensors.pop(key)


def _poison(value: float) -> Callable[[dict[str, torch.Tensor]], None]:
    def poison(tensors: dict[str, torch.Tensor]) -> None:
        tensors[Q_B][3, 1] = value

    return poison


def _truncate(path: Path) -> None:
    data = (path / SAFETENSORS).read_bytes()
    (path / SAFETENSORS).write_bytes(data[: len(data) // 2])


EMBED_A = "base_model.model.model.embed_tokens.lora_embedding_A"
BAD_ADAPTERS: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing config": (lambda p: (p / "adapter_config.json").unlink(), "has no adapter_config.json"),
    "invalid config json": (lambda p: (p / "adapter_config.json").write_text("{"), "is not valid JSON"),
    "missing weights": (lambda p: (p / SAFETENSORS).unlink(), "has no weights"),
    "not lora": (_edit_config(peft_type="IA3"), "peft_type is 'IA3'"),
    "modules_to_save": (
        _edit_config(modules_to_save=["lm_head"]),
        "modules_to_save ['lm_head'] is not supported",
    ),
    "embedding target": (_edit_config(target_modules=["q_proj", "embed_tokens"]), "LoRA on embed_tokens"),
    "lm_head target": (_edit_config(target_modules=["lm_head"]), "LoRA on lm_head"),
    "unknown target": (
        _edit_config(target_modules=["q_proj", "fc1"]),
        "target module 'fc1' is not supported",
    ),
    "dora": (_edit_config(use_dora=True), "DoRA (use_dora) is not supported"),
    "bias": (_edit_config(bias="lora_only"), "bias='lora_only' is not supported"),
    "lora_bias": (_edit_config(lora_bias=True), "bias on lora_B (lora_bias) is not supported"),
    "config rank differs": (_edit_config(r=5), "r=5 in adapter_config.json"),
    "embedding tensor": (_tensors(lambda t: t.update({EMBED_A: torch.ones(4, 9)})), "embed_tokens/lm_head"),
    "lm_head tensor": (
        _tensors(lambda t: t.update({"base_model.model.lm_head.weight": torch.ones(2, 2)})),
        "lm_head",
    ),
    "dora tensor": (
        _tensors(
            lambda t: t.update({Q_A.replace("lora_A.weight", "lora_magnitude_vector"): torch.ones(128)})
        ),
        "DoRA is not supported",
    ),
    "lora_B bias tensor": (
        _tensors(lambda t: t.update({Q_B.replace("weight", "bias"): torch.ones(128)})),
        "bias on lora_B is not supported",
    ),
    "unknown module tensor": (
        _tensors(lambda t: t.update({Q_A.replace("q_proj", "qkv_proj"): torch.ones(4, 128)})),
        "target module 'qkv_proj' is not supported",
    ),
    "stray tensor": (
        _tensors(lambda t: t.update({"base_model.model.model.norm.weight": torch.ones(128)})),
        "unexpected tensor 'base_model.model.model.norm.weight'",
    ),
    "layer out of range": (_tensors(_rename_layer), "the base model 'llama' has only 2 layers"),
    "A without B": (_tensors(lambda t: t.pop(Q_B)), "layer 0 q_proj: lora_B is missing"),
    "B without A": (_tensors(lambda t: t.pop(Q_A)), "layer 0 q_proj: lora_A is missing"),
    "wrong shape": (
        _tensors(lambda t: t.update({Q_A: torch.ones(4, 96)})),
        "probably trained for a different base",
    ),
    "corrupt file": (_truncate, "cannot read adapter_model.safetensors, it looks corrupt"),
    "nan": (_tensors(_poison(float("nan"))), "layer 0 q_proj: lora_B holds NaN or inf"),
    "inf": (_tensors(_poison(float("inf"))), "layer 0 q_proj: lora_B holds NaN or inf"),
    "bad pattern": (
        _edit_config(rank_pattern={"q_proj[": 2}),
        "rank_pattern/alpha_pattern in adapter_config.json",
    ),
    "no lora tensors": (_tensors(lambda t: t.clear()), "holds no LoRA tensors"),
}


@pytest.mark.parametrize("case", BAD_ADAPTERS)
def test_bad_adapter_is_refused_by_name(case: str, bad_copy: Path, llama_config: ModelConfig) -> None:
    break_it, problem = BAD_ADAPTERS[case]
    break_it(bad_copy)
    with pytest.raises(AdapterError) as err:
        load_adapter(bad_copy, "bad", llama_config, max_rank=8)
    assert str(err.value).startswith("adapter 'bad': ")
    assert problem in str(err.value)


def test_good_adapter_loads(good_adapter: Path, llama_config: ModelConfig) -> None:
    """The unbroken adapter passes, so each failure above is due to its one change."""
    adapter = load_adapter(good_adapter, "good", llama_config, max_rank=8)
    assert adapter.target_modules == frozenset(TARGETS)
    assert len(adapter.weights) == llama_config.num_layers * len(TARGETS)


def test_rank_above_maximum(good_adapter: Path, llama_config: ModelConfig) -> None:
    with pytest.raises(AdapterError, match=r"^adapter 'big': rank 4 exceeds .* maximum LoRA rank 2"):
        load_adapter(good_adapter, "big", llama_config, max_rank=2)


def test_wrong_base_model(good_adapter: Path, llama_config: ModelConfig) -> None:
    other = dataclasses.replace(llama_config, hidden_size=64, name="other-base")
    with pytest.raises(AdapterError, match=r"^adapter 'x': layer \d \w+: .*other-base.*different base model"):
        load_adapter(good_adapter, "x", other, max_rank=8)


def test_error_pickles_with_its_message() -> None:
    err = pickle.loads(pickle.dumps(AdapterError("n", "broken")))
    assert (str(err), err.name, err.problem) == ("adapter 'n': broken", "n", "broken")


# --- adapter_model.bin -----------------------------------------------------------------------------------


def test_bin_loads_with_weights_only(
    bad_copy: Path, llama_config: ModelConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    tensors = load_file(bad_copy / SAFETENSORS)
    torch.save(tensors, bad_copy / "adapter_model.bin")
    (bad_copy / SAFETENSORS).unlink()
    calls: list[dict[str, Any]] = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **kw: calls.append(kw) or real_load(*a, **kw))
    adapter = load_adapter(bad_copy, "bin", llama_config, max_rank=8)
    assert [kw.get("weights_only") for kw in calls] == [True]
    assert torch.equal(adapter.weights[(0, "q_proj")].a, tensors[Q_A])


class _Payload:  # anything but tensors must be refused by weights_only unpickling
    pass


def test_bin_with_pickled_object_is_refused(bad_copy: Path, llama_config: ModelConfig) -> None:
    buffer = io.BytesIO()
    torch.save({"x": _Payload()}, buffer)
    (bad_copy / "adapter_model.bin").write_bytes(buffer.getvalue())
    (bad_copy / SAFETENSORS).unlink()
    with pytest.raises(AdapterError, match=r"^adapter 'evil': cannot read adapter_model.bin"):
        load_adapter(bad_copy, "evil", llama_config, max_rank=8)


# --- sources: folders, archives, hub ids --------------------------------------------------------------


def test_local_folder(good_adapter: Path, tmp_path: Path) -> None:
    assert resolve_adapter_source(str(good_adapter), tmp_path) == [("good", good_adapter)]
    assert resolve_adapter_source(str(good_adapter), tmp_path, name="mine") == [("mine", good_adapter)]


def test_lmi_archive_with_two_adapters(
    llama: Path, good_adapter: Path, llama_config: ModelConfig, tmp_path: Path
) -> None:
    other = make_peft_adapter(llama, tmp_path / "other", r=2, targets=("k_proj",), seed=1)
    archive = make_lmi_archive(tmp_path / "model.tar.gz", {"sql": good_adapter, "chat": other})
    found = resolve_adapter_source(str(archive), tmp_path / "cache")
    assert [name for name, _ in found] == ["chat", "sql"]
    loaded = {name: load_adapter(folder, name, llama_config, 8) for name, folder in found}
    assert loaded["chat"].target_modules == {"k_proj"} and loaded["sql"].rank == 4
    assert resolve_adapter_source(str(archive), tmp_path / "cache") == found, "extracted once, then reused"
    assert resolve_adapter_source(str(archive), tmp_path / "cache", name="sql") == [("sql", found[1][1])]
    with pytest.raises(AdapterError, match=r"^adapter 'nope': .* holds adapters \['chat', 'sql'\]"):
        resolve_adapter_source(str(archive), tmp_path / "cache", name="nope")


def test_archive_with_one_top_level_adapter(good_adapter: Path, tmp_path: Path) -> None:
    archive = tmp_path / "single.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(good_adapter, arcname="my-adapter")
    [(name, folder)] = resolve_adapter_source(str(archive), tmp_path / "cache")
    assert name == "my-adapter" and (folder / "adapter_config.json").is_file()


def _archive_with(tmp_path: Path, member: tarfile.TarInfo, good_adapter: Path) -> Path:
    archive = make_lmi_archive(tmp_path / "evil.tar.gz", {"ok": good_adapter})
    data = b"owned"
    with tarfile.open(archive, "r:gz") as src, tarfile.open(tmp_path / "evil2.tar.gz", "w:gz") as dst:
        for m in src.getmembers():
            dst.addfile(m, src.extractfile(m) if m.isfile() else None)
        member.size = len(data) if member.isfile() else 0
        dst.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return tmp_path / "evil2.tar.gz"


def _symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


@pytest.mark.parametrize(
    ("member", "problem"),
    [
        (tarfile.TarInfo("adapters/ok/../../../escaped.txt"), "points outside the archive"),
        (tarfile.TarInfo("/tmp/absolute.txt"), "points outside the archive"),
        (_symlink("adapters/ok/link", "/etc/passwd"), "is a link or special file"),
    ],
    ids=["traversal", "absolute", "symlink"],
)
def test_unsafe_archive_is_refused(
    member: tarfile.TarInfo, problem: str, good_adapter: Path, tmp_path: Path
) -> None:
    archive = _archive_with(tmp_path, member, good_adapter)
    with pytest.raises(AdapterError, match=rf"^adapter '{archive}': evil2.tar.gz member .* {problem}"):
        resolve_adapter_source(str(archive), tmp_path / "cache")
    assert not (tmp_path / "escaped.txt").exists()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [], "nothing half-extracted is left behind"


def test_missing_local_path(tmp_path: Path) -> None:
    with pytest.raises(AdapterError, match=r"^adapter '\./nope': \./nope does not exist"):
        resolve_adapter_source("./nope", tmp_path)


def test_hub_id_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read once, at import
    with pytest.raises(AdapterError, match=r"^adapter 'someone/sql-lora': 'someone/sql-lora' .* hub failed"):
        resolve_adapter_source("someone/sql-lora", tmp_path)


def _layer_key(module_path: str) -> tuple[int, str]:
    """``model.layers.1.self_attn.q_proj`` -> ``(1, "q_proj")``."""
    parts = module_path.split(".")
    return int(parts[parts.index("layers") + 1]), parts[-1]


def test_public_names() -> None:
    import plinth.engine.lora as lora

    assert LoraAdapter.__name__ in lora.__all__
    assert set(lora.__all__) >= {
        "AdapterError",
        "LoraWeights",
        "load_adapter",
        "resolve_adapter_source",
        "TARGETS",
    }
