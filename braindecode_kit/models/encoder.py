"""The shared encoder: a residual MLP over the shared space (MindEye-style blocks)."""

from __future__ import annotations

import torch
from torch import nn

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


class ResidualMLP(nn.Module):
    """A stack of :class:`ResidualBlock` shared by all subjects, then a final norm.

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

    def __init__(self, d: int, n_blocks: int = 2, dropout: float = 0.15,
                 final_norm: bool = True) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*[ResidualBlock(d, dropout) for _ in range(n_blocks)])
        self.norm = nn.LayerNorm(d) if final_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.blocks(x))
