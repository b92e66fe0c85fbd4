"""The shared-encoder registry: each encoder kind declares what it consumes.

An encoder maps the adapters' shared-space features to the heads' input ``(n, d_shared)``.
It declares ``consumes``: ``"vector"`` (input ``(n, d_shared)``, as the residual MLP) or
``"sequence"`` (input ``(n, d_shared, T)``, as a temporal convolution over sensor
epochs); a sequence encoder pools time itself (e.g. with :class:`TemporalPool`) so the
heads always see ``(n, d_shared)``. :class:`~braindecode_kit.models.BrainDecoder` checks
that every subject's adapter produces what the encoder consumes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .._checks import check_option
from ._registry import ENCODERS
from .config import DecoderConfig

__all__ = ["ENCODERS", "TemporalPool", "build_encoder", "encoder_class", "register_encoder"]


def register_encoder(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator adding a shared-encoder kind to :data:`ENCODERS`.

    The class must define ``from_config(config: DecoderConfig)`` and a class attribute
    ``consumes`` (``"vector"``: input ``(n, config.d_shared)``; ``"sequence"``: input
    ``(n, config.d_shared, T)``); its ``forward`` returns ``(n, config.d_shared)``.

    Parameters
    ----------
    name : str
        The kind's name (a later registration under the same name replaces the earlier).

    Returns
    -------
    callable
        The decorator; it returns the class unchanged.
    """

    return ENCODERS.decorator(name, "consumes")


def encoder_class(kind: str) -> type[nn.Module]:
    """The class registered as encoder ``kind`` (refused with the allowed kinds if unknown)."""
    check_option("encoder", kind, ENCODERS.names())
    return ENCODERS[kind]


def build_encoder(kind: str, config: DecoderConfig) -> nn.Module:
    """Instantiate the shared encoder ``kind`` from ``config``.

    Parameters
    ----------
    kind : str
        A registered encoder kind (``config.encoder``).
    config : DecoderConfig
        The decoder's hyperparameters.

    Returns
    -------
    torch.nn.Module
        The encoder (its class's ``consumes`` says what input it takes).
    """
    return encoder_class(kind).from_config(config)


class TemporalPool(nn.Module):
    """Pool ``(n, d, T)`` features over time into ``(n, d)``, for sequence encoders.

    Parameters
    ----------
    d : int
        Feature width.
    mode : {"mean", "attention", "affine"}
        ``"mean"``: the average over time. ``"attention"``: a learned softmax weighting of
        the time steps (one score per step from a Linear ``d -> 1``). ``"affine"``: a
        learned affine map of the time axis ``T -> 1`` (one weight per sample and a bias,
        shared by the features), as the MEG image paper's temporal aggregation.
    n_times : int or None
        Number of time samples (``"affine"`` only).
    """

    def __init__(self, d: int, mode: str = "mean", n_times: int | None = None) -> None:
        super().__init__()
        self.mode = check_option("mode", mode, ("mean", "attention", "affine"))
        self.score = nn.Linear(int(d), 1) if mode == "attention" else None
        if mode == "affine":
            if n_times is None:
                raise ValueError("TemporalPool(mode='affine') needs n_times.")
            self.affine = nn.Linear(int(n_times), 1)
            with torch.no_grad():  # starts as the mean over time
                self.affine.weight.fill_(1.0 / int(n_times))
                self.affine.bias.zero_()
        else:
            self.affine = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.affine is not None:
            return self.affine(x).squeeze(-1)
        if self.score is None:
            return x.mean(dim=-1)
        weights = torch.softmax(self.score(x.transpose(1, 2)), dim=1)  # (n, T, 1)
        return (x * weights.transpose(1, 2)).sum(dim=-1)
