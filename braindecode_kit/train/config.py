"""How a decoder is trained (:class:`TrainConfig`) and what training returns
(:class:`TrainResult`).

Mixed precision: ``"bf16"`` works on CPU and recent GPUs, ``"fp16"`` needs CUDA. MindEye2
users report fp16 instability when retraining (MindEye2 GitHub issue #46; full precision
fixed it), so the default is ``"no"`` (float32).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._checks import check_float, check_int, check_option
from ..models.config import GENERATION_LOSSES, SCHEDULE_KINDS

if TYPE_CHECKING:  # torch is imported when a loss or a model is made, not to validate
    from ..models.decoder import BrainDecoder
    from ..models.losses import CombinedLoss, LossSchedule

__all__ = ["TrainConfig", "TrainResult"]

_PRECISIONS = ("no", "bf16", "fp16")
#: what early stopping and the best epoch follow (see ``TrainConfig.val_metric``)
VAL_METRICS = ("top1", "rank")


@dataclass
class TrainConfig:
    """Everything about how a decoder is trained (the architecture is in DecoderConfig).

    Parameters
    ----------
    epochs : int
        Number of passes (an epoch is ``steps_per_epoch`` balanced batches).
    batch_size : int
        Trials per step, split equally between the subjects being trained.
    lr : float
        Peak learning rate of the OneCycle schedule (AdamW).
    weight_decay : float
        AdamW weight decay of the shared encoder and heads (biases and norms: none).
    adapter_weight_decay : float
        AdamW weight decay of the per-subject adapters (MindEye2's "ridge" regulariser).
    pct_start : float
        Share of the steps spent warming the learning rate up (OneCycle).
    schedule : {"mindeye", "infonce", "softclip", "bimixco", "mse"}
        The contrastive term: ``"mindeye"`` is BiMixCo for the first ``mix_fraction``
        of the epochs then SoftCLIP annealed ``soft_temperature[0] -> [1]``.
    temperature : float
        InfoNCE / SoftCLIP temperature of the fixed kinds.
    learn_temperature : bool
        Learn the InfoNCE temperature (CLIP's logit scale).
    mix_beta, mix_prob, mix_fraction, mix_temperature : float
        MixCo: Beta(mix_beta, mix_beta) weights, share of rows mixed, share of epochs
        of the MindEye schedule using it, its temperature.
    soft_temperature : tuple of float
        SoftCLIP temperature anneal of the MindEye schedule.
    contrastive_weight, mse_weight, cosine_weight : float
        Weights of the loss terms (the MEG paper combines contrastive and MSE).
    token_weight, text_weight : float
        Weights of the image-token and caption-text heads, when the decoder and the
        targets have them.
    blurry_weight : float
        Weight of the low-level head's L1 loss, when the decoder and the targets have it.
    generation_weight : float
        Weight of the generation head's regression loss onto the image targets, when the
        decoder has that head (``DecoderConfig.generation_head``).
    generation_loss : {"cosine", "mse"}
        That regression loss.
    mixed_precision : {"no", "bf16", "fp16"}
        Autocast precision (see the module docstring about fp16).
    grad_clip : float or None
        Max gradient norm; None disables clipping.
    patience : int or None
        Early stopping: stop after this many epochs without a better validation score
        (``val_metric``; needs validation data); the best epoch's weights are restored at
        the end.
    val_metric : {"top1", "rank"}
        The validation score that early stopping and the best epoch follow: ``"top1"``
        the retrieval top-1 among ``val_n_candidates`` stimulus-averaged validation
        stimuli; ``"rank"`` the mean percentile rank of the true stimulus among all
        validation stimuli (every candidate counts, so it is far less noisy on a small or
        single-trial validation set, such as one presentation per MEG image).
    val_n_candidates : int
        Candidates of the validation retrieval (capped at the number of val stimuli).
    val_n_draws : int
        Draws of the validation retrieval.
    seed : int
        Seeds batches, mixing and dropout: the same seed gives the same weights on CPU.
    steps_per_epoch : int or None
        None: total training trials // batch_size (at least 1).
    num_workers : int
        DataLoader workers (0: load in the main process).
    keep_checkpoints : int
        Number of most recent epoch checkpoints kept (the best epoch's is kept too).
    validate_start : bool
        Also score the starting weights on the validation data, so that a run starting
        from a good initialisation (a fine-tune, a closed-form adapter) never ends worse
        on validation than it started (``best_epoch`` is then 0 when nothing beat them).
    """

    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    adapter_weight_decay: float = 0.5
    pct_start: float = 0.1
    schedule: str = "infonce"
    temperature: float = 0.05
    learn_temperature: bool = False
    mix_beta: float = 0.15
    mix_prob: float = 0.5
    mix_fraction: float = 1 / 3
    mix_temperature: float = 0.006
    soft_temperature: tuple[float, float] = (0.004, 0.0075)
    contrastive_weight: float = 1.0
    mse_weight: float = 0.0
    cosine_weight: float = 0.0
    token_weight: float = 1.0
    text_weight: float = 1.0
    blurry_weight: float = 1.0
    generation_weight: float = 1.0
    generation_loss: str = "cosine"
    mixed_precision: str = "no"
    grad_clip: float | None = 1.0
    patience: int | None = 8
    val_metric: str = "top1"
    val_n_candidates: int = 300
    val_n_draws: int = 10
    seed: int = 0
    steps_per_epoch: int | None = None
    num_workers: int = 0
    keep_checkpoints: int = 2
    validate_start: bool = False

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "val_n_candidates", "val_n_draws",
                     "keep_checkpoints"):
            setattr(self, name, check_int(name, getattr(self, name), lo=1))
        for name in ("patience", "steps_per_epoch"):
            setattr(self, name, check_int(name, getattr(self, name), lo=1, allow_none=True))
        self.num_workers = check_int("num_workers", self.num_workers, lo=0)
        check_option("schedule", self.schedule, SCHEDULE_KINDS)
        check_option("mixed_precision", self.mixed_precision, _PRECISIONS)
        # the floats are checked, not converted: to_dict() (and a run's fingerprint) keep
        # the values as given
        for name in ("lr", "temperature", "mix_temperature", "mix_beta"):
            check_float(name, getattr(self, name), 0.0, lo_open=True)
        for name in ("weight_decay", "adapter_weight_decay", "contrastive_weight",
                     "mse_weight", "cosine_weight", "token_weight", "text_weight",
                     "blurry_weight", "generation_weight"):
            check_float(name, getattr(self, name), 0.0)
        check_option("generation_loss", self.generation_loss, GENERATION_LOSSES)
        check_option("val_metric", self.val_metric, VAL_METRICS)
        for name in ("pct_start", "mix_prob", "mix_fraction"):
            check_float(name, getattr(self, name), 0.0, 1.0)
        check_float("grad_clip", self.grad_clip, 0.0, lo_open=True, allow_none=True)
        self.soft_temperature = tuple(float(t) for t in self.soft_temperature)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        d = dataclasses.asdict(self)
        d["soft_temperature"] = list(self.soft_temperature)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        """Rebuild from :meth:`to_dict` output; unknown keys are refused."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"Unknown TrainConfig field(s) {unknown}; allowed: {sorted(names)}.")
        return cls(**dict(d))

    def loss_schedule(self) -> LossSchedule:
        """The :class:`LossSchedule` this config describes."""
        from ..models.losses import LossSchedule

        return LossSchedule(kind=self.schedule, epochs=self.epochs,
                            mix_fraction=self.mix_fraction,
                            mix_temperature=self.mix_temperature,
                            soft_temperature=self.soft_temperature,
                            temperature=self.temperature)

    def make_loss(self) -> CombinedLoss:
        """The :class:`CombinedLoss` this config describes."""
        from ..models.losses import CombinedLoss

        return CombinedLoss(self.loss_schedule(), contrastive_weight=self.contrastive_weight,
                            mse_weight=self.mse_weight, cosine_weight=self.cosine_weight,
                            token_weight=self.token_weight, text_weight=self.text_weight,
                            blurry_weight=self.blurry_weight,
                            learn_temperature=self.learn_temperature,
                            generation_weight=self.generation_weight,
                            generation_loss=self.generation_loss)


@dataclass
class TrainResult:
    """What :func:`fit` returns.

    Attributes
    ----------
    decoder : BrainDecoder
        The trained decoder (the best validation epoch's weights when validation was used).
    history : list of dict
        One dict per epoch: ``epoch``, ``train_loss``, the loss parts, ``lr``, ``loss_kind``,
        ``temperature``, ``val_top1`` and ``val_rank`` (when validated), ``time_s``.
    best_epoch : int or None
        1-based epoch of the best validation score (``TrainConfig.val_metric``; None
        without validation).
    best_val_top1 : float or None
        The validation top-1 of that epoch.
    best_val_score : float or None
        Its validation score (the top-1 again when ``val_metric="top1"``).
    stopped_early : bool
    out_dir : Path or None
    shard : dict or None
        What this process trained on: ``rank``, ``world_size``, the sorted global indices
        of the training trials it saw in its first epoch (``first_epoch_indices``) and
        their number (``n_samples``). Under ``accelerate launch`` each rank's shard differs.
    """

    decoder: BrainDecoder
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    best_val_top1: float | None = None
    best_val_score: float | None = None
    stopped_early: bool = False
    out_dir: Path | None = None
    shard: dict[str, Any] | None = None

    @property
    def n_epochs(self) -> int:
        """Number of epochs trained."""
        return len(self.history)

    def history_frame(self):
        """The history as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.history)
