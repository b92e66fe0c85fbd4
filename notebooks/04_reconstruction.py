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
# # Reconstruction: images from (decoded) CLIP embeddings
#
# A brain decoder predicts a CLIP embedding of the seen image; a diffusion model conditioned
# on image embeddings turns it back into an image. This notebook, offline and on a CPU:
#
# 1. reconstructs world images from their true built-in CLIP embeddings (the ceiling),
# 2. scores them with the field's image metrics (MindEye2's protocol),
# 3. reconstructs from imperfect embeddings (noise added, standing in for decoded ones),
# 4. uses a blurry low-level image as the img2img starting point (`strength`),
# 5. runs a resumable batch of reconstructions (what `braindecode-kit reconstruct` and the
#    pipeline's `reconstruct` stage do, sharded with `accelerate launch`).
#
# The demo pipeline (`braindecode-kit demo`) does this from decoded fMRI, MEG and sEEG
# embeddings, next to the ridge route (Brain-Diffuser) and the ceiling.

# %%
import tempfile

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from braindecode_kit.embed import Embedder, blurry_images
from braindecode_kit.embed.zeroshot import zero_shot_attributes
from braindecode_kit.evaluate.image_metrics import image_metrics
from braindecode_kit.reconstruct import Reconstructor
from braindecode_kit.reconstruct.batch import ImageJob, load_batch_images, reconstruct_batch
from braindecode_kit.reconstruct.scores import template_shapes
from braindecode_kit.simulate import make_world

world = make_world(48, seed=2)  # an evaluation seed: the built-in models never saw it
seen = world.to_array()
clip = Embedder()  # the built-in CLIP
X = clip.encode_images(seen)


def show(rows, titles):
    """A grid: one column per image set, one row per image."""
    n = len(rows[0])
    fig, axes = plt.subplots(n, len(rows), figsize=(1.4 * len(rows), 1.4 * n))
    for j, (col, title) in enumerate(zip(rows, titles)):
        for i, im in enumerate(col):
            axes[i, j].imshow(np.asarray(im))
            axes[i, j].axis("off")
        axes[0, j].set_title(title, fontsize=8)
    plt.tight_layout()


# %% [markdown]
# ## 1. The built-in generator
# A diffusers `UNet2DConditionModel` trained on the built-in world, conditioned on the
# 128-d built-in CLIP image embedding (through the class-embedding projection and a few
# cross-attention tokens), with classifier-free guidance and a DDIM scheduler. Every image
# has its own seed, so an image does not depend on the batch it was made in.

# %%
rec = Reconstructor(num_inference_steps=10)
rec

# %%
images = rec.generate(X)
show([list(seen[:6]), images[:6]], ["seen", "from true embedding"])

# %% [markdown]
# ## 2. Image metrics
# `image_metrics` returns one entry per metric of MindEye2's table. PixCorr, SSIM and the
# built-in CLIP 2-way identification are always there; FID (on the built-in CLIP's 128-d
# features) needs more than 128 images; AlexNet, Inception, CLIP ViT-L/14, EfficientNet and
# SwAV need their weights as local files (nothing is downloaded). Each missing one says why.

# %%
m = image_metrics(seen, images)
pd.DataFrame({k: {"value": v.get("value"), "why not": v.get("unavailable", "")}
              for k, v in m.items()}).T

# %% [markdown]
# The built-in CLIP also reads the largest object's shape and colour zero-shot, in the seen
# image and in its reconstruction:

# %%
f_rec = clip.encode_images(images)
agreement = {}
for attr in ("shape", "colour"):
    a = zero_shot_attributes(clip, world, attr, image_features=X)["predictions"]
    b = zero_shot_attributes(clip, world, attr, image_features=f_rec)["predictions"]
    agreement[attr] = float(np.mean(np.asarray(a) == np.asarray(b)))
agreement

# %% [markdown]
# A reading by the same CLIP that the embeddings come from can be pleased by patterns only
# CLIP sees (a generator trained with a CLIP loss draws streaks that CLIP reads as a
# diamond). `template_shapes` reads the shape without CLIP: the silhouette, drawn at the
# object's true place, size and angle, that best overlaps what differs from the image's
# own background there ("none" when nothing is drawn). It reads every seen image right; on
# reconstructions it says whether the right shape was drawn. Both readings are compared
# with the world's truth here:

# %%
truth = world.attributes["shape"].to_numpy()
clip_read = np.asarray(zero_shot_attributes(clip, world, "shape", image_features=f_rec)
                       ["predictions"])
{"template reading of the seen images": float(np.mean(template_shapes(world, seen) == truth)),
 "template reading of the reconstructions": float(
     np.mean(template_shapes(world, images) == truth)),
 "CLIP reading of the reconstructions": float(np.mean(clip_read == truth))}

# %% [markdown]
# ## 3. Imperfect embeddings
# Decoded embeddings are noisy: `normalise(e + s z / sqrt(d))` with growing `s` lowers the
# cosine to the true embedding, and the reconstructions drift.

# %%
rng = np.random.default_rng(0)
rows = []
for s in (0.0, 0.5, 1.0):
    Xn = X + s * rng.standard_normal(X.shape).astype(np.float32) / np.sqrt(X.shape[1])
    cos = float(np.mean(np.sum(X * Xn / np.linalg.norm(Xn, axis=1, keepdims=True), 1)))
    out = rec.generate(Xn)
    rows.append({"noise": s, "cosine to truth": round(cos, 3),
                 "2-way": round(image_metrics(seen, out)["builtin_clip_2way"]["value"], 3)})
pd.DataFrame(rows)

# %% [markdown]
# ## 4. The low-level path
# The decoder's low-level head predicts a blurry 16 x 16 image of what was seen; it is the
# starting point of the reverse process (img2img): `strength=1` ignores it, smaller values
# keep more of it. Here the blurry images are the seen images downsampled (what the head is
# trained to predict).

# %%
blurry = blurry_images(seen, 16)  # (n, 3, 16, 16) in [0, 1]
from PIL import Image  # noqa: E402

init = np.stack([np.asarray(Image.fromarray((b.transpose(1, 2, 0) * 255).astype(np.uint8))
                            .resize((64, 64), Image.BICUBIC)) for b in blurry])
low = rec.generate(X, init_images=init, strength=0.6)
show([list(seen[:6]), list(init[:6]), low[:6]], ["seen", "blurry init", "strength 0.6"])
{"pixcorr without init": round(m["pixcorr"]["value"], 3),
 "pixcorr with init": round(image_metrics(seen, low)["pixcorr"]["value"], 3)}

# %% [markdown]
# ## 5. A resumable batch run
# `reconstruct_batch` writes one PNG per job (atomically) and a manifest; a second call, or
# a call after a crash, generates only what is missing. Under `accelerate launch` the
# batches are spread over the processes (`PartialState().split_between_processes`).

# %%
out = tempfile.mkdtemp()
jobs = [ImageJob(f"world/{sid}", x) for sid, x in zip(world.ids[:16], X[:16])]
first = reconstruct_batch(rec, jobs, f"{out}/batch", batch_size=8)
again = reconstruct_batch(rec, jobs, f"{out}/batch", batch_size=8)
{"first call": first["n_generated_this_call"], "second call": again["n_generated_this_call"],
 "images": len(load_batch_images(f"{out}/batch"))}
