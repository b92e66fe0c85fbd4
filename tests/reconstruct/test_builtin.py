"""The built-in image generator: loading, determinism, img2img, the Reconstructor around it,
and its training (which resumes after a crash to the same weights)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from braindecode_kit.reconstruct import Reconstructor, item_seeds
from braindecode_kit.reconstruct import builtin as B
from braindecode_kit.simulate import make_world


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A random-weight generator of the built-in layout."""
    return B.write_image_decoder(tmp_path_factory.mktemp("gen"), seed=3)


@pytest.fixture(scope="module")
def emb():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 128)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_write_and_load_round_trip(folder, tmp_path):
    module, config = B.load_image_decoder(folder)
    assert config == B.BUILTIN_IMAGE_DECODER_CONFIG
    again = B.write_image_decoder(tmp_path / "again", module)
    m2, _ = B.load_image_decoder(again)
    for (k, a), (_, b) in zip(module.state_dict().items(), m2.state_dict().items()):
        assert torch.equal(a, b), k


def test_load_errors(folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="lacks"):
        B.load_image_decoder(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / B.CONFIG_FILE).write_text((folder / B.CONFIG_FILE).read_text())
    (bad / B.WEIGHTS_FILE).write_bytes(b"\x80\x04not a safetensors file")
    with pytest.raises(ValueError, match="safetensors"):
        B.load_image_decoder(bad)
    other = tmp_path / "other"
    cfg = json.loads((folder / B.CONFIG_FILE).read_text())
    cfg["unet"]["block_out_channels"] = [32, 64, 64]
    B.write_image_decoder(other, seed=0)
    (other / B.CONFIG_FILE).write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="do not fit"):
        B.load_image_decoder(other)


def test_pixel_folding_round_trips():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    x = B.images_to_sample(images, 4)
    assert tuple(x.shape) == (3, 48, 16, 16)
    assert float(x.min()) >= -1 and float(x.max()) <= 1
    np.testing.assert_array_equal(B.sample_to_images(x, 4), images)


@pytest.mark.parametrize("kind", ["ddim", "dpm"])
@pytest.mark.parametrize("written", [True, False])
def test_sampling_starts_from_pure_noise(kind, written):
    # the first step is the last training timestep, where the training samples were pure
    # noise (diffusers' default "leading" spacing starts 10 steps at t = 900); a folder
    # written before the spacing was in the configuration samples the same way
    config = json.loads(json.dumps(B.BUILTIN_IMAGE_DECODER_CONFIG))
    if not written:
        config["scheduler"].pop("timestep_spacing")
    sched = B.make_scheduler(config, kind)
    sched.set_timesteps(10)
    t = [int(v) for v in sched.timesteps]
    assert t[0] == config["scheduler"]["num_train_timesteps"] - 1
    assert len(t) == 10 and t == sorted(t, reverse=True) and t[-1] > 0
    # a folder that asks for another spacing gets it
    config["scheduler"]["timestep_spacing"] = "leading"
    sched = B.make_scheduler(config, kind)
    sched.set_timesteps(10)
    assert int(sched.timesteps[0]) == 900


@pytest.mark.parametrize("scheduler", ["ddim", "dpm"])
def test_same_seed_same_images_in_any_batch(folder, emb, scheduler):
    gen = B.BuiltinImageGenerator(folder)
    seeds = item_seeds(0, 5)
    kw = dict(num_inference_steps=3, guidance_scale=2.0, scheduler=scheduler)
    a = gen.generate(emb, seeds=seeds, batch_size=5, **kw)
    b = gen.generate(emb, seeds=seeds, batch_size=2, **kw)
    c = gen.generate(emb[3:4], seeds=seeds[3:4], **kw)
    assert len(a) == 5 and a[0].size == (64, 64) and a[0].mode == "RGB"
    # the same noise and embedding give the same image in any batch (small batches are
    # padded to 4 rows, where CPU matmul kernels change their rounding)
    for x, y in [*zip(a, b), (a[3], c[0])]:
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    again = gen.generate(emb, seeds=seeds, batch_size=5, **kw)  # same batch: bit-identical
    for x, y in zip(a, again):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    other = gen.generate(emb, seeds=item_seeds(1, 5), **kw)
    assert not np.array_equal(np.asarray(a[0]), np.asarray(other[0]))


def test_img2img_strength(folder, emb):
    gen = B.BuiltinImageGenerator(folder)
    rng = np.random.default_rng(2)
    init = rng.integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    seeds = item_seeds(0, 5)
    kept = gen.generate(emb, seeds=seeds, num_inference_steps=4, init_images=init,
                        strength=0.0)
    np.testing.assert_array_equal(np.asarray(kept[1]), init[1])
    free = gen.generate(emb, seeds=seeds, num_inference_steps=4)
    ignored = gen.generate(emb, seeds=seeds, num_inference_steps=4, init_images=init,
                           strength=1.0)
    np.testing.assert_array_equal(np.asarray(free[2]), np.asarray(ignored[2]))
    # half-way runs start from the init: closer to it than a free run is (the shipped,
    # trained generator, from world images: a random-weight UNet's output does not depend
    # on its input in any reliable way)
    shipped = B.BuiltinImageGenerator()
    scenes = make_world(5, seed=7).to_array()
    shipped_free = shipped.generate(emb, seeds=seeds, num_inference_steps=4)
    half = shipped.generate(emb, seeds=seeds, num_inference_steps=4, init_images=scenes,
                            strength=0.5)
    d_half = np.abs(np.asarray(half, float) - scenes).mean(axis=(1, 2, 3))
    d_free = np.abs(np.asarray(shipped_free, float) - scenes).mean(axis=(1, 2, 3))
    assert (d_half < d_free).all(), (d_half, d_free)
    # init images of another size are resized
    small = rng.integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    assert len(gen.generate(emb, seeds=seeds, num_inference_steps=2, init_images=small,
                            strength=0.5)) == 5


def test_reconstructor_checks_and_settings(folder, emb):
    rec = Reconstructor(model=str(folder), num_inference_steps=2, seed=4)
    assert "builtin" in repr(rec) and "<table>" in rec._repr_html_()
    s = rec.settings()
    assert s["backend"] == "builtin" and s["num_inference_steps"] == 2 and s["seed"] == 4
    a = rec.generate(emb)
    b = rec.generate(emb * 4.0)  # embeddings are L2-normalised first (x4: exact in floats)
    np.testing.assert_array_equal(np.asarray(a[0]), np.asarray(b[0]))
    c = rec.generate(emb, seeds=item_seeds(4, 5))
    np.testing.assert_array_equal(np.asarray(a[4]), np.asarray(c[4]))
    with pytest.raises(ValueError, match="128 columns"):
        rec.generate(np.ones((2, 64), np.float32))
    with pytest.raises(ValueError, match="non-finite"):
        rec.generate(np.full((2, 128), np.nan, np.float32))
    with pytest.raises(ValueError, match="one seed per embedding"):
        rec.generate(emb, seeds=[1, 2])
    with pytest.raises(ValueError, match="'strength' needs"):
        rec.generate(emb, strength=0.5)
    with pytest.raises(ValueError, match="'backend'"):
        Reconstructor("dalle")
    with pytest.raises(ValueError, match="needs 'model'"):
        Reconstructor("kandinsky")
    with pytest.raises(TypeError, match="no backend options"):
        Reconstructor(model=str(folder), noise_level=3)


def test_item_seeds_depend_on_seed_and_key_only():
    a = item_seeds(0, ["x", "y", "z"])
    assert item_seeds(0, ["z"]) == a[2:]
    assert item_seeds(1, ["x"]) != a[:1]
    assert len(set(a)) == 3 and all(0 <= s < 2 ** 63 for s in a)
    assert item_seeds(0, 3) == item_seeds(0, [0, 1, 2])


TINY_TRAIN = dict(steps=4, batch_size=4, n_images=16, n_val=4, n_ceiling=4, eval_every=4,
                  checkpoint_every=1, seed=0)


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(folder / B.WEIGHTS_FILE)


def test_training_resumes_after_a_crash_to_the_same_weights(tmp_path, monkeypatch):
    ref = B.train_builtin_image_decoder(tmp_path / "ref", **TINY_TRAIN)
    assert ref["recipe"]["steps"] == 4 and "ceiling" in ref and ref["history"]
    assert {"builtin_clip_2way", "shape_agreement", "colour_agreement", "pixcorr",
            "ssim"} <= set(ref["ceiling"])
    assert not (tmp_path / "ref" / ".builtin_image_decoder_ckpt").exists()

    # crash inside step 3 (after the checkpoint of step 2)
    real = torch.optim.AdamW.step
    calls = {"n": 0}

    def crashing(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")
        return real(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", crashing)
    with pytest.raises(KeyboardInterrupt):
        B.train_builtin_image_decoder(tmp_path / "run", **TINY_TRAIN)
    monkeypatch.setattr(torch.optim.AdamW, "step", real)
    state = json.loads((tmp_path / "run" / ".builtin_image_decoder_ckpt" / "state.json")
                       .read_text())
    assert state["step"] == 2
    B.train_builtin_image_decoder(tmp_path / "run", **TINY_TRAIN)
    a, b = _weights(tmp_path / "ref"), _weights(tmp_path / "run")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_training_continues_a_generator(tmp_path):
    """`init` starts from a generator's weights (at a vanishing learning rate they stay
    as they were) and keeps its card's history; a generator of another layout is refused."""
    first = B.train_builtin_image_decoder(tmp_path / "first", **TINY_TRAIN)
    start = _weights(tmp_path / "first")
    card = B.train_builtin_image_decoder(tmp_path / "second", init=tmp_path / "first",
                                         **{**TINY_TRAIN, "lr": 1e-9})
    assert card["init"]["history"] == first["history"]
    assert card["recipe"]["init"] == str(tmp_path / "first")
    assert "--init" in card["command"]
    after = _weights(tmp_path / "second")
    # a vanishing learning rate: the continued weights are the starting ones (fp16 rounding)
    for k in start:
        assert torch.allclose(start[k].float(), after[k].float(), atol=2e-3), k
    assert "init" not in first

    other = json.loads((tmp_path / "first" / B.CONFIG_FILE).read_text())
    other["cond_channels"] = 4
    B.write_image_decoder(tmp_path / "other", config=other)
    with pytest.raises(ValueError, match="another configuration"):
        B.train_builtin_image_decoder(tmp_path / "third", init=tmp_path / "other", **TINY_TRAIN)
