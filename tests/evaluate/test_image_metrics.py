"""Tests of the image metrics (MindEye2's protocol): PixCorr, SSIM, 2-way identification
and correlation distance on network features, the built-in CLIP 2-way and the FID.

The evaluation networks are torchvision's architectures with random weights (weights=None)
saved to safetensors files here: the values are not MindEye2's, but everything the
metrics do with a network's features is checked, and no file is ever downloaded.
"""

from __future__ import annotations

import numpy as np
import pytest

import braindecode_kit.evaluate as evaluate
from braindecode_kit.evaluate import image_metrics as image_metrics_fn
from braindecode_kit.evaluate.image_metrics import (
    _NETS,
    IMAGE_METRICS,
    NETWORKS,
    _BuiltinClipImages,
    as_image_array,
    correlation_distance,
    frechet_distance,
    network_features,
    pixcorr,
    ssim,
    two_way,
)

NETWORK_METRICS = ("alexnet_2", "alexnet_5", "inception", "clip", "effnet", "swav")


def random_images(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def world_images(n: int, seed: int) -> np.ndarray:
    from braindecode_kit.simulate import make_world

    return make_world(n, seed=seed).to_array()


@pytest.fixture
def empty_caches(monkeypatch, tmp_path):
    """No torch hub checkpoints and no Hugging Face cache: nothing to find."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path


@pytest.fixture(scope="module")
def net_weights(tmp_path_factory):
    """Random-weight torchvision networks saved as safetensors state dicts; the SwAV one
    laid out as the real checkpoint (``module.`` prefixes, a projection head, no fc)."""
    import torch
    import torchvision.models as tvm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("weights")
    nets = {
        "alexnet": tvm.alexnet(weights=None),
        "inception": tvm.inception_v3(weights=None, aux_logits=True, init_weights=False),
        "effnet": tvm.efficientnet_b1(weights=None),
    }
    paths = {}
    for name, model in nets.items():
        paths[name] = folder / f"{name}.safetensors"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, paths[name])
    swav = {f"module.{k}": v for k, v in tvm.resnet50(weights=None).state_dict().items()
            if not k.startswith("fc.")}
    swav["module.projection_head.0.weight"] = torch.randn(8, 2048)
    swav["module.prototypes.weight"] = torch.randn(30, 8)
    paths["swav"] = folder / "swav.safetensors"
    save_file(swav, paths["swav"])
    return paths


@pytest.fixture(scope="module")
def tiny_clip():
    """A small open_clip CLIP (ViT tower at 224 px) as a ``clip_model`` module."""
    import open_clip
    import torch

    torch.manual_seed(0)
    return open_clip.model.CLIP(
        embed_dim=16,
        vision_cfg={"image_size": 224, "patch_size": 56, "width": 32, "layers": 1,
                    "head_width": 16},
        text_cfg={"context_length": 8, "vocab_size": 20, "width": 16, "heads": 2, "layers": 1},
    ).eval()


# --------------------------------------------------------------------------- 2-way
# three orthogonal, zero-mean features (Pearson r = cosine) and reconstructions of them
A = np.array([1.0, -1, 0, 0])
B = np.array([0.0, 0, 1, -1])
C = np.array([1.0, 1, -1, -1])
SEEN = np.stack([A, B, C])


def test_two_way_hand_computed_with_a_tie():
    rec = np.stack([A + B, -B, C + 0.5 * A])
    # R[i, j] = r(seen_i, rec_j):
    # rec 0 = a + b: r(a)=.707 (own), r(b)=.707 (a tie: a failure), r(c)=0 -> 1/2
    # rec 1 = -b:    r(b)=-1 (own), r(a)=0, r(c)=0, both higher -> 0/2
    # rec 2 = c+a/2: r(c)=.943 (own), r(a)=.333, r(b)=0 -> 2/2
    assert two_way(SEEN, rec) == pytest.approx((0.5 + 0.0 + 1.0) / 3)
    # the roles of seen and reconstructed are not symmetric: swapped, 2/3
    assert two_way(rec, SEEN) == pytest.approx(2 / 3)


def test_two_way_perfect_anti_correlated_and_the_corrcoef_protocol():
    assert two_way(SEEN, SEEN) == 1.0
    assert two_way(SEEN, 3.0 * SEEN + 1.0) == 1.0  # Pearson: scale and offset free
    assert two_way(SEEN, -SEEN) == 0.0  # each own correlation -1, the others 0

    rng = np.random.default_rng(3)
    f_gt = rng.standard_normal((20, 4, 5))
    f_rec = f_gt + 1.2 * rng.standard_normal(f_gt.shape)
    n = len(f_gt)
    r = np.corrcoef(f_gt.reshape(n, -1), f_rec.reshape(n, -1))[:n, n:]  # PROTOCOLS.md
    expected = np.mean([np.mean([r[i, j] < r[j, j] for i in range(n) if i != j])
                        for j in range(n)])
    assert two_way(f_gt, f_rec) == pytest.approx(expected)
    assert 0.5 < expected < 1.0


def test_correlation_distance_hand_and_scipy():
    from scipy.spatial.distance import correlation

    assert correlation_distance(SEEN, SEEN) == pytest.approx(0.0, abs=1e-12)
    assert correlation_distance(SEEN, -SEEN) == pytest.approx(2.0)
    assert correlation_distance(SEEN, np.stack([B, C, A])) == pytest.approx(1.0)  # orthogonal
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((2, 7, 3, 4))
    ref = np.mean([correlation(u.ravel(), v.ravel()) for u, v in zip(x, y)])
    assert correlation_distance(x, y) == pytest.approx(ref)
    with pytest.raises(ValueError, match="same shape|one shape"):
        correlation_distance(x, y[:3])


# --------------------------------------------------------------------------- low level
def test_pixcorr_identical_inverted_and_direct_numpy():
    imgs = random_images(3, 16)
    assert pixcorr(imgs, imgs) == pytest.approx(1.0, abs=1e-6)
    assert pixcorr(imgs, 255 - imgs) == pytest.approx(-1.0, abs=1e-6)  # resize is linear
    # at 425 px nothing is resized: the Pearson correlation of the raw pixels
    big_a, big_b = random_images(2, 425, seed=1), random_images(2, 425, seed=2)
    mix = ((big_a.astype(float) + big_b) / 2).astype(np.uint8)
    expected = np.mean([np.corrcoef(x.ravel() / 255.0, y.ravel() / 255.0)[0, 1]
                        for x, y in zip(big_a, mix)])
    assert pixcorr(big_a, mix) == pytest.approx(expected, abs=1e-5)
    assert 0.5 < expected < 0.9


def test_low_level_metrics_across_resolutions_and_input_kinds():
    from PIL import Image

    seen = world_images(3, seed=4)  # 64 px
    rec = [Image.fromarray(x).resize((128, 128), Image.BILINEAR) for x in seen]  # 128 px
    assert pixcorr(seen, rec) > 0.97
    assert ssim(seen, rec) > 0.9
    assert pixcorr(seen, seen.astype(np.float32) / 255.0) == pytest.approx(1.0, abs=1e-6)


def test_ssim_identical_and_noise_reduces_it():
    seen = world_images(3, seed=5)
    rng = np.random.default_rng(0)

    def noisy(sd):
        return np.clip(seen + rng.normal(0, sd, seen.shape), 0, 255).astype(np.uint8)

    assert ssim(seen, seen) == pytest.approx(1.0, abs=1e-9)
    s_low, s_high = ssim(seen, noisy(15)), ssim(seen, noisy(60))
    assert 1.0 > s_low > s_high > 0.0


# --------------------------------------------------------------------------- inputs
def test_bad_inputs_are_refused_with_clear_messages():
    imgs = random_images(4)
    with pytest.raises(ValueError, match=r"'seen' and 'reconstructed' must hold as many.*4 and 3"):
        image_metrics_fn(imgs, imgs[:3])
    with pytest.raises(ValueError, match=r"'reconstructed' must have shape \(n, height, width, "
                                         r"3\), but got \(4, 32, 32\)"):
        pixcorr(imgs, imgs[..., 0])
    with pytest.raises(ValueError, match=r"'seen' must have shape.*\(4, 32, 32, 4\)"):
        ssim(np.concatenate([imgs, imgs[..., :1]], -1), imgs)
    with pytest.raises(ValueError, match=r"float 'seen' must lie in \[0, 1\]"):
        pixcorr(imgs.astype(np.float32), imgs)
    with pytest.raises(ValueError, match="'seen' must be a list of PIL images"):
        pixcorr([1, 2, 3, 4], imgs)
    with pytest.raises(ValueError, match="at least 2 image pairs"):
        image_metrics_fn(imgs[:1], imgs[:1])
    with pytest.raises(ValueError, match="empty"):
        pixcorr(imgs[:0], imgs[:0])


def test_bad_arguments_are_refused(tmp_path):
    imgs = random_images(2)
    with pytest.raises(ValueError, match=r"key of the 'weights'.*'alexnet'.*'vgg'"):
        image_metrics_fn(imgs, imgs, weights={"vgg": "x.safetensors"})
    with pytest.raises(FileNotFoundError, match=r"weights\['effnet'\].*is not a file"):
        image_metrics_fn(imgs, imgs, weights={"effnet": tmp_path / "missing.safetensors"})
    with pytest.raises(ValueError, match="'fid_feature'.*'builtin', 'inception'.*'vgg'"):
        image_metrics_fn(imgs, imgs, fid_feature="vgg")
    with pytest.raises(TypeError, match="'embedder'.*encode_images"):
        image_metrics_fn(imgs, imgs, embedder=object())
    with pytest.raises(ValueError, match="'batch_size'"):
        image_metrics_fn(imgs, imgs, batch_size=0)
    with pytest.raises(ValueError, match="'device'"):
        image_metrics_fn(imgs, imgs, device="no-such-device")
    with pytest.raises(ValueError, match="'network'.*'alexnet'"):
        network_features(imgs, "vgg16")
    with pytest.raises(ValueError, match="'clip_model'.*'no-such-clip'"):
        network_features(imgs, "clip", clip_model="no-such-clip")


def test_weights_files_safetensors_or_safe_pth_only(tmp_path, net_weights):
    import torch
    import torchvision.models as tvm
    from safetensors.torch import load_file, save_file

    imgs = random_images(2)
    bad_suffix = tmp_path / "effnet.bin"
    bad_suffix.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"weights\['effnet'\] must be a \.safetensors file"):
        network_features(imgs, "effnet", weights={"effnet": bad_suffix})
    fake = tmp_path / "fake.safetensors"
    fake.write_bytes(b"\x80\x04 a pickle, not safetensors")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        network_features(imgs, "effnet", weights={"effnet": fake})
    pickled = tmp_path / "model.pth"
    torch.save(tvm.alexnet(weights=None), pickled)  # a whole pickled module
    with pytest.raises(ValueError, match=r"weights_only=True"):
        network_features(imgs, "alexnet", weights={"alexnet": pickled})
    with pytest.raises(ValueError, match=r"does not fit EfficientNet: size mismatch"):
        network_features(imgs, "effnet", weights={"effnet": net_weights["alexnet"]})
    partial = load_file(net_weights["effnet"])
    del partial["features.0.0.weight"]
    partial["head.weight"] = torch.zeros(2)
    save_file(partial, tmp_path / "partial.safetensors")
    with pytest.raises(ValueError, match=r"1 missing key\(s\) \['features.0.0.weight'\] and "
                                         r"1 unexpected key\(s\) \['head.weight'\]"):
        network_features(imgs, "effnet", weights={"effnet": tmp_path / "partial.safetensors"})
    with pytest.raises(ValueError, match="two layers of one AlexNet"):
        image_metrics_fn(imgs, imgs, weights={"alexnet_2": net_weights["alexnet"],
                                              "alexnet_5": net_weights["effnet"]})


def test_file_names_are_torchvisions():
    import torchvision.models as tvm

    urls = {"alexnet": tvm.AlexNet_Weights.IMAGENET1K_V1.url,
            "inception": tvm.Inception_V3_Weights.DEFAULT.url,
            "effnet": tvm.EfficientNet_B1_Weights.DEFAULT.url}
    for net, url in urls.items():
        assert _NETS[net][3] == url.rsplit("/", 1)[1]
    assert set(NETWORKS) == {"alexnet", "inception", "clip", "effnet", "swav"}


# --------------------------------------------------------------------------- availability
def test_unavailable_networks_are_reported_not_dropped(empty_caches):
    imgs = random_images(4)
    res = image_metrics_fn(imgs, imgs[::-1])
    assert list(res) == list(IMAGE_METRICS)
    files = {"alexnet_2": "alexnet-owt-7be5be79.pth", "alexnet_5": "alexnet-owt-7be5be79.pth",
             "inception": "inception_v3_google-0cc3c7bd.pth",
             "clip": "open_clip_model.safetensors",
             "effnet": "efficientnet_b1-c27df63c.pth", "swav": "swav_800ep_pretrain.pth.tar"}
    assert set(files) == set(NETWORK_METRICS)
    for metric, file in files.items():
        entry = res[metric]
        assert set(entry) == {"value", "unavailable"} and entry["value"] is None, metric
        assert file in entry["unavailable"] and "weights=" in entry["unavailable"], metric
        assert str(empty_caches) in entry["unavailable"]  # where it was looked for
    for metric in ("pixcorr", "ssim", "builtin_clip_2way"):
        assert set(res[metric]) == {"value", "higher_is_better", "protocol"}
        assert res[metric]["higher_is_better"] is True
    assert 0.0 <= res["builtin_clip_2way"]["value"] <= 1.0
    assert res["fid"]["value"] is None
    assert "n=4" in res["fid"]["unavailable"] and "d=128" in res["fid"]["unavailable"]


def test_network_metrics_with_local_weights(net_weights, empty_caches):
    seen = random_images(5, seed=7)
    res = image_metrics_fn(seen, seen, weights=net_weights)
    for metric in ("alexnet_2", "alexnet_5", "inception", "builtin_clip_2way"):
        assert res[metric]["value"] == 1.0, metric  # distinct images, identical features
        assert res[metric]["higher_is_better"] is True
    for metric in ("effnet", "swav"):
        assert res[metric]["value"] == pytest.approx(0.0, abs=1e-6), metric
        assert res[metric]["higher_is_better"] is False
    assert "features.4" in res["alexnet_2"]["protocol"]
    assert "features.11" in res["alexnet_5"]["protocol"]
    assert "bilinear 342" in res["inception"]["protocol"]
    assert "1 - Pearson" in res["swav"]["protocol"]
    assert "unavailable" in res["clip"]  # no CLIP weights given

    # each reconstruction is the next seen image: the own pair is beaten at least once
    shifted = seen[[1, 2, 3, 4, 0]]
    partial = {"alexnet": net_weights["alexnet"], "effnet": net_weights["effnet"]}
    res2 = image_metrics_fn(seen, shifted, weights=partial)
    for metric in ("alexnet_2", "alexnet_5"):
        assert 0.0 <= res2[metric]["value"] < 1.0
    assert 0.0 < res2["effnet"]["value"] <= 2.0
    for metric in ("inception", "swav", "clip"):  # not given this time
        assert res2[metric]["value"] is None and "unavailable" in res2[metric]


def test_network_features_from_torch_hub_cache_and_deterministic(net_weights, empty_caches):
    import torch
    from safetensors.torch import load_file

    imgs = random_images(3, seed=2)
    direct = network_features(imgs, "effnet", weights={"effnet": net_weights["effnet"]})
    assert set(direct) == {"avgpool"} and direct["avgpool"].shape == (3, 1280)
    assert direct["avgpool"].dtype == np.float32
    again = network_features(imgs, "effnet", weights={"effnet": net_weights["effnet"]})
    np.testing.assert_array_equal(direct["avgpool"], again["avgpool"])

    hub = empty_caches / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    # torchvision's own cached file: a pickled state dict, read with weights_only=True
    torch.save(load_file(net_weights["effnet"]), hub / "efficientnet_b1-c27df63c.pth")
    cached = network_features(imgs, "effnet")
    np.testing.assert_allclose(cached["avgpool"], direct["avgpool"], rtol=1e-6, atol=1e-6)
    # a .safetensors of the same name is preferred to the .pth
    (hub / "efficientnet_b1-c27df63c.safetensors").symlink_to(net_weights["alexnet"])
    with pytest.raises(ValueError, match="does not fit EfficientNet"):
        network_features(imgs, "effnet")


@pytest.mark.parametrize("network, size, nodes", [
    ("alexnet", 256, {"features.4": 192 * 31 * 31, "features.11": 256 * 15 * 15}),
    ("effnet", 255, {"avgpool": 1280}),
])
def test_features_are_torchvisions_feature_extractor(net_weights, network, size, nodes):
    """MindEye2's recipe, written out: bilinear resize (no crop), ImageNet normalisation,
    ``create_feature_extractor`` at the named nodes."""
    import torch
    import torchvision.models as tvm
    from safetensors.torch import load_file
    from torchvision.models.feature_extraction import create_feature_extractor
    from torchvision.transforms import InterpolationMode, Normalize
    from torchvision.transforms import functional as TF

    imgs = random_images(2, size=40, seed=5)
    ours = network_features(imgs, network, weights={network: net_weights[network]})
    model = {"alexnet": tvm.alexnet, "effnet": tvm.efficientnet_b1}[network](weights=None)
    model.load_state_dict(load_file(net_weights[network]))
    extractor = create_feature_extractor(model.eval(), return_nodes=list(nodes))
    x = TF.resize(torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255, [size, size],
                  interpolation=InterpolationMode.BILINEAR, antialias=True)
    x = Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))(x)
    with torch.no_grad():
        ref = extractor(x)
    for node, d in nodes.items():
        assert ours[node].shape == (2, d)
        np.testing.assert_allclose(ours[node], ref[node].flatten(1).numpy(), rtol=1e-4,
                                   atol=1e-5)


def test_clip_metric_with_a_clip_module(tiny_clip, empty_caches):
    seen = random_images(4, seed=3)
    feats = network_features(seen, "clip", clip_model=tiny_clip)
    assert feats["image_embedding"].shape == (4, 16)
    res = image_metrics_fn(seen, seen, clip_model=tiny_clip)
    assert res["clip"]["value"] == 1.0 and res["clip"]["higher_is_better"] is True
    assert "2-way" in res["clip"]["protocol"] and "bilinear 224" in res["clip"]["protocol"]
    # an open_clip name without weights: unavailable, naming the argument needed
    res = image_metrics_fn(seen, seen, clip_model="ViT-B-32")
    assert res["clip"]["value"] is None and "weights={'clip'" in res["clip"]["unavailable"]


def test_builtin_clip_matches_the_embedder():
    from braindecode_kit.embed import Embedder

    imgs = world_images(6, seed=8)
    emb = Embedder("builtin")
    ours = _BuiltinClipImages().encode_images(imgs)
    np.testing.assert_allclose(ours, emb.encode_images(imgs), atol=1e-5)
    rec = world_images(6, seed=9)
    default = image_metrics_fn(imgs, rec)["builtin_clip_2way"]
    given = image_metrics_fn(imgs, rec, embedder=emb)["builtin_clip_2way"]
    assert given["value"] == pytest.approx(default["value"])
    assert given["value"] == pytest.approx(two_way(emb.encode_images(imgs),
                                                   emb.encode_images(rec)))
    assert "builtin_clip@" in given["protocol"]


# --------------------------------------------------------------------------- FID
def reference_fid(f1: np.ndarray, f2: np.ndarray) -> float:
    from scipy.linalg import sqrtm

    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * sqrtm(s1 @ s2).real))


def test_fid_builtin_clip_feature():
    from braindecode_kit.embed import Embedder

    seen, other = world_images(140, seed=11), world_images(140, seed=12)
    same = frechet_distance(seen, seen)
    assert set(same) == {"value", "higher_is_better", "protocol"}
    assert same["higher_is_better"] is False and "d=128" in same["protocol"]
    assert abs(same["value"]) < 1e-4
    fid_other = frechet_distance(seen, other)["value"]
    fid_inverted = frechet_distance(seen, 255 - seen)["value"]
    assert 0.0 < fid_other < fid_inverted  # same distribution < another distribution
    emb = Embedder("builtin")
    ref = reference_fid(emb.encode_images(seen).astype(np.float64),
                        emb.encode_images(other).astype(np.float64))
    assert fid_other == pytest.approx(ref, rel=1e-3)
    too_few = frechet_distance(seen[:128], other[:128])
    assert too_few["value"] is None and "n > d" in too_few["unavailable"]
    assert "n=128" in too_few["unavailable"] and "129" in too_few["unavailable"]


def test_fid_custom_and_inception_features(empty_caches):
    import torch

    class MeanStd(torch.nn.Module):  # 6 features: per-channel mean and spread
        def forward(self, x):
            return torch.cat([x.mean((2, 3)), x.std((2, 3))], 1)

    seen, rec = world_images(12, seed=13), world_images(12, seed=14)
    res = frechet_distance(seen, rec, feature=MeanStd())
    assert "d=6" in res["protocol"] and "MeanStd" in res["protocol"]
    x, y = (torch.from_numpy(as_image_array(i)) for i in (seen, rec))
    ref = reference_fid(MeanStd()(x).double().numpy(), MeanStd()(y).double().numpy())
    assert res["value"] == pytest.approx(ref, rel=1e-4, abs=1e-9)
    assert abs(frechet_distance(seen, seen, feature=MeanStd())["value"]) < 1e-8
    via_all = image_metrics_fn(seen, rec, fid_feature=MeanStd())["fid"]
    assert via_all["value"] == pytest.approx(res["value"])
    inc = image_metrics_fn(seen, rec, fid_feature="inception")["fid"]
    assert inc["value"] is None and "d=2048" in inc["unavailable"]


def test_package_level_names():
    assert evaluate.image_metrics is image_metrics_fn and callable(evaluate.image_metrics)
    assert evaluate.pixcorr is pixcorr and evaluate.ssim is ssim
    assert evaluate.frechet_distance is frechet_distance
    assert {"image_metrics", "pixcorr", "ssim", "network_features"} <= set(evaluate.__all__)
