"""Pipeline configuration: YAML -> validated pydantic models.

A pipeline file names the stages' settings; anything unknown is refused (a typo in a
key is an error, not a silently ignored setting). Every section has defaults, so the
smallest valid pipeline is ``name: my-run``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ._utils import PathLike


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StimuliConfig(_Section):
    """Where the stimuli come from: the built-in world or a folder of images."""

    kind: Literal["world", "folder", "coco"] = "world"
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


class EmbedConfig(_Section):
    """The CLIP model that makes the targets."""

    model: str = "builtin"
    pretrained: str | None = None
    tokens: bool = False
    text: bool = True
    batch_size: int = Field(256, ge=1)
    device: str = "cpu"


class SimulateFMRIConfig(_Section):
    """Simulated fMRI subjects (written as BIDS + NSD layout)."""

    n_subjects: int = Field(4, ge=1)
    snr: float | None = None
    tr: float = Field(1.5, gt=0)
    extra: dict[str, Any] = Field(default_factory=dict, description="more simulate_fmri kwargs")


class LoadFMRIConfig(_Section):
    """How trials are read from the BIDS dataset."""

    method: Literal["lss", "lsa"] = "lss"
    zscore: Literal["session", "none"] = "session"
    mask: str = "brain"
    extra: dict[str, Any] = Field(default_factory=dict, description="more load_fmri_bids kwargs")


class FMRIConfig(_Section):
    """The fMRI data: simulated, or a BIDS root with subject labels."""

    source: Literal["simulate", "bids"] = "simulate"
    bids_root: str | None = None
    subjects: list[str] | None = None
    simulate: SimulateFMRIConfig = SimulateFMRIConfig()
    load: LoadFMRIConfig = LoadFMRIConfig()

    @model_validator(mode="after")
    def _root_given(self):
        if self.source == "bids" and not self.bids_root:
            raise ValueError("fmri.source='bids' needs fmri.bids_root (a BIDS dataset folder)")
        return self


class DecoderSection(_Section):
    """Architecture of the contrastive decoder (see models.DecoderConfig)."""

    adapter: Literal["linear", "mlp"] = "linear"
    d_shared: int = Field(64, ge=8)
    n_blocks: int = Field(2, ge=0)
    dropout: float = Field(0.15, ge=0, lt=1)
    extra: dict[str, Any] = Field(default_factory=dict)


class TrainSection(_Section):
    """Training settings (see train.TrainConfig)."""

    epochs: int = Field(30, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    schedule: str = "infonce"
    patience: int | None = Field(8, ge=1)
    extra: dict[str, Any] = Field(default_factory=dict)


class NewSubjectConfig(_Section):
    """New-subject adaptation: one simulated subject held out of pretraining."""

    enabled: bool = True
    fraction: float = Field(0.1, gt=0, le=1)
    curve: list[float] = Field(default_factory=lambda: [0.025, 0.05, 0.1, 0.25, 0.5, 1.0])
    finetune_epochs: int = Field(0, ge=0)


class EvaluateConfig(_Section):
    """Retrieval protocol (MindEye2): N candidates, draws, k."""

    n_candidates: int = Field(300, ge=2)
    n_draws: int = Field(30, ge=1)
    topk: int = Field(5, ge=1)


class ReportConfig(_Section):
    """What the HTML report shows."""

    n_examples: int = Field(8, ge=1, le=64)
    n_candidates_shown: int = Field(5, ge=1, le=16)


class PipelineConfig(_Section):
    """A whole pipeline: stages run in order into one run folder."""

    name: str
    seed: int = 0
    stages: list[str] | None = Field(
        None, description="stages to run, in order; default: all that the config enables"
    )
    stimuli: StimuliConfig = StimuliConfig()
    embed: EmbedConfig = EmbedConfig()
    fmri: FMRIConfig | None = None
    decoder: DecoderSection = DecoderSection()
    train: TrainSection = TrainSection()
    new_subject: NewSubjectConfig = NewSubjectConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    report: ReportConfig = ReportConfig()


def load_config(source: PathLike | dict[str, Any], **overrides: Any) -> PipelineConfig:
    """Read and validate a pipeline YAML file (or a dict).

    Parameters
    ----------
    source : path or dict
        A YAML file, or the already-parsed mapping.
    **overrides
        Top-level keys replaced after reading (e.g. ``seed=3``).

    Returns
    -------
    PipelineConfig

    Raises
    ------
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
        lines = []
        for e in err.errors():
            loc = ".".join(str(p) for p in e["loc"])
            lines.append(f"  {loc}: {e['msg']} (got {e.get('input')!r})")
        raise ValueError(f"Invalid pipeline config in {where}:\n" + "\n".join(lines)) from None
