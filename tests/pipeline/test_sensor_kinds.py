"""A tiny sEEG-only pipeline runs every stage generically: metrics under metrics["seeg"],
outputs under seeg/, the report's sections (the sensor decoder: no stimulus map, the new
patient adapted by gradient descent)."""

from __future__ import annotations

import json

from braindecode_kit.pipeline import load_config, run_pipeline

TINY_SEEG = {
    "name": "tiny-seeg",
    "seed": 0,
    "stimuli": {"kind": "world", "n": 150, "size": 32},
    "seeg": {"source": "simulate",
             "simulate": {"n_subjects": 2, "n_train": 60, "n_test": 12, "n_test_reps": 2,
                          "sfreq": 320.0},
             "load": {"tmin": -0.1, "tmax": 0.4, "sfreq": 40.0},
             "decoder": {"d_shared": 8, "conv_width": 8, "n_blocks": 1},
             "new_subject": {"fraction": 0.5, "curve": [0.5, 1.0]}},
    "train": {"epochs": 2, "batch_size": 16, "patience": None, "val_n_draws": 2,
              "steps_per_epoch": 2, "val_n_candidates": 10},
    "evaluate": {"n_candidates": 12, "n_draws": 2},
    "caption": {"enabled": False},
    # the shipped generator, 2 steps, 4 test images: the reconstruct stage on sensor data
    "reconstruct": {"num_inference_steps": 2, "n_stimuli": 4, "batch_size": 8},
    "report": {"n_examples": 2},
}


def test_a_sensor_kind_runs_through_every_stage(tmp_path):
    run_pipeline(load_config(TINY_SEEG), tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    m = metrics["seeg"]
    assert "fmri" not in metrics
    assert m["train"]["stimulus_map"] is None  # a sequence decoder: gradient adaptation
    for name in ("decoder", "ridge", "oracle"):
        assert 0 <= m[name]["top1"] <= 1 and 0 <= m[name]["top5"] <= 1
    assert m["chance_top5"] == 5 / 12
    ns = m["new_subject"]
    assert ns["subject"] == "02" and ns["adapter_init"] == "random"
    assert {"adapted_50pct", "scratch_50pct", "ridge_50pct", "adapted_full"} <= set(ns)
    cfg = json.loads((tmp_path / "run" / "seeg" / "model" / "config.json").read_text())
    assert cfg["adapter"] == "channel_linear" and cfg["encoder"] == "conv"
    assert cfg["subjects"]["01"]["positions"] is not None
    html = (tmp_path / "run" / "report.html").read_text()
    assert "Decoding the seen image from sEEG" in html


TINY_MEG = {
    "name": "tiny-meg",
    "seed": 0,
    "stimuli": {"kind": "world", "n": 150, "size": 32},
    "meg": {"source": "simulate",
            "simulate": {"n_subjects": 2, "system": "ctf275", "n_train": 60, "n_test": 12,
                         "n_test_reps": 2, "sfreq": 120.0},
            "load": {"tmin": -0.1, "tmax": 0.4, "h_freq": 25.0, "sfreq": 40.0},
            "decoder": {"adapter": "spatial_attention", "encoder": "conv",
                        "adapter_dropout": 0.0, "d_shared": 8, "conv_width": 8,
                        "n_blocks": 1},
            "new_subject": {"fraction": 0.5, "curve": [0.5, 1.0]}},
    "train": {"epochs": 2, "batch_size": 16, "patience": None, "val_n_draws": 2,
              "steps_per_epoch": 2, "val_n_candidates": 10},
    "evaluate": {"n_candidates": 12, "n_draws": 2},
    "caption": {"enabled": False},
    # the shipped generator, 2 steps, 4 test images: the reconstruct stage on sensor data
    "reconstruct": {"num_inference_steps": 2, "n_stimuli": 4, "batch_size": 8},
    "report": {"n_examples": 2},
}


def test_meg_runs_through_every_stage_with_the_spatial_attention_adapter(tmp_path):
    run_pipeline(load_config(TINY_MEG), tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    m = metrics["meg"]
    assert set(metrics) >= {"meg"} and "fmri" not in metrics and "seeg" not in metrics
    assert m["subjects"]["01"]["feature_shape"][0] > 250  # CTF-275's MEG sensors
    for name in ("decoder", "ridge", "oracle"):
        assert 0 <= m[name]["top1"] <= 1 and 0 <= m[name]["top5"] <= 1
    assert m["oracle"]["top5"] > m["chance_top5"]  # the simulator's model identifies
    ns = m["new_subject"]
    assert ns["subject"] == "02" and ns["adapter_init"] == "random"
    cfg = json.loads((tmp_path / "run" / "meg" / "model" / "config.json").read_text())
    assert cfg["adapter"] == "spatial_attention" and cfg["encoder"] == "conv"
    pos = cfg["subjects"]["01"]["positions"]
    assert pos is not None and len(pos[0]) == 2  # 2-D layout positions for the attention
    html = (tmp_path / "run" / "report.html").read_text()
    assert "Decoding the seen image from MEG" in html
