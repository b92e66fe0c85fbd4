"""Embedder mechanics on a random built-in CLIP and on a tiny open_clip ViT built in code."""

from __future__ import annotations

import json

import numpy as np
import pytest

from braindecode_kit.embed import Embedder

TINY_VIT = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8,
                   "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2,
                 "layers": 1},
}


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory):
    """A tiny ViT registered in open_clip as 'tiny-vit' + its random weights (safetensors)."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("tiny_vit")
    cfg = folder / "tiny-vit.json"
    cfg.write_text(json.dumps(TINY_VIT))
    open_clip.add_model_config(cfg)
    torch.manual_seed(0)
    model = open_clip.model.CLIP(**TINY_VIT)
    weights = folder / "tiny_vit.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    yield {"weights": weights, "model": model, "folder": folder}
    open_clip.factory._MODEL_CONFIGS.pop("tiny-vit", None)


# --------------------------------------------------------------------------- built-in
def test_shapes_and_unit_rows(tiny_embedder, world):
    X = tiny_embedder.encode_images(world)
    T = tiny_embedder.encode_texts(["a red star", "a blue circle at the top", "x"])
    assert X.shape == (len(world), tiny_embedder.embed_dim) == (20, 128)
    assert T.shape == (3, 128)
    assert X.dtype == np.float32 and T.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(T, axis=1), 1, atol=1e-5)
    assert not np.allclose(X[0], X[1])  # different images, different embeddings
    assert not np.allclose(T[0], T[1])


def test_inputs_agree(tiny_embedder, world):
    """StimulusSet (in ids order), list of PIL images and a uint8 array give the same rows."""
    X = tiny_embedder.encode_images(world)
    images = [world.load_image(i) for i in world.ids]
    np.testing.assert_array_equal(tiny_embedder.encode_images(images), X)
    np.testing.assert_array_equal(tiny_embedder.encode_images(world.to_array()), X)
    sub = world.subset(world.ids[::-1][:5])  # order follows the set's ids
    # (other batch shapes: equal up to float rounding)
    np.testing.assert_allclose(tiny_embedder.encode_images(sub), X[::-1][:5], atol=1e-6)
    np.testing.assert_allclose(tiny_embedder.encode_images(images[3]), X[3:4], atol=1e-6)


def test_deterministic_and_batch_size_free(tiny_builtin_dir, tiny_embedder, world):
    other = Embedder("builtin", pretrained=str(tiny_builtin_dir), batch_size=7)
    assert other.identity == tiny_embedder.identity
    np.testing.assert_allclose(other.encode_images(world), tiny_embedder.encode_images(world),
                               atol=1e-5)
    texts = [c for i in world.ids for c in world.captions(i)][:30]
    np.testing.assert_allclose(other.encode_texts(texts), tiny_embedder.encode_texts(texts),
                               atol=1e-5)
    np.testing.assert_array_equal(tiny_embedder.encode_images(world),
                                  tiny_embedder.encode_images(world))


def test_image_tokens_are_the_pooled_feature_map(tiny_embedder, world, builtin_token_shape):
    """ModifiedResNet: layer4's h x w grid as h * w tokens; attention pooling them gives
    the pooled embedding."""
    import torch

    n_tok, width = builtin_token_shape
    side = int(round(n_tok ** 0.5))
    tok = tiny_embedder.encode_image_tokens(world.subset(world.ids[:6]))
    assert tok.shape == (6, n_tok, width) and tok.dtype == np.float32
    grid = torch.from_numpy(tok).transpose(1, 2).reshape(6, width, side, side)
    with torch.no_grad():
        pooled = tiny_embedder.clip.visual.attnpool(grid)
    pooled = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    np.testing.assert_allclose(pooled, tiny_embedder.encode_images(world)[:6], atol=1e-5)


def test_identity_follows_the_weights(tmp_path, tiny_embedder):
    from braindecode_kit.embed import write_builtin_files

    write_builtin_files(tmp_path, seed=1, vocabulary=tiny_embedder.tokenizer.words)
    other = Embedder("builtin", pretrained=str(tmp_path))
    assert other.identity != tiny_embedder.identity
    assert other.identity.startswith("builtin_clip@")
    assert "builtin_clip@" in repr(other)


def test_precision_and_device(tiny_builtin_dir, world):
    import torch

    emb = Embedder("builtin", pretrained=str(tiny_builtin_dir), precision="bf16")
    assert next(emb.clip.parameters()).dtype == torch.bfloat16
    X = emb.encode_images(world.subset(world.ids[:4]))
    assert X.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1, atol=1e-3)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            Embedder("builtin", pretrained=str(tiny_builtin_dir), device="cuda")


def test_pickled_builtin_weights_are_refused(tmp_path, tiny_builtin_dir, monkeypatch):
    import shutil

    import torch

    for f in tiny_builtin_dir.iterdir():
        shutil.copy(f, tmp_path / f.name)
    model = Embedder("builtin", pretrained=str(tiny_builtin_dir)).clip
    torch.save(model.state_dict(), tmp_path / "builtin_clip.safetensors")  # a pickle
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load was called"))
    with pytest.raises(ValueError, match="pickled checkpoints are refused"):
        Embedder("builtin", pretrained=str(tmp_path))


def test_bad_input(tiny_embedder, tmp_path):
    with pytest.raises(ValueError, match=r"uint8 of shape \(n, height, width, 3\).*float64"):
        tiny_embedder.encode_images(np.zeros((2, 8, 8, 3)))
    with pytest.raises(ValueError, match=r"shape \(2, 8, 8\)"):
        tiny_embedder.encode_images(np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(TypeError, match="item 1 is a str"):
        tiny_embedder.encode_images([_img(), "x"])
    with pytest.raises(TypeError, match="list of str, but got int"):
        tiny_embedder.encode_texts(["a", 3])
    with pytest.raises(ValueError, match="'precision'.*'fp32'.*'fp8'"):
        Embedder("builtin", precision="fp8")
    with pytest.raises(ValueError, match="'batch_size' must be a positive int.*0"):
        Embedder("builtin", batch_size=0)
    with pytest.raises(ValueError, match="'model'.*'no-such-clip'"):
        Embedder("no-such-clip")
    with pytest.raises(FileNotFoundError, match="lacks"):
        Embedder("builtin", pretrained=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="not a folder"):
        Embedder("builtin", pretrained=str(tmp_path / "nothing"))


def _img():
    from PIL import Image

    return Image.new("RGB", (64, 64))


def test_empty_inputs(tiny_embedder):
    assert tiny_embedder.encode_texts([]).shape == (0, 128)
    assert tiny_embedder.encode_images([]).shape == (0, 128)


# --------------------------------------------------------------------------- open_clip
def test_open_clip_model_from_local_safetensors(tiny_vit, world):
    import torch

    emb = Embedder("tiny-vit", pretrained=str(tiny_vit["weights"]), batch_size=8)
    assert emb.embed_dim == 16 and emb.model_name == "tiny-vit"
    assert emb.identity.startswith("tiny-vit@")
    for name, p in tiny_vit["model"].state_dict().items():  # the weights were loaded
        torch.testing.assert_close(emb.clip.state_dict()[name], p)
    X = emb.encode_images(world)
    T = emb.encode_texts(["a red star", "a blue square"])
    assert X.shape == (20, 16) and T.shape == (2, 16)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(T, axis=1), 1, atol=1e-5)
    tok = emb.encode_image_tokens(world.subset(world.ids[:3]))
    assert tok.shape == (3, 1 + (32 // 8) ** 2, 32)  # class token + 4x4 patches, width 32
    # the class token after ln_post, projected, is the pooled embedding
    pooled = torch.from_numpy(tok[:, 0]) @ emb.clip.visual.proj.detach()
    np.testing.assert_allclose(torch.nn.functional.normalize(pooled, dim=-1).numpy(), X[:3],
                               atol=1e-5)
    same = Embedder("tiny-vit", pretrained=str(tiny_vit["weights"]), batch_size=3)
    assert same.identity == emb.identity
    np.testing.assert_allclose(same.encode_images(world), X, atol=1e-5)


def test_open_clip_safetensors_under_another_suffix(tiny_vit, world):
    import shutil

    odd = tiny_vit["folder"] / "weights.bin"
    shutil.copy(tiny_vit["weights"], odd)
    a = Embedder("tiny-vit", pretrained=str(odd))
    b = Embedder("tiny-vit", pretrained=str(tiny_vit["weights"]))
    assert a.identity == b.identity
    np.testing.assert_array_equal(a.encode_texts(["a star"]), b.encode_texts(["a star"]))


def test_open_clip_pickle_checkpoint_is_refused(tiny_vit, tmp_path, monkeypatch):
    import torch

    pt = tmp_path / "tiny.pt"
    torch.save(tiny_vit["model"].state_dict(), pt)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load was called"))
    with pytest.raises(ValueError, match=r"Expected a safetensors checkpoint.*tiny\.pt.*refused"):
        Embedder("tiny-vit", pretrained=str(pt))
    with pytest.raises(FileNotFoundError, match="not found"):
        Embedder("tiny-vit", pretrained=str(tmp_path / "missing.safetensors"))


def test_open_clip_tag_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match=r"'RN50'.*'openai'.*cannot be downloaded offline"):
        Embedder("RN50", pretrained="openai")
    with pytest.raises(ValueError, match="neither a local checkpoint file nor a pretrained tag"):
        Embedder("RN50", pretrained="no-such-tag")


def _fake_hub(tmp_path, monkeypatch, files: dict):
    """A local Hugging Face cache holding repo fakeorg/tiny-vit, and the tag 'fake' of
    'tiny-vit' pointing at it (as open_clip's pretrained table points tags at the hub)."""
    import huggingface_hub.constants
    from open_clip import pretrained as oc_pretrained

    repo = tmp_path / "hub" / "models--fakeorg--tiny-vit"
    snap = repo / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    for name, write in files.items():
        write(snap / name)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setitem(oc_pretrained._PRETRAINED, "tiny-vit",
                        {"fake": oc_pretrained._pcfg(hf_hub="fakeorg/tiny-vit/")})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_open_clip_tag_from_the_local_hub_cache(tiny_vit, tmp_path, monkeypatch, world):
    import shutil

    _fake_hub(tmp_path, monkeypatch, {
        "open_clip_model.safetensors": lambda p: shutil.copy(tiny_vit["weights"], p)})
    emb = Embedder("tiny-vit", pretrained="fake")
    ref = Embedder("tiny-vit", pretrained=str(tiny_vit["weights"]))
    assert emb.identity == ref.identity  # same weights bytes, same identity
    np.testing.assert_allclose(emb.encode_images(world), ref.encode_images(world), atol=1e-6)


def test_open_clip_tag_with_pickled_weights_is_refused(tiny_vit, tmp_path, monkeypatch):
    import torch

    _fake_hub(tmp_path, monkeypatch, {
        "open_clip_pytorch_model.bin": lambda p: torch.save(tiny_vit["model"].state_dict(), p)})
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load was called"))
    with pytest.raises(ValueError, match=r"'tiny-vit'.*'fake'.*not a safetensors file.*refused"):
        Embedder("tiny-vit", pretrained="fake")


def _devices():
    import torch

    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", _devices())
def test_devices_agree(tiny_builtin_dir, tiny_embedder, world, device):
    emb = Embedder("builtin", pretrained=str(tiny_builtin_dir), device=device)
    assert next(emb.clip.parameters()).device.type == device
    np.testing.assert_allclose(emb.encode_images(world), tiny_embedder.encode_images(world),
                               atol=1e-4)
    np.testing.assert_allclose(emb.encode_texts(["a red star"]),
                               tiny_embedder.encode_texts(["a red star"]), atol=1e-4)
