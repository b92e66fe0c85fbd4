"""Stable unCLIP fed (decoded) CLIP image embeddings.

:class:`diffusers.StableUnCLIPImg2ImgPipeline` is Stable Diffusion 2.1 fine-tuned to be
conditioned on a CLIP image embedding (``stabilityai/stable-diffusion-2-1-unclip``:
ViT-H/14, 1024-d; ``-unclip-small``: ViT-L/14, 768-d). The embedding is noised to
``noise_level`` (in the pipeline's ``image_normalizer`` statistics), a sinusoidal
embedding of ``noise_level`` is appended, and the ``2 d`` vector enters the UNet as its
class embedding (``class_embed_type="projection"``); the text prompt (``""`` here) goes
through cross-attention as usual. This backend passes ``image_embeds=`` directly, so the
pipeline's image encoder never runs: :attr:`UnCLIPBackend.embed_dim` is the
``image_normalizer``'s dimension.

Despite its name the pipeline is not img2img in the SDEdit sense: its ``image`` is only
encoded into the CLIP embedding (and cannot be given together with ``image_embeds``), so
this backend takes no ``init_images``.

Every image has its own :class:`torch.Generator` (CPU, seeded from its seed) for both the
embedding noise and the initial latents, so an image does not depend on its batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._checks import check_float, check_int, check_option, check_type
from ._diffusers import (
    check_generate_args,
    image_size,
    load_pipeline,
    place_pipeline,
    reject_init_images,
    run_batches,
)
from .base import DTYPES, ReconstructionBackend

__all__ = ["UnCLIPBackend"]

#: Sampling defaults (the pipeline's own): steps, classifier-free guidance.
DEFAULT_STEPS = 20
DEFAULT_GUIDANCE = 10.0
_RESERVED = ("image", "image_embeds", "prompt", "prompt_embeds", "negative_prompt",
             "generator", "output_type", "return_dict", "latents", "num_images_per_prompt",
             "height", "width")


class UnCLIPBackend(ReconstructionBackend):
    """Stable unCLIP (:class:`diffusers.StableUnCLIPImg2ImgPipeline`) as a backend.

    Parameters
    ----------
    model : str | path | StableUnCLIPImg2ImgPipeline
        A hub id read from the local Hugging Face cache (e.g.
        ``"stabilityai/stable-diffusion-2-1-unclip"``), a local folder of the pipeline, or a
        pipeline object (used as is, moved to ``device`` and ``dtype``).
    device : str
        Torch device.
    dtype : {"float32", "float16", "bfloat16"}
        Weights' dtype.
    noise_level : int
        Noise added to the image embedding, in ``[0, image_noising_scheduler's
        num_train_timesteps)``; 0 keeps the embedding (higher: more varied images, less
        faithful). Overridable per call.
    prompt : str
        Text prompt of every image (``""``: conditioned on the embedding alone; MindEye2's
        "enhanced" images use the brain-predicted caption instead).
    negative_prompt : str | None
        Negative prompt under classifier-free guidance (None: the empty prompt's embedding).
    height, width : int | None
        Image size in pixels (None: the UNet's sample size times the VAE's scale factor,
        768 for SD 2.1 unCLIP).
    embed_norm : float | None
        Scale each embedding to this L2 norm before conditioning (None: as given). The
        :class:`~braindecode_kit.reconstruct.Reconstructor` hands unit-norm embeddings
        when it has no embedding map, but the pipeline was trained on raw CLIP image
        embeddings: give their typical norm here, or fit an
        :class:`~braindecode_kit.reconstruct.EmbeddingMap` (``rescale="norm"``).

    Notes
    -----
    Defaults: 20 sampling steps and guidance 10 (the pipeline's). Under guidance the
    unconditional branch gets a zero image embedding (the pipeline's own choice).
    """

    name = "unclip"
    takes_init_images = False

    def __init__(self, model: Any, device: str = "cpu", dtype: str = "float32",
                 noise_level: int = 0, prompt: str = "", negative_prompt: str | None = None,
                 height: int | None = None, width: int | None = None,
                 embed_norm: float | None = None) -> None:
        check_option("dtype", dtype, DTYPES)
        check_type("prompt", prompt, str)
        if negative_prompt is not None:
            check_type("negative_prompt", negative_prompt, str)
        check_int("height", height, lo=8, allow_none=True)
        check_int("width", width, lo=8, allow_none=True)
        check_float("embed_norm", embed_norm, lo=0.0, lo_open=True, allow_none=True)
        from diffusers import StableUnCLIPImg2ImgPipeline

        self.pipe, self.model_id = load_pipeline(model, dtype, "Stable unCLIP",
                                                 StableUnCLIPImg2ImgPipeline)
        place_pipeline(self.pipe, device, dtype)
        self.device = str(device)
        self.dtype = dtype
        n_noise = int(self.pipe.image_noising_scheduler.config.num_train_timesteps)
        self.noise_level = check_int("noise_level", noise_level, lo=0, hi=n_noise - 1)
        self.prompt = prompt
        self.negative_prompt = negative_prompt
        self.embed_norm = embed_norm
        self.embed_dim = int(self.pipe.image_normalizer.config.embedding_dim)
        want = self.pipe.unet.config.projection_class_embeddings_input_dim
        if want != 2 * self.embed_dim:
            raise ValueError(
                f"The unCLIP pipeline {self.model_id!r} is inconsistent: its image_normalizer "
                f"takes {self.embed_dim}-d embeddings, so its UNet's class embedding should take "
                f"{2 * self.embed_dim} (embedding + noise-level embedding), but "
                f"projection_class_embeddings_input_dim is {want}.")
        self.height, self.width = image_size(self.pipe, height, width, "Stable unCLIP")

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model_id,
                "pipeline": type(self.pipe).__name__, "embed_dim": self.embed_dim,
                "image_size": [self.height, self.width], "noise_level": self.noise_level,
                "prompt": self.prompt, "negative_prompt": self.negative_prompt,
                "embed_norm": self.embed_norm, "default_num_inference_steps": DEFAULT_STEPS,
                "default_guidance_scale": DEFAULT_GUIDANCE}

    def encode_images(self, images: Any, batch_size: int = 32) -> np.ndarray:
        """The pipeline's own image embeddings (``feature_extractor`` + ``image_encoder``,
        as it encodes an ``image``) of PIL images or a uint8 ``(n, H, W, 3)`` array: what an
        :class:`~braindecode_kit.reconstruct.mapping.EmbeddingMap` from the decoder's CLIP
        space is fitted onto."""
        import torch
        from PIL import Image

        if isinstance(images, np.ndarray):
            images = [Image.fromarray(a) for a in images]
        out = []
        enc = self.pipe.image_encoder
        with torch.inference_mode():
            for i in range(0, len(images), batch_size):
                px = self.pipe.feature_extractor(images=images[i:i + batch_size],
                                                 return_tensors="pt").pixel_values
                px = px.to(device=enc.device, dtype=enc.dtype)
                out.append(enc(px).image_embeds.float().cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    def generate(self, embeddings: np.ndarray, *, seeds: list[int],
                 num_inference_steps: int | None = None, guidance_scale: float | None = None,
                 batch_size: int = 8, init_images: Any = None, strength: float = 1.0,
                 noise_level: int | None = None, **settings: Any) -> list:
        """One PIL image per embedding row, image ``i`` drawn from ``seeds[i]``.

        Parameters
        ----------
        embeddings : array (n, embed_dim)
            Image embeddings in the pipeline's CLIP space.
        seeds : list of int
            One seed per image.
        num_inference_steps, guidance_scale : optional
            Sampling steps (default 20) and classifier-free guidance (default 10; <= 1:
            none).
        batch_size : int
            Images per pipeline call.
        init_images, strength
            Not supported (see the module's documentation): must be None and 1.0.
        noise_level : int | None
            Overrides the backend's ``noise_level`` for this call.
        **settings
            Passed to the pipeline call (e.g. ``eta``), except the inputs set here.

        Returns
        -------
        list of PIL.Image.Image
        """
        import torch

        reject_init_images("unclip", init_images, strength,
                           "StableUnCLIPImg2ImgPipeline's 'image' is only encoded to a CLIP "
                           "embedding, not used as a starting image.")
        X, seeds, steps, gs, batch_size = check_generate_args(
            "unclip", embeddings, self.embed_dim, seeds=seeds,
            num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
            batch_size=batch_size, settings=settings, reserved=_RESERVED,
            default_steps=DEFAULT_STEPS, default_guidance=DEFAULT_GUIDANCE)
        n_noise = int(self.pipe.image_noising_scheduler.config.num_train_timesteps)
        level = check_int("noise_level", self.noise_level if noise_level is None
                          else noise_level, lo=0, hi=n_noise - 1)
        dt = self.pipe.unet.dtype

        def call(start: int, x: np.ndarray, gens: list) -> list:
            emb = torch.from_numpy(x).to(self.pipe.device, dt)
            b = len(emb)
            return self.pipe(
                prompt=[self.prompt] * b,
                negative_prompt=None if self.negative_prompt is None
                else [self.negative_prompt] * b,
                image_embeds=emb, noise_level=level, generator=gens,
                num_inference_steps=steps, guidance_scale=gs, height=self.height,
                width=self.width, output_type="pil", **settings).images

        return run_batches(X, seeds, batch_size, "unclip", self.embed_norm, call)
