"""``make_features``: every feature of a spec for a whole frame at once (vectorised).

The per-bar twin is :class:`~s4_strategies.features.stream.FeatureStream`; a test holds
them equal, another proves that no feature at bar t reads a bar after t.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .spec import EPS, REQUIRED_COLUMNS, FeatureSpec, check_frame


def _wilder(x: np.ndarray, n: int) -> np.ndarray:
    """y_t = y_{t-1} + (x_t - y_{t-1}) / n, seeded with the first finite x."""
    s = pd.Series(x)
    return s.ewm(alpha=1.0 / n, adjust=False, ignore_na=True).mean().to_numpy()


def rolling_mean(x: np.ndarray, w: int) -> np.ndarray:
    return pd.Series(x).rolling(w, min_periods=w).mean().to_numpy()


def _time_parts(index: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    idx = index.tz_convert("UTC") if index.tz is not None else index
    hours = idx.hour.to_numpy() + idx.minute.to_numpy() / 60.0
    return hours.astype(np.float64), idx.day_of_week.to_numpy().astype(np.float64)


def make_features(df: pd.DataFrame, spec: FeatureSpec | None = None) -> pd.DataFrame:
    """All features of ``spec`` for every bar of ``df``, aligned to ``df.index``.

    Rows before each feature's window is full are NaN (see ``spec.warmup``).
    """
    spec = spec or FeatureSpec()
    check_frame(df)
    o, h, l, c, v = (df[k].to_numpy(dtype=np.float64) for k in REQUIRED_COLUMNS)
    n = len(c)
    prev_c = np.concatenate([[np.nan], c[:-1]])
    r = np.log(c / prev_c)
    cols: dict[str, np.ndarray] = {}
    for k in spec.return_windows:
        if k < n:
            lagged = np.concatenate([np.full(min(k, n), np.nan), c[:-k]])
        else:
            lagged = np.full(n, np.nan)
        cols[f"ret_{k}"] = np.log(c / lagged)
    rng = h - l
    flat = rng <= 0
    safe = np.where(flat, 1.0, rng)
    cols["log_range"] = np.log(h / l)
    cols["body"] = np.where(flat, 0.0, (c - o) / safe)
    cols["close_pos"] = np.where(flat, 0.0, 2.0 * (c - l) / safe - 1.0)
    r2 = r * r
    for w in spec.vol_windows:
        cols[f"rv_{w}"] = np.log(np.sqrt(np.maximum(rolling_mean(r2, w), 0.0)) + EPS)
    lv = np.log1p(v)
    cols["volume_z"] = lv - rolling_mean(lv, spec.volume_window)
    diff = c - prev_c
    gain = _wilder(np.where(np.isnan(diff), np.nan, np.maximum(diff, 0.0)), spec.rsi_period)
    loss = _wilder(np.where(np.isnan(diff), np.nan, np.maximum(-diff, 0.0)), spec.rsi_period)
    tot = gain + loss
    cols["rsi"] = np.where(tot > 0, (gain - loss) / np.where(tot > 0, tot, 1.0), 0.0)
    cols["rsi"][np.isnan(diff)] = np.nan
    tr = np.maximum.reduce([h - l, np.abs(h - prev_c), np.abs(l - prev_c)])
    tr[0] = np.nan
    cols["atr"] = np.log(_wilder(tr, spec.atr_period) / c + EPS)
    for w in spec.ma_windows:
        cols[f"ma_gap_{w}"] = np.log(c / rolling_mean(c, w))
    if spec.time_features:
        hours, dow = _time_parts(df.index)
        cols["hour_sin"] = np.sin(2 * np.pi * hours / 24.0)
        cols["hour_cos"] = np.cos(2 * np.pi * hours / 24.0)
        cols["dow_sin"] = np.sin(2 * np.pi * dow / 7.0)
        cols["dow_cos"] = np.cos(2 * np.pi * dow / 7.0)
    return pd.DataFrame({k: cols[k] for k in spec.names}, index=df.index)
