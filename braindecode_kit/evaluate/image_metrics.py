"""Image metrics of reconstructions, with MindEye2's protocol.

Low level: PixCorr (bilinear resize to 425, all channels flattened, Pearson per pair, mean)
and SSIM (425, grey, Gaussian weights sigma 1.5, data range 1). High level: 2-way
identification (``np.corrcoef`` of flattened features) on network features.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .retrieval import two_way_identification

__all__ = ["as_image_array", "pixcorr", "ssim", "two_way"]

#: MindEye2's resolution of the low-level metrics
LOW_LEVEL_SIZE = 425


def as_image_array(images: Any, name: str = "images") -> np.ndarray:
    """PIL images, or a uint8 ``(n, H, W, 3)`` / float ``[0, 1]`` array -> float32
    ``(n, 3, H, W)`` in ``[0, 1]``.

    Raises
    ------
    ValueError
        If the input is not a list of images nor a 4-D array with 3 channels last.
    """
    if isinstance(images, np.ndarray):
        arr = images
    else:
        try:
            arr = np.stack([np.asarray(im.convert("RGB")) for im in images])
        except (AttributeError, ValueError) as err:
            raise ValueError(f"'{name}' must be a list of PIL images of one size or an array "
                             f"(n, height, width, 3); got {type(images).__name__} ({err}).") from err
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"'{name}' must have shape (n, height, width, 3), but got {arr.shape}.")
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    else:
        arr = np.asarray(arr, dtype=np.float32)
        if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
            raise ValueError(f"float '{name}' must lie in [0, 1].")
    return np.ascontiguousarray(arr.transpose(0, 3, 1, 2))


def _resize(x: np.ndarray, size: int) -> np.ndarray:
    import torch
    from torchvision.transforms import functional as TF
    from torchvision.transforms import InterpolationMode

    t = torch.from_numpy(x)
    if t.shape[-2:] != (size, size):
        t = TF.resize(t, [size, size], interpolation=InterpolationMode.BILINEAR, antialias=True)
    return t.numpy()


def _pair(seen: Any, reconstructed: Any) -> tuple[np.ndarray, np.ndarray]:
    a = as_image_array(seen, "seen")
    b = as_image_array(reconstructed, "reconstructed")
    if len(a) != len(b):
        raise ValueError(f"'seen' and 'reconstructed' must hold as many images, but got "
                         f"{len(a)} and {len(b)}.")
    if len(a) == 0:
        raise ValueError("'seen' and 'reconstructed' are empty.")
    return a, b


def pixcorr(seen: Any, reconstructed: Any) -> float:
    """PixCorr: mean over pairs of the Pearson correlation of all pixels (resized to 425)."""
    a, b = _pair(seen, reconstructed)
    a = _resize(a, LOW_LEVEL_SIZE).reshape(len(a), -1)
    b = _resize(b, LOW_LEVEL_SIZE).reshape(len(b), -1)
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(den > 0, (a * b).sum(1) / den, 0.0)
    return float(np.mean(r))


def ssim(seen: Any, reconstructed: Any) -> float:
    """SSIM (MindEye2): resized to 425, grey (``rgb2gray``), Gaussian weights (sigma 1.5),
    ``use_sample_covariance=False``, data range 1; mean over pairs."""
    from skimage.color import rgb2gray
    from skimage.metrics import structural_similarity

    a, b = _pair(seen, reconstructed)
    a = _resize(a, LOW_LEVEL_SIZE).transpose(0, 2, 3, 1)
    b = _resize(b, LOW_LEVEL_SIZE).transpose(0, 2, 3, 1)
    scores = [structural_similarity(rgb2gray(np.clip(x, 0, 1)), rgb2gray(np.clip(y, 0, 1)),
                                    gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, data_range=1.0)
              for x, y in zip(a, b)]
    return float(np.mean(scores))


def two_way(features_seen: np.ndarray, features_reconstructed: np.ndarray) -> float:
    """2-way identification of reconstructions from features (``np.corrcoef`` protocol):
    the mean over reconstructions ``j`` of the share of other seen images ``i`` whose
    correlation with reconstruction ``j`` is below that of seen image ``j``."""
    f_gt = np.asarray(features_seen, dtype=np.float64).reshape(len(features_seen), -1)
    f_rec = np.asarray(features_reconstructed, dtype=np.float64).reshape(
        len(features_reconstructed), -1)
    return two_way_identification(f_rec, f_gt)["accuracy"]
