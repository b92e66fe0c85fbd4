"""Output heads: shared-space features -> CLIP targets.

- :class:`PooledHead`: the pooled CLIP image embedding (retrieval, generation);
- :class:`TokenHead`: image tokens ``(n_tokens, token_dim)`` (as MindEye2's bigG tokens);
- the caption-text head is a :class:`PooledHead` onto the text-embedding dimension;
- :class:`BlurryHead`: a blurry ``3 x s x s`` image of what was seen (the low-level path).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BlurryHead", "PooledHead", "TokenHead"]


class PooledHead(nn.Module):
    """``d -> out_dim``: a Linear, or a two-layer projector when ``hidden > 0``.

    Parameters
    ----------
    d : int
        Input width.
    out_dim : int
        Output dimension (the CLIP embedding dimension).
    hidden : int
        0 for a single Linear (the encoder already ends with a LayerNorm); otherwise a
        projector Linear(d, hidden), GELU, LayerNorm, Linear(hidden, out_dim).
    """

    def __init__(self, d: int, out_dim: int, hidden: int = 0) -> None:
        super().__init__()
        if hidden > 0:
            self.net = nn.Sequential(
                nn.Linear(d, hidden), nn.GELU(), nn.LayerNorm(hidden), nn.Linear(hidden, out_dim)
            )
        else:
            self.net = nn.Linear(d, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TokenHead(nn.Module):
    """``d -> (n_tokens, token_dim)`` image tokens.

    Parameters
    ----------
    d : int
        Input width.
    n_tokens, token_dim : int
        Output token grid (MindEye2: 256 x 1664).
    rank : int or None
        None: one Linear ``d -> n_tokens * token_dim`` (MindEye2's backbone linear).
        An int r: ``d -> n_tokens * r``, LayerNorm, then a per-token Linear ``r -> token_dim``
        shared across tokens.
    """

    def __init__(self, d: int, n_tokens: int, token_dim: int, rank: int | None = None):
        super().__init__()
        self.n_tokens, self.token_dim, self.rank = int(n_tokens), int(token_dim), rank
        if rank is None:
            self.proj = nn.Linear(d, self.n_tokens * self.token_dim)
            self.token_proj = None
        else:
            self.proj = nn.Linear(d, self.n_tokens * int(rank))
            self.token_proj = nn.Sequential(nn.LayerNorm(int(rank)), nn.Linear(int(rank), token_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        if self.token_proj is None:
            return self.proj(x).view(n, self.n_tokens, self.token_dim)
        return self.token_proj(self.proj(x).view(n, self.n_tokens, int(self.rank)))


class BlurryHead(nn.Module):
    """``d -> (3, size, size)``: a blurry RGB image in ``[0, 1]`` (the low-level path).

    One Linear onto the pixels of the seen image downsampled to ``size x size``, offset by
    0.5 (mid-grey) so that an untrained head predicts a grey image; trained with L1 as
    MindEye2's low-level head (there on SD-VAE latents). The output is not clipped in
    training (L1 needs the gradient); :meth:`BrainDecoder.predict` clips it to ``[0, 1]``.
    """

    def __init__(self, d: int, size: int) -> None:
        super().__init__()
        self.size = int(size)
        self.proj = nn.Linear(d, 3 * self.size * self.size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).view(x.shape[0], 3, self.size, self.size) + 0.5
