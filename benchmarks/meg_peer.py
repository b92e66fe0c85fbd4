"""MEG: our decoder against braindecode's models, same data, same wall-clock budget.

On one simulated MEG subject of a run folder (the demo's ``meg/trials/sub-01`` by
default), every model learns the seen image's CLIP embedding from the training trials
(one presentation per image) and is scored on the held-out test images (repetitions
averaged): N-way brain->image retrieval, top-1 and top-5, N = the test-set size.

- ``ours``: :class:`~braindecode_kit.models.BrainDecoder` with the run's MEG decoder
  settings (spatial attention over the sensor layout + subject layer + dilated conv
  encoder), trained by :func:`~braindecode_kit.train.fit` (InfoNCE, early stopping on a
  validation split of the training images); its wall-clock time sets the budget;
- ``BrainModule``: braindecode's SimpleConv (the MEG brain module, spatial attention
  merger on, its default 10 blocks x 320 channels), trained with the same InfoNCE loss;
- ``EEGNet``, ``ShallowFBCSPNet``: braindecode's models with ``n_outputs`` the embedding
  dimension, regressing the embedding (MSE on unit-normalised targets);
- ``ridge``: the ridge baseline on the flattened epochs.

Each peer trains for the same wall-clock budget as ours (AdamW, lr 1e-3, batch 64) and
keeps its best epoch on the same validation split. One run, one seed: read the numbers
with the binomial CIs printed beside them.

braindecode is an optional benchmark extra (``pip install 'braindecode_kit[bench]'``);
its ``BrainModule`` file is CC BY-NC, used as an installed peer only.

Run ``python benchmarks/meg_peer.py --run runs/demo`` (runs the demo first if it has no
MEG trials yet; ``--json`` for rows).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

PEERS = ("BrainModule", "EEGNet", "ShallowFBCSPNet")


def _ensure_run(run_dir: Path, subject: str) -> None:
    from braindecode_kit._resources import pipelines_dir
    from braindecode_kit.pipeline import load_config, run_pipeline

    if (run_dir / "meg" / "trials" / f"sub-{subject}").is_dir():
        return
    print(f"running the demo pipeline into {run_dir} first ...", file=sys.stderr)
    run_pipeline(load_config(pipelines_dir() / "demo.yaml"), run_dir)


def _score(pred: np.ndarray, Y: np.ndarray) -> dict[str, float]:
    from braindecode_kit.evaluate import retrieval_accuracy

    r = retrieval_accuracy(pred, Y, k=5, n_candidates=len(Y), n_draws=1,
                           direction="brain->image")
    # one draw: the Wilson interval of the proportion over the candidates
    return {"top1": float(r["top1"]), "top5": float(r["topk"]),
            "top5_ci": [float(c) for c in r["topk_ci"]]}


def _peer(name: str, ts, embed_dim: int):
    from braindecode.models import BrainModule, EEGNet, ShallowFBCSPNet

    n_chans, n_times = ts.feature_shape
    common = dict(n_chans=n_chans, n_outputs=embed_dim, n_times=n_times, sfreq=ts.info.sfreq)
    if name == "BrainModule":
        return BrainModule(**common, chs_info=ts.info.info["chs"], use_merger=True)
    if name == "EEGNet":
        return EEGNet(**common)
    # the default kernels are sized for 250 Hz trials of seconds: scale them to ours
    return ShallowFBCSPNet(**common, final_conv_length="auto",
                           filter_time_length=max(3, n_times // 5),
                           pool_time_length=max(3, n_times // 3),
                           pool_time_stride=max(1, n_times // 9))


def _train_peer(model, loss: str, X, Y, Xv, Yv, budget_s: float, seed: int):
    """AdamW until the budget is spent; the best epoch on the validation images."""
    import torch

    from braindecode_kit.evaluate import retrieval_accuracy
    from braindecode_kit.models import clip_loss

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y / np.linalg.norm(Y, axis=1, keepdims=True))
    best, best_state, epochs, start = -1.0, None, 0, time.perf_counter()
    while time.perf_counter() - start < budget_s:
        model.train()
        for idx in np.array_split(rng.permutation(len(X)), max(1, len(X) // 64)):
            out = model(Xt[idx])
            if loss == "clip":
                value = clip_loss(out, Yt[idx], temperature=0.05)
            else:
                value = torch.nn.functional.mse_loss(out, Yt[idx])
            opt.zero_grad()
            value.backward()
            opt.step()
        epochs += 1
        pv = _predict(model, Xv)
        val = retrieval_accuracy(pv, Yv, k=1, n_candidates=min(100, len(Yv)), n_draws=5)["top1"]
        if val > best:
            best, best_state = val, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return model, time.perf_counter() - start, epochs


def _predict(model, X: np.ndarray) -> np.ndarray:
    import torch

    model.eval()
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(X[i:i + 256])).numpy()
                               for i in range(0, len(X), 256)])


def _val_means(val, targets) -> tuple[np.ndarray, np.ndarray]:
    avg = val.average_repetitions()
    return np.asarray(avg.data, np.float32), targets.loc(avg.stimulus_ids).image


def run(run_dir: str | Path = "runs/demo", subject: str = "01", peers=PEERS,
        budget_s: float | None = None, seed: int = 0,
        config: str | Path | None = None) -> list[dict[str, Any]]:
    """Train ours and each peer on one MEG subject of ``run_dir``; one row per model.

    Parameters
    ----------
    run_dir : path
        A run folder with MEG trials and its pipeline's config (the demo's by default).
    subject : str
        The MEG subject.
    peers : sequence of str
        braindecode models to compare (:data:`PEERS`).
    budget_s : float or None
        Wall-clock seconds each peer trains (None: the time our decoder took).
    seed : int
        Seed of the validation split, initialisations and batches.
    config : path or None
        The pipeline file whose MEG decoder and training settings ours uses (None: the
        run's, from its manifest).

    Returns
    -------
    list of dict
        ``model``, ``top1``, ``top5`` (and its CI), ``train_s``, ``epochs``,
        ``n_params``, ``ours_over_it`` (our top-5 over its top-5), plus ``chance``.
    """
    import torch

    from braindecode_kit.baselines import RidgeDecoder
    from braindecode_kit.embed import Targets
    from braindecode_kit.models import BrainDecoder
    from braindecode_kit.pipeline import load_config
    from braindecode_kit.pipeline.stages import decoder_config, test_set, train_config
    from braindecode_kit.splits import split_train_val
    from braindecode_kit.train import fit
    from braindecode_kit.trialset import TrialSet

    run_dir = Path(run_dir)
    _ensure_run(run_dir, subject)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    cfg = load_config(config if config is not None else manifest["config"])
    targets = Targets.load(run_dir / "targets")
    ts = TrialSet.load(run_dir / "meg" / "trials" / f"sub-{subject}")
    train, val = split_train_val(ts, seed=seed)
    test = test_set(ts)
    Xte = np.asarray(test.data, np.float32)
    Yte = targets.loc(test.stimulus_ids).image
    X = np.asarray(train.data, np.float32)
    Y = targets.loc(train.stimulus_ids).image
    Xv, Yv = _val_means(val, targets)
    rows = []

    decoder = BrainDecoder(decoder_config(cfg, {subject: train}, Y.shape[1]), seed=seed)
    t0 = time.perf_counter()
    res = fit(decoder, [train], targets, train_config(cfg, "meg", seed=seed), valsets=[val],
              verbose="WARNING")
    ours_s = time.perf_counter() - t0
    rows.append({"model": "ours", **_score(res.decoder.predict(Xte, subject=subject), Yte),
                 "train_s": ours_s, "epochs": res.n_epochs,
                 "n_params": sum(p.numel() for p in res.decoder.parameters())})
    budget = ours_s if budget_s is None else float(budget_s)

    t0 = time.perf_counter()
    ridge = RidgeDecoder().fit(X, Y, groups=train.stimulus_ids)
    rows.append({"model": "ridge", **_score(ridge.predict(Xte), Yte),
                 "train_s": time.perf_counter() - t0, "epochs": None, "n_params": X[0].size
                 * Y.shape[1]})
    for name in peers:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.manual_seed(seed)
            model = _peer(name, ts, Y.shape[1])
        model, took, epochs = _train_peer(model, "clip" if name == "BrainModule" else "mse",
                                          X, Y, Xv, Yv, budget, seed)
        rows.append({"model": name, **_score(_predict(model, Xte), Yte), "train_s": took,
                     "epochs": epochs, "n_params": sum(p.numel() for p in model.parameters())})
    ours = rows[0]["top5"]
    for r in rows:
        r["ours_over_it"] = ours / r["top5"] if r["top5"] > 0 else float("inf")
        r["chance_top5"] = 5 / len(Yte)
        r["n_test"] = len(Yte)
        r["n_train_trials"] = int(train.n_trials)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default="runs/demo", help="run folder with MEG trials")
    parser.add_argument("--subject", default="01")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds each peer trains (default: the time ours took)")
    parser.add_argument("--peers", nargs="*", default=list(PEERS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", default=None,
                        help="pipeline YAML for the settings (default: the run's manifest)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    try:
        import braindecode  # noqa: F401
    except ImportError:
        sys.exit("This benchmark needs braindecode: pip install 'braindecode_kit[bench]'")
    rows = run(args.run, args.subject, args.peers, args.budget, args.seed, args.config)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    r0 = rows[0]
    print(f"MEG sub-{args.subject}: {r0['n_train_trials']} training trials, {r0['n_test']}-way "
          f"retrieval of the test images (chance top-5 {r0['chance_top5']:.3f})")
    print(f"{'model':<16}{'top-1':>7}{'top-5':>7}  {'95% CI (top-5)':<15}{'train s':>8}"
          f"{'epochs':>7}{'params':>10}{'ours/it':>8}")
    for r in rows:
        ci = f"[{r['top5_ci'][0]:.2f}, {r['top5_ci'][1]:.2f}]"
        print(f"{r['model']:<16}{r['top1']:>7.3f}{r['top5']:>7.3f}  {ci:<15}"
              f"{r['train_s']:>8.0f}{r['epochs'] if r['epochs'] is not None else '-':>7}"
              f"{r['n_params']:>10,}{r['ours_over_it']:>8.2f}")


if __name__ == "__main__":
    main()
