"""Decoder models: per-subject adapters, the shared encoder, heads and losses.

Names are imported lazily (torch is imported on first use).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f"braindecode_kit.models.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'braindecode_kit.models' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)
