"""The ``"channel_linear"`` adapter: one subject's channels -> K virtual channels.

sEEG patients have different numbers of contacts in different places; each gets its own
linear map of its contacts onto a fixed set of virtual channels (a 1x1 convolution over
time, as Du-IN's per-subject layer), after which the model is shared. It reads no
positions (see ``"seeg_position"`` for the variant that does).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from .adapters import register_adapter
from .config import DecoderConfig, SubjectSpec

__all__ = ["ChannelLinearAdapter"]


@register_adapter("channel_linear")
class ChannelLinearAdapter(nn.Module):
    """``(n, C, T) -> (n, d_out, T)``: channel dropout, then a per-subject 1x1 conv.

    Parameters
    ----------
    n_channels : int
        The subject's channels C.
    d_out : int
        Virtual channels K (the decoder's ``d_shared``).
    dropout : float
        Probability of zeroing a whole input channel (per trial) in training mode.
    """

    #: output ``(n, d_shared, T)``
    produces: ClassVar[str] = "sequence"

    def __init__(self, n_channels: int, d_out: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout1d(dropout) if dropout > 0 else nn.Identity()
        self.conv = nn.Conv1d(int(n_channels), int(d_out), 1)
        self.norm = nn.Identity()

    @classmethod
    def from_config(cls, spec: SubjectSpec, config: DecoderConfig) -> ChannelLinearAdapter:
        """The adapter of ``spec``'s channels (``adapter_dropout`` drops whole channels)."""
        if len(spec.feature_shape) != 2:
            raise ValueError(
                "The 'channel_linear' adapter needs (n_channels, n_times) input, but the "
                f"subject's spec has feature_shape {spec.feature_shape}."
            )
        return cls(spec.feature_shape[0], config.d_shared, config.adapter_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(self.dropout(x)))
