import json

import numpy as np
import pytest
import torch
from _decoding_data import make_problem

import braindecode_kit.train as train_mod
from braindecode_kit.models import BrainDecoder, DecoderConfig
from braindecode_kit.train import (
    BalancedBatchSampler,
    TrainConfig,
    adapt_subject,
    fit,
    learning_curve,
)


@pytest.fixture(scope="module")
def problem():
    return make_problem(n_subjects=3, n_train=80, n_test=30, noise=0.3, seed=1)


def _sets(subs, part, names=None):
    names = names or list(subs)
    return [(s, subs[s][f"X_{part}"], list(subs[s][f"ids_{part}"])) for s in names]


def _decoder(subs, names=None, seed=0, **kw):
    names = names or list(subs)
    cfg = DecoderConfig(subjects={s: subs[s]["X_train"].shape[1] for s in names},
                        embed_dim=16, d_shared=32, n_blocks=1, **kw)
    return BrainDecoder(cfg, seed=seed)


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


FAST = dict(epochs=4, batch_size=24, patience=None, val_n_draws=3)


def test_train_config_validation_and_roundtrip():
    cfg = TrainConfig(epochs=3, schedule="mindeye")
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="'schedule'"):
        TrainConfig(schedule="bogus")
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="'mixed_precision'"):
        TrainConfig(mixed_precision="fp8")
    with pytest.raises(ValueError, match="Unknown TrainConfig"):
        TrainConfig.from_dict({"epochs": 2, "foo": 1})


def test_balanced_sampler_draws_equally_per_subject():
    s = BalancedBatchSampler([10, 100, 37], batch_size=9, steps_per_epoch=20, seed=0)
    offsets = [0, 10, 110, 147]
    for batch in s:
        counts = [sum(offsets[k] <= i < offsets[k + 1] for i in batch) for k in range(3)]
        assert counts == [3, 3, 3]
    # small subject cycles through all its trials; order depends on (seed, epoch) only
    first = list(s)
    assert list(s) == first
    s.set_epoch(1)
    assert list(s) != first
    seen = {i for b in first for i in b if i < 10}
    assert seen == set(range(10))


def test_fit_learns_and_writes_outputs(problem, tmp_path):
    subs, targets = problem
    dec = _decoder(subs)
    chance = 1 / 30
    res = fit(dec, _sets(subs, "train"), targets, TrainConfig(epochs=8, batch_size=24,
              patience=None, val_n_draws=3), valsets=_sets(subs, "test"), out_dir=tmp_path)
    assert res.decoder is dec
    assert len(res.history) == 8
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < losses[0]
    assert res.best_val_top1 > 4 * chance
    assert {"val_top1/sub-01", "lr", "loss_kind"} <= set(res.history[0])
    hist = json.loads((tmp_path / "history.json").read_text())
    assert len(hist["history"]) == 8 and hist["best_epoch"] == res.best_epoch
    assert list((tmp_path / "logs").glob("events.out.tfevents*"))
    loaded = BrainDecoder.from_pretrained(tmp_path / "model")
    X = subs["sub-02"]["X_test"]
    assert np.allclose(loaded.predict(X, "sub-02"), dec.predict(X, "sub-02"), atol=1e-6)
    ckpts = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert f"epoch-{res.best_epoch:04d}" in ckpts and "epoch-0008" in ckpts
    assert len(ckpts) <= 3
    for p in (tmp_path / "checkpoints").rglob("*"):
        assert p.suffix in ("", ".safetensors", ".json"), p  # no pickles


def test_same_seed_same_weights(problem):
    subs, targets = problem
    cfg = TrainConfig(schedule="mindeye", epochs=3, batch_size=24, patience=None)
    a = fit(_decoder(subs), _sets(subs, "train"), targets, cfg).decoder
    b = fit(_decoder(subs), _sets(subs, "train"), targets, cfg).decoder
    assert _same_weights(a, b)
    c = fit(_decoder(subs), _sets(subs, "train"), targets,
            TrainConfig(schedule="mindeye", epochs=3, batch_size=24, seed=5)).decoder
    assert not _same_weights(a, c)


def test_killed_run_resumes_to_same_result(problem, tmp_path, monkeypatch):
    subs, targets = problem
    cfg = TrainConfig(schedule="mindeye", learn_temperature=False, **FAST)
    ref = fit(_decoder(subs), _sets(subs, "train"), targets, cfg, valsets=_sets(subs, "test"))

    real_save = train_mod._save_checkpoint

    def killing_save(ckpt_dir, epoch, *args, **kw):
        path = real_save(ckpt_dir, epoch, *args, **kw)
        if epoch == 2:
            raise KeyboardInterrupt("simulated kill")
        return path

    monkeypatch.setattr(train_mod, "_save_checkpoint", killing_save)
    with pytest.raises(KeyboardInterrupt):
        fit(_decoder(subs), _sets(subs, "train"), targets, cfg, valsets=_sets(subs, "test"),
            out_dir=tmp_path)
    monkeypatch.setattr(train_mod, "_save_checkpoint", real_save)
    assert (tmp_path / "checkpoints" / "epoch-0002").is_dir()
    # a fresh decoder object: everything must come from the checkpoint
    res = fit(_decoder(subs, seed=99), _sets(subs, "train"), targets, cfg,
              valsets=_sets(subs, "test"), out_dir=tmp_path)
    assert _same_weights(res.decoder, ref.decoder)
    assert [h["train_loss"] for h in res.history] == [h["train_loss"] for h in ref.history]
    assert res.best_epoch == ref.best_epoch
    # a finished run is loaded, not retrained
    again = fit(_decoder(subs, seed=3), _sets(subs, "train"), targets, cfg,
                valsets=_sets(subs, "test"), out_dir=tmp_path)
    assert _same_weights(again.decoder, ref.decoder)
    # another config in the same folder is refused
    with pytest.raises(ValueError, match="different run"):
        fit(_decoder(subs), _sets(subs, "train"), targets,
            TrainConfig(epochs=5, batch_size=24), out_dir=tmp_path)


def test_early_stopping_restores_best(problem):
    subs, targets = problem
    cfg = TrainConfig(epochs=40, batch_size=24, patience=2, lr=3e-2, val_n_draws=3)
    res = fit(_decoder(subs), _sets(subs, "train"), targets, cfg, valsets=_sets(subs, "test"))
    assert res.stopped_early and len(res.history) < 40
    assert len(res.history) - res.best_epoch == 2
    vals = [h["val_top1"] for h in res.history]
    assert res.best_val_top1 == max(vals)


def test_fit_with_arrays_regression_and_mixed_inputs(problem):
    subs, _ = problem
    sets = [(s, subs[s]["X_train"], subs[s]["Y_train"]) for s in subs]
    cfg = TrainConfig(epochs=2, batch_size=24, mse_weight=1.0, cosine_weight=0.5)
    res = fit(_decoder(subs), sets, None, cfg)
    assert "loss/image/mse" in res.history[0] and "loss/image/cosine" in res.history[0]
    # (subject, X) pairs + a list of aligned target arrays
    pairs = [(s, subs[s]["X_train"]) for s in subs]
    fit(_decoder(subs), pairs, [subs[s]["Y_train"] for s in subs], TrainConfig(epochs=1))


def test_fit_token_and_text_heads(problem):
    subs, targets = problem

    class T:
        def __init__(self, ids):
            self.ids = list(ids)
            self.image = np.stack([targets[i] for i in ids])
            self.text = self.image[:, ::-1].copy()
            self.tokens = np.stack([self.image.reshape(-1, 4, 4)[:, :, :3]])[0]

        def loc(self, ids):
            return T(ids)

    dec = _decoder(subs, token_shape=(4, 3), token_rank=2, text_dim=16)
    res = fit(dec, _sets(subs, "train"), T(list(targets)[:2]), TrainConfig(epochs=1, batch_size=24))
    assert {"loss/tokens/infonce", "loss/text/infonce"} <= set(res.history[0])


def test_fit_refuses_bad_input(problem):
    subs, targets = problem
    dec = _decoder(subs, names=["sub-01"])
    with pytest.raises(KeyError, match="sub-02"):
        fit(dec, _sets(subs, "train", ["sub-02"]), targets, TrainConfig(epochs=1))
    with pytest.raises(ValueError, match="expects 30 features"):
        fit(dec, [("sub-01", subs["sub-02"]["X_train"], list(subs["sub-02"]["ids_train"]))],
            targets, TrainConfig(epochs=1))
    with pytest.raises(KeyError, match="no entry"):
        fit(dec, _sets(subs, "train", ["sub-01"]), {"x": np.zeros(16)}, TrainConfig(epochs=1))
    with pytest.raises(ValueError, match="fp16"):
        if torch.cuda.is_available():
            raise ValueError("fp16 available: skip")
        fit(dec, _sets(subs, "train", ["sub-01"]), targets, TrainConfig(mixed_precision="fp16"))
    bad = subs["sub-01"]["X_train"].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        fit(dec, [("sub-01", bad, list(subs["sub-01"]["ids_train"]))], targets,
            TrainConfig(epochs=1))


def test_bf16_on_cpu_runs(problem):
    subs, targets = problem
    res = fit(_decoder(subs), _sets(subs, "train"), targets,
              TrainConfig(epochs=1, batch_size=24, mixed_precision="bf16"))
    assert np.isfinite(res.history[0]["train_loss"])
    assert next(res.decoder.parameters()).dtype == torch.float32


@pytest.fixture(scope="module")
def base_two(problem):
    """A decoder trained on sub-01 and sub-02 (sub-03 is the new subject); not modified."""
    subs, targets = problem
    names = ["sub-01", "sub-02"]
    return fit(_decoder(subs, names), _sets(subs, "train", names), targets,
               TrainConfig(**FAST)).decoder


def test_adapt_subject_freezes_shared_and_copies(problem, base_two):
    subs, targets = problem
    base = base_two
    before = {k: v.clone() for k, v in base.state_dict().items()}
    new = ("sub-03", subs["sub-03"]["X_train"], list(subs["sub-03"]["ids_train"]))
    adapted = adapt_subject(base, new, targets, config=TrainConfig(**FAST))
    assert _same_weights(base, base) and all(
        torch.equal(before[k], v) for k, v in base.state_dict().items())  # input untouched
    assert "sub-03" in adapted.subjects and "sub-03" not in base.subjects
    sa = adapted.state_dict()
    for k, v in before.items():
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


def test_fit_and_predict_with_trialsets_and_dataframe_targets(problem):
    import pandas as pd

    from braindecode_kit import trialset
    subs, targets = problem

    def ts(name, part):
        X, ids = subs[name][f"X_{part}"], subs[name][f"ids_{part}"]
        trials = pd.DataFrame({"subject": name, "session": 1, "run": 1,
                               "onset": np.arange(len(ids), dtype=float),
                               "stimulus_id": ids, "repetition": 0, "split": part})
        trials.index = [f"{name}-{part}-{i}" for i in range(len(ids))]
        return trialset.TrialSet(X, trials, "fmri", name)

    frame = pd.DataFrame.from_dict(targets, orient="index")
    names = ["sub-01", "sub-02"]
    dec = _decoder(subs, names)
    res = fit(dec, [ts(n, "train") for n in names], frame, TrainConfig(**FAST),
              valsets=[ts(n, "test") for n in names])
    assert res.best_val_top1 is not None
    assert dec.predict(ts("sub-02", "test")).shape == (60, 16)


def test_adapt_subject_is_seeded_whatever_ran_before(problem, base_two):
    subs, targets = problem
    base = base_two
    new = ("sub-03", subs["sub-03"]["X_train"], list(subs["sub-03"]["ids_train"]))
    cfg = TrainConfig(**{**FAST, "epochs": 1})
    a = adapt_subject(base, new, targets, config=cfg)
    torch.rand(1000)  # the global random state moves on
    b = adapt_subject(base, new, targets, config=cfg)
    assert _same_weights(a, b)
    c = adapt_subject(base, new, targets, config=TrainConfig(**{**FAST, "epochs": 1, "seed": 5}))
    assert not torch.equal(a.adapters["sub-03"].linear.weight, c.adapters["sub-03"].linear.weight)
