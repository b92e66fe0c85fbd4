"""Training losses: contrastive (InfoNCE, SoftCLIP, MixCo/BiMixCo), regression, schedules.

All contrastive losses L2-normalise predictions and targets (flattening token grids)
and are symmetric (brain->image and image->brain), as in CLIP and MindEye.

- :func:`clip_loss`: symmetric InfoNCE; trials sharing a stimulus (``groups``) are all
  positives of each other instead of false negatives.
- :func:`soft_clip_loss`: MindEye's SoftCLIP, whose targets are the softmax of the
  target-target similarities.
- :func:`mixco` / :func:`mixco_loss`: MixCo (mix the *inputs*, Beta(0.15, 0.15), half the
  batch) and its bidirectional loss (BiMixCo).
- :class:`LossSchedule`: MindEye's schedule (BiMixCo for the first third, then SoftCLIP with
  the temperature cosine-annealed 0.004 -> 0.0075), or a fixed kind.
- :func:`mse_loss`, :func:`cosine_loss`: regression terms.
- :class:`CombinedLoss`: weighted sum over heads and terms (the MEG paper combines a
  contrastive and a regression term).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_option
from .config import GENERATION_LOSSES, SCHEDULE_KINDS

__all__ = [
    "CombinedLoss",
    "LossSchedule",
    "LossStep",
    "SCHEDULE_KINDS",
    "clip_loss",
    "cosine_loss",
    "mixco",
    "mixco_grouped",
    "mixco_loss",
    "mse_loss",
    "soft_clip_loss",
]



def _flat_norm(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x.flatten(1).float(), dim=-1)


def clip_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    temperature: float | torch.Tensor = 0.05,
    groups: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric InfoNCE (the CLIP loss) between predictions and targets.

    ``logits = norm(pred) @ norm(target).T / temperature``; the loss is the mean of the
    cross-entropies of the rows (brain->image) and of the columns (image->brain) against
    the diagonal.

    Parameters
    ----------
    pred, target : Tensor, shape (n, ...)
        Row i of ``pred`` matches row i of ``target``; extra dims are flattened.
    temperature : float or Tensor
        Softmax temperature (a learned one is passed as a tensor).
    groups : Tensor of int, shape (n,) or None
        Stimulus index of each row: rows with the same group are all positives (uniform
        soft label over them), so repeated stimuli are not counted as negatives.

    Returns
    -------
    Tensor
        The scalar loss.
    """
    p, t = _flat_norm(pred), _flat_norm(target)
    logits = p @ t.T / temperature
    n = logits.shape[0]
    if groups is None:
        labels = torch.arange(n, device=logits.device)
        return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
    g = groups.reshape(-1)
    pos = (g[:, None] == g[None, :]).float()
    soft = pos / pos.sum(1, keepdim=True)
    loss_r = -(logits.log_softmax(-1) * soft).sum(-1).mean()
    loss_c = -(logits.T.log_softmax(-1) * soft).sum(-1).mean()
    return 0.5 * (loss_r + loss_c)


def soft_clip_loss(
    pred: torch.Tensor, target: torch.Tensor, temperature: float | torch.Tensor = 0.125
) -> torch.Tensor:
    """MindEye's SoftCLIP: cross-entropy against the softmax of target-target similarity.

    With ``P = norm(pred)``, ``T = norm(target)``: soft labels ``S = softmax(T T' / tau)``
    (row-wise), ``L1 = -mean_i sum_j S_ij log softmax(P T' / tau)_ij``, ``L2`` the same on
    ``(P T')'``, and the loss is ``(L1 + L2) / 2``.
    """
    p, t = _flat_norm(pred), _flat_norm(target)
    target_sim = (t @ t.T / temperature).softmax(-1)
    logits = p @ t.T / temperature
    loss1 = -(logits.log_softmax(-1) * target_sim).sum(-1).mean()
    loss2 = -(logits.T.log_softmax(-1) * target_sim).sum(-1).mean()
    return 0.5 * (loss1 + loss2)


def mixco(
    x: torch.Tensor,
    beta: float = 0.15,
    prob: float = 0.5,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """MixCo input mixing: a random ``prob`` share of rows become convex mixes with a partner.

    Row i (if selected) becomes ``b_i x_i + (1 - b_i) x_perm(i)`` with
    ``b_i ~ Beta(beta, beta)``; unselected rows keep ``b_i = 1``. ``x`` is not modified.

    Returns
    -------
    x_mixed : Tensor
    perm : Tensor of int, shape (n,)
        The partner of each row.
    betas : Tensor, shape (n,)
        The weight of each row's own target (1 for unmixed rows).
    select : Tensor of bool, shape (n,)
        Which rows were mixed.
    """
    n = x.shape[0]
    dev = x.device
    perm = torch.randperm(n, generator=generator).to(dev)
    # Beta(a, a) from a NumPy generator seeded by the torch generator (reproducible)
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    betas = torch.as_tensor(np.random.default_rng(seed).beta(beta, beta, size=n),
                            dtype=torch.float32, device=dev)
    select = (torch.rand(n, generator=generator) <= prob).to(dev)
    betas = torch.where(select, betas, torch.ones_like(betas))
    shape = [-1] + [1] * (x.dim() - 1)
    b = betas.to(x.dtype).reshape(shape)
    x_mixed = b * x + (1 - b) * x[perm]
    return x_mixed, perm, betas, select


def mixco_grouped(
    inputs: Mapping[str, torch.Tensor],
    beta: float = 0.15,
    prob: float = 0.5,
    generator: torch.Generator | None = None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """:func:`mixco` within each subject of a multi-subject batch (subjects have different
    feature counts, so partners come from the same subject).

    Returns the mixed mapping, the global ``perm`` (indices into the concatenation of the
    mapping's tensors in order) and the ``betas``.
    """
    mixed, perms, betas, offset = {}, [], [], 0
    for name, x in inputs.items():
        xm, perm, b, _ = mixco(x, beta=beta, prob=prob, generator=generator)
        mixed[name] = xm
        perms.append(perm + offset)
        betas.append(b)
        offset += x.shape[0]
    return mixed, torch.cat(perms), torch.cat(betas)


def mixco_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    perm: torch.Tensor,
    betas: torch.Tensor,
    temperature: float | torch.Tensor = 0.006,
    bidirectional: bool = True,
) -> torch.Tensor:
    """The MixCo loss (BiMixCo when ``bidirectional``) for inputs mixed by :func:`mixco`.

    Soft labels ``Q = diag(b)`` plus ``1 - b_i`` at ``(i, perm(i))``; rows (and, if
    bidirectional, columns with ``Q'``) of ``norm(pred) @ norm(target)' / tau`` are scored
    by cross-entropy against ``Q``.
    """
    p, t = _flat_norm(pred), _flat_norm(target)
    logits = p @ t.T / temperature
    n = logits.shape[0]
    b = betas.to(logits.dtype)
    probs = torch.diag(b)
    probs = probs.index_put((torch.arange(n, device=logits.device), perm.to(logits.device)),
                            1 - b, accumulate=True)
    loss = -(logits.log_softmax(-1) * probs).sum(-1).mean()
    if bidirectional:
        loss2 = -(logits.T.log_softmax(-1) * probs.T).sum(-1).mean()
        loss = 0.5 * (loss + loss2)
    return loss


def mse_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all elements."""
    return F.mse_loss(pred.float(), target.float())


def cosine_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mean_i (1 - cos(pred_i, target_i))`` (rows flattened)."""
    return (1 - (_flat_norm(pred) * _flat_norm(target)).sum(-1)).mean()


def cosine_anneal(start: float, end: float, steps: int) -> list[float]:
    """``steps`` values from ``start`` to ``end`` along a half cosine (MindEye's anneal)."""
    if steps <= 1:
        return [float(start)] * max(steps, 0)
    return [end + (start - end) / 2 * (1 + math.cos(math.pi * i / (steps - 1)))
            for i in range(steps)]


@dataclass(frozen=True)
class LossStep:
    """What the contrastive term is at one epoch: ``kind`` and ``temperature``."""

    kind: str  # "bimixco" | "softclip" | "infonce" | "none"
    temperature: float

    @property
    def mixes_inputs(self) -> bool:
        return self.kind == "bimixco"


@dataclass(frozen=True)
class LossSchedule:
    """Which contrastive loss (and temperature) to use at each epoch.

    Parameters
    ----------
    kind : {"mindeye", "infonce", "softclip", "bimixco", "mse"}
        ``"mindeye"``: BiMixCo (``mix_temperature``) for the first ``mix_fraction`` of the
        epochs, then SoftCLIP with the temperature cosine-annealed from
        ``soft_temperature[0]`` to ``soft_temperature[1]``. ``"infonce"``: CLIP loss at
        ``temperature`` throughout; ``"softclip"``: SoftCLIP at ``temperature``;
        ``"bimixco"``: BiMixCo at ``mix_temperature``; ``"mse"``: no contrastive term.
    epochs : int
        Total number of training epochs.
    """

    kind: str = "mindeye"
    epochs: int = 30
    mix_fraction: float = 1 / 3
    mix_temperature: float = 0.006
    soft_temperature: tuple[float, float] = (0.004, 0.0075)
    temperature: float = 0.05

    def __post_init__(self) -> None:
        check_option("kind", self.kind, SCHEDULE_KINDS)
        if int(self.epochs) < 1:
            raise ValueError(f"epochs must be a positive integer, but got {self.epochs!r}.")
        if not 0.0 <= self.mix_fraction <= 1.0:
            raise ValueError(f"mix_fraction must be in [0, 1], but got {self.mix_fraction!r}.")
        for name in ("mix_temperature", "temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, but got {getattr(self, name)!r}.")
        if len(self.soft_temperature) != 2 or min(self.soft_temperature) <= 0:
            raise ValueError(
                f"soft_temperature must be a pair of positive floats, got {self.soft_temperature!r}."
            )

    @property
    def n_mix_epochs(self) -> int:
        """Number of BiMixCo epochs of the ``"mindeye"`` schedule."""
        return int(self.mix_fraction * self.epochs)

    def at(self, epoch: int) -> LossStep:
        """The loss of epoch ``epoch`` (0-based)."""
        if self.kind == "mse":
            return LossStep("none", 1.0)
        if self.kind == "infonce":
            return LossStep("infonce", float(self.temperature))
        if self.kind == "softclip":
            return LossStep("softclip", float(self.temperature))
        if self.kind == "bimixco":
            return LossStep("bimixco", float(self.mix_temperature))
        n_mix = self.n_mix_epochs
        if epoch < n_mix:
            return LossStep("bimixco", float(self.mix_temperature))
        temps = cosine_anneal(*self.soft_temperature, self.epochs - n_mix)
        return LossStep("softclip", float(temps[min(epoch - n_mix, len(temps) - 1)]))


def _mixed(target: torch.Tensor, step: LossStep, perm: torch.Tensor | None,
           betas: torch.Tensor | None) -> torch.Tensor:
    """The target of a regression term: mixed as the inputs were when the step mixes."""
    if perm is None or betas is None or not step.mixes_inputs:
        return target
    b = betas.to(target.dtype).reshape([-1] + [1] * (target.dim() - 1))
    return b * target + (1 - b) * target[perm]


class CombinedLoss(nn.Module):
    """Weighted sum of a contrastive term (from a :class:`LossSchedule`) and regression
    terms, over every head the decoder has.

    ``total = sum_h w_h * (contrastive_weight * C_h + mse_weight * MSE_h
    + cosine_weight * COS_h)`` with ``w_image = 1``, ``w_tokens = token_weight``,
    ``w_text = text_weight``; the low-level head (``"blurry"``, images not embeddings) adds
    ``blurry_weight * L1``, and the generation head (``"generation"``, scored against the
    image targets) adds ``generation_weight`` times its regression loss.

    Parameters
    ----------
    schedule : LossSchedule
        The contrastive term per epoch.
    contrastive_weight, mse_weight, cosine_weight : float
        Weights of the terms.
    token_weight, text_weight : float
        Weights of the token and caption-text heads (used when present in the outputs).
    blurry_weight : float
        Weight of the low-level head's L1 loss (used when present in the outputs).
    generation_weight : float
        Weight of the generation head's regression loss (used when present in the
        outputs; its target is the image target).
    generation_loss : {"cosine", "mse"}
        That loss: ``1 - cos`` (the scale-free fit the generation route is judged by) or
        the mean squared error (MindEye2's prior, the MEG paper's MSE head).
    learn_temperature : bool
        For ``"infonce"``: learn the temperature (a log-scale parameter initialised at
        ``schedule.temperature``, as CLIP's logit scale, capped at 100).
    """

    def __init__(
        self,
        schedule: LossSchedule | None = None,
        contrastive_weight: float = 1.0,
        mse_weight: float = 0.0,
        cosine_weight: float = 0.0,
        token_weight: float = 1.0,
        text_weight: float = 1.0,
        blurry_weight: float = 1.0,
        learn_temperature: bool = False,
        generation_weight: float = 1.0,
        generation_loss: str = "cosine",
    ) -> None:
        super().__init__()
        self.schedule = schedule or LossSchedule()
        for name, v in dict(contrastive_weight=contrastive_weight, mse_weight=mse_weight,
                            cosine_weight=cosine_weight, token_weight=token_weight,
                            text_weight=text_weight, blurry_weight=blurry_weight,
                            generation_weight=generation_weight).items():
            if not v >= 0:
                raise ValueError(f"{name} must be >= 0, but got {v!r}.")
        if contrastive_weight + mse_weight + cosine_weight <= 0:
            raise ValueError("At least one of contrastive_weight, mse_weight and "
                             "cosine_weight must be > 0.")
        self.contrastive_weight = float(contrastive_weight)
        self.mse_weight = float(mse_weight)
        self.cosine_weight = float(cosine_weight)
        self.head_weights = {"image": 1.0, "tokens": float(token_weight),
                             "text": float(text_weight)}
        self.blurry_weight = float(blurry_weight)
        self.generation_weight = float(generation_weight)
        check_option("generation_loss", generation_loss, GENERATION_LOSSES)
        self.generation_loss = generation_loss
        self.learn_temperature = bool(learn_temperature)
        if self.learn_temperature:
            self.logit_scale = nn.Parameter(
                torch.tensor(math.log(1.0 / self.schedule.temperature)))

    def temperature(self, step: LossStep) -> float | torch.Tensor:
        """The temperature for ``step`` (the learned one for ``"infonce"`` if enabled)."""
        if self.learn_temperature and step.kind == "infonce":
            return 1.0 / self.logit_scale.clamp(max=math.log(100.0)).exp()
        return step.temperature

    def contrastive(self, pred, target, step: LossStep, perm=None, betas=None, groups=None):
        """The contrastive term of ``step`` for one head."""
        tau = self.temperature(step)
        if step.kind == "bimixco":
            if perm is None or betas is None:
                raise ValueError("The BiMixCo step needs the perm and betas returned by mixco().")
            return mixco_loss(pred, target, perm, betas, tau)
        if step.kind == "softclip":
            return soft_clip_loss(pred, target, tau)
        if step.kind == "infonce":
            return clip_loss(pred, target, tau, groups=groups)
        return pred.new_zeros(())

    def forward(
        self,
        outputs: Mapping[str, torch.Tensor],
        targets: Mapping[str, torch.Tensor],
        epoch: int = 0,
        perm: torch.Tensor | None = None,
        betas: torch.Tensor | None = None,
        groups: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Total loss and its parts (floats, for logging).

        Parameters
        ----------
        outputs, targets : mapping of head name to Tensor
            Heads present in both are scored.
        epoch : int
            Selects the contrastive term from the schedule.
        perm, betas : Tensor or None
            From :func:`mixco` when the step mixes inputs.
        groups : Tensor or None
            Stimulus index of each row (for InfoNCE's repeated stimuli).
        """
        step = self.schedule.at(epoch)
        total = None
        parts: dict[str, float] = {}
        for head, w in self.head_weights.items():
            if head not in outputs or head not in targets or w == 0:
                continue
            pred, target = outputs[head], targets[head]
            loss_h = pred.new_zeros((), dtype=torch.float32)
            if self.contrastive_weight and step.kind != "none":
                c = self.contrastive(pred, target, step, perm, betas, groups)
                parts[f"{head}/{step.kind}"] = float(c.detach())
                loss_h = loss_h + self.contrastive_weight * c
            if self.mse_weight:
                m = mse_loss(pred, _mixed(target, step, perm, betas))
                parts[f"{head}/mse"] = float(m.detach())
                loss_h = loss_h + self.mse_weight * m
            if self.cosine_weight:
                c = cosine_loss(pred, _mixed(target, step, perm, betas))
                parts[f"{head}/cosine"] = float(c.detach())
                loss_h = loss_h + self.cosine_weight * c
            total = w * loss_h if total is None else total + w * loss_h
        if "blurry" in outputs and "blurry" in targets and self.blurry_weight:
            tgt = _mixed(targets["blurry"], step, perm, betas)
            l1 = torch.nn.functional.l1_loss(outputs["blurry"].float(), tgt.float())
            parts["blurry/l1"] = float(l1.detach())
            total = self.blurry_weight * l1 if total is None else total + self.blurry_weight * l1
        if "generation" in outputs and "image" in targets and self.generation_weight:
            tgt = _mixed(targets["image"], step, perm, betas)
            fn = cosine_loss if self.generation_loss == "cosine" else mse_loss
            g = fn(outputs["generation"], tgt)
            parts[f"generation/{self.generation_loss}"] = float(g.detach())
            w = self.generation_weight
            total = w * g if total is None else total + w * g
        if total is None:
            raise ValueError(
                f"No head to score: outputs have {sorted(outputs)}, targets have {sorted(targets)}."
            )
        parts["total"] = float(total.detach())
        return total, parts
