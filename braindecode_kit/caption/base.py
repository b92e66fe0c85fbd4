"""The :class:`Captioner`: text from (decoded) embeddings, one interface over backends.

A backend turns unit-norm embeddings into captions; :class:`Captioner` checks the input,
holds the decoding settings (device, batch size, maximum length, beams, seed) and calls
it. The backends, one file each:

``"builtin"`` / ``"prefix_lm"`` (:mod:`.prefix_lm`)
    The built-in ClipCap-style prefix LM trained on the built-in world (``"builtin"``:
    the shipped weights; ``"prefix_lm"``: a folder of the same layout).
``"bank"`` (:mod:`.bank`)
    The nearest caption of a caption bank by CLIP text embedding.
``"git"`` (:mod:`.git`)
    :class:`transformers.GitForCausalLM` (a hub id or local folder) fed vision tokens
    predicted from the embeddings by a learned linear map (MindEye2's route).

Same input, same settings and same seed give the same captions on the CPU.
"""

from __future__ import annotations

import html
import importlib
from typing import Any

import numpy as np

from .._checks import check_embeddings, check_int, check_option

__all__ = ["BACKENDS", "CaptionBackend", "Captioner", "as_embeddings"]

#: backend name -> ``"module:Class"`` inside this package (imported on first use)
BACKENDS: dict[str, str] = {
    "builtin": "prefix_lm:PrefixLMCaptioner",
    "prefix_lm": "prefix_lm:PrefixLMCaptioner",
    "bank": "bank:CaptionBank",
    "git": "git:GitCaptioner",
}


class CaptionBackend:
    """What a captioning backend provides (subclassed by each backend).

    Attributes
    ----------
    name : str
        The backend's name.
    embed_dim : int | None
        The embedding dimension it takes (None: any).
    """

    name = "backend"
    embed_dim: int | None = None

    def generate(self, embeddings: np.ndarray, *, max_length: int, num_beams: int,
                 batch_size: int, seed: int) -> list[str]:  # pragma: no cover - abstract
        """One caption per row of ``embeddings`` (unit-norm, float32)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """A JSON-able description (shown by :class:`Captioner`)."""
        return {"backend": self.name}


def as_embeddings(embeddings: Any, dim: int | None = None, name: str = "embeddings"
                  ) -> np.ndarray:
    """Check and L2-normalise embeddings: a 2-D finite float array ``(n, dim)``
    (:func:`~braindecode_kit._checks.check_embeddings`).

    Raises
    ------
    ValueError
        If the array is not 2-D, not finite, empty-rowed or of the wrong width.
    """
    return check_embeddings(embeddings, dim, name,
                            dim_of="the captioner's embedding dimension")


class Captioner:
    """Captions from CLIP-space embeddings (decoded from the brain, or true ones).

    Parameters
    ----------
    backend : {"builtin", "prefix_lm", "bank", "git"}
        Which captioner (see the module's documentation).
    model : str | None
        ``"prefix_lm"``: the folder of a prefix LM; ``"git"``: a hub id
        (``"microsoft/git-base-coco"``, from the local Hugging Face cache) or a local
        folder of a :class:`~transformers.GitForCausalLM`; unused otherwise.
    device : str
        Torch device (``"cpu"``, ``"cuda"``).
    batch_size : int
        Embeddings per forward pass.
    max_length : int
        Maximum new tokens per caption.
    num_beams : int
        Beam width (1: greedy decoding).
    seed : int
        Seed of the torch generator during decoding.
    bank : list of str | None
        ``"bank"``: the caption bank (e.g. the training images' captions).
    embedder : Embedder | None
        ``"bank"``: the CLIP that embeds the bank's texts (default: the built-in CLIP).
    token_map : str | None
        ``"git"``: the folder of a fitted embedding -> vision-token map
        (:meth:`~braindecode_kit.caption.git.GitCaptioner.fit_token_map`).

    Examples
    --------
    >>> from braindecode_kit.caption import Captioner
    >>> from braindecode_kit.embed import Embedder
    >>> from braindecode_kit.simulate import make_world
    >>> world = make_world(2, seed=1)
    >>> captions = Captioner().generate(Embedder().encode_images(world))  # doctest: +SKIP
    """

    def __init__(
        self,
        backend: str = "builtin",
        model: str | None = None,
        device: str = "cpu",
        batch_size: int = 256,
        max_length: int = 24,
        num_beams: int = 3,
        seed: int = 0,
        bank: list[str] | None = None,
        embedder: Any = None,
        token_map: str | None = None,
    ) -> None:
        check_option("backend", backend, tuple(BACKENDS))
        check_int("batch_size", batch_size, lo=1)
        check_int("max_length", max_length, lo=1)
        check_int("num_beams", num_beams, lo=1)
        check_int("seed", seed)
        self.backend = backend
        self.model = model
        self.device = device
        self.batch_size = int(batch_size)
        self.max_length = int(max_length)
        self.num_beams = int(num_beams)
        self.seed = int(seed)
        module, cls = BACKENDS[backend].split(":")
        klass = getattr(importlib.import_module(f"{__package__}.{module}"), cls)
        if backend == "builtin":
            if model is not None:
                raise ValueError("backend='builtin' uses the shipped weights; pass "
                                 f"backend='prefix_lm' with model={model!r} for another folder.")
            self.impl: CaptionBackend = klass(None, device=device)
        elif backend == "prefix_lm":
            if model is None:
                raise ValueError("backend='prefix_lm' needs 'model': the folder of a prefix LM.")
            self.impl = klass(model, device=device)
        elif backend == "bank":
            if bank is None:
                raise ValueError("backend='bank' needs 'bank': a list of captions.")
            self.impl = klass(bank, embedder=embedder)
        else:
            if model is None:
                raise ValueError("backend='git' needs 'model': a hub id or a local folder.")
            self.impl = klass(model, token_map=token_map, device=device)

    @property
    def embed_dim(self) -> int | None:
        """The embedding dimension the backend takes."""
        return self.impl.embed_dim

    def generate(self, embeddings: Any, *, max_length: int | None = None,
                 num_beams: int | None = None, batch_size: int | None = None,
                 seed: int | None = None) -> list[str]:
        """One caption per embedding.

        Parameters
        ----------
        embeddings : array (n, dim)
            CLIP-space embeddings (L2-normalised here).
        max_length, num_beams, batch_size, seed : int | None
            Override the captioner's settings for this call.

        Returns
        -------
        list of str
        """
        X = as_embeddings(embeddings, self.embed_dim)
        return self.impl.generate(
            X, max_length=self.max_length if max_length is None else check_int(
                "max_length", max_length, lo=1),
            num_beams=self.num_beams if num_beams is None else check_int(
                "num_beams", num_beams, lo=1),
            batch_size=self.batch_size if batch_size is None else check_int(
                "batch_size", batch_size, lo=1),
            seed=self.seed if seed is None else int(seed))

    def score(self, candidates: list[str], references: list[list[str]], *,
              image_embeddings: np.ndarray | None = None, embedder: Any = None,
              **kwargs: Any) -> dict[str, Any]:
        """Caption metrics of ``candidates`` against ``references``
        (:func:`~braindecode_kit.evaluate.caption_metrics.caption_metrics`), with the
        built-in CLIP for CLIP-S, RefCLIP-S and text similarity unless ``embedder`` is
        given (it must be the CLIP of ``image_embeddings``)."""
        from ..evaluate.caption_metrics import caption_metrics

        if embedder is None:
            from ..embed import Embedder

            embedder = Embedder("builtin")
        return caption_metrics(candidates, references, image_embeddings=image_embeddings,
                               embedder=embedder, **kwargs)

    def settings(self) -> dict[str, Any]:
        """The decoding settings and the backend's description (JSON-able)."""
        return {**self.impl.describe(), "device": self.device, "batch_size": self.batch_size,
                "max_length": self.max_length, "num_beams": self.num_beams, "seed": self.seed}

    def __repr__(self) -> str:
        d = self.settings()
        return (f"<Captioner {self.backend} | {d['backend']}, beams {self.num_beams}, "
                f"max_length {self.max_length}, device {self.device}>")

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
                       f"<td>{html.escape(str(v))}</td></tr>" for k, v in self.settings().items())
        return f"<div><b>Captioner</b> ({html.escape(self.backend)})<table>{rows}</table></div>"

