"""The ``"conv"`` shared encoder: residual dilated 1-D convolutions over time.

The MEG brain module's trunk (brainmagick's SimpleConv, as described in its paper and
config): kernel 3, dilation doubling and resetting every 5 blocks, a GLU every second
block, GELU, normalisation; then a 1x1 projection, a learned affine aggregation
of the time axis (``T -> 1``, :class:`~braindecode_kit.models.TemporalPool` ``"affine"``)
and a LayerNorm, before the decoder's CLIP heads.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from .config import DecoderConfig, SubjectSpec
from .encoders import TemporalPool, register_encoder

__all__ = ["ConvBlock", "ConvEncoder"]


class ConvBlock(nn.Module):
    """``x + Dropout(GELU(Norm(Conv_k3,dilated(x))))``, then optionally a GLU.

    The norm is a per-trial ``GroupNorm(1, width)`` (over channels and time), not the
    MEG brain module's BatchNorm: it keeps no running statistics, so a new subject's
    adaptation through the frozen encoder changes nothing in it, and batches mixing
    subjects or split over processes normalise each trial the same way.

    Parameters
    ----------
    width : int
        Channels.
    dilation : int
        Dilation of the kernel-3 convolution (padding keeps the length).
    glu : bool
        Follow the residual with ``GLU(Conv1x1(width -> 2 width))``.
    dropout : float
        Dropout after the activation.
    """

    def __init__(self, width: int, dilation: int, glu: bool, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv = nn.Conv1d(width, width, 3, padding=dilation, dilation=dilation)
        self.norm = nn.GroupNorm(1, width)
        self.act = nn.GELU()
        self.dropout = nn.Dropout(dropout)
        self.glu = (nn.Sequential(nn.Conv1d(width, 2 * width, 1), nn.GLU(dim=1))
                    if glu else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.act(self.norm(self.conv(x))))
        return x if self.glu is None else self.glu(x)


@register_encoder("conv")
class ConvEncoder(nn.Module):
    """``(n, d_in, T) -> (n, d_out)``: dilated residual conv blocks, affine time pooling.

    Consumes sequences (``consumes = "sequence"``). All subjects must have the same
    number of time samples (the aggregation's weights are one per sample).

    Parameters
    ----------
    d_in : int
        Input channels (the adapters' virtual channels, ``d_shared``).
    n_times : int
        Time samples per trial.
    width : int
        Channels of the blocks.
    n_blocks : int
        Number of :class:`ConvBlock` (the MEG brain module: 10; its image-paper
        reimplementations: 2).
    d_out : int or None
        Output width (None: ``d_in``).
    dilation_period : int
        Dilation is ``2 ** (i % dilation_period)`` for block ``i``.
    glu_every : int
        Block ``i`` ends with a GLU when ``(i + 1) % glu_every == 0`` (0: never).
    dropout : float
        Dropout inside the blocks.
    final_norm : bool
        End with a LayerNorm.
    """

    #: input ``(n, d_shared, T)``
    consumes: ClassVar[str] = "sequence"

    def __init__(self, d_in: int, n_times: int, width: int = 128, n_blocks: int = 2,
                 d_out: int | None = None, dilation_period: int = 5, glu_every: int = 2,
                 dropout: float = 0.0, final_norm: bool = True) -> None:
        super().__init__()
        d_out = int(d_in if d_out is None else d_out)
        self.n_times = int(n_times)
        self.input = nn.Conv1d(int(d_in), int(width), 1)
        self.blocks = nn.Sequential(*[
            ConvBlock(int(width), 2 ** (i % dilation_period),
                      glu=bool(glu_every) and (i + 1) % glu_every == 0, dropout=dropout)
            for i in range(int(n_blocks))])
        self.output = nn.Sequential(nn.Conv1d(int(width), 2 * int(width), 1), nn.GELU(),
                                    nn.Conv1d(2 * int(width), d_out, 1))
        self.pool = TemporalPool(d_out, mode="affine", n_times=self.n_times)
        self.norm = nn.LayerNorm(d_out) if final_norm else nn.Identity()

    @staticmethod
    def _n_times(config: DecoderConfig) -> int:
        sizes = {tuple(s.feature_shape)[1:] for s in config.subjects.values()}
        if len(sizes) != 1 or len(next(iter(sizes))) != 1:
            raise ValueError(
                "The 'conv' encoder needs every subject's input to be (n_channels, n_times) "
                "with the same n_times (its time aggregation has one weight per sample), but "
                f"got feature shapes {sorted({s.feature_shape for s in config.subjects.values()})}."
            )
        return next(iter(sizes))[0]

    @classmethod
    def check_subject(cls, spec: SubjectSpec, config: DecoderConfig) -> None:
        """Refuse a subject whose time axis differs from the other subjects'."""
        cls._n_times(config)

    @classmethod
    def from_config(cls, config: DecoderConfig) -> ConvEncoder:
        """``config.n_blocks`` blocks of ``config.conv_width`` channels, ``d_shared`` out."""
        return cls(config.d_shared, cls._n_times(config), config.conv_width, config.n_blocks,
                   dropout=config.dropout, final_norm=config.norm == "layernorm")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.n_times:
            raise ValueError(
                f"The conv encoder aggregates {self.n_times} time samples, but the input has "
                f"{x.shape[-1]} (shape {tuple(x.shape)})."
            )
        return self.norm(self.pool(self.output(self.blocks(self.input(x)))))
