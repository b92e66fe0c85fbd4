"""The built-in captioner's ceiling: captions from the TRUE built-in CLIP embeddings of
world images it never saw (an evaluation seed, < TRAINING_SEED_START), scored against the
world's reference captions.

    .venv/bin/python benchmarks/captioner.py [--n 1000] [--seed 1] [--beams 3]
        [--noise 0.0] [--write-card]

Reports how often the caption names the main object's shape and colour, BLEU-1/4,
ROUGE-L, CIDEr-D, METEOR (Java), CLIP-S/RefCLIP-S/text similarity with the built-in
CLIP, and the same from embeddings with noise (``normalise(e + s z / sqrt(d))``), the
captioner's robustness to imperfect (decoded) embeddings. ``--write-card`` stores the
figures under ``heldout`` in ``data/builtin_captioner_card.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from braindecode_kit.caption import Captioner, attribute_accuracy
from braindecode_kit.embed import Embedder
from braindecode_kit.simulate import make_world
from braindecode_kit.simulate.world import TRAINING_SEED_START


def measure(n: int, seed: int, beams: int, noise: float, meteor: bool) -> dict:
    assert seed < TRAINING_SEED_START, "an evaluation seed: the captioner never saw it"
    world = make_world(n, seed=seed)
    emb = Embedder("builtin")
    X = emb.encode_images(world)
    if noise:
        rng = np.random.default_rng(seed)
        X = X + noise * rng.standard_normal(X.shape).astype(np.float32) / np.sqrt(X.shape[1])
    cap = Captioner(num_beams=beams)
    t = time.perf_counter()
    captions = cap.generate(X)
    secs = time.perf_counter() - t
    refs = [world.captions(s) for s in world.ids]
    metrics = ["bleu1", "bleu4", "rouge_l", "cider_d", "clip_s", "refclip_s", "text_sim"]
    if meteor:
        metrics.append("meteor")
    m = cap.score(captions, refs, image_embeddings=emb.encode_images(world), embedder=emb,
                  metrics=metrics)
    acc = attribute_accuracy(captions, world.attributes)
    return {"n_images": n, "world_seed": seed, "num_beams": beams, "noise": noise,
            "shape_named": acc["shape"], "colour_named": acc["colour"],
            **{k: v for k, v in m.items() if k in metrics or k == "tokenizer"},
            "captions_per_second": round(n / secs, 1), "examples": captions[:5]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--beams", type=int, default=3)
    p.add_argument("--noise", type=float, default=0.8)
    p.add_argument("--no-meteor", action="store_true")
    p.add_argument("--write-card", action="store_true")
    a = p.parse_args()
    out = {"true_embeddings": measure(a.n, a.seed, a.beams, 0.0, not a.no_meteor)}
    if a.noise:
        out[f"noisy_embeddings_{a.noise:g}"] = measure(a.n, a.seed, a.beams, a.noise, False)
    print(json.dumps(out, indent=2))
    if a.write_card:
        path = Path(__file__).resolve().parents[1] / "data" / "builtin_captioner_card.json"
        card = json.loads(path.read_text())
        card["heldout"] = {**out, "command": "python benchmarks/captioner.py --write-card"}
        path.write_text(json.dumps(card, indent=2) + "\n")


if __name__ == "__main__":
    main()
