"""fit: learning, outputs on disk, seeding, early stopping, input forms, mixed precision."""

import json

import numpy as np
import pytest
import torch

from braindecode_kit.models import BrainDecoder
from braindecode_kit.train import TrainConfig, fit

from ._common import FAST, decoder, same_weights, sets, trialset


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


def test_fit_learns_and_writes_outputs(problem, tmp_path):
    subs, targets = problem
    dec = decoder(subs)
    chance = 1 / 30
    res = fit(dec, sets(subs, "train"), targets, TrainConfig(epochs=8, batch_size=24,
              patience=None, val_n_draws=3), valsets=sets(subs, "test"), out_dir=tmp_path)
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
    a = fit(decoder(subs), sets(subs, "train"), targets, cfg).decoder
    b = fit(decoder(subs), sets(subs, "train"), targets, cfg).decoder
    assert same_weights(a, b)
    c = fit(decoder(subs), sets(subs, "train"), targets,
            TrainConfig(schedule="mindeye", epochs=3, batch_size=24, seed=5)).decoder
    assert not same_weights(a, c)


def test_early_stopping_restores_best(problem):
    subs, targets = problem
    cfg = TrainConfig(epochs=40, batch_size=24, patience=2, lr=3e-2, val_n_draws=3)
    res = fit(decoder(subs), sets(subs, "train"), targets, cfg, valsets=sets(subs, "test"))
    assert res.stopped_early and len(res.history) < 40
    assert len(res.history) - res.best_epoch == 2
    vals = [h["val_top1"] for h in res.history]
    assert res.best_val_top1 == max(vals) == res.best_val_score


def test_early_stopping_on_percentile_rank(problem):
    subs, targets = problem
    with pytest.raises(ValueError, match="'val_metric'"):
        TrainConfig(val_metric="loss")
    cfg = TrainConfig(epochs=40, batch_size=24, patience=2, lr=3e-2, val_n_draws=3,
                      val_metric="rank")
    res = fit(decoder(subs), sets(subs, "train"), targets, cfg, valsets=sets(subs, "test"))
    ranks = [h["val_rank"] for h in res.history]
    assert all(0.0 <= r <= 1.0 for r in ranks)
    # the best epoch is the best rank's, not the best top-1's; its top-1 is reported
    assert res.best_val_score == ranks[res.best_epoch - 1] == pytest.approx(max(ranks))
    assert res.best_val_top1 == res.history[res.best_epoch - 1]["val_top1"]
    assert res.stopped_early and len(res.history) - res.best_epoch == 2


def test_fit_with_arrays_regression_and_mixed_inputs(problem):
    subs, _ = problem
    sets = [(s, subs[s]["X_train"], subs[s]["Y_train"]) for s in subs]
    cfg = TrainConfig(epochs=2, batch_size=24, mse_weight=1.0, cosine_weight=0.5)
    res = fit(decoder(subs), sets, None, cfg)
    assert "loss/image/mse" in res.history[0] and "loss/image/cosine" in res.history[0]
    # (subject, X) pairs + a list of aligned target arrays
    pairs = [(s, subs[s]["X_train"]) for s in subs]
    fit(decoder(subs), pairs, [subs[s]["Y_train"] for s in subs], TrainConfig(epochs=1))


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

    dec = decoder(subs, token_shape=(4, 3), token_rank=2, text_dim=16)
    res = fit(dec, sets(subs, "train"), T(list(targets)[:2]), TrainConfig(epochs=1, batch_size=24))
    assert {"loss/tokens/infonce", "loss/text/infonce"} <= set(res.history[0])


def test_fit_refuses_bad_input(problem):
    subs, targets = problem
    dec = decoder(subs, names=["sub-01"])
    with pytest.raises(KeyError, match="sub-02"):
        fit(dec, sets(subs, "train", ["sub-02"]), targets, TrainConfig(epochs=1))
    with pytest.raises(ValueError, match="expects 30 features"):
        fit(dec, [("sub-01", subs["sub-02"]["X_train"], list(subs["sub-02"]["ids_train"]))],
            targets, TrainConfig(epochs=1))
    with pytest.raises(KeyError, match="no entry"):
        fit(dec, sets(subs, "train", ["sub-01"]), {"x": np.zeros(16)}, TrainConfig(epochs=1))
    with pytest.raises(ValueError, match="fp16"):
        if torch.cuda.is_available():
            raise ValueError("fp16 available: skip")
        fit(dec, sets(subs, "train", ["sub-01"]), targets, TrainConfig(mixed_precision="fp16"))
    bad = subs["sub-01"]["X_train"].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        fit(dec, [("sub-01", bad, list(subs["sub-01"]["ids_train"]))], targets,
            TrainConfig(epochs=1))


def test_bf16_on_cpu_runs(problem):
    subs, targets = problem
    res = fit(decoder(subs), sets(subs, "train"), targets,
              TrainConfig(epochs=1, batch_size=24, mixed_precision="bf16"))
    assert np.isfinite(res.history[0]["train_loss"])
    assert next(res.decoder.parameters()).dtype == torch.float32


def test_fit_and_predict_with_trialsets_and_dataframe_targets(problem):
    import pandas as pd

    subs, targets = problem
    frame = pd.DataFrame.from_dict(targets, orient="index")
    names = ["sub-01", "sub-02"]
    dec = decoder(subs, names)
    res = fit(dec, [trialset(subs, n, "train") for n in names], frame, TrainConfig(**FAST),
              valsets=[trialset(subs, n, "test") for n in names])
    assert res.best_val_top1 is not None
    assert dec.predict(trialset(subs, "sub-02", "test")).shape == (60, 16)
