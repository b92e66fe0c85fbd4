"""Training speed and peak memory of one decoder training step at MindEye2's sizes.

MindEye2 (Scotti et al. 2024) maps 15,724 nsdgeneral voxels (subject 1) through a
per-subject linear layer into a shared space, then 4 residual MLP blocks, then a backbone
linear onto OpenCLIP ViT-bigG/14 image tokens (256 x 1664) followed by a per-token
projector; batch 32 per subject-GPU in their single-subject runs. This benchmark times
one full training step (forward, loss, backward, gradient clipping, AdamW step) on the
CPU for

- ``braindecode_kit``: :class:`~braindecode_kit.models.BrainDecoder` with a linear
  adapter, ``d_shared`` 1024, 4 residual blocks, and either the pooled head (one 1664-d
  vector: the pooled bigG embedding) or the token head (256 x 1664; ``token_rank=None``
  is one backbone Linear like MindEye2's), the SoftCLIP loss of the MindEye schedule;
- ``mindeye2_peer``: a plain-PyTorch re-implementation of MindEye2's ridge + MLP backbone
  written here from the paper's description (not their code): ``Linear(voxels, h)``, 4
  residual blocks ``x + Linear(Dropout(GELU(Linear(LayerNorm(x)))))``, ``Linear(h, t * w)``,
  and a per-token projector of 3 x (LayerNorm, GELU, Linear(w, w)), with the SoftCLIP loss
  on the flattened tokens. (MindEye2's diffusion prior and low-level branch are left out
  on both sides: the step compared is the backbone's.)

Each configuration runs in a fresh subprocess, so ``peak_rss_mb`` (the process high-water
mark) is not polluted by the others; ``step_mem_mb`` is that peak minus the resident memory
just before the first step (activations, gradients and the optimiser state).

Run ``python benchmarks/decoder_speed.py`` (``--json`` for machine-readable rows, ``--help``
for sizes); from Python: ``from decoder_speed import run; rows = run(n_steps=3)``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
from typing import Any

IMPLEMENTATIONS = ("braindecode_kit", "mindeye2_peer")
TARGETS = ("pooled", "tokens")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _build_peer(n_voxels: int, h: int, n_blocks: int, n_tokens: int, width: int):
    """MindEye2's backbone as described in the paper, in plain PyTorch."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.LayerNorm(h), nn.Linear(h, h), nn.GELU(),
                                     nn.Dropout(0.15), nn.Linear(h, h))

        def forward(self, x):
            return x + self.net(x)

    class PeerMindEye2(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ridge = nn.Linear(n_voxels, h)
            self.blocks = nn.Sequential(*[Block() for _ in range(n_blocks)])
            self.backbone = nn.Linear(h, n_tokens * width)
            self.proj = nn.Sequential(*[m for _ in range(3) for m in
                                        (nn.LayerNorm(width), nn.GELU(), nn.Linear(width, width))])

        def forward(self, x):
            z = self.blocks(self.ridge(x))
            tok = self.backbone(z).view(x.shape[0], n_tokens, width)
            return self.proj(tok)

    def soft_clip(pred, target, tau=0.006):
        p = nn.functional.normalize(pred.flatten(1), dim=-1)
        t = nn.functional.normalize(target.flatten(1), dim=-1)
        soft = (t @ t.T / tau).softmax(-1)
        logits = p @ t.T / tau
        return -0.5 * ((logits.log_softmax(-1) * soft).sum(-1).mean()
                       + (logits.T.log_softmax(-1) * soft).sum(-1).mean())

    model = PeerMindEye2()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=1e-2)

    def step(x, y):
        loss = soft_clip(model(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach().item()

    return model, step


def _build_ours(n_voxels: int, h: int, n_blocks: int, n_tokens: int, width: int,
                target: str, token_rank: int | None):
    import torch

    from braindecode_kit.models import BrainDecoder, DecoderConfig
    from braindecode_kit.train import TrainConfig, param_groups

    cfg = DecoderConfig(subjects={"subj01": n_voxels}, embed_dim=width, d_shared=h,
                        n_blocks=n_blocks, dropout=0.15,
                        token_shape=(n_tokens, width) if target == "tokens" else None,
                        token_rank=token_rank)
    model = BrainDecoder(cfg, seed=0).train()
    tcfg = TrainConfig(schedule="mindeye", epochs=3, mix_fraction=0.0)  # SoftCLIP epoch
    loss_fn = tcfg.make_loss()
    opt = torch.optim.AdamW(param_groups(model, loss_fn, tcfg), lr=3e-4)
    head = "tokens" if target == "tokens" else "image"

    def step(x, y):
        out = model({"subj01": x})
        loss, _ = loss_fn(out, {head: y}, epoch=0)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach().item()

    return model, step


def _measure(kw: dict[str, Any]) -> dict[str, Any]:
    """One configuration, in the current process."""
    import torch

    torch.set_num_threads(kw["threads"])
    torch.manual_seed(0)
    n_tokens, width = kw["token_shape"]
    if kw["target"] == "pooled":
        n_tokens_t, y_shape = 1, (kw["batch_size"], kw["embed_dim"])
        width_t = kw["embed_dim"]
    else:
        n_tokens_t, width_t, y_shape = n_tokens, width, (kw["batch_size"], n_tokens, width)
    rss0 = _rss_mb()
    if kw["implementation"] == "mindeye2_peer":
        model, step = _build_peer(kw["n_voxels"], kw["d_shared"], kw["n_blocks"], n_tokens_t,
                                  width_t)
        if kw["target"] == "pooled":
            y_shape = (kw["batch_size"], 1, width_t)
    else:
        model, step = _build_ours(kw["n_voxels"], kw["d_shared"], kw["n_blocks"], n_tokens,
                                  width_t if kw["target"] == "pooled" else width, kw["target"],
                                  kw["token_rank"])
    n_params = sum(p.numel() for p in model.parameters())
    x = torch.randn(kw["batch_size"], kw["n_voxels"])
    y = torch.randn(*y_shape)
    rss_before = _rss_mb()
    times = []
    for i in range(kw["warmup"] + kw["n_steps"]):
        t0 = time.perf_counter()
        loss = step(x, y)
        if i >= kw["warmup"]:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {
        "implementation": kw["implementation"], "target": kw["target"],
        "n_voxels": kw["n_voxels"], "d_shared": kw["d_shared"], "n_blocks": kw["n_blocks"],
        "batch_size": kw["batch_size"],
        "output": (f"{kw['embed_dim']}" if kw["target"] == "pooled"
                   else f"{n_tokens}x{width}"),
        "n_params_m": round(n_params / 1e6, 2), "step_s": round(med, 4),
        "samples_per_s": round(kw["batch_size"] / med, 2),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "step_mem_mb": round(_peak_rss_mb() - rss_before, 1),
        "model_mem_mb": round(rss_before - rss0, 1),
        "threads": kw["threads"], "loss_finite": bool(loss == loss),
    }


def _child(kw: dict[str, Any], queue) -> None:
    try:
        queue.put(_measure(kw))
    except BaseException as err:  # report, do not hang the parent
        queue.put({"implementation": kw["implementation"], "target": kw["target"],
                   "error": f"{type(err).__name__}: {err}"})


def run(
    n_voxels: int = 15724,
    d_shared: int = 1024,
    n_blocks: int = 4,
    batch_size: int = 32,
    embed_dim: int = 1664,
    token_shape: tuple[int, int] = (256, 1664),
    targets: tuple[str, ...] = TARGETS,
    implementations: tuple[str, ...] = IMPLEMENTATIONS,
    n_steps: int = 3,
    warmup: int = 1,
    threads: int = 1,
    token_rank: int | None = None,
    isolate: bool = True,
) -> list[dict[str, Any]]:
    """Time training steps; one row per (implementation, target).

    Parameters
    ----------
    n_voxels, d_shared, n_blocks, batch_size : int
        MindEye2's published sizes by default (subject 1's 15,724 voxels, 1024, 4, 32).
    embed_dim : int
        Dimension of the pooled target (bigG's 1664).
    token_shape : (int, int)
        Token target (bigG's 256 x 1664).
    targets : tuple of {"pooled", "tokens"}
    implementations : tuple of {"braindecode_kit", "mindeye2_peer"}
    n_steps, warmup : int
        Timed steps (median reported) after untimed warm-up steps.
    threads : int
        torch intra-op threads.
    token_rank : int or None
        Our token head's factorisation (None: one Linear, as MindEye2).
    isolate : bool
        Run each configuration in a fresh subprocess (needed for per-row peak memory).

    Returns
    -------
    list of dict
        ``implementation, target, output, n_params_m, step_s, samples_per_s,
        peak_rss_mb, step_mem_mb, model_mem_mb, ...`` per row (``error`` if it failed).
    """
    rows = []
    for target in targets:
        if target not in TARGETS:
            raise ValueError(f"targets must be among {TARGETS}, got {target!r}.")
        for impl in implementations:
            if impl not in IMPLEMENTATIONS:
                raise ValueError(f"implementations must be among {IMPLEMENTATIONS}, got {impl!r}.")
            kw = dict(implementation=impl, target=target, n_voxels=n_voxels, d_shared=d_shared,
                      n_blocks=n_blocks, batch_size=batch_size, embed_dim=embed_dim,
                      token_shape=tuple(token_shape), n_steps=n_steps, warmup=warmup,
                      threads=threads, token_rank=token_rank)
            if not isolate:
                rows.append(_measure(kw))
                continue
            ctx = mp.get_context("spawn")
            queue = ctx.Queue()
            proc = ctx.Process(target=_child, args=(kw, queue))
            proc.start()
            row = queue.get()
            proc.join()
            rows.append(row)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of :func:`run`'s rows (+ our/peer speed ratio per target)."""
    cols = ["implementation", "target", "output", "n_params_m", "step_s", "samples_per_s",
            "peak_rss_mb", "step_mem_mb"]
    lines = [" | ".join(cols)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['implementation']} | {r['target']} | ERROR {r['error']}")
        else:
            lines.append(" | ".join(str(r[c]) for c in cols))
    by = {(r["implementation"], r["target"]): r for r in rows if "error" not in r}
    for t in TARGETS:
        a, b = by.get(("braindecode_kit", t)), by.get(("mindeye2_peer", t))
        if a and b:
            lines.append(f"{t}: braindecode_kit / mindeye2_peer samples/s = "
                         f"{a['samples_per_s'] / b['samples_per_s']:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-voxels", type=int, default=15724)
    p.add_argument("--d-shared", type=int, default=1024)
    p.add_argument("--n-blocks", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--embed-dim", type=int, default=1664)
    p.add_argument("--tokens", type=int, nargs=2, default=(256, 1664), metavar=("T", "W"))
    p.add_argument("--targets", nargs="+", default=list(TARGETS), choices=TARGETS)
    p.add_argument("--implementations", nargs="+", default=list(IMPLEMENTATIONS),
                   choices=IMPLEMENTATIONS)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--token-rank", type=int, default=None)
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    a = p.parse_args(argv)
    rows = run(a.n_voxels, a.d_shared, a.n_blocks, a.batch_size, a.embed_dim, tuple(a.tokens),
               tuple(a.targets), tuple(a.implementations), a.steps, a.warmup, a.threads,
               a.token_rank)
    if a.json:
        print(json.dumps({"machine": platform.processor() or platform.machine(),
                          "python": sys.version.split()[0], "rows": rows}, indent=2))
    else:
        print(format_table(rows))
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
