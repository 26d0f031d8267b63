"""The embedding seam: every embedder Plinth has implements :class:`Embedder`.

One abstract method, :meth:`Embedder.embed_batch` (a batch of texts -> one vector each, in order); the
batching every caller wants is built on top of it in :meth:`Embedder.embed`, once for all providers::

    class Constant(Embedder):
        name = "constant"

        def embed_batch(self, texts: list[str]) -> list[list[float]]:
            return [[1.0, 0.0] for _ in texts]

    Constant().embed(["a", "b", "c"], batch_size=2)   # two embed_batch calls: ["a", "b"] and ["c"]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

__all__ = ["Embed", "Embedder"]

Embed = Callable[[list[str]], list[list[float]]]  # a bound ``Embedder.embed``: texts -> one vector each


class Embedder(ABC):
    """Texts -> vectors. Subclasses implement :meth:`embed_batch` and set :attr:`name`."""

    name: str
    batch_size: int = 32  # texts per embed_batch call unless the caller says otherwise
    _dimensions: int | None = None

    @abstractmethod
    def embed_batch(self, texts: list[str]) -> list[list[float]]:
        """One vector per text of one batch, in order."""

    def embed(self, texts: Sequence[str], *, batch_size: int | None = None) -> list[list[float]]:
        """One vector per text, in order, computed in batches of ``batch_size`` (default
        :attr:`batch_size`) through :meth:`embed_batch`."""
        size = batch_size or self.batch_size
        assert size > 0, "batch_size must be positive"
        vectors: list[list[float]] = []
        for start in range(0, len(texts), size):
            vectors += self.embed_batch(list(texts[start : start + size]))
        return vectors

    @property
    def dimensions(self) -> int:
        """Length of every vector; by default learned by embedding one probe text (and kept)."""
        if self._dimensions is None:
            self._dimensions = len(self.embed_batch(["dimension probe"])[0])
        return self._dimensions
