# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Quickstart: decode what a (simulated) subject saw
#
# This notebook runs the whole braindecode_kit flow on the built-in world, offline, in a
# couple of minutes on a laptop CPU:
#
# 1. draw stimuli and simulate an fMRI experiment written as a real BIDS dataset,
# 2. load single-trial betas from the BOLD runs into a `TrialSet`,
# 3. embed the stimuli with the built-in CLIP,
# 4. train the contrastive decoder and the ridge baseline,
# 5. score 100-way retrieval next to chance and the simulator's oracle, and look at it.
#
# The demo pipeline (`braindecode-kit demo`) does the same at full size, with several
# subjects, a shared encoder and a new subject adapted from 10% of its data.

# %%
import tempfile
from pathlib import Path

import numpy as np

import braindecode_kit as bdk
from braindecode_kit.embed import Embedder, embed_stimuli
from braindecode_kit.evaluate import Report, retrieval_accuracy
from braindecode_kit.io import load_fmri_bids
from braindecode_kit.simulate import make_world, simulate_fmri

workdir = Path(tempfile.mkdtemp(prefix="bdk-quickstart-"))

# %% [markdown]
# ## 1. Stimuli and a simulated experiment
# `make_world` draws procedural scenes with captions and their latent attributes. The
# same seed gives the same bytes.

# %%
world = make_world(1100, seed=0)
world

# %% [markdown]
# `simulate_fmri` writes a BIDS dataset (4-D BOLD NIfTI + events.tsv per run) from a known
# encoding model: early-visual voxels with retinotopic receptive fields, higher-visual
# voxels tuned to object attributes, NSD-like noise. 100 shared test images are shown 3
# times; the rest are training images.

# %%
sim = simulate_fmri(world, workdir / "bids", n_subjects=1, seed=0, n_shared_test=100,
                    n_voxels=800, compress=False, nsd_layout=False)
sim

# %% [markdown]
# ## 2. Single-trial betas
# One GLM per run (nilearn's design matrices; LSA here), z-scored per session with
# statistics from training trials only.

# %%
trials = load_fmri_bids(workdir / "bids", "01", method="lsa")
trials

# %%
train = trials.select(split="train")
test = trials.select(split="test").average_repetitions()  # as NSD's shared images
print(train.n_trials, "training trials;", test.n_trials, "test images (averaged over repeats)")

# %% [markdown]
# ## 3. CLIP targets
# The built-in CLIP (open_clip's `CLIP` class, trained on this world) embeds every image;
# embeddings are cached on disk, so a second call embeds nothing.

# %%
targets = embed_stimuli(world, Embedder("builtin"), cache_dir=workdir / "cache")
Y_train = targets.loc(train.stimulus_ids).image
Y_test = targets.loc(test.stimulus_ids).image
Y_train.shape

# %% [markdown]
# ## 4. Decoders
# `ContrastiveDecoder` is the package's model (a subject adapter + residual MLP encoder
# trained with a contrastive loss) behind a scikit-learn interface; `RidgeDecoder` is the
# field's reference baseline.

# %%
decoder = bdk.ContrastiveDecoder(epochs=20, seed=0).fit(np.asarray(train.data), Y_train)
ridge = bdk.RidgeDecoder().fit(np.asarray(train.data), Y_train)

# %% [markdown]
# ## 5. Retrieval, next to chance and the oracle
# MindEye2's protocol: for each test brain pattern, rank 100 candidate images by cosine
# similarity of the predicted embedding; 30 random candidate draws, mean and 95% CI. The
# oracle knows the true encoding model and noise (an upper bound for any decoder).

# %%
n = 100
scores = {
    "contrastive decoder": retrieval_accuracy(decoder.predict(np.asarray(test.data)), Y_test,
                                              n_candidates=n),
    "ridge": retrieval_accuracy(ridge.predict(np.asarray(test.data)), Y_test, n_candidates=n),
    "oracle": sim.oracle_retrieval("01", n_candidates=n),
}
for name, r in scores.items():
    print(f"{name:20s} top-1 {r['top1']:.3f}  95% CI [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]")
print(f"{'chance':20s} top-1 {1 / n:.3f}")

# %% [markdown]
# ## 6. Look at it
# For a few test images: the seen image, then the decoder's five best-ranked candidates
# (green = the seen image).

# %%
pred = decoder.predict(np.asarray(test.data))
sims = (pred / np.linalg.norm(pred, axis=1, keepdims=True)) @ Y_test.T
ids = list(test.stimulus_ids)
rows = []
for i in range(4):
    row = [{"image": world.load_image(ids[i]), "label": "seen", "status": "ref"}]
    for rank, j in enumerate(np.argsort(-sims[i])[:5]):
        row.append({"image": world.load_image(ids[j]), "label": f"#{rank + 1}",
                    "status": "ok" if j == i else "bad"})
    rows.append(row)
report = Report("Quickstart retrievals").add_image_grid(rows, scale=2)
report

# %%
assert scores["contrastive decoder"]["top1"] > 5 / n, "decoding should be far above chance"
