"""One causal feature definition, used by training and by the live indicator alike.

``make_features(df, spec)`` computes every feature for a whole frame at once (vectorised);
``FeatureStream(spec)`` computes the same numbers one bar at a time in O(1) for
backtrader's ``next()``. Both implement the formulas below and a test holds them equal.
Every feature at bar t uses bars <= t only (``tests/test_features.py`` proves it by
changing the future and checking that nothing at or before t moves).

Features (per bar t, ``r_t = log(c_t / c_{t-1})``):

====================  ===================================================================
name                  formula
====================  ===================================================================
``ret_k``             log(c_t / c_{t-k}) for k in ``return_windows``
``log_range``         log(h_t / l_t)
``body``              (c_t - o_t) / (h_t - l_t)   (0 on a flat bar)
``close_pos``         2 (c_t - l_t) / (h_t - l_t) - 1   (0 on a flat bar)
``rv_w``              log(sqrt(mean(r_{t-w+1..t}^2)) + 1e-8), realised volatility
``volume_z``          log1p(v_t) - mean(log1p(v_{t-W+1..t})), W = ``volume_window``
``rsi``               (RSI_n - 50) / 50 with Wilder's smoothing (alpha = 1/n)
``atr``               log(ATR_n / c_t), Wilder's smoothing of the true range
``ma_gap_n``          log(c_t / SMA_n(c)_t) for n in ``ma_windows``
``hour_sin/cos``      the UTC hour of the bar open on the unit circle (``time_features``)
``dow_sin/cos``       the UTC weekday likewise
====================  ===================================================================

The raw features are scale-free; ``Normalizer.fit`` then learns a mean and standard deviation
per feature on the training period only, and both are stored in the checkpoint.

Labels (``make_labels``) look forward on purpose and are only ever used as targets:
forward log returns at several horizons, 3- or 5-class signals from thresholds in units of
trailing volatility, and next-period realised volatility.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

REQUIRED_COLUMNS = ("open", "high", "low", "close", "volume")
_EPS = 1e-8


@dataclass(frozen=True)
class FeatureSpec:
    """What features to compute. Saved with every checkpoint (``to_dict``/``from_dict``)."""

    return_windows: tuple[int, ...] = (1, 4, 24)
    vol_windows: tuple[int, ...] = (24, 168)
    volume_window: int = 168
    rsi_period: int = 14
    atr_period: int = 14
    ma_windows: tuple[int, ...] = (24, 168)
    time_features: bool = True
    version: int = 1

    def __post_init__(self):
        for name in ("return_windows", "vol_windows", "ma_windows"):
            values = tuple(int(x) for x in getattr(self, name))
            if not values or min(values) < 1:
                raise ValueError(f"FeatureSpec.{name} needs positive windows, got {values}")
            object.__setattr__(self, name, values)
        for name in ("volume_window", "rsi_period", "atr_period"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"FeatureSpec.{name} must be >= 1")

    @property
    def names(self) -> list[str]:
        out = [f"ret_{k}" for k in self.return_windows]
        out += ["log_range", "body", "close_pos"]
        out += [f"rv_{w}" for w in self.vol_windows]
        out += ["volume_z", "rsi", "atr"]
        out += [f"ma_gap_{n}" for n in self.ma_windows]
        if self.time_features:
            out += ["hour_sin", "hour_cos", "dow_sin", "dow_cos"]
        return out

    @property
    def warmup(self) -> int:
        """Bars before every feature is defined and the Wilder averages have settled."""
        return max(
            max(self.return_windows),
            max(self.vol_windows),
            self.volume_window,
            max(self.ma_windows),
            4 * self.rsi_period,
            4 * self.atr_period,
        ) + 1

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> FeatureSpec:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        unknown = set(d) - set(known)
        if unknown:
            raise ValueError(f"unknown feature spec fields {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in known.items()})


def _check_frame(df: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"features need columns {list(REQUIRED_COLUMNS)}; missing {missing}")
    if not isinstance(df.index, pd.DatetimeIndex):
        raise ValueError("features need a DatetimeIndex (bar open times)")


def _wilder(x: np.ndarray, n: int) -> np.ndarray:
    """y_t = y_{t-1} + (x_t - y_{t-1}) / n, seeded with the first finite x."""
    s = pd.Series(x)
    return s.ewm(alpha=1.0 / n, adjust=False, ignore_na=True).mean().to_numpy()


def _rolling_mean(x: np.ndarray, w: int) -> np.ndarray:
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
    _check_frame(df)
    o, h, l, c, v = (df[k].to_numpy(dtype=np.float64) for k in REQUIRED_COLUMNS)
    n = len(c)
    prev_c = np.concatenate([[np.nan], c[:-1]])
    r = np.log(c / prev_c)
    cols: dict[str, np.ndarray] = {}
    for k in spec.return_windows:
        lagged = np.concatenate([np.full(min(k, n), np.nan), c[:-k]]) if k < n else np.full(n, np.nan)
        cols[f"ret_{k}"] = np.log(c / lagged)
    rng = h - l
    flat = rng <= 0
    safe = np.where(flat, 1.0, rng)
    cols["log_range"] = np.log(h / l)
    cols["body"] = np.where(flat, 0.0, (c - o) / safe)
    cols["close_pos"] = np.where(flat, 0.0, 2.0 * (c - l) / safe - 1.0)
    r2 = r * r
    for w in spec.vol_windows:
        cols[f"rv_{w}"] = np.log(np.sqrt(np.maximum(_rolling_mean(r2, w), 0.0)) + _EPS)
    lv = np.log1p(v)
    cols["volume_z"] = lv - _rolling_mean(lv, spec.volume_window)
    diff = c - prev_c
    gain = _wilder(np.where(np.isnan(diff), np.nan, np.maximum(diff, 0.0)), spec.rsi_period)
    loss = _wilder(np.where(np.isnan(diff), np.nan, np.maximum(-diff, 0.0)), spec.rsi_period)
    tot = gain + loss
    cols["rsi"] = np.where(tot > 0, (gain - loss) / np.where(tot > 0, tot, 1.0), 0.0)
    cols["rsi"][np.isnan(diff)] = np.nan
    tr = np.maximum.reduce([h - l, np.abs(h - prev_c), np.abs(l - prev_c)])
    tr[0] = np.nan
    cols["atr"] = np.log(_wilder(tr, spec.atr_period) / c + _EPS)
    for w in spec.ma_windows:
        cols[f"ma_gap_{w}"] = np.log(c / _rolling_mean(c, w))
    if spec.time_features:
        hours, dow = _time_parts(df.index)
        cols["hour_sin"] = np.sin(2 * np.pi * hours / 24.0)
        cols["hour_cos"] = np.cos(2 * np.pi * hours / 24.0)
        cols["dow_sin"] = np.sin(2 * np.pi * dow / 7.0)
        cols["dow_cos"] = np.cos(2 * np.pi * dow / 7.0)
    return pd.DataFrame({k: cols[k] for k in spec.names}, index=df.index)


class FeatureStream:
    """The features of ``make_features``, one bar at a time, O(1) per bar.

    ``update(o, h, l, c, v, hour, dow)`` returns the raw feature vector of that bar (NaN
    where a window is not yet full). ``get_state``/``set_state`` save and restore it.
    """

    def __init__(self, spec: FeatureSpec | None = None):
        self.spec = spec or FeatureSpec()
        self.names = self.spec.names
        self.reset()

    def reset(self) -> None:
        spec = self.spec
        keep = max(max(spec.return_windows), 1) + 1
        self._closes: deque = deque(maxlen=keep)
        self._r2 = {w: (deque(maxlen=w), [0.0]) for w in spec.vol_windows}
        self._lv = (deque(maxlen=spec.volume_window), [0.0])
        self._ma = {w: (deque(maxlen=w), [0.0]) for w in spec.ma_windows}
        self._gain = self._loss = self._atr = None
        self._out = np.empty(len(self.names))

    @staticmethod
    def _push(window: tuple, x: float) -> float:
        buf, acc = window
        if len(buf) == buf.maxlen:
            acc[0] -= buf[0]
        buf.append(x)
        acc[0] += x
        return acc[0] / len(buf) if len(buf) == buf.maxlen else math.nan

    def update(self, o, h, l, c, v, hour=0.0, dow=0.0) -> np.ndarray:
        spec = self.spec
        closes = self._closes
        prev = closes[-1] if closes else math.nan
        closes.append(c)
        out = self._out
        i = 0
        for k in spec.return_windows:
            out[i] = math.log(c / closes[-1 - k]) if len(closes) > k else math.nan
            i += 1
        rng = h - l
        out[i] = math.log(h / l)
        out[i + 1] = (c - o) / rng if rng > 0 else 0.0
        out[i + 2] = 2.0 * (c - l) / rng - 1.0 if rng > 0 else 0.0
        i += 3
        first = prev != prev  # NaN: no previous close yet
        r = math.nan if first else math.log(c / prev)
        for w in spec.vol_windows:
            if first:
                out[i] = math.nan
            else:
                m = self._push(self._r2[w], r * r)
                out[i] = math.log(math.sqrt(max(m, 0.0)) + _EPS) if m == m else math.nan
            i += 1
        lv = math.log1p(v)
        m = self._push(self._lv, lv)
        out[i] = lv - m
        i += 1
        if first:
            out[i] = math.nan
            tr = math.nan
        else:
            d = c - prev
            g, lo = max(d, 0.0), max(-d, 0.0)
            n = spec.rsi_period
            if self._gain is None:
                self._gain, self._loss = g, lo
            else:
                self._gain += (g - self._gain) / n
                self._loss += (lo - self._loss) / n
            tot = self._gain + self._loss
            out[i] = (self._gain - self._loss) / tot if tot > 0 else 0.0
            tr = max(h - l, abs(h - prev), abs(l - prev))
        i += 1
        if tr == tr:
            if self._atr is None:
                self._atr = tr
            else:
                self._atr += (tr - self._atr) / spec.atr_period
        out[i] = math.log(self._atr / c + _EPS) if self._atr is not None else math.nan
        i += 1
        for w in spec.ma_windows:
            m = self._push(self._ma[w], c)
            out[i] = math.log(c / m) if m == m else math.nan
            i += 1
        if spec.time_features:
            out[i] = math.sin(2 * math.pi * hour / 24.0)
            out[i + 1] = math.cos(2 * math.pi * hour / 24.0)
            out[i + 2] = math.sin(2 * math.pi * dow / 7.0)
            out[i + 3] = math.cos(2 * math.pi * dow / 7.0)
        return out

    def get_state(self) -> dict:
        return {
            "closes": list(self._closes),
            "r2": {w: (list(b), a[0]) for w, (b, a) in self._r2.items()},
            "lv": (list(self._lv[0]), self._lv[1][0]),
            "ma": {w: (list(b), a[0]) for w, (b, a) in self._ma.items()},
            "wilder": (self._gain, self._loss, self._atr),
        }

    def set_state(self, state: dict) -> None:
        self.reset()
        self._closes.extend(state["closes"])
        for w, (vals, acc) in state["r2"].items():
            self._r2[w][0].extend(vals)
            self._r2[w][1][0] = acc
        self._lv[0].extend(state["lv"][0])
        self._lv[1][0] = state["lv"][1]
        for w, (vals, acc) in state["ma"].items():
            self._ma[w][0].extend(vals)
            self._ma[w][1][0] = acc
        self._gain, self._loss, self._atr = state["wilder"]


@dataclass
class Normalizer:
    """Per-feature standardisation fitted on the training period only; z clipped to ±clip."""

    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    clip: float = 8.0

    @classmethod
    def fit(cls, features: pd.DataFrame, clip: float = 8.0) -> Normalizer:
        x = features.to_numpy(dtype=np.float64)
        mean = np.nanmean(x, axis=0)
        std = np.nanstd(x, axis=0)
        if np.isnan(mean).any():
            bad = [c for c, m in zip(features.columns, mean) if np.isnan(m)]
            raise ValueError(f"cannot fit normalisation: features {bad} have no finite values")
        std = np.where(std > 1e-12, std, 1.0)
        return cls(mean=mean.tolist(), std=std.tolist(), clip=clip)

    def transform(self, x):
        """Standardise a DataFrame/array (last axis = features); NaN stays NaN."""
        arr = np.asarray(x, dtype=np.float64)
        z = (arr - np.asarray(self.mean)) / np.asarray(self.std)
        z = np.clip(z, -self.clip, self.clip)
        if isinstance(x, pd.DataFrame):
            return pd.DataFrame(z, index=x.index, columns=x.columns)
        return z

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std), "clip": self.clip}

    @classmethod
    def from_dict(cls, d: dict) -> Normalizer:
        return cls(mean=list(d["mean"]), std=list(d["std"]), clip=float(d.get("clip", 8.0)))


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
    _check_frame(df)
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
    sigma = np.sqrt(_rolling_mean(r * r, spec.vol_window))
    z = fwd(spec.signal_horizon) / (np.where(sigma > 0, sigma, np.nan) * math.sqrt(spec.signal_horizon))
    cuts = sorted([-t for t in spec.thresholds] + list(spec.thresholds))
    cls = np.searchsorted(np.asarray(cuts), z, side="right").astype(np.float64)
    cls[np.isnan(z)] = np.nan
    out["signal"] = cls
    fut = pd.Series(r * r).rolling(spec.vol_horizon, min_periods=spec.vol_horizon).mean()
    fut = fut.shift(-spec.vol_horizon).to_numpy()
    out["log_vol"] = np.log(np.sqrt(fut) + _EPS)
    return pd.DataFrame(out, index=df.index)


def bar_spacing(index: pd.DatetimeIndex) -> pd.Timedelta:
    """The median spacing of bars: the data's frequency as far as the model is concerned."""
    if len(index) < 2:
        raise ValueError("need at least two bars to tell the bar spacing")
    return pd.Timedelta(int(np.median(np.diff(index.as_unit("ns").asi8))), unit="ns")
