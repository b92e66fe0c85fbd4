"""How good is the built-in CLIP: measured on held-out world images.

The built-in CLIP is trained on worlds drawn with seeds ``>= TRAINING_SEED_START``
(10000); this benchmark draws its worlds with seeds below that (default 1 and 2, 1000
images each), so no image it scores was seen in training. It reports, per world and
pooled, with chance beside each figure:

- zero-shot shape and colour of the largest object (prompt ensembling: "a {colour}
  {shape}" averaged over the other attribute's values;
  :func:`braindecode_kit.embed.zero_shot_attributes`);
- image -> caption top-1 retrieval among 300 candidates, 30 draws (each image's first
  caption; :func:`braindecode_kit.embed.caption_retrieval`).

Run ``python benchmarks/builtin_clip.py`` (``--json`` for machine-readable output,
``--help`` for options); from Python: ``from builtin_clip import run; out = run(n=1000)``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any


def run(n: int = 1000, seeds: Sequence[int] = (1, 2), *, pretrained: str | None = None,
        n_candidates: int = 300, n_draws: int = 30, threads: int | None = 1) -> dict[str, Any]:
    """Measure the built-in CLIP on held-out worlds.

    Parameters
    ----------
    n : int
        Images per world (>= 1000 for the figures the issue asks for).
    seeds : sequence of int
        World seeds; each must be below the training seeds (``TRAINING_SEED_START``).
    pretrained : str | None
        A folder with built-in CLIP files (default: the shipped ``data/``).
    n_candidates, n_draws : int
        Caption retrieval: candidates per draw (capped at ``n``) and number of draws.
    threads : int | None
        torch threads (None: leave as is).

    Returns
    -------
    dict
        ``identity``, ``rows`` (one per world and a pooled ``"all"`` row: ``seed``, ``n``,
        ``zero_shot_shape``, ``zero_shot_shape_chance``, ``zero_shot_colour``,
        ``zero_shot_colour_chance``, ``caption_top1``, ``caption_ci``, ``caption_chance``),
        ``seconds``.
    """
    import numpy as np

    from braindecode_kit.embed import Embedder, caption_retrieval, zero_shot_attributes
    from braindecode_kit.evaluate import draw_ci
    from braindecode_kit.simulate import TRAINING_SEED_START, make_world

    bad = [s for s in seeds if not 0 <= int(s) < TRAINING_SEED_START]
    if bad:
        raise ValueError(f"'seeds' must be held-out world seeds in [0, {TRAINING_SEED_START}) "
                         f"(training worlds use seeds >= {TRAINING_SEED_START}), got {bad}.")
    if threads:
        import torch

        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    emb = Embedder("builtin", pretrained=pretrained)
    rows = []
    pooled: dict[str, list] = {"shape": [], "colour": [], "draws": []}
    for seed in seeds:
        world = make_world(n, seed=int(seed))
        feats = emb.encode_images(world)
        shape = zero_shot_attributes(emb, world, "shape", image_features=feats)
        colour = zero_shot_attributes(emb, world, "colour", image_features=feats)
        cap = caption_retrieval(emb, world, n_candidates=min(n_candidates, n), n_draws=n_draws,
                                seed=int(seed), image_features=feats)
        truth_s = world.attributes["shape"].to_numpy()
        truth_c = world.attributes["colour"].to_numpy()
        pooled["shape"] += list(np.array(shape["predictions"]) == truth_s)
        pooled["colour"] += list(np.array(colour["predictions"]) == truth_c)
        pooled["draws"] += list(cap["draws"])
        rows.append({
            "seed": int(seed), "n": n,
            "zero_shot_shape": shape["accuracy"], "zero_shot_shape_chance": shape["chance"],
            "zero_shot_colour": colour["accuracy"], "zero_shot_colour_chance": colour["chance"],
            "caption_top1": cap["top1"], "caption_ci": list(cap["ci"]),
            "caption_chance": cap["chance"], "n_candidates": cap["n_candidates"],
            "n_draws": cap["n_draws"],
        })
    draws = np.asarray(pooled["draws"], dtype=float)
    rows.append({
        "seed": "all", "n": n * len(seeds),
        "zero_shot_shape": float(np.mean(pooled["shape"])),
        "zero_shot_shape_chance": rows[0]["zero_shot_shape_chance"],
        "zero_shot_colour": float(np.mean(pooled["colour"])),
        "zero_shot_colour_chance": rows[0]["zero_shot_colour_chance"],
        "caption_top1": float(draws.mean()),
        "caption_ci": draw_ci(draws, rows[0]["n_candidates"]),
        "caption_chance": rows[0]["caption_chance"], "n_candidates": rows[0]["n_candidates"],
        "n_draws": len(draws),
    })
    return {"identity": emb.identity, "rows": rows,
            "seconds": round(time.perf_counter() - t0, 1)}


def _table(result: dict[str, Any]) -> str:
    head = (f"{'world seed':>10} {'n':>6} {'shape':>7} {'chance':>7} {'colour':>7} {'chance':>7} "
            f"{'caption top-1':>14} {'95% CI':>15} {'chance':>7}")
    lines = [f"built-in CLIP {result['identity']} on held-out worlds "
             f"({result['seconds']} s)", head, "-" * len(head)]
    for r in result["rows"]:
        ci = f"[{r['caption_ci'][0]:.3f}, {r['caption_ci'][1]:.3f}]"
        lines.append(
            f"{r['seed']!s:>10} {r['n']:>6} {r['zero_shot_shape']:>7.3f} "
            f"{r['zero_shot_shape_chance']:>7.3f} {r['zero_shot_colour']:>7.3f} "
            f"{r['zero_shot_colour_chance']:>7.3f} {r['caption_top1']:>14.3f} {ci:>15} "
            f"{r['caption_chance']:>7.4f}")
    first = result["rows"][0]
    lines.append(f"caption top-1: image -> its first caption among {first['n_candidates']} "
                 f"candidates, {first['n_draws']} draws per world; chance = 1 / candidates")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1000, help="images per world (default 1000)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2],
                   help="held-out world seeds (< 10000; default 1 2)")
    p.add_argument("--pretrained", default=None,
                   help="folder with built-in CLIP files (default: the shipped data/)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = p.parse_args(argv)
    result = run(n=args.n, seeds=args.seeds, pretrained=args.pretrained, threads=args.threads)
    print(json.dumps(result, indent=2) if args.json else _table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
