"""The reconstruct stage on a tiny pipeline (a random-weight generator of the built-in layout,
2 sampling steps): routes, images on disk, metrics with chance, the report, a rerun that
redoes nothing, and ``braindecode-kit reconstruct --run`` with other settings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from braindecode_kit.cli import main
from braindecode_kit.pipeline import load_config, run_pipeline
from braindecode_kit.pipeline.stages.reconstruct import reconstruct_run
from braindecode_kit.reconstruct.batch import load_batch_images
from braindecode_kit.reconstruct.builtin import write_image_decoder

from .conftest import TINY

N_STIM = 6


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("recon")
    gen = write_image_decoder(root / "gen", seed=1)
    cfg = json.loads(json.dumps(TINY))
    cfg["embed"] = {"blurry": 8}
    cfg["caption"] = {"enabled": False}
    cfg["new_subject"] = {"enabled": False}
    cfg["reconstruct"] = {"model": str(gen), "num_inference_steps": 2, "n_stimuli": N_STIM,
                          "batch_size": 4, "n_examples": 2}
    out = root / "run"
    metrics = run_pipeline(load_config(cfg), out)
    return cfg, out, metrics


def test_every_route_is_generated_and_scored(run):
    _, out, metrics = run
    m = metrics["fmri"]["reconstruct"]
    assert set(m) >= {"ceiling", "decoder", "decoder_lowlevel", "ridge", "chance",
                      "decoder_minus_ridge", "decoder_over_ceiling", "decoder_beyond_ridge_ci",
                      "scored", "timing"}
    assert m["n_subjects"] == 2  # no held-out subject: both pretrain
    for route in ("ceiling", "decoder", "decoder_lowlevel", "ridge"):
        e = m[route]
        # the ceiling once per test image, the others once per subject and test image
        assert e["n_images"] == N_STIM * (1 if route == "ceiling" else 2)
        assert 0 <= e["builtin_clip_2way"] <= 1
        lo, hi = e["builtin_clip_2way_ci"]
        assert lo <= e["builtin_clip_2way"] <= hi
        assert -1 <= e["pixcorr"] <= 1 and -1 <= e["ssim"] <= 1
        # networks without local weights are reported unavailable, with the reason
        assert e["alexnet_2"] is None and "weights" in e["alexnet_2_unavailable"]
        assert e["fid"] is None and "n > d" in e["fid_unavailable"]
    assert m["chance"]["builtin_clip_2way"] == 0.5
    # by construction, so no CI beside it; what the shifted images measured is kept
    assert "builtin_clip_2way_ci" not in m["chance"]
    assert 0.0 <= m["chance"]["builtin_clip_2way_measured"] <= 1.0
    # the paired difference is a mean of per-image differences, centred on it, not clipped
    # to [0, 1] like the routes' own scores (it may be negative)
    diff = m["decoder_minus_ridge"]
    lo, hi = diff["builtin_clip_2way_ci"]
    assert lo < diff["builtin_clip_2way"] < hi
    assert diff["builtin_clip_2way"] == pytest.approx((lo + hi) / 2)
    assert "no blend" in m["scored"]
    folder = out / "reconstructions"
    for route in ("ceiling", "decoder", "decoder_lowlevel", "ridge"):
        images = load_batch_images(folder / route)  # checked against the manifest
        assert len(images) == N_STIM * (1 if route == "ceiling" else 2)
        assert all(im.size == (64, 64) for im in images.values())
    blurry = np.load(folder / "blurry_decoder_sub-01.npy")
    assert blurry.shape == (N_STIM, 3, 8, 8) and 0 <= blurry.min() and blurry.max() <= 1


def test_routes_share_the_noise_and_differ_by_their_embedding(run):
    _, out, _ = run
    folder = out / "reconstructions"
    ceiling = load_batch_images(folder / "ceiling")
    decoder = load_batch_images(folder / "decoder")
    sid = sorted(ceiling)[0]
    a = np.asarray(ceiling[sid], float)
    b = np.asarray(decoder[f"sub-01/{sid}"], float)
    other = np.asarray(decoder[f"sub-01/{sorted(ceiling)[1]}"], float)
    # an untrained generator is driven by its noise: same noise -> far closer images
    assert np.abs(a - b).mean() < np.abs(a - other).mean()


def test_report_and_rerun(run):
    cfg, out, metrics = run
    html = (out / "report.html").read_text()
    assert "Reconstruction (fMRI)" in html and "decoder + low-level init" in html
    assert "no image is a blend" in html
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stages"]["reconstruct"]["status"] == "done"
    before = {p: p.stat().st_mtime_ns for p in (out / "reconstructions").rglob("*.png")}
    again = run_pipeline(load_config(cfg), out)
    assert again["fmri"]["reconstruct"] == metrics["fmri"]["reconstruct"]
    assert {p: p.stat().st_mtime_ns for p in (out / "reconstructions").rglob("*.png")} == before


def test_reconstruct_command_on_a_finished_run(run, capsys):
    _, out, metrics = run
    assert main(["reconstruct", "--run", str(out), "--name", "more_steps", "--steps", "3",
                 "--n-stimuli", "4", "-q"]) == 0
    printed = capsys.readouterr().out
    assert "fmri: built-in CLIP 2-way decoder" in printed
    folder = out / "reconstructions" / "more_steps"
    result = json.loads((folder / "metrics.json").read_text())
    assert result["settings"]["num_inference_steps"] == 3
    assert result["metrics"]["fmri"]["reconstruct"]["decoder"]["n_images"] == 8
    assert len(load_batch_images(folder / "fmri" / "decoder")) == 8
    # the run's own reconstructions are untouched
    assert len(load_batch_images(out / "reconstructions" / "decoder")) == 2 * N_STIM
    with pytest.raises(ValueError, match="Unknown reconstruct settings"):
        reconstruct_run(out, name="x", bogus=1)
    with pytest.raises(ValueError, match="'name'"):
        reconstruct_run(out, name="../up")


def test_reconstruct_command_refuses_what_is_not_a_finished_run(tmp_path, capsys):
    assert main(["reconstruct", "--run", str(tmp_path)]) == 2
    assert "no manifest.json" in capsys.readouterr().err


def _tiny_backends():
    """tests/reconstruct/test_backends.py: the tiny pipelines built in code (as diffusers'
    own tests do)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "_tiny_backends", Path(__file__).parents[1] / "reconstruct" / "test_backends.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_diffusers_backend_in_another_clip_space_gets_a_fitted_map(run, tmp_path):
    """A tiny Stable unCLIP on 16-d embeddings: the map from the run's 128-d CLIP space is
    fitted on training stimuli (onto unCLIP's own image encoder) and saved with the run."""
    tiny = _tiny_backends()
    _, out, _ = run
    tiny.tiny_unclip().save_pretrained(tmp_path / "unclip")
    result = reconstruct_run(out, name="unclip", backend="unclip", model=str(tmp_path / "unclip"),
                             num_inference_steps=2, n_stimuli=2, batch_size=4)
    folder = out / "reconstructions" / "unclip"
    emap = json.loads((folder / "embedding_map" / "embedding_map.json").read_text())
    assert emap["summary"]["in_dim"] == 128 and emap["summary"]["out_dim"] == 16
    m = result["metrics"]["fmri"]["reconstruct"]
    assert "decoder_lowlevel" not in m  # unCLIP takes no init image
    assert m["decoder"]["n_images"] == 4 and 0 <= m["decoder"]["builtin_clip_2way"] <= 1
    images = load_batch_images(folder / "fmri" / "decoder")
    assert len(images) == 4


def test_a_backend_without_an_image_encoder_needs_a_map(run, tmp_path):
    """Kandinsky 2.2's decoder pipeline has no image encoder to fit a map onto: without
    reconstruct.embedding_map the run's 128-d embeddings are refused, with the fix named."""
    tiny = _tiny_backends()
    _, out, _ = run
    tiny.tiny_kandinsky().save_pretrained(tmp_path / "kandinsky")
    with pytest.raises(ValueError, match="embedding_map"):
        reconstruct_run(out, name="kand", backend="kandinsky",
                        model=str(tmp_path / "kandinsky"), num_inference_steps=2, n_stimuli=2)
