"""``DecoderConfig`` and ``SubjectSpec``: the data that fully describes a :class:`BrainDecoder`.

Architectures are data: a config round-trips through ``config.json`` and rebuilds the same
network (the weights travel separately, in safetensors). A :class:`SubjectSpec` records
what each subject's input is (its modality, per-trial shape and, for sensors, the channel
names, positions and sampling rate), so a saved decoder knows its inputs, as braindecode
keeps ``chs_info`` in its model config. Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._checks import check_float, check_option, check_positive_int, check_type
from ._registry import ADAPTERS, ENCODERS

__all__ = ["MODALITIES", "DecoderConfig", "FeatureShape", "SubjectSpec"]

#: the contrastive loss schedules (:class:`~braindecode_kit.models.losses.LossSchedule`);
#: here, torch-free, so a training config validates without importing torch
SCHEDULE_KINDS = ("mindeye", "infonce", "softclip", "bimixco", "mse")
#: the generation head's regression losses (``TrainConfig.generation_loss``)
GENERATION_LOSSES = ("cosine", "mse")

#: the recording kinds a subject can have
MODALITIES = ("fmri", "meg", "seeg")

#: the legacy per-subject value: a number of features or a per-trial shape
FeatureShape = int | tuple[int, ...]

_NORMS = ("layernorm", "none")


def _check_shape(name: str, value: Any) -> tuple[int, ...]:
    """A non-empty tuple of positive ints from an int or a sequence of ints."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return (check_positive_int(name, value),)
    check_type(name, value, (tuple, list), "an int or a tuple of ints")
    if len(value) == 0:
        raise ValueError(
            f"Invalid value for the {name!r} parameter: expected a non-empty shape such as "
            f"(n_voxels,) or (n_channels, n_times), but got {tuple(value)!r} instead."
        )
    return tuple(check_positive_int(f"{name}[{i}]", v) for i, v in enumerate(value))


def _check_positions(value: Any, n_channels: int) -> list[list[float]]:
    """One 2-D or 3-D coordinate per channel, all of the same dimension, as floats."""
    rows = [list(p) if isinstance(p, (list, tuple, np.ndarray)) else None for p in value]
    sizes = {None if p is None else len(p) for p in rows}
    if len(sizes) != 1 or sizes.pop() not in (2, 3):
        raise ValueError(
            "Invalid value for the 'positions' parameter: expected one 2-D or one 3-D "
            "coordinate per channel, all of the same dimension, but got coordinate sizes "
            f"{sorted({-1 if p is None else len(p) for p in rows})} (-1: not a sequence) "
            "instead."
        )
    if len(rows) != n_channels:
        raise ValueError(
            f"Invalid value for the 'positions' parameter: expected {n_channels} coordinates "
            f"(feature_shape[0] channels), but got {len(rows)} instead."
        )
    return [[check_float(f"positions[{i}]", c) for c in p] for i, p in enumerate(rows)]


@dataclass
class SubjectSpec:
    """What one subject's input is: modality, per-trial shape, adapter, sensor layout.

    Parameters
    ----------
    modality : {"fmri", "meg", "seeg"}
        The recording kind.
    feature_shape : int or tuple of int
        The per-trial input shape: ``(n_voxels,)`` for fMRI, ``(n_channels, n_times)`` for
        MEG/sEEG epochs (an int ``n`` means ``(n,)``). The decoder refuses input whose
        shape differs.
    adapter : str or None
        The adapter kind of this subject (a name registered with
        :func:`~braindecode_kit.models.register_adapter`); None uses the config's
        default ``DecoderConfig.adapter``.
    ch_names : list of str or None
        Sensor names, one per channel (``feature_shape[0]``); MEG/sEEG only.
    positions : list of coordinates or None
        One 2-D (layout) or 3-D (head, in metres) coordinate per channel, for adapters
        that read the sensor layout (spatial attention); MEG/sEEG only.
    sfreq : float or None
        Sampling rate of the time axis in Hz, when the input has one.

    Examples
    --------
    >>> SubjectSpec("fmri", 1500)
    SubjectSpec(modality='fmri', feature_shape=(1500,), adapter=None, ch_names=None, positions=None, sfreq=None)
    >>> spec = SubjectSpec("meg", (2, 100), ch_names=["MEG0111", "MEG0121"],
    ...                    positions=[[0.0, 0.1], [0.1, 0.0]], sfreq=100.0)
    >>> SubjectSpec.from_dict(spec.to_dict()) == spec
    True
    """

    modality: str
    feature_shape: tuple[int, ...]
    adapter: str | None = None
    ch_names: list[str] | None = None
    positions: list[list[float]] | None = None
    sfreq: float | None = None

    def __post_init__(self) -> None:
        self.modality = check_option("modality", self.modality, MODALITIES)
        self.feature_shape = _check_shape("feature_shape", self.feature_shape)
        if self.adapter is not None:
            check_type("adapter", self.adapter, str, "a str or None")
            check_option("adapter", self.adapter, ADAPTERS.names())
        sensor_fields = [n for n in ("ch_names", "positions")
                         if getattr(self, n) is not None]
        if self.modality == "fmri" and sensor_fields:
            raise ValueError(
                f"{' and '.join(sensor_fields)} describe sensors (MEG/sEEG channels), but "
                f"modality is 'fmri': set modality to 'meg' or 'seeg', or leave "
                f"{' and '.join(sensor_fields)} None."
            )
        n_channels = self.feature_shape[0]
        if self.ch_names is not None:
            check_type("ch_names", self.ch_names, (list, tuple), "a list of str or None")
            self.ch_names = [check_type(f"ch_names[{i}]", c, str)
                             for i, c in enumerate(self.ch_names)]
            if len(self.ch_names) != n_channels:
                raise ValueError(
                    f"Invalid value for the 'ch_names' parameter: expected {n_channels} "
                    f"names (feature_shape[0] channels), but got {len(self.ch_names)} instead."
                )
        if self.positions is not None:
            check_type("positions", self.positions, (list, tuple, np.ndarray),
                       "a list of coordinates or None")
            self.positions = _check_positions(self.positions, n_channels)
        self.sfreq = check_float("sfreq", self.sfreq, 0.0, lo_open=True, allow_none=True)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_value(cls, value: Any) -> SubjectSpec:
        """A spec from a :class:`SubjectSpec`, its dict, or the legacy int/shape form.

        An int ``n`` becomes ``SubjectSpec("fmri", (n,))`` and a tuple the fMRI spec of
        that shape (the form of configs written before specs existed).

        Parameters
        ----------
        value : SubjectSpec, dict, int or tuple of int
            A spec (copied), :meth:`to_dict` output, a number of features or a shape.

        Returns
        -------
        SubjectSpec
        """
        if isinstance(value, SubjectSpec):
            return dataclasses.replace(value)
        if isinstance(value, Mapping):
            return cls.from_dict(value)
        if isinstance(value, (int, np.integer, tuple, list)) and not isinstance(value, bool):
            return cls("fmri", _check_shape("feature_shape", value))
        raise TypeError(
            "A subject must be given as a SubjectSpec, its dict, a number of features or a "
            f"per-trial shape, but got {type(value).__name__} ({value!r}) instead."
        )

    @classmethod
    def from_trialset(cls, ts: Any, adapter: str | None = None) -> SubjectSpec:
        """The spec of a :class:`~braindecode_kit.TrialSet` (read by duck typing).

        Reads ``ts.modality`` and ``ts.feature_shape`` (or, on TrialSets without it,
        ``(ts.n_features,)`` for fMRI and ``ts.data.shape[1:]`` otherwise). For MEG/sEEG,
        the channel names, positions and sampling rate come from ``ts.info``: a
        :class:`~braindecode_kit.info.SensorInfo` (its 2-D layout ``positions_2d`` when
        given, else its 3-D ``positions_3d``) or an :class:`mne.Info` (its channel
        locations, when every channel has a finite, non-zero one).

        Parameters
        ----------
        ts : TrialSet
            The subject's trials.
        adapter : str or None
            The adapter kind (None: the config's default).

        Returns
        -------
        SubjectSpec
        """
        modality = str(ts.modality)
        shape = getattr(ts, "feature_shape", None)
        if shape is None:
            shape = (int(ts.n_features),) if modality == "fmri" else tuple(ts.data.shape[1:])
        shape = tuple(int(s) for s in shape)
        ch_names = positions = sfreq = None
        info = getattr(ts, "info", None)
        if modality != "fmri" and info is not None:
            ch_names = _info_get(info, "ch_names")
            ch_names = None if ch_names is None else [str(c) for c in ch_names]
            positions = _info_positions(info)
            if modality == "meg" and getattr(info, "positions_2d", None) is None:
                # MEG's spatial attention reads the 2-D sensor layout (mne.find_layout)
                positions = _layout_positions(info) or positions
            sfreq = _info_get(info, "sfreq")
            sfreq = None if sfreq is None else float(sfreq)
        return cls(modality, shape, adapter=adapter, ch_names=ch_names, positions=positions,
                   sfreq=sfreq)

    # ------------------------------------------------------------------ serialisation
    @property
    def n_features(self) -> int:
        """Number of input values per trial (the product of ``feature_shape``)."""
        return int(math.prod(self.feature_shape))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (tuples become lists)."""
        d = dataclasses.asdict(self)
        d["feature_shape"] = list(self.feature_shape)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SubjectSpec:
        """Rebuild a spec from :meth:`to_dict` output; unknown keys are refused."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(
                f"Unknown SubjectSpec field(s) {unknown}; allowed fields are {sorted(names)}."
            )
        return cls(**dict(d))


def _info_get(info: Any, name: str) -> Any:
    value = getattr(info, name, None)
    if value is None and isinstance(info, Mapping):
        value = info.get(name)
    return value


def _info_positions(info: Any) -> list[list[float]] | None:
    """Channel positions of a sensor info: a 2-D layout if it has one (``positions_2d``),
    else its 3-D ``positions_3d`` (or ``positions``), else an mne.Info's locations."""
    for name in ("positions_2d", "positions_3d", "positions"):
        pos = getattr(info, name, None)
        if pos is not None:
            break
    else:
        chs = _info_get(info, "chs")
        if not chs:
            return None
        pos = [np.asarray(ch["loc"][:3], dtype=float) for ch in chs]
    arr = np.asarray(pos, dtype=float)
    if arr.ndim != 2 or not np.isfinite(arr).all() or not np.abs(arr).any(axis=1).all():
        return None  # unknown for some channel: the spec records none rather than guess
    return arr.tolist()


def _layout_positions(info: Any) -> list[list[float]] | None:
    """2-D layout positions of MEG sensors from :func:`mne.find_layout`, or None.

    Channel names are matched to the layout's without their ``-NNNN`` suffix (CTF
    names); None when the layout is unknown or misses a channel.
    """
    raw = getattr(info, "info", info)
    try:
        import mne

        if not isinstance(raw, mne.Info):
            return None
        layout = mne.find_layout(raw)
    except Exception:  # noqa: BLE001 - no layout for this system: fall back to 3-D
        return None
    names = {n.replace(" ", ""): i for i, n in enumerate(layout.names)}
    idx = [names.get(c.rsplit("-", 1)[0].replace(" ", ""),
                     names.get(c.replace(" ", ""))) for c in raw["ch_names"]]
    if any(i is None for i in idx):
        return None
    return np.asarray(layout.pos[idx, :2], dtype=float).tolist()


@dataclass
class DecoderConfig:
    """Hyperparameters of a :class:`~braindecode_kit.models.BrainDecoder`.

    Parameters
    ----------
    subjects : dict of str to SubjectSpec
        Subject name -> what its input is (:class:`SubjectSpec`: modality, per-trial
        shape, adapter, sensor layout). A spec's dict, a number of features (voxels) or a
        per-trial shape are accepted too: an int ``n`` becomes
        ``SubjectSpec("fmri", (n,))`` (the form of configs written before specs existed).
        The decoder refuses input whose feature shape differs.
    embed_dim : int
        Dimension of the pooled CLIP image embedding the main head predicts.
    adapter : str
        Default adapter kind for every subject (a name in the adapter registry:
        ``"linear"`` as MindEye2's per-subject linear layer, ``"mlp"`` as See Through
        Their Minds); a subject's ``SubjectSpec.adapter`` overrides it.
    adapter_kinds : dict of str to str
        Per-subject overrides of ``adapter`` (the form of configs written before specs
        existed): folded into the subjects' specs, then left empty.
    adapter_hidden : int
        Hidden width of the ``"mlp"`` adapter.
    adapter_dropout : float
        Dropout on the adapter's input features (voxel dropout); 0.5 helped on noisy
        simulated data (single-trial betas), set 0 to match MindEye2 exactly.
    encoder : str
        The shared encoder kind (a name in the encoder registry, see
        :func:`~braindecode_kit.models.register_encoder`): ``"mlp"`` is the residual MLP.
    d_shared : int
        Width of the shared space the adapters map into (for sequence adapters, the
        number of virtual channels K: 270 in the MEG brain module).
    n_blocks : int
        Number of blocks of the shared encoder (residual MLP blocks, or dilated
        convolution blocks of the ``"conv"`` encoder).
    dropout : float
        Dropout inside the residual blocks.
    pos_dim : int
        Number of Fourier features of a sensor's position in the position-reading
        adapters (``"spatial_attention"``, ``"seeg_position"``; 2048 in the MEG brain
        module).
    spatial_dropout : float
        Radius of the disc (ball, for 3-D positions) of sensors dropped at random from the
        attention during training, in normalised position units (0.2 in the MEG brain
        module; 0 disables).
    conv_width : int
        Channels of the ``"conv"`` encoder's dilated convolution blocks (320 in the MEG
        brain module).
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
    blurry_size : int or None
        Side of the optional low-level head's output: a blurry ``3 x s x s`` RGB image in
        ``[0, 1]`` (the seen image downsampled), predicted from the shared features and
        trained with an L1 loss (MindEye2's low-level path, in pixels rather than SD-VAE
        latents); used as the img2img init of reconstructions. None disables it.
    blurry_detach : bool
        The low-level head reads the shared features without sending gradients back
        (the embedding heads alone shape the encoder, so adding it leaves retrieval as
        it was); False trains the encoder with it too, as MindEye2.
    generation_head : bool
        Add a second pooled head onto the image-embedding space, trained by regression
        (``TrainConfig.generation_weight``, ``generation_loss``) rather than
        contrastively: the output that captions and reconstructions are generated from
        (MindEye2 and the MEG paper generate from a regression output and retrieve from
        the contrastive one, whose outputs rank well but lie far from the true
        embeddings). :meth:`BrainDecoder.predict` returns it with ``head="generation"``.
    generation_detach : bool
        The generation head reads the shared features without sending gradients back (the
        contrastive heads alone shape the encoder); False trains the encoder with it too.
    stimulus_map : bool
        Whether the decoder holds a map from a stimulus's CLIP embeddings to its shared
        space (set by :func:`braindecode_kit.train.fit_stimulus_map` after training; it
        gives a new subject's adapter its closed-form targets).
    stimulus_map_text_dim : int
        Dimension of the caption-text embedding the stimulus map also reads (0: it reads
        the image embedding only).

    Examples
    --------
    >>> cfg = DecoderConfig(subjects={"sub-01": 1500,
    ...                               "sub-02": SubjectSpec("meg", (2, 100), sfreq=100.0)},
    ...                     embed_dim=128)
    >>> cfg.subjects["sub-01"].feature_shape, cfg.feature_shape("sub-02")
    ((1500,), (2, 100))
    """

    subjects: dict[str, SubjectSpec]
    embed_dim: int
    adapter: str = "linear"
    adapter_kinds: dict[str, str] = field(default_factory=dict)
    adapter_hidden: int = 512
    adapter_dropout: float = 0.5
    encoder: str = "mlp"
    d_shared: int = 512
    n_blocks: int = 2
    dropout: float = 0.15
    pos_dim: int = 512
    spatial_dropout: float = 0.2
    conv_width: int = 128
    norm: str = "layernorm"
    head_hidden: int = 0
    token_shape: tuple[int, int] | None = None
    token_rank: int | None = None
    text_dim: int | None = None
    blurry_size: int | None = None
    blurry_detach: bool = True
    generation_head: bool = False
    generation_detach: bool = True
    stimulus_map: bool = False
    stimulus_map_text_dim: int = 0

    def __post_init__(self) -> None:
        check_type("subjects", self.subjects, Mapping,
                   "a mapping subject name -> SubjectSpec (or number of features)")
        self.subjects = {str(k): _subject_spec(str(k), v) for k, v in self.subjects.items()}
        self.embed_dim = check_positive_int("embed_dim", self.embed_dim)
        self.d_shared = check_positive_int("d_shared", self.d_shared)
        self.n_blocks = check_positive_int("n_blocks", self.n_blocks, allow_zero=True)
        self.adapter_hidden = check_positive_int("adapter_hidden", self.adapter_hidden)
        self.head_hidden = check_positive_int("head_hidden", self.head_hidden, allow_zero=True)
        self.pos_dim = check_positive_int("pos_dim", self.pos_dim)
        self.conv_width = check_positive_int("conv_width", self.conv_width)
        self.spatial_dropout = check_float("spatial_dropout", self.spatial_dropout, 0.0, 1.0)
        for name in ("dropout", "adapter_dropout"):
            setattr(self, name, check_float(name, getattr(self, name), 0.0, 1.0, hi_open=True))
        check_option("norm", self.norm, _NORMS)
        check_type("adapter", self.adapter, str)
        check_option("adapter", self.adapter, ADAPTERS.names())
        check_type("encoder", self.encoder, str)
        check_option("encoder", self.encoder, ENCODERS.names())
        self._fold_adapter_kinds()
        if self.token_shape is not None:
            ts = tuple(self.token_shape)
            if len(ts) != 2:
                raise ValueError(
                    "Invalid value for the 'token_shape' parameter: expected (n_tokens, "
                    f"token_dim), but got {self.token_shape!r} instead."
                )
            self.token_shape = (
                check_positive_int("token_shape[0]", ts[0]),
                check_positive_int("token_shape[1]", ts[1]),
            )
        if self.token_rank is not None:
            self.token_rank = check_positive_int("token_rank", self.token_rank)
        if self.text_dim is not None:
            self.text_dim = check_positive_int("text_dim", self.text_dim)
        if self.blurry_size is not None:
            self.blurry_size = check_positive_int("blurry_size", self.blurry_size)
        check_type("blurry_detach", self.blurry_detach, bool)
        check_type("generation_head", self.generation_head, bool)
        check_type("generation_detach", self.generation_detach, bool)
        check_type("stimulus_map", self.stimulus_map, bool)
        self.stimulus_map_text_dim = check_positive_int(
            "stimulus_map_text_dim", self.stimulus_map_text_dim, allow_zero=True)

    def _fold_adapter_kinds(self) -> None:
        check_type("adapter_kinds", self.adapter_kinds, Mapping,
                   "a mapping subject name -> adapter kind")
        kinds = {str(k): v for k, v in self.adapter_kinds.items()}
        unknown = sorted(set(kinds) - set(self.subjects))
        if unknown:
            raise ValueError(
                f"Invalid value for the 'adapter_kinds' parameter: it names subjects that "
                f"are not in subjects: {unknown} (subjects are {sorted(self.subjects)})."
            )
        for subject, kind in kinds.items():
            spec = self.subjects[subject]
            if spec.adapter is not None and spec.adapter != kind:
                raise ValueError(
                    f"Subject {subject!r} has adapter {spec.adapter!r} in its SubjectSpec but "
                    f"{kind!r} in adapter_kinds: give it once."
                )
            try:
                self.subjects[subject] = dataclasses.replace(spec, adapter=kind)
            except (TypeError, ValueError) as err:
                raise type(err)(f"adapter_kinds[{subject!r}]: {err}") from err
        self.adapter_kinds = {}

    # ------------------------------------------------------------------ helpers
    def adapter_kind(self, subject: str) -> str:
        """The adapter kind used for ``subject`` (its spec's, else the default)."""
        return self.spec(subject).adapter or self.adapter

    def spec(self, subject: str) -> SubjectSpec:
        """The :class:`SubjectSpec` of ``subject``."""
        if subject not in self.subjects:
            raise KeyError(
                f"Unknown subject {subject!r}; this decoder knows {sorted(self.subjects)}. "
                "Use add_subject() or adapt_subject() for a new subject."
            )
        return self.subjects[subject]

    def feature_shape(self, subject: str) -> tuple[int, ...]:
        """The expected per-trial input shape of ``subject`` as a tuple."""
        return self.spec(subject).feature_shape

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (tuples become lists, specs dicts)."""
        d = dataclasses.asdict(self)
        d["subjects"] = {k: v.to_dict() for k, v in self.subjects.items()}
        d.pop("adapter_kinds")  # always empty: folded into the specs
        if self.token_shape is not None:
            d["token_shape"] = list(self.token_shape)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DecoderConfig:
        """Rebuild a config from :meth:`to_dict` output; unknown keys are refused.

        Configs written before :class:`SubjectSpec` existed (subjects as feature counts,
        ``adapter_kinds`` overrides) load too.
        """
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


def _subject_spec(subject: str, value: Any) -> SubjectSpec:
    """A subject's spec, errors prefixed with the subject they concern."""
    try:
        return SubjectSpec.from_value(value)
    except (TypeError, ValueError) as err:
        raise type(err)(f"subjects[{subject!r}]: {err}") from err

