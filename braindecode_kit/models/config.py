"""``DecoderConfig``: the data that fully describes a :class:`BrainDecoder`.

Architectures are data: a config round-trips through ``config.json`` and rebuilds the same
network (the weights travel separately, in safetensors). Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._checks import check_positive_int

__all__ = ["DecoderConfig", "FeatureShape"]

FeatureShape = int | tuple[int, ...]

_NORMS = ("layernorm", "none")


def _norm_shape(subject: str, value: Any) -> FeatureShape:
    if isinstance(value, (list, tuple)):
        dims = tuple(check_positive_int(f"subjects[{subject!r}]", int(v)) for v in value)
        if not dims:
            raise ValueError(f"subjects[{subject!r}] must not be an empty shape.")
        return dims[0] if len(dims) == 1 else dims
    return check_positive_int(f"subjects[{subject!r}]", value)


@dataclass
class DecoderConfig:
    """Hyperparameters of a :class:`~braindecode_kit.models.BrainDecoder`.

    Parameters
    ----------
    subjects : dict of str to int or tuple of int
        Subject name -> number of input features (voxels), or the per-trial input shape
        (e.g. ``(n_channels, n_times)``) for adapters that take structured input. The
        decoder refuses input whose feature shape differs.
    embed_dim : int
        Dimension of the pooled CLIP image embedding the main head predicts.
    adapter : str
        Default adapter kind for every subject (a name in the adapter registry:
        ``"linear"`` as MindEye2's per-subject linear layer, ``"mlp"`` as See Through
        Their Minds).
    adapter_kinds : dict of str to str
        Per-subject overrides of ``adapter``.
    adapter_hidden : int
        Hidden width of the ``"mlp"`` adapter.
    adapter_dropout : float
        Dropout on the adapter's input features (voxel dropout); 0.5 helped on noisy
        simulated data (single-trial betas), set 0 to match MindEye2 exactly.
    d_shared : int
        Width of the shared space the adapters map into.
    n_blocks : int
        Number of residual MLP blocks of the shared encoder.
    dropout : float
        Dropout inside the residual blocks.
    norm : {"layernorm", "none"}
        Normalisation of the adapters' output (the shared-space input) and of the
        encoder's output.
    head_hidden : int
        If > 0, the pooled head is a two-layer projector (LayerNorm, Linear, GELU,
        Linear) with this hidden width; 0 gives LayerNorm + Linear.
    token_shape : tuple of (int, int) or None
        ``(n_tokens, token_dim)`` of the optional image-token head (as MindEye2's
        256 x 1664 OpenCLIP bigG tokens); None disables it.
    token_rank : int or None
        None: the token head is one Linear ``d_shared -> n_tokens * token_dim`` (as
        MindEye2's backbone). An int r factorises it as ``d_shared -> n_tokens * r``
        followed by a per-token ``r -> token_dim`` layer (far fewer parameters).
    text_dim : int or None
        Dimension of the optional caption-text embedding head; None disables it.
    stimulus_map : bool
        Whether the decoder holds a map from a stimulus's CLIP embeddings to its shared
        space (set by :func:`braindecode_kit.transfer.fit_stimulus_map` after training; it
        gives a new subject's adapter its closed-form targets).
    stimulus_map_text_dim : int
        Dimension of the caption-text embedding the stimulus map also reads (0: it reads
        the image embedding only).
    """

    subjects: dict[str, FeatureShape]
    embed_dim: int
    adapter: str = "linear"
    adapter_kinds: dict[str, str] = field(default_factory=dict)
    adapter_hidden: int = 512
    adapter_dropout: float = 0.5
    d_shared: int = 512
    n_blocks: int = 2
    dropout: float = 0.15
    norm: str = "layernorm"
    head_hidden: int = 0
    token_shape: tuple[int, int] | None = None
    token_rank: int | None = None
    text_dim: int | None = None
    stimulus_map: bool = False
    stimulus_map_text_dim: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.subjects, Mapping):
            raise TypeError(
                "subjects must be a mapping subject name -> number of features, but got "
                f"{type(self.subjects).__name__}."
            )
        self.subjects = {str(k): _norm_shape(str(k), v) for k, v in self.subjects.items()}
        self.embed_dim = check_positive_int("embed_dim", self.embed_dim)
        self.d_shared = check_positive_int("d_shared", self.d_shared)
        self.n_blocks = check_positive_int("n_blocks", self.n_blocks, allow_zero=True)
        self.adapter_hidden = check_positive_int("adapter_hidden", self.adapter_hidden)
        self.head_hidden = check_positive_int("head_hidden", self.head_hidden, allow_zero=True)
        for name in ("dropout", "adapter_dropout"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not 0.0 <= float(v) < 1.0:
                raise ValueError(f"{name} must be a float in [0, 1), but got {v!r}.")
            setattr(self, name, float(v))
        if self.norm not in _NORMS:
            raise ValueError(
                f"Invalid value for the 'norm' parameter. Allowed values are "
                f"{', '.join(map(repr, _NORMS))}, but got {self.norm!r} instead."
            )
        self.adapter_kinds = {str(k): str(v) for k, v in dict(self.adapter_kinds).items()}
        unknown = sorted(set(self.adapter_kinds) - set(self.subjects))
        if unknown:
            raise ValueError(
                f"adapter_kinds names subjects that are not in subjects: {unknown} "
                f"(subjects are {sorted(self.subjects)})."
            )
        if self.token_shape is not None:
            ts = tuple(self.token_shape)
            if len(ts) != 2:
                raise ValueError(
                    f"token_shape must be (n_tokens, token_dim), but got {self.token_shape!r}."
                )
            self.token_shape = (
                check_positive_int("token_shape[0]", int(ts[0])),
                check_positive_int("token_shape[1]", int(ts[1])),
            )
        if self.token_rank is not None:
            self.token_rank = check_positive_int("token_rank", self.token_rank)
        if self.text_dim is not None:
            self.text_dim = check_positive_int("text_dim", self.text_dim)
        if not isinstance(self.stimulus_map, bool):
            raise TypeError(f"stimulus_map must be a bool, but got {self.stimulus_map!r}.")
        self.stimulus_map_text_dim = check_positive_int("stimulus_map_text_dim",
                                                    self.stimulus_map_text_dim, allow_zero=True)

    # ------------------------------------------------------------------ helpers
    def adapter_kind(self, subject: str) -> str:
        """The adapter kind used for ``subject``."""
        return self.adapter_kinds.get(subject, self.adapter)

    def feature_shape(self, subject: str) -> tuple[int, ...]:
        """The expected per-trial input shape of ``subject`` as a tuple."""
        if subject not in self.subjects:
            raise KeyError(
                f"Unknown subject {subject!r}; this decoder knows {sorted(self.subjects)}. "
                "Use add_subject() or adapt_subject() for a new subject."
            )
        s = self.subjects[subject]
        return (s,) if isinstance(s, int) else tuple(s)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (tuples become lists)."""
        d = dataclasses.asdict(self)
        d["subjects"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.subjects.items()}
        if self.token_shape is not None:
            d["token_shape"] = list(self.token_shape)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DecoderConfig:
        """Rebuild a config from :meth:`to_dict` output; unknown keys are refused."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(
                f"Unknown DecoderConfig field(s) {unknown}; allowed fields are {sorted(names)}."
            )
        return cls(**dict(d))

    def to_json(self) -> str:
        """The config as a JSON string."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DecoderConfig:
        """Rebuild a config from :meth:`to_json` output."""
        return cls.from_dict(json.loads(text))
