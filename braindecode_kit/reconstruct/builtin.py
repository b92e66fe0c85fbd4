"""The built-in image generator: a conditional diffusion model trained on the built-in world.

A :class:`diffusers.UNet2DConditionModel` denoises world images in pixel space at the
world's resolution (64 x 64 RGB in ``[-1, 1]``), folded 4 x 4 into a 16 x 16 grid of
48 channels (:func:`torch.nn.functional.pixel_unshuffle`, as patch-based diffusion models
do: a 16 x 16 UNet costs a sixteenth of a 64 x 64 one on the CPU, and the image is still
the sample, with no autoencoder between). It is conditioned on the built-in CLIP image
embedding three ways: through ``class_embed_type="projection"`` (the embedding added to
the timestep embedding), through four cross-attention tokens projected from it, and
through a linear 8-channel 16 x 16 map of it concatenated to the sample (the spatial
layout of the scene reaches every resolution at once; without it, 500 steps left the
samples unconditional: 2-way 0.49). The
embedding is dropped (replaced by zeros) for 10 % of the training samples, so the same
network gives the unconditional prediction for classifier-free guidance. The scheduler is
DDIM (cosine betas, ``clip_sample``), the UNet predicting the clean image (``prediction_type
="sample"``): with v-prediction, 500 steps of training left the low-noise steps undone (the
net predicted ~0 there, v MSE 1.0 at t = 0) and 20-step samples were noise over the right
background; an x0 predictor gives the scene's layout from the first steps. DPM-Solver++
reads the same configuration.

It is trained on world images drawn with seeds ``>= TRAINING_SEED_START`` (reserved for the
built-in models), from their built-in CLIP embeddings with Gaussian noise added and
re-normalised (as the built-in captioner), so that decoded, imperfect embeddings still give
the right objects. Files in ``data/``: ``builtin_image_decoder.json`` (configuration),
``builtin_image_decoder.safetensors`` (float16 weights: the UNet's and the token
projection's) and ``builtin_image_decoder_card.json`` (recipe and held-out figures).
Retrain with ``braindecode-kit train-builtin image-decoder --out data/``;
``benchmarks/image_decoder.py`` measures its ceiling and its CPU speed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import check_float, check_int, check_option
from .._docs import fill_doc
from .._logging import logger, progress, verbose
from .._utils import PathLike, atomic_path, write_json_atomic

__all__ = [
    "BUILTIN_IMAGE_DECODER_CONFIG",
    "BuiltinImageGenerator",
    "build_image_decoder",
    "load_image_decoder",
    "train_builtin_image_decoder",
    "write_image_decoder",
]

CONFIG_FILE = "builtin_image_decoder.json"
WEIGHTS_FILE = "builtin_image_decoder.safetensors"
CARD_FILE = "builtin_image_decoder_card.json"
SCHEDULERS = ("ddim", "dpm")
#: smallest batch the UNet runs (smaller ones are padded; see :func:`denoise`)
MIN_ROWS = 4

#: Architecture of the built-in image generator (UNet fields + the conditioning's).
BUILTIN_IMAGE_DECODER_CONFIG: dict[str, Any] = {
    "image_size": 64,
    "patch": 4,
    "embed_dim": 128,
    "n_tokens": 4,
    "token_dim": 64,
    "cond_channels": 8,
    "unet": {
        "block_out_channels": [64, 128, 128],
        "down_block_types": ["DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"],
        "layers_per_block": 1,
        "attention_head_dim": 8,
        "norm_num_groups": 32,
        "class_embed_type": "projection",
    },
    "scheduler": {
        "num_train_timesteps": 1000,
        "beta_schedule": "squaredcos_cap_v2",
        "prediction_type": "sample",
        "clip_sample": True,
        "clip_sample_range": 1.0,
        "set_alpha_to_one": True,
        # sampling starts at the last training timestep (999), where the sample is pure
        # noise as it was in training; diffusers' default ("leading") starts 10 steps at
        # t = 900, where the UNet expects 15% of the image in its input and reads the
        # pure noise as signal (Lin et al. 2023, "Common Diffusion Noise Schedules and
        # Sample Steps are Flawed"): blotchy textures, grey instead of dark backgrounds
        "timestep_spacing": "trailing",
    },
    # chosen on the validation world (benchmarks/image_decoder.py --validation; the sweeps
    # and their figures are in the shipped card's "defaults")
    "defaults": {"num_inference_steps": 10, "guidance_scale": 2.0, "scheduler": "ddim"},
}


def build_image_decoder(config: dict[str, Any] | None = None):
    """The generator's torch module (random weights) for ``config`` (default: the built-in).

    The module has ``unet`` (:class:`diffusers.UNet2DConditionModel`) and ``to_tokens``
    (:class:`torch.nn.Linear`, embedding -> ``n_tokens x token_dim``); calling it with
    ``(sample, timestep, embedding)`` returns the UNet's prediction. An all-zero embedding is
    the unconditional input.
    """
    import torch
    from diffusers import UNet2DConditionModel
    from torch import nn

    cfg = json.loads(json.dumps(config or BUILTIN_IMAGE_DECODER_CONFIG))
    p, size, d = cfg["patch"], cfg["image_size"], cfg["embed_dim"]
    if size % p:
        raise ValueError(f"image_size {size} must be a multiple of patch {p}.")
    channels = 3 * p * p
    grid = size // p
    n_map = int(cfg.get("cond_channels", 0))

    class ImageDecoderNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.config = cfg
            self.unet = UNet2DConditionModel(
                sample_size=grid, in_channels=channels + n_map, out_channels=channels,
                cross_attention_dim=cfg["token_dim"],
                projection_class_embeddings_input_dim=d, **cfg["unet"])
            self.to_tokens = nn.Linear(d, cfg["n_tokens"] * cfg["token_dim"])
            # a spatial map of the embedding, concatenated to the sample (no bias: the
            # unconditional all-zero embedding gives an all-zero map)
            self.to_map = nn.Linear(d, n_map * grid * grid, bias=False) if n_map else None

        def forward(self, sample: torch.Tensor, timestep: torch.Tensor,
                    embedding: torch.Tensor) -> torch.Tensor:
            tokens = self.to_tokens(embedding).view(len(embedding), cfg["n_tokens"],
                                                    cfg["token_dim"])
            if self.to_map is not None:
                cond = self.to_map(embedding).view(len(embedding), n_map, grid, grid)
                sample = torch.cat([sample, cond.to(sample.dtype)], dim=1)
            # unit-norm embeddings have components ~ 1/sqrt(d): give the projection unit scale
            return self.unet(sample, timestep, encoder_hidden_states=tokens,
                             class_labels=embedding * float(np.sqrt(d))).sample

    return ImageDecoderNet()


def images_to_sample(images: np.ndarray, patch: int):
    """uint8 ``(n, H, W, 3)`` images -> the UNet's sample ``(n, 3 p^2, H/p, W/p)`` in [-1, 1]."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1
    return torch.nn.functional.pixel_unshuffle(x, patch)


def sample_to_images(sample, patch: int) -> np.ndarray:
    """The UNet's sample -> uint8 ``(n, H, W, 3)`` images."""
    import torch

    x = torch.nn.functional.pixel_shuffle(sample.float(), patch).clamp(-1, 1)
    return ((x + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def make_scheduler(config: dict[str, Any], kind: str = "ddim"):
    """A DDIM (or DPM-Solver++) scheduler from the generator's configuration."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    check_option("scheduler", kind, SCHEDULERS)
    # folders written before the spacing was part of the configuration sample the same way
    spacing = BUILTIN_IMAGE_DECODER_CONFIG["scheduler"]["timestep_spacing"]
    ddim = DDIMScheduler(**{"timestep_spacing": spacing, **config["scheduler"]})
    if kind == "ddim":
        return ddim
    return DPMSolverMultistepScheduler.from_config(ddim.config, algorithm_type="dpmsolver++",
                                                   solver_order=2)


def write_image_decoder(directory: PathLike, module=None, *, seed: int = 0,
                        config: dict[str, Any] | None = None, dtype: str = "float32") -> Path:
    """Write a generator's files (configuration and safetensors weights) into a folder.

    ``module=None`` initialises one at random (seeded): tests use it to get a generator of
    the built-in layout without training.
    """
    import torch
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = json.loads(json.dumps(config or BUILTIN_IMAGE_DECODER_CONFIG))
    if module is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = build_image_decoder(config)
    dt = getattr(torch, dtype)
    state = {k: v.detach().to(dt).contiguous() for k, v in module.state_dict().items()}
    with atomic_path(directory / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "model": "builtin_image_decoder"})
    write_json_atomic(directory / CONFIG_FILE, config)
    return directory


def load_image_decoder(directory: PathLike | None = None, device: str = "cpu"):
    """``(module, config)`` of the generator in ``directory`` (default: the shipped ``data/``).

    Raises
    ------
    FileNotFoundError
        If the folder lacks the configuration or the weights.
    ValueError
        If the weights are not a safetensors file or do not fit the configuration.
    """
    import torch
    from safetensors.torch import load_file

    from .._resources import data_dir
    from ..embed.builtin import check_safetensors

    directory = Path(directory) if directory is not None else data_dir()
    missing = [f for f in (CONFIG_FILE, WEIGHTS_FILE) if not (directory / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"The image generator folder {str(directory)!r} lacks {missing}: expected "
            f"{CONFIG_FILE} and {WEIGHTS_FILE} (written by `braindecode-kit train-builtin "
            "image-decoder --out DIR` or write_image_decoder).")
    config = json.loads((directory / CONFIG_FILE).read_text())
    check_safetensors(directory / WEIGHTS_FILE)
    module = build_image_decoder(config)
    state = {k: v.float() for k, v in load_file(directory / WEIGHTS_FILE).items()}
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"The weights in {str(directory / WEIGHTS_FILE)!r} do not fit the "
                         f"configuration in {CONFIG_FILE}: {err}") from err
    module.eval().to(torch.device(device))
    return module, config


def item_noise(seeds: list[int], shape: tuple[int, ...], device: str = "cpu"):
    """One Gaussian noise tensor per item, each from its own seed (batch-independent)."""
    import torch

    out = []
    for s in seeds:
        g = torch.Generator(device="cpu").manual_seed(int(s) % (2 ** 63))
        out.append(torch.randn(shape, generator=g))
    return torch.stack(out).to(device)


def denoise(module, config: dict[str, Any], embeddings: np.ndarray, seeds: list[int], *,
            num_inference_steps: int, guidance_scale: float, scheduler: str = "ddim",
            init_images: np.ndarray | None = None, strength: float = 1.0,
            device: str = "cpu") -> np.ndarray:
    """Sample images from unit-norm ``embeddings`` (one seed per row): uint8 ``(n, H, W, 3)``.

    ``init_images`` (uint8, same resolution) start the reverse process from those images
    noised to ``strength`` (img2img: 1.0 ignores them, 0.0 returns them unchanged).
    """
    import torch

    n = len(embeddings)
    if 0 < n < MIN_ROWS:
        # CPU matmul kernels of fewer than 4 rows round differently from larger ones: pad
        # small batches (with copies of the first row) so that an image made alone equals
        # the same image made in any batch
        pad = MIN_ROWS - n
        out = denoise(module, config, np.concatenate([embeddings, np.repeat(embeddings[:1], pad, 0)]),
                      list(seeds) + [seeds[0]] * pad, num_inference_steps=num_inference_steps,
                      guidance_scale=guidance_scale, scheduler=scheduler,
                      init_images=None if init_images is None else np.concatenate(
                          [init_images, np.repeat(init_images[:1], pad, 0)]),
                      strength=strength, device=device)
        return out[:n]
    p, size = config["patch"], config["image_size"]
    shape = (3 * p * p, size // p, size // p)
    sched = make_scheduler(config, scheduler)
    sched.set_timesteps(num_inference_steps)
    timesteps = sched.timesteps
    emb = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32)).to(device)
    x = item_noise(seeds, shape, device) * sched.init_noise_sigma
    if init_images is not None and strength < 1.0:
        n_run = int(round(num_inference_steps * strength))
        if n_run == 0:
            return np.ascontiguousarray(init_images, dtype=np.uint8)
        timesteps = timesteps[num_inference_steps - n_run:]
        if hasattr(sched, "set_begin_index"):
            sched.set_begin_index(num_inference_steps - n_run)
        x0 = images_to_sample(init_images, p).to(device)
        x = sched.add_noise(x0, x / sched.init_noise_sigma, timesteps[:1].repeat(len(x0)))
    guided = guidance_scale != 1.0
    null = torch.zeros_like(emb)
    with torch.inference_mode():
        for t in timesteps:
            inp = sched.scale_model_input(x, t)
            if guided:
                out = module(torch.cat([inp, inp]), t.repeat(2 * len(x)).to(device),
                             torch.cat([null, emb]))
                uncond, cond = out.chunk(2)
                out = uncond + guidance_scale * (cond - uncond)
            else:
                out = module(inp, t.repeat(len(x)).to(device), emb)
            x = sched.step(out, t, x).prev_sample
    return sample_to_images(x, p)


class BuiltinImageGenerator:
    """The built-in (or a same-layout) image generator as a reconstruction backend.

    Parameters
    ----------
    model : path | None
        A folder written by :func:`write_image_decoder` (None: the shipped weights).
    device : str
        Torch device.
    """

    name = "builtin"
    takes_init_images = True

    def __init__(self, model: PathLike | None = None, device: str = "cpu") -> None:
        self.module, self.config = load_image_decoder(model, device)
        self.folder = None if model is None else str(model)
        self.device = device
        self.embed_dim = int(self.config["embed_dim"])
        self.image_size = int(self.config["image_size"])

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.folder or "builtin",
                "image_size": self.image_size, "embed_dim": self.embed_dim}

    def generate(self, embeddings: np.ndarray, *, seeds: list[int],
                 num_inference_steps: int | None = None, guidance_scale: float | None = None,
                 scheduler: str | None = None, init_images: np.ndarray | None = None,
                 strength: float = 1.0, batch_size: int = 64) -> list:
        """One PIL image per row of ``embeddings`` (unit-norm), seeded per row."""
        from PIL import Image

        d = self.config.get("defaults", {})
        steps = check_int("num_inference_steps",
                          num_inference_steps or d.get("num_inference_steps", 20), lo=1)
        gs = check_float("guidance_scale", d.get("guidance_scale", 2.0)
                         if guidance_scale is None else guidance_scale, lo=0.0)
        kind = scheduler or d.get("scheduler", "ddim")
        check_float("strength", strength, lo=0.0, hi=1.0)
        if init_images is not None:
            init_images = _as_uint8_images(init_images, self.image_size)
        out = []
        for i in range(0, len(embeddings), batch_size):
            sl = slice(i, i + batch_size)
            out.append(denoise(self.module, self.config, embeddings[sl], list(seeds[sl]),
                               num_inference_steps=steps, guidance_scale=gs, scheduler=kind,
                               init_images=None if init_images is None else init_images[sl],
                               strength=strength, device=self.device))
        return [Image.fromarray(a) for a in np.concatenate(out)] if out else []


def _as_uint8_images(images, size: int) -> np.ndarray:
    """PIL images or a uint8/float array -> uint8 ``(n, size, size, 3)``."""
    from PIL import Image

    if isinstance(images, np.ndarray):
        arr = images
        if arr.dtype != np.uint8:
            arr = (np.clip(arr, 0, 1) * 255).round().astype(np.uint8)
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise ValueError(f"'init_images' must be (n, height, width, 3), but got shape "
                             f"{arr.shape}.")
        if arr.shape[1:3] != (size, size):
            arr = np.stack([np.asarray(Image.fromarray(a).resize((size, size), Image.BICUBIC))
                            for a in arr])
        return arr
    return np.stack([np.asarray(im.convert("RGB").resize((size, size), Image.BICUBIC))
                     for im in images])


# --------------------------------------------------------------------------- training
def _target(config: dict[str, Any], x0, eps, alpha):
    """What the UNet learns to predict, per the scheduler's ``prediction_type``."""
    kind = config["scheduler"]["prediction_type"]
    if kind == "sample":
        return x0
    if kind == "epsilon":
        return eps
    return alpha.sqrt() * eps - (1 - alpha).sqrt() * x0  # v_prediction


def _world_arrays(n: int, seed: int, embedder) -> tuple[np.ndarray, np.ndarray, Any]:
    from ..simulate import make_world

    world = make_world(n, seed=seed)
    images = world.to_array()
    return images, embedder.encode_images(images), world


def ceiling_figures(module, config: dict[str, Any], world, images: np.ndarray,
                    embeddings: np.ndarray, embedder, *, seed: int, **settings) -> dict[str, Any]:
    """Held-out figures of a generator from true embeddings: built-in CLIP 2-way of the
    reconstructions, shape and colour agreement (zero-shot readings of the reconstruction vs
    of the seen image, and vs the truth), PixCorr and SSIM."""
    from ..embed.zeroshot import zero_shot_attributes
    from .scores import summary_scores

    rec = denoise(module, config, embeddings, [seed * 1_000_003 + i for i in range(len(images))],
                  **settings)
    # the seen images' zero-shot readings, once: their accuracy and chance are reported,
    # and the reconstructions' agreement is with them
    seen = {attr: zero_shot_attributes(embedder, world, attr, image_features=embeddings)
            for attr in ("shape", "colour")}
    readings = {attr: np.asarray(z["predictions"]) for attr, z in seen.items()}
    out: dict[str, Any] = {"n": len(images), **summary_scores(embedder, world, images, rec,
                                                              embeddings, readings)}
    for attr, z in seen.items():
        out[f"{attr}_accuracy_seen"] = z["accuracy"]
        out[f"{attr}_chance"] = z["chance"]
    return out


@fill_doc
@verbose
def train_builtin_image_decoder(
    out_dir: PathLike,
    *,
    steps: int = 4000,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    n_images: int = 12000,
    noise: float = 0.6,
    cond_dropout: float = 0.1,
    ema_decay: float = 0.999,
    seed: int = 0,
    eval_every: int = 500,
    n_val: int = 128,
    n_ceiling: int = 500,
    checkpoint_every: int = 100,
    threads: int | None = None,
    device: str = "cpu",
    init: PathLike | None = None,
    verbose: bool | str | int | None = None,
) -> dict[str, Any]:
    """Train the built-in image generator on the built-in world and write its files.

    Parameters
    ----------
    out_dir : path
        Output folder (``data/`` of the repository to update the shipped model). A killed
        run resumes from ``out_dir/.builtin_image_decoder_ckpt`` (same settings).
    steps, batch_size : int
        Optimisation steps (AdamW, one-cycle learning rate) and images per step.
    lr, weight_decay : float
        Peak learning rate and AdamW weight decay.
    n_images : int
        Training world size (seed ``TRAINING_SEED_START + seed``); each step draws a batch
        from it with a fresh timestep and noise per image.
    noise : float
        Embedding noise, as the built-in captioner: ``normalise(e + s z / sqrt(d))``,
        ``s ~ U(0, noise)`` per sample.
    cond_dropout : float
        Share of samples trained unconditionally (zero embedding) for guidance.
    ema_decay : float
        Decay of the exponential moving average of the weights that is shipped
        (:class:`diffusers.training_utils.EMAModel`).
    seed : int
        Seeds the world, the initialisation, the batches and the noise.
    eval_every, n_val : int
        Steps between held-out checks and their images (world ``TRAINING_SEED_START + 9999``).
    n_ceiling : int
        Images of the final held-out ceiling (world ``TRAINING_SEED_START + 9998``).
    checkpoint_every : int
        Steps between resumable checkpoints.
    threads : int | None
        torch threads (None: leave as is).
    device : str
        Torch device of the training (``"cuda"`` on a GPU machine); batches, noise and
        timesteps are drawn on the CPU from the step's seed, so a run is the same sequence
        on any device (up to the device's arithmetic).
    init : path | None
        A generator folder of the same configuration (e.g. ``data/``) to continue training
        from: its weights start both the model and the moving average, a new learning-rate
        cycle runs, and its card's history is kept under ``"init"`` in the new card (the
        folder is read before anything is written, so it may be ``out_dir``).
    %(verbose)s

    Returns
    -------
    dict
        The model card written to ``builtin_image_decoder_card.json``.
    """
    import torch
    from diffusers.training_utils import EMAModel
    from safetensors.torch import load_file, save_file

    from ..embed import Embedder
    from ..simulate.world import TRAINING_SEED_START

    check_int("steps", steps, lo=1)
    check_int("batch_size", batch_size, lo=2)
    check_float("noise", noise, lo=0.0)
    check_float("cond_dropout", cond_dropout, lo=0.0, hi=1.0)
    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = json.loads(json.dumps(BUILTIN_IMAGE_DECODER_CONFIG))
    p, d = config["patch"], config["embed_dim"]
    torch.manual_seed(seed)
    module = build_image_decoder(config).to(device)
    init_info = None
    if init is not None:
        start_from, init_config = load_image_decoder(init)
        if init_config != config:
            raise ValueError(f"The generator in {str(init)!r} has another configuration than "
                             "the built-in one; `init` continues a generator of the same "
                             "layout only.")
        module.load_state_dict(start_from.state_dict())
        card_file = Path(init) / CARD_FILE
        prior = json.loads(card_file.read_text()) if card_file.is_file() else {}
        init_info = {"folder": str(init), "recipe": prior.get("recipe"),
                     "history": prior.get("history", []), "ceiling": prior.get("ceiling"),
                     "init": prior.get("init")}
        logger.info("continuing the generator in %s", init)
    n_params = sum(q.numel() for q in module.parameters())
    logger.info("built-in image generator: %d parameters", n_params)
    embedder = Embedder("builtin")
    images, E, _ = _world_arrays(n_images, TRAINING_SEED_START + seed, embedder)
    X = images_to_sample(images, p)
    E = torch.from_numpy(E)
    val_images, val_E, val_world = _world_arrays(n_val, TRAINING_SEED_START + 9999, embedder)
    logger.info("drew and embedded %d training images (%.0f s)", len(X), time.perf_counter() - t0)
    train_sched = make_scheduler(config)
    alphas = train_sched.alphas_cumprod

    opt = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=weight_decay)
    lr_sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                   pct_start=0.05)
    ema = EMAModel(module.parameters(), decay=ema_decay, use_ema_warmup=True, power=2 / 3)
    recipe = {"steps": steps, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay,
              "n_images": n_images, "noise": noise, "cond_dropout": cond_dropout,
              "ema_decay": ema_decay, "seed": seed,
              **({"init": init_info["folder"]} if init_info else {})}
    ckpt = out_dir / ".builtin_image_decoder_ckpt"
    start, history = 0, []
    if (ckpt / "state.json").is_file():
        state = json.loads((ckpt / "state.json").read_text())
        if state.get("recipe") == recipe and state.get("config") == config:
            module.load_state_dict(load_file(ckpt / "model.safetensors", device=device))
            shadow = load_file(ckpt / "ema.safetensors", device=device)
            ema.shadow_params = [shadow[str(i)] for i in range(len(shadow))]
            ema.optimization_step = state["step"]
            opt.load_state_dict(torch.load(ckpt / "optimizer.pt", weights_only=True,
                                           map_location=device))
            lr_sched.load_state_dict(state["lr_sched"])
            start, history = state["step"], state["history"]
            logger.info("resuming built-in image generator training at step %d", start)

    def checkpoint(step: int) -> None:
        tmp = ckpt.with_name(ckpt.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()},
                  str(tmp / "model.safetensors"))
        save_file({str(i): v.detach().cpu().contiguous()
                   for i, v in enumerate(ema.shadow_params)}, str(tmp / "ema.safetensors"))
        torch.save(opt.state_dict(), tmp / "optimizer.pt")
        write_json_atomic(tmp / "state.json", {"step": step, "recipe": recipe, "config": config,
                                               "lr_sched": lr_sched.state_dict(),
                                               "history": history})
        if ckpt.exists():
            import shutil

            old = ckpt.with_name(ckpt.name + ".old")
            ckpt.rename(old)
            tmp.rename(ckpt)
            shutil.rmtree(old)
        else:
            tmp.rename(ckpt)

    def ema_module():
        m = build_image_decoder(config).to(device)
        m.load_state_dict(module.state_dict())
        ema.copy_to(m.parameters())
        return m.eval()

    module.train()
    defaults = config["defaults"]
    for step in progress(range(start, steps), total=steps, initial=start,
                         desc="built-in image generator"):
        rng = np.random.default_rng([seed, step])
        g = torch.Generator().manual_seed(int(rng.integers(2 ** 62)))
        idx = torch.from_numpy(rng.choice(len(X), size=batch_size, replace=False))
        x0, emb = X[idx], E[idx]
        z = torch.randn(emb.shape, generator=g)
        s = torch.rand(batch_size, 1, generator=g) * noise
        emb = torch.nn.functional.normalize(emb + s * z / float(np.sqrt(d)), dim=1)
        emb = emb * (torch.rand(batch_size, 1, generator=g) >= cond_dropout)
        t = torch.randint(0, len(alphas), (batch_size,), generator=g)
        eps = torch.randn(x0.shape, generator=g)
        a = alphas[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        target = _target(config, x0, eps, a)
        loss = torch.nn.functional.mse_loss(
            module(xt.to(device), t.to(device), emb.to(device)), target.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        opt.step()
        lr_sched.step()
        ema.step(module.parameters())
        done = step + 1
        if done % eval_every == 0 or done == steps:
            figs = ceiling_figures(ema_module(), config, val_world, val_images, val_E, embedder,
                                   seed=seed, num_inference_steps=defaults["num_inference_steps"],
                                   guidance_scale=defaults["guidance_scale"], device=device)
            history.append({"step": done, "loss": round(loss.item(), 4),
                            **{k: round(v, 4) for k, v in figs.items()
                               if isinstance(v, float)}})
            logger.info("step %d loss %.4f %s", done, loss.item(), history[-1])
        if done % checkpoint_every == 0 and done < steps:
            checkpoint(done)
    final = ema_module().cpu()
    write_image_decoder(out_dir, final, config=config, dtype="float16")
    # the ceiling of the shipped (float16) weights, on images never seen in training
    shipped, _ = load_image_decoder(out_dir)
    c_images, c_E, c_world = _world_arrays(n_ceiling, TRAINING_SEED_START + 9998, embedder)
    ceiling = ceiling_figures(shipped, config, c_world, c_images, c_E, embedder, seed=seed + 1,
                              num_inference_steps=defaults["num_inference_steps"],
                              guidance_scale=defaults["guidance_scale"])
    card = {
        "model": "builtin_image_decoder",
        "architecture": "diffusers UNet2DConditionModel on 64x64 RGB folded 4x4 into 16x16x48 "
                        "(pixel_unshuffle), blocks (64, 128, 128), cross-attention at 4x4 on 4 "
                        "tokens projected from the CLIP embedding, class_embed_type="
                        "'projection', and a linear 8 x 16 x 16 map of the embedding "
                        "concatenated to the sample; DDIM, x0 (sample) prediction, cosine betas",
        "parameters": n_params,
        "clip": embedder.identity,
        "recipe": {**recipe, "optimizer": "AdamW + OneCycle",
                   "loss": f"MSE on the {config['scheduler']['prediction_type']} prediction",
                   "train_world_seed": TRAINING_SEED_START + seed,
                   "val_world_seed": TRAINING_SEED_START + 9999,
                   "ceiling_world_seed": TRAINING_SEED_START + 9998,
                   "embedding_noise": f"normalise(e + s z / sqrt(d)), s ~ U(0, {noise})",
                   "guidance": f"embedding replaced by zeros for {cond_dropout:.0%} of samples"},
        "defaults": defaults,
        "history": history,
        "ceiling": ceiling,
        "train_seconds": round(time.perf_counter() - t0, 1),
        "command": f"braindecode-kit train-builtin image-decoder --out {out_dir} --steps {steps} "
                   f"--seed {seed} --batch-size {batch_size} --lr {lr} --n-images {n_images}"
                   + (f" --init {init_info['folder']}" if init_info else ""),
        **({"init": init_info} if init_info else {}),
    }
    write_json_atomic(out_dir / CARD_FILE, card)
    if ckpt.exists():
        import shutil

        shutil.rmtree(ckpt)
    return card
