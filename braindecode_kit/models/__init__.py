"""Decoder models: per-subject specs and adapters, the shared encoder, heads and losses.

Names are imported lazily (torch is imported on first use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import attach

_LAZY = {
    "DecoderConfig": "braindecode_kit.models.config",
    "SubjectSpec": "braindecode_kit.models.config",
    "MODALITIES": "braindecode_kit.models.config",
    "BrainDecoder": "braindecode_kit.models.decoder",
    "LinearAdapter": "braindecode_kit.models.adapters",
    "MLPAdapter": "braindecode_kit.models.adapters",
    "Adapter": "braindecode_kit.models.adapters",
    "ADAPTERS": "braindecode_kit.models._registry",
    "register_adapter": "braindecode_kit.models.adapters",
    "build_adapter": "braindecode_kit.models.adapters",
    "ENCODERS": "braindecode_kit.models._registry",
    "register_encoder": "braindecode_kit.models.encoders",
    "build_encoder": "braindecode_kit.models.encoders",
    "TemporalPool": "braindecode_kit.models.encoders",
    "ResidualMLP": "braindecode_kit.models.mlp_encoder",
    "SpatialAttentionAdapter": "braindecode_kit.models.spatial",
    "PositionAttentionAdapter": "braindecode_kit.models.spatial",
    "SpatialAttention": "braindecode_kit.models.spatial",
    "SubjectLayer": "braindecode_kit.models.spatial",
    "FourierPositions": "braindecode_kit.models.spatial",
    "ChannelLinearAdapter": "braindecode_kit.models.channel_adapter",
    "ConvEncoder": "braindecode_kit.models.conv_encoder",
    "ConvBlock": "braindecode_kit.models.conv_encoder",
    "ResidualBlock": "braindecode_kit.models.mlp_encoder",
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
_SUBMODULES = {"config", "adapters", "encoders", "mlp_encoder", "heads", "decoder", "losses",
               "spatial", "channel_adapter", "conv_encoder"}

__all__ = [
    "ADAPTERS",
    "ENCODERS",
    "MODALITIES",
    "Adapter",
    "BrainDecoder",
    "ChannelLinearAdapter",
    "CombinedLoss",
    "ConvBlock",
    "ConvEncoder",
    "DecoderConfig",
    "FourierPositions",
    "LinearAdapter",
    "LossSchedule",
    "MLPAdapter",
    "PooledHead",
    "PositionAttentionAdapter",
    "ResidualBlock",
    "ResidualMLP",
    "SpatialAttention",
    "SpatialAttentionAdapter",
    "SubjectLayer",
    "SubjectSpec",
    "TemporalPool",
    "TokenHead",
    "build_adapter",
    "build_encoder",
    "clip_loss",
    "cosine_loss",
    "mixco",
    "mixco_loss",
    "mse_loss",
    "register_adapter",
    "register_encoder",
    "soft_clip_loss",
]

if TYPE_CHECKING:  # pragma: no cover
    from .adapters import (
        ADAPTERS,
        Adapter,
        LinearAdapter,
        MLPAdapter,
        build_adapter,
        register_adapter,
    )
    from .channel_adapter import ChannelLinearAdapter
    from .config import MODALITIES, DecoderConfig, SubjectSpec
    from .conv_encoder import ConvBlock, ConvEncoder
    from .decoder import BrainDecoder
    from .encoders import ENCODERS, TemporalPool, build_encoder, register_encoder
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
    from .mlp_encoder import ResidualBlock, ResidualMLP
    from .spatial import (
        FourierPositions,
        PositionAttentionAdapter,
        SpatialAttention,
        SpatialAttentionAdapter,
        SubjectLayer,
    )


__getattr__, __dir__ = attach(__name__, _LAZY, _SUBMODULES)
