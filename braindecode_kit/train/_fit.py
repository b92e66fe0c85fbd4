"""Training a :class:`~braindecode_kit.models.BrainDecoder` on Hugging Face accelerate.

:func:`fit` trains on one or several subjects (batches balanced per subject): AdamW
(:func:`param_groups`) + OneCycle, the MindEye loss schedule or InfoNCE (+ regression),
mixed precision where available, gradient clipping, early stopping on validation retrieval
with best-model restore, per-epoch checkpoints (safetensors + JSON, never pickle, see
:mod:`braindecode_kit.train.checkpoints`) and resume, progress bars, TensorBoard logs and a
``history.json``. One process on CPU; the same code runs under ``accelerate launch`` on
several GPUs or nodes.

(The module is ``_fit``, not ``fit``: a submodule named like the function would replace
``braindecode_kit.train.fit`` by itself once imported.)
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._checks import check_type
from .._docs import fill_doc
from .._logging import logger, progress, verbose
from .._utils import PathLike
from .._utils import write_json_atomic as _write_json
from ..evaluate.retrieval import percentile_rank
from ..models.decoder import BrainDecoder, state_dict_for_saving
from ..models.losses import mixco_grouped
from ..splits import average_by_stimulus
from ._data import (
    BalancedBatchSampler,
    _check_against_decoder,
    _check_leaks,
    _Collate,
    _normalize_sets,
    _prepare,
    _Prepared,
    _TrialIndex,
)
from .checkpoints import list_checkpoints, load_checkpoint, run_fingerprint, save_checkpoint
from .config import TrainConfig, TrainResult

__all__ = ["fit", "param_groups"]


# =========================================================================== evaluation
def _retrieval(pred: np.ndarray, target: np.ndarray, n_candidates: int, n_draws: int,
               seed: int) -> dict[str, Any]:
    """Brain->image top-1 with :func:`~braindecode_kit.evaluate.retrieval_accuracy`."""
    from ..evaluate.retrieval import retrieval_accuracy

    res = retrieval_accuracy(pred, target, k=1, n_candidates=int(min(n_candidates, len(pred))),
                             n_draws=n_draws, seed=seed, direction="brain->image")
    return {"top1": float(res["top1"]), "ci": tuple(float(c) for c in res["ci"])}


def _predict_sharded(decoder: BrainDecoder, X: Any, subject: str, accelerator) -> np.ndarray:
    """Predict all rows, each process taking a contiguous share, gathered on all."""
    n, world = X.shape[0], accelerator.num_processes
    if world == 1:
        return decoder.predict(X, subject=subject)
    per = math.ceil(n / world)
    lo, hi = accelerator.process_index * per, min(n, (accelerator.process_index + 1) * per)
    part = decoder.predict(X[lo:hi], subject=subject) if hi > lo else np.zeros(
        (0, decoder.config.embed_dim), np.float32)
    padded = np.zeros((per, part.shape[1]), np.float32)
    padded[:len(part)] = part
    full = accelerator.gather(torch.from_numpy(padded).to(accelerator.device)).cpu().numpy()
    return np.concatenate([full[r * per:r * per + max(0, min(n, (r + 1) * per) - r * per)]
                           for r in range(world)])


def _evaluate_sets(decoder: BrainDecoder, prep: _Prepared, n_candidates: int, n_draws: int,
                   seed: int, accelerator=None) -> dict[str, Any]:
    """Retrieval top-1 and mean percentile rank of each subject's stimulus-averaged
    predictions, and their means."""
    per_subject = {}
    for s in prep.sets:
        if accelerator is not None:
            pred = _predict_sharded(decoder, s.X, s.subject, accelerator)
        else:
            pred = decoder.predict(s.X, subject=s.subject)
        avg, uniq = average_by_stimulus(pred, s.stim)
        if len(uniq) < 2:
            raise ValueError(
                f"Validation data of subject {s.subject!r} has {len(uniq)} stimulus; "
                "retrieval needs at least 2."
            )
        truth = prep.tables["image"][uniq]
        per_subject[s.subject] = {**_retrieval(avg, truth, n_candidates, n_draws, seed),
                                  "rank": percentile_rank(avg, truth)}
    return {key: float(np.mean([r[key] for r in per_subject.values()]))
            for key in ("top1", "rank")} | {"per_subject": per_subject}


# =========================================================================== fit
def _param_rank(name: str) -> int:
    """0: an adapter's own parameters, 1: its output norm's, 2: the rest (encoder, heads).

    Sorting by it puts every adapter's norm after all the adapters' other parameters, the
    order they had when the norms were a module of their own: the optimizer's groups (and
    the indices of its checkpointed state) and gradient clipping (a sum over parameters,
    whose rounding depends on the order) see the parameters in that order.
    """
    parts = name.split(".")
    if parts[0] != "adapters":
        return 2
    return 1 if parts[2] == "norm" else 0


def param_groups(decoder: BrainDecoder, loss_fn: nn.Module, config: TrainConfig) -> list[dict]:
    """AdamW parameter groups of the trainable parameters of ``decoder`` and ``loss_fn``.

    Matrices of the adapters decay by ``config.adapter_weight_decay`` (MindEye2's "ridge"
    regulariser), the other matrices by ``config.weight_decay``; vectors (biases, norms)
    and the loss's parameters (a learned temperature) do not decay.

    Parameters
    ----------
    decoder : BrainDecoder
        The model; parameters with ``requires_grad=False`` are left out.
    loss_fn : torch.nn.Module
        The loss (:meth:`TrainConfig.make_loss`).
    config : TrainConfig
        Gives the weight decays.

    Returns
    -------
    list of dict
        The non-empty groups among adapter matrices, other matrices and the rest, in that
        order, each with ``params`` and ``weight_decay``.

    Raises
    ------
    ValueError
        If nothing is trainable.
    """
    adapter_decay, decay, no_decay = [], [], []
    named = sorted(decoder.named_parameters(), key=lambda item: _param_rank(item[0]))
    for name, p in named:
        if not p.requires_grad:
            continue
        if p.ndim < 2:
            no_decay.append(p)
        elif name.startswith("adapters."):
            adapter_decay.append(p)
        else:
            decay.append(p)
    no_decay += [p for p in loss_fn.parameters() if p.requires_grad]
    groups = [
        {"params": adapter_decay, "weight_decay": config.adapter_weight_decay},
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ValueError("The decoder has no trainable parameter (all have requires_grad=False).")
    return groups


def _make_scheduler(optimizer, config: TrainConfig, total_steps: int):
    """OneCycle (warm-up of at least 2 steps); a constant rate for runs under 6 steps."""
    if total_steps < 6:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    pct = min(max(config.pct_start, 2.5 / total_steps), 0.5)
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[config.lr] * len(optimizer.param_groups), total_steps=total_steps,
        pct_start=pct)


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return int(np.random.default_rng([seed, epoch, rank, 104729]).integers(2**62))


def _make_accelerator(config: TrainConfig):
    from accelerate import Accelerator, DistributedDataParallelKwargs

    if config.mixed_precision == "fp16" and not torch.cuda.is_available():
        raise ValueError(
            "mixed_precision='fp16' needs a CUDA GPU, but none is available; use 'bf16' or "
            "'no' on CPU."
        )
    return Accelerator(
        mixed_precision=config.mixed_precision,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        step_scheduler_with_optimizer=False,
    )


@fill_doc
@verbose
def fit(
    decoder: BrainDecoder,
    trainsets: Any,
    targets: Any = None,
    config: TrainConfig | None = None,
    valsets: Any = None,
    out_dir: PathLike | None = None,
    resume: bool = True,
    *,
    allow_test: bool = False,
    check_leak: bool = True,
    verbose: bool | str | int | None = None,
) -> TrainResult:
    """Train ``decoder`` (in place) on one or several subjects.

    Parameters
    ----------
    decoder : BrainDecoder
        The model; every subject of ``trainsets`` must have an adapter.
    trainsets : TrialSet, tuple or list of those
        Training trials: TrialSets, ``(subject, X, stimulus_ids)`` tuples, ``(subject, X,
        Y)`` tuples with per-trial target arrays, or ``(subject, X)`` with ``targets`` a
        list of per-set arrays.
    targets : Targets, DataFrame, dict, array, list of arrays or None
        Stimulus id -> CLIP embedding (a :class:`~braindecode_kit.embed.Targets`, whose
        ``tokens``/``text`` also train the token/text heads when the decoder has them; a
        DataFrame indexed by stimulus id; a dict), or arrays aligned with the trials.
        None when the sets carry their own ``Y``.
    config : TrainConfig or None
        None uses ``TrainConfig()``.
    valsets : same forms as ``trainsets``, or None
        Validation trials (the same ``targets`` are used unless they carry ``Y``):
        retrieval top-1 of their stimulus-averaged predictions each epoch drives early
        stopping and best-model restore.
    out_dir : path or None
        Where checkpoints (``checkpoints/epoch-NNNN``: safetensors + JSON), TensorBoard
        logs (``logs/``), ``history.json`` and the final ``model/`` go. None keeps
        everything in memory.
    resume : bool
        Continue from the last checkpoint in ``out_dir`` if there is one (a finished run
        is loaded, not retrained); False starts over and removes old checkpoints.
    allow_test : bool
        Train on TrialSet trials whose split is ``"test"``. Refused by default: pass
        ``ts.select(split="train")``; set it only when you mean it (a final model trained
        after evaluation, or cross-validation folds you assign yourself).
    check_leak : bool
        Refuse ``valsets`` whose stimuli also appear in ``trainsets`` (by stimulus id).
        Set False only for a validation you split yourself on purpose.
    %(verbose)s

    Returns
    -------
    TrainResult
        The trained decoder (the same object), its history and early-stopping outcome.

    Raises
    ------
    SplitLeakError
        If ``trainsets`` hold test trials, or ``valsets`` share stimuli with them
        (naming the subject and the stimuli).
    ValueError
        If the targets are degenerate (all identical, or zero vectors), non-finite, or do
        not match the decoder.
    """
    config = TrainConfig() if config is None else config
    check_type("config", config, TrainConfig)
    check_type("decoder", decoder, BrainDecoder)
    tsets = _normalize_sets(trainsets, "trainsets")
    vsets = _normalize_sets(valsets, "valsets") if valsets is not None else []
    _check_leaks(tsets, vsets, allow_test=bool(allow_test), check_leak=bool(check_leak))
    prep = _prepare(tsets, targets, "trainsets")
    _check_against_decoder(decoder, prep, "trainsets")
    val = None
    if valsets is not None:
        val_targets = None if all(s.Y is not None for s in vsets) else targets
        val = _prepare(vsets, val_targets, "valsets")
        _check_against_decoder(decoder, val, "valsets")

    from accelerate.state import AcceleratorState

    owns_state = not AcceleratorState._shared_state  # a caller's Accelerator is left alone
    accelerator = _make_accelerator(config)
    try:
        return _train_loop(accelerator, decoder, prep, val, config, out_dir, resume)
    finally:
        _release(accelerator, owns_state)


def _train_loop(accelerator, decoder: BrainDecoder, prep: _Prepared, val: _Prepared | None,
                config: TrainConfig, out_dir: PathLike | None, resume: bool) -> TrainResult:
    main = accelerator.is_main_process
    heads = [h for h in decoder.head_names if h in prep.tables]
    # the generation head regresses onto the image targets: it needs no table of its own
    skipped = [h for h in decoder.head_names if h not in prep.tables and h != "generation"]
    if skipped:
        logger.info("No targets for head(s) %s: they are not trained.", skipped)

    n_total = sum(s.X.shape[0] for s in prep.sets)
    steps = config.steps_per_epoch or max(1, n_total // config.batch_size)
    sampler = BalancedBatchSampler([s.X.shape[0] for s in prep.sets], config.batch_size,
                                   steps, config.seed)
    loader = torch.utils.data.DataLoader(_TrialIndex(n_total), batch_sampler=sampler,
                                         collate_fn=_Collate(prep, heads),
                                         num_workers=config.num_workers)
    loss_fn = config.make_loss().to(accelerator.device)
    decoder.to(accelerator.device)
    optimizer = torch.optim.AdamW(param_groups(decoder, loss_fn, config), lr=config.lr)
    scheduler = _make_scheduler(optimizer, config, config.epochs * steps)
    model, optimizer, loader, scheduler = accelerator.prepare(decoder, optimizer, loader,
                                                              scheduler)
    raw_opt = getattr(optimizer, "optimizer", optimizer)
    raw_sched = getattr(scheduler, "scheduler", scheduler)

    out_path = Path(out_dir) if out_dir is not None else None
    ckpt_dir = out_path / "checkpoints" if out_path is not None else None
    fingerprint = run_fingerprint(decoder, config, prep, val)
    history: list[dict[str, Any]] = []
    # "score": the validation score early stopping follows (config.val_metric), "top1"
    # that epoch's top-1
    best = {"score": None, "top1": None, "epoch": None, "bad": 0, "state": None}
    start_epoch, stopped = 0, False

    if ckpt_dir is not None and not resume and main and ckpt_dir.exists():
        _check_only_checkpoints(ckpt_dir)  # never remove what a user keeps there
        shutil.rmtree(ckpt_dir)
    accelerator.wait_for_everyone()
    ckpts = list_checkpoints(ckpt_dir) if (ckpt_dir is not None and resume) else []
    if ckpts:
        start_epoch, stopped, history, best = load_checkpoint(
            ckpts[-1][1], fingerprint, decoder, loss_fn, raw_opt, raw_sched, ckpt_dir)
        logger.info("Resumed from %s (epoch %d of %d).", ckpts[-1][1], start_epoch,
                    config.epochs)

    writer = None
    if out_path is not None and main:
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(log_dir=str(out_path / "logs"), purge_step=start_epoch + 1)
        except ImportError:  # pragma: no cover - tensorboard is a dependency
            logger.warning("tensorboard is not installed: no TensorBoard logs.")

    if config.validate_start and val is not None and start_epoch == 0:
        ev = _evaluate_sets(decoder, val, config.val_n_candidates, config.val_n_draws,
                            config.seed, accelerator)
        best.update(score=ev[config.val_metric], top1=ev["top1"], epoch=0, bad=0,
                    state=state_dict_for_saving(decoder))
        logger.info("starting weights: val top-1 %.3f, rank %.3f", ev["top1"], ev["rank"])
        if ckpt_dir is not None:  # so that a resumed run can restore them as the best
            if main:
                save_checkpoint(ckpt_dir, 0, decoder, loss_fn, raw_opt, raw_sched,
                                 {"fingerprint": fingerprint, "history": [], "best_top1":
                                  best["top1"], "best_score": best["score"],
                                  "best_epoch": 0, "bad_epochs": 0,
                                  "finished": False, "stopped_early": False,
                                  "train_config": config.to_dict()},
                                 config.keep_checkpoints, 0)
            accelerator.wait_for_everyone()

    params = [p for g in raw_opt.param_groups for p in g["params"]]
    bar = progress(total=config.epochs, initial=start_epoch, desc="training",
                   disable=None if main else True)
    first_epoch: list[int] = []
    try:
        epoch = start_epoch
        while epoch < config.epochs and not stopped:
            t0 = time.perf_counter()
            torch.manual_seed(_epoch_seed(config.seed, epoch, accelerator.process_index))
            gen = torch.Generator().manual_seed(
                _epoch_seed(config.seed + 1, epoch, accelerator.process_index))
            if hasattr(loader, "set_epoch"):  # accelerate's loader re-sets the sampler's epoch
                loader.set_epoch(epoch)
            sampler.set_epoch(epoch)
            step_kind = loss_fn.schedule.at(epoch)
            model.train()
            sums: dict[str, float] = {}
            n_steps = 0
            for batch in loader:
                if epoch == start_epoch:
                    first_epoch.extend(batch["index"].tolist())
                inputs = batch["inputs"]
                perm = betas = None
                if step_kind.mixes_inputs:
                    inputs, perm, betas = mixco_grouped(inputs, config.mix_beta,
                                                        config.mix_prob, generator=gen)
                    perm, betas = perm.to(accelerator.device), betas.to(accelerator.device)
                with accelerator.autocast():
                    outputs = model(inputs)
                loss, parts = loss_fn(outputs, {h: batch[h] for h in heads}, epoch, perm,
                                      betas, batch["groups"])
                accelerator.backward(loss)
                if accelerator.num_processes > 1:
                    for p in loss_fn.parameters():
                        if p.grad is not None:
                            p.grad = accelerator.reduce(p.grad, "mean")
                if config.grad_clip is not None:
                    accelerator.clip_grad_norm_(params, config.grad_clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                for k, v in parts.items():
                    sums[k] = sums.get(k, 0.0) + v
                n_steps += 1
            if not all(math.isfinite(v) for v in sums.values()):
                raise FloatingPointError(
                    f"The training loss became non-finite at epoch {epoch + 1} ({sums}). Lower "
                    "lr, keep grad_clip, or use mixed_precision='no' (fp16 is unstable here, "
                    "see MindEye2 issue #46)."
                )
            rec: dict[str, Any] = {"epoch": epoch + 1,
                                   "train_loss": sums.get("total", 0.0) / max(n_steps, 1)}
            rec.update({f"loss/{k}": v / max(n_steps, 1) for k, v in sums.items()
                        if k != "total"})
            rec["lr"] = float(raw_opt.param_groups[0]["lr"])
            rec["loss_kind"] = step_kind.kind
            rec["temperature"] = float(loss_fn.temperature(step_kind))
            if val is not None:
                unwrapped = accelerator.unwrap_model(model)
                ev = _evaluate_sets(unwrapped, val, config.val_n_candidates, config.val_n_draws,
                                    config.seed, accelerator)
                rec["val_top1"] = ev["top1"]
                rec["val_rank"] = ev["rank"]
                for subj, r in ev["per_subject"].items():
                    rec[f"val_top1/{subj}"] = r["top1"]
                score = ev[config.val_metric]
                if best["score"] is None or score > best["score"] + 1e-9:
                    best.update(score=score, top1=ev["top1"], epoch=epoch + 1, bad=0,
                                state=state_dict_for_saving(unwrapped))
                else:
                    best["bad"] += 1
                if config.patience is not None and best["bad"] >= config.patience:
                    stopped = True
            rec["time_s"] = time.perf_counter() - t0
            history.append(rec)
            epoch += 1
            if main:
                logger.info("epoch %d/%d  loss %.4f%s", epoch, config.epochs, rec["train_loss"],
                            f"  val top-1 {rec['val_top1']:.3f}  rank {rec['val_rank']:.3f}"
                            if "val_top1" in rec else "")
                bar.update(1)
                bar.set_postfix(loss=f"{rec['train_loss']:.3f}",
                                **({"val": f"{rec['val_top1']:.3f}"} if "val_top1" in rec else {}))
                if writer is not None:
                    for k, v in rec.items():
                        if isinstance(v, (int, float)) and k != "epoch":
                            writer.add_scalar(k, v, epoch)
                    writer.flush()
            if ckpt_dir is not None:
                if main:
                    state = {"fingerprint": fingerprint, "history": history,
                             "best_top1": best["top1"], "best_score": best["score"],
                             "best_epoch": best["epoch"],
                             "bad_epochs": best["bad"],
                             "finished": bool(stopped or epoch >= config.epochs),
                             "stopped_early": bool(stopped),
                             "train_config": config.to_dict()}
                    save_checkpoint(ckpt_dir, epoch, accelerator.unwrap_model(model), loss_fn,
                                     raw_opt, raw_sched, state, config.keep_checkpoints,
                                     best["epoch"])
                accelerator.wait_for_everyone()
    finally:
        bar.close()
        if writer is not None:
            writer.close()

    decoder = accelerator.unwrap_model(model, keep_fp32_wrapper=False)
    if best["state"] is not None:
        decoder.load_state_dict(best["state"])
    decoder.eval()
    result = TrainResult(decoder=decoder, history=history, best_epoch=best["epoch"],
                         best_val_top1=best["top1"], best_val_score=best["score"],
                         stopped_early=bool(stopped),
                         out_dir=out_path,
                         shard={"rank": accelerator.process_index,
                                "world_size": accelerator.num_processes,
                                "first_epoch_indices": sorted(first_epoch),
                                "n_samples": len(first_epoch)})
    if out_path is not None and main:
        _write_json(out_path / "history.json",
                    {"history": history, "best_epoch": best["epoch"],
                     "best_val_top1": best["top1"], "best_val_score": best["score"],
                     "stopped_early": bool(stopped),
                     "train_config": config.to_dict()})
        decoder.save_pretrained(out_path / "model")
    accelerator.wait_for_everyone()
    return result


def _check_only_checkpoints(ckpt_dir: Path) -> None:
    """Refuse to empty ``ckpt_dir`` unless it holds only training checkpoints."""
    from .._utils import read_marker

    if not ckpt_dir.is_dir():
        raise FileExistsError(f"The checkpoint folder {str(ckpt_dir)!r} is a file; nothing "
                              "was removed. Choose another out_dir.")
    foreign = [p.name for p in sorted(ckpt_dir.iterdir())
               if not p.name.endswith(".tmp")
               and not (p.is_dir() and (read_marker(p) or {}).get("kind") == "training checkpoint")]
    if foreign:
        raise FileExistsError(
            f"Refusing to remove the checkpoint folder {str(ckpt_dir)!r} (resume=False): it "
            f"holds entries that are not training checkpoints ({', '.join(foreign[:5])}). "
            "Nothing was changed; move them or choose another out_dir."
        )


def _release(accelerator, owns_state: bool) -> None:
    """Let a later fit() in this process build an Accelerator with other settings."""
    accelerator.free_memory()
    if owns_state and accelerator.num_processes == 1:
        from accelerate.state import AcceleratorState, GradientState

        AcceleratorState._reset_state(reset_partial_state=False)
        GradientState._reset_state()
