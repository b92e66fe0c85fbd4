"""Decoder models: per-subject adapters, the shared encoder, heads and losses.

Names are imported lazily (torch is imported on first use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import attach

_LAZY = {
    "DecoderConfig": "braindecode_kit.models.config",
    "BrainDecoder": "braindecode_kit.models.decoder",
    "LinearAdapter": "braindecode_kit.models.adapters",
    "MLPAdapter": "braindecode_kit.models.adapters",
    "ADAPTERS": "braindecode_kit.models.adapters",
    "register_adapter": "braindecode_kit.models.adapters",
    "ResidualMLP": "braindecode_kit.models.encoder",
    "ResidualBlock": "braindecode_kit.models.encoder",
    "PooledHead": "braindecode_kit.models.heads",
    "TokenHead": "braindecode_kit.models.heads",
    "CombinedLoss": "braindecode_kit.models.losses",
    "LossSchedule": "braindecode_kit.models.losses",
    "clip_loss": "braindecode_kit.models.losses",
    "soft_clip_loss": "braindecode_kit.models.losses",
    "mixco": "braindecode_kit.models.losses",
    "mixco_loss": "braindecode_kit.models.losses",
    "mse_loss": "braindecode_kit.models.losses",
    "cosine_loss": "braindecode_kit.models.losses",
}
_SUBMODULES = {"config", "adapters", "encoder", "heads", "decoder", "losses"}

__all__ = [
    "ADAPTERS",
    "BrainDecoder",
    "CombinedLoss",
    "DecoderConfig",
    "LinearAdapter",
    "LossSchedule",
    "MLPAdapter",
    "PooledHead",
    "ResidualBlock",
    "ResidualMLP",
    "TokenHead",
    "clip_loss",
    "cosine_loss",
    "mixco",
    "mixco_loss",
    "mse_loss",
    "register_adapter",
    "soft_clip_loss",
]

if TYPE_CHECKING:  # pragma: no cover
    from .adapters import ADAPTERS, LinearAdapter, MLPAdapter, register_adapter
    from .config import DecoderConfig
    from .decoder import BrainDecoder
    from .encoder import ResidualBlock, ResidualMLP
    from .heads import PooledHead, TokenHead
    from .losses import (
        CombinedLoss,
        LossSchedule,
        clip_loss,
        cosine_loss,
        mixco,
        mixco_loss,
        mse_loss,
        soft_clip_loss,
    )


__getattr__, __dir__ = attach(__name__, _LAZY, _SUBMODULES)
