# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
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
# 5. score 100-way retrieval next to chance and the simulator's oracle, and look at it,
# 6. train a shared encoder on two subjects and adapt a third subject from a quarter of
#    its data, in closed form.
#
# The demo pipeline (`braindecode-kit demo`) does the same at full size.

# %%
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

import braindecode_kit as bdk
from braindecode_kit.embed import Embedder, embed_stimuli
from braindecode_kit.evaluate import Report, retrieval_accuracy, row_cosine
from braindecode_kit.io import load_fmri_bids
from braindecode_kit.simulate import make_world, simulate_fmri

workdir = Path(tempfile.mkdtemp(prefix="bdk-quickstart-"))

# %% [markdown]
# ## 1. Stimuli and a simulated experiment
# `make_world` draws procedural scenes with captions and their latent attributes. The
# same seed gives the same bytes.

# %%
world = make_world(1600, seed=0)
world

# %% [markdown]
# `simulate_fmri` writes a BIDS dataset (4-D BOLD NIfTI + events.tsv per run) from a known
# encoding model: early-visual voxels with retinotopic receptive fields, higher-visual
# voxels tuned to object attributes, NSD-like noise. Three subjects each see their own
# training images once and the same 100 shared test images 3 times.

# %%
sim = simulate_fmri(world, workdir / "bids", n_subjects=3, seed=0, n_shared_test=100,
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
# ### What the decoder chose, on validation stimuli only
# `ContrastiveDecoder` holds out a share of the training stimuli. Half of them stop the
# training; on the other half it weighs its network against a ridge fitted on the same
# training stimuli (`unit(ridge) + w unit(network)`) and keeps the weight closest to the
# ridge that is within one standard error of the best (`anchor_rule="one_se"`): the
# network replaces the linear starting point only where validation supports it.
# `search=` lets that same inner validation choose settings, as `RidgeCV` chooses alpha
# (the estimator's own values are tried first; `search_budget_s` caps the time).

# %%
a = decoder.anchor_["sub-0"]
print(f"anchor weight w = {a['weight']} (rule {a['rule']}, {a['n_val_stimuli']} stimuli)")
print({w: round(v, 3) for w, v in a["scores"].items()})

# %% [markdown]
# The ridge it anchors on is one chosen for retrieval: `RidgeDecoder(scoring="rank",
# whiten=RETRIEVAL_WHITEN)` picks alpha and a whitening of its predictions by the
# cross-validated rank of each training stimulus among the others (grouped by stimulus),
# not by squared error. Its whitened predictions are retrieval queries, not estimates of
# the embedding. Here it is next to the baseline ridge on the same test images:

# %%
from braindecode_kit.baselines import RETRIEVAL_WHITEN

retrieval_ridge = bdk.RidgeDecoder(scoring="rank", whiten=RETRIEVAL_WHITEN).fit(
    np.asarray(train.data), Y_train, groups=train.stimulus_ids)
print(f"chosen: alpha {retrieval_ridge.alpha_:g}, whitening {retrieval_ridge.whiten_}; "
      f"the anchor's: {a['ridge']}")
r = retrieval_accuracy(retrieval_ridge.predict(np.asarray(test.data)), Y_test, n_candidates=n)
print(f"retrieval ridge top-1 {r['top1']:.3f}  (baseline ridge {scores['ridge']['top1']:.3f})")
searched = bdk.ContrastiveDecoder(epochs=20, seed=0, search={"d_shared": [64, 256]},
                                  search_budget_s=120).fit(np.asarray(train.data), Y_train)
for r in searched.search_results_:
    print(f"{r['params']}: validation percentile rank {r['score']:.3f} ({r['seconds']:.0f} s)")
print("chose", searched.best_params_)

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

# %% [markdown]
# ## 7. A shared encoder, and a new subject from little data
# `BrainDecoder` routes each subject through its own adapter into a shared space, then one
# shared encoder. Train it on subjects 01 and 02; `fit_stimulus_map` then learns which
# shared-space representation their brains give an image (from its image and caption
# embeddings) and keeps it in the model. A new subject's adapter is then a ridge
# regression into that space (`adapt_subject`), seconds on a CPU. The decoder also gets a
# *generation head*: a regression output (trained by cosine onto the CLIP embeddings, next
# to the contrastive head) for captions and reconstructions.

# %%
from braindecode_kit.models import BrainDecoder, DecoderConfig  # noqa: E402
from braindecode_kit.train import (  # noqa: E402
    TrainConfig,
    adapt_subject,
    fit,
    fit_stimulus_map,
    learning_curve,
)

subjects = {s: load_fmri_bids(workdir / "bids", s, method="lsa") for s in ("01", "02", "03")}
trains = [subjects[s].select(split="train") for s in ("01", "02")]
cfg = DecoderConfig(subjects={t.subject: t.n_features for t in trains},
                    embed_dim=Y_train.shape[1], d_shared=64,
                    generation_head=True, generation_detach=False)
shared = fit(BrainDecoder(cfg, seed=0), trains, targets,
             TrainConfig(epochs=20, seed=0, generation_weight=4.0)).decoder
fit_stimulus_map(shared, trains, targets)
shared

# %% [markdown]
# The contrastive head ranks the test images; the generation head's outputs lie closer to
# the true embeddings (mean cosine over subject 01's test images), which is what a
# captioner or an image generator is fed:

# %%
test01 = subjects["01"].select(split="test").average_repetitions()
truth01 = targets.loc(test01.stimulus_ids).image
pd.Series({head: float(np.mean(row_cosine(shared.predict(test01, head=head), truth01)))
           for head in ("image", "generation")}, name="cosine to the true embedding")

# %% [markdown]
# Subject 03 is new. Its accuracy as a function of how many of its training images it
# brings (nested random subsets; 100-way, test repetitions averaged):

# %%
new_train, new_test = subjects["03"].select(split="train"), subjects["03"].select(split="test")
curve = learning_curve(shared, new_train, targets, fractions=(0.25, 0.5, 1.0),
                       testset=new_test, n_candidates=n, seed=0)
new_avg = new_test.average_repetitions()
ridge_new = bdk.RidgeDecoder().fit(np.asarray(new_train.data),
                                   targets.loc(new_train.stimulus_ids).image)
ridge_top1 = retrieval_accuracy(ridge_new.predict(np.asarray(new_avg.data)),
                                targets.loc(new_avg.stimulus_ids).image, n_candidates=n)["top1"]
print(f"ridge on all of subject 03's training trials: top-1 {ridge_top1:.3f}")
curve[["fraction", "n_trials", "top1", "ci_low", "ci_high"]]

# %%
adapted = adapt_subject(shared, new_train, targets)  # the model now knows subject 03
assert "03" in adapted.subjects and curve["top1"].iloc[-1] > 5 / n
