"""``--merge-lora``: serve one adapter merged into its base model's weights (zero overhead).

The engine does the merge at load (``EngineConfig.merge_lora``); this module picks which served base
model the adapter fits and labels the result::

    model = load_merged(settings.engine_config(base, enable_lora=False), Path("adapters/sql"), "sql")
    model.name, model.parent    # ("sql", "<base>")
"""

from __future__ import annotations

from pathlib import Path

from plinth.engine import EngineConfig
from plinth.engine.lora import AdapterError, load_adapter
from plinth.engine.lora.merge import MERGE_MAX_RANK
from plinth.engine.model_config import ModelConfig
from plinth.engine.weights import resolve_checkpoint
from plinth.llm.local import LocalModel

__all__ = ["load_merged", "merge_target"]


def load_merged(config: EngineConfig, adapter_dir: Path, name: str) -> LocalModel:
    """Load ``config.model`` with the adapter at ``adapter_dir`` merged in, served as ``name``."""
    config.merge_lora = str(adapter_dir)
    model = LocalModel.load(config)
    model.parent, model.name = model.name, name
    return model


def merge_target(models: list[str], adapter_dir: Path, name: str) -> str:
    """The first of ``models`` the adapter fits (reads configs and the adapter, builds no engine)."""
    problems = []
    for model in models:
        config = ModelConfig.from_pretrained(resolve_checkpoint(model, None), model)
        try:
            load_adapter(Path(adapter_dir), name, config, MERGE_MAX_RANK)
            return model
        except AdapterError as exc:
            problems.append(f"{model}: {exc.problem}")
    raise AdapterError(name, f"--merge-lora: it fits none of the served models ({'; '.join(problems)})")
