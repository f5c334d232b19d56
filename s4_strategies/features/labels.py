"""Labels: the targets of training. They look forward on purpose and are never features.

Forward log returns at several horizons, 3- or 5-class signals from thresholds in units of
trailing volatility, and the next period's realised volatility.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from .batch import rolling_mean
from .spec import EPS, check_frame


@dataclass(frozen=True)
class LabelSpec:
    """Targets: forward returns, a signal class and next-period realised volatility."""

    horizons: tuple[int, ...] = (1, 5, 20)
    signal_horizon: int = 5
    n_classes: int = 3
    thresholds: tuple[float, ...] = (0.5,)
    vol_window: int = 24
    vol_horizon: int = 24

    def __post_init__(self):
        object.__setattr__(self, "horizons", tuple(int(h) for h in self.horizons))
        object.__setattr__(self, "thresholds", tuple(float(t) for t in self.thresholds))
        if self.n_classes not in (3, 5):
            raise ValueError("n_classes must be 3 or 5")
        need = 1 if self.n_classes == 3 else 2
        if len(self.thresholds) != need or list(self.thresholds) != sorted(self.thresholds):
            raise ValueError(f"{self.n_classes} classes need {need} increasing thresholds")

    @property
    def max_horizon(self) -> int:
        """How far labels look ahead: the purge gap between splits must be at least this."""
        return max(*self.horizons, self.signal_horizon, self.vol_horizon)

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> LabelSpec:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def signal_values(n_classes: int) -> np.ndarray:
    """The position each class stands for: 3 classes -> -1, 0, 1; 5 classes -> -2 … 2."""
    half = n_classes // 2
    return np.arange(-half, half + 1, dtype=np.float64)


def make_labels(df: pd.DataFrame, spec: LabelSpec | None = None) -> pd.DataFrame:
    """Targets for every bar (NaN where the future is not known).

    - ``fwd_h``: log(c_{t+h} / c_t) for h in ``horizons``
    - ``signal``: class of z = fwd_{signal_horizon} / (sigma_t sqrt(signal_horizon)), sigma_t the
      trailing realised volatility over ``vol_window`` bars; 3 classes cut at ±thresholds[0],
      5 classes at ±thresholds[0] and ±thresholds[1]; class 0 is the most bearish.
    - ``log_vol``: log of the realised volatility of the next ``vol_horizon`` bars.
    """
    spec = spec or LabelSpec()
    check_frame(df)
    c = df["close"].to_numpy(dtype=np.float64)
    n = len(c)
    logc = np.log(c)
    out: dict[str, np.ndarray] = {}

    def fwd(h: int) -> np.ndarray:
        res = np.full(n, np.nan)
        if h < n:
            res[: n - h] = logc[h:] - logc[: n - h]
        return res

    for h in spec.horizons:
        out[f"fwd_{h}"] = fwd(h)
    r = np.concatenate([[np.nan], np.diff(logc)])
    sigma = np.sqrt(rolling_mean(r * r, spec.vol_window))
    scale = np.where(sigma > 0, sigma, np.nan) * math.sqrt(spec.signal_horizon)
    z = fwd(spec.signal_horizon) / scale
    cuts = sorted([-t for t in spec.thresholds] + list(spec.thresholds))
    cls = np.searchsorted(np.asarray(cuts), z, side="right").astype(np.float64)
    cls[np.isnan(z)] = np.nan
    out["signal"] = cls
    fut = pd.Series(r * r).rolling(spec.vol_horizon, min_periods=spec.vol_horizon).mean()
    fut = fut.shift(-spec.vol_horizon).to_numpy()
    out["log_vol"] = np.log(np.sqrt(fut) + EPS)
    return pd.DataFrame(out, index=df.index)
