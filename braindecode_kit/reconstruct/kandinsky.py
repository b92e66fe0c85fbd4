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

from pathlib import Path
from typing import Any

import numpy as np

from .._checks import check_float, check_int, check_option
from .._logging import progress
from .base import DTYPES, ReconstructionBackend, as_embeddings

__all__ = ["KandinskyBackend"]

#: Sampling defaults: steps (the pipeline's own is 100; 50 is the usual choice in
#: Kandinsky 2.2's examples) and classifier-free guidance (the pipeline's).
DEFAULT_STEPS = 50
DEFAULT_GUIDANCE = 4.0
_RESERVED = ("image", "image_embeds", "negative_image_embeds", "generator", "output_type",
             "return_dict", "latents", "num_images_per_prompt", "height", "width", "strength")


def _load_pipeline(model: Any, dtype: str, what: str):
    """A ``KandinskyV22Pipeline``: the object itself, or read from a local folder or the
    local Hugging Face cache (``local_files_only=True``: nothing is downloaded)."""
    import torch
    from diffusers import KandinskyV22Pipeline

    if isinstance(model, KandinskyV22Pipeline):
        return model, f"<{type(model).__name__} object>"
    if not isinstance(model, (str, Path)):
        raise TypeError(f"The 'model' parameter must be a hub id, a local folder or a "
                        f"KandinskyV22Pipeline, but got {type(model).__name__}.")
    local = Path(model).expanduser()
    source = str(local) if local.is_dir() else str(model)
    try:
        pipe = KandinskyV22Pipeline.from_pretrained(source, local_files_only=True,
                                                    dtype=getattr(torch, dtype))
    except (OSError, ValueError) as err:
        raise FileNotFoundError(
            f"Could not load the {what} pipeline {str(model)!r}: it is neither a local folder of "
            "a KandinskyV22Pipeline (saved with save_pretrained) nor in the local Hugging Face "
            "cache. Nothing is downloaded here (local_files_only=True, as with "
            "HF_HUB_OFFLINE=1): download it once on a machine with network access "
            f"(`hf download {model}`) or pass its folder. ({err})") from err
    return pipe, str(model)


def _generators(seeds: list[int]):
    """One CPU generator per image (the same noise on any device, in any batch)."""
    import torch

    return [torch.Generator(device="cpu").manual_seed(int(s) % (2 ** 63)) for s in seeds]


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
        import torch

        check_option("dtype", dtype, DTYPES)
        check_float("embed_norm", embed_norm, lo=0.0, lo_open=True, allow_none=True)
        self.pipe, self.model_id = _load_pipeline(model, dtype, "Kandinsky 2.2 decoder")
        if self.pipe.dtype != getattr(torch, dtype):
            self.pipe.to(dtype=getattr(torch, dtype))
        self.pipe.to(torch.device(device))
        self.pipe.set_progress_bar_config(disable=True)
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
        if negative_image_embeds is None:
            self.negative = np.zeros((1, self.embed_dim), np.float32)
        else:
            neg = as_embeddings(negative_image_embeds, self.embed_dim,
                                name="negative_image_embeds", normalise=False)
            if len(neg) != 1:
                raise ValueError(f"'negative_image_embeds' must be one embedding (embed_dim,) "
                                 f"or (1, embed_dim), shared by every image, but got shape "
                                 f"{neg.shape}.")
            self.negative = neg
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

        reserved = sorted(set(settings) & set(_RESERVED))
        if reserved:
            raise TypeError(f"The 'kandinsky' backend sets {reserved} itself; they cannot be "
                            "passed as settings.")
        X = as_embeddings(embeddings, self.embed_dim, normalise=False)
        seeds = [int(s) for s in seeds]
        if len(seeds) != len(X):
            raise ValueError(f"'seeds' must hold one seed per embedding ({len(X)}), but got "
                             f"{len(seeds)}.")
        steps = check_int("num_inference_steps", DEFAULT_STEPS if num_inference_steps
                          is None else num_inference_steps, lo=1)
        gs = check_float("guidance_scale", DEFAULT_GUIDANCE if guidance_scale is None
                         else guidance_scale, lo=0.0)
        batch_size = check_int("batch_size", batch_size, lo=1)
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
        if self.embed_norm is not None:
            X = as_embeddings(X) * np.float32(self.embed_norm)
        dt = self.pipe.unet.dtype
        out: list = []
        starts = range(0, len(X), batch_size)
        for s in progress(starts, total=len(starts), desc="kandinsky"):
            emb = torch.from_numpy(X[s:s + batch_size]).to(self.pipe.device, dt)
            b = len(emb)
            kwargs = dict(image_embeds=emb,
                          negative_image_embeds=torch.from_numpy(self.negative).to(
                              self.pipe.device, dt).repeat(b, 1),
                          generator=_generators(seeds[s:s + b]), num_inference_steps=steps,
                          guidance_scale=gs, height=self.height, width=self.width,
                          output_type="pil", **settings)
            if init is None:
                out += self.pipe(**kwargs).images
            else:
                out += self._img2img_pipeline()(image=init[s:s + b], strength=strength,
                                                **kwargs).images
        return out
