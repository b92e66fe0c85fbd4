"""The built-in captioner's ceiling: captions from the TRUE built-in CLIP embeddings of
world images it never saw (an evaluation seed, < TRAINING_SEED_START), scored against the
world's reference captions.

    .venv/bin/python benchmarks/captioner.py [--n 1000] [--seed 1] [--beams 3]
        [--noise 0.0] [--write-card]
    .venv/bin/python benchmarks/captioner.py --validation [--n 600] [--beams 1 3 5 8]
        [--noise 0 0.8 1.2 1.6]

Reports how often the caption names the main object's shape and colour, BLEU-1/4,
ROUGE-L, CIDEr-D, METEOR (Java), CLIP-S/RefCLIP-S/text similarity with the built-in
CLIP, and the same from embeddings with noise (``normalise(e + s z / sqrt(d))``), the
captioner's robustness to imperfect (decoded) embeddings. ``--write-card`` stores the
figures under ``heldout`` in ``data/builtin_captioner_card.json``.

``--validation`` sweeps beam widths x embedding noise on the captioner's validation world
(seed ``TRAINING_SEED_START + 9999``, never trained on, never a pipeline's test image): the
place to choose decoding settings. Noise 1.2 puts the embeddings at cosine ~0.64 to the
truth, where decoded fMRI embeddings sit (0.60-0.65 on the demo's seeds).
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


def draw(n: int, seed: int) -> tuple:
    """``(world, embedder, true embeddings)`` of ``n`` world images of ``seed``."""
    world = make_world(n, seed=seed)
    emb = Embedder("builtin")
    return world, emb, emb.encode_images(world)


def measure(world, emb, truth: np.ndarray, seed: int, beams: int, noise: float,
            meteor: bool) -> dict:
    """Captions of ``truth`` (the world's true embeddings, noised by ``noise`` from
    ``seed``) scored against the world's references."""
    X = truth
    if noise:
        rng = np.random.default_rng(seed)
        X = X + noise * rng.standard_normal(X.shape).astype(np.float32) / np.sqrt(X.shape[1])
    cosine = float(np.mean(np.sum(X * truth, 1) / np.linalg.norm(X, axis=1)))
    cap = Captioner(num_beams=beams)
    t = time.perf_counter()
    captions = cap.generate(X)
    secs = time.perf_counter() - t
    refs = [world.captions(s) for s in world.ids]
    metrics = ["bleu1", "bleu4", "rouge_l", "cider_d", "clip_s", "refclip_s", "text_sim"]
    if meteor:
        metrics.append("meteor")
    m = cap.score(captions, refs, image_embeddings=truth, embedder=emb, metrics=metrics)
    acc = attribute_accuracy(captions, world.attributes)
    return {"n_images": len(truth), "world_seed": seed, "num_beams": beams, "noise": noise,
            "cosine_to_truth": cosine,
            "shape_named": acc["shape"], "colour_named": acc["colour"],
            **{k: v for k, v in m.items() if k in metrics or k == "tokenizer"},
            "captions_per_second": round(len(truth) / secs, 1), "examples": captions[:5]}


def sweep(n: int, beams: list[int], noises: list[float]) -> list[dict]:
    """Beam widths x embedding noise on the validation world (where settings are chosen)."""
    seed = TRAINING_SEED_START + 9999
    print(f"validation world (seed {seed}), {n} images")
    world, emb, truth = draw(n, seed)
    rows = []
    for noise in noises:
        for b in beams:
            m = measure(world, emb, truth, seed, b, noise, False)
            rows.append({k: v for k, v in m.items() if k != "examples"})
            print(f"noise {noise:g} (cosine {m['cosine_to_truth']:.2f}) beams {b}: CIDEr-D "
                  f"{m['cider_d']:.3f} CLIP-S {m['clip_s']:.3f} BLEU-4 {m['bleu4']:.3f} "
                  f"shape {m['shape_named']:.3f} colour {m['colour_named']:.3f} "
                  f"({m['captions_per_second']} captions/s)", flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=None, help="images (default 1000; 600 with "
                   "--validation)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--beams", type=int, nargs="+", default=None,
                   help="beam width (default 3; --validation: a list, default 1 3 5 8)")
    p.add_argument("--noise", type=float, nargs="+", default=None,
                   help="embedding noise (default 0.8; --validation: a list, default "
                        "0 0.8 1.2 1.6)")
    p.add_argument("--no-meteor", action="store_true")
    p.add_argument("--write-card", action="store_true")
    p.add_argument("--validation", action="store_true",
                   help="sweep --beams x --noise on the validation world (choose settings here)")
    a = p.parse_args()
    if a.validation:
        sweep(a.n or 600, a.beams or [1, 3, 5, 8], a.noise or [0.0, 0.8, 1.2, 1.6])
        return
    for name, values in (("--beams", a.beams), ("--noise", a.noise)):
        if values is not None and len(values) > 1:
            p.error(f"{name} takes one value without --validation, got {values}")
    assert a.seed < TRAINING_SEED_START, "an evaluation seed: the captioner never saw it"
    beams = (a.beams or [3])[0]
    noise = (a.noise or [0.8])[0]
    world, emb, truth = draw(a.n or 1000, a.seed)
    out = {"true_embeddings": measure(world, emb, truth, a.seed, beams, 0.0, not a.no_meteor)}
    if noise:
        out[f"noisy_embeddings_{noise:g}"] = measure(world, emb, truth, a.seed, beams, noise, False)
    print(json.dumps(out, indent=2))
    if a.write_card:
        path = Path(__file__).resolve().parents[1] / "data" / "builtin_captioner_card.json"
        card = json.loads(path.read_text())
        card["heldout"] = {**out, "command": "python benchmarks/captioner.py --write-card"}
        path.write_text(json.dumps(card, indent=2) + "\n")


if __name__ == "__main__":
    main()
