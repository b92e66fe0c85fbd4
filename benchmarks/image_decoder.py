"""The built-in image generator: its ceiling and its CPU speed.

    .venv/bin/python benchmarks/image_decoder.py [--n 500] [--seed 1] [--steps 10 20]
        [--guidance 1 2 3] [--noise 0.0] [--model DIR] [--write-card] [--validation]

``--validation`` sweeps on the generator's validation world (seed TRAINING_SEED_START +
9999: reserved for the built-in models, never a training image of the generator, never a
test image of a run): that is where the shipped defaults (steps, guidance) are chosen.

Ceiling: reconstructions from the TRUE built-in CLIP embeddings of ``--n`` world images the
generator never saw (an evaluation seed, < TRAINING_SEED_START), scored with the built-in
CLIP's 2-way identification, the zero-shot shape and colour of the largest object (read in
the reconstruction and in the seen image: agreement; and against the truth), PixCorr and
SSIM (MindEye2's protocol), next to chance (each reconstruction against another seen
image) — for every (steps, guidance) asked. ``--noise s`` perturbs the embeddings as
decoded ones are (``normalise(e + s z / sqrt(d))``).

Speed: images per second of ``Reconstructor("builtin")`` on this CPU at each setting (batch
64, torch threads as set by OMP_NUM_THREADS / the machine), timed on the same run.
``--write-card`` stores the figures under ``benchmark`` in the generator's card.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from braindecode_kit.embed import Embedder
from braindecode_kit.reconstruct import Reconstructor
from braindecode_kit.reconstruct.scores import seen_readings, summary_scores
from braindecode_kit.simulate import make_world
from braindecode_kit.simulate.world import TRAINING_SEED_START


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, nargs="+", default=[10, 20])
    ap.add_argument("--guidance", type=float, nargs="+", default=[1.0, 2.0, 3.0])
    ap.add_argument("--noise", type=float, default=0.0)
    ap.add_argument("--model", default=None, help="a generator folder (default: the shipped)")
    ap.add_argument("--write-card", action="store_true")
    ap.add_argument("--validation", action="store_true",
                    help="the validation world (choose settings here, not on test images)")
    args = ap.parse_args()
    if args.validation:
        args.seed = TRAINING_SEED_START + 9999
    else:
        assert args.seed < TRAINING_SEED_START, "an evaluation seed: the generator never saw it"

    world = make_world(args.n, seed=args.seed)
    seen = world.to_array()
    emb = Embedder("builtin")
    feats = emb.encode_images(seen)
    X = feats
    if args.noise:
        rng = np.random.default_rng(args.seed)
        X = X + args.noise * rng.standard_normal(X.shape).astype(np.float32) / np.sqrt(X.shape[1])
    readings = seen_readings(emb, world, feats)
    rows = []
    for steps in args.steps:
        for g in args.guidance:
            rec = Reconstructor("builtin", model=args.model, num_inference_steps=steps,
                                guidance_scale=g, seed=args.seed)
            t = time.perf_counter()
            images = rec.generate(X)
            dt = time.perf_counter() - t
            row = {"steps": steps, "guidance": g, "images_per_second": round(len(X) / dt, 2),
                   **{k: round(v, 4) for k, v in summary_scores(emb, world, seen, images, feats,
                                                                readings).items()}}
            shifted = images[1:] + images[:1]
            chance = summary_scores(emb, world, seen, shifted, feats, readings)
            row.update({f"chance_{k}": round(v, 4) for k, v in chance.items()
                        if k in ("shape_agreement", "colour_agreement", "shape_template",
                                 "pixcorr", "ssim")})
            rows.append(row)
            print(json.dumps(row))
    result = {"n": args.n, "world_seed": args.seed, "noise": args.noise,
              "seen_shape_accuracy": float(np.mean(readings["shape"]
                                                   == world.attributes["shape"].to_numpy())),
              "seen_colour_accuracy": float(np.mean(readings["colour"]
                                                    == world.attributes["colour"].to_numpy())),
              "rows": rows}
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}))
    if args.write_card:
        from braindecode_kit._resources import data_dir
        from braindecode_kit._utils import write_json_atomic

        path = Path(args.model or data_dir()) / "builtin_image_decoder_card.json"
        card = json.loads(path.read_text())
        card.setdefault("benchmark", {})[f"seed{args.seed}_noise{args.noise:g}"] = result
        write_json_atomic(path, card)
        print(f"written to {path}")


if __name__ == "__main__":
    main()
