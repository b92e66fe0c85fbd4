"""The ground-truth voxel encoding model of the simulated fMRI subjects.

Each simulated voxel's response to an image is a known function of that image. The
model is chosen for what is known of human visual cortex, and it is the same for every
decoder that is later trained on the data (it is never tuned to favour one of them):

Early visual voxels (V1-V3)
    * **Local low-level features.** The rendered pixels are turned into 12 feature maps:
      oriented contrast energy (4 orientations x 2 spatial frequencies, the modulus of a
      quadrature pair of Gabor filters: the "energy model" of complex cells, Adelson &
      Bergen 1985; as in the voxel-wise Gabor model of Kay, Naselaris, Prenger & Gallant
      2008) and half-wave rectified colour-opponent signals (red-green and blue-yellow,
      each polarity), with divisive normalisation of the energy by the local energy pooled
      over orientations and scales (Heeger 1992; Carandini & Heeger 2012).
    * **Retinotopic receptive field.** A voxel pools the maps with an isotropic Gaussian
      population receptive field (pRF; Dumoulin & Wandell 2008). Centres follow a
      retinotopic map on the simulated cortex: the fovea at the occipital pole,
      eccentricity growing log-like away from it (cortical magnification; Engel, Glover &
      Wandell 1997), each hemisphere coding the contralateral hemifield; pRF size grows
      linearly with eccentricity (Dumoulin & Wandell 2008). The images span 8.4 deg, as
      NSD's do (Allen et al. 2022); pRFs may reach beyond the image, where the screen is
      blank (zero contrast).
    * **Feature tuning.** Each voxel weights the channels with positive weights that vary
      smoothly over cortex (orientation and colour biases of voxels are weak and
      spatially organised).
    * **Compressive spatial summation.** The pooled drive is raised to a power ``n < 1``
      (Kay, Winawer, Mezer & Wandell 2013: the CSS model; n drawn in [0.2, 0.6]), so the
      response saturates with contrast and area.
Higher visual voxels (ventral/lateral occipito-temporal)
    * **Semantic features.** The object attributes of the scene (one-hot of every
      categorical attribute, e.g. shape, colour, size, position, background, texture,
      number of objects and the per-object columns; numeric attributes standardised) are
      mixed by a fixed random one-hidden-layer network with rectification, so voxels
      respond to conjunctions (nonlinear feature mixing) and not to one attribute alone.
      Object category (``shape``) columns weigh more than the other attributes: category
      dominates ventral responses (Haxby et al. 2001; Kriegeskorte et al. 2008), and
      object position is still coded there, more coarsely (Hemond, Kanwisher & Op de
      Beeck 2007). The mixing network is **shared by all subjects** (a common
      representational space, as hyperalignment finds: Haxby et al. 2011), while each
      subject reads it out with its own spatially smooth voxel weights (subject-specific
      topography). A softplus output keeps responses rectified.
    * **Some low-level input.** Higher areas also carry low-level information through
      large, foveal pRFs (sizes 2-4 deg; Kay et al. 2013); a per-voxel fraction (10-40 %)
      of the response comes from that pathway.
Non-visual voxels
    Respond to nothing (their betas are pure noise).

Each voxel's response is finally an affine map of this feature response: a mean evoked
response (percent signal change; positive, as visual cortex responds to any image) and
a stimulus-driven standard deviation that the noise model (see
:mod:`braindecode_kit.simulate.oracle`) sets from the voxel's target noise-ceiling SNR.

Stimuli without usable attributes (e.g. a folder of photographs) fall back to global
image statistics (low-level maps pooled over the whole image and its quadrants) as the
input of the semantic network, so the model still applies to any images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import ndimage

__all__ = [
    "IMAGE_SIZE",
    "MAP_SIZE",
    "FIELD_DEG",
    "CHANNELS",
    "lowlevel_features",
    "semantic_design",
    "SemanticMixer",
    "make_semantic_mixer",
    "VoxelEncodingModel",
    "make_voxel_model",
    "prf_weights",
]

#: Working resolution of the images (pixels; images are resized to it).
IMAGE_SIZE = 64
#: Side of the low-level feature maps (the images' 64 px pooled in 4 x 4 blocks).
MAP_SIZE = 16
#: Visual angle spanned by an image (degrees), as in NSD.
FIELD_DEG = 8.4
_ORIENTATIONS = (0.0, 45.0, 90.0, 135.0)
#: Gabor wavelengths in working pixels (~1.9 and ~0.95 cycles/deg).
_WAVELENGTHS = (4.0, 8.0)
#: Names of the low-level channels, in order.
CHANNELS = tuple(
    [f"energy_l{int(w)}px_o{int(o)}" for w in _WAVELENGTHS for o in _ORIENTATIONS]
    + ["red+", "green+", "blue+", "yellow+"]
)
#: Semi-saturation constant of the divisive normalisation (energy units, pixels in [0, 1]).
_NORM_SIGMA = 0.05
#: Weight of category (shape) columns in the semantic input, relative to other attributes.
_CATEGORY_WEIGHT = 2.0
_MAX_LEVELS = 64
#: Side of the baseband grid on which the energy envelopes are computed.
_BASEBAND = 32


# --------------------------------------------------------------------------- low-level features
def _gabor_bank() -> tuple[list[tuple[int, int]], np.ndarray]:
    """Analytic Gabor filters at baseband (see :func:`lowlevel_features`).

    Returns the centre frequency of each filter in FFT bins of the ``IMAGE_SIZE`` grid and
    the filters demodulated to 0 on the ``_BASEBAND`` grid, ``(n_filters, B, B)``.
    """
    n = IMAGE_SIZE
    f = np.fft.fftfreq(_BASEBAND, d=1.0 / _BASEBAND) / n  # cycles/pixel offsets from centre
    fy, fx = f[:, None], f[None, :]
    centres, out = [], []
    for wl in _WAVELENGTHS:
        f0 = 1.0 / wl
        sigma_f = f0 * 0.42  # ~1 octave bandwidth
        for ori in _ORIENTATIONS:
            th = np.deg2rad(ori)
            kx, ky = int(round(f0 * np.cos(th) * n)), int(round(f0 * np.sin(th) * n))
            centres.append((ky, kx))
            out.append(2.0 * np.exp(-(fx**2 + fy**2) / (2 * sigma_f**2)))
    return centres, np.stack(out)


def lowlevel_features(images: np.ndarray, chunk: int = 128) -> np.ndarray:
    """Low-level feature maps of RGB images.

    Parameters
    ----------
    images : np.ndarray
        ``(n, IMAGE_SIZE, IMAGE_SIZE, 3)`` ``uint8`` images.
    chunk : int
        Images processed at once (bounds memory).

    Returns
    -------
    np.ndarray
        ``(n, len(CHANNELS), MAP_SIZE, MAP_SIZE)`` float32: normalised oriented contrast
        energy (8 channels) and rectified colour-opponent signals (4 channels), averaged in
        blocks of ``IMAGE_SIZE // MAP_SIZE`` pixels.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise ValueError(
            f"'images' must have shape (n, {IMAGE_SIZE}, {IMAGE_SIZE}, 3), but got "
            f"{images.shape}."
        )
    out = np.empty((images.shape[0], len(CHANNELS), MAP_SIZE, MAP_SIZE), np.float32)
    for s in range(0, images.shape[0], chunk):
        out[s:s + chunk] = _lowlevel_chunk(images[s:s + chunk])
    return out


def _lowlevel_chunk(images: np.ndarray) -> np.ndarray:
    import scipy.fft as sfft

    x = images.astype(np.float32) / 255.0
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    lum = (r + g + b) / 3.0
    n = IMAGE_SIZE
    spec = sfft.fft2(lum - lum.mean(axis=(1, 2), keepdims=True))
    centres, bank = _gabor_bank()
    idx = np.fft.fftfreq(_BASEBAND, d=1.0 / _BASEBAND).astype(int)
    energy = np.empty((x.shape[0], len(centres), _BASEBAND, _BASEBAND), np.float32)
    # complex (quadrature) response demodulated to baseband: its modulus, the contrast
    # energy envelope, needs only a _BASEBAND-point grid
    for k, (ky, kx) in enumerate(centres):
        band = spec[:, (idx + ky) % n][:, :, (idx + kx) % n] * bank[k]
        energy[:, k] = np.abs(sfft.ifft2(band)) * (_BASEBAND / n) ** 2
    # divisive normalisation by the local energy pooled over channels (Heeger 1992)
    pool = ndimage.gaussian_filter(energy.mean(axis=1), sigma=(0, 1.0, 1.0), mode="nearest")
    energy = energy / (_NORM_SIGMA + pool[:, None])
    kb = _BASEBAND // MAP_SIZE
    energy = energy.reshape(x.shape[0], -1, MAP_SIZE, kb, MAP_SIZE, kb).mean(axis=(3, 5))
    rg = r - g
    by = b - (r + g) / 2.0
    colour = np.stack([np.maximum(rg, 0), np.maximum(-rg, 0), np.maximum(by, 0),
                       np.maximum(-by, 0)], axis=1)
    k = IMAGE_SIZE // MAP_SIZE
    colour = colour.reshape(x.shape[0], 4, MAP_SIZE, k, MAP_SIZE, k).mean(axis=(3, 5))
    return np.concatenate([energy, colour], axis=1).astype(np.float32)


def prf_weights(x0: np.ndarray, y0: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Gaussian pRF weights over the feature-map grid.

    Parameters
    ----------
    x0, y0, sigma : np.ndarray
        ``(n_voxels,)`` centres (degrees; x rightwards, y upwards, 0 = image centre) and
        sizes (degrees).

    Returns
    -------
    np.ndarray
        ``(n_voxels, MAP_SIZE * MAP_SIZE)`` float32 weights: the Gaussian integrated over
        each map cell (evaluated at pixel resolution), normalised to a unit integral over
        the whole visual field, so a pRF partly off the image sees blank screen there.
    """
    px = FIELD_DEG / IMAGE_SIZE
    centres = (np.arange(IMAGE_SIZE) + 0.5) * px - FIELD_DEG / 2.0
    xs = centres[None, :]  # columns: left -> right
    ys = -centres[None, :]  # rows: top -> bottom
    s = np.asarray(sigma, dtype=np.float64)[:, None]
    gx = np.exp(-((xs - np.asarray(x0)[:, None]) ** 2) / (2 * s**2)) * px / (np.sqrt(2 * np.pi) * s)
    gy = np.exp(-((ys - np.asarray(y0)[:, None]) ** 2) / (2 * s**2)) * px / (np.sqrt(2 * np.pi) * s)
    k = IMAGE_SIZE // MAP_SIZE
    gx = gx.reshape(-1, MAP_SIZE, k).sum(-1)
    gy = gy.reshape(-1, MAP_SIZE, k).sum(-1)
    w = gy[:, :, None] * gx[:, None, :]  # (v, row, col)
    return w.reshape(w.shape[0], -1).astype(np.float32)


# --------------------------------------------------------------------------- semantic features
def semantic_design(attributes: pd.DataFrame) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Raw design of stimulus attributes: one-hot (categorical) and numeric columns.

    Categorical columns (strings, categories, booleans and integers with at most 16
    levels) with 2 to 64 levels become one-hot blocks; numeric columns are kept as they
    are (NaN where missing; :class:`SemanticMixer` standardises them with constants fixed
    at simulation time); constant columns and identifiers are dropped.

    Returns
    -------
    X : np.ndarray
        ``(n, d)`` float32.
    names : list of str
        ``"column=level"`` (one-hot) or ``"column"`` (numeric) per feature.
    weights : np.ndarray
        ``(d,)`` per-feature input weight (category columns weigh more).
    """
    blocks, names, weights = [], [], []
    for col in attributes.columns:
        s = attributes[col]
        is_cat = (s.dtype == object or isinstance(s.dtype, pd.CategoricalDtype)
                  or pd.api.types.is_bool_dtype(s) or pd.api.types.is_string_dtype(s))
        if not is_cat and pd.api.types.is_integer_dtype(s) and s.nunique() <= 16:
            is_cat = True
        w = _CATEGORY_WEIGHT if "shape" in str(col).lower() else 1.0
        if is_cat:
            levels = sorted(s.astype(str).unique())
            if not 2 <= len(levels) <= _MAX_LEVELS:
                continue
            vals = s.astype(str).to_numpy()
            blocks.append((vals[:, None] == np.asarray(levels)[None, :]).astype(np.float32))
            names += [f"{col}={lv}" for lv in levels]
            weights += [w] * len(levels)
        elif pd.api.types.is_numeric_dtype(s):
            v = s.to_numpy(dtype=np.float64)
            if np.isfinite(v).sum() < 2 or np.nanstd(v) == 0:
                continue
            blocks.append(v[:, None].astype(np.float32))
            names.append(str(col))
            weights.append(w)
    if not blocks:
        return np.zeros((len(attributes), 0), np.float32), [], np.zeros(0, np.float32)
    return np.concatenate(blocks, axis=1), names, np.asarray(weights, np.float32)


def global_image_design(maps: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Fallback semantic input: low-level maps pooled over the image and its quadrants."""
    n, c = maps.shape[:2]
    h = MAP_SIZE // 2
    parts = [maps.mean(axis=(2, 3))]
    for r0 in (0, h):
        for c0 in (0, h):
            parts.append(maps[:, :, r0:r0 + h, c0:c0 + h].mean(axis=(2, 3)))
    X = np.concatenate(parts, axis=1).reshape(n, -1).astype(np.float32)
    return X, [f"global_{j}" for j in range(X.shape[1])]


@dataclass
class SemanticMixer:
    """The shared (all-subject) nonlinear mixing of attribute features.

    ``z = relu((((x - centre) / scale) * input_weights) @ A + b)`` (missing values -> 0
    after standardisation), with ``A`` of shape ``(d, k)``; ``centre``/``scale`` are 0/1
    for one-hot features and the simulation stimuli's mean/sd for numeric ones.
    """

    names: list[str]
    input_weights: np.ndarray
    A: np.ndarray
    b: np.ndarray
    centre: np.ndarray
    scale: np.ndarray

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Latent semantic features ``(n, k)`` of a raw design ``(n, d)``."""
        Xs = np.nan_to_num((np.asarray(X, np.float32) - self.centre) / self.scale, nan=0.0)
        return np.maximum((Xs * self.input_weights) @ self.A + self.b, 0.0).astype(np.float32)


def make_semantic_mixer(names: Sequence[str], input_weights: np.ndarray, X: np.ndarray,
                        rng: np.random.Generator, n_latent: int = 48) -> SemanticMixer:
    """Draw the shared mixing network (random projections; biases keep ~40 % of units on).

    Numeric features (names without ``"="``) are standardised with the mean and sd of
    ``X``, the raw design of the simulation's stimuli.
    """
    d = len(names)
    A = rng.standard_normal((d, n_latent)).astype(np.float32) / np.sqrt(max(d, 1) * 0.25)
    b = (rng.standard_normal(n_latent) * 0.5 - 0.3).astype(np.float32)
    centre = np.zeros(d, np.float32)
    scale = np.ones(d, np.float32)
    for j, n in enumerate(names):
        if "=" not in n:
            centre[j] = np.nanmean(X[:, j])
            sd = np.nanstd(X[:, j])
            scale[j] = sd if sd > 0 else 1.0
    return SemanticMixer(list(names), np.asarray(input_weights, np.float32), A, b, centre, scale)


@dataclass
class VoxelEncodingModel:
    """One subject's voxel-wise encoding model (all arrays are per voxel, ``(V, ...)``).

    ``roi``: 1 early visual, 2 higher visual, 3 non-visual. pRF centre/size in degrees;
    ``exponent``: CSS power; ``channel_weights`` ``(V, C)``; ``semantic_weights``
    ``(V, k)``; ``lowlevel_mix``: fraction of the response from the low-level pathway;
    ``ref_mean``/``ref_std``: the feature response's mean and standard deviation over the
    reference stimuli, used to standardise it; ``mean_response`` and ``amplitude``: the
    response's mean (percent signal change) and standard deviation across stimuli.
    """

    roi: np.ndarray
    prf_x: np.ndarray
    prf_y: np.ndarray
    prf_sigma: np.ndarray
    exponent: np.ndarray
    channel_weights: np.ndarray
    semantic_weights: np.ndarray
    lowlevel_mix: np.ndarray
    low_mean: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    low_std: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    sem_mean: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    sem_std: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    ref_mean: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    ref_std: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    mean_response: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    amplitude: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    @property
    def n_voxels(self) -> int:
        return int(self.roi.shape[0])

    def pathways(self, maps: np.ndarray, latent: np.ndarray,
                 chunk: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw low-level (pRF + CSS) and semantic (softplus readout) responses.

        Parameters
        ----------
        maps : np.ndarray
            ``(n, C, MAP_SIZE, MAP_SIZE)`` low-level maps.
        latent : np.ndarray
            ``(n, k)`` shared semantic latents.

        Returns
        -------
        vis : np.ndarray
            Indices of the visual voxels.
        low, sem : np.ndarray
            ``(n, len(vis))`` float32 each.
        """
        n = maps.shape[0]
        vis = np.flatnonzero(self.roi != 3)
        G = prf_weights(self.prf_x[vis], self.prf_y[vis], self.prf_sigma[vis])  # (v, P)
        W = self.channel_weights[vis].astype(np.float32)  # (v, C)
        expo = self.exponent[vis].astype(np.float32)
        low = np.empty((n, vis.size), np.float32)
        flat = np.ascontiguousarray(maps.reshape(n, maps.shape[1], -1), dtype=np.float32)
        C = flat.shape[1]
        for s in range(0, n, chunk):
            m = flat[s:s + chunk]
            pooled = (m.reshape(-1, m.shape[2]) @ G.T).reshape(m.shape[0], C, -1)  # (c, C, v)
            drive = (pooled * W.T[None]).sum(axis=1)
            low[s:s + chunk] = np.power(np.maximum(drive, 1e-12), expo)
        sem = _softplus(np.asarray(latent, np.float32) @ self.semantic_weights[vis].T.astype(np.float32))
        return vis, low, sem

    def feature_response(self, maps: np.ndarray, latent: np.ndarray) -> np.ndarray:
        """Unscaled response ``(n, V)`` (0 for non-visual voxels): the two pathways, each
        standardised with the reference constants, mixed with weight ``lowlevel_mix``."""
        return self._combine(maps.shape[0], *self.pathways(maps, latent))

    def _combine(self, n: int, vis: np.ndarray, low: np.ndarray, sem: np.ndarray) -> np.ndarray:
        out = np.zeros((n, self.n_voxels), np.float32)
        lam = self.lowlevel_mix[vis].astype(np.float32)
        low_z = (low - self.low_mean[vis]) / self.low_std[vis]
        sem_z = (sem - self.sem_mean[vis]) / self.sem_std[vis]
        out[:, vis] = lam * low_z + np.sqrt(np.maximum(1.0 - lam**2, 0.0)) * sem_z
        return out

    def calibrate(self, maps: np.ndarray, latent: np.ndarray) -> np.ndarray:
        """Fix the standardisation constants from the responses to reference stimuli.

        Returns the (unscaled) feature response ``(n, V)`` of those stimuli, so that
        ``mean_response + amplitude * (f - ref_mean) / ref_std`` gives their responses
        without recomputing the pathways.
        """
        vis, low, sem = self.pathways(maps, latent)
        V = self.n_voxels

        def stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            m = np.zeros(V, np.float32)
            sd = np.ones(V, np.float32)
            m[vis] = x.mean(axis=0)
            s = x.std(axis=0)
            sd[vis] = np.where(s > 0, s, 1.0)
            return m, sd

        self.low_mean, self.low_std = stats(low)
        self.sem_mean, self.sem_std = stats(sem)
        f = self._combine(maps.shape[0], vis, low, sem)
        self.ref_mean, self.ref_std = stats(f[:, vis])
        return f

    def scale(self, f: np.ndarray) -> np.ndarray:
        """Responses (percent signal change) from a feature response ``f`` ``(n, V)``."""
        if self.ref_mean.size != self.n_voxels or self.amplitude.size != self.n_voxels:
            raise RuntimeError("The voxel model is not calibrated: call calibrate() and set "
                               "amplitude/mean_response first.")
        return (self.mean_response + self.amplitude * (f - self.ref_mean) / self.ref_std
                ).astype(np.float32)

    def predict(self, maps: np.ndarray, latent: np.ndarray) -> np.ndarray:
        """Noise-free responses ``(n, V)`` in percent signal change."""
        return self.scale(self.feature_response(maps, latent))

    def arrays(self) -> dict[str, np.ndarray]:
        """All parameters as plain arrays (for ``np.savez``)."""
        return {k: np.asarray(getattr(self, k)) for k in self.__dataclass_fields__}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> VoxelEncodingModel:
        """Rebuild a model from :meth:`arrays` (extra keys are ignored)."""
        return cls(**{k: np.asarray(arrays[k]) for k in cls.__dataclass_fields__})


def stimulus_features(stimuli, ids: Sequence[str], mixer: SemanticMixer | None = None,
                      progress_fn=None) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """Low-level maps and semantic design of some stimuli of a StimulusSet.

    Returns ``maps`` ``(n, C, MAP_SIZE, MAP_SIZE)``, the semantic design ``X``, its
    ``names`` and input weights. With ``mixer``, ``X`` is aligned to the mixer's feature
    names (levels it does not know are ignored, missing ones are 0), so new stimuli are
    encoded as the simulated ones were.
    """
    from PIL import Image

    ids = list(ids)
    images = np.empty((len(ids), IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    it = progress_fn(ids) if progress_fn is not None else ids
    for k, sid in enumerate(it):
        img = stimuli.load_image(sid)
        if img.mode != "RGB":
            img = img.convert("RGB")
        if img.size != (IMAGE_SIZE, IMAGE_SIZE):
            img = img.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC)
        images[k] = np.asarray(img, np.uint8)
    maps = lowlevel_features(images)
    del images
    global_mixer = mixer is not None and bool(mixer.names) and mixer.names[0].startswith("global_")
    attrs = getattr(stimuli, "attributes", None)
    X, names, in_w = np.zeros((len(ids), 0), np.float32), [], np.zeros(0, np.float32)
    if attrs is not None and len(attrs) and not global_mixer:
        X, names, in_w = semantic_design(attrs.reindex(ids))
    if global_mixer or (mixer is None and X.shape[1] == 0):
        X, names = global_image_design(maps)
        in_w = np.ones(X.shape[1], np.float32)
    if mixer is not None and names != list(mixer.names):
        pos = {n: j for j, n in enumerate(names)}
        aligned = np.zeros((len(ids), len(mixer.names)), np.float32)
        for j, n in enumerate(mixer.names):
            if n in pos:
                aligned[:, j] = X[:, pos[n]]
            elif "=" not in n:
                aligned[:, j] = np.nan  # a numeric attribute it lacks: treated as missing
        X, names, in_w = aligned, list(mixer.names), mixer.input_weights
    return maps, X, names, in_w


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x).astype(np.float32)


def smooth_field(mask: np.ndarray, ijk: np.ndarray, n: int, rng: np.random.Generator,
                 sigma: float = 1.5) -> np.ndarray:
    """``n`` spatially smooth Gaussian random fields over the brain, ``(V, n)``, unit std."""
    out = np.empty((ijk.shape[0], n), np.float32)
    for k in range(n):
        f = ndimage.gaussian_filter(rng.standard_normal(mask.shape), sigma=sigma, mode="constant")
        v = f[ijk[:, 0], ijk[:, 1], ijk[:, 2]]
        out[:, k] = (v - v.mean()) / (v.std() + 1e-12)
    return out


def make_voxel_model(ijk: np.ndarray, roi: np.ndarray, mask: np.ndarray, n_latent: int,
                     rng: np.random.Generator) -> VoxelEncodingModel:
    """Draw one subject's voxel model on its anatomy (before calibration).

    Parameters
    ----------
    ijk : np.ndarray
        ``(V, 3)`` voxel indices (x: left -> right, y: posterior -> anterior, z: inferior
        -> superior).
    roi : np.ndarray
        ``(V,)`` labels: 1 early visual, 2 higher visual, 3 non-visual.
    mask : np.ndarray
        The 3-D brain mask (for spatially smooth random fields).
    n_latent : int
        Dimension of the shared semantic latent space.
    rng : np.random.Generator
        The subject's generator.
    """
    V = ijk.shape[0]
    xyz = ijk.astype(np.float64)
    c = xyz.mean(axis=0)
    nan = np.full(V, np.nan)
    prf_x, prf_y, prf_sigma, expo = nan.copy(), nan.copy(), nan.copy(), nan.copy()
    early = np.flatnonzero(roi == 1)
    higher = np.flatnonzero(roi == 2)
    if early.size:
        e = xyz[early]
        ymin = e[:, 1].min()
        zr = max(np.abs(e[:, 2] - c[2]).max(), 1.0)
        dist = np.hypot(e[:, 1] - ymin, 0.5 * (e[:, 2] - c[2]))
        u = (np.argsort(np.argsort(dist, kind="stable"), kind="stable") + 0.5) / early.size
        alpha, e_max = 2.5, 6.5  # log-like cortical magnification; eccentricities to 6.5 deg
        ecc = e_max * (np.exp(alpha * u) - 1.0) / (np.exp(alpha) - 1.0)
        phi = np.clip((e[:, 2] - c[2]) / zr, -1.0, 1.0) * (np.pi / 2)
        hemi = np.where(e[:, 0] < c[0], 1.0, -1.0)  # left hemisphere -> right hemifield
        jit = rng.standard_normal((early.size, 2)) * (0.1 + 0.05 * ecc)[:, None]
        prf_x[early] = hemi * ecc * np.cos(phi) + jit[:, 0]
        prf_y[early] = -ecc * np.sin(phi) + jit[:, 1]  # dorsal cortex <-> lower field
        prf_sigma[early] = (0.4 + 0.15 * ecc) * np.exp(0.2 * rng.standard_normal(early.size))
        expo[early] = rng.uniform(0.25, 0.6, early.size)
    if higher.size:
        hemi = np.where(xyz[higher, 0] < c[0], 1.0, -1.0)
        prf_x[higher] = hemi * np.abs(rng.normal(0.8, 0.8, higher.size))
        prf_y[higher] = rng.normal(0.0, 0.8, higher.size)
        prf_sigma[higher] = rng.uniform(2.0, 4.0, higher.size)
        expo[higher] = rng.uniform(0.15, 0.4, higher.size)
    C = len(CHANNELS)
    field_c = smooth_field(mask, ijk, C, rng)
    cw = np.exp(0.7 * field_c + 0.3 * rng.standard_normal((V, C)))
    cw /= cw.sum(axis=1, keepdims=True)
    sw = np.zeros((V, n_latent), np.float32)
    if higher.size:
        field_s = smooth_field(mask, ijk, n_latent, rng)[higher]
        raw = 0.8 * field_s + 0.6 * rng.standard_normal((higher.size, n_latent))
        sw[higher] = raw * (2.0 / np.sqrt(n_latent))
    mix = np.zeros(V)
    mix[early] = 1.0
    mix[higher] = rng.uniform(0.1, 0.4, higher.size)
    vis = roi != 3
    cw[~vis] = 0.0
    return VoxelEncodingModel(
        roi=roi.astype(np.int8),
        prf_x=prf_x.astype(np.float32),
        prf_y=prf_y.astype(np.float32),
        prf_sigma=prf_sigma.astype(np.float32),
        exponent=expo.astype(np.float32),
        channel_weights=cw.astype(np.float32),
        semantic_weights=sw,
        lowlevel_mix=mix.astype(np.float32),
    )
