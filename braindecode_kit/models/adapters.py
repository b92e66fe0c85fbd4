"""Per-subject adapters: each maps one subject's features into the shared space.

Subjects have different numbers of voxels (or sensors), so each gets its own adapter;
everything after the adapter is shared. The registry is open: a new adapter kind (e.g. a
sensor ``SubjectLayer``) registers itself with :func:`register_adapter` and is then
selectable by name in :class:`~braindecode_kit.models.DecoderConfig`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from .config import DecoderConfig

__all__ = ["ADAPTERS", "LinearAdapter", "MLPAdapter", "build_adapter", "register_adapter"]

#: adapter kind -> class with a ``from_config(in_shape, config)`` constructor
ADAPTERS: dict[str, type[nn.Module]] = {}


def register_adapter(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator adding an adapter kind to :data:`ADAPTERS`.

    The class must define ``from_config(in_shape: tuple[int, ...], config: DecoderConfig)``
    returning a module mapping ``(n, *in_shape)`` tensors to ``(n, config.d_shared)``.
    """

    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        if not hasattr(cls, "from_config"):
            raise TypeError(f"Adapter class {cls.__name__} must define from_config().")
        ADAPTERS[name] = cls
        return cls

    return deco


def build_adapter(kind: str, in_shape: tuple[int, ...], config: DecoderConfig) -> nn.Module:
    """Instantiate the adapter ``kind`` for input shape ``in_shape``."""
    if kind not in ADAPTERS:
        raise ValueError(
            f"Invalid value for the 'adapter' parameter. Allowed values are "
            f"{', '.join(map(repr, sorted(ADAPTERS)))}, but got {kind!r} instead."
        )
    return ADAPTERS[kind].from_config(tuple(in_shape), config)


def _n_in(in_shape: tuple[int, ...]) -> int:
    return int(math.prod(in_shape))


@register_adapter("linear")
class LinearAdapter(nn.Module):
    """One linear layer ``n_features -> d_out`` (MindEye2's per-subject "ridge" layer).

    Its regularisation is the optimiser's weight decay (set ``adapter_weight_decay`` in
    :class:`~braindecode_kit.train.TrainConfig`), as in MindEye2. Structured input
    (``(n, C, T)``) is flattened.

    Parameters
    ----------
    n_features : int
        Number of input features (voxels).
    d_out : int
        Width of the shared space.
    dropout : float
        Dropout applied to the input features.
    """

    def __init__(self, n_features: int, d_out: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.n_features = int(n_features)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.linear = nn.Linear(self.n_features, d_out)

    @classmethod
    def from_config(cls, in_shape: tuple[int, ...], config: DecoderConfig) -> LinearAdapter:
        return cls(_n_in(in_shape), config.d_shared, config.adapter_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(x.flatten(1)))


@register_adapter("mlp")
class MLPAdapter(nn.Module):
    """A shallow MLP ``n_features -> hidden -> d_out`` (as See Through Their Minds).

    Linear, LayerNorm, GELU, Dropout, Linear.

    Parameters
    ----------
    n_features : int
        Number of input features (voxels).
    d_out : int
        Width of the shared space.
    hidden : int
        Hidden width.
    dropout : float
        Dropout on the input features and on the hidden layer.
    """

    def __init__(self, n_features: int, d_out: int, hidden: int = 512, dropout: float = 0.0):
        super().__init__()
        self.n_features = int(n_features)
        self.net = nn.Sequential(
            nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
            nn.Linear(self.n_features, hidden),
            nn.LayerNorm(hidden),
            nn.GELU(),
            nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
            nn.Linear(hidden, d_out),
        )

    @classmethod
    def from_config(cls, in_shape: tuple[int, ...], config: DecoderConfig) -> MLPAdapter:
        return cls(_n_in(in_shape), config.d_shared, config.adapter_hidden,
                   config.adapter_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))
