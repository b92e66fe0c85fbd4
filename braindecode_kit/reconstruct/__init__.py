"""Reconstruction: images from decoded embeddings.

:class:`Reconstructor` over four backends (the built-in diffusion generator, Stable
unCLIP, Kandinsky 2.2, IP-Adapter on Stable Diffusion), :class:`EmbeddingMap` (a learned
linear map from the decoder's CLIP space to a backend's conditioning space), and resumable
batch runs sharded with accelerate (:func:`reconstruct_batch`).
Names are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import attach

_LAZY = {
    "Reconstructor": "base",
    "ReconstructionBackend": "base",
    "BACKENDS": "base",
    "item_seeds": "base",
    "BuiltinImageGenerator": "builtin",
    "train_builtin_image_decoder": "builtin",
    "write_image_decoder": "builtin",
    "load_image_decoder": "builtin",
    "EmbeddingMap": "mapping",
    "UnCLIPBackend": "unclip",
    "KandinskyBackend": "kandinsky",
    "IPAdapterBackend": "ip_adapter",
    "reconstruct_batch": "batch",
    "ImageJob": "batch",
    "load_batch_images": "batch",
}

__all__ = [
    "BACKENDS",
    "BuiltinImageGenerator",
    "EmbeddingMap",
    "ImageJob",
    "IPAdapterBackend",
    "KandinskyBackend",
    "ReconstructionBackend",
    "Reconstructor",
    "UnCLIPBackend",
    "item_seeds",
    "load_batch_images",
    "load_image_decoder",
    "reconstruct_batch",
    "train_builtin_image_decoder",
    "write_image_decoder",
]

if TYPE_CHECKING:  # pragma: no cover
    from .base import BACKENDS, ReconstructionBackend, Reconstructor, item_seeds
    from .batch import ImageJob, load_batch_images, reconstruct_batch
    from .builtin import (
        BuiltinImageGenerator,
        load_image_decoder,
        train_builtin_image_decoder,
        write_image_decoder,
    )
    from .ip_adapter import IPAdapterBackend
    from .kandinsky import KandinskyBackend
    from .mapping import EmbeddingMap
    from .unclip import UnCLIPBackend


__getattr__, __dir__ = attach(__name__, _LAZY, ())
