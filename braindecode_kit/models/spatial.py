"""Spatial attention over sensor positions and the per-subject subject layer.

The MEG brain module's front end (Defossez et al. 2023, Benchetrit et al. 2024): each
of K virtual channels is a softmax-weighted sum of the input sensors, the weights a
function of the sensors' positions only (a Fourier embedding scored by K learned
queries), so subjects with different sensor sets share it; a disc of sensors is dropped
at random during training; then a per-subject ``K x K`` 1x1 convolution (the subject
layer).

- :class:`SpatialAttention` is shared by all subjects of a decoder: the decoder holds
  it once (``decoder.shared[<kind>]``, one set of keys in the state dict) and each
  subject's adapter refers to it without owning it (a new subject's adaptation trains
  only its own subject layer).
- :class:`SpatialAttentionAdapter` (``"spatial_attention"``): MEG, 2-D layout positions
  (from :func:`mne.find_layout`) normalised per subject to [0, 1].
- :class:`PositionAttentionAdapter` (``"seeg_position"``): sEEG, each contact's 3-D
  coordinates in a common frame mapped to [0, 1] by a fixed head-sized box, so a new
  patient's contacts map by where they are (as Population Transformer embeds x/y/z).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from .adapters import register_adapter
from .config import DecoderConfig, SubjectSpec

__all__ = [
    "FourierPositions",
    "PositionAttentionAdapter",
    "SpatialAttention",
    "SpatialAttentionAdapter",
    "SubjectLayer",
]

#: half-width (m) of the box mapping 3-D contact coordinates to [0, 1] (a head)
HEAD_BOX = 0.1


class FourierPositions(nn.Module):
    """Fourier features of positions in ``[0, 1]^D``: cos and sin of a frequency grid.

    With ``n`` frequencies per axis (``n = floor((n_features / 2) ** (1 / D))``) the
    features are ``cos(2 pi <f, p> / w)`` and ``sin(...)`` for every integer vector ``f``
    of ``{0..n-1}^D``, ``w = 1 + 2 * margin`` (positions are shifted by the margin so
    the box does not wrap around).

    Parameters
    ----------
    dim : int
        Dimension of the positions (2 or 3).
    n_features : int
        Feature budget; the output has ``2 * n ** dim`` features (:attr:`n_out`).
    margin : float
        Margin around the unit box.
    """

    def __init__(self, dim: int, n_features: int, margin: float = 0.2) -> None:
        super().__init__()
        self.dim = int(dim)
        n = max(1, int(math.floor((n_features / 2) ** (1 / self.dim) + 1e-9)))
        grid = torch.stack(torch.meshgrid(*[torch.arange(n, dtype=torch.float32)] * self.dim,
                                          indexing="ij"), dim=-1).reshape(-1, self.dim)
        self.margin = float(margin)
        self.register_buffer("freqs", grid * (2 * math.pi / (1 + 2 * self.margin)),
                             persistent=False)
        self.n_out = 2 * grid.shape[0]

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        phase = (positions + self.margin) @ self.freqs.T  # (..., n ** dim)
        return torch.cat([torch.cos(phase), torch.sin(phase)], dim=-1)


class SpatialAttention(nn.Module):
    """Sensors -> K virtual channels by softmax attention over their positions (shared).

    ``weights[k, c] = softmax_c(<query_k, fourier(pos_c)>)``; output
    ``y[k] = sum_c weights[k, c] x[c]``, then a shared 1x1 convolution ``K -> K``.
    In training mode the sensors inside a random disc (ball) of radius ``dropout`` are
    left out of the softmax (the same disc for the whole batch).

    Parameters
    ----------
    n_out : int
        Number of virtual channels K.
    dim : int
        Dimension of the positions (2: a layout, 3: coordinates).
    pos_dim : int
        Fourier feature budget (see :class:`FourierPositions`).
    dropout : float
        Radius of the dropped disc in normalised position units (0: none).
    """

    def __init__(self, n_out: int, dim: int = 2, pos_dim: int = 512,
                 dropout: float = 0.2) -> None:
        super().__init__()
        self.embedding = FourierPositions(dim, pos_dim)
        self.queries = nn.Parameter(torch.randn(int(n_out), self.embedding.n_out)
                                    / math.sqrt(self.embedding.n_out))
        self.linear = nn.Conv1d(int(n_out), int(n_out), 1)
        self.dim = int(dim)
        self.dropout = float(dropout)

    def weights(self, positions: torch.Tensor) -> torch.Tensor:
        """The ``(K, C)`` attention of the channels at ``positions`` ``(C, dim)``."""
        scores = self.queries @ self.embedding(positions).T  # (K, C)
        if self.training and self.dropout > 0:
            center = torch.rand(self.dim, device=positions.device)
            banned = (positions - center).norm(dim=-1) <= self.dropout
            if not bool(banned.all()):
                scores = scores.masked_fill(banned[None], float("-inf"))
        return torch.softmax(scores, dim=-1)

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        w = self.weights(positions.to(x.dtype))
        return self.linear(torch.einsum("kc,nct->nkt", w, x))


class SubjectLayer(nn.Module):
    """One subject's ``C x C`` 1x1 convolution (no bias), initialised to the identity.

    Parameters
    ----------
    n_channels : int
        Channels in and out.
    """

    def __init__(self, n_channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.eye(int(n_channels)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("oc,nct->not", self.weight, x)


def _check_positions(spec: SubjectSpec, kind: str, dim: int) -> np.ndarray:
    if spec.positions is None or len(spec.feature_shape) != 2:
        raise ValueError(
            f"The {kind!r} adapter needs (n_channels, n_times) input with one sensor position "
            f"per channel, but the subject's spec has feature_shape {spec.feature_shape} and "
            f"positions {'None' if spec.positions is None else 'given'}: build it with "
            "SubjectSpec.from_trialset(ts) on a TrialSet whose SensorInfo has positions."
        )
    pos = np.asarray(spec.positions, np.float64)
    if pos.shape[1] != dim:
        raise ValueError(
            f"The {kind!r} adapter reads {dim}-D sensor positions, but the subject's spec has "
            f"{pos.shape[1]}-D ones."
        )
    return pos


class _AttentionAdapter(nn.Module):
    """Shared :class:`SpatialAttention` (referenced, not owned) + a :class:`SubjectLayer`."""

    produces: ClassVar[str] = "sequence"
    #: the decoder holds one shared module under this key for all subjects of the kind
    shared: ClassVar[str] = ""
    dim: ClassVar[int] = 2

    def __init__(self, positions: np.ndarray, attention: SpatialAttention) -> None:
        super().__init__()
        # not a submodule: the decoder owns it (one copy in the state dict, frozen with
        # the rest of the shared model when a new subject is adapted)
        object.__setattr__(self, "attention", attention)
        self.register_buffer("positions", torch.as_tensor(positions, dtype=torch.float32),
                             persistent=False)  # config.json has them: the spec
        n_out = attention.queries.shape[0]
        self.subject_layer = SubjectLayer(n_out)
        self.norm = nn.Identity()

    @classmethod
    def build_shared(cls, config: DecoderConfig) -> SpatialAttention:
        """The attention all subjects of this kind share."""
        return SpatialAttention(config.d_shared, cls.dim, config.pos_dim,
                                config.spatial_dropout)

    @classmethod
    def normalise(cls, positions: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def from_config(cls, spec: SubjectSpec, config: DecoderConfig,
                    shared: Any = None) -> _AttentionAdapter:
        """The adapter of ``spec``'s sensors onto ``config.d_shared`` virtual channels."""
        kind = cls.shared
        pos = cls.normalise(_check_positions(spec, kind, cls.dim))
        if shared is None:
            shared = cls.build_shared(config)
        return cls(pos, shared)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.subject_layer(self.attention(x, self.positions)))


@register_adapter("spatial_attention")
class SpatialAttentionAdapter(_AttentionAdapter):
    """MEG sensors -> K virtual channels: shared spatial attention, per-subject layer.

    Positions: the subject's 2-D layout (``SubjectSpec.positions``, from
    :func:`mne.find_layout`), normalised to [0, 1] per axis per subject as the MEG brain
    module does. Input ``(n, C, T)``, output ``(n, d_shared, T)``.
    """

    shared: ClassVar[str] = "spatial_attention"
    dim: ClassVar[int] = 2

    @classmethod
    def normalise(cls, positions: np.ndarray) -> np.ndarray:
        lo, hi = positions.min(0), positions.max(0)
        return (positions - lo) / np.where(hi > lo, hi - lo, 1.0)


@register_adapter("seeg_position")
class PositionAttentionAdapter(_AttentionAdapter):
    """sEEG contacts -> K virtual channels by where they are (3-D coordinates).

    Positions: each contact's x/y/z in metres in a frame common to the patients (e.g.
    MNI), mapped to [0, 1] by the fixed box ``[-0.1, 0.1]^3`` (clipped), so the same
    place means the same input for every patient and a new patient's contacts get
    meaningful weights before any training. Input ``(n, C, T)``, output
    ``(n, d_shared, T)``.
    """

    shared: ClassVar[str] = "seeg_position"
    dim: ClassVar[int] = 3

    @classmethod
    def normalise(cls, positions: np.ndarray) -> np.ndarray:
        return np.clip((positions + HEAD_BOX) / (2 * HEAD_BOX), 0.0, 1.0)
