"""Captioning: text from decoded embeddings.

:class:`Captioner` over three backends (the built-in prefix LM, a caption bank, GIT fed
predicted vision tokens), and captions of what voxels, channels or ROIs prefer
(:func:`selectivity_captions`, BrainSCUBA-style). Names are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import attach

_LAZY = {
    "Captioner": "base",
    "CaptionBackend": "base",
    "BACKENDS": "base",
    "PrefixLMCaptioner": "prefix_lm",
    "train_builtin_captioner": "prefix_lm",
    "write_prefix_lm": "prefix_lm",
    "build_world_tokenizer": "prefix_lm",
    "caption_attributes": "prefix_lm",
    "attribute_accuracy": "prefix_lm",
    "CaptionBank": "bank",
    "GitCaptioner": "git",
    "fit_token_map": "git",
    "selectivity_captions": "selectivity",
    "fit_encoding_model": "selectivity",
    "preference_embeddings": "selectivity",
    "simulated_selectivity": "selectivity",
}

__all__ = [
    "BACKENDS",
    "CaptionBackend",
    "CaptionBank",
    "Captioner",
    "GitCaptioner",
    "PrefixLMCaptioner",
    "attribute_accuracy",
    "build_world_tokenizer",
    "caption_attributes",
    "fit_encoding_model",
    "fit_token_map",
    "preference_embeddings",
    "selectivity_captions",
    "simulated_selectivity",
    "train_builtin_captioner",
    "write_prefix_lm",
]

if TYPE_CHECKING:  # pragma: no cover
    from .bank import CaptionBank
    from .base import BACKENDS, CaptionBackend, Captioner
    from .git import GitCaptioner, fit_token_map
    from .prefix_lm import (
        PrefixLMCaptioner,
        attribute_accuracy,
        build_world_tokenizer,
        caption_attributes,
        train_builtin_captioner,
        write_prefix_lm,
    )
    from .selectivity import (
        fit_encoding_model,
        preference_embeddings,
        selectivity_captions,
        simulated_selectivity,
    )


__getattr__, __dir__ = attach(__name__, _LAZY, ())
