"""Stable Diffusion with an IP-Adapter fed (decoded) CLIP image embeddings.

An IP-Adapter (``h94/IP-Adapter``: ``models/ip-adapter_sd15.safetensors`` for SD 1.5, on
CLIP ViT-H/14's 1024-d image embedding) projects an image embedding into a few extra
tokens that every cross-attention layer of a frozen Stable Diffusion UNet attends to
beside the text tokens, weighted by ``ip_adapter_scale``. diffusers'
:class:`~diffusers.StableDiffusionPipeline` takes those embeddings as
``ip_adapter_image_embeds``: a list with one tensor per adapter, each
``(batch, n_images, dim)``, the negative (unconditional) half first under
classifier-free guidance (``torch.cat([negative, positive])``), as its
``prepare_ip_adapter_image_embeds`` builds them from images.

One caveat, read in ``StableDiffusionPipeline.__call__`` (diffusers 0.42): that method
repeats the given embeddings ``batch_size * num_images_per_prompt`` times, i.e. it treats
them as one reference set shared by the whole call, so a call with ``b`` different
embeddings would make every image attend to all ``b`` of them (its images would depend on
their batch). This backend therefore prepares the per-image tensor itself, ``(2 b, 1,
dim)`` with the negatives first under guidance (``(b, 1, dim)`` without), and hands it to
the UNet unchanged for the duration of its own call; with ``b = 1`` this is exactly the
stock pipeline's input (checked by the tests).

Only the plain IP-Adapter (an ``ImageProjection`` of a pooled image embedding) is
supported: the Plus, Full-face and FaceID variants take CLIP hidden-state tokens or face
embeddings, which a brain decoder of pooled embeddings does not give.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .._checks import check_float, check_int, check_option, check_type
from ._diffusers import (
    check_generate_args,
    image_size,
    load_pipeline,
    negative_embedding,
    place_pipeline,
    reject_init_images,
    run_batches,
)
from .base import DTYPES, ReconstructionBackend

__all__ = ["IPAdapterBackend"]

#: Sampling defaults (Stable Diffusion's usual): steps, classifier-free guidance.
DEFAULT_STEPS = 50
DEFAULT_GUIDANCE = 7.5
_RESERVED = ("prompt", "prompt_embeds", "negative_prompt", "ip_adapter_image",
             "ip_adapter_image_embeds", "generator", "output_type", "return_dict", "latents",
             "num_images_per_prompt", "height", "width")


class IPAdapterBackend(ReconstructionBackend):
    """Stable Diffusion with an IP-Adapter, conditioned on image embeddings.

    Parameters
    ----------
    model : str | path | StableDiffusionPipeline
        A hub id read from the local Hugging Face cache (e.g.
        ``"stable-diffusion-v1-5/stable-diffusion-v1-5"``), a local folder of the pipeline
        (read without its safety checker, whose black images would be scored as
        reconstructions), or a pipeline object (used as is, moved to ``device`` and
        ``dtype``), which may already have its IP-Adapter loaded.
    device : str
        Torch device.
    dtype : {"float32", "float16", "bfloat16"}
        Weights' dtype.
    ip_adapter : str | path | None
        Where the IP-Adapter weights are: a hub id in the local cache (``"h94/IP-Adapter"``)
        or a local folder, read with ``pipe.load_ip_adapter(ip_adapter,
        subfolder=subfolder, weight_name=weight_name)`` (no image encoder is loaded: the
        embeddings are given). None: ``model`` must be a pipeline with one already loaded.
    subfolder, weight_name : str
        The weights file inside ``ip_adapter`` (default: SD 1.5's plain IP-Adapter,
        ``models/ip-adapter_sd15.safetensors``).
    ip_adapter_scale : float
        Weight of the image tokens in every cross-attention (``pipe.set_ip_adapter_scale``;
        1: image prompt only, as here with an empty text prompt).
    prompt : str
        Text prompt of every image (``""``: the embedding alone).
    negative_prompt : str | None
        Negative text prompt under guidance (None: the empty prompt's embedding).
    negative_image_embeds : array (embed_dim,) | (1, embed_dim) | None
        The negative image embedding under guidance, shared by every image (None: zeros,
        what diffusers uses for a plain IP-Adapter).
    height, width : int | None
        Image size in pixels, multiples of 8 (None: the UNet's sample size times the VAE's
        scale factor, 512 for SD 1.5).
    embed_norm : float | None
        Scale each embedding to this L2 norm before conditioning (None: as given); the
        adapter was trained on raw CLIP image embeddings, while the
        :class:`~braindecode_kit.reconstruct.Reconstructor` hands unit-norm ones when it
        has no :class:`~braindecode_kit.reconstruct.EmbeddingMap`.

    Notes
    -----
    Defaults: 50 sampling steps and guidance 7.5.
    """

    name = "ip_adapter"
    takes_init_images = False

    def __init__(self, model: Any, device: str = "cpu", dtype: str = "float32",
                 ip_adapter: str | Path | None = None, subfolder: str = "models",
                 weight_name: str = "ip-adapter_sd15.safetensors",
                 ip_adapter_scale: float = 1.0, prompt: str = "",
                 negative_prompt: str | None = None, negative_image_embeds: Any = None,
                 height: int | None = None, width: int | None = None,
                 embed_norm: float | None = None) -> None:
        from diffusers import StableDiffusionPipeline
        from diffusers.models.embeddings import ImageProjection, MultiIPAdapterImageProjection

        check_option("dtype", dtype, DTYPES)
        check_type("prompt", prompt, str)
        if negative_prompt is not None:
            check_type("negative_prompt", negative_prompt, str)
        check_type("subfolder", subfolder, str)
        check_type("weight_name", weight_name, str)
        scale = check_float("ip_adapter_scale", ip_adapter_scale, lo=0.0)
        check_int("height", height, lo=8, allow_none=True)
        check_int("width", width, lo=8, allow_none=True)
        check_float("embed_norm", embed_norm, lo=0.0, lo_open=True, allow_none=True)
        # without its safety checker, whose black images would be scored as reconstructions
        self.pipe, self.model_id = load_pipeline(model, dtype, "Stable Diffusion",
                                                 StableDiffusionPipeline, safety_checker=None,
                                                 requires_safety_checker=False)
        if ip_adapter is not None:
            if not isinstance(ip_adapter, (str, Path)):
                raise TypeError(f"The 'ip_adapter' parameter must be a hub id or a local "
                                f"folder, but got {type(ip_adapter).__name__}.")
            local = Path(ip_adapter).expanduser()
            try:
                self.pipe.load_ip_adapter(str(local) if local.is_dir() else str(ip_adapter),
                                          subfolder=subfolder, weight_name=weight_name,
                                          image_encoder_folder=None, local_files_only=True)
            except (OSError, ValueError) as err:
                raise FileNotFoundError(
                    f"Could not load the IP-Adapter {weight_name!r} (subfolder {subfolder!r}) "
                    f"from {str(ip_adapter)!r}: it is neither in that local folder nor in the "
                    "local Hugging Face cache. Nothing is downloaded here "
                    "(local_files_only=True, as with HF_HUB_OFFLINE=1): download it once "
                    f"(`hf download {ip_adapter} {subfolder}/{weight_name}`) or pass its "
                    f"folder. ({err})") from err
        proj = getattr(self.pipe.unet, "encoder_hid_proj", None)
        if not isinstance(proj, MultiIPAdapterImageProjection):
            raise ValueError(f"The pipeline {self.model_id!r} has no IP-Adapter loaded: pass "
                             "'ip_adapter' (a hub id or folder of the adapter's weights).")
        layers = list(proj.image_projection_layers)
        if len(layers) != 1:
            raise ValueError(f"The pipeline {self.model_id!r} has {len(layers)} IP-Adapters "
                             "loaded; this backend conditions on one (load a single adapter).")
        if not isinstance(layers[0], ImageProjection):
            raise ValueError(f"The loaded IP-Adapter's image projection is "
                             f"{type(layers[0]).__name__}: it takes CLIP hidden-state tokens "
                             "or face embeddings, not a pooled image embedding. Use a plain "
                             "IP-Adapter (e.g. ip-adapter_sd15.safetensors).")
        place_pipeline(self.pipe, device, dtype)
        self.pipe.set_ip_adapter_scale(scale)
        self.device = str(device)
        self.dtype = dtype
        self.ip_adapter = None if ip_adapter is None else str(ip_adapter)
        self.weight_name = weight_name if ip_adapter is not None else None
        self.ip_adapter_scale = scale
        self.prompt = prompt
        self.negative_prompt = negative_prompt
        self.embed_norm = embed_norm
        self.embed_dim = int(layers[0].image_embeds.in_features)
        self.negative = negative_embedding(negative_image_embeds, self.embed_dim)
        self.height, self.width = image_size(self.pipe, height, width, "Stable Diffusion")

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model_id,
                "pipeline": type(self.pipe).__name__, "ip_adapter": self.ip_adapter,
                "weight_name": self.weight_name, "ip_adapter_scale": self.ip_adapter_scale,
                "embed_dim": self.embed_dim, "image_size": [self.height, self.width],
                "prompt": self.prompt, "negative_prompt": self.negative_prompt,
                "negative_image_embeds": "zeros" if not self.negative.any() else "given",
                "embed_norm": self.embed_norm, "default_num_inference_steps": DEFAULT_STEPS,
                "default_guidance_scale": DEFAULT_GUIDANCE}

    def _guided(self, guidance_scale: float) -> bool:
        """Whether the pipeline runs classifier-free guidance (its own test)."""
        return guidance_scale > 1 and self.pipe.unet.config.time_cond_proj_dim is None

    def image_embeds(self, embeddings: np.ndarray, guidance_scale: float):
        """The per-image ``ip_adapter_image_embeds`` list of one call: ``[(2 b, 1, dim)]``
        (negatives first) under guidance, ``[(b, 1, dim)]`` without."""
        import torch

        dt = self.pipe.unet.dtype
        pos = torch.from_numpy(np.ascontiguousarray(embeddings, np.float32))[:, None]
        if self._guided(guidance_scale):
            neg = torch.from_numpy(self.negative)[:, None].repeat(len(pos), 1, 1)
            pos = torch.cat([neg, pos])
        return [pos.to(self.pipe.device, dt)]

    def generate(self, embeddings: np.ndarray, *, seeds: list[int],
                 num_inference_steps: int | None = None, guidance_scale: float | None = None,
                 batch_size: int = 8, init_images: Any = None, strength: float = 1.0,
                 **settings: Any) -> list:
        """One PIL image per embedding row, image ``i`` drawn from ``seeds[i]``.

        Parameters
        ----------
        embeddings : array (n, embed_dim)
            Image embeddings in the adapter's CLIP space.
        seeds : list of int
            One seed per image.
        num_inference_steps, guidance_scale : optional
            Sampling steps (default 50) and classifier-free guidance (default 7.5; <= 1:
            none).
        batch_size : int
            Images per pipeline call.
        init_images, strength
            Not supported: must be None and 1.0.
        **settings
            Passed to the pipeline call (e.g. ``eta``), except the inputs set here.

        Returns
        -------
        list of PIL.Image.Image
        """
        reject_init_images("ip_adapter", init_images, strength)
        X, seeds, steps, gs, batch_size = check_generate_args(
            "ip_adapter", embeddings, self.embed_dim, seeds=seeds,
            num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
            batch_size=batch_size, settings=settings, reserved=_RESERVED,
            default_steps=DEFAULT_STEPS, default_guidance=DEFAULT_GUIDANCE)

        def call(start: int, x: np.ndarray, gens: list) -> list:
            b = len(x)
            return self._call(
                self.image_embeds(x, gs), b, guided=self._guided(gs),
                prompt=[self.prompt] * b,
                negative_prompt=None if self.negative_prompt is None
                else [self.negative_prompt] * b,
                generator=gens, num_inference_steps=steps,
                guidance_scale=gs, height=self.height, width=self.width, output_type="pil",
                **settings).images

        return run_batches(X, seeds, batch_size, "ip_adapter", self.embed_norm, call)

    def _call(self, embeds: list, b: int, *, guided: bool, **kwargs: Any):
        """Call the pipeline with ``embeds`` handed to the UNet as they are (see the
        module's documentation), not repeated by the batch size."""
        pipe = self.pipe

        def prepared(ip_adapter_image, ip_adapter_image_embeds, device, num_images_per_prompt,
                     do_classifier_free_guidance):
            if num_images_per_prompt != b or bool(do_classifier_free_guidance) != guided:
                raise RuntimeError(
                    "diffusers' StableDiffusionPipeline asked for IP-Adapter embeddings of "
                    f"{num_images_per_prompt} images (guidance {do_classifier_free_guidance}); "
                    f"this backend prepared {b} (guidance {guided}): the installed diffusers "
                    "prepares them differently from 0.42's.")
            return [e.to(device) for e in ip_adapter_image_embeds]

        had = vars(pipe).get("prepare_ip_adapter_image_embeds")
        pipe.prepare_ip_adapter_image_embeds = prepared
        try:
            return pipe(ip_adapter_image_embeds=embeds, **kwargs)
        finally:
            if had is None:
                del pipe.prepare_ip_adapter_image_embeds
            else:
                pipe.prepare_ip_adapter_image_embeds = had
