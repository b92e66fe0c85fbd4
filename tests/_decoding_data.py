"""Small synthetic decoding problems for the decoder tests (not a test module).

A latent z per stimulus drives (i) a CLIP-like target through a random nonlinear map
and (ii) each subject's voxels through a shared nonlinear code and a subject-specific
linear mixing with a different voxel count, plus trial noise.
"""

from __future__ import annotations

import numpy as np


def make_problem(n_subjects=2, n_train=120, n_test=40, n_vox=(30, 45, 60, 50), d=16, k=8,
                 n_code=32, noise=0.5, test_reps=2, seed=0, shared_train=False):
    rng = np.random.default_rng(seed)
    n_stim = n_test + (n_train if shared_train else n_train * n_subjects)
    z = rng.standard_normal((n_stim, k))
    w1, w2 = rng.standard_normal((k, 64)), rng.standard_normal((64, d))
    y = np.tanh(z @ w1 / np.sqrt(k)) @ w2
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    f = rng.standard_normal((k, n_code)) / np.sqrt(k)
    code = np.maximum(z @ f, 0) + 0.5 * np.sin(2 * z @ f)
    ids = np.array([f"s{i:05d}" for i in range(n_stim)])
    test_idx = np.arange(n_test)
    subjects = {}
    for s in range(n_subjects):
        if shared_train:
            tr = n_test + np.arange(n_train)
        else:
            tr = n_test + s * n_train + np.arange(n_train)
        mix = rng.standard_normal((n_code, n_vox[s])) / np.sqrt(n_code)

        def vox(idx, mix=mix):
            x = code[idx] @ mix + noise * rng.standard_normal((len(idx), mix.shape[1]))
            return x.astype(np.float32)

        te = np.repeat(test_idx, test_reps)
        subjects[f"sub-{s + 1:02d}"] = {
            "X_train": vox(tr), "ids_train": ids[tr], "Y_train": y[tr].astype(np.float32),
            "X_test": vox(te), "ids_test": ids[te], "Y_test": y[te].astype(np.float32),
        }
    targets = {i: y[j].astype(np.float32) for j, i in enumerate(ids)}
    return subjects, targets
