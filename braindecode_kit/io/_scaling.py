"""Scalers whose statistics come from training trials only (private to :mod:`braindecode_kit.io`).

The MEG image paper (Benchetrit et al. 2023, after brainmagick) scales each channel with
scikit-learn's ``RobustScaler`` (median and interquartile range over time samples) and
clamps the result at +-20. Here the statistics are computed over the samples of the
``split == "train"`` trials only, so nothing about validation or test trials enters the
training data (changing a test trial leaves the scaled training data unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._logging import logger

__all__ = ["RobustChannelScaler", "fit_scaler_on_train"]


@dataclass
class RobustChannelScaler:
    """Per-channel ``(x - median) / IQR`` with an optional clamp.

    Attributes
    ----------
    center : np.ndarray
        ``(n_channels,)`` medians.
    scale : np.ndarray
        ``(n_channels,)`` interquartile ranges (``quantile_range``).
    clamp : float | None
        Values beyond +-clamp after scaling are set to +-clamp.
    """

    center: np.ndarray
    scale: np.ndarray
    clamp: float | None = 20.0

    @classmethod
    def fit(cls, data: np.ndarray, quantile_range: tuple[float, float] = (25.0, 75.0),
            clamp: float | None = 20.0) -> RobustChannelScaler:
        """Statistics of ``data`` ``(n_trials, n_channels, n_times)`` per channel."""
        x = np.moveaxis(np.asarray(data), 1, 0).reshape(data.shape[1], -1)
        q = np.percentile(x, [quantile_range[0], 50.0, quantile_range[1]], axis=1)
        iqr = q[2] - q[0]
        iqr = np.where(iqr > 0, iqr, 1.0)  # a flat channel (e.g. all zeros) stays as it is
        return cls(q[1].astype(np.float64), iqr.astype(np.float64), clamp)

    def transform(self, data: np.ndarray) -> np.ndarray:
        """Scaled (and clamped) float32 copy of ``data``."""
        out = (np.asarray(data, np.float64) - self.center[None, :, None]) / self.scale[
            None, :, None]
        if self.clamp is not None:
            np.clip(out, -self.clamp, self.clamp, out=out)
        return out.astype(np.float32)


def fit_scaler_on_train(data: np.ndarray, trials: pd.DataFrame, clamp: float | None,
                        where: str) -> RobustChannelScaler:
    """Fit on the ``split == "train"`` trials; all trials when none has a split."""
    split = trials["split"].astype(str).to_numpy()
    train = split == "train"
    if not train.any():
        if (split != "").any():
            raise ValueError(
                f"{where}: the robust scaler is fitted on training trials only, but no trial "
                f"has split 'train' (found splits {sorted(set(split))}); give a 'split' column "
                "in the events or pass scaling=None."
            )
        logger.info("%s: no trial has a split; the scaler's statistics come from all %d "
                    "trials.", where, len(split))
        train = np.ones(len(split), bool)
    return RobustChannelScaler.fit(data[train], clamp=clamp)
