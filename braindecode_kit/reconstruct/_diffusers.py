"""What the diffusers backends (:mod:`.unclip`, :mod:`.kandinsky`, :mod:`.ip_adapter`) share.

Loading a pipeline offline (``local_files_only=True``, with the same error when it is not
there), placing it on a device and dtype, one CPU :class:`torch.Generator` per image, the
negative embedding and default image size options, the checks of ``generate``'s
arguments and its batch loop. Each backend keeps its own pipeline call; the messages name
the backend and pipeline they are given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import check_float, check_int
from .._logging import progress
from .base import as_embeddings

__all__ = ["check_generate_args", "generators", "image_size", "load_pipeline",
           "negative_embedding", "place_pipeline", "reject_init_images", "run_batches"]


def load_pipeline(model: Any, dtype: str, what: str, pipeline_class: type,
                  **from_pretrained: Any):
    """A ``pipeline_class`` pipeline and its id: the object itself, or read from a local
    folder or the local Hugging Face cache (``local_files_only=True``: nothing is
    downloaded). ``what`` names the model in the error; ``from_pretrained`` holds further
    arguments of ``pipeline_class.from_pretrained``."""
    import torch

    name = pipeline_class.__name__
    if isinstance(model, pipeline_class):
        return model, f"<{type(model).__name__} object>"
    if not isinstance(model, (str, Path)):
        raise TypeError(f"The 'model' parameter must be a hub id, a local folder or a "
                        f"{name}, but got {type(model).__name__}.")
    local = Path(model).expanduser()
    source = str(local) if local.is_dir() else str(model)
    try:
        pipe = pipeline_class.from_pretrained(source, local_files_only=True,
                                              dtype=getattr(torch, dtype), **from_pretrained)
    except (OSError, ValueError) as err:
        raise FileNotFoundError(
            f"Could not load the {what} pipeline {str(model)!r}: it is neither a local folder of "
            f"a {name} (saved with save_pretrained) nor in the local Hugging Face cache. "
            "Nothing is downloaded here (local_files_only=True, as with HF_HUB_OFFLINE=1): "
            "download it once on a machine with network access "
            f"(`hf download {model}`) or pass its folder. ({err})") from err
    return pipe, str(model)


def place_pipeline(pipe: Any, device: str, dtype: str) -> None:
    """Move ``pipe`` to ``dtype`` (when it is not there already) and ``device``, its
    progress bar off."""
    import torch

    if pipe.dtype != getattr(torch, dtype):
        pipe.to(dtype=getattr(torch, dtype))
    pipe.to(torch.device(device))
    pipe.set_progress_bar_config(disable=True)


def generators(seeds: list[int]):
    """One CPU generator per image (the same noise on any device, in any batch)."""
    import torch

    return [torch.Generator(device="cpu").manual_seed(int(s) % (2 ** 63)) for s in seeds]


def negative_embedding(negative_image_embeds: Any, embed_dim: int) -> np.ndarray:
    """The ``(1, embed_dim)`` negative image embedding shared by every image: zeros for
    None, else the given one (checked, not normalised)."""
    if negative_image_embeds is None:
        return np.zeros((1, embed_dim), np.float32)
    neg = as_embeddings(negative_image_embeds, embed_dim, name="negative_image_embeds",
                        normalise=False)
    if len(neg) != 1:
        raise ValueError(f"'negative_image_embeds' must be one embedding (embed_dim,) "
                         f"or (1, embed_dim), shared by every image, but got shape "
                         f"{neg.shape}.")
    return neg


def image_size(pipe: Any, height: int | None, width: int | None,
               what: str) -> tuple[int, int]:
    """``(height, width)`` of a Stable Diffusion-like pipeline: the given sizes, or the
    UNet's sample size times the VAE's scale factor; multiples of 8 (``what`` names the
    model in the error)."""
    default = int(pipe.unet.config.sample_size) * int(pipe.vae_scale_factor)
    size = int(height or default), int(width or default)
    for side, v in zip(("height", "width"), size):
        if v % 8:
            raise ValueError(f"Invalid value for the {side!r} parameter: {what} needs a "
                             f"multiple of 8, but got {v}.")
    return size


def reject_init_images(backend: str, init_images: Any, strength: float,
                       why: str | None = None) -> None:
    """Raise when a backend without img2img is given ``init_images`` or ``strength != 1``
    (``why``: the reason, appended to the message)."""
    if init_images is not None or strength != 1.0:
        raise ValueError(f"The '{backend}' backend takes no 'init_images'/'strength'"
                         + ("." if why is None else f": {why}"))


def check_generate_args(backend: str, embeddings: Any, embed_dim: int, *, seeds: Any,
                        num_inference_steps: int | None, guidance_scale: float | None,
                        batch_size: int, settings: dict[str, Any], reserved: Sequence[str],
                        default_steps: int, default_guidance: float):
    """The checked arguments of a backend's ``generate``: ``(X, seeds, steps,
    guidance_scale, batch_size)``, with the backend's defaults for steps and guidance.

    Raises TypeError for ``settings`` among the ``reserved`` pipeline inputs (those the
    backend sets itself), ValueError for embeddings that are not ``(n, embed_dim)`` and
    finite (not normalised here), a seed count other than ``n`` and invalid numbers.
    """
    taken = sorted(set(settings) & set(reserved))
    if taken:
        raise TypeError(f"The '{backend}' backend sets {taken} itself; they cannot be "
                        "passed as settings.")
    X = as_embeddings(embeddings, embed_dim, normalise=False)
    seeds = [int(s) for s in seeds]
    if len(seeds) != len(X):
        raise ValueError(f"'seeds' must hold one seed per embedding ({len(X)}), but got "
                         f"{len(seeds)}.")
    steps = check_int("num_inference_steps", default_steps if num_inference_steps
                      is None else num_inference_steps, lo=1)
    gs = check_float("guidance_scale", default_guidance if guidance_scale is None
                     else guidance_scale, lo=0.0)
    batch_size = check_int("batch_size", batch_size, lo=1)
    return X, seeds, steps, gs, batch_size


def run_batches(X: np.ndarray, seeds: list[int], batch_size: int, desc: str,
                embed_norm: float | None, call: Callable[[int, np.ndarray, list], list]) -> list:
    """The images of checked embeddings ``X``, ``batch_size`` rows per pipeline call.

    The rows are first scaled to ``embed_norm`` (when not None); then ``call(start, x,
    generators)`` makes the images of rows ``x = X[start:start + batch_size]``, given one
    generator per row (from its seed). A progress bar named ``desc`` counts the calls.
    """
    if embed_norm is not None:
        X = as_embeddings(X) * np.float32(embed_norm)
    out: list = []
    starts = range(0, len(X), batch_size)
    for s in progress(starts, total=len(starts), desc=desc):
        out += call(s, X[s:s + batch_size], generators(seeds[s:s + batch_size]))
    return out
