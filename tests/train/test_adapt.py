"""New subjects: adapt_subject (closed form and gradient), the stimulus map, the ridge
adapter, learning_curve."""

import copy

import numpy as np
import pytest
import torch
from _decoding_data import make_problem

from braindecode_kit.baselines import RidgeDecoder
from braindecode_kit.evaluate import retrieval_accuracy
from braindecode_kit.models import BrainDecoder, DecoderConfig
from braindecode_kit.train import (
    TrainConfig,
    adapt_subject,
    can_solve_adapter,
    fit,
    fit_stimulus_map,
    learning_curve,
    ridge_adapter,
    shared_space_targets,
)

from ._common import FAST, decoder, same_weights, sets, trialset

BASE = ["sub-01", "sub-02", "sub-03"]
#: training of the base decoder and of the adapters of the closed-form tests
BASE_FAST = dict(epochs=12, batch_size=32, patience=None, val_n_draws=3, lr=3e-3)


@pytest.fixture(scope="module")
def problem4():
    """Four subjects, 150 training trials each: sub-04 is the new subject."""
    return make_problem(n_subjects=4, n_train=150, n_test=40, noise=0.4, seed=3)


@pytest.fixture(scope="module")
def base(problem4):
    subs, targets = problem4
    cfg = DecoderConfig(subjects={s: subs[s]["X_train"].shape[1] for s in BASE},
                        embed_dim=16, d_shared=32, n_blocks=1, adapter_dropout=0.1)
    dec = fit(BrainDecoder(cfg, seed=0), sets(subs, "train", BASE), targets,
              TrainConfig(**BASE_FAST)).decoder
    return dec


@pytest.fixture(scope="module")
def mapped(problem4, base):
    subs, targets = problem4
    dec = copy.deepcopy(base)
    info = fit_stimulus_map(dec, sets(subs, "train", BASE), targets)
    return dec, info


def test_fit_stimulus_map_predicts_held_out_shared_features(problem4, base, mapped, tmp_path):
    subs, targets = problem4
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


def test_ridge_adapter_folds_the_ridge_exactly(problem4, mapped):
    subs, targets = problem4
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
        out = dec.adapters["sub-04"].linear(torch.as_tensor(subs["sub-04"]["X_test"])).numpy()
    np.testing.assert_allclose(out, ridge.predict(subs["sub-04"]["X_test"]), rtol=1e-4,
                               atol=1e-4)
    # the new norm starts from the other subjects' mean
    mean_w = torch.stack([dec.adapters[s].norm.weight for s in BASE]).mean(0)
    assert torch.allclose(dec.adapters["sub-04"].norm.weight, mean_w)
    with pytest.raises(ValueError, match="features"):
        ridge_adapter(dec, "sub-04", X[:, :-1], Y, groups=ids)
    with pytest.raises(ValueError, match="one CLIP image"):
        ridge_adapter(dec, "sub-04", X, Y[:, :3], groups=ids)


def test_adapt_subject_ridge_init_beats_gradient_init_with_few_trials(problem4, base, mapped):
    subs, targets = problem4
    dec = mapped[0]
    n = 40  # few stimuli of the new subject
    new = ("sub-04", subs["sub-04"]["X_train"][:n], list(subs["sub-04"]["ids_train"][:n]))
    Xt, Yt = subs["sub-04"]["X_test"], subs["sub-04"]["Y_test"]
    adapted, results = adapt_subject(dec, new, targets, return_results=True,
                                     config=TrainConfig(**BASE_FAST))
    assert results == []  # closed form: no gradient phase
    for k, v in dec.state_dict().items():
        assert torch.equal(adapted.state_dict()[k], v), k  # shared parts untouched
    sgd = adapt_subject(dec, new, targets, init="random", config=TrainConfig(**BASE_FAST))

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
                           return_results=True, config=TrainConfig(**BASE_FAST))
    assert len(res) == 1 and res[0].best_epoch is not None


def test_adapt_subject_init_errors(problem4, base, mapped):
    subs, targets = problem4
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


def test_validate_start_keeps_a_better_start(problem4, base, tmp_path):
    subs, targets = problem4
    val = sets(subs, "test", BASE)
    start = copy.deepcopy(base)
    # a destructive learning rate: the starting weights stay the best on validation
    cfg = TrainConfig(epochs=2, batch_size=32, patience=None, val_n_draws=3, lr=5.0,
                      grad_clip=None, validate_start=True)
    res = fit(start, sets(subs, "train", BASE), targets, cfg, valsets=val,
              out_dir=tmp_path / "run")
    assert res.best_epoch == 0
    for k, v in base.state_dict().items():
        assert torch.equal(res.decoder.state_dict()[k], v), k
    assert (tmp_path / "run" / "checkpoints" / "epoch-0000").is_dir()
    # resuming the finished run restores the same weights
    again = fit(copy.deepcopy(base), sets(subs, "train", BASE), targets, cfg, valsets=val,
                out_dir=tmp_path / "run")
    assert again.best_epoch == 0
    for k, v in base.state_dict().items():
        assert torch.equal(again.decoder.state_dict()[k], v), k


def test_stimulus_map_reads_caption_embeddings(problem4, base, tmp_path):
    from braindecode_kit.embed import Targets

    subs, targets = problem4
    ids = sorted(targets)
    image = np.stack([targets[i] for i in ids])
    # a "caption" embedding: another view of the same stimuli
    text = np.tanh(image @ np.random.default_rng(0).standard_normal((16, 8))).astype(np.float32)
    tg = Targets(ids, image, text=text)
    dec = copy.deepcopy(base)
    info = fit_stimulus_map(dec, sets(subs, "train", BASE), tg)
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
    info = fit_stimulus_map(dec, sets(subs, "train", BASE), tg, use_text=False)
    assert not info["text"] and dec.stimulus_map_weight.shape == (32, 16)
    with pytest.raises(ValueError, match="use_text=True"):
        fit_stimulus_map(dec, sets(subs, "train", BASE), targets, use_text=True)



# ----------------------------------------------------------------- gradient adaptation
@pytest.fixture(scope="module")
def base_two(problem):
    """A decoder trained on sub-01 and sub-02 (sub-03 is the new subject); not modified."""
    subs, targets = problem
    names = ["sub-01", "sub-02"]
    return fit(decoder(subs, names), sets(subs, "train", names), targets,
               TrainConfig(**FAST)).decoder


def test_adapt_subject_freezes_shared_and_copies(problem, base_two):
    subs, targets = problem
    base = base_two
    before = copy.deepcopy(base)
    new = ("sub-03", subs["sub-03"]["X_train"], list(subs["sub-03"]["ids_train"]))
    adapted = adapt_subject(base, new, targets, config=TrainConfig(**FAST))
    assert same_weights(base, before)  # input untouched: the same names and weights
    assert "sub-03" in adapted.subjects and "sub-03" not in base.subjects
    sa = adapted.state_dict()
    for k, v in before.state_dict().items():
        assert torch.equal(sa[k], v), k  # shared encoder, heads and old adapters frozen
    assert all(p.requires_grad for p in adapted.parameters())
    pred = adapted.predict(subs["sub-03"]["X_test"], "sub-03")
    assert pred.shape == (60, 16)
    # fine-tune changes the shared encoder too
    tuned, results = adapt_subject(base, new, targets, config=TrainConfig(**FAST),
                                   finetune_epochs=1, return_results=True)
    assert len(results) == 2
    assert not torch.equal(tuned.encoder.blocks[0].linear.weight,
                           base.encoder.blocks[0].linear.weight)
    with pytest.raises(ValueError, match="already has subject"):
        adapt_subject(base, ("sub-01", subs["sub-01"]["X_train"],
                             list(subs["sub-01"]["ids_train"])), targets)


def test_learning_curve_by_stimulus(problem, base_two):
    subs, targets = problem
    base = base_two
    tr = ("sub-03", subs["sub-03"]["X_train"], list(subs["sub-03"]["ids_train"]))
    te = ("sub-03", subs["sub-03"]["X_test"], list(subs["sub-03"]["ids_test"]))
    df = learning_curve(base, tr, targets, fractions=(0.25, 1.0), testset=te,
                        config=TrainConfig(epochs=2, batch_size=24, patience=None),
                        n_draws=3)
    assert list(df["fraction"]) == [0.25, 1.0]
    assert list(df["n_stimuli"]) == [20, 80] and list(df["n_trials"]) == [20, 80]
    assert {"top1", "ci", "ci_low", "ci_high"} <= set(df.columns)
    assert ((df["ci_low"] <= df["top1"]) & (df["top1"] <= df["ci_high"])).all()
    with pytest.raises(ValueError, match="fractions"):
        learning_curve(base, tr, targets, fractions=(0.0,), testset=te)


def test_adapt_subject_is_seeded_whatever_ran_before(problem, base_two):
    subs, targets = problem
    base = base_two
    new = ("sub-03", subs["sub-03"]["X_train"], list(subs["sub-03"]["ids_train"]))
    cfg = TrainConfig(**{**FAST, "epochs": 1})
    a = adapt_subject(base, new, targets, config=cfg)
    torch.rand(1000)  # the global random state moves on
    b = adapt_subject(base, new, targets, config=cfg)
    assert same_weights(a, b)
    c = adapt_subject(base, new, targets, config=TrainConfig(**{**FAST, "epochs": 1, "seed": 5}))
    assert not torch.equal(a.adapters["sub-03"].linear.weight, c.adapters["sub-03"].linear.weight)


def test_adapt_subject_from_a_trialset_records_its_spec(problem, base_two):
    subs, targets = problem
    cfg = TrainConfig(**{**FAST, "epochs": 1})
    from_ts = adapt_subject(base_two, trialset(subs, "sub-03", "train"), targets, config=cfg)
    spec = from_ts.config.subjects["sub-03"]
    assert spec.modality == "fmri" and spec.feature_shape == (60,)
    # the same subject given as (subject, X, ids) gets the same adapter
    new = ("sub-03", subs["sub-03"]["X_train"], list(subs["sub-03"]["ids_train"]))
    assert same_weights(from_ts, adapt_subject(base_two, new, targets, config=cfg))
