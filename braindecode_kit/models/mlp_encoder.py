"""The ``"mlp"`` shared encoder: a residual MLP over the shared space (MindEye-style blocks)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from .config import DecoderConfig
from .encoders import register_encoder

__all__ = ["ResidualBlock", "ResidualMLP"]


class ResidualBlock(nn.Module):
    """``x + Dropout(GELU(Linear(LayerNorm(x))))`` (a pre-norm MindEye residual block).

    Parameters
    ----------
    d : int
        Width.
    dropout : float
        Dropout probability.
    """

    def __init__(self, d: int, dropout: float = 0.15) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.linear = nn.Linear(d, d)
        self.act = nn.GELU()
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.dropout(self.act(self.linear(self.norm(x))))


@register_encoder("mlp")
class ResidualMLP(nn.Module):
    """A stack of :class:`ResidualBlock` shared by all subjects, then a final norm.

    Consumes ``(n, d)`` vectors (``consumes = "vector"``) and returns ``(n, d)``.

    Parameters
    ----------
    d : int
        Width of the shared space.
    n_blocks : int
        Number of residual blocks (MindEye2 uses 4).
    dropout : float
        Dropout inside each block.
    final_norm : bool
        Apply a LayerNorm to the output.
    """

    #: input ``(n, d)``
    consumes: ClassVar[str] = "vector"

    def __init__(self, d: int, n_blocks: int = 2, dropout: float = 0.15,
                 final_norm: bool = True) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*[ResidualBlock(d, dropout) for _ in range(n_blocks)])
        self.norm = nn.LayerNorm(d) if final_norm else nn.Identity()

    @classmethod
    def from_config(cls, config: DecoderConfig) -> ResidualMLP:
        """``config.n_blocks`` blocks of width ``config.d_shared`` (final norm per ``norm``)."""
        return cls(config.d_shared, config.n_blocks, config.dropout,
                   final_norm=config.norm == "layernorm")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.blocks(x))
