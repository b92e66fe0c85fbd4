"""The closed-form new-subject adapter: stimulus map, ridge adapter, adapt_subject(init=)."""

import numpy as np
import pytest
import torch
from _decoding_data import make_problem

from braindecode_kit.baselines import RidgeDecoder
from braindecode_kit.evaluate import retrieval_accuracy
from braindecode_kit.models import BrainDecoder, DecoderConfig
from braindecode_kit.train import TrainConfig, adapt_subject, fit
from braindecode_kit.transfer import (
    can_solve_adapter,
    fit_stimulus_map,
    ridge_adapter,
    shared_space_targets,
)

BASE = ["sub-01", "sub-02", "sub-03"]
FAST = dict(epochs=12, batch_size=32, patience=None, val_n_draws=3, lr=3e-3)


@pytest.fixture(scope="module")
def problem():
    return make_problem(n_subjects=4, n_train=150, n_test=40, noise=0.4, seed=3)


def _sets(subs, part, names):
    return [(s, subs[s][f"X_{part}"], list(subs[s][f"ids_{part}"])) for s in names]


@pytest.fixture(scope="module")
def base(problem):
    subs, targets = problem
    cfg = DecoderConfig(subjects={s: subs[s]["X_train"].shape[1] for s in BASE},
                        embed_dim=16, d_shared=32, n_blocks=1, adapter_dropout=0.1)
    dec = fit(BrainDecoder(cfg, seed=0), _sets(subs, "train", BASE), targets,
              TrainConfig(**FAST)).decoder
    return dec


@pytest.fixture(scope="module")
def mapped(problem, base):
    import copy

    subs, targets = problem
    dec = copy.deepcopy(base)
    info = fit_stimulus_map(dec, _sets(subs, "train", BASE), targets)
    return dec, info


def test_fit_stimulus_map_predicts_held_out_shared_features(problem, base, mapped, tmp_path):
    subs, targets = problem
    dec, info = mapped
    assert not base.has_stimulus_map and dec.has_stimulus_map
    assert info["n_stimuli"] == 450 and info["alpha"] > 0 and info["r2"] <= 1
    # on the held-out test stimuli, the map beats predicting the mean shared vector
    X, ids = subs["sub-01"]["X_test"], subs["sub-01"]["ids_test"]
    feats = dec.shared_features(X, "sub-01")
    uniq, inv = np.unique(ids, return_inverse=True)
    mean_feats = np.stack([feats[inv == k].mean(0) for k in range(len(uniq))])
    pred = dec.map_stimuli(np.stack([targets[i] for i in uniq]))
    train_mean = dec.shared_features(subs["sub-01"]["X_train"], "sub-01").mean(0)
    err_map = ((pred - mean_feats) ** 2).sum()
    err_mean = ((train_mean - mean_feats) ** 2).sum()
    assert err_map < 0.7 * err_mean
    # saved with the model, loaded back exactly; the base model has none
    loaded = BrainDecoder.from_pretrained(dec.save_pretrained(tmp_path / "m"))
    assert loaded.has_stimulus_map
    np.testing.assert_array_equal(loaded.map_stimuli(np.stack([targets[i] for i in uniq])),
                                  pred)
    with pytest.raises(RuntimeError, match="no stimulus map"):
        base.map_stimuli(pred)
    with pytest.raises(ValueError, match=r"shape \(n, 16\)"):
        dec.map_stimuli(np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match="weight"):
        dec.set_stimulus_map(np.zeros((2, 2)), np.zeros(2))


def test_ridge_adapter_folds_the_ridge_exactly(problem, mapped):
    import copy

    subs, targets = problem
    dec = copy.deepcopy(mapped[0])
    X, ids = subs["sub-04"]["X_train"], subs["sub-04"]["ids_train"]
    Y = subs["sub-04"]["Y_train"]
    dec.add_subject("sub-04", X.shape[1])
    info = ridge_adapter(dec, "sub-04", X, Y, groups=ids)
    assert info["n_trials"] == len(X)
    T = shared_space_targets(dec, Y, subject="sub-04")
    ridge = RidgeDecoder().fit(X, T, groups=ids)
    dec.eval()
    with torch.no_grad():
        out = dec.adapters["sub-04"](torch.as_tensor(subs["sub-04"]["X_test"])).numpy()
    np.testing.assert_allclose(out, ridge.predict(subs["sub-04"]["X_test"]), rtol=1e-4,
                               atol=1e-4)
    # the new norm starts from the other subjects' mean
    mean_w = torch.stack([dec.adapter_norms[s].weight for s in BASE]).mean(0)
    assert torch.allclose(dec.adapter_norms["sub-04"].weight, mean_w)
    with pytest.raises(ValueError, match="features"):
        ridge_adapter(dec, "sub-04", X[:, :-1], Y, groups=ids)
    with pytest.raises(ValueError, match="one CLIP image"):
        ridge_adapter(dec, "sub-04", X, Y[:, :3], groups=ids)


def test_adapt_subject_ridge_init_beats_gradient_init_with_few_trials(problem, base, mapped):
    subs, targets = problem
    dec = mapped[0]
    n = 40  # few stimuli of the new subject
    new = ("sub-04", subs["sub-04"]["X_train"][:n], list(subs["sub-04"]["ids_train"][:n]))
    Xt, Yt = subs["sub-04"]["X_test"], subs["sub-04"]["Y_test"]
    adapted, results = adapt_subject(dec, new, targets, return_results=True,
                                     config=TrainConfig(**FAST))
    assert results == []  # closed form: no gradient phase
    for k, v in dec.state_dict().items():
        assert torch.equal(adapted.state_dict()[k], v), k  # shared parts untouched
    sgd = adapt_subject(dec, new, targets, init="random", config=TrainConfig(**FAST))

    def top1(model):
        pred = model.predict(Xt, "sub-04")
        return retrieval_accuracy(pred[::2] + pred[1::2], Yt[::2], n_candidates=40,
                                  n_draws=1)["top1"]

    ridge_top1, sgd_top1 = top1(adapted), top1(sgd)
    assert ridge_top1 > sgd_top1
    assert ridge_top1 > 4 / 40  # four times chance
    # an adapter phase after the ridge init keeps the init unless validation improves
    val = ("sub-04", subs["sub-04"]["X_train"][n:], list(subs["sub-04"]["ids_train"][n:]))
    _, res = adapt_subject(dec, new, targets, adapter_epochs=2, valset=val,
                           return_results=True, config=TrainConfig(**FAST))
    assert len(res) == 1 and res[0].best_epoch is not None


def test_adapt_subject_init_errors(problem, base, mapped):
    subs, targets = problem
    new = ("sub-04", subs["sub-04"]["X_train"], list(subs["sub-04"]["ids_train"]))
    assert can_solve_adapter(mapped[0]) and not can_solve_adapter(mapped[0], "mlp")
    assert not can_solve_adapter(base)  # no stimulus map
    with pytest.raises(ValueError, match="stimulus map"):
        adapt_subject(base, new, targets, init="ridge")
    with pytest.raises(ValueError, match="'linear' adapter"):
        adapt_subject(mapped[0], new, targets, init="ridge", adapter="mlp")
    with pytest.raises(ValueError, match="'init'"):
        adapt_subject(mapped[0], new, targets, init="closed")
    with pytest.raises(ValueError, match="adapter_epochs"):
        adapt_subject(mapped[0], new, targets, adapter_epochs=-1)


def test_validate_start_keeps_a_better_start(problem, base, tmp_path):
    import copy

    subs, targets = problem
    val = _sets(subs, "test", BASE)
    start = copy.deepcopy(base)
    # a destructive learning rate: the starting weights stay the best on validation
    cfg = TrainConfig(epochs=2, batch_size=32, patience=None, val_n_draws=3, lr=5.0,
                      grad_clip=None, validate_start=True)
    res = fit(start, _sets(subs, "train", BASE), targets, cfg, valsets=val,
              out_dir=tmp_path / "run")
    assert res.best_epoch == 0
    for k, v in base.state_dict().items():
        assert torch.equal(res.decoder.state_dict()[k], v), k
    assert (tmp_path / "run" / "checkpoints" / "epoch-0000").is_dir()
    # resuming the finished run restores the same weights
    again = fit(copy.deepcopy(base), _sets(subs, "train", BASE), targets, cfg, valsets=val,
                out_dir=tmp_path / "run")
    assert again.best_epoch == 0
    for k, v in base.state_dict().items():
        assert torch.equal(again.decoder.state_dict()[k], v), k


def test_stimulus_map_reads_caption_embeddings(problem, base, tmp_path):
    import copy

    from braindecode_kit.embed import Targets

    subs, targets = problem
    ids = sorted(targets)
    image = np.stack([targets[i] for i in ids])
    # a "caption" embedding: another view of the same stimuli
    text = np.tanh(image @ np.random.default_rng(0).standard_normal((16, 8))).astype(np.float32)
    tg = Targets(ids, image, text=text)
    dec = copy.deepcopy(base)
    info = fit_stimulus_map(dec, _sets(subs, "train", BASE), tg)
    assert info["text"] and dec.config.stimulus_map_text_dim == 8
    assert dec.stimulus_map_weight.shape == (32, 24)
    with pytest.raises(ValueError, match="caption-text"):
        dec.map_stimuli(image[:3])
    with pytest.raises(ValueError, match=r"text must have shape \(3, 8\)"):
        dec.map_stimuli(image[:3], text[:3, :4])
    loaded = BrainDecoder.from_pretrained(dec.save_pretrained(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.map_stimuli(image[:5], text[:5]),
                                  dec.map_stimuli(image[:5], text[:5]))
    new = ("sub-04", subs["sub-04"]["X_train"], list(subs["sub-04"]["ids_train"]))
    adapted = adapt_subject(dec, new, tg)
    assert adapted.predict(subs["sub-04"]["X_test"], "sub-04").shape == (80, 16)
    with pytest.raises(ValueError, match="targets have none"):
        adapt_subject(dec, new, targets)  # a dict: image embeddings only
    # image only on request; refused when the targets have no text
    info = fit_stimulus_map(dec, _sets(subs, "train", BASE), tg, use_text=False)
    assert not info["text"] and dec.stimulus_map_weight.shape == (32, 16)
    with pytest.raises(ValueError, match="use_text=True"):
        fit_stimulus_map(dec, _sets(subs, "train", BASE), targets, use_text=True)
