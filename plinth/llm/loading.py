"""Load the models a process serves, from settings: catalog names resolved, ``--merge-lora`` applied.

With no ``--model`` Plinth serves :data:`~plinth.llm.catalog.DEFAULT_MODEL`, the packaged
SmolLM2-135M-Instruct, so a fresh install answers for real; random weights are served only when asked for
(``--model random-llama-small``)::

    models = load_models(Settings())            # [LocalModel 'smollm2-135m-instruct']
"""

from __future__ import annotations

import logging
from pathlib import Path

from plinth.config import Settings
from plinth.llm.catalog import DEFAULT_MODEL, resolve
from plinth.llm.local import LocalModel

__all__ = ["load_models"]

log = logging.getLogger(__name__)


def load_models(settings: Settings) -> list[LocalModel]:
    """A ``LocalModel`` (own engine, own adapter slots and memory budget) per ``--model``; the one
    ``--merge-lora NAME`` fits is loaded with that adapter merged in and served as NAME instead."""
    names = settings.models or [DEFAULT_MODEL]
    if not settings.models:
        log.info("no --model given: serving %s (packaged; --model picks another)", DEFAULT_MODEL)
    resolved = [resolve(name, Path(settings.data_dir)) for name in names]
    merged, folder = None, None
    if settings.merge_lora is not None:
        from plinth.llm.merge import merge_target

        folder = _adapter_folder(settings, settings.merge_lora)
        merged = merge_target([checkpoint for checkpoint, _ in resolved], folder, settings.merge_lora)
    models = []
    for checkpoint, name in resolved:
        if checkpoint == merged and folder is not None and settings.merge_lora is not None:
            from plinth.llm.merge import load_merged

            config = settings.engine_config(checkpoint, enable_lora=False)
            models.append(load_merged(config, folder, settings.merge_lora))
        else:
            models.append(LocalModel.load(settings.engine_config(checkpoint), name=name))
    return models


def _adapter_folder(settings: Settings, name: str) -> Path:
    for directory in settings.adapters:
        if (Path(directory) / name).is_dir():
            return Path(directory) / name
    dirs = ", ".join(str(d) for d in settings.adapters)
    raise ValueError(f"--merge-lora {name}: no folder {name!r} in the --adapters directories ({dirs})")
