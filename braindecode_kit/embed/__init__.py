"""CLIP embeddings of stimuli: the :class:`Embedder`, the :class:`Targets` it makes (cached
on disk by :func:`embed_stimuli`), zero-shot checks of a CLIP, and the built-in CLIP.

Names are imported on first use (``import braindecode_kit.embed`` does not import torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import attach

# public name -> submodule that defines it
_LAZY = {
    "Embedder": "embedder",
    "Targets": "targets",
    "embed_stimuli": "targets",
    "blurry_images": "targets",
    "default_cache_dir": "targets",
    "zero_shot_attributes": "zeroshot",
    "caption_retrieval": "zeroshot",
    "create_builtin_clip": "builtin",
    "train_builtin_clip": "builtin",
    "write_builtin_files": "builtin",
    "check_safetensors": "builtin",
    "WorldTokenizer": "builtin",
}

__all__ = [
    "Embedder",
    "Targets",
    "WorldTokenizer",
    "caption_retrieval",
    "check_safetensors",
    "create_builtin_clip",
    "default_cache_dir",
    "blurry_images",
    "embed_stimuli",
    "train_builtin_clip",
    "write_builtin_files",
    "zero_shot_attributes",
]

if TYPE_CHECKING:  # pragma: no cover
    from .builtin import (
        WorldTokenizer,
        check_safetensors,
        create_builtin_clip,
        train_builtin_clip,
        write_builtin_files,
    )
    from .embedder import Embedder
    from .targets import Targets, blurry_images, default_cache_dir, embed_stimuli
    from .zeroshot import caption_retrieval, zero_shot_attributes


__getattr__, __dir__ = attach(__name__, _LAZY, ())
