"""Checkpoints of a training run: safetensors and JSON, never pickle.

``out_dir/checkpoints/epoch-NNNN`` holds ``model.safetensors``, ``loss.safetensors`` (when
the loss has parameters), ``optimizer.safetensors`` (the optimizer's tensors and the torch
random state) and ``state.json`` (history, early-stopping state, scheduler, the optimizer's
other fields, and the run's fingerprint, so that a checkpoint is never resumed by another
run). Written atomically; only the most recent ones and the best epoch's are kept.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._utils import atomic_dir, hash_jsonable
from ..models.decoder import BrainDecoder, state_dict_for_saving
from ._data import _Prepared
from .config import TrainConfig

_CKPT_RE = re.compile(r"^epoch-(\d{4,})$")


def _optimizer_to_safetensors(opt_state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, extra = {}, {}
    for pid, st in opt_state["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"state.{pid}.{k}"] = v.detach().cpu().contiguous().clone()
            else:
                extra[f"{pid}.{k}"] = v
    groups = []
    for g in opt_state["param_groups"]:
        g = dict(g)
        g["betas"] = list(g["betas"]) if "betas" in g else None
        groups.append(g)
    return tensors, {"param_groups": groups, "extra_state": extra}


def _optimizer_from_safetensors(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if not key.startswith("state."):
            continue
        _, pid, k = key.split(".", 2)
        state.setdefault(int(pid), {})[k] = v
    for key, v in meta.get("extra_state", {}).items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if g.get("betas") is not None:
            g["betas"] = tuple(g["betas"])
        else:
            g.pop("betas", None)
        groups.append(g)
    return {"state": state, "param_groups": groups}


def list_checkpoints(ckpt_dir: Path) -> list[tuple[int, Path]]:
    if not ckpt_dir.is_dir():
        return []
    out = []
    for p in ckpt_dir.iterdir():
        m = _CKPT_RE.match(p.name)
        if m and (p / "state.json").is_file() and (p / "model.safetensors").is_file():
            out.append((int(m.group(1)), p))
    return sorted(out)


def save_checkpoint(ckpt_dir: Path, epoch: int, model: BrainDecoder, loss_fn: nn.Module,
                     optimizer, scheduler, state: dict, keep: int, best_epoch: int | None
                     ) -> Path:
    """Write ``ckpt_dir/epoch-NNNN`` atomically (safetensors + JSON) and prune old ones."""
    from safetensors.torch import save_file

    path = ckpt_dir / f"epoch-{epoch:04d}"
    opt_tensors, opt_meta = _optimizer_to_safetensors(optimizer.state_dict())
    opt_tensors["rng.torch"] = torch.random.get_rng_state().clone()
    with atomic_dir(path, kind="training checkpoint") as tmp:
        save_file(state_dict_for_saving(model), str(tmp / "model.safetensors"))
        loss_state = state_dict_for_saving(loss_fn)
        if loss_state:
            save_file(loss_state, str(tmp / "loss.safetensors"))
        save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        full = {**state, "epoch": epoch, "optimizer": opt_meta,
                "scheduler": scheduler.state_dict()}
        (tmp / "state.json").write_text(json.dumps(full, indent=1, default=_json_default))
    keep_epochs = {e for e, _ in list_checkpoints(ckpt_dir)[-keep:]}
    if best_epoch is not None:
        keep_epochs.add(best_epoch)
    for e, p in list_checkpoints(ckpt_dir):
        if e not in keep_epochs:
            shutil.rmtree(p, ignore_errors=True)
    return path


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (tuple, set)):
        return list(o)
    if torch.is_tensor(o):
        return o.tolist()
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def run_fingerprint(decoder: BrainDecoder, config: TrainConfig, prep: _Prepared,
                     val: _Prepared | None) -> str:
    trainable = sorted(n for n, p in decoder.named_parameters() if p.requires_grad)
    info = {
        "train": {k: v for k, v in config.to_dict().items() if k not in ("keep_checkpoints",)},
        "decoder": decoder.config.to_dict(),
        "trainable": hash_jsonable(trainable),
        "data": [[s.subject, list(s.X.shape)] for s in prep.sets],
        "val": [[s.subject, list(s.X.shape)] for s in val.sets] if val else None,
    }
    return hash_jsonable(info)


def load_checkpoint(path: Path, fingerprint: str, decoder: BrainDecoder, loss_fn: nn.Module,
                     optimizer, scheduler, ckpt_dir: Path):
    from .._readers import read_json, read_safetensors

    def load_file(file: str, device: str = "cpu"):
        return read_safetensors(file, "training checkpoint", device=device)

    state = read_json(path / "state.json", "training checkpoint state")
    if state.get("fingerprint") != fingerprint:
        raise ValueError(
            f"The checkpoints in {ckpt_dir} belong to a different run (another decoder, "
            "training config or data). Pass resume=False to start over, or use another out_dir."
        )
    dev = decoder.device
    decoder.load_state_dict(load_file(str(path / "model.safetensors"), device=str(dev)))
    if (path / "loss.safetensors").is_file():
        loss_fn.load_state_dict(load_file(str(path / "loss.safetensors"), device=str(dev)))
    tensors = load_file(str(path / "optimizer.safetensors"))
    optimizer.load_state_dict(_optimizer_from_safetensors(tensors, state["optimizer"]))
    scheduler.load_state_dict(state["scheduler"])
    if "rng.torch" in tensors:
        torch.random.set_rng_state(tensors["rng.torch"])
    best = {"score": state.get("best_score", state.get("best_top1")),
            "top1": state.get("best_top1"), "epoch": state.get("best_epoch"),
            "bad": int(state.get("bad_epochs", 0)), "state": None}
    if best["epoch"] is not None:
        best_path = ckpt_dir / f"epoch-{int(best['epoch']):04d}" / "model.safetensors"
        if not best_path.is_file():
            raise FileNotFoundError(
                f"The best epoch's checkpoint {best_path} is missing; pass resume=False."
            )
        best["state"] = load_file(str(best_path))
    return int(state["epoch"]), bool(state.get("finished", False)) and bool(
        state.get("stopped_early", False)), list(state["history"]), best
