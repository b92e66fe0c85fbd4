"""Kandinsky 2.2's decoder fed (decoded) CLIP image embeddings.

:class:`diffusers.KandinskyV22Pipeline` (``kandinsky-community/kandinsky-2-2-decoder``)
is conditioned on a CLIP image embedding alone (ViT-bigG/14's 1280-d in the released
model: :attr:`KandinskyBackend.embed_dim` is the UNet's ``encoder_hid_dim``), which enters
as added tokens and an added time embedding; the MoVQ decoder turns the latents into the
image. In Kandinsky's own text-to-image route the prior maps a prompt to that embedding
and gives the negative embedding (from the empty prompt) too; here the embedding comes
from the brain, and there is no prompt to take a negative from, so the negative embedding
is zeros by default (or one you give, e.g. the prior's embedding of ``""``). Under
classifier-free guidance (``guidance_scale > 1``) the pipeline concatenates
``[negative, positive]`` itself and splits the UNet's prediction in the same order.

With ``init_images`` and ``strength < 1`` the same components run as
:class:`diffusers.KandinskyV22Img2ImgPipeline` (the init images are MoVQ-encoded and
noised to ``strength``); ``strength = 1`` ignores them.

Every image has its own :class:`torch.Generator` (CPU, seeded from its seed), so an image
does not depend on its batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._checks import check_float, check_int, check_option
from ._diffusers import (
    check_generate_args,
    load_pipeline,
    negative_embedding,
    place_pipeline,
    run_batches,
)
from .base import DTYPES, ReconstructionBackend

__all__ = ["KandinskyBackend"]

#: Sampling defaults: steps (the pipeline's own is 100; 50 is the usual choice in
#: Kandinsky 2.2's examples) and classifier-free guidance (the pipeline's).
DEFAULT_STEPS = 50
DEFAULT_GUIDANCE = 4.0
_RESERVED = ("image", "image_embeds", "negative_image_embeds", "generator", "output_type",
             "return_dict", "latents", "num_images_per_prompt", "height", "width", "strength")


def _as_pil_images(images: Any) -> list:
    """PIL images, or a uint8 / [0, 1] float array ``(n, H, W, 3)`` -> list of RGB PIL."""
    from PIL import Image

    if isinstance(images, np.ndarray):
        arr = images
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise ValueError(f"'init_images' must be (n, height, width, 3), but got shape "
                             f"{arr.shape}.")
        if arr.dtype != np.uint8:
            arr = (np.clip(arr, 0, 1) * 255).round().astype(np.uint8)
        return [Image.fromarray(a) for a in arr]
    out = []
    for i, im in enumerate(images):
        if not isinstance(im, Image.Image):
            raise TypeError(f"'init_images' must hold PIL images (or be an array), but item {i} "
                            f"is {type(im).__name__}.")
        out.append(im.convert("RGB"))
    return out


class KandinskyBackend(ReconstructionBackend):
    """Kandinsky 2.2's decoder (:class:`diffusers.KandinskyV22Pipeline`) as a backend.

    Parameters
    ----------
    model : str | path | KandinskyV22Pipeline
        A hub id read from the local Hugging Face cache (e.g.
        ``"kandinsky-community/kandinsky-2-2-decoder"``), a local folder of the pipeline,
        or a pipeline object (used as is, moved to ``device`` and ``dtype``).
    device : str
        Torch device.
    dtype : {"float32", "float16", "bfloat16"}
        Weights' dtype.
    negative_image_embeds : array (embed_dim,) | (1, embed_dim) | None
        The negative (unconditional) embedding under classifier-free guidance, shared by
        every image. None: zeros (there is no prompt here to take one from; Kandinsky's
        prior would give the embedding of ``""``).
    height, width : int
        Image size in pixels, multiples of the MoVQ scale factor squared (64 for the
        released model). Default 512 (the pipeline's).
    embed_norm : float | None
        Scale each embedding to this L2 norm before conditioning (None: as given). The
        :class:`~braindecode_kit.reconstruct.Reconstructor` hands unit-norm embeddings
        when it has no embedding map, but the decoder was trained on raw CLIP image
        embeddings: give their typical norm here, or fit an
        :class:`~braindecode_kit.reconstruct.EmbeddingMap` (``rescale="norm"``).

    Notes
    -----
    Defaults: 50 sampling steps and guidance 4 (the pipeline's guidance).
    """

    name = "kandinsky"
    takes_init_images = True

    def __init__(self, model: Any, device: str = "cpu", dtype: str = "float32",
                 negative_image_embeds: Any = None, height: int = 512, width: int = 512,
                 embed_norm: float | None = None) -> None:
        check_option("dtype", dtype, DTYPES)
        check_float("embed_norm", embed_norm, lo=0.0, lo_open=True, allow_none=True)
        from diffusers import KandinskyV22Pipeline

        self.pipe, self.model_id = load_pipeline(model, dtype, "Kandinsky 2.2 decoder",
                                                 KandinskyV22Pipeline)
        place_pipeline(self.pipe, device, dtype)
        self.device = str(device)
        self.dtype = dtype
        self.embed_norm = embed_norm
        self.embed_dim = int(self.pipe.unet.config.encoder_hid_dim)
        step = int(self.pipe.movq_scale_factor) ** 2
        for side, v in (("height", height), ("width", width)):
            check_int(side, v, lo=step)
            if v % step:
                raise ValueError(f"Invalid value for the {side!r} parameter: this pipeline needs "
                                 f"a multiple of {step} (its MoVQ scale factor squared), but got "
                                 f"{v}.")
        self.height, self.width = int(height), int(width)
        self.negative = negative_embedding(negative_image_embeds, self.embed_dim)
        self._img2img = None

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model_id,
                "pipeline": type(self.pipe).__name__, "embed_dim": self.embed_dim,
                "image_size": [self.height, self.width],
                "negative_image_embeds": "zeros" if not self.negative.any() else "given",
                "embed_norm": self.embed_norm, "default_num_inference_steps": DEFAULT_STEPS,
                "default_guidance_scale": DEFAULT_GUIDANCE}

    def _img2img_pipeline(self):
        if self._img2img is None:
            from diffusers import KandinskyV22Img2ImgPipeline

            self._img2img = KandinskyV22Img2ImgPipeline(**self.pipe.components)
            self._img2img.set_progress_bar_config(disable=True)
        return self._img2img

    def generate(self, embeddings: np.ndarray, *, seeds: list[int],
                 num_inference_steps: int | None = None, guidance_scale: float | None = None,
                 batch_size: int = 8, init_images: Any = None, strength: float = 1.0,
                 **settings: Any) -> list:
        """One PIL image per embedding row, image ``i`` drawn from ``seeds[i]``.

        Parameters
        ----------
        embeddings : array (n, embed_dim)
            Image embeddings in the decoder's CLIP space.
        seeds : list of int
            One seed per image.
        num_inference_steps, guidance_scale : optional
            Sampling steps (default 50) and classifier-free guidance (default 4; <= 1:
            none, the negative embedding is then unused).
        batch_size : int
            Images per pipeline call.
        init_images : list of PIL images | array (n, H, W, 3) | None
            img2img starting images (resized to the backend's size), one per embedding.
        strength : float
            In ``[0, 1]``: the share of the sampling steps run from the noised init images
            (1: ignore them; ``strength * num_inference_steps`` must be at least 1).
        **settings
            Passed to the pipeline call, except the inputs set here.

        Returns
        -------
        list of PIL.Image.Image
        """
        import torch

        X, seeds, steps, gs, batch_size = check_generate_args(
            "kandinsky", embeddings, self.embed_dim, seeds=seeds,
            num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
            batch_size=batch_size, settings=settings, reserved=_RESERVED,
            default_steps=DEFAULT_STEPS, default_guidance=DEFAULT_GUIDANCE)
        strength = check_float("strength", strength, lo=0.0, hi=1.0)
        init = None
        if init_images is not None and strength < 1.0:
            init = _as_pil_images(init_images)
            if len(init) != len(X):
                raise ValueError(f"'init_images' must hold one image per embedding ({len(X)}), "
                                 f"but got {len(init)}.")
            if int(steps * strength) < 1:
                raise ValueError(f"strength={strength} with num_inference_steps={steps} runs no "
                                 "sampling step (int(steps * strength) must be >= 1).")
        dt = self.pipe.unet.dtype

        def call(start: int, x: np.ndarray, gens: list) -> list:
            emb = torch.from_numpy(x).to(self.pipe.device, dt)
            b = len(emb)
            kwargs = dict(image_embeds=emb,
                          negative_image_embeds=torch.from_numpy(self.negative).to(
                              self.pipe.device, dt).repeat(b, 1),
                          generator=gens, num_inference_steps=steps,
                          guidance_scale=gs, height=self.height, width=self.width,
                          output_type="pil", **settings)
            if init is None:
                return self.pipe(**kwargs).images
            return self._img2img_pipeline()(image=init[start:start + b], strength=strength,
                                            **kwargs).images

        return run_batches(X, seeds, batch_size, "kandinsky", self.embed_norm, call)
