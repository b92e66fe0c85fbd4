"""The diffusers reconstruction backends (Stable unCLIP, Kandinsky 2.2, IP-Adapter on Stable
Diffusion) with tiny pipelines built in code (diffusers' ``get_dummy_components`` recipe;
a CLIP tokenizer from the first merges of open_clip's BPE vocabulary), offline.

One contract suite runs on every backend: image count and size, seeds (same seed, same
image; another seed, another image; an image does not depend on its batch), conditioning
(another embedding, another image), input errors. Then each backend's own options, loading
from a saved folder and the offline error, and the Reconstructor end to end with an
EmbeddingMap from a 128-d space."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

pytest.importorskip("diffusers")

STEPS = 2
SIZE = 32
DIMS = {"unclip": 16, "kandinsky": 16, "ip_adapter": 12}


# --------------------------------------------------------------------------- tiny pipelines
def _tokenizer():
    """A CLIP tokenizer on the byte alphabet plus open_clip's first 200 BPE merges."""
    from open_clip.tokenizer import bytes_to_unicode, default_bpe
    from transformers import CLIPTokenizer

    with gzip.open(default_bpe()) as f:
        lines = f.read().decode("utf-8").split("\n")[1:201]
    merges = [tuple(line.split()) for line in lines]
    chars = list(bytes_to_unicode().values())
    words = (chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges]
             + ["<|startoftext|>", "<|endoftext|>"])
    return CLIPTokenizer(vocab={w: i for i, w in enumerate(words)}, merges=merges,
                         model_max_length=77)


def _text_encoder(tokenizer, width: int):
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        hidden_size=width, projection_dim=width, intermediate_size=32, num_attention_heads=2,
        num_hidden_layers=2, max_position_embeddings=77)).eval()


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(block_out_channels=(8,), norm_num_groups=4, latent_channels=4,
                         sample_size=SIZE).eval()


def _sd_unet(cross: int, **kwargs):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=SIZE, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(8, 16), norm_num_groups=4, attention_head_dim=(2, 4),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=cross,
        **kwargs).eval()


def tiny_unclip():
    """A StableUnCLIPImg2ImgPipeline on 16-d image embeddings, 32 x 32 images."""
    import torch
    from diffusers import DDIMScheduler, DDPMScheduler, StableUnCLIPImg2ImgPipeline
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import (
        StableUnCLIPImageNormalizer,
    )
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    d = DIMS["unclip"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        tok = _tokenizer()
        return StableUnCLIPImg2ImgPipeline(
            feature_extractor=CLIPImageProcessor(crop_size=SIZE, size=SIZE),
            image_encoder=CLIPVisionModelWithProjection(CLIPVisionConfig(
                hidden_size=d, projection_dim=d, num_hidden_layers=1, num_attention_heads=2,
                image_size=SIZE, intermediate_size=32, patch_size=8)).eval(),
            image_normalizer=StableUnCLIPImageNormalizer(embedding_dim=d).eval(),
            image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"),
            tokenizer=tok, text_encoder=_text_encoder(tok, d),
            unet=_sd_unet(d, class_embed_type="projection",
                          projection_class_embeddings_input_dim=2 * d, upcast_attention=True,
                          use_linear_projection=True),
            scheduler=DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085,
                                    beta_end=0.012, prediction_type="v_prediction",
                                    set_alpha_to_one=False, steps_offset=1),
            vae=_vae())


def tiny_kandinsky():
    """A KandinskyV22Pipeline on 16-d image embeddings (movq scale factor 2)."""
    import torch
    from diffusers import DDIMScheduler, KandinskyV22Pipeline, UNet2DConditionModel, VQModel

    d = DIMS["kandinsky"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = UNet2DConditionModel(
            in_channels=4, out_channels=8, addition_embed_type="image", layers_per_block=1,
            down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
            up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
            mid_block_type="UNetMidBlock2DSimpleCrossAttn", block_out_channels=(8, 16),
            norm_num_groups=4, encoder_hid_dim=d, encoder_hid_dim_type="image_proj",
            cross_attention_dim=16, attention_head_dim=4, resnet_time_scale_shift="scale_shift",
            class_embed_type=None).eval()
        movq = VQModel(  # SpatialNorm fixes 32 groups: the movq keeps diffusers' widths
            block_out_channels=[32, 64], in_channels=3, out_channels=3, latent_channels=4,
            down_block_types=["DownEncoderBlock2D", "AttnDownEncoderBlock2D"],
            up_block_types=["AttnUpDecoderBlock2D", "UpDecoderBlock2D"], layers_per_block=1,
            norm_num_groups=8, norm_type="spatial", num_vq_embeddings=12, vq_embed_dim=4).eval()
    scheduler = DDIMScheduler(beta_schedule="linear", beta_start=0.00085, beta_end=0.012,
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    return KandinskyV22Pipeline(unet=unet, scheduler=scheduler, movq=movq)


def tiny_sd():
    """A StableDiffusionPipeline (16-d text tokens), no safety checker, no image encoder."""
    import torch
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        tok = _tokenizer()
        return StableDiffusionPipeline(
            vae=_vae(), text_encoder=_text_encoder(tok, 16), tokenizer=tok, unet=_sd_unet(16),
            scheduler=DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085,
                                    beta_end=0.012, clip_sample=False, set_alpha_to_one=False,
                                    steps_offset=1),
            safety_checker=None, feature_extractor=None, image_encoder=None,
            requires_safety_checker=False)


def write_ip_adapter(folder, unet, embed_dim: int = DIMS["ip_adapter"], seed: int = 0):
    """Random plain IP-Adapter weights for ``unet`` in the original file layout
    (``image_proj.*``: the 4-token projection; ``ip_adapter.{1,3,5...}.to_{k,v}_ip``: one
    pair per cross-attention layer), as ``folder/models/ip.safetensors``."""
    import torch
    from safetensors.torch import save_file

    cross, widths = unet.config.cross_attention_dim, list(unet.config.block_out_channels)
    g = torch.Generator().manual_seed(seed)
    sd = {"image_proj.proj.weight": torch.randn(4 * cross, embed_dim, generator=g) * 0.3,
          "image_proj.proj.bias": torch.zeros(4 * cross),
          "image_proj.norm.weight": torch.ones(cross), "image_proj.norm.bias": torch.zeros(cross)}
    key = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            width = widths[-1]
        elif name.startswith("up_blocks"):
            width = widths[::-1][int(name.split(".")[1])]
        else:
            width = widths[int(name.split(".")[1])]
        for kv in ("k", "v"):
            sd[f"ip_adapter.{key}.to_{kv}_ip.weight"] = torch.randn(width, cross,
                                                                    generator=g) * 0.3
        key += 2
    (folder / "models").mkdir(parents=True, exist_ok=True)
    save_file(sd, str(folder / "models" / "ip.safetensors"))
    return folder


def make_backend(name: str, tmp_path, **kwargs):
    from braindecode_kit.reconstruct.ip_adapter import IPAdapterBackend
    from braindecode_kit.reconstruct.kandinsky import KandinskyBackend
    from braindecode_kit.reconstruct.unclip import UnCLIPBackend

    if name == "unclip":
        return UnCLIPBackend(tiny_unclip(), **kwargs)
    if name == "kandinsky":
        return KandinskyBackend(tiny_kandinsky(), height=SIZE, width=SIZE, **kwargs)
    pipe = tiny_sd()
    folder = write_ip_adapter(tmp_path / "ip_adapter", pipe.unet)
    return IPAdapterBackend(pipe, ip_adapter=str(folder), subfolder="models",
                            weight_name="ip.safetensors", **kwargs)


def embeddings(n: int, dim: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def arrays(images) -> np.ndarray:
    return np.stack([np.asarray(im) for im in images]).astype(np.int16)


def run(backend, X, seeds, **kw):
    kw.setdefault("num_inference_steps", STEPS)
    kw.setdefault("guidance_scale", 4.0)
    return arrays(backend.generate(X, seeds=list(seeds), **kw))


@pytest.fixture(scope="module")
def backends(tmp_path_factory):
    """One backend of each kind, built once (their pipelines are not changed by tests)."""
    return {name: make_backend(name, tmp_path_factory.mktemp(name)) for name in DIMS}


ALL = list(DIMS)


# --------------------------------------------------------------------------- contract
@pytest.mark.parametrize("name", ALL)
def test_images_count_size_and_description(backends, name):
    from PIL import Image

    b = backends[name]
    assert b.name == name and b.embed_dim == DIMS[name]
    images = b.generate(embeddings(3, b.embed_dim), seeds=[1, 2, 3],
                        num_inference_steps=STEPS, guidance_scale=4.0, batch_size=2)
    assert len(images) == 3
    assert all(isinstance(im, Image.Image) and im.size == (SIZE, SIZE) and im.mode == "RGB"
               for im in images)
    d = b.describe()
    json.dumps(d)
    assert d["backend"] == name and d["embed_dim"] == DIMS[name]
    assert b.generate(np.zeros((0, b.embed_dim)), seeds=[]) == []


@pytest.mark.parametrize("name", ALL)
def test_seeds_and_conditioning(backends, name):
    b = backends[name]
    X = embeddings(2, b.embed_dim)
    first = run(b, X, [5, 6])
    assert np.array_equal(first, run(b, X, [5, 6]))  # same seeds: the same images
    other = run(b, X, [7, 8])
    assert all(np.abs(first[i] - other[i]).max() > 0 for i in range(2))  # another seed
    swapped = run(b, X[::-1], [5, 6])  # same seed, another embedding: another image
    assert all(np.abs(first[i] - swapped[i]).max() > 0 for i in range(2))


def assert_same_but_rounding(a: np.ndarray, b: np.ndarray) -> None:
    """Equal up to float rounding: the CPU kernels' sums run in another order for another
    batch size, which moves a handful of pixel values by one 8-bit level (measured: at
    most 3 of 3072 values per 32 x 32 image); a real dependence on the batch (e.g. the
    stock IP-Adapter call, which shows each image all the batch's embeddings) moves
    values by tens of levels."""
    assert a.shape == b.shape
    d = np.abs(a - b)
    assert d.max() <= 1 and (d > 0).mean() <= 0.01, (d.max(), int((d > 0).sum()))


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("guidance", [4.0, 1.0])
def test_an_image_does_not_depend_on_its_batch(backends, name, guidance):
    b = backends[name]
    X, seeds = embeddings(3, b.embed_dim, seed=1), [11, 12, 13]
    together = run(b, X, seeds, guidance_scale=guidance, batch_size=3)
    alone = run(b, X[2:], seeds[2:], guidance_scale=guidance)
    pair = run(b, X[1:], seeds[1:], guidance_scale=guidance, batch_size=2)
    one_by_one = run(b, X, seeds, guidance_scale=guidance, batch_size=1)
    assert_same_but_rounding(together[2], alone[0])
    assert_same_but_rounding(together[1:], pair)
    assert_same_but_rounding(together, one_by_one)


@pytest.mark.parametrize("name", ALL)
def test_input_errors(backends, name):
    b = backends[name]
    with pytest.raises(ValueError, match=f"must have {b.embed_dim} columns"):
        b.generate(np.ones((2, b.embed_dim + 1)), seeds=[0, 1])
    with pytest.raises(ValueError, match="non-finite"):
        b.generate(np.full((1, b.embed_dim), np.nan), seeds=[0])
    with pytest.raises(ValueError, match="one seed per embedding"):
        b.generate(np.ones((2, b.embed_dim)), seeds=[0])
    with pytest.raises(ValueError, match="num_inference_steps"):
        b.generate(np.ones((1, b.embed_dim)), seeds=[0], num_inference_steps=-1)
    with pytest.raises(ValueError, match="guidance_scale"):
        b.generate(np.ones((1, b.embed_dim)), seeds=[0], guidance_scale=float("nan"))
    with pytest.raises(TypeError, match="generator"):
        b.generate(np.ones((1, b.embed_dim)), seeds=[0], generator=None)
    if not b.takes_init_images:
        with pytest.raises(ValueError, match="init_images"):
            b.generate(np.ones((1, b.embed_dim)), seeds=[0], init_images=[None], strength=0.5)


@pytest.mark.parametrize("name", ALL)
def test_embed_norm_rescales_the_embeddings(backends, name, tmp_path):
    b = backends[name]
    X = embeddings(2, b.embed_dim)
    scaled = make_backend(name, tmp_path, embed_norm=3.0)
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    want = run(b, 3.0 * unit, [1, 2])
    assert np.array_equal(run(scaled, X, [1, 2]), want)
    # a power of two scales exactly, so the unit vectors are bit-identical (x10 rounds in
    # float32, and a one-ulp change of the embedding can move a pixel of a diffusion sample)
    assert np.array_equal(run(scaled, 8 * X, [1, 2]), want)
    with pytest.raises(ValueError, match="embed_norm"):
        make_backend(name, tmp_path, embed_norm=0.0)


@pytest.mark.parametrize("name", ALL)
def test_dtype_and_model_errors(name, tmp_path):
    from braindecode_kit.reconstruct.base import BACKENDS

    with pytest.raises(ValueError, match="'dtype' parameter"):
        make_backend(name, tmp_path, dtype="float64")
    module, cls = BACKENDS[name].split(":")
    klass = getattr(__import__(f"braindecode_kit.reconstruct.{module}", fromlist=[cls]), cls)
    with pytest.raises(TypeError, match="'model' parameter"):
        klass(42)
    for missing in ("nobody/no-such-model", str(tmp_path / "no_folder")):
        with pytest.raises(FileNotFoundError, match="local_files_only=True, as with "
                                                     "HF_HUB_OFFLINE=1"):
            klass(missing)


@pytest.mark.parametrize("name", ALL)
def test_bfloat16_weights(name, tmp_path):
    import torch

    b = make_backend(name, tmp_path, dtype="bfloat16")
    assert b.pipe.unet.dtype == torch.bfloat16 and b.dtype == "bfloat16"
    assert run(b, embeddings(2, b.embed_dim), [1, 2]).shape == (2, SIZE, SIZE, 3)


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ALL)
def test_on_cuda(name, tmp_path):
    """The CPU generators give the same noise on the device; an image still does not
    depend on its batch there."""
    b = make_backend(name, tmp_path, device="cuda")
    assert b.pipe.device.type == "cuda"
    X = embeddings(3, b.embed_dim)
    together = run(b, X, [1, 2, 3], batch_size=3)
    assert together.shape == (3, SIZE, SIZE, 3)
    assert_same_but_rounding(run(b, X, [1, 2, 3], batch_size=3), together)
    assert_same_but_rounding(run(b, X[2:], [3]), together[2:])


# --------------------------------------------------------------------------- unCLIP
def test_unclip_noise_level_and_prompt(backends, tmp_path):
    b = backends["unclip"]
    X = embeddings(1, b.embed_dim)
    base = run(b, X, [3])
    assert np.abs(run(b, X, [3], noise_level=500) - base).max() > 0
    assert np.array_equal(run(b, X, [3], noise_level=0), base)
    with pytest.raises(ValueError, match="'noise_level' parameter"):
        run(b, X, [3], noise_level=1000)
    with pytest.raises(ValueError, match="'noise_level' parameter"):
        make_backend("unclip", tmp_path, noise_level=-1)
    prompted = make_backend("unclip", tmp_path, prompt="a red circle")
    assert np.abs(run(prompted, X, [3]) - base).max() > 0
    assert not b.takes_init_images


def test_unclip_matches_the_stock_pipeline(backends):
    """image_embeds, noise_level, the empty prompt and one generator per image, as the
    pipeline is meant to be called."""
    import torch

    b = backends["unclip"]
    X = embeddings(2, b.embed_dim)
    want = b.pipe(prompt=["", ""], image_embeds=torch.from_numpy(X), noise_level=0,
                  generator=[torch.Generator().manual_seed(s) for s in (4, 9)],
                  num_inference_steps=STEPS, guidance_scale=4.0, output_type="pil").images
    assert np.array_equal(run(b, X, [4, 9]), arrays(want))


def test_unclip_loads_a_saved_folder(backends, tmp_path):
    from braindecode_kit.reconstruct.unclip import UnCLIPBackend

    b = backends["unclip"]
    b.pipe.save_pretrained(tmp_path / "unclip")
    loaded = UnCLIPBackend(str(tmp_path / "unclip"))
    X = embeddings(2, b.embed_dim)
    assert loaded.model_id == str(tmp_path / "unclip") and loaded.embed_dim == b.embed_dim
    assert np.array_equal(run(loaded, X, [1, 2]), run(b, X, [1, 2]))


# --------------------------------------------------------------------------- Kandinsky
def test_kandinsky_negative_embedding(backends, tmp_path):
    from braindecode_kit.reconstruct.kandinsky import KandinskyBackend

    b = backends["kandinsky"]
    X = embeddings(2, b.embed_dim)
    neg = embeddings(1, b.embed_dim, seed=9)[0]
    other = make_backend("kandinsky", tmp_path, negative_image_embeds=neg)
    assert other.describe()["negative_image_embeds"] == "given"
    assert b.describe()["negative_image_embeds"] == "zeros"
    assert np.abs(run(other, X, [1, 2]) - run(b, X, [1, 2])).max() > 0  # used under CFG
    assert np.array_equal(run(other, X, [1, 2], guidance_scale=1.0),
                          run(b, X, [1, 2], guidance_scale=1.0))  # unused without
    with pytest.raises(ValueError, match="negative_image_embeds"):
        make_backend("kandinsky", tmp_path, negative_image_embeds=np.ones((2, b.embed_dim)))
    with pytest.raises(ValueError, match="multiple of 4"):
        KandinskyBackend(tiny_kandinsky(), height=30)


def test_kandinsky_matches_the_stock_pipeline(backends):
    import torch

    b = backends["kandinsky"]
    X = embeddings(2, b.embed_dim)
    want = b.pipe(image_embeds=torch.from_numpy(X), negative_image_embeds=torch.zeros(2, 16),
                  generator=[torch.Generator().manual_seed(s) for s in (4, 9)], height=SIZE,
                  width=SIZE, num_inference_steps=STEPS, guidance_scale=4.0,
                  output_type="pil").images
    assert np.array_equal(run(b, X, [4, 9]), arrays(want))


def test_kandinsky_img2img(backends):
    from PIL import Image

    b = backends["kandinsky"]
    assert b.takes_init_images
    X = embeddings(3, b.embed_dim)
    rng = np.random.default_rng(0)
    init = rng.integers(0, 256, size=(3, 48, 48, 3), dtype=np.uint8)  # resized to 32
    kw = {"num_inference_steps": 4}
    out = run(b, X, [1, 2, 3], init_images=init, strength=0.5, **kw)
    assert out.shape == (3, SIZE, SIZE, 3)
    assert np.abs(out - run(b, X, [1, 2, 3], **kw)).max() > 0  # the init images matter
    pil = [Image.fromarray(a) for a in init]
    assert np.array_equal(run(b, X, [1, 2, 3], init_images=pil, strength=0.5, **kw), out)
    assert np.abs(run(b, X, [1, 2, 3], init_images=init[::-1], strength=0.5, **kw)
                  - out).max() > 0
    assert np.abs(run(b, X, [1, 2, 3], init_images=init, strength=0.75, **kw) - out).max() > 0
    # batch-independent, and strength 1 ignores the init images
    assert_same_but_rounding(run(b, X[2:], [3], init_images=init[2:], strength=0.5, **kw),
                             out[2:])
    assert np.array_equal(run(b, X, [1, 2, 3], init_images=init, strength=1.0, **kw),
                          run(b, X, [1, 2, 3], **kw))
    with pytest.raises(ValueError, match="runs no sampling step"):
        run(b, X, [1, 2, 3], init_images=init, strength=0.1, **kw)
    with pytest.raises(ValueError, match="one image per embedding"):
        run(b, X, [1, 2, 3], init_images=init[:2], strength=0.5, **kw)
    with pytest.raises(ValueError, match="'strength' parameter"):
        run(b, X, [1, 2, 3], init_images=init, strength=1.5, **kw)


# --------------------------------------------------------------------------- IP-Adapter
def test_ip_adapter_matches_the_stock_pipeline_one_image_at_a_time(backends):
    """For one image, the backend's prepared embeddings are exactly what the stock
    pipeline builds from ``ip_adapter_image_embeds`` (negative first under guidance)."""
    import torch

    b = backends["ip_adapter"]
    X = embeddings(2, b.embed_dim)
    for gs in (4.0, 1.0):
        for i, seed in enumerate((4, 9)):
            e = torch.from_numpy(X[i:i + 1])[:, None]
            if gs > 1:
                e = torch.cat([torch.zeros_like(e), e])
            want = b.pipe(prompt="", ip_adapter_image_embeds=[e],
                          generator=torch.Generator().manual_seed(seed),
                          num_inference_steps=STEPS, guidance_scale=gs,
                          output_type="pil").images
            got = run(b, X[i:i + 1], [seed], guidance_scale=gs)
            assert np.array_equal(got, arrays(want))
    assert "prepare_ip_adapter_image_embeds" not in vars(b.pipe)  # the pipeline is restored


def test_ip_adapter_scale_and_loading(tmp_path):
    from braindecode_kit.reconstruct.ip_adapter import IPAdapterBackend

    off = make_backend("ip_adapter", tmp_path / "a", ip_adapter_scale=0.0)
    X = embeddings(2, DIMS["ip_adapter"])
    assert np.array_equal(run(off, X[:1], [1]), run(off, X[1:], [1]))  # scale 0: unused
    on = make_backend("ip_adapter", tmp_path / "b")
    assert np.abs(run(on, X[:1], [1]) - run(on, X[1:], [1])).max() > 0
    # a pipeline that already has its adapter, and one saved to a folder
    again = IPAdapterBackend(on.pipe)
    assert again.embed_dim == DIMS["ip_adapter"] and again.ip_adapter is None
    assert np.array_equal(run(again, X, [1, 2]), run(on, X, [1, 2]))
    sd = tiny_sd()
    sd.save_pretrained(tmp_path / "sd")
    folder = write_ip_adapter(tmp_path / "ipa", sd.unet)
    loaded = IPAdapterBackend(str(tmp_path / "sd"), ip_adapter=str(folder),
                              weight_name="ip.safetensors")
    assert np.array_equal(run(loaded, X, [1, 2]), run(on, X, [1, 2]))
    with pytest.raises(ValueError, match="no IP-Adapter loaded"):
        IPAdapterBackend(tiny_sd())
    with pytest.raises(FileNotFoundError, match="Could not load the IP-Adapter"):
        IPAdapterBackend(tiny_sd(), ip_adapter=str(folder), weight_name="missing.safetensors")
    with pytest.raises(ValueError, match="'ip_adapter_scale' parameter"):
        IPAdapterBackend(tiny_sd(), ip_adapter=str(folder), weight_name="ip.safetensors",
                         ip_adapter_scale=-1.0)


# --------------------------------------------------------------------------- Reconstructor
def test_reconstructor_end_to_end_with_an_embedding_map(tmp_path):
    """Reconstructor("kandinsky") from a saved pipeline folder, with an EmbeddingMap from a
    128-d decoder space (given as a saved folder), per-image seeds and img2img."""
    from braindecode_kit.reconstruct import EmbeddingMap, Reconstructor, item_seeds

    tiny_kandinsky().save_pretrained(tmp_path / "kandinsky")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 128))
    Y = (X / np.linalg.norm(X, axis=1, keepdims=True)) @ rng.normal(size=(128, 16))
    EmbeddingMap().fit(X, Y).save(tmp_path / "map")
    rec = Reconstructor("kandinsky", model=str(tmp_path / "kandinsky"), batch_size=2,
                        num_inference_steps=STEPS, guidance_scale=4.0, seed=7,
                        embedding_map=str(tmp_path / "map"), height=SIZE, width=SIZE)
    assert rec.embed_dim == 128 and rec.impl.embed_dim == DIMS["kandinsky"]
    images = rec.generate(X[:3])
    assert len(images) == 3 and all(im.size == (SIZE, SIZE) for im in images)
    again = arrays(rec.generate(X[:3]))
    assert np.array_equal(arrays(images), again)
    assert_same_but_rounding(arrays(rec.generate(X[2:3], seeds=item_seeds(7, 3)[2:])),
                             again[2:])
    assert np.abs(arrays(rec.generate(X[:3], seed=8)) - again).max() > 0
    # what the backend got: the map's output for the L2-normalised rows
    direct = rec.impl.generate(rec.prepare(X[:3]), seeds=item_seeds(7, 3),
                               num_inference_steps=STEPS, guidance_scale=4.0)
    assert np.array_equal(arrays(direct), again)
    blurry = rng.integers(0, 256, size=(3, SIZE, SIZE, 3), dtype=np.uint8)
    assert len(rec.generate(X[:3], init_images=blurry, strength=0.5)) == 3
    settings = rec.settings()
    json.dumps(settings)
    assert settings["backend"] == "kandinsky" and settings["embedding_map"]["in_dim"] == 128
    with pytest.raises(ValueError, match="128 columns"):
        rec.generate(X[:2, :64])


def test_reconstructor_other_backends(tmp_path):
    from braindecode_kit.reconstruct import Reconstructor

    rec = Reconstructor("unclip", model=tiny_unclip(), num_inference_steps=STEPS, noise_level=10)
    assert rec.settings()["noise_level"] == 10 and rec.embed_dim == DIMS["unclip"]
    assert len(rec.generate(embeddings(2, DIMS["unclip"]))) == 2
    with pytest.raises(ValueError, match="does not take 'init_images'"):
        rec.generate(embeddings(1, DIMS["unclip"]), init_images=[None])
    pipe = tiny_sd()
    folder = write_ip_adapter(tmp_path, pipe.unet)
    rec = Reconstructor("ip_adapter", model=pipe, ip_adapter=str(folder),
                        weight_name="ip.safetensors", num_inference_steps=STEPS)
    assert len(rec.generate(embeddings(2, DIMS["ip_adapter"]))) == 2
    with pytest.raises(ValueError, match=f"must have {DIMS['ip_adapter']} columns"):
        rec.generate(embeddings(2, 5))
