"""The :class:`Reconstructor`: images from (decoded) embeddings, one interface over backends.

A backend turns embeddings in its own conditioning space into PIL images, one seed per
image; :class:`Reconstructor` checks the input, maps the embeddings into the backend's
space when a fitted :class:`~braindecode_kit.reconstruct.mapping.EmbeddingMap` is given
(MindEye2 maps bigG to GIT the same way), holds the sampling settings (device, dtype,
batch size, steps, guidance, seed) and calls it. The backends, one file each:

``"builtin"`` (:mod:`.builtin`)
    The built-in diffusion generator trained on the built-in world (``model``: another
    folder of the same layout).
``"unclip"`` (:mod:`.unclip`)
    :class:`diffusers.StableUnCLIPImg2ImgPipeline` fed ``image_embeds`` (with
    ``noise_level``).
``"kandinsky"`` (:mod:`.kandinsky`)
    :class:`diffusers.KandinskyV22Pipeline` fed ``image_embeds`` and
    ``negative_image_embeds``.
``"ip_adapter"`` (:mod:`.ip_adapter`)
    Stable Diffusion with an IP-Adapter fed ``ip_adapter_image_embeds``.

Every image has its own seed (``seed`` and its index, or the stable seeds a batch run
derives from stimulus ids), so an image does not depend on the batch it was made in: the
same embedding and seed give the same image on the CPU, in any batch, on any rank.
"""

from __future__ import annotations

import hashlib
import html
import importlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._checks import check_embeddings, check_float, check_int, check_option

__all__ = ["BACKENDS", "ReconstructionBackend", "Reconstructor", "as_embeddings",
           "item_seeds"]

#: backend name -> ``"module:Class"`` inside this package (imported on first use)
BACKENDS: dict[str, str] = {
    "builtin": "builtin:BuiltinImageGenerator",
    "unclip": "unclip:UnCLIPBackend",
    "kandinsky": "kandinsky:KandinskyBackend",
    "ip_adapter": "ip_adapter:IPAdapterBackend",
}
DTYPES = ("float32", "float16", "bfloat16")


class ReconstructionBackend:
    """What a reconstruction backend provides (subclassed by each backend).

    Attributes
    ----------
    name : str
        The backend's name.
    embed_dim : int | None
        The conditioning dimension it takes (None: any).
    takes_init_images : bool
        Whether ``generate`` accepts ``init_images`` and ``strength`` (img2img).
    """

    name = "backend"
    embed_dim: int | None = None
    takes_init_images = False

    def generate(self, embeddings: np.ndarray, *, seeds: list[int],
                 num_inference_steps: int | None = None, guidance_scale: float | None = None,
                 init_images: Any = None, strength: float = 1.0, batch_size: int = 8,
                 **settings: Any) -> list:  # pragma: no cover - abstract
        """One PIL image per row of ``embeddings`` (float32, in the backend's space), the
        ``i``-th drawn from ``seeds[i]``."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """A JSON-able description (shown by :class:`Reconstructor`)."""
        return {"backend": self.name}


def as_embeddings(embeddings: Any, dim: int | None = None, name: str = "embeddings",
                  normalise: bool = True) -> np.ndarray:
    """Check (and by default L2-normalise) embeddings: a 2-D finite float array ``(n, dim)``
    (:func:`~braindecode_kit._checks.check_embeddings`).

    Raises
    ------
    ValueError
        If the array is not 2-D, not finite, has all-zero rows or the wrong width.
    """
    return check_embeddings(
        embeddings, dim, name, normalise=normalise,
        dim_of="the backend's conditioning dimension",
        hint="fit an EmbeddingMap to go from the decoder's CLIP space to the backend's")


def item_seeds(seed: int, keys: int | Sequence[Any]) -> list[int]:
    """One seed per image: ``seed`` and the image's key (its index, or any string such as
    ``"sub-01/s0042"``) hashed together, so an image's noise depends on nothing else."""
    check_int("seed", seed)
    if isinstance(keys, (int, np.integer)):
        keys = range(int(keys))
    return [int.from_bytes(hashlib.sha256(f"{int(seed)}\n{k}".encode()).digest()[:8], "little")
            >> 1 for k in keys]


class Reconstructor:
    """Images from CLIP-space embeddings (decoded from the brain, or true ones).

    Parameters
    ----------
    backend : {"builtin", "unclip", "kandinsky", "ip_adapter"}
        Which generator (see the module's documentation).
    model : str | None
        ``"builtin"``: another folder of the built-in layout (None: the shipped weights);
        otherwise a hub id (from the local Hugging Face cache) or a local folder of the
        diffusers pipeline.
    device : str
        Torch device (``"cpu"``, ``"cuda"``).
    dtype : {"float32", "float16", "bfloat16"}
        Weights' dtype of the diffusers backends (the built-in one runs in float32).
    batch_size : int
        Images per forward pass.
    num_inference_steps : int | None
        Sampling steps (None: the backend's default).
    guidance_scale : float | None
        Classifier-free guidance (None: the backend's default).
    seed : int
        Base seed of the per-image seeds (:func:`item_seeds`).
    embedding_map : EmbeddingMap | str | None
        A fitted map (or its folder) from the decoder's CLIP space to the backend's
        conditioning space, applied before the backend.
    **backend_kwargs
        Passed to the backend (e.g. ``noise_level`` for unCLIP, ``ip_adapter`` weights).

    Examples
    --------
    >>> from braindecode_kit.embed import Embedder
    >>> from braindecode_kit.reconstruct import Reconstructor
    >>> from braindecode_kit.simulate import make_world
    >>> images = Reconstructor().generate(Embedder().encode_images(make_world(2, seed=1)))  # doctest: +SKIP
    """

    def __init__(
        self,
        backend: str = "builtin",
        model: str | None = None,
        device: str = "cpu",
        dtype: str = "float32",
        batch_size: int = 64,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        seed: int = 0,
        embedding_map: Any = None,
        **backend_kwargs: Any,
    ) -> None:
        check_option("backend", backend, tuple(BACKENDS))
        check_option("dtype", dtype, DTYPES)
        check_int("batch_size", batch_size, lo=1)
        if num_inference_steps is not None:
            check_int("num_inference_steps", num_inference_steps, lo=1)
        if guidance_scale is not None:
            check_float("guidance_scale", guidance_scale, lo=0.0)
        check_int("seed", seed)
        self.backend = backend
        self.model = model
        self.device = device
        self.dtype = dtype
        self.batch_size = int(batch_size)
        self.num_inference_steps = num_inference_steps
        self.guidance_scale = guidance_scale
        self.seed = int(seed)
        if isinstance(embedding_map, (str, bytes)) or hasattr(embedding_map, "__fspath__"):
            from .mapping import EmbeddingMap

            embedding_map = EmbeddingMap.load(embedding_map)
        self.embedding_map = embedding_map
        module, cls = BACKENDS[backend].split(":")
        klass = getattr(importlib.import_module(f"{__package__}.{module}"), cls)
        if backend == "builtin":
            if backend_kwargs:
                raise TypeError(f"backend='builtin' takes no backend options, got "
                                f"{sorted(backend_kwargs)}.")
            self.impl: ReconstructionBackend = klass(model, device=device)
        else:
            if model is None:
                raise ValueError(f"backend={backend!r} needs 'model': a hub id or a local "
                                 "folder of the diffusers pipeline.")
            self.impl = klass(model, device=device, dtype=dtype, **backend_kwargs)

    @property
    def embed_dim(self) -> int | None:
        """The embedding dimension taken (the map's input when a map is set)."""
        if self.embedding_map is not None:
            return int(self.embedding_map.in_dim)
        return self.impl.embed_dim

    def prepare(self, embeddings: Any) -> np.ndarray:
        """Check, normalise and map embeddings into the backend's conditioning space."""
        X = as_embeddings(embeddings, self.embed_dim)
        if self.embedding_map is not None:
            X = self.embedding_map.transform(X)
            if self.impl.embed_dim is not None and X.shape[1] != self.impl.embed_dim:
                raise ValueError(f"The embedding map gives {X.shape[1]} columns but backend "
                                 f"{self.backend!r} takes {self.impl.embed_dim}.")
        return X

    def generate(self, embeddings: Any, *, seed: int | None = None,
                 seeds: Sequence[int] | None = None, init_images: Any = None,
                 strength: float | None = None, num_inference_steps: int | None = None,
                 guidance_scale: float | None = None, batch_size: int | None = None,
                 **settings: Any) -> list:
        """One image per embedding.

        Parameters
        ----------
        embeddings : array (n, dim)
            CLIP-space embeddings (L2-normalised, then mapped, here).
        seed : int | None
            Base seed (default: the reconstructor's); image ``i`` uses
            ``item_seeds(seed, n)[i]``.
        seeds : list of int | None
            Explicit per-image seeds (override ``seed``), as batch runs pass them.
        init_images : list of PIL images | array | None
            img2img starting images (e.g. the low-level head's blurry images), with
            ``strength`` in ``[0, 1]`` (1: ignore them).
        num_inference_steps, guidance_scale, batch_size : optional
            Override the reconstructor's settings for this call.
        **settings
            Passed to the backend.

        Returns
        -------
        list of PIL.Image.Image
        """
        X = self.prepare(embeddings)
        if seeds is None:
            seeds = item_seeds(self.seed if seed is None else int(seed), len(X))
        seeds = [int(s) for s in seeds]
        if len(seeds) != len(X):
            raise ValueError(f"'seeds' must hold one seed per embedding ({len(X)}), but got "
                             f"{len(seeds)}.")
        if init_images is not None:
            if not self.impl.takes_init_images:
                raise ValueError(f"backend {self.backend!r} does not take 'init_images'.")
            if len(init_images) != len(X):
                raise ValueError(f"'init_images' must hold one image per embedding ({len(X)}), "
                                 f"but got {len(init_images)}.")
            settings["init_images"] = init_images
            settings["strength"] = check_float("strength", 0.75 if strength is None
                                               else strength, lo=0.0, hi=1.0)
        elif strength is not None:
            raise ValueError("'strength' needs 'init_images'.")
        return self.impl.generate(
            X, seeds=seeds,
            num_inference_steps=num_inference_steps or self.num_inference_steps,
            guidance_scale=self.guidance_scale if guidance_scale is None else guidance_scale,
            batch_size=check_int("batch_size", batch_size or self.batch_size, lo=1),
            **settings)

    def settings(self) -> dict[str, Any]:
        """The sampling settings and the backend's description (JSON-able)."""
        return {**self.impl.describe(), "device": self.device, "dtype": self.dtype,
                "batch_size": self.batch_size, "num_inference_steps": self.num_inference_steps,
                "guidance_scale": self.guidance_scale, "seed": self.seed,
                "embedding_map": None if self.embedding_map is None
                else self.embedding_map.describe()}

    def __repr__(self) -> str:
        d = self.settings()
        return (f"<Reconstructor {self.backend} | steps {d['num_inference_steps'] or 'default'}, "
                f"guidance {d['guidance_scale'] if d['guidance_scale'] is not None else 'default'}"
                f", device {self.device}>")

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
                       f"<td>{html.escape(str(v))}</td></tr>" for k, v in self.settings().items())
        return (f"<div><b>Reconstructor</b> ({html.escape(self.backend)})<table>{rows}</table>"
                "</div>")
