"""Image metrics of reconstructions, with MindEye2's protocol.

Low level: PixCorr (bilinear resize to 425, all channels flattened, Pearson per pair, mean)
and SSIM (425, grey, Gaussian weights sigma 1.5, data range 1). High level: 2-way
identification (``np.corrcoef`` of flattened features) on AlexNet ``features.4`` and
``features.11``, InceptionV3 ``avgpool`` and the OpenAI CLIP ViT-L/14 image embedding;
mean correlation distance (``1 - r`` per pair) on EfficientNet-B1 and SwAV ResNet-50
``avgpool``. Beside MindEye2's set: 2-way identification on the built-in CLIP's image
embeddings and a Fréchet distance (torchmetrics' FID with a custom feature network).

Nothing is downloaded. The evaluation networks are torchvision's (open_clip's for CLIP)
architectures with weights read from local files: a path given in ``weights=``, or
torchvision's own file in the torch hub cache (``torch.hub.get_dir()/checkpoints``; the
Hugging Face cache for CLIP). A network without weights is reported as unavailable, with
the file it needs, never dropped and never replaced by another network.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import check_device, check_option, check_positive_int
from .._docs import fill_doc
from .._logging import logger, verbose
from .._utils import PathLike
from .retrieval import two_way_identification

__all__ = [
    "IMAGE_METRICS",
    "NETWORKS",
    "as_image_array",
    "correlation_distance",
    "frechet_distance",
    "image_metrics",
    "network_features",
    "pixcorr",
    "ssim",
    "two_way",
]

#: MindEye2's resolution of the low-level metrics
LOW_LEVEL_SIZE = 425

#: The keys of :func:`image_metrics`' result, in order.
IMAGE_METRICS = ("pixcorr", "ssim", "alexnet_2", "alexnet_5", "inception", "clip", "effnet",
                 "swav", "builtin_clip_2way", "fid")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP (open_clip.constants)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

#: network -> (description, resize, normalisation, torchvision / torch hub file name)
_NETS: dict[str, tuple[str, int, tuple, str | None]] = {
    "alexnet": ("AlexNet (torchvision IMAGENET1K_V1)", 256, (IMAGENET_MEAN, IMAGENET_STD),
                "alexnet-owt-7be5be79.pth"),
    "inception": ("InceptionV3 (torchvision IMAGENET1K_V1 = DEFAULT)", 342,
                  (IMAGENET_MEAN, IMAGENET_STD), "inception_v3_google-0cc3c7bd.pth"),
    "clip": ("OpenAI CLIP ViT-L/14 (open_clip 'ViT-L-14', quick GELU)", 224,
             (CLIP_MEAN, CLIP_STD), None),
    "effnet": ("EfficientNet-B1 (torchvision IMAGENET1K_V2 = DEFAULT)", 255,
               (IMAGENET_MEAN, IMAGENET_STD), "efficientnet_b1-c27df63c.pth"),
    "swav": ("SwAV ResNet-50 (facebookresearch/swav, 800 epochs)", 224,
             (IMAGENET_MEAN, IMAGENET_STD), "swav_800ep_pretrain.pth.tar"),
}

#: The networks of the high-level metrics (keys of ``weights=`` besides the metric names).
NETWORKS = tuple(_NETS)

#: metric -> (network, node, score): "two_way" (higher is better) or "distance" (lower)
_METRIC_SPECS: dict[str, tuple[str, str, str]] = {
    "alexnet_2": ("alexnet", "features.4", "two_way"),
    "alexnet_5": ("alexnet", "features.11", "two_way"),
    "inception": ("inception", "avgpool", "two_way"),
    "clip": ("clip", "image_embedding", "two_way"),
    "effnet": ("effnet", "avgpool", "distance"),
    "swav": ("swav", "avgpool", "distance"),
}

#: where open_clip keeps the OpenAI ViT-L/14 weights on the Hugging Face hub
_CLIP_HF_FILE = ("timm/vit_large_patch14_clip_224.openai", "open_clip_model.safetensors")

#: FID resolution of the InceptionV3 feature (the network's own input size)
_FID_INCEPTION_SIZE = 299

_WEIGHT_KEYS = ("alexnet", "alexnet_2", "alexnet_5", "inception", "clip", "effnet", "swav")
_FID_FEATURES = ("builtin", "inception")


class _Unavailable(FileNotFoundError):
    """A network whose weights are neither given nor in a local cache."""


# --------------------------------------------------------------------------- inputs
def as_image_array(images: Any, name: str = "images") -> np.ndarray:
    """PIL images, or a uint8 ``(n, H, W, 3)`` / float ``[0, 1]`` array -> float32
    ``(n, 3, H, W)`` in ``[0, 1]``.

    Parameters
    ----------
    images : list of PIL.Image.Image | ndarray
        Images of one size: PIL images (converted to RGB), a uint8 array ``(n, height,
        width, 3)``, or a float array of that shape with values in ``[0, 1]``.
    name : str
        The parameter's name, for error messages.

    Returns
    -------
    ndarray, shape (n, 3, height, width), float32
        Values in ``[0, 1]``.

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
        except (AttributeError, ValueError, TypeError) as err:
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

    return _resize_t(torch.from_numpy(x), size).numpy()


def _resize_t(t, size: int):
    """Bilinear (antialiased) resize of a ``(n, 3, H, W)`` tensor to ``size x size``."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    if tuple(t.shape[-2:]) != (size, size):
        t = TF.resize(t, [size, size], interpolation=InterpolationMode.BILINEAR, antialias=True)
    return t


def _pair(seen: Any, reconstructed: Any) -> tuple[np.ndarray, np.ndarray]:
    a = as_image_array(seen, "seen")
    b = as_image_array(reconstructed, "reconstructed")
    if len(a) != len(b):
        raise ValueError(f"'seen' and 'reconstructed' must hold as many images, but got "
                         f"{len(a)} and {len(b)}.")
    if len(a) == 0:
        raise ValueError("'seen' and 'reconstructed' are empty.")
    return a, b


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """float ``(n, 3, H, W)`` in [0, 1] -> uint8 ``(n, H, W, 3)`` (exact for uint8 input)."""
    return np.clip(np.rint(x.transpose(0, 2, 3, 1) * 255.0), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- low level
def _thread_map(func, *iterables) -> list:
    """``list(map(func, *iterables))`` on a few threads (the CPUs': SSIM's filters and
    numpy's reductions release the GIL); the order and the values are map's."""
    from concurrent.futures import ThreadPoolExecutor

    n = max(1, min(4, os.cpu_count() or 1))  # <= 4: a PixCorr chunk is ~280 MB
    if n == 1:
        return list(map(func, *iterables))
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(func, *iterables))


def _pixcorr(a: np.ndarray, b: np.ndarray, chunk: int = 32) -> float:
    def part(s: int) -> np.ndarray:  # bounded memory: 425 x 425 x 3 values per image
        n = len(a[s:s + chunk])
        # the sums over 541,875 pixels in float64 (float32 loses ~1e-5 of r)
        x = _resize(a[s:s + chunk], LOW_LEVEL_SIZE).reshape(n, -1).astype(np.float64)
        y = _resize(b[s:s + chunk], LOW_LEVEL_SIZE).reshape(n, -1).astype(np.float64)
        x -= x.mean(1, keepdims=True)
        y -= y.mean(1, keepdims=True)
        den = np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, np.einsum("ij,ij->i", x, y) / den, 0.0)

    return float(np.mean(np.concatenate(_thread_map(part, range(0, len(a), chunk)))))


def pixcorr(seen: Any, reconstructed: Any) -> float:
    """PixCorr (MindEye2): the Pearson correlation of all pixels of each pair, mean over pairs.

    Both sets are resized (bilinear, antialiased) to 425 x 425 and all three channels
    flattened.

    Parameters
    ----------
    seen, reconstructed : list of PIL.Image.Image | ndarray
        As many images in each (sizes may differ between the two); see
        :func:`as_image_array`.

    Returns
    -------
    float
        In ``[-1, 1]``; higher is better. A constant image's correlation counts as 0.
    """
    return _pixcorr(*_pair(seen, reconstructed))


def _ssim(a: np.ndarray, b: np.ndarray, chunk: int = 64) -> float:
    from skimage.color import rgb2gray
    from skimage.metrics import structural_similarity

    scores = []
    for s in range(0, len(a), chunk):
        x = _resize(a[s:s + chunk], LOW_LEVEL_SIZE).transpose(0, 2, 3, 1)
        y = _resize(b[s:s + chunk], LOW_LEVEL_SIZE).transpose(0, 2, 3, 1)
        scores += _thread_map(
            lambda u, v: structural_similarity(
                rgb2gray(np.clip(u, 0, 1)), rgb2gray(np.clip(v, 0, 1)), gaussian_weights=True,
                sigma=1.5, use_sample_covariance=False, data_range=1.0), x, y)
    return float(np.mean(scores))


def ssim(seen: Any, reconstructed: Any) -> float:
    """SSIM (MindEye2): resized to 425, grey (``rgb2gray``), mean over pairs.

    ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1.0)`` on each pair.

    Parameters
    ----------
    seen, reconstructed : list of PIL.Image.Image | ndarray
        As many images in each; see :func:`as_image_array`.

    Returns
    -------
    float
        At most 1 (identical images); higher is better.
    """
    return _ssim(*_pair(seen, reconstructed))


# --------------------------------------------------------------------------- scores
def two_way(features_seen: np.ndarray, features_reconstructed: np.ndarray) -> float:
    """2-way identification of reconstructions from features (``np.corrcoef`` protocol).

    With ``R = np.corrcoef(F_seen, F_rec)[:n, n:]`` (features flattened per image), the
    mean over reconstructions ``j`` of the share of other seen images ``i != j`` with
    ``R[i, j] < R[j, j]``.

    Parameters
    ----------
    features_seen, features_reconstructed : ndarray, shape (n, ...)
        Features of the seen images and of their reconstructions (row ``i`` of each
        belongs to stimulus ``i``).

    Returns
    -------
    float
        In ``[0, 1]``; chance is 0.5. Ties count as failures.
    """
    f_gt = np.asarray(features_seen, dtype=np.float64).reshape(len(features_seen), -1)
    f_rec = np.asarray(features_reconstructed, dtype=np.float64).reshape(
        len(features_reconstructed), -1)
    return two_way_identification(f_rec, f_gt)["accuracy"]


def correlation_distance(features_seen: np.ndarray, features_reconstructed: np.ndarray) -> float:
    """Mean correlation distance of paired features (MindEye2's EffNet-B1 and SwAV metrics).

    ``scipy.spatial.distance.correlation`` (``1 - r``, ``r`` the Pearson correlation of
    the flattened features of seen image ``i`` and reconstruction ``i``), mean over pairs.

    Parameters
    ----------
    features_seen, features_reconstructed : ndarray, shape (n, ...)
        Paired features, row ``i`` of each for stimulus ``i``.

    Returns
    -------
    float
        In ``[0, 2]``; lower is better (0: every pair perfectly correlated). NaN when a
        row is constant (its correlation is undefined).

    Raises
    ------
    ValueError
        If the two arrays do not have the same shape, or hold fewer than 2 features.
    """
    from scipy.spatial.distance import correlation

    f_gt = np.asarray(features_seen, dtype=np.float64)
    f_rec = np.asarray(features_reconstructed, dtype=np.float64)
    if f_gt.shape != f_rec.shape or f_gt.ndim < 2 or len(f_gt) == 0:
        raise ValueError(f"'features_seen' and 'features_reconstructed' must be arrays of one "
                         f"shape (n, ...) with n >= 1, but got {f_gt.shape} and {f_rec.shape}.")
    f_gt = f_gt.reshape(len(f_gt), -1)
    f_rec = f_rec.reshape(len(f_rec), -1)
    if f_gt.shape[1] < 2:
        raise ValueError(f"a correlation distance needs at least 2 features per row, but got "
                         f"{f_gt.shape[1]}.")
    return float(np.mean([correlation(x, y) for x, y in zip(f_gt, f_rec)]))


# --------------------------------------------------------------------------- weights
def _check_weights(weights: Mapping[str, PathLike] | None) -> dict[str, Path]:
    if weights is None:
        return {}
    if not isinstance(weights, Mapping):
        raise TypeError(f"The 'weights' parameter must be a dict of metric or network name -> "
                        f"path, but got {type(weights).__name__}.")
    out = {}
    for key, path in weights.items():
        if key not in _WEIGHT_KEYS:
            allowed = ", ".join(repr(k) for k in _WEIGHT_KEYS)
            raise ValueError(f"Invalid key of the 'weights' parameter. Allowed keys are "
                             f"{allowed}, but got {key!r} instead.")
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"weights[{key!r}] must be a path, but got {type(path).__name__}.")
        p = Path(path).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"weights[{key!r}] = {str(p)!r} is not a file.")
        out[key] = p
    alex = {k: out[k] for k in ("alexnet", "alexnet_2", "alexnet_5") if k in out}
    if len({p.resolve() for p in alex.values()}) > 1:
        raise ValueError(f"'alexnet_2' and 'alexnet_5' are two layers of one AlexNet: give its "
                         f"weights once, as weights['alexnet'], but got {alex}.")
    if alex:
        out["alexnet"] = next(iter(alex.values()))
    return out


def _hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment at each call."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface")
    return Path(home).expanduser() / "hub"


def _cached_weights(network: str) -> tuple[Path | None, str]:
    """(the weights file found in a local cache or None, where it was looked for)."""
    if network == "clip":
        from huggingface_hub import try_to_load_from_cache

        repo, filename = _CLIP_HF_FILE
        cache = _hf_cache_dir()
        found = try_to_load_from_cache(repo, filename, cache_dir=str(cache))
        where = f"{filename} of {repo} in the Hugging Face cache {cache}"
        return (Path(found) if isinstance(found, str) else None), where
    import torch

    folder = Path(torch.hub.get_dir()) / "checkpoints"
    filename = _NETS[network][3]
    assert filename is not None
    for name in (filename.split(".")[0] + ".safetensors", filename):
        if (folder / name).is_file():
            return folder / name, str(folder / filename)
    return None, str(folder / filename)


def _weights_path(network: str, weights: dict[str, Path], clip_model: Any = None) -> Path:
    if network in weights:
        return weights[network]
    if network == "clip" and clip_model is not None:
        raise _Unavailable(
            f"no weights for the CLIP metric with clip_model={clip_model!r}: pass "
            "weights={'clip': '<path of its open_clip .safetensors checkpoint>'} (nothing is "
            "downloaded).")
    found, where = _cached_weights(network)
    if found is not None:
        return found
    desc = _NETS[network][0]
    if network == "clip":
        raise _Unavailable(f"no weights for {desc}: pass weights={{'clip': '<path of its open_clip "
                           f".safetensors checkpoint>'}} or have {where} (nothing is "
                           f"downloaded).")
    raise _Unavailable(f"no weights for {desc}: pass weights={{{network!r}: '<path of "
                       f"{Path(where).name}, or a .safetensors of its state_dict>'}} or put "
                       f"the file at {where} (nothing is downloaded).")


def _read_state_dict(path: Path, key: str) -> dict[str, Any]:
    """A state dict from safetensors, or from a ``.pth`` read with ``weights_only=True``
    (tensors and plain containers only: nothing arbitrary is unpickled)."""
    import torch

    name = path.name.lower()
    if name.endswith(".safetensors"):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except SafetensorError as err:
            raise ValueError(f"weights[{key!r}] = {str(path)!r} is not a readable safetensors "
                             f"file ({err}).") from err
    if name.endswith((".pth", ".pt", ".pth.tar")):
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(
                f"weights[{key!r}] = {str(path)!r} could not be read with torch.load(weights_only="
                f"True), which refuses pickled objects other than tensors ({type(err).__name__}: "
                f"{err}); save its state_dict with safetensors.torch.save_file instead.") from err
        if not isinstance(sd, Mapping) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
            raise ValueError(f"weights[{key!r}] = {str(path)!r} must hold a state_dict (names -> "
                             f"tensors), but holds a {type(sd).__name__} of other things.")
        return dict(sd)
    raise ValueError(f"weights[{key!r}] must be a .safetensors file (or a torchvision .pth / "
                     f".pth.tar checkpoint, read with torch.load(weights_only=True)), but got "
                     f"{str(path)!r}.")


def _load_into(model, state_dict: dict[str, Any], key: str, path: Path,
               allow_missing: tuple[str, ...] = (), allow_unexpected: tuple[str, ...] = ()):
    try:
        missing, unexpected = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as err:  # tensors of the wrong shapes
        detail = str(err).split("\n\t", 1)[-1].split("\n")[0]
        raise ValueError(f"weights[{key!r}] = {str(path)!r} does not fit "
                         f"{type(model).__name__}: {detail}") from err
    missing = [k for k in missing if not k.startswith(allow_missing)] if allow_missing else missing
    unexpected = ([k for k in unexpected if not k.startswith(allow_unexpected)]
                  if allow_unexpected else unexpected)
    if missing or unexpected:
        raise ValueError(
            f"weights[{key!r}] = {str(path)!r} does not fit {type(model).__name__}: "
            f"{len(missing)} missing key(s) {missing[:3]} and {len(unexpected)} unexpected "
            f"key(s) {unexpected[:3]}.")
    return model


def _build_network(network: str, path: Path):
    """The torchvision network (weights=None) with the weights of ``path``, in eval mode."""
    import torchvision.models as tvm

    sd = _read_state_dict(path, network)
    if network == "alexnet":
        model = _load_into(tvm.alexnet(weights=None), sd, network, path)
    elif network == "inception":
        # as torchvision builds it for its DEFAULT weights
        model = tvm.inception_v3(weights=None, aux_logits=True, transform_input=True,
                                 init_weights=False)
        model = _load_into(model, sd, network, path)
    elif network == "effnet":
        model = _load_into(tvm.efficientnet_b1(weights=None), sd, network, path)
    elif network == "swav":
        # as the swav hubconf: "module." prefixes removed; its fc is not trained (unused
        # here) and the projection head / prototypes have no place in a ResNet-50
        sd = {k.replace("module.", ""): v for k, v in sd.items()}
        model = _load_into(tvm.resnet50(weights=None), sd, network, path,
                           allow_missing=("fc.",),
                           allow_unexpected=("projection_head.", "prototypes."))
    else:  # pragma: no cover - guarded by the callers
        raise ValueError(network)
    return model.float().eval()


def _build_clip(clip_model: Any, weights: dict[str, Path]):
    """(model with encode_image, description) for the CLIP metric."""
    if clip_model is not None and not isinstance(clip_model, str):
        if not callable(getattr(clip_model, "encode_image", None)):
            raise TypeError(f"The 'clip_model' parameter must be None, an open_clip model name or "
                            f"a model with an encode_image method, but got "
                            f"{type(clip_model).__name__}.")
        return clip_model.eval(), f"CLIP module {type(clip_model).__name__}"
    import open_clip

    name = "ViT-L-14" if clip_model is None else clip_model
    if name not in open_clip.list_models():
        raise ValueError(f"Invalid value for the 'clip_model' parameter: expected None (OpenAI "
                         f"ViT-L/14), an open_clip model name or a module, but got {name!r}.")
    path = _weights_path("clip", weights, clip_model)
    model = open_clip.create_model(name, pretrained=None, force_quick_gelu=clip_model is None)
    model = _load_into(model, _read_state_dict(path, "clip"), "clip", path)
    return model.float().eval(), (_NETS["clip"][0] if clip_model is None else f"open_clip {name}")


class _Extractor:
    """One evaluation network, loaded once, applied to any number of image sets."""

    def __init__(self, network: str, weights: dict[str, Path], *, clip_model: Any = None,
                 device: str = "cpu", batch_size: int = 32) -> None:
        import torch

        self.network = network
        self.nodes = [node for net, node, _ in _METRIC_SPECS.values() if net == network]
        self.device = torch.device(device)
        self.batch_size = batch_size
        _, self.size, (mean, std), _ = _NETS[network]
        if network == "clip":
            self.model, self.description = _build_clip(clip_model, weights)
        else:
            self.model = _build_network(network, _weights_path(network, weights))
            self.description = _NETS[network][0]
        self.model.to(self.device)
        self.mean = torch.tensor(mean, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=self.device).view(1, 3, 1, 1)

    def forward(self, x, nodes: list[str] | None = None) -> dict[str, Any]:
        """float [0, 1] tensor (B, 3, H, W) -> {node: (B, d) tensor}."""
        import torch

        x = (_resize_t(x.to(self.device, torch.float32), self.size) - self.mean) / self.std
        if self.network == "clip":
            return {"image_embedding": self.model.encode_image(x).float().flatten(1)}
        nodes = nodes or self.nodes
        got: dict[str, Any] = {}

        class _Done(Exception):
            pass

        def hook(node):
            def fn(module, inputs, output):
                got[node] = output.detach().float().flatten(1).clone()
                if len(got) == len(nodes):
                    raise _Done  # the later layers are not needed
            return fn

        handles = [self.model.get_submodule(n).register_forward_hook(hook(n)) for n in nodes]
        try:
            self.model(x)
        except _Done:
            pass
        finally:
            for h in handles:
                h.remove()
        return got

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        parts: dict[str, list[np.ndarray]] = {}
        with torch.inference_mode():
            for s in range(0, len(images), self.batch_size):
                x = torch.from_numpy(images[s:s + self.batch_size])
                for node, f in self.forward(x).items():
                    parts.setdefault(node, []).append(f.cpu().numpy())
        return {node: np.concatenate(p).astype(np.float32, copy=False)
                for node, p in parts.items()}


def network_features(
    images: Any,
    network: str,
    *,
    weights: Mapping[str, PathLike] | None = None,
    clip_model: Any = None,
    device: str = "cpu",
    batch_size: int = 32,
) -> dict[str, np.ndarray]:
    """Features of one of MindEye2's evaluation networks, as :func:`image_metrics` uses them.

    Images are resized (bilinear, antialiased, no crop) to the network's size and
    normalised: AlexNet 256, InceptionV3 342, EfficientNet-B1 255, SwAV ResNet-50 224
    (ImageNet mean and std); CLIP 224 (OpenAI CLIP mean and std).

    Parameters
    ----------
    images : list of PIL.Image.Image | ndarray
        See :func:`as_image_array`.
    network : {"alexnet", "inception", "clip", "effnet", "swav"}
        The network.
    weights : dict | None
        Network (or metric) name -> local weights file: a ``.safetensors`` state dict of
        the torchvision architecture (open_clip's for CLIP), or torchvision's ``.pth``
        (read with ``torch.load(weights_only=True)``). Without one, torchvision's file
        name in ``torch.hub.get_dir()/checkpoints`` (``<stem>.safetensors`` first) is
        used, or for CLIP open_clip's OpenAI ViT-L/14 safetensors in the Hugging Face
        cache. Nothing is downloaded.
    clip_model : str | torch.nn.Module | None
        For ``network="clip"``: ``None`` is OpenAI's ViT-L/14 (open_clip ``"ViT-L-14"``
        with quick GELU); another open_clip model name needs ``weights["clip"]``; a
        module with an ``encode_image`` method is used as it is (set to eval mode and
        moved to ``device``).
    device : str
        Torch device of the network.
    batch_size : int
        Images per forward pass.

    Returns
    -------
    dict of str to ndarray
        Node name -> float32 features ``(n, d)`` (flattened): ``"features.4"`` and
        ``"features.11"`` for AlexNet, ``"avgpool"`` for InceptionV3, EfficientNet-B1 and
        SwAV, ``"image_embedding"`` (``encode_image``, not normalised) for CLIP.

    Raises
    ------
    FileNotFoundError
        If the network's weights are neither given nor in a local cache (the message
        names the file needed).
    ValueError
        If a weights file is not safetensors nor a ``.pth`` state dict, or does not fit
        the architecture.
    """
    check_option("network", network, NETWORKS)
    arr = as_image_array(images, "images")
    check_positive_int("batch_size", batch_size)
    ext = _Extractor(network, _check_weights(weights), clip_model=clip_model,
                     device=check_device(device), batch_size=batch_size)
    return ext(arr)


# --------------------------------------------------------------------------- built-in CLIP
class _BuiltinClipImages:
    """The shipped built-in CLIP's image embeddings, computed as
    ``braindecode_kit.embed.Embedder("builtin").encode_images`` computes them.

    ``evaluate`` sits below ``embed`` in the package's layers (and ``embed`` imports
    ``evaluate``), so the tower is loaded here from the shipped files; a test checks that
    the two agree.
    """

    description = "built-in CLIP image embedding"

    def __init__(self, device: str = "cpu", batch_size: int = 32) -> None:
        import open_clip
        import torch
        from safetensors.torch import load_file
        from torchvision import transforms

        from .._resources import data_dir

        folder = data_dir()
        config = json.loads((folder / "builtin_clip.json").read_text())
        model = open_clip.model.CLIP(**config)
        model.load_state_dict({k: v.float() for k, v in
                               load_file(str(folder / "builtin_clip.safetensors")).items()})
        self.model = model.float().eval().to(device)
        self.device = torch.device(device)
        self.batch_size = batch_size
        size = config["vision_cfg"]["image_size"]
        # embed.builtin.builtin_transform: the world's pixel statistics
        self.preprocess = transforms.Compose([
            transforms.Resize(size, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(size),
            transforms.ToTensor(),
            transforms.Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
        ])

    def encode_images(self, images: np.ndarray) -> np.ndarray:
        import torch
        from PIL import Image

        out = []
        with torch.inference_mode():
            for s in range(0, len(images), self.batch_size):
                x = torch.stack([self.preprocess(Image.fromarray(a))
                                 for a in images[s:s + self.batch_size]]).to(self.device)
                f = self.model.encode_image(x).float()
                out.append(torch.nn.functional.normalize(f, dim=-1).cpu().numpy())
        return np.concatenate(out).astype(np.float32, copy=False)


def _embedder_features(embedder: Any, images: np.ndarray) -> np.ndarray:
    f = np.asarray(embedder.encode_images(_to_uint8(images)), dtype=np.float32)
    if f.ndim != 2 or len(f) != len(images):
        raise ValueError(f"'embedder.encode_images' must return an array (n, d) with n = "
                         f"{len(images)}, but returned shape {f.shape}.")
    return f


def _embedder_name(embedder: Any) -> str:
    return str(getattr(embedder, "identity", None) or getattr(embedder, "description", None)
               or type(embedder).__name__)


# --------------------------------------------------------------------------- FID
def _fid_module(fn: Callable, num_features: int):
    """torchmetrics' custom feature network: float [0, 1] ``(B, 3, H, W)`` -> ``(B, d)``."""
    import torch

    class ImageFeatureNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.num_features = num_features  # torchmetrics then runs no dummy forward

        def forward(self, x):
            return fn(x)

    return ImageFeatureNet()


def _fid(a: np.ndarray, b: np.ndarray, fn: Callable, d: int, description: str,
         batch_size: int) -> dict[str, Any]:
    import torch
    from torchmetrics.image.fid import FrechetInceptionDistance

    n = len(a)
    if n <= d:
        return _unavailable("fid", (
            f"FID needs more image pairs than feature dimensions (n > d) for full-rank "
            f"covariances, but got n={n} and d={d} ({description}); pass at least {d + 1} "
            f"image pairs, or a lower-dimensional feature network."))
    metric = FrechetInceptionDistance(feature=_fid_module(fn, d), normalize=True)
    with torch.no_grad():
        for arr, real in ((a, True), (b, False)):
            for s in range(0, n, batch_size):
                metric.update(torch.from_numpy(arr[s:s + batch_size]), real=real)
        value = float(metric.compute())
    return {"value": value, "higher_is_better": False,
            "protocol": f"FID (torchmetrics), {description}, d={d}, n={n}"}


# --------------------------------------------------------------------------- all metrics
def _entry(value: float, higher_is_better: bool, protocol: str) -> dict[str, Any]:
    return {"value": float(value), "higher_is_better": higher_is_better, "protocol": protocol}


def _unavailable(metric: str, reason: str) -> dict[str, Any]:
    logger.info("image metric %s unavailable: %s", metric, reason)
    return {"value": None, "unavailable": reason}


@fill_doc
@verbose
def image_metrics(
    seen: Any,
    reconstructed: Any,
    *,
    weights: Mapping[str, PathLike] | None = None,
    clip_model: Any = None,
    embedder: Any = None,
    fid_feature: Any = None,
    device: str = "cpu",
    batch_size: int = 32,
    verbose: bool | str | int | None = None,
) -> dict[str, dict[str, Any]]:
    """MindEye2's image metrics of reconstructions, plus built-in CLIP 2-way and FID.

    =====================  ===========================================================
    ``pixcorr``            PixCorr: bilinear 425, all channels, Pearson per pair (higher
                           is better)
    ``ssim``               SSIM: 425, grey, Gaussian sigma 1.5, data range 1 (higher)
    ``alexnet_2``          2-way identification, AlexNet ``features.4`` (higher)
    ``alexnet_5``          2-way identification, AlexNet ``features.11`` (higher)
    ``inception``          2-way identification, InceptionV3 ``avgpool`` (higher)
    ``clip``               2-way identification, CLIP ViT-L/14 image embedding (higher)
    ``effnet``             mean correlation distance, EfficientNet-B1 ``avgpool`` (lower)
    ``swav``               mean correlation distance, SwAV ResNet-50 ``avgpool`` (lower)
    ``builtin_clip_2way``  2-way identification, built-in CLIP image embedding (higher)
    ``fid``                Fréchet distance of the two sets' features (lower)
    =====================  ===========================================================

    2-way identification follows MindEye2 (``np.corrcoef`` of the flattened features, ties
    count as failures, chance 0.5); see :func:`two_way`, :func:`correlation_distance` and
    :func:`network_features` for each network's resize and normalisation.

    Parameters
    ----------
    seen : list of PIL.Image.Image | ndarray
        The seen (ground-truth) images: PIL images or a uint8 array ``(n, H, W, 3)``
        (a float array in ``[0, 1]`` is accepted too).
    reconstructed : list of PIL.Image.Image | ndarray
        Their reconstructions, in the same order; as many as ``seen``, of any one size
        (MindEye2: seen at 256 px, reconstructions at 512 px; every metric resizes both).
    weights : dict | None
        Local weights files: ``{"alexnet" (both AlexNet layers; "alexnet_2" or
        "alexnet_5" mean the same), "inception", "clip", "effnet", "swav": path}``. A
        ``.safetensors`` state dict of the torchvision architecture (open_clip's for
        CLIP), or torchvision's ``.pth`` read with ``torch.load(weights_only=True)``.
        Networks not named are looked for in the local caches (see
        :func:`network_features`); nothing is downloaded.
    clip_model : str | torch.nn.Module | None
        The CLIP of the ``clip`` metric: ``None`` is OpenAI's ViT-L/14; another open_clip
        model name (weights from ``weights["clip"]``); or a module with
        ``encode_image``, used as it is (set to eval mode and moved to ``device``).
    embedder : object | None
        The built-in CLIP to use for ``builtin_clip_2way`` and the default FID feature,
        e.g. an already loaded ``braindecode_kit.embed.Embedder("builtin")``: anything
        whose ``encode_images(uint8 array (n, H, W, 3))`` returns ``(n, d)``. ``None``
        loads the shipped built-in CLIP.
    fid_feature : None | "builtin" | "inception" | torch.nn.Module
        Feature network of the FID (see :func:`frechet_distance`): ``None`` or
        ``"builtin"``, the built-in CLIP image embedding (``embedder``'s when given);
        ``"inception"``, torchvision's InceptionV3 ``avgpool`` (2048-d, resize 299,
        ``weights["inception"]``); or a module taking float32 ``(B, 3, H, W)`` images in
        ``[0, 1]`` and returning ``(B, d)``.
    device : str
        Torch device of the networks (inputs and results stay on the CPU).
    batch_size : int
        Images per forward pass.
    %(verbose)s

    Returns
    -------
    dict of str to dict
        One entry per metric of :data:`IMAGE_METRICS`, in that order, never dropped:
        ``{"value": float, "higher_is_better": bool, "protocol": str}``, or, when a
        network's weights are not available or too few images for the FID,
        ``{"value": None, "unavailable": "<reason, naming the file or argument needed>"}``.

    Raises
    ------
    ValueError
        If the inputs are not images, differ in number, or hold fewer than 2 pairs; if a
        weights file is not safetensors nor a ``.pth`` state dict or does not fit.
    FileNotFoundError
        If a path in ``weights`` is not a file.

    Notes
    -----
    The FID estimates one ``d x d`` covariance per set, full rank only with more images
    than dimensions: it is reported unavailable unless ``n > d`` (more than 128 pairs with
    the built-in CLIP, 2048 with InceptionV3). With a few hundred images it is biased
    upwards; compare FIDs of equal ``n`` only.

    MindEye2's "enhanced" scores blend 0.75 x enhanced + 0.25 x blurry reconstructions
    before scoring; say so when comparing with them.

    Examples
    --------
    >>> from braindecode_kit.simulate import make_world
    >>> seen = make_world(6, seed=1).to_array()  # uint8 (6, 64, 64, 3)
    >>> res = image_metrics(seen, seen[::-1])
    >>> list(res) == list(IMAGE_METRICS)
    True
    >>> res["pixcorr"]["higher_is_better"], res["fid"]["value"]  # 6 images: no FID
    (True, None)
    """
    a, b = _pair(seen, reconstructed)
    if len(a) < 2:
        raise ValueError(f"image_metrics needs at least 2 image pairs (2-way identification "
                         f"compares each reconstruction with the other images), but got "
                         f"{len(a)}.")
    w = _check_weights(weights)
    batch_size = check_positive_int("batch_size", batch_size)
    device = check_device(device)
    _check_fid_feature(fid_feature)
    _check_embedder(embedder)

    out: dict[str, dict[str, Any]] = {
        "pixcorr": _entry(_pixcorr(a, b), True, "PixCorr: bilinear 425, all channels, "
                                                 "Pearson per pair, mean"),
        "ssim": _entry(_ssim(a, b), True, "SSIM: bilinear 425, rgb2gray, Gaussian sigma 1.5, "
                                          "data range 1, mean"),
    }
    inception = None  # kept for the FID's "inception" feature
    for network in NETWORKS:
        metrics = [m for m, (net, _, _) in _METRIC_SPECS.items() if net == network]
        try:
            ext = _Extractor(network, w, clip_model=clip_model, device=device,
                             batch_size=batch_size)
        except _Unavailable as err:
            for m in metrics:
                out[m] = _unavailable(m, str(err))
            continue
        fa, fb = ext(a), ext(b)
        for m in metrics:
            _, node, score = _METRIC_SPECS[m]
            where = f"{ext.description} {node}, bilinear {ext.size}"
            if score == "two_way":
                out[m] = _entry(two_way(fa[node], fb[node]), True, f"2-way (np.corrcoef), {where}")
            else:
                out[m] = _entry(correlation_distance(fa[node], fb[node]), False,
                                f"mean 1 - Pearson r, {where}")
        if network == "inception" and fid_feature == "inception":
            inception = ext
        del ext, fa, fb

    builtin = embedder if embedder is not None else _BuiltinClipImages(device, batch_size)
    fa, fb = _embedder_features(builtin, a), _embedder_features(builtin, b)
    name = _embedder_name(builtin)
    out["builtin_clip_2way"] = _entry(two_way(fa, fb), True, f"2-way (np.corrcoef), {name}")

    out["fid"] = _fid_entry(a, b, fid_feature, builtin, inception, w, device, batch_size)
    return {m: out[m] for m in IMAGE_METRICS}


def _is_module(obj: Any) -> bool:
    import torch

    return isinstance(obj, torch.nn.Module)


def _check_fid_feature(fid_feature: Any) -> None:
    if isinstance(fid_feature, str):
        check_option("fid_feature", fid_feature, _FID_FEATURES)
    elif fid_feature is not None and not _is_module(fid_feature):
        raise TypeError(f"The 'fid_feature' parameter must be None, 'builtin', 'inception' or a "
                        f"torch.nn.Module, but got {type(fid_feature).__name__}.")


def _check_embedder(embedder: Any) -> None:
    if embedder is not None and not callable(getattr(embedder, "encode_images", None)):
        raise TypeError(f"The 'embedder' parameter must be None or have an encode_images "
                        f"method (an Embedder), but got {type(embedder).__name__}.")


def _fid_entry(a: np.ndarray, b: np.ndarray, fid_feature: Any, builtin: Any,
               inception: _Extractor | None, w: dict[str, Path], device: str,
               batch_size: int) -> dict[str, Any]:
    import torch

    if fid_feature is None or fid_feature == "builtin":
        if builtin is None:
            builtin = _BuiltinClipImages(device, batch_size)

        def fn(x):
            return torch.from_numpy(_embedder_features(builtin, x.cpu().numpy()))

        d = _embedder_features(builtin, a[:1]).shape[1]
        return _fid(a, b, fn, d, _embedder_name(builtin), batch_size)
    if fid_feature == "inception":
        description = f"{_NETS['inception'][0]} avgpool, bilinear {_FID_INCEPTION_SIZE}"
        if len(a) <= 2048:  # known before loading the network
            return _fid(a, b, lambda x: x, 2048, description, batch_size)
        if inception is None:
            try:
                inception = _Extractor("inception", w, device=device, batch_size=batch_size)
            except _Unavailable as err:
                return _unavailable("fid", f"fid_feature='inception': {err}")
        inception.size = _FID_INCEPTION_SIZE  # the network's own input size

        def fn(x):
            return inception.forward(x, ["avgpool"])["avgpool"].cpu()

        return _fid(a, b, fn, 2048, description, batch_size)
    module = fid_feature.eval().to(device)

    def fn(x):
        return module(x.to(device, torch.float32)).float().reshape(len(x), -1).cpu()

    with torch.no_grad():
        d = fn(torch.from_numpy(a[:1])).shape[1]
    return _fid(a, b, fn, d, f"feature {type(module).__name__}", batch_size)


def frechet_distance(
    seen: Any,
    reconstructed: Any,
    *,
    feature: Any = None,
    embedder: Any = None,
    weights: Mapping[str, PathLike] | None = None,
    device: str = "cpu",
    batch_size: int = 32,
) -> dict[str, Any]:
    """Fréchet distance (FID) between the features of the seen and the reconstructed set.

    torchmetrics' ``FrechetInceptionDistance`` with a custom feature network: the
    distance between two Gaussians fitted to the two sets' features,
    ``|mu_1 - mu_2|^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))`` (float64 statistics).

    Parameters
    ----------
    seen, reconstructed : list of PIL.Image.Image | ndarray
        As many images in each; see :func:`as_image_array`.
    feature : None | "builtin" | "inception" | torch.nn.Module
        ``None`` or ``"builtin"``: the built-in CLIP image embedding (128-d, unit norm;
        ``embedder``'s when given). ``"inception"``: torchvision's InceptionV3 ``avgpool``
        (2048-d, bilinear 299, ImageNet normalisation; weights as for
        :func:`network_features`). A module: it receives float32 images in ``[0, 1]``,
        ``(B, 3, H, W)`` at their own size (seen and reconstructed may differ), is set
        to eval mode and moved to ``device``, and returns ``(B, d)``.
    embedder : object | None
        For the built-in feature: an object whose ``encode_images(uint8 (n, H, W, 3))``
        returns ``(n, d)``, e.g. ``braindecode_kit.embed.Embedder("builtin")``; ``None``
        loads the shipped built-in CLIP.
    weights : dict | None
        As in :func:`image_metrics` (``"inception"`` is the one used here).
    device : str
        Torch device of the feature network.
    batch_size : int
        Images per forward pass.

    Returns
    -------
    dict
        ``{"value": float, "higher_is_better": False, "protocol": str}``, or ``{"value":
        None, "unavailable": reason}`` when ``n <= d`` or the InceptionV3 weights are
        missing.

    Notes
    -----
    Each set's covariance is ``d x d`` and has rank at most ``n - 1``: the distance is
    only computed for ``n > d`` (more than 128 image pairs with the built-in CLIP, 2048
    with InceptionV3). It is biased upwards at small ``n``: compare FIDs of equal ``n``
    only. The InceptionV3 here is torchvision's, not the TF-Inception of published FIDs:
    its values are not comparable with those.
    """
    a, b = _pair(seen, reconstructed)
    _check_fid_feature(feature)
    _check_embedder(embedder)
    w = _check_weights(weights)
    batch_size = check_positive_int("batch_size", batch_size)
    device = check_device(device)
    return _fid_entry(a, b, feature, embedder, None, w, device, batch_size)
