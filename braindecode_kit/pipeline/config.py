"""Pipeline configuration: YAML -> validated pydantic models.

A pipeline file names the stages' settings; anything unknown is refused (a typo in a
key is an error, not a silently ignored setting). Every section has defaults, so the
smallest valid pipeline is ``name: my-run``.

The sections that configure a library object *are* that object's settings, generated
from it, so a default lives in one place only and a bad value is refused when the file
is read, not halfway through a run:

- ``train:`` — the fields of :class:`braindecode_kit.train.TrainConfig` (but ``seed``,
  which is the run's ``seed``), checked by constructing the dataclass;
- ``decoder:`` — the fields of :class:`braindecode_kit.models.DecoderConfig` but the
  data-derived ones (:data:`DECODER_DATA_FIELDS`), checked the same way;
- ``embed:`` — the keyword parameters of :class:`braindecode_kit.embed.Embedder` and
  :func:`braindecode_kit.embed.embed_stimuli`;
- ``fmri.simulate:`` — the keyword parameters of
  :func:`braindecode_kit.simulate.simulate_fmri`;
- ``fmri.load:`` — the keyword parameters of :func:`braindecode_kit.io.load_fmri_bids`;
- ``meg.simulate:`` / ``meg.load:`` — those of :func:`braindecode_kit.simulate.simulate_meg`
  and :func:`braindecode_kit.io.load_meg` (``seeg.*`` likewise for sEEG);
- ``meg.decoder:`` / ``meg.train:`` (and ``seeg.*``) — overrides of the ``decoder:`` and
  ``train:`` sections for that kind's decoder (same keys; a sensor kind has its own
  defaults, e.g. ``meg.decoder.adapter: spatial_attention``, ``encoder: conv``);
- ``caption:`` — the keyword parameters of :class:`braindecode_kit.caption.Captioner` and
  :func:`~braindecode_kit.evaluate.caption_metrics.caption_metrics`, plus the stage's own;
- ``reconstruct:`` — the keyword parameters of
  :class:`braindecode_kit.reconstruct.Reconstructor` (but ``seed``), plus the stage's own
  (``strength``, ``n_stimuli``, ``n_examples``, ``metric_weights``, ``enabled``).

Fields of the signature-generated sections are typed by the function's annotations
(options written ``{"a", "b"}`` in its numpydoc are enforced) and documented by its
docstring; the function itself checks value ranges when the stage calls it.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import sys
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_serializer,
    model_validator,
)

from .._utils import PathLike
from ..caption import Captioner
from ..embed import Embedder, embed_stimuli
from ..evaluate.caption_metrics import caption_metrics
from ..io import load_fmri_bids, load_meg, load_seeg
from ..models import DecoderConfig
from ..reconstruct.base import Reconstructor
from ..simulate import simulate_fmri, simulate_meg, simulate_seeg
from ..train import TrainConfig

__all__ = [
    "DECODER_DATA_FIELDS",
    "PLANNED_KINDS",
    "CaptionConfig",
    "ReconstructConfig",
    "RECORDING_KINDS",
    "DecoderSection",
    "EmbedConfig",
    "EvaluateConfig",
    "FMRIConfig",
    "LoadFMRIConfig",
    "LoadMEGConfig",
    "LoadSEEGConfig",
    "MEGConfig",
    "SEEGConfig",
    "NewSubjectConfig",
    "PipelineConfig",
    "ReportConfig",
    "SimulateFMRIConfig",
    "SimulateMEGConfig",
    "SimulateSEEGConfig",
    "StimuliConfig",
    "TrainSection",
    "load_config",
]

#: DecoderConfig fields that come from the data and the embedder, not from the YAML.
DECODER_DATA_FIELDS = frozenset({
    "subjects", "embed_dim", "adapter_kinds", "token_shape", "text_dim", "stimulus_map",
    "stimulus_map_text_dim", "blurry_size",
})


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# =========================================================================== generation
_PARAM_LINE = re.compile(r"^(?P<names>\*{0,2}[A-Za-z_][\w]*(?:\s*,\s*\*{0,2}[A-Za-z_][\w]*)*)"
                         r"\s*(?::\s*(?P<type>.*))?$")


def _numpydoc_parameters(doc: str | None) -> dict[str, tuple[str, str]]:
    """``name -> (type text, description)`` of a numpydoc ``Parameters`` section."""
    if not doc:
        return {}
    lines = inspect.cleandoc(doc).splitlines()
    out: dict[str, tuple[str, str]] = {}
    start = next((i + 2 for i in range(len(lines) - 1) if lines[i].strip() == "Parameters"
                  and lines[i + 1].strip() and set(lines[i + 1].strip()) == {"-"}), None)
    if start is None:
        return out
    names: list[str] = []
    type_text, desc = "", []

    def flush() -> None:
        for n in names:
            out[n] = (type_text, " ".join(desc).strip())

    for i in range(start, len(lines)):
        line = lines[i]
        nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if line and not line[0].isspace():
            if nxt and set(nxt) == {"-"}:  # the next section's header
                break
            m = _PARAM_LINE.match(line.strip())
            if m is None:
                continue
            flush()
            names = [n.strip().lstrip("*") for n in m.group("names").split(",")]
            type_text, desc = (m.group("type") or "").strip(), []
        elif names and line.strip():
            desc.append(line.strip())
    flush()
    return out


def _choices(type_text: str) -> tuple[Any, ...] | None:
    """The values of a numpydoc type written as a set, ``{"lss", "lsa"}``, else None."""
    m = re.fullmatch(r"\{(.*)\}", type_text.strip())
    if not m:
        return None
    try:
        values = ast.literal_eval(f"({m.group(1)},)")
    except (ValueError, SyntaxError):
        return None
    if not values or not all(v is None or isinstance(v, str) for v in values):
        return None
    return tuple(values)


def _annotation(owner: Any, name: str, raw: Any) -> Any:
    """Resolve one (possibly stringified) annotation in its module; ``Any`` if it cannot."""
    if not isinstance(raw, str):
        return Any if raw is inspect.Parameter.empty else raw
    module = sys.modules.get(getattr(owner, "__module__", ""), None)
    namespace = {**vars(typing), **(vars(module) if module else {})}
    try:
        return eval(raw, namespace)  # noqa: S307 - the library's own annotations
    except Exception:  # noqa: BLE001 - an annotation only under TYPE_CHECKING
        return Any


def _field(annotation: Any, default: Any, type_text: str, description: str,
           default_factory: Callable[[], Any] | None = None) -> tuple[Any, Any]:
    choices = _choices(type_text)
    if choices is not None and annotation in (str, str | None, Any):
        annotation = Literal[choices]  # type: ignore[valid-type]
        description = description or f"one of {type_text}"
    description = description or None
    if default_factory is not None:
        return annotation, Field(default_factory=default_factory, description=description)
    return annotation, Field(default, description=description)


class _DataclassSection(_Section):
    """A section whose fields are a library dataclass's; validated by constructing it."""

    _target: ClassVar[type]
    _fixed: ClassVar[dict[str, Any]] = {}

    @field_validator("*", mode="after")
    @classmethod
    def _check_one(cls, value: Any, info: ValidationInfo) -> Any:
        # each value alone against the dataclass's own checks, so the error names the key
        try:
            cls._target(**{**cls._fixed, info.field_name: value})
        except (TypeError, ValueError) as err:
            raise ValueError(str(err)) from None
        return value

    @model_validator(mode="after")
    def _check_all(self):
        try:  # the checks that involve several fields
            self.build(**self._fixed)
        except (TypeError, ValueError) as err:
            raise ValueError(str(err)) from None
        return self

    def kwargs(self) -> dict[str, Any]:
        """The section's values as keyword arguments of the dataclass."""
        return {name: getattr(self, name) for name in type(self).model_fields}

    def build(self, **data: Any) -> Any:
        """The library object: this section's values plus the data-derived ``data``."""
        return self._target(**{**self.kwargs(), **data})


def _dataclass_section(name: str, target: type, exclude: Iterable[str] = (),
                       fixed: dict[str, Any] | None = None, doc: str = "") -> type:
    """A section model with the fields of the dataclass ``target`` but ``exclude``."""
    exclude = set(exclude)
    params = _numpydoc_parameters(target.__doc__)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(target):
        if f.name in exclude or not f.init:
            continue
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise TypeError(f"{target.__name__}.{f.name} has no default: list it in the "
                            "excluded (data-derived) fields of its pipeline section.")
        type_text, desc = params.get(f.name, ("", ""))
        factory = None if f.default_factory is dataclasses.MISSING else f.default_factory
        fields[f.name] = _field(_annotation(target, f.name, f.type), f.default, "", desc,
                                default_factory=factory)
    model = create_model(name, __base__=_DataclassSection, __doc__=doc,
                         __module__=__name__, **fields)
    model._target = target
    model._fixed = dict(fixed or {})
    return model


class _SignatureSection(_Section):
    """A section whose fields are keyword parameters of library functions."""

    _targets: ClassVar[dict[str, Callable[..., Any]]] = {}

    def kwargs(self, target: Callable[..., Any] | None = None) -> dict[str, Any]:
        """The values as keyword arguments (of ``target`` only, when given)."""
        return {name: getattr(self, name) for name, func in self._targets.items()
                if target is None or func is target}


def _signature_section(name: str, targets: Iterable[Callable[..., Any]],
                       exclude: Iterable[str] = (), doc: str = "") -> type:
    """A section model with the defaulted parameters of ``targets`` but ``exclude``."""
    exclude = set(exclude) | {"self", "verbose"}
    fields: dict[str, Any] = {}
    owners: dict[str, Callable[..., Any]] = {}
    for target in targets:
        params = _numpydoc_parameters(target.__doc__)
        for p in inspect.signature(target).parameters.values():
            if (p.name in exclude or p.default is inspect.Parameter.empty
                    or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)):
                continue  # what the stage passes (the data), or no setting at all
            if p.name in fields:
                raise TypeError(f"Parameter {p.name!r} is in two functions of section {name}.")
            type_text, desc = params.get(p.name, ("", ""))
            owner = target.__init__ if inspect.isclass(target) else target
            fields[p.name] = _field(_annotation(owner, p.name, p.annotation), p.default,
                                    type_text, desc)
            owners[p.name] = target
    model = create_model(name, __base__=_SignatureSection, __doc__=doc,
                         __module__=__name__, **fields)
    model._targets = owners
    return model


# =========================================================================== sections
class StimuliConfig(_Section):
    """Where the stimuli come from: the built-in world or a folder of images."""

    kind: Literal["world", "folder", "coco"] = Field(
        "world", description="the built-in world, a folder of images, or COCO-style captions")
    n: int = Field(3000, ge=10, description="number of world images to draw (kind=world)")
    size: int = Field(64, ge=16, le=512, description="world image size in pixels")
    path: str | None = Field(None, description="images folder (kind=folder|coco)")
    table: str | None = Field(None, description="CSV/TSV table (kind=folder)")
    captions: str | None = Field(None, description="COCO captions JSON (kind=coco)")

    @model_validator(mode="after")
    def _paths_given(self):
        if self.kind in ("folder", "coco") and not self.path:
            raise ValueError(f"stimuli.kind={self.kind!r} needs stimuli.path (an images folder)")
        if self.kind == "coco" and not self.captions:
            raise ValueError("stimuli.kind='coco' needs stimuli.captions (a COCO captions JSON)")
        return self


EmbedConfig = _signature_section(
    "EmbedConfig", [Embedder, embed_stimuli],
    exclude={"stimuli", "embedder", "cache_dir"},
    doc="The CLIP model that makes the targets: the settings of "
        ":class:`~braindecode_kit.embed.Embedder` and "
        ":func:`~braindecode_kit.embed.embed_stimuli` (the cache is the run folder's).")

SimulateFMRIConfig = _signature_section(
    "SimulateFMRIConfig", [simulate_fmri],
    exclude={"stimuli", "out_dir", "seed", "overwrite"},
    doc="Simulated fMRI subjects: the keyword parameters of "
        ":func:`~braindecode_kit.simulate.simulate_fmri` (the seed is the run's, the "
        "output the run folder's ``bids/``).")

LoadFMRIConfig = _signature_section(
    "LoadFMRIConfig", [load_fmri_bids],
    exclude={"root", "subject"},
    doc="How trials are read from the BIDS dataset: the keyword parameters of "
        ":func:`~braindecode_kit.io.load_fmri_bids`.")


class FMRIConfig(_Section):
    """The fMRI data: simulated, or a BIDS root with subject labels."""

    source: Literal["simulate", "bids"] = Field(
        "simulate", description="simulate subjects on the stimuli, or read a BIDS dataset")
    bids_root: str | None = Field(None, description="the BIDS dataset (source=bids)")
    subjects: list[str] | None = Field(
        None, description="subject labels to load (None: every sub-* of the dataset)")
    simulate: SimulateFMRIConfig = Field(default_factory=SimulateFMRIConfig)  # type: ignore[valid-type]
    load: LoadFMRIConfig = Field(default_factory=LoadFMRIConfig)  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _root_given(self):
        if self.source == "bids" and not self.bids_root:
            raise ValueError("fmri.source='bids' needs fmri.bids_root (a BIDS dataset folder)")
        return self


TrainSection = _dataclass_section(
    "TrainSection", TrainConfig, exclude={"seed"},
    doc="Training settings: the fields of :class:`~braindecode_kit.train.TrainConfig` "
        "(its ``seed`` is the run's ``seed``).")

DecoderSection = _dataclass_section(
    "DecoderSection", DecoderConfig, exclude=DECODER_DATA_FIELDS,
    fixed={"subjects": {"_": 1}, "embed_dim": 1},
    doc="Architecture of the contrastive decoder: the fields of "
        ":class:`~braindecode_kit.models.DecoderConfig` but those the data give "
        "(subjects, embedding and text dimensions, token shape, stimulus map).")


class NewSubjectConfig(_Section):
    """New-subject adaptation: one subject held out of pretraining."""

    enabled: bool = Field(True, description="hold one subject out and adapt to it")
    subject: str | None = Field(
        None, description="the held-out subject's label (None: the last in sorted order)")
    fraction: float = Field(0.1, gt=0, le=1,
                            description="share of its training images it is adapted from")
    curve: list[float] = Field(default_factory=lambda: [0.025, 0.05, 0.1, 0.25, 0.5, 1.0],
                               description="shares of the learning curve")
    finetune_epochs: int = Field(0, ge=0, description="epochs of full fine-tuning after "
                                 "the adapter (adapt_subject's finetune_epochs)")
    epochs: int | None = Field(
        None, ge=1, description="gradient epochs of the new subject's adapter and of the "
        "scratch decoder it is compared with (None: the train section's epochs)")

    @field_validator("curve")
    @classmethod
    def _curve_in_range(cls, value: list[float]) -> list[float]:
        bad = [f for f in value if not 0 < f <= 1]
        if bad:
            raise ValueError(f"every share must be in (0, 1], but got {bad}")
        return value


class _OverrideSection(_Section):
    """Overrides of a section's keys for one recording kind (same keys, same checks)."""

    _base: ClassVar[type]
    _defaults: ClassVar[dict[str, Any]] = {}

    @model_serializer(mode="wrap")
    def _dump_overrides_only(self, handler):
        # a dumped config (the manifest's) reads back with the same keys set
        keys = self.overrides()
        return {k: v for k, v in handler(self).items() if k in keys}

    def overrides(self) -> dict[str, Any]:
        """The keys this kind sets: its defaults, then those the file gives."""
        keys = set(self._defaults) | set(self.model_fields_set)
        return {k: getattr(self, k) for k in type(self).model_fields if k in keys}

    def apply(self, base: Any) -> Any:
        """``base`` (a section of :attr:`_base`) with these overrides."""
        values = {k: getattr(base, k) for k in type(base).model_fields}
        return self._base(**{**values, **self.overrides()})


def _override_section(name: str, base: type, defaults: dict[str, Any], doc: str) -> type:
    """A model with the keys of section ``base``, each optional (``defaults`` preset)."""
    fields = {k: (f.annotation | None, Field(defaults.get(k), description=f.description))
              for k, f in base.model_fields.items()}
    model = create_model(name, __base__=_OverrideSection, __doc__=doc, __module__=__name__,
                         **fields)
    model._base = base
    model._defaults = dict(defaults)
    return model


SimulateMEGConfig = _signature_section(
    "SimulateMEGConfig", [simulate_meg],
    exclude={"stimuli", "out_dir", "seed", "overwrite"},
    doc="Simulated MEG subjects: the keyword parameters of "
        ":func:`~braindecode_kit.simulate.simulate_meg` (the seed is the run's, the "
        "output the run folder's ``meg/bids/``).")

LoadMEGConfig = _signature_section(
    "LoadMEGConfig", [load_meg],
    exclude={"source", "events", "subject", "reader"},
    doc="How MEG epochs are cut from the BIDS dataset: the keyword parameters of "
        ":func:`~braindecode_kit.io.load_meg`.")


def _sensor_kind_config(name: str, kind: str, simulate: type, load: type,
                        decoder_defaults: dict[str, Any], doc: str) -> type:
    """The section of a sensor recording kind: data source, simulate, load, overrides."""
    label = kind.upper() if kind == "meg" else "sEEG"
    decoder = _override_section(
        f"{name}Decoder", DecoderSection, decoder_defaults,
        doc=f"Overrides of ``decoder:`` for the {label} decoder (its defaults: "
            f"{decoder_defaults}).")
    train = _override_section(f"{name}Train", TrainSection, {},
                              doc=f"Overrides of ``train:`` for the {label} decoder.")
    new_subject = _override_section(
        f"{name}NewSubject", NewSubjectConfig, {},
        doc=f"Overrides of ``new_subject:`` for the {label} subjects (e.g. which is held out).")

    def _root_given(self):
        if self.source == "bids" and not self.bids_root:
            raise ValueError(f"{kind}.source='bids' needs {kind}.bids_root (a BIDS dataset "
                             "folder)")
        return self

    fields = {
        "source": (Literal["simulate", "bids"], Field(
            "simulate", description="simulate subjects on the stimuli, or read a BIDS dataset")),
        "bids_root": (str | None, Field(None, description="the BIDS dataset (source=bids)")),
        "subjects": (list[str] | None, Field(
            None, description="subject labels to load (None: every sub-* of the dataset)")),
        "simulate": (simulate, Field(default_factory=simulate)),
        "load": (load, Field(default_factory=load)),
        "decoder": (decoder, Field(default_factory=decoder)),
        "train": (train, Field(default_factory=train)),
        "new_subject": (new_subject, Field(default_factory=new_subject)),
    }
    return create_model(name, __base__=_Section, __doc__=doc, __module__=__name__,
                        __validators__={"_root_given": model_validator(mode="after")(_root_given)},
                        **fields)


MEGConfig = _sensor_kind_config(
    "MEGConfig", "meg", SimulateMEGConfig, LoadMEGConfig,
    {"adapter": "spatial_attention", "encoder": "conv"},
    doc="The MEG data (simulated, or a BIDS root with subject labels) and its decoder's "
        "overrides.")

SimulateSEEGConfig = _signature_section(
    "SimulateSEEGConfig", [simulate_seeg],
    exclude={"stimuli", "out_dir", "seed", "overwrite"},
    doc="Simulated sEEG patients: the keyword parameters of "
        ":func:`~braindecode_kit.simulate.simulate_seeg` (the seed is the run's, the "
        "output the run folder's ``seeg/bids/``).")

LoadSEEGConfig = _signature_section(
    "LoadSEEGConfig", [load_seeg],
    exclude={"source", "events", "subject", "reader", "electrodes"},
    doc="How sEEG epochs are cut from the BIDS dataset: the keyword parameters of "
        ":func:`~braindecode_kit.io.load_seeg`.")

SEEGConfig = _sensor_kind_config(
    "SEEGConfig", "seeg", SimulateSEEGConfig, LoadSEEGConfig,
    {"adapter": "channel_linear", "encoder": "conv", "adapter_dropout": 0.0},
    doc="The sEEG data (simulated, or a BIDS root with subject labels) and its decoder's "
        "overrides.")

#: recording kind -> its section; a kind is added by adding its section and its loader
#: stages (``simulate_<kind>``, ``load_<kind>``), the other stages are kind-free.
RECORDING_KINDS: dict[str, type[_Section]] = {"fmri": FMRIConfig, "meg": MEGConfig,
                                              "seeg": SEEGConfig}
#: kinds the data model knows but the pipeline does not load yet
PLANNED_KINDS: tuple[str, ...] = ()


class EvaluateConfig(_Section):
    """Retrieval protocol (MindEye2): N candidates, draws, k."""

    n_candidates: int = Field(300, ge=2, description="candidates per retrieval draw")
    n_draws: int = Field(30, ge=1, description="random candidate draws")
    topk: int = Field(5, ge=1, description="the k of the top-k accuracy also reported")
    ridge_anchor: bool = Field(
        True, description="the decoder's prediction is its network's anchored to the "
        "subject's ridge, unit(ridge) + w unit(network), w chosen on the validation stimuli "
        "(so it starts from what the linear baseline knows); the network alone is reported "
        "beside it")
    anchor_ridge: Literal["retrieval", "mse"] = Field(
        "retrieval", description="the ridge that retrieval is anchored to: 'retrieval', one "
        "whose alpha and prediction whitening are chosen by cross-validated retrieval rank "
        "on the training stimuli (estimators.ANCHOR_RIDGE; reported alone as "
        "'linear_anchor'); 'mse', the baseline's own ridge (alpha by squared error). "
        "Captions and reconstructions always anchor to the baseline's ridge")


class ReportConfig(_Section):
    """What the HTML report shows."""

    n_examples: int = Field(8, ge=1, le=64, description="example retrieval rows")
    n_candidates_shown: int = Field(5, ge=1, le=16,
                                    description="best-ranked candidates shown per row")


_CaptionSettings = _signature_section(
    "_CaptionSettings", [Captioner, caption_metrics],
    exclude={"seed", "bank", "embedder", "candidates", "references", "image_embeddings",
             "per_item"},
    doc="The captioner (the keyword parameters of :class:`~braindecode_kit.caption.Captioner`, "
        "seeded by the run) and the caption metrics (those of "
        ":func:`~braindecode_kit.evaluate.caption_metrics.caption_metrics`).")


class CaptionConfig(_CaptionSettings):  # type: ignore[valid-type,misc]
    """Captions of the test images from decoded embeddings: the captioner's and the
    metrics' settings (generated from them), and what the stage adds."""

    # the stage's own default: every metric but METEOR (a JVM loading a 60 MB paraphrase
    # table, tens of seconds) and SPICE (needs Stanford CoreNLP); null means all of them
    metrics: list[str] | None = Field(
        ["bleu1", "bleu2", "bleu3", "bleu4", "rouge_l", "cider_d", "clip_s", "refclip_s",
         "text_sim"],
        description="caption metrics to compute (null: all, METEOR and SPICE included)")
    enabled: bool = Field(True, description="caption the test images (the caption stage)")
    n_examples: int = Field(8, ge=1, le=64, description="example test images in the report")
    n_boot: int = Field(1000, ge=100, description="bootstrap resamples of the test images")
    selectivity: bool = Field(True, description="on simulated data, caption what voxel "
                              "groups prefer and score it against the simulator's truth")
    max_voxels: int | None = Field(500, ge=1, description="voxels captioned one by one for "
                                   "the selectivity map (the best predicted; null: all)")

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, value: list[str] | None) -> list[str] | None:
        from ..evaluate.caption_metrics import ALL_METRICS

        bad = [m for m in value or [] if m not in ALL_METRICS]
        if bad:
            raise ValueError(f"unknown caption metrics {bad}; allowed: {list(ALL_METRICS)}")
        return value


_ReconstructSettings = _signature_section(
    "_ReconstructSettings", [Reconstructor], exclude={"seed"},
    doc="The generator (the keyword parameters of "
        ":class:`~braindecode_kit.reconstruct.Reconstructor`, seeded by the run).")


class ReconstructConfig(_ReconstructSettings):  # type: ignore[valid-type,misc]
    """Reconstructions of the test images from decoded embeddings: the generator's settings
    (generated from :class:`~braindecode_kit.reconstruct.Reconstructor`) and what the
    stage adds. The low-level path needs ``embed.blurry`` (the side of the blurry targets
    the decoder's low-level head learns)."""

    enabled: bool = Field(True, description="reconstruct the test images (the reconstruct "
                                            "stage)")
    strength: float = Field(0.6, ge=0.0, le=1.0, description="img2img strength of the "
                            "low-level route: the share of the denoising run from the "
                            "brain-predicted blurry image (1: ignore it)")
    n_stimuli: int | None = Field(None, ge=2, description="test images reconstructed per "
                                  "subject (the first in id order; null: every one)")
    n_examples: int = Field(6, ge=1, le=32, description="example rows per kind in the report")
    metric_weights: dict[str, str] | None = Field(
        None, description="local weights files of the image-metric networks (network -> "
                          "path: alexnet, inception, clip, effnet, swav; nothing is downloaded)")


class PipelineConfig(_Section):
    """A whole pipeline: stages run in dependency order into one run folder."""

    name: str = Field(description="the run's name (shown in the report)")
    seed: int = Field(0, description="seed of the world, the subjects, the splits and training")
    stages: list[str] | None = Field(
        None, description="stages to run (in dependency order); default: all that the "
                          "config enables")
    stimuli: StimuliConfig = Field(default_factory=StimuliConfig)
    embed: EmbedConfig = Field(default_factory=EmbedConfig)  # type: ignore[valid-type]
    fmri: FMRIConfig | None = Field(None, description="fMRI recordings (None: none)")
    meg: MEGConfig | None = Field(None, description="MEG recordings (None: none)")  # type: ignore[valid-type]
    seeg: SEEGConfig | None = Field(None, description="sEEG recordings (None: none)")  # type: ignore[valid-type]
    decoder: DecoderSection = Field(default_factory=DecoderSection)  # type: ignore[valid-type]
    train: TrainSection = Field(default_factory=TrainSection)  # type: ignore[valid-type]
    new_subject: NewSubjectConfig = Field(default_factory=NewSubjectConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    caption: CaptionConfig = Field(default_factory=CaptionConfig)
    reconstruct: ReconstructConfig = Field(default_factory=ReconstructConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)


    @model_validator(mode="after")
    def _check_kind_overrides(self):
        for kind in self.kinds:
            for what in ("decoder", "train", "new_subject"):
                try:
                    self.section_for(what, kind)
                except ValidationError as err:
                    raise ValueError("; ".join(
                        f"{kind}.{what}." + ".".join(map(str, e["loc"])) + ": "
                        + e["msg"].removeprefix("Value error, ") for e in err.errors())
                    ) from None
        return self

    @property
    def kinds(self) -> list[str]:
        """The recording kinds this pipeline has data of, in a fixed order."""
        return [k for k in RECORDING_KINDS if getattr(self, k) is not None]

    def section_for(self, what: str, kind: str) -> Any:
        """The ``decoder:``, ``train:`` or ``new_subject:`` section of ``kind`` (its
        overrides applied; fMRI has none).

        Examples
        --------
        >>> cfg = load_config({"name": "x", "meg": {"decoder": {"d_shared": 32}}})
        >>> d = cfg.section_for("decoder", "meg")
        >>> d.adapter, d.encoder, d.d_shared
        ('spatial_attention', 'conv', 32)
        """
        base = getattr(self, what)
        section = getattr(self, kind, None)
        override = getattr(section, what, None)
        return base if override is None else override.apply(base)


def _format_error(e: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in e["loc"])
    msg = e["msg"].removeprefix("Value error, ")
    if not loc:
        return f"  {msg}"
    if "got" in msg:  # the library's message says what came in
        return f"  {loc}: {msg}"
    return f"  {loc}: {msg} (got {e.get('input')!r})"


def load_config(source: PathLike | dict[str, Any], **overrides: Any) -> PipelineConfig:
    """Read and validate a pipeline YAML file (or a dict).

    Parameters
    ----------
    source : path or dict
        A YAML file, or the already-parsed mapping.
    **overrides
        Top-level keys replaced after reading (e.g. ``seed=3``); ``None`` values are
        ignored.

    Returns
    -------
    PipelineConfig

    Raises
    ------
    FileNotFoundError
        If ``source`` is a path to no file.
    ValueError
        If the file is not a YAML mapping or a setting is invalid; the message names
        every offending key, what was expected and what was found.
    """
    import yaml

    if isinstance(source, dict):
        raw, where = dict(source), "<dict>"
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"Pipeline file not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            raise ValueError(f"Pipeline file {path} is not valid YAML: {err}") from err
        where = str(path)
        if not isinstance(raw, dict):
            raise ValueError(
                f"Pipeline file {path} must hold a YAML mapping at top level, "
                f"got {type(raw).__name__}."
            )
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as err:
        lines = [_format_error(e) for e in err.errors()]
        raise ValueError(f"Invalid pipeline config in {where}:\n" + "\n".join(lines)) from None
