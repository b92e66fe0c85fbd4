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
# # MEG and sEEG: sensors instead of voxels
#
# The same decoder family reads MEG and sEEG epochs `(n_trials, n_channels, n_times)`:
#
# 1. simulate two MEG subjects on the real CTF-275 geometry and cut their epochs into
#    `TrialSet`s (the MEG brain module's preprocessing: filter, resample, baseline,
#    robust scaling, clamp);
# 2. train a decoder whose adapters are a **spatial attention** over the sensor layout
#    (shared by all subjects) plus a per-subject layer, and whose encoder is a dilated
#    temporal convolution;
# 3. adapt a new subject through the frozen shared model;
# 4. do the same for sEEG patients, whose contacts differ in number and place.
#
# Sizes are tiny (a minute on a laptop CPU), so the numbers are only a smoke signal: the
# demo (`braindecode-kit demo`) and `benchmarks/meg_peer.py` measure at a larger size.

# %%
import tempfile
from pathlib import Path

import numpy as np

from braindecode_kit.embed import Embedder, embed_stimuli
from braindecode_kit.evaluate import retrieval_accuracy
from braindecode_kit.io import load_meg, load_seeg
from braindecode_kit.models import BrainDecoder, DecoderConfig, SubjectSpec
from braindecode_kit.simulate import make_world, simulate_meg, simulate_seeg
from braindecode_kit.train import TrainConfig, adapt_subject, fit

work = Path(tempfile.mkdtemp())
world = make_world(200, seed=0, size=32)
targets = embed_stimuli(world, Embedder("builtin"), text=False)

# %% [markdown]
# ## MEG: simulate, then epoch

# %%
sim = simulate_meg(world, work / "meg", n_subjects=2, n_train=100, n_test=20,
                   n_test_reps=3, sfreq=120.0, grid_mm=30.0, snr=3.0)
meg = {s: load_meg(work / "meg", subject=s, tmin=-0.1, tmax=0.5, h_freq=20.0, sfreq=50.0)
       for s in sim.subjects}
meg["01"]

# %% [markdown]
# A subject's spec keeps what the model needs to know about its sensors: names, the 2-D
# layout positions (`mne.find_layout`, read by the spatial attention) and the sampling rate.

# %%
spec = SubjectSpec.from_trialset(meg["01"])
spec.modality, spec.feature_shape, np.asarray(spec.positions).shape, spec.sfreq

# %% [markdown]
# ## A sensor decoder
#
# `spatial_attention` maps each subject's sensors to `d_shared` virtual channels by a
# softmax over their positions (the weights come from the positions, so subjects with
# different sensors share them), then a per-subject layer; `conv` is the dilated residual
# convolution with a learned affine pooling of time, then the CLIP head.

# %%
def test_set(ts):
    return ts.select(split="test").average_repetitions()


train = meg["01"].select(split="train")
config = DecoderConfig(subjects={"01": spec}, embed_dim=targets.image.shape[1],
                       adapter="spatial_attention", encoder="conv", d_shared=32,
                       conv_width=32, n_blocks=2, adapter_dropout=0.0)
decoder = BrainDecoder(config, seed=0)
tc = TrainConfig(epochs=8, batch_size=32, lr=1e-3, seed=0, val_n_candidates=20)
decoder = fit(decoder, [train], targets, tc).decoder
test = test_set(meg["01"])
r = retrieval_accuracy(decoder.predict(test), targets.loc(test.stimulus_ids).image, k=5,
                       n_candidates=len(test.stimulus_ids), n_draws=1)
print(f"{len(test.stimulus_ids)}-way top-5: {r['topk']:.2f} (chance "
      f"{5 / len(test.stimulus_ids):.2f})")
decoder

# %% [markdown]
# ### Early stopping on single trials
#
# Each training image is shown once, so a validation split of the training images holds
# single noisy trials, on which top-1 counts a handful of hits. `val_metric="rank"` makes
# early stopping and the best epoch follow the mean percentile rank of the true image among
# all validation images instead (every candidate counts; 0.5 is chance). The demo's MEG and
# sEEG decoders use it (docs/architecture.md has the measurements).

# %%
from braindecode_kit.splits import split_train_val

fit_part, val_part = split_train_val(meg["01"], seed=0)  # by image, test images excluded
res = fit(BrainDecoder(config, seed=0), [fit_part], targets,
          TrainConfig(epochs=8, batch_size=32, lr=1e-3, seed=0, val_metric="rank",
                      patience=3), valsets=[val_part])
assert res.best_val_score == res.history[res.best_epoch - 1]["val_rank"]
[(h["epoch"], round(h["val_top1"], 2), round(h["val_rank"], 3)) for h in res.history]

# %% [markdown]
# The attention is held once by the decoder (`decoder.shared`), and every subject's
# adapter refers to it; a new subject gets only its own subject layer, trained by
# gradient descent through the frozen model (sensor adapters have no closed form).

# %%
new = adapt_subject(decoder, meg["02"].select(split="train"), targets, config=tc)
print(sorted(k for k in new.state_dict() if k.startswith(("shared.", "adapters."))))
test2 = test_set(meg["02"])
pred = new.predict(test2)
pred.shape

# %% [markdown]
# ## sEEG: contacts that differ per patient
#
# `channel_linear` gives each patient a linear map of its contacts onto the virtual
# channels; `seeg_position` reads each contact's 3-D coordinates instead, so a new
# patient's contacts map by where they are before any training.

# %%
sims = simulate_seeg(world, work / "seeg", n_subjects=2, n_train=100, n_test=20,
                     n_test_reps=3, sfreq=320.0)
seeg = {s: load_seeg(work / "seeg", subject=s, tmin=-0.1, tmax=0.5, sfreq=50.0)
        for s in sims.subjects}
{s: ts.feature_shape for s, ts in seeg.items()}

# %%
scores = {}
for kind in ("channel_linear", "seeg_position"):
    cfg = DecoderConfig(subjects={"01": SubjectSpec.from_trialset(seeg["01"])},
                        embed_dim=targets.image.shape[1], adapter=kind, encoder="conv",
                        d_shared=32, conv_width=32, adapter_dropout=0.0)
    dec = fit(BrainDecoder(cfg, seed=0), [seeg["01"].select(split="train")], targets,
              tc).decoder
    t = test_set(seeg["01"])
    scores[kind] = retrieval_accuracy(dec.predict(t), targets.loc(t.stimulus_ids).image, k=5,
                                      n_candidates=len(t.stimulus_ids), n_draws=1)["topk"]
scores
