"""Per-subject adapters: each maps one subject's features into the shared space.

Subjects have different numbers of voxels (or sensors), so each gets its own adapter;
everything after the adapter is shared. An adapter owns its output normalisation
(``.norm``, applied last). The registry is open: a new adapter kind (e.g. a sensor
``SubjectLayer``) registers itself with :func:`register_adapter` and is then selectable by
name in :class:`~braindecode_kit.models.DecoderConfig` and
:class:`~braindecode_kit.models.SubjectSpec`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from torch import nn

from .._checks import check_option
from ._registry import ADAPTERS, FEATURE_KINDS
from .config import DecoderConfig, SubjectSpec

__all__ = [
    "ADAPTERS",
    "FEATURE_KINDS",
    "Adapter",
    "LinearAdapter",
    "MLPAdapter",
    "build_adapter",
    "register_adapter",
]



def register_adapter(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator adding an adapter kind to :data:`ADAPTERS`.

    The class must define ``from_config(spec: SubjectSpec, config: DecoderConfig)``
    returning a module that maps ``(n, *spec.feature_shape)`` tensors to the shared space,
    a class attribute ``produces`` (``"vector"``: ``(n, config.d_shared)``;
    ``"sequence"``: ``(n, config.d_shared, T)``) and, on the instance, ``norm``: its output
    normalisation (``nn.Identity`` if none), applied at the end of ``forward``. Subclassing
    :class:`Adapter` gives ``produces = "vector"`` and a ``norm`` from the config.

    An adapter kind whose subjects share part of their parameters (the spatial
    attention over sensor positions) names that part in a class attribute ``shared``
    (a key) and builds it with ``build_shared(config)``; the decoder holds one such
    module per key (``decoder.shared[key]``) and passes it as
    ``from_config(spec, config, shared=module)``.

    Parameters
    ----------
    name : str
        The kind's name (a later registration under the same name replaces the earlier).

    Returns
    -------
    callable
        The decorator; it returns the class unchanged.
    """

    return ADAPTERS.decorator(name, "produces")


def build_adapter(kind: str, spec: SubjectSpec, config: DecoderConfig,
                  shared: nn.Module | None = None) -> nn.Module:
    """Instantiate the adapter ``kind`` for a subject's ``spec``.

    Parameters
    ----------
    kind : str
        A registered adapter kind.
    spec : SubjectSpec
        The subject's input (its ``feature_shape`` sizes the adapter).
    config : DecoderConfig
        The decoder's hyperparameters (``d_shared``, dropout, norm, ...).
    shared : torch.nn.Module or None
        The module the kind's subjects share (kinds with a ``shared`` key only; None:
        the adapter builds its own).

    Returns
    -------
    torch.nn.Module
        The adapter, with its ``norm`` attribute.
    """
    check_option("adapter", kind, ADAPTERS.names())
    cls = ADAPTERS[kind]
    if getattr(cls, "shared", None):
        adapter = cls.from_config(spec, config, shared=shared)
    else:
        adapter = cls.from_config(spec, config)
    if not isinstance(getattr(adapter, "norm", None), nn.Module):
        raise TypeError(
            f"The {kind!r} adapter ({type(adapter).__name__}) must have a 'norm' module (its "
            "output normalisation, nn.Identity() if none), applied at the end of forward."
        )
    return adapter


class Adapter(nn.Module):
    """Base of the built-in adapters: ``produces = "vector"`` and a config-given norm.

    Subclasses build their layers first and call :meth:`_set_norm` last, so the norm
    (which draws no random numbers) comes after them in the state dict.
    """

    #: what the adapter outputs: ``"vector"`` ``(n, d_shared)``
    produces: ClassVar[str] = "vector"

    def _set_norm(self, d_out: int, norm: bool) -> None:
        self.norm = nn.LayerNorm(d_out) if norm else nn.Identity()


@register_adapter("linear")
class LinearAdapter(Adapter):
    """One linear layer ``n_features -> d_out`` (MindEye2's per-subject "ridge" layer).

    Its regularisation is the optimiser's weight decay (set ``adapter_weight_decay`` in
    :class:`~braindecode_kit.train.TrainConfig`), as in MindEye2. Structured input
    (``(n, C, T)`` sensor epochs) is flattened to ``(n, C * T)``.

    Parameters
    ----------
    n_features : int
        Number of input values per trial (voxels, or channels x times).
    d_out : int
        Width of the shared space.
    dropout : float
        Dropout applied to the input features (in training mode only).
    norm : bool
        Whether the output goes through a LayerNorm (``.norm``; else ``nn.Identity``).

    Attributes
    ----------
    linear : torch.nn.Linear
        The ``n_features -> d_out`` layer.
    norm : torch.nn.Module
        The output normalisation.
    """

    def __init__(self, n_features: int, d_out: int, dropout: float = 0.0,
                 norm: bool = False) -> None:
        super().__init__()
        self.n_features = int(n_features)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.linear = nn.Linear(self.n_features, d_out)
        self._set_norm(d_out, norm)

    @classmethod
    def from_config(cls, spec: SubjectSpec, config: DecoderConfig) -> LinearAdapter:
        """The adapter for ``spec``'s flattened input and ``config``'s shared space."""
        return cls(spec.n_features, config.d_shared, config.adapter_dropout,
                   norm=config.norm == "layernorm")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.linear(self.dropout(x.flatten(1))))


@register_adapter("mlp")
class MLPAdapter(Adapter):
    """A shallow MLP ``n_features -> hidden -> d_out`` (as See Through Their Minds).

    Dropout, Linear, LayerNorm, GELU, Dropout, Linear, then the output norm. Structured
    input (``(n, C, T)``) is flattened.

    Parameters
    ----------
    n_features : int
        Number of input values per trial (voxels, or channels x times).
    d_out : int
        Width of the shared space.
    hidden : int
        Hidden width.
    dropout : float
        Dropout on the input features and on the hidden layer (in training mode only).
    norm : bool
        Whether the output goes through a LayerNorm (``.norm``; else ``nn.Identity``).
    """

    def __init__(self, n_features: int, d_out: int, hidden: int = 512, dropout: float = 0.0,
                 norm: bool = False) -> None:
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
        self._set_norm(d_out, norm)

    @classmethod
    def from_config(cls, spec: SubjectSpec, config: DecoderConfig) -> MLPAdapter:
        """The adapter for ``spec``'s flattened input and ``config``'s shared space."""
        return cls(spec.n_features, config.d_shared, config.adapter_hidden,
                   config.adapter_dropout, norm=config.norm == "layernorm")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.net(x.flatten(1)))
