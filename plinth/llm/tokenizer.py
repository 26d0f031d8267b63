"""Load a checkpoint's own tokenizer and chat template, from a Hugging Face directory or a GGUF file.

Contract: ``load_tokenizer(path)`` returns a transformers fast tokenizer with the vocabulary, merges,
special and added tokens, and the chat template the checkpoint ships: ``tokenizer.json`` +
``tokenizer_config.json`` (or ``chat_template.jinja``) in a directory, or the ``tokenizer.ggml.*`` and
``tokenizer.chat_template`` metadata of a ``.gguf`` (transformers converts it, reading the file with
the ``gguf`` library). Chat templates are rendered by transformers' ``apply_chat_template``, in a
sandboxed Jinja environment, so a template cannot run code. Nothing shipped with a model is executed.

Example::

    >>> tok = load_tokenizer(Path("SmolLM2-135M-Instruct.Q4_1.gguf"))  # doctest: +SKIP
    >>> tok.eos_token
    '<|im_end|>'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["load_tokenizer"]


def load_tokenizer(path: Path) -> Any:
    """The tokenizer (with chat template) of the checkpoint at ``path``: a directory or a ``.gguf``."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast  # heavy: only when a model loads

    path = Path(path)
    if path.suffix == ".gguf":
        # The fast class directly: AutoTokenizer would first build a model config from the file,
        # parsing all of it a second time with the gguf library's slow reader (~10x the load time).
        return PreTrainedTokenizerFast.from_pretrained(str(path.parent), gguf_file=path.name)
    return AutoTokenizer.from_pretrained(str(path))
