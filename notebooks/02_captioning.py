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
# # Captioning: text from (decoded) CLIP embeddings
#
# A brain decoder predicts a CLIP embedding of the seen image; a captioner turns it into
# words. This notebook, offline and in well under a minute:
#
# 1. captions world images from their true built-in CLIP embeddings (the ceiling),
# 2. scores captions against the references (BLEU, ROUGE-L, CIDEr-D, CLIP-S, ...),
# 3. captions imperfect embeddings (noise added, standing in for decoded ones),
# 4. compares the generative captioner with a caption bank,
# 5. captions what a group of voxels prefers (BrainSCUBA-style).
#
# The demo pipeline (`braindecode-kit demo`) does this from decoded fMRI embeddings.

# %%
import numpy as np
import pandas as pd

from braindecode_kit.caption import (
    Captioner,
    attribute_accuracy,
    fit_encoding_model,
    selectivity_captions,
)
from braindecode_kit.embed import Embedder
from braindecode_kit.simulate import make_world

world = make_world(300, seed=2)  # an evaluation seed: the built-in models never saw it
clip = Embedder()  # the built-in CLIP
X = clip.encode_images(world)
refs = [world.captions(s) for s in world.ids]

# %% [markdown]
# ## 1. The built-in captioner
# A ClipCap prefix LM: an MLP maps the 128-d embedding into 10 token embeddings of a tiny
# GPT-2, which writes the caption (beam search, 3 beams). It was trained on world seeds
# reserved for the built-in models, with noise added to the embeddings.

# %%
captioner = Captioner()
captioner

# %%
captions = captioner.generate(X)
pd.DataFrame({"reference": [r[0] for r in refs[:6]], "caption": captions[:6]})

# %% [markdown]
# ## 2. Caption metrics
# `Captioner.score` runs `caption_metrics` with the built-in CLIP for CLIP-S, RefCLIP-S
# and text similarity. Metrics that cannot run here say why (SPICE needs Stanford
# CoreNLP). METEOR runs under Java when it is installed; it is left out here for speed.

# %%
metrics = ["bleu1", "bleu4", "rouge_l", "cider_d", "spice", "clip_s", "refclip_s", "text_sim"]
ceiling = captioner.score(captions, refs, image_embeddings=X, embedder=clip, metrics=metrics)
{**attribute_accuracy(captions, world.attributes), **ceiling}

# %% [markdown]
# ## 3. Imperfect embeddings
# Decoded embeddings are noisy. Here noise of growing size is added
# (`normalise(e + s z / sqrt(d))`), and we count how often the caption still names the
# largest object's shape and colour.

# %%
rng = np.random.default_rng(0)
rows = []
for s in (0.0, 0.8, 1.5, 3.0):
    noisy = X + s * rng.standard_normal(X.shape).astype(np.float32) / np.sqrt(X.shape[1])
    cos = np.mean(np.sum(X * noisy, 1) / np.linalg.norm(noisy, axis=1))
    acc = attribute_accuracy(captioner.generate(noisy, num_beams=1), world.attributes)
    rows.append({"noise": s, "cosine to the true embedding": round(float(cos), 2), **acc})
pd.DataFrame(rows)

# %% [markdown]
# ## 4. A caption bank
# The nearest caption of a bank (here: the captions of other world images) by CLIP text
# embedding; it writes nothing new.

# %%
bank_world = make_world(500, seed=3)
bank = Captioner("bank", bank=[c for s in bank_world.ids for c in bank_world.captions(s)],
                 embedder=clip)
bank_captions = bank.generate(X)
pd.DataFrame([
    {"captioner": "prefix LM", **attribute_accuracy(captions, world.attributes)},
    {"captioner": "caption bank", **attribute_accuracy(bank_captions, world.attributes)},
])

# %% [markdown]
# ## 5. What do these voxels prefer?
# Toy voxels: each group of ten responds to one shape (plus noise). An encoding model
# (ridge from CLIP image embeddings to responses) is fitted, each group's weight is
# projected onto the images' embeddings (softmax, T = 1/150) and captioned. The demo runs
# this on the simulator's voxels and scores it against their true tuning.

# %%
shapes = ["circle", "star", "cross"]
resp = np.concatenate([(world.attributes["shape"].to_numpy()[:, None] == s)
                       + 0.3 * rng.standard_normal((len(X), 10)) for s in shapes], axis=1)
enc = fit_encoding_model(X, resp)
selectivity_captions(enc["weights"], X, Captioner(num_beams=1),
                     groups={f"voxels tuned to {s}": range(10 * k, 10 * k + 10)
                             for k, s in enumerate(shapes)})
