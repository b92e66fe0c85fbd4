"""The caption-bank captioner: the nearest caption of a bank by CLIP text embedding.

The bank's captions are embedded once with a CLIP's text tower; an embedding's caption
is the bank caption of highest cosine similarity (ties: the first). It generates nothing
new, so it is the retrieval baseline of captioning (and a strong one when the bank holds
captions of images like the test images).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import CaptionBackend

__all__ = ["CaptionBank"]


class CaptionBank(CaptionBackend):
    """Nearest-caption captioning.

    Parameters
    ----------
    bank : list of str
        The candidate captions (duplicates are dropped, first occurrence kept).
    embedder : Embedder | None
        The CLIP whose text tower embeds the bank; it must be the CLIP of the embeddings
        later captioned (default: the built-in CLIP).
    """

    name = "bank"

    def __init__(self, bank: Sequence[str], embedder: Any = None) -> None:
        if isinstance(bank, str) or not isinstance(bank, Sequence):
            raise TypeError(f"'bank' must be a list of str, but got {type(bank).__name__}.")
        texts = list(dict.fromkeys(str(b) for b in bank))
        if not texts:
            raise ValueError("'bank' is empty: give at least one caption.")
        if embedder is None:
            from ..embed import Embedder

            embedder = Embedder("builtin")
        self.texts = texts
        self.embedder = embedder
        T = np.asarray(embedder.encode_texts(texts), np.float32)
        self.bank_embeddings = T / np.linalg.norm(T, axis=1, keepdims=True)
        self.embed_dim = int(T.shape[1])

    def describe(self) -> dict[str, Any]:
        return {"backend": "bank (nearest caption by CLIP text embedding)",
                "bank_size": len(self.texts), "clip": getattr(self.embedder, "identity", "?")}

    def generate(self, embeddings: np.ndarray, *, max_length: int = 24, num_beams: int = 1,
                 batch_size: int = 1024, seed: int = 0) -> list[str]:
        """The nearest bank caption of each unit-norm embedding (the decoding settings
        do not apply; ``batch_size`` bounds memory)."""
        out: list[str] = []
        for s in range(0, len(embeddings), max(batch_size, 1)):
            best = np.argmax(embeddings[s:s + batch_size] @ self.bank_embeddings.T, axis=1)
            out += [self.texts[j] for j in best]
        return out
