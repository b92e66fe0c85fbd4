"""Checkpoints: a killed run resumes to the uninterrupted run's result."""

import pytest

import braindecode_kit.train._fit as fit_mod
from braindecode_kit.train import TrainConfig, fit

from ._common import FAST, decoder, same_weights, sets


@pytest.mark.parametrize("val_metric", ["top1", "rank"])
def test_killed_run_resumes_to_same_result(problem, tmp_path, monkeypatch, val_metric):
    subs, targets = problem
    cfg = TrainConfig(schedule="mindeye", learn_temperature=False, val_metric=val_metric,
                      **FAST)
    ref = fit(decoder(subs), sets(subs, "train"), targets, cfg, valsets=sets(subs, "test"))

    real_save = fit_mod.save_checkpoint

    def killing_save(ckpt_dir, epoch, *args, **kw):
        path = real_save(ckpt_dir, epoch, *args, **kw)
        if epoch == 2:
            raise KeyboardInterrupt("simulated kill")
        return path

    monkeypatch.setattr(fit_mod, "save_checkpoint", killing_save)
    with pytest.raises(KeyboardInterrupt):
        fit(decoder(subs), sets(subs, "train"), targets, cfg, valsets=sets(subs, "test"),
            out_dir=tmp_path)
    monkeypatch.setattr(fit_mod, "save_checkpoint", real_save)
    assert (tmp_path / "checkpoints" / "epoch-0002").is_dir()
    # a fresh decoder object: everything must come from the checkpoint
    res = fit(decoder(subs, seed=99), sets(subs, "train"), targets, cfg,
              valsets=sets(subs, "test"), out_dir=tmp_path)
    assert same_weights(res.decoder, ref.decoder)
    assert [h["train_loss"] for h in res.history] == [h["train_loss"] for h in ref.history]
    assert res.best_epoch == ref.best_epoch
    assert res.best_val_score == ref.best_val_score
    # a finished run is loaded, not retrained
    again = fit(decoder(subs, seed=3), sets(subs, "train"), targets, cfg,
                valsets=sets(subs, "test"), out_dir=tmp_path)
    assert same_weights(again.decoder, ref.decoder)
    # another config in the same folder is refused
    with pytest.raises(ValueError, match="different run"):
        fit(decoder(subs), sets(subs, "train"), targets,
            TrainConfig(epochs=5, batch_size=24), out_dir=tmp_path)
